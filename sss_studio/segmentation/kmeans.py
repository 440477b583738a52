"""Seeded k-means (k-means++ start, Lloyd iterations), vectorised for N×d data with small d."""

from __future__ import annotations

import numpy as np

try:
    import numba

    @numba.njit(parallel=True, fastmath=False, cache=True)
    def _nearest_kernel(x, c, labels, dist):  # pragma: no cover - compiled
        n, d = x.shape
        for i in numba.prange(n):
            best, arg = np.inf, 0
            for j in range(c.shape[0]):
                s = 0.0
                for t in range(d):
                    diff = x[i, t] - c[j, t]
                    s += diff * diff
                if s < best:
                    best, arg = s, j
            labels[i], dist[i] = arg, best

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    HAVE_NUMBA = False


def _nearest(x: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of and squared distance to the nearest centre, per row. The numba kernel
    streams the rows once; the numpy form builds an N×k matrix per call, which costs
    40 ms for 60k rows × 40 centres here, mostly in page faults (k-means ran 100 of them)."""
    if HAVE_NUMBA:
        labels = np.empty(len(x), np.int64)
        dist = np.empty(len(x), np.float64)
        _nearest_kernel(np.ascontiguousarray(x, np.float64), np.ascontiguousarray(c, np.float64), labels, dist)
        return labels, dist
    d = _sq_dist(x, c)
    labels = np.argmin(d, axis=1)
    return labels, d[np.arange(len(x)), labels]


def _sq_dist(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.maximum((x * x).sum(1)[:, None] - 2.0 * x @ c.T + (c * c).sum(1)[None, :], 0.0)


def _plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centres = [x[rng.integers(len(x))]]
    d = _sq_dist(x, centres[0][None])[:, 0]
    for _ in range(1, k):
        total = d.sum()
        idx = rng.choice(len(x), p=d / total) if total > 0 else rng.integers(len(x))
        centres.append(x[idx])
        d = np.minimum(d, _sq_dist(x, x[idx][None])[:, 0])
    return np.array(centres)


def kmeans(
    data: np.ndarray,
    k: int,
    seed: int = 0,
    n_init: int = 1,
    iterations: int = 100,
    fit_sample: int = 60_000,
    init: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (labels for every row of ``data``, centres). Deterministic for a given seed.

    Centres are fitted on at most ``fit_sample`` rows (a seeded subsample: the clusters of
    a few hundred thousand pixels in 3-D are well estimated from far fewer), then every
    row is assigned. ``n_init`` restarts keep the lowest inertia; ``init`` (k×d centres)
    replaces them with one run of Lloyd from those centres.
    """
    x = np.asarray(data, np.float64)
    rng = np.random.default_rng(seed)
    k = int(min(k, len(x)))
    fit = x if len(x) <= fit_sample else x[rng.choice(len(x), fit_sample, replace=False)]
    best, best_inertia = None, np.inf
    for _ in range(1 if init is not None else max(1, n_init)):
        c = np.array(init, np.float64) if init is not None else _plus_plus(fit, k, rng)
        k = len(c)
        for _ in range(iterations):
            lab, _ = _nearest(fit, c)
            counts = np.bincount(lab, minlength=k)
            sums = np.stack([np.bincount(lab, fit[:, j], minlength=k) for j in range(fit.shape[1])], 1)
            new = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], c)
            if np.allclose(new, c, rtol=0, atol=1e-10):
                c = new
                break
            c = new
        inertia = _nearest(fit, c)[1].sum()
        if inertia < best_inertia:
            best, best_inertia = c, inertia
    labels, _ = _nearest(x, best)
    return labels, best
