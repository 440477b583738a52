"""Jacobi-preconditioned conjugate gradients on each column of a block, independently:
column j solves (A + diag(extra[:, j]))·x = B[:, j] from X[:, j] and stops when its own
residual is below ``tol`` × ‖B[:, j]‖ (scipy's ``cg`` criterion).

The edge refinement's systems are small (a band tile, a few tens of thousands of unknowns)
and converge in tens of steps, so scipy's ``cg`` spent about as long in Python as in its
products, on one core. The numba kernel runs each column's whole loop compiled, the
columns side by side on the run's threads. scipy is the fallback without numba.
docs/solver.md ("The band's Laplacian and its solves") has the timings.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .cancel import CancelFn, check

try:
    import numba

    @numba.njit(parallel=True, fastmath=True, cache=True)
    def _cg_kernel(indptr, indices, data, extra, B, X, tol, maxiter, out):  # pragma: no cover - compiled
        n, k = B.shape
        for j in numba.prange(k):
            x = np.empty(n)
            d = np.empty(n)
            r = np.empty(n)
            z = np.empty(n)
            p = np.empty(n)
            q = np.empty(n)
            for i in range(n):
                x[i] = X[i, j]
            bb = 0.0
            rz = 0.0
            rr = 0.0
            for i in range(n):
                diag = extra[i, j]
                acc = extra[i, j] * x[i]
                for jj in range(indptr[i], indptr[i + 1]):
                    c = indices[jj]
                    acc += data[jj] * x[c]
                    if c == i:
                        diag += data[jj]
                d[i] = 1.0 / diag
                r[i] = B[i, j] - acc
                z[i] = d[i] * r[i]
                p[i] = z[i]
                bb += B[i, j] * B[i, j]
                rz += r[i] * z[i]
                rr += r[i] * r[i]
            limit = tol * tol * (bb if bb > 0.0 else 1.0)
            for _ in range(maxiter):
                if rr <= limit:
                    break
                pq = 0.0
                for i in range(n):
                    acc = extra[i, j] * p[i]
                    for jj in range(indptr[i], indptr[i + 1]):
                        acc += data[jj] * p[indices[jj]]
                    q[i] = acc
                    pq += p[i] * acc
                if pq <= 0.0:
                    break
                alpha = rz / pq
                rz_new = 0.0
                rr = 0.0
                for i in range(n):
                    x[i] += alpha * p[i]
                    r[i] -= alpha * q[i]
                    z[i] = d[i] * r[i]
                    rz_new += r[i] * z[i]
                    rr += r[i] * r[i]
                beta = rz_new / rz
                rz = rz_new
                for i in range(n):
                    p[i] = z[i] + beta * p[i]
            for i in range(n):
                out[i, j] = x[i]

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    HAVE_NUMBA = False


def cg_columns(A: sp.csr_matrix, B: np.ndarray, X: np.ndarray, tol: float, maxiter: int,
               cancel: CancelFn, extra: np.ndarray | None = None, use_numba: bool = HAVE_NUMBA) -> np.ndarray:
    """X (n × K, B's dtype) with column j the solution of (A + diag(extra[:, j]))·x = B[:, j].

    A must be symmetric positive definite with its diagonal stored. ``cancel`` is checked
    before the solve (the kernel's loops are compiled) and at every scipy step."""
    check(cancel)
    if use_numba:
        A = sp.csr_matrix(A)
        e = np.zeros(B.shape, np.float32) if extra is None else np.ascontiguousarray(extra)
        out = np.empty(B.shape, np.float64)
        # Unsigned indices: numba checks a signed index for wrap-around at every read
        # (the product ran at half scipy's speed with them, docs/solver.md).
        _cg_kernel(A.indptr.astype(np.uint64), A.indices.astype(np.uint32), A.data, e, np.ascontiguousarray(B), np.ascontiguousarray(X),
                   float(tol), int(maxiter), out)
        return out.astype(X.dtype, copy=False)
    out = np.empty_like(X)
    for j in range(B.shape[1]):
        Aj = A if extra is None else (A + sp.diags(extra[:, j])).tocsr()
        M = sp.diags(1.0 / Aj.diagonal())
        out[:, j], _ = spla.cg(Aj, B[:, j], x0=X[:, j], rtol=tol, maxiter=maxiter, M=M,
                               callback=lambda _: check(cancel))
    return out
