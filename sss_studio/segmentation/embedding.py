"""The ONNX embedding runtime (models/MODEL_CARD.md describes the model contract).

Input ``image``: float32 N×3×H×W RGB in [0, 1], any H×W. Output ``embedding``: N×D×H×W,
unit norm per pixel; optional ``class_probs`` N×C×h×w at a coarser stride, with the
class names as JSON in the metadata key ``class_names``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import numpy as np

from ..bundled import bundled_file
from ..resize import AREA, LINEAR, resize
from .cancel import CancelFn, Cancelled, check
from .params import EmbeddingParams

log = logging.getLogger(__name__)

MODEL_ENV = "SSS_STUDIO_MODEL"
MODEL_FILE = "sss_embed.onnx"


def default_model_path() -> Path:
    """$SSS_STUDIO_MODEL, else the bundled model."""
    env = os.environ.get(MODEL_ENV)
    if env:
        return Path(env).expanduser()
    return bundled_file("models", MODEL_FILE)


def installed_runtimes() -> list[str]:
    """Which onnxruntime distributions are installed (they share the one module)."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("onnxruntime", "onnxruntime-gpu"):
        try:
            version(name)
            found.append(name)
        except PackageNotFoundError:
            pass
    return found


def cuda_note(runtimes: list[str], available: list[str], got: str, prefer_gpu: bool) -> str | None:
    """One plain line when CUDA was wanted (the GPU runtime is installed and not turned
    off) but the model runs elsewhere, saying why; None when there is nothing to say."""
    if not prefer_gpu or "onnxruntime-gpu" not in runtimes or got == "CUDAExecutionProvider":
        return None
    if "onnxruntime" in runtimes:
        return ("the model runs on the CPU: onnxruntime and onnxruntime-gpu are both installed and the CPU "
                "one hides CUDA (pip uninstall onnxruntime onnxruntime-gpu, then pip install 'sss_studio[gpu]')")
    if "CUDAExecutionProvider" not in available:
        return "the model runs on the CPU: this onnxruntime-gpu build offers no CUDA provider on this machine"
    return ("the model runs on the CPU: CUDA did not start (no usable NVIDIA driver, or the CUDA 12 / cuDNN 9 "
            "libraries are missing: pip install 'sss_studio[gpu]' brings them)")


class ModelError(Exception):
    """The embedding model is missing, corrupt, or does not follow the contract."""


def _unit(f: np.ndarray) -> np.ndarray:
    return f / np.maximum(np.linalg.norm(f, axis=2, keepdims=True), 1e-6)


class EmbeddingModel:
    """An onnxruntime session on the embedding model, preferring CUDA, else CPU.

    ``provider`` is what the session really got (onnxruntime-gpu lists CUDA as
    available even where its libraries fail to load, then silently uses CPU).
    """

    def __init__(self, path=None, *, prefer_gpu: bool = True, params: EmbeddingParams = EmbeddingParams()):
        self.path = Path(path) if path is not None else default_model_path()
        self.params = params
        if not self.path.is_file():
            raise ModelError(f"embedding model not found: {self.path}")
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ModelError("onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)") from exc
        # onnxruntime's own log is not for users; a CUDA fall-back is said below, in one line.
        ort.set_default_logger_severity(4)
        opts = ort.SessionOptions()
        opts.log_severity_level = 4
        if params.threads > 0:
            opts.intra_op_num_threads = params.threads
        providers = ["CPUExecutionProvider"]
        available = list(ort.get_available_providers())
        if prefer_gpu and "CUDAExecutionProvider" in available:
            providers.insert(0, "CUDAExecutionProvider")
            preload = getattr(ort, "preload_dlls", None)   # onnxruntime ≥ 1.21: CUDA/cuDNN from pip's nvidia-* wheels
            if preload is not None:
                try:
                    preload()
                except Exception:  # the session below says whether CUDA works
                    pass
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
        runtimes = installed_runtimes()
        self.note = cuda_note(runtimes, available, self.provider, prefer_gpu)
        if self.note:
            log.warning("%s", self.note)
        elif len(runtimes) > 1:
            log.warning("onnxruntime and onnxruntime-gpu are both installed; keep one of them")
        log.info("embedding model %s on %s", self.path.name, self.provider)
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
            self.class_names: list[str] = list(json.loads(meta.get("class_names", "[]")))
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

    def _run(self, image: np.ndarray, outputs: list[str], cancel: CancelFn) -> list[np.ndarray]:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an H×W×3 RGB image, got shape {image.shape}")
        check(cancel)
        h, w = image.shape[:2]
        wh, ww = self._working_size(h, w)
        x = np.asarray(image, np.float32)
        if (wh, ww) != (h, w):
            x = resize(x, wh, ww, AREA if wh < h else LINEAR)
        x = np.ascontiguousarray(np.clip(x, 0.0, 1.0).transpose(2, 0, 1)[None])
        run_options = self._ort.RunOptions()
        done = threading.Event()
        watcher = None
        if cancel is not None:
            # onnxruntime can abandon a run from another thread: poll the cancel callback.
            def watch():
                while not done.wait(0.05):
                    if cancel():
                        run_options.terminate = True
                        return
            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
        try:
            out = self._session.run(outputs, {self._input: x}, run_options)
        except Exception:
            if cancel is not None and cancel():
                raise Cancelled("cancelled") from None
            raise
        finally:
            done.set()
            if watcher is not None:
                watcher.join()
        check(cancel)
        return [o[0].transpose(1, 2, 0) for o in out]

    def embed(self, image: np.ndarray, cancel: CancelFn = None) -> np.ndarray:
        """H×W×3 float RGB in [0,1] → H×W×D float32 unit-norm embedding at image resolution."""
        h, w = image.shape[:2]
        return self._embedding_at(self._run(image, ["embedding"], cancel)[0], h, w)

    def _embedding_at(self, f: np.ndarray, h: int, w: int) -> np.ndarray:
        if not np.isfinite(f).all():
            raise ModelError(f"{self.path.name} gave an embedding with NaN or infinite values: the model is broken")
        if f.shape[:2] != (h, w):
            f = _unit(resize(np.ascontiguousarray(f, dtype=np.float32), h, w, AREA if h < f.shape[0] else LINEAR))
        return np.ascontiguousarray(f, dtype=np.float32)

    def _probs_at(self, p: np.ndarray, h: int, w: int) -> np.ndarray:
        if not np.isfinite(p).all():
            raise ModelError(f"{self.path.name} gave class probabilities with NaN or infinite values")
        return np.ascontiguousarray(resize(np.ascontiguousarray(p, dtype=np.float32), h, w, LINEAR))

    def embed_and_classify(self, image: np.ndarray, size: tuple[int, int] | None = None,
                           cancel: CancelFn = None) -> tuple[np.ndarray, np.ndarray | None]:
        """One pass of the network for both outputs: the embedding (as ``embed``) and the
        class probabilities (as ``classify``; None without a class head), both brought to
        ``size`` (h, w; default the image's; a smaller size averages the embedding)."""
        h, w = size if size is not None else image.shape[:2]
        out = self._run(image, ["embedding", "class_probs"] if self.has_classes else ["embedding"], cancel)
        return self._embedding_at(out[0], h, w), (self._probs_at(out[1], h, w) if len(out) > 1 else None)

    def classify(self, image: np.ndarray, cancel: CancelFn = None) -> np.ndarray:
        """H×W×C class probabilities at image resolution (see ``class_names``)."""
        if not self._has_classes:
            raise ModelError(f"{self.path.name} has no 'class_probs' output")
        h, w = image.shape[:2]
        return self._probs_at(self._run(image, ["class_probs"], cancel)[0], h, w)
