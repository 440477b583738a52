"""Sparse × dense-block products with numba: scipy's CSR × (N×k) runs on one thread;
this kernel streams each row's nonzeros once for all k columns, on every numba thread.
Measured against scipy on the fast mode's Laplacian (benchmarks/bench_kernels.py,
docs/solver.md "Our kernels against library calls"): 1.6× (float32) and 2.0×
(float64) faster on two threads. On one thread scipy's product alone is faster in
float32 (0.74×), but sending those to scipy did not make a single-threaded run faster
end to end (measured, docs/solver.md), so the kernel stays the one path.
Falls back to scipy if numba is missing.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

try:
    import numba

    @numba.njit(parallel=True, fastmath=True, cache=True)
    def _csr_block(indptr, indices, data, X, out):  # pragma: no cover - compiled
        n, k = out.shape
        for i in numba.prange(n):
            acc = np.zeros(k, dtype=out.dtype)
            for jj in range(indptr[i], indptr[i + 1]):
                j = indices[jj]
                v = data[jj]
                for c in range(k):
                    acc[c] += v * X[j, c]
            out[i, :] = acc

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    HAVE_NUMBA = False


def spmm(A: sp.csr_matrix, X: np.ndarray) -> np.ndarray:
    """A @ X for CSR A and a dense N×k (or N) X, in X's dtype."""
    if X.ndim == 1:
        return spmm(A, X[:, None])[:, 0]
    if not HAVE_NUMBA or X.shape[1] < 4:
        return np.asarray(A @ X)
    X = np.ascontiguousarray(X)
    data = A.data if A.data.dtype == X.dtype else A.data.astype(X.dtype)
    out = np.empty((A.shape[0], X.shape[1]), X.dtype)
    _csr_block(A.indptr, A.indices, data, X, out)
    return out
