"""Semantic features: preprocessing of an embedding into the 3-D features the
affinities use (ALGORITHM.md §1), and (below) the ONNX embedding runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .guided_filter import guided_filter


@dataclass(frozen=True)
class FeatureParams:
    clamp: float = 5.0          # reference clamps its embedding to [-5, 5]
    filter_size: int = 10       # guided filter box, pixels
    filter_eps: float = 0.01    # guided filter ε for a guide in [0, 1]
    pre_pca_dims: int = 32      # see preprocess_features


def pca_project(features: np.ndarray, dims: int) -> np.ndarray:
    """Project N×D (or H×W×D) features on their top principal axes (centred)."""
    shape = features.shape
    f = features.reshape(-1, shape[-1]).astype(np.float64)
    f = f - f.mean(axis=0)
    cov = f.T @ f
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1][:dims]
    proj = vecs[:, order]
    # Fix the sign of each axis so results repeat exactly across runs/platforms.
    signs = np.sign(proj[np.argmax(np.abs(proj), axis=0), np.arange(proj.shape[1])])
    signs[signs == 0] = 1
    out = (f @ (proj * signs)).astype(np.float32)
    return out.reshape(*shape[:-1], out.shape[-1])


def minmax_channels(features: np.ndarray) -> np.ndarray:
    f = features.astype(np.float32)
    lo = f.reshape(-1, f.shape[-1]).min(axis=0)
    hi = f.reshape(-1, f.shape[-1]).max(axis=0)
    return (f - lo) / np.maximum(hi - lo, 1e-12)


def preprocess_features(
    image: np.ndarray, embedding: np.ndarray, params: FeatureParams = FeatureParams()
) -> np.ndarray:
    """Raw H×W×D embedding → H×W×3 features in [0,1]: clamp, guided filter, PCA-3, min-max.

    The guided filter is linear in the filtered signal, so filtering the embedding's
    projection on its top ``pre_pca_dims`` principal axes equals projecting the
    filtered embedding on those axes: we filter 32 channels instead of up to 512,
    and the final PCA-3 comes from that subspace (which holds nearly all variance).
    """
    if embedding.ndim != 3 or embedding.shape[:2] != image.shape[:2]:
        raise ValueError(
            f"features are {embedding.shape}, photo is {image.shape[:2]}: sizes must match"
        )
    f = np.clip(embedding.astype(np.float32), -params.clamp, params.clamp)
    if f.shape[2] > params.pre_pca_dims:
        f = pca_project(f, params.pre_pca_dims)
    f = guided_filter(image, f, params.filter_size, params.filter_eps)
    if f.shape[2] > 3:
        f = pca_project(f, 3)
    return minmax_channels(f)


def check_feature_size(features: np.ndarray, image: np.ndarray) -> None:
    """Raise ValueError (one line a person can act on) unless features and photo are the same size."""
    if features.shape[:2] != image.shape[:2]:
        raise ValueError(
            f"features are {features.shape[1]}×{features.shape[0]} but the photo is "
            f"{image.shape[1]}×{image.shape[0]}: sizes must match"
        )


def prepare_given_features(image: np.ndarray, features: np.ndarray, params: FeatureParams = FeatureParams()) -> np.ndarray:
    """Features supplied by the user: H×W×3 are taken as already reduced (the reference's
    sample data), anything with D > 3 gets the full preprocessing."""
    if features.ndim == 2:
        features = features[:, :, None]
    check_feature_size(features, image)
    if features.shape[2] <= 3:
        return minmax_channels(features)
    return preprocess_features(image, features, params)


# ---------------------------------------------------------------------------
# ONNX embedding runtime (models/MODEL_CARD.md describes the model contract):
# input ``image`` float32 N×3×H×W RGB in [0,1], any H×W; output ``embedding``
# N×D×H×W (unit norm per pixel); optional ``class_probs`` N×C×h×w at a coarser
# stride, class names as JSON in the metadata key ``class_names``.
# ---------------------------------------------------------------------------

import json as _json
import os as _os
import pathlib as _pathlib
import sys as _sys
import threading as _threading
from typing import Callable as _Callable, Optional as _Optional

import cv2 as _cv2

from . import cancel as _cancel

MODEL_ENV = "SSS_STUDIO_MODEL"
MODEL_FILE = "sss_embed.onnx"


class ModelError(Exception):
    """The embedding model is missing, corrupt, or does not follow the contract."""


def default_model_path() -> _pathlib.Path:
    """$SSS_STUDIO_MODEL, else the bundled model (next to the frozen app, or in the repo)."""
    env = _os.environ.get(MODEL_ENV)
    if env:
        return _pathlib.Path(env).expanduser()
    frozen = getattr(_sys, "_MEIPASS", None)
    if frozen:
        candidate = _pathlib.Path(frozen) / "models" / MODEL_FILE
        if candidate.exists():
            return candidate
    return _pathlib.Path(__file__).resolve().parents[2] / "models" / MODEL_FILE


def _resize_channels(a: np.ndarray, w: int, h: int) -> np.ndarray:
    """Bilinear resize of an h×w×C float map (OpenCV caps channels per call: chunk)."""
    if a.shape[2] <= 128:
        return _cv2.resize(a, (w, h), interpolation=_cv2.INTER_LINEAR).reshape(h, w, -1)
    return np.concatenate([_resize_channels(np.ascontiguousarray(a[:, :, i:i + 128]), w, h)
                           for i in range(0, a.shape[2], 128)], axis=2)


def _unit(f: np.ndarray) -> np.ndarray:
    return f / np.maximum(np.linalg.norm(f, axis=2, keepdims=True), 1e-6)


@dataclass(frozen=True)
class EmbeddingParams:
    max_side: int = 512   # the model was trained on photos of about 270–540 px: larger ones are
                          # embedded at this size and upsampled (also keeps CPU latency bounded)
    min_side: int = 32    # tiny inputs are upscaled so the stride-16 encoder has a few cells
    threads: int = 0      # onnxruntime intra-op threads; 0 = its default (all cores)


class EmbeddingModel:
    """An onnxruntime session on the embedding model, preferring CUDA, else CPU.

    ``provider`` is what the session really got (onnxruntime-gpu lists CUDA as
    available even where its libraries fail to load, then silently uses CPU).
    """

    def __init__(self, path=None, *, prefer_gpu: bool = True, params: EmbeddingParams = EmbeddingParams()):
        self.path = _pathlib.Path(path) if path is not None else default_model_path()
        self.params = params
        if not self.path.is_file():
            raise ModelError(f"embedding model not found: {self.path}")
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ModelError("onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)") from exc
        ort.set_default_logger_severity(3)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if params.threads > 0:
            opts.intra_op_num_threads = params.threads
        providers = ["CPUExecutionProvider"]
        if prefer_gpu and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            try:
                self._session = ort.InferenceSession(str(self.path), opts, providers=providers)
            except Exception:
                if len(providers) == 1:
                    raise
                self._session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path.name} is not a loadable ONNX model ({first[:200]})") from None
        self._ort = ort
        self.provider: str = self._session.get_providers()[0]
        self._validate()

    def _validate(self) -> None:
        name = self.path.name
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelError(f"{name}: expected one N×3×H×W image input, found "
                             f"{[(i.name, i.shape) for i in inputs]}")
        if inputs[0].shape[1] not in (3, "3") and not isinstance(inputs[0].shape[1], str):
            raise ModelError(f"{name}: the image input must have 3 channels (RGB), not {inputs[0].shape[1]}")
        if inputs[0].type != "tensor(float)":
            raise ModelError(f"{name}: the image input must be float32, not {inputs[0].type}")
        self._input = inputs[0].name
        outputs = {o.name: o for o in self._session.get_outputs()}
        if "embedding" not in outputs or len(outputs["embedding"].shape) != 4:
            raise ModelError(f"{name}: no 4-D 'embedding' output (outputs: {sorted(outputs)}); "
                             "not an sss_studio embedding model")
        meta = self._session.get_modelmeta().custom_metadata_map
        dim = outputs["embedding"].shape[1]
        if not isinstance(dim, int):
            try:
                dim = int(meta.get("embedding_dim", ""))
            except ValueError:
                raise ModelError(f"{name}: embedding size unknown (no static channel count, "
                                 "no 'embedding_dim' metadata)") from None
        self.embedding_dim: int = int(dim)
        self._has_classes = "class_probs" in outputs
        try:
            self.class_names: list[str] = list(_json.loads(meta.get("class_names", "[]")))
        except ValueError:
            raise ModelError(f"{name}: metadata 'class_names' is not a JSON list") from None

    @property
    def has_classes(self) -> bool:
        """Whether the model has a class head with named classes (layer names)."""
        return self._has_classes and len(self.class_names) > 0

    # -- running -------------------------------------------------------------------
    def _working_size(self, h: int, w: int) -> tuple[int, int]:
        s = 1.0
        if max(h, w) > self.params.max_side:
            s = self.params.max_side / max(h, w)
        if min(h, w) * s < self.params.min_side:
            s = self.params.min_side / min(h, w)
        return max(1, int(round(h * s))), max(1, int(round(w * s)))

    def _run(self, image: np.ndarray, output: str, cancel: _Optional[_Callable[[], bool]]) -> np.ndarray:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an H×W×3 RGB image, got shape {image.shape}")
        _cancel.check(cancel)
        h, w = image.shape[:2]
        wh, ww = self._working_size(h, w)
        x = np.asarray(image, np.float32)
        if (wh, ww) != (h, w):
            interp = _cv2.INTER_AREA if wh < h else _cv2.INTER_LINEAR
            x = _cv2.resize(x, (ww, wh), interpolation=interp)
        x = np.ascontiguousarray(np.clip(x, 0.0, 1.0).transpose(2, 0, 1)[None])
        run_options = self._ort.RunOptions()
        done = _threading.Event()
        watcher = None
        if cancel is not None:
            # onnxruntime can abandon a run from another thread: poll the cancel callback.
            def watch():
                while not done.wait(0.05):
                    if cancel():
                        run_options.terminate = True
                        return
            watcher = _threading.Thread(target=watch, daemon=True)
            watcher.start()
        try:
            out = self._session.run([output], {self._input: x}, run_options)[0]
        except Exception:
            if cancel is not None and cancel():
                raise _cancel.Cancelled("cancelled") from None
            raise
        finally:
            done.set()
            if watcher is not None:
                watcher.join()
        _cancel.check(cancel)
        return out[0].transpose(1, 2, 0)

    def embed(self, image: np.ndarray, cancel: _Optional[_Callable[[], bool]] = None) -> np.ndarray:
        """H×W×3 float RGB in [0,1] → H×W×D float32 unit-norm embedding at image resolution."""
        h, w = image.shape[:2]
        f = self._run(image, "embedding", cancel)
        if f.shape[:2] != (h, w):
            f = _unit(_resize_channels(np.ascontiguousarray(f, dtype=np.float32), w, h))
        return np.ascontiguousarray(f, dtype=np.float32)

    def classify(self, image: np.ndarray, cancel: _Optional[_Callable[[], bool]] = None) -> np.ndarray:
        """H×W×C class probabilities at image resolution (see ``class_names``)."""
        if not self._has_classes:
            raise ModelError(f"{self.path.name} has no 'class_probs' output")
        h, w = image.shape[:2]
        p = self._run(image, "class_probs", cancel)
        return np.ascontiguousarray(_resize_channels(np.ascontiguousarray(p, dtype=np.float32), w, h))
