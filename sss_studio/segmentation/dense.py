"""Dense linear algebra whose bits do not depend on the thread count.

OpenBLAS rounds some operations differently on one thread and on two: a product with a
long inner dimension (a Gram matrix over N pixels), a matrix-vector product, and
LAPACK's symmetric eigensolver even on a 150×150 matrix. The LOBPCG steps and the IRLS
of the sparsification amplify such 1e-13 differences into other layers, and a run sizes
its threads to the cores free when it starts: the same photo gave different layers on
an idle and on a busy machine (docs/solver.md, "The same layers on any thread count").

* ``gram``: the product is cut into pieces that depend on the shapes only (blocks of
  rows, whose partial products are added in order, or blocks of columns for a wide
  result); each piece runs on one BLAS thread, the pieces in parallel on the run's
  threads.
* ``tall_dot``: a one-column product without BLAS.
* ``eigh`` (and ``cpu_budget.blas_threads(1)`` around other small factorisations): on
  one BLAS thread; they are too small for a second thread to pay.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import numpy as np

from .cpu_budget import blas_threads, current_threads

BLOCK_ROWS = 2048   # about; pieces come in fours of equal size, so that two or four threads share them evenly
WIDE = 512          # columns of B from which a product is cut by columns, not rows

_pool: Optional[ThreadPoolExecutor] = None
_pool_size = 0
_lock = threading.Lock()


def _executor(n: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < n:
            # The outgrown pool is only dropped, not shut down: a run in another thread may
            # hold it and not have submitted yet; its threads end once nothing refers to it.
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="sss-dense")
            _pool_size = n
        return _pool


def gram(A: np.ndarray, B: Optional[np.ndarray] = None) -> np.ndarray:
    """Aᵀ·B (Aᵀ·A without B) for N×m A and N×p (or N) B."""
    same = B is None
    if same:
        B = A
    assert B is not None
    vector = B.ndim == 1
    if vector:
        B = B[:, None]
    n, m, p = A.shape[0], A.shape[1], B.shape[1]
    if B.shape[0] != n:
        raise ValueError(f"gram: {A.shape} and {B.shape} do not have the same rows")
    # How the work is cut depends on the shapes only. A wide result (the sparsification's
    # Wᵀ·Z) is cut by columns: whole sums, no partial products to add.
    wide = not same and p >= WIDE
    cuts = 4 * -(-max(p if wide else n, 1) // (4 * (WIDE if wide else BLOCK_ROWS)))
    edges = np.linspace(0, p if wide else n, cuts + 1).astype(np.int64)
    spans = list(zip(edges[:-1].tolist(), edges[1:].tolist()))

    def piece(span: tuple[int, int]) -> np.ndarray:
        if wide:
            return A.T @ B[:, span[0]:span[1]]
        a = A[span[0]:span[1]]
        b = a if same else B[span[0]:span[1]]
        if p == 1:   # a matrix-vector product: threaded differently again
            return np.einsum("ij,i->j", a, b[:, 0])[:, None]
        return a.T @ b

    small = n * m * p < 2_000_000   # a hand-over to the pool costs more
    threads = 1 if small else min(current_threads(), len(spans))
    with blas_threads(1):
        if threads <= 1:
            parts = [piece(s) for s in spans]
        else:
            parts = list(_executor(threads).map(piece, spans))
    if wide:
        out = np.concatenate(parts, axis=1)
    else:
        out = parts[0].copy()
        for part in parts[1:]:
            out += part
    return out[:, 0] if vector else out


def tall_dot(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A·B for N×p A and a small p×q B. BLAS keeps its threads (its rows are split, not
    its sums), except for one column: OpenBLAS splits a matrix-vector product's sums."""
    if B.ndim == 1 or B.shape[1] == 1:
        out = np.einsum("ij,j->i", A, B.reshape(-1))
        return out if B.ndim == 1 else out[:, None]
    return A @ B


def eigh(G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors of a small symmetric matrix."""
    with blas_threads(1):
        return np.linalg.eigh(G)
