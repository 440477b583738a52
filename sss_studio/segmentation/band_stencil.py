"""The matting Laplacian's rows for a band of pixels, as a 25-point stencil per pixel.

Row i of Levin et al.'s matting Laplacian (3×3 windows) has non-zeros only at the 5×5
neighbours of i: L_ij = Σ_w [i = j] − (1 + (I_i − μ_w)ᵀ (Σ_w + ε/9·𝟙)⁻¹ (I_j − μ_w)) / 9,
summed over the windows w that hold both. ``band_stencil`` returns those 25 values for
each unknown pixel. The numba kernel gathers per pixel (no scatter, so no races between
threads); the numpy form scatters per window cell and is the fallback and the test's
reference. docs/solver.md ("The band's Laplacian") has the timings.
"""

from __future__ import annotations

import cv2
import numpy as np

from .affinity import OFFSETS, WINDOW   # stencil column o ↔ OFFSETS[o]

try:
    import numba

    @numba.njit(parallel=True, fastmath=False, cache=True)
    def _window_stats(img, centres, eps, mu, inv):  # pragma: no cover - compiled
        """mu[c], inv[c]: the mean and (Σ + ε/9·𝟙)⁻¹ of the 3×3 window centred at each
        flat index c in ``centres`` (float64: the inverse of a nearly flat window's
        covariance needs it)."""
        w = img.shape[1]
        for t in numba.prange(centres.shape[0]):
            c = centres[t]
            cy, cx = c // w, c % w
            m0 = m1 = m2 = 0.0
            for dy in range(-1, 2):
                for dx in range(-1, 2):
                    m0 += img[cy + dy, cx + dx, 0]
                    m1 += img[cy + dy, cx + dx, 1]
                    m2 += img[cy + dy, cx + dx, 2]
            m0 /= 9.0
            m1 /= 9.0
            m2 /= 9.0
            s00 = s01 = s02 = s11 = s12 = s22 = 0.0
            for dy in range(-1, 2):
                for dx in range(-1, 2):
                    a = img[cy + dy, cx + dx, 0] - m0
                    b = img[cy + dy, cx + dx, 1] - m1
                    d = img[cy + dy, cx + dx, 2] - m2
                    s00 += a * a
                    s01 += a * b
                    s02 += a * d
                    s11 += b * b
                    s12 += b * d
                    s22 += d * d
            r = eps / 9.0
            s00 = s00 / 9.0 + r
            s11 = s11 / 9.0 + r
            s22 = s22 / 9.0 + r
            s01 /= 9.0
            s02 /= 9.0
            s12 /= 9.0
            # Symmetric 3×3 inverse by cofactors.
            c00 = s11 * s22 - s12 * s12
            c01 = s02 * s12 - s01 * s22
            c02 = s01 * s12 - s02 * s11
            det = s00 * c00 + s01 * c01 + s02 * c02
            c11 = s00 * s22 - s02 * s02
            c12 = s01 * s02 - s00 * s12
            c22 = s00 * s11 - s01 * s01
            mu[c, 0], mu[c, 1], mu[c, 2] = m0, m1, m2
            inv[c, 0, 0], inv[c, 0, 1], inv[c, 0, 2] = c00 / det, c01 / det, c02 / det
            inv[c, 1, 0], inv[c, 1, 1], inv[c, 1, 2] = c01 / det, c11 / det, c12 / det
            inv[c, 2, 0], inv[c, 2, 1], inv[c, 2, 2] = c02 / det, c12 / det, c22 / det

    @numba.njit(parallel=True, fastmath=False, cache=True)
    def _gather_rows(img, inside, u, mu, inv, out):  # pragma: no cover - compiled
        """out[t, o]: L at (u[t], u[t] + OFFSETS[o]), from every window centred in
        ``inside`` (h×w bool) that holds pixel u[t]."""
        h, w = inside.shape
        for t in numba.prange(u.shape[0]):
            i = u[t]
            iy, ix = i // w, i % w
            for o in range(25):
                out[t, o] = 0.0
            for ay in range(-1, 2):          # i sits at cell (ay, ax) of the window centred at c
                for ax in range(-1, 2):
                    cy, cx = iy - ay, ix - ax
                    if cy < 0 or cy >= h or cx < 0 or cx >= w or not inside[cy, cx]:
                        continue
                    c = cy * w + cx
                    d0 = img[iy, ix, 0] - mu[c, 0]
                    d1 = img[iy, ix, 1] - mu[c, 1]
                    d2 = img[iy, ix, 2] - mu[c, 2]
                    g0 = d0 * inv[c, 0, 0] + d1 * inv[c, 1, 0] + d2 * inv[c, 2, 0]
                    g1 = d0 * inv[c, 0, 1] + d1 * inv[c, 1, 1] + d2 * inv[c, 2, 1]
                    g2 = d0 * inv[c, 0, 2] + d1 * inv[c, 1, 2] + d2 * inv[c, 2, 2]
                    for by in range(-1, 2):
                        for bx in range(-1, 2):
                            jy, jx = cy + by, cx + bx
                            e0 = img[jy, jx, 0] - mu[c, 0]
                            e1 = img[jy, jx, 1] - mu[c, 1]
                            e2 = img[jy, jx, 2] - mu[c, 2]
                            o = (by - ay + 2) * 5 + (bx - ax + 2)
                            out[t, o] -= (1.0 + g0 * e0 + g1 * e1 + g2 * e2) / 9.0
                    out[t, 12] += 1.0

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    HAVE_NUMBA = False


def window_centres(unknown: np.ndarray) -> np.ndarray:
    """H×W bool: the centres of the 3×3 windows that hold an unknown pixel (none on the
    region's one-pixel rim, where a window would leave the region)."""
    centres = cv2.dilate(unknown.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    centres[0, :] = centres[-1, :] = False
    centres[:, 0] = centres[:, -1] = False
    return centres


def band_stencil(image: np.ndarray, unknown: np.ndarray, eps: float,
                 use_numba: bool = HAVE_NUMBA) -> tuple[np.ndarray, np.ndarray]:
    """(u, data): the flat indices of the ``unknown`` pixels of ``image`` (h×w×3) and
    their Laplacian rows as n_u×25 float64, column o for the neighbour at OFFSETS[o]."""
    h, w = unknown.shape
    centres = window_centres(unknown)
    u = np.flatnonzero(unknown.ravel())
    if use_numba:
        img = np.ascontiguousarray(image, np.float64)
        mu = np.empty((h * w, 3))
        inv = np.empty((h * w, 3, 3))
        _window_stats(img, np.flatnonzero(centres.ravel()), float(eps), mu, inv)
        out = np.empty((len(u), 25))
        _gather_rows(img, centres, u, mu, inv, out)
        return u, out
    c = np.flatnonzero(centres)
    win = np.array([dy * w + dx for dy, dx in WINDOW])
    pix = np.asarray(image, np.float64).reshape(-1, 3)[c[:, None] + win[None, :]]   # nc×9×3
    d = pix - pix.mean(axis=1, keepdims=True)
    cov = np.matmul(d.transpose(0, 2, 1), d) / 9.0 + (eps / 9.0) * np.eye(3)
    val = np.matmul(np.matmul(d, np.linalg.inv(cov)), d.transpose(0, 2, 1))        # nc×9×9
    # Window values into a 25-offset stencil per pixel: for window cell a, the row pixel
    # c + win[a] is distinct for every centre c, so each += has no repeated index.
    stencil = np.zeros((25, h * w))
    for a, (ay, ax) in enumerate(WINDOW):
        rows = c + win[a]
        for b, (by, bx) in enumerate(WINDOW):
            stencil[OFFSETS.index((by - ay, bx - ax)), rows] -= (1.0 + val[:, a, b]) / 9.0
            if a == b:
                stencil[12, rows] += 1.0
    return u, stencil[:, u].T
