"""Shared helpers for the benchmarks: photos, features, thread control, quality figures.

Features: until the studio's own embedding model exists, the benchmarks use the two
DeepLab teachers (2×256-D, L2-normalised per pixel, concatenated)
when their ONNX conversions are in ``.cache/teachers``; otherwise a classic
descriptor (Lab colour + position + local colour statistics at three scales), so the
scripts always run. ``features_kind`` says which one a run used.
"""

from __future__ import annotations

import os
import pathlib
import platform
import time
from typing import Callable

# Single-threaded BLAS before numpy loads: two OpenBLAS copies (numpy's and scipy's)
# both threaded on a shared 2-core machine slow the solves 3–50× (docs/solver.md).
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
for _v in THREAD_VARS:
    os.environ.setdefault(_v, "1")

from sss_studio import _threads_env  # noqa: E402

_threads_env.apply()  # before numpy, as the command does: idle BLAS/OpenMP threads sleep
import cv2  # noqa: E402
import numpy as np  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "bench_features"
TEACHERS = REPO / ".cache" / "teachers"


def limit_threads(n: int = 1):
    """Cap every BLAS/OpenMP pool (threadpoolctl if installed; env vars above otherwise)."""
    try:
        from threadpoolctl import threadpool_limits
        return threadpool_limits(n)
    except ImportError:  # pragma: no cover
        return None


def sample_photo(name: str) -> np.ndarray:
    """RGB float32 in [0,1]: resources/samples/<name>.png if the lead put it there,
    else scikit-image's sample of that name, else a path."""
    p = REPO / "resources" / "samples" / f"{name}.png"
    if p.exists():
        img = cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    elif os.path.exists(name):
        img = cv2.cvtColor(cv2.imread(name, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    else:
        from skimage import data
        img = getattr(data, name)()
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return (img[:, :, :3].astype(np.float32) / 255.0).copy()


def resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    interp = cv2.INTER_AREA if w * h < img.shape[0] * img.shape[1] else cv2.INTER_CUBIC
    return np.clip(cv2.resize(img, (w, h), interpolation=interp), 0, 1).astype(np.float32)


def teacher_outputs(img: np.ndarray) -> dict[str, np.ndarray]:
    """The two teachers' raw 256-D features of an RGB [0,1] photo (stride 4 and 8)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    x = (img * 255.0).astype(np.float32).transpose(2, 0, 1)[None]
    return {name: np.ascontiguousarray(ort.InferenceSession(str(TEACHERS / f"{name}.onnx"), so,
                                                            providers=["CPUExecutionProvider"])
                                       .run(["features"], {"image": x})[0][0].transpose(1, 2, 0))
            for name in ("ade20k", "pascal")}


def teacher_features_at(outputs: dict[str, np.ndarray], h: int, w: int) -> np.ndarray:
    """h×w×512: each teacher's features L2-normalised, upsampled, normalised again, concatenated."""
    from sss_studio.resize import LINEAR, resize

    def unit(f):
        return f / np.maximum(np.linalg.norm(f, axis=2, keepdims=True), 1e-6)

    return np.concatenate([unit(resize(unit(outputs[n].astype(np.float32)), h, w, LINEAR))
                           for n in ("ade20k", "pascal")], axis=2).astype(np.float32)


def _teacher_features(img: np.ndarray) -> np.ndarray:
    return teacher_features_at(teacher_outputs(img), *img.shape[:2])


def _classic_features(img: np.ndarray) -> np.ndarray:
    """Lab colour, position and box-filtered colour statistics at 3 scales (D = 23)."""
    h, w = img.shape[:2]
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB) / np.array([100.0, 128.0, 128.0], np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    chans = [lab, (yy / max(h, w))[:, :, None], (xx / max(h, w))[:, :, None]]
    for s in (9, 25, 61):
        m = cv2.blur(lab, (s, s))
        sd = np.sqrt(np.maximum(cv2.blur(lab * lab, (s, s)) - m * m, 0))
        chans += [m, sd]
    return np.concatenate(chans, axis=2).astype(np.float32)


def photo_features(img: np.ndarray, key: str) -> tuple[np.ndarray, str]:
    """Per-pixel embedding of ``img`` (cached by ``key`` and size) and which kind it is."""
    kind = "teachers" if (TEACHERS / "ade20k.onnx").exists() and (TEACHERS / "pascal.onnx").exists() else "classic"
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{key}_{img.shape[1]}x{img.shape[0]}_{kind}.npy"
    if path.exists():
        return np.load(path), kind
    f = _teacher_features(img) if kind == "teachers" else _classic_features(img)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")   # written whole, then renamed: parallel runs
    np.save(tmp, f.astype(np.float16))                   # never load a half-written file
    os.replace(tmp, path)
    return f.astype(np.float16), kind


def match_layers(a: np.ndarray, b: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Hungarian-match layers of b (K×H×W) to a by IoU of hard argmax; return
    (mean matched IoU, mean |Δα| over pixels and layers, permutation of b)."""
    ka, kb = a.shape[0], b.shape[0]
    la, lb = a.argmax(0).ravel(), b.argmax(0).ravel()
    inter = np.zeros((ka, kb))
    np.add.at(inter, (la, lb), 1)
    sa, sb = np.bincount(la, minlength=ka), np.bincount(lb, minlength=kb)
    union = sa[:, None] + sb[None, :] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    ri, ci = linear_sum_assignment(-iou)
    perm = np.full(ka, -1)
    perm[ri] = ci
    # IoU of the hard argmax after relabelling: share of pixels whose label agrees, per layer IoU.
    matched_iou = float(np.mean(iou[ri, ci]))
    bb = np.zeros_like(a)
    bb[ri] = b[ci]
    dalpha = float(np.mean(np.abs(a - bb)))
    return matched_iou, dalpha, perm


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MB)."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"


def median_time(fn: Callable[[], object], repeat: int = 3) -> tuple[float, object]:
    ts, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), out


def write_section(path: pathlib.Path, name: str, body: str) -> None:
    """Replace (or append) the section between markers ``<!-- name -->`` in RESULTS.md."""
    start, end = f"<!-- {name} start -->", f"<!-- {name} end -->"
    text = path.read_text() if path.exists() else "# Benchmark results\n\nWritten by the scripts in this folder; each owns its section.\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        pre, rest = text.split(start, 1)
        _, post = rest.split(end, 1)
        text = pre + block + post
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
