"""Where a photo's features come from, and the Segmenter built for it: used by the
command line and (inside its worker thread) by the studio.

Order: a features function (tests, scripts) → a features file given for this photo
→ the ONNX embedding model. Each step says in ``note`` what it did, for the status bar.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..io.features_file import FeaturesFileError, load_features_file
from .cancel import CancelFn, check
from .embedding import EmbeddingModel, ModelError, default_model_path
from .params import SegmenterParams
from .pipeline import Segmenter


class FeatureError(Exception):
    """No features can be had for this photo; the message says why."""


@dataclass
class Prepared:
    segmenter: Segmenter
    note: str                                   # e.g. "model: CPUExecutionProvider"
    provider: Optional[str] = None
    timings: dict[str, float] = field(default_factory=dict)


class FeatureSource:
    """Builds a Segmenter with features for a photo. Used from one thread at a time;
    the model is loaded once, on first use."""

    def __init__(
        self,
        model_path: Optional[str] = None,
        features_path: Optional[str] = None,
        features_fn: Optional[Callable[[np.ndarray], np.ndarray]] = None,
        prefer_gpu: bool = True,
        segmenter_factory: Callable[..., Segmenter] = Segmenter,
    ):
        self.model_path = model_path
        self.features_path = features_path
        self.features_fn = features_fn
        self.prefer_gpu = prefer_gpu
        self.segmenter_factory = segmenter_factory
        self._model: Any = None
        self._model_error: Optional[str] = None
        self._lock = threading.Lock()

    def model_file(self) -> Path:
        return Path(self.model_path) if self.model_path else Path(default_model_path())

    def model(self) -> Any:
        """The embedding model (loaded once), or raise FeatureError saying why not."""
        with self._lock:
            if self._model is not None:
                return self._model
            if self._model_error is not None:
                raise FeatureError(self._model_error)
            path = self.model_file()
            if not path.is_file():
                self._model_error = f"embedding model not found at {path}"
                raise FeatureError(self._model_error)
            try:
                self._model = EmbeddingModel(path, prefer_gpu=self.prefer_gpu)
            except ModelError as e:
                self._model_error = f"the embedding model cannot load: {e}"
                raise FeatureError(self._model_error) from None
            except Exception as e:  # onnxruntime raises its own types
                self._model_error = f"the embedding model cannot load: {e}"
                raise FeatureError(self._model_error) from None
            return self._model

    def features_file(self) -> np.ndarray:
        """The features file's array, or FeatureError saying why it cannot be used."""
        assert self.features_path is not None
        try:
            return load_features_file(self.features_path)
        except FeaturesFileError as err:
            raise FeatureError(str(err)) from None

    def prepare(self, image: np.ndarray, params: SegmenterParams, cancel: CancelFn = None) -> Prepared:
        if self.features_fn is not None:
            seg = self.segmenter_factory(params)
            seg.set_image(image, self.features_fn(image))
            return Prepared(seg, "features: given")
        if self.features_path is not None:
            feats = self.features_file()
            if feats.shape[:2] == image.shape[:2]:
                seg = self.segmenter_factory(params)
                seg.set_image(image, feats)
                return Prepared(seg, f"features: {Path(self.features_path).name}")
            # A features file belongs to one photo; other photos use the model.
        check(cancel)
        model = self.model()
        seg = self.segmenter_factory(params, embedding_model=model)
        seg.set_image(image)
        provider = getattr(model, "provider", None)
        return Prepared(seg, f"model: {provider or 'onnxruntime'}", provider=provider)
