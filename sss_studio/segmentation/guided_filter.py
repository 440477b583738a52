"""Guided filter (He et al.) with a colour guide, vectorised with OpenCV box filters.

Used twice: to smooth the embedding edge-aware before PCA (features.py) and
to bring layers computed at a working size back to full resolution.
The filter is linear in the filtered signal and maps constants to themselves,
so layers that sum to one still sum to one after it.

Everything works on planes (one contiguous 2-D array per channel): OpenCV's box filter,
resize and accumulate run on each plane without strided copies, and the 3×3 guide
covariance is inverted in closed form. ``guided_upsample`` applies the coefficients to
the full-resolution photo in bands of rows, so no full-size coefficient map exists.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from ..resize import resize

# Full-resolution rows per band in guided_upsample: the band's scratch planes
# (one coefficient plane, three guide planes) stay a few MB even at 12 MP.
BAND_ROWS = 64

_PAIRS = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]


def _box(x: np.ndarray, size: int) -> np.ndarray:
    """Mean over a size×size box, border replicated (as MATLAB's imguidedfilter)."""
    return cv2.boxFilter(x, -1, (size, size), normalize=True, borderType=cv2.BORDER_REPLICATE)


def _inverse_3x3(s: dict, eps: float) -> dict:
    """Entries (p, q), p ≤ q, of inv(Σ + εI) for symmetric per-pixel Σ given as planes.

    Closed form (cofactors / determinant) in float64, returned as float32 planes.
    """
    a00, a01, a02 = (s[0, 0] + eps), s[0, 1].astype(np.float64), s[0, 2].astype(np.float64)
    a11, a12, a22 = (s[1, 1] + eps), s[1, 2].astype(np.float64), (s[2, 2] + eps)
    a00, a11, a22 = (np.asarray(v, np.float64) for v in (a00, a11, a22))
    c00 = a11 * a22 - a12 * a12
    c01 = a02 * a12 - a01 * a22
    c02 = a01 * a12 - a02 * a11
    c11 = a00 * a22 - a02 * a02
    c12 = a01 * a02 - a00 * a12
    c22 = a00 * a11 - a01 * a01
    rdet = 1.0 / (a00 * c00 + a01 * c01 + a02 * c02)
    inv = {}
    for key, c in (((0, 0), c00), ((0, 1), c01), ((0, 2), c02), ((1, 1), c11), ((1, 2), c12), ((2, 2), c22)):
        c *= rdet
        inv[key] = c.astype(np.float32)
        inv[key[::-1]] = inv[key]
    return inv


def _planes(x: np.ndarray) -> list[np.ndarray]:
    """H×W×C → C contiguous float32 H×W planes (H×W → one plane)."""
    x = np.asarray(x, np.float32)
    if x.ndim == 2:
        return [np.ascontiguousarray(x)]
    return [np.ascontiguousarray(x[:, :, c]) for c in range(x.shape[2])]


def _coefficients(guide: np.ndarray, src: np.ndarray, size: int, eps: float):
    """Box-averaged coefficients as planes: A (C×3×h×w) and B (C×h×w), q = Σ_k A[c,k]·I_k + B[c]."""
    guide = np.asarray(guide, np.float32)
    if guide.ndim != 3 or guide.shape[2] != 3:
        raise ValueError(f"the guide must be an H×W×3 colour image, got {guide.shape}")
    I = _planes(guide)
    srcp = _planes(src)
    h, w = I[0].shape
    if srcp[0].shape != (h, w):
        raise ValueError(f"guide is {h}×{w} but the signal is {srcp[0].shape[0]}×{srcp[0].shape[1]}")
    mI = [_box(p, size) for p in I]
    # Covariance of the guide (6 unique entries per pixel), then inv(Σ + ε).
    cov = {(p, q): _box(I[p] * I[q], size) - mI[p] * mI[q] for p, q in _PAIRS}
    inv = _inverse_3x3(cov, eps)
    del cov
    C = len(srcp)
    A = np.empty((C, 3, h, w), np.float32)
    B = np.empty((C, h, w), np.float32)
    for c, p in enumerate(srcp):
        mp = _box(p, size)
        cip = [_box(I[k] * p, size) - mI[k] * mp for k in range(3)]  # cov(I_k, p)
        b = mp
        for k in range(3):
            # a = cov_Ip · inv(Σ+ε) (row vector); b = mean_p − a · mean_I
            ak = cip[0] * inv[0, k]
            ak += cip[1] * inv[1, k]
            ak += cip[2] * inv[2, k]
            b -= ak * mI[k]
            A[c, k] = _box(ak, size)
        B[c] = _box(b, size)
    return A, B


def guided_filter_coefficients(guide: np.ndarray, src: np.ndarray, size: int, eps: float):
    """Return the per-pixel linear coefficients (a, b) with q = a·guide + b, box-averaged.

    guide: H×W×3 float32; src: H×W×C float32. a: H×W×C×3, b: H×W×C.
    """
    A, B = _coefficients(guide, src, size, eps)
    return np.ascontiguousarray(A.transpose(2, 3, 0, 1)), np.ascontiguousarray(B.transpose(1, 2, 0))


def guided_filter(guide: np.ndarray, src: np.ndarray, size: int = 10, eps: float = 0.01) -> np.ndarray:
    """Edge-aware smoothing of ``src`` (H×W or H×W×C) guided by the RGB image ``guide``."""
    A, B = _coefficients(guide, src, size, eps)
    I = _planes(guide)
    for c in range(A.shape[0]):
        q = B[c]
        for k in range(3):
            cv2.accumulateProduct(A[c, k], I[k], q)
    return B[0] if src.ndim == 2 else np.ascontiguousarray(B.transpose(1, 2, 0))


def _source_rows(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows and weights of OpenCV's INTER_LINEAR resize from n_in to n_out rows (half-pixel
    centres, rows clamped at the borders): out[y] = (1−f)·in[i0] + f·in[i1]."""
    scale = 1.0 / (n_out / n_in)
    fy = ((np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    sy = np.floor(fy)
    f = fy - sy
    sy = sy.astype(np.int64)
    return np.clip(sy, 0, n_in - 1), np.clip(sy + 1, 0, n_in - 1), f.astype(np.float32)


def guided_upsample(
    guide_full: np.ndarray,
    src_small: np.ndarray,
    size: int = 8,
    eps: float = 1e-4,
    *,
    guide_small: Optional[np.ndarray] = None,
    out: Optional[np.ndarray] = None,
    channels_first: bool = False,
    band_rows: int = BAND_ROWS,
) -> np.ndarray:
    """Fast guided-filter upsampling: coefficients at the small size, applied at full size.

    ``guide_full`` is the full-resolution photo (H×W×3); ``src_small`` (h×w×C or h×w) was
    computed on the photo resized to h×w. Soft edges follow the full-resolution photo's
    edges. Returns H×W×C float32 (H×W for a 2-D ``src_small``), or C×H×W with
    ``channels_first`` (no strided writes: the cheaper layout for layer stacks).

    ``guide_small``: the photo already resized to h×w with INTER_AREA, if the caller has it.
    ``out``: a float32 array of the result's shape to write into.

    Equal (to float32 rounding) to resizing the coefficient maps a, b whole with
    cv2.INTER_LINEAR and forming a·I + b, but done ``band_rows`` rows at a time: each
    band's coefficient rows are blended vertically at the small width, resized
    horizontally by OpenCV plane by plane and multiply-added into the result, so memory
    beyond the result is a few full-width planes of one band.
    """
    H, W = guide_full.shape[:2]
    h, w = src_small.shape[:2]
    squeeze = src_small.ndim == 2
    if guide_small is None:
        guide_small = resize(guide_full, h, w)
    elif guide_small.shape[:2] != (h, w):
        raise ValueError(f"guide_small is {guide_small.shape[:2]}, expected {(h, w)}")
    A, B = _coefficients(guide_small, src_small, size, eps)
    C = A.shape[0]
    # Stack the small coefficient planes as C×4×h×w: (a_0, a_1, a_2, b) per channel.
    S = np.empty((C, 4, h, w), np.float32)
    S[:, :3] = A
    S[:, 3] = B
    del A, B

    shape = (H, W) if squeeze else ((C, H, W) if channels_first else (H, W, C))
    if out is None:
        out = np.empty(shape, np.float32)
    elif out.shape != shape or out.dtype != np.float32:
        raise ValueError(f"out must be float32 {shape}, got {out.dtype} {out.shape}")
    planar_out = squeeze or channels_first
    if planar_out and not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous")

    i0, i1, fy = _source_rows(H, h)
    band_rows = max(1, int(band_rows))
    nb_max = min(band_rows, H)
    tmp = np.empty((nb_max, W), np.float32)
    acc = None if planar_out else np.empty((nb_max, W), np.float32)
    for y0 in range(0, H, band_rows):
        y1 = min(H, y0 + band_rows)
        nb = y1 - y0
        f = fy[y0:y1, None]
        # Vertical blend of this band's coefficient rows at the small width (C×4×nb×w).
        lo, hi = int(i0[y0]), int(i1[y1 - 1])
        rows = S[:, :, lo:hi + 1]
        v = rows[:, :, i0[y0:y1] - lo]
        v *= 1.0 - f
        v += rows[:, :, i1[y0:y1] - lo] * f
        g = guide_full[y0:y1]
        if g.dtype != np.float32:
            g = g.astype(np.float32)
        gp = cv2.split(np.ascontiguousarray(g))
        t = tmp[:nb]
        for c in range(C):
            if squeeze:
                q = out[y0:y1]
            elif channels_first:
                q = out[c, y0:y1]
            else:
                q = acc[:nb]
            # Horizontal resize plane by plane (same weights as a whole-image resize).
            cv2.resize(v[c, 3], (W, nb), dst=q, interpolation=cv2.INTER_LINEAR)
            for k in range(3):
                cv2.resize(v[c, k], (W, nb), dst=t, interpolation=cv2.INTER_LINEAR)
                cv2.accumulateProduct(t, gp[k], q)
            if not planar_out:
                out[y0:y1, :, c] = q
    return out
