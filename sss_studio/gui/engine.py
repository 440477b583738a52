"""Where a photo's features come from, and the Segmenter built for it (Qt-free glue
run inside the worker thread; the GUI never calls it directly).

Order: a features function (tests, scripts) → a features file given for this photo
→ the ONNX embedding model → the engine's fallback features (only when the model is
missing or cannot load). Each step says in ``note`` what it did, for the status bar.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..core.cancel import CancelFn, check
from ..core.pipeline import Segmenter, SegmenterParams
from ..io.features_file import FeaturesFileError
from ..io.features_file import load_features_file as _load_features_file


class FeatureError(Exception):
    """No features can be had for this photo; the message says why."""


@dataclass
class Prepared:
    segmenter: Segmenter
    note: str                                   # e.g. "model: CPUExecutionProvider"
    provider: Optional[str] = None
    timings: dict[str, float] = field(default_factory=dict)


def load_features_file(path: str | Path) -> np.ndarray:
    try:
        return _load_features_file(path)
    except FeaturesFileError as err:
        raise FeatureError(str(err)) from None


class FeatureSource:
    """Builds a Segmenter with features for a photo. Used from one worker thread at a time."""

    def __init__(
        self,
        model_path: Optional[str] = None,
        features_path: Optional[str] = None,
        features_fn: Optional[Callable[[np.ndarray], np.ndarray]] = None,
        prefer_gpu: bool = True,
        segmenter_factory: Callable[..., Segmenter] = Segmenter,
        use_model: bool = True,
    ):
        self.model_path = model_path
        self.features_path = features_path
        self.features_fn = features_fn
        self.prefer_gpu = prefer_gpu
        self.segmenter_factory = segmenter_factory
        self.use_model = use_model
        self._model: Any = None
        self._model_error: Optional[str] = None
        self._lock = threading.Lock()

    def model(self) -> Any:
        """The embedding model (loaded once), or raise FeatureError saying why not."""
        with self._lock:
            if self._model is not None:
                return self._model
            if self._model_error is not None:
                raise FeatureError(self._model_error)
            try:
                from ..core.features import EmbeddingModel, ModelError, default_model_path
            except ImportError:
                self._model_error = "this build has no embedding model runtime"
                raise FeatureError(self._model_error) from None
            path = Path(self.model_path) if self.model_path else Path(default_model_path())
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

    def prepare(self, image: np.ndarray, params: SegmenterParams, cancel: CancelFn = None) -> Prepared:
        timings: dict[str, float] = {}
        if self.features_fn is not None:
            seg = self.segmenter_factory(params)
            seg.set_image(image, self.features_fn(image))
            return Prepared(seg, "features: given")
        if self.features_path is not None:
            feats = load_features_file(self.features_path)
            if feats.shape[:2] == image.shape[:2]:
                seg = self.segmenter_factory(params)
                seg.set_image(image, feats)
                return Prepared(seg, f"features: {Path(self.features_path).name}")
            # A features file belongs to one photo; other photos use the model.
        model_problem = "the embedding model is not used"
        if self.use_model:
            try:
                model = self.model()
                seg = self.segmenter_factory(params, embedding_model=model)
                seg.set_image(image)
                provider = getattr(model, "provider", None)
                return Prepared(seg, f"model: {provider or 'onnxruntime'}", provider=provider)
            except FeatureError as e:
                model_problem = str(e)
        check(cancel)
        try:
            from ..core.features import fallback_features  # type: ignore[attr-defined]
        except ImportError:
            raise FeatureError(f"{model_problem}; no fallback features in this build") from None
        t0 = time.perf_counter()
        feats = fallback_features(image)
        timings["fallback features"] = time.perf_counter() - t0
        seg = self.segmenter_factory(params)
        seg.set_image(image, feats)
        return Prepared(seg, f"fallback features ({model_problem})", timings=timings)
