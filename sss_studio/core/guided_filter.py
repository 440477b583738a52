"""Guided filter (He et al.) with a colour guide, vectorised with OpenCV box filters.

Used twice: to smooth the embedding edge-aware before PCA (ALGORITHM.md §1) and
to bring layers computed at a working size back to full resolution.
The filter is linear in the filtered signal and maps constants to themselves,
so layers that sum to one still sum to one after it.
"""

from __future__ import annotations

import cv2
import numpy as np


def _box(x: np.ndarray, size: int) -> np.ndarray:
    """Mean over a size×size box, border replicated (as MATLAB's imguidedfilter)."""
    return cv2.boxFilter(x, -1, (size, size), normalize=True, borderType=cv2.BORDER_REPLICATE)


def _box_stack(x: np.ndarray, size: int) -> np.ndarray:
    """Box mean of an H×W×C stack; cv2 handles at most 4 channels at a time when not contiguous-friendly."""
    if x.ndim == 2:
        return _box(x, size)
    out = np.empty_like(x)
    for c0 in range(0, x.shape[2], 4):
        c1 = min(c0 + 4, x.shape[2])
        out[:, :, c0:c1] = _box(np.ascontiguousarray(x[:, :, c0:c1]), size).reshape(
            x.shape[0], x.shape[1], c1 - c0
        )
    return out


def guided_filter_coefficients(guide: np.ndarray, src: np.ndarray, size: int, eps: float):
    """Return the per-pixel linear coefficients (a, b) with q = a·guide + b, box-averaged.

    guide: H×W×3 float32; src: H×W×C float32. a: H×W×C×3, b: H×W×C.
    """
    guide = np.ascontiguousarray(guide, dtype=np.float32)
    src = np.ascontiguousarray(src, dtype=np.float32)
    squeeze = src.ndim == 2
    if squeeze:
        src = src[:, :, None]
    h, w, c = src.shape
    mean_i = _box_stack(guide, size)  # H×W×3
    # Covariance of the guide, 3×3 per pixel (6 unique entries), plus the ε regulariser.
    ii = np.empty((h, w, 6), np.float32)
    pairs = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    for n, (p, q) in enumerate(pairs):
        ii[:, :, n] = guide[:, :, p] * guide[:, :, q]
    ii = _box_stack(ii, size)
    cov = np.empty((h, w, 3, 3), np.float64)
    for n, (p, q) in enumerate(pairs):
        v = ii[:, :, n] - mean_i[:, :, p] * mean_i[:, :, q]
        cov[:, :, p, q] = v
        cov[:, :, q, p] = v
    cov += eps * np.eye(3)
    inv = np.linalg.inv(cov).astype(np.float32)  # H×W×3×3, batched
    mean_p = _box_stack(src, size)  # H×W×C
    a = np.empty((h, w, c, 3), np.float32)
    for ch in range(3):
        ip = _box_stack(guide[:, :, ch : ch + 1] * src, size)  # H×W×C
        a[:, :, :, ch] = ip - mean_i[:, :, ch : ch + 1] * mean_p
    # a = cov_Ip · inv(Σ+ε)  (row vector per channel)
    a = np.einsum("hwcj,hwjk->hwck", a, inv, optimize=True)
    b = mean_p - np.einsum("hwck,hwk->hwc", a, mean_i, optimize=True)
    a = _box_stack(a.reshape(h, w, c * 3), size).reshape(h, w, c, 3)
    b = _box_stack(b, size)
    return a, b


def guided_filter(guide: np.ndarray, src: np.ndarray, size: int = 10, eps: float = 0.01) -> np.ndarray:
    """Edge-aware smoothing of ``src`` (H×W or H×W×C) guided by the RGB image ``guide``."""
    squeeze = src.ndim == 2
    a, b = guided_filter_coefficients(guide, src, size, eps)
    q = np.einsum("hwck,hwk->hwc", a, np.asarray(guide, np.float32), optimize=True) + b
    return q[:, :, 0] if squeeze else q


def guided_upsample(
    guide_full: np.ndarray, src_small: np.ndarray, size: int = 8, eps: float = 1e-4
) -> np.ndarray:
    """Fast guided-filter upsampling: coefficients at the small size, applied at full size.

    ``guide_full`` is the full-resolution photo; ``src_small`` (h×w×C) was computed on
    the photo resized to h×w. Soft edges follow the full-resolution photo's edges.
    """
    H, W = guide_full.shape[:2]
    h, w = src_small.shape[:2]
    guide_small = cv2.resize(guide_full, (w, h), interpolation=cv2.INTER_AREA)
    squeeze = src_small.ndim == 2
    a, b = guided_filter_coefficients(guide_small, src_small, size, eps)
    c = a.shape[2]
    a_up = _resize_stack(a.reshape(h, w, c * 3), W, H).reshape(H, W, c, 3)
    b_up = _resize_stack(b, W, H)
    q = np.einsum("hwck,hwk->hwc", a_up, np.asarray(guide_full, np.float32), optimize=True) + b_up
    return q[:, :, 0] if squeeze else q


def _resize_stack(x: np.ndarray, width: int, height: int) -> np.ndarray:
    out = np.empty((height, width, x.shape[2]), np.float32)
    for c0 in range(0, x.shape[2], 4):
        c1 = min(c0 + 4, x.shape[2])
        r = cv2.resize(np.ascontiguousarray(x[:, :, c0:c1]), (width, height), interpolation=cv2.INTER_LINEAR)
        out[:, :, c0:c1] = r.reshape(height, width, c1 - c0)
    return out
