"""One AMG V-cycle applied to a whole N×k block (the fast eigensolver's preconditioner).

pyamg's own preconditioner runs one V-cycle per column (100 cycles of Python-level
work per LOBPCG step). Here pyamg builds the hierarchy (smoothed aggregation without
smoothing, so plain aggregation) and its matrices are applied to the whole block at
once (sparse × dense, BLAS-3 at the coarsest level), with a damped-Jacobi smoother
that works on blocks.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from ..params import AMGParams
from ._kernels import spmm


class BlockVCycle:
    """One AMG V-cycle applied to an N×k block at once (symmetric: Jacobi pre/post)."""

    def __init__(self, A: sp.csr_matrix, params: AMGParams = AMGParams(), dtype=np.float64,
                 candidates: Optional[np.ndarray] = None):
        import pyamg

        self.params = params
        # pyamg compares max_coarse with a level's size in blocks, and its coarse levels are
        # blocked by the candidate count: in unknowns, as the parameter says.
        blocks = 1 if candidates is None else max(1, candidates.shape[1])
        kw = dict(symmetry="hermitian", max_coarse=max(1, params.max_coarse // blocks), keep=False,
                  strength=("symmetric", {"theta": params.strength_theta}),
                  presmoother=None, postsmoother=None, coarse_solver="pinv")
        if not params.smooth_prolongator:
            kw["smooth"] = None
        if candidates is not None:
            kw["B"] = candidates
        ml = pyamg.smoothed_aggregation_solver(A, **kw)
        self.dtype = dtype
        self.A = [sp.csr_matrix(lv.A, dtype=dtype) for lv in ml.levels]
        self.P = [sp.csr_matrix(lv.P, dtype=dtype) for lv in ml.levels[:-1]]
        self.R = [sp.csr_matrix(p.T) for p in self.P]
        # The matrices the cycle smooths with: level 0 as given, coarser ones optionally
        # filtered (the Galerkin levels of the nonlocal affinities are 7× denser than the
        # pixel level). The coarse problems themselves (self.A) stay exact.
        self.A_cycle = [self.A[0]] + [_filtered(a, params.filter) if params.filter > 0 else a
                                      for a in self.A[1:]]
        self.inv_diag = []
        for a in self.A_cycle[:-1]:
            d = a.diagonal().astype(np.float64)
            d = np.where(np.abs(d) > 0, d, 1.0)
            self.inv_diag.append((params.jacobi_omega / d).astype(dtype)[:, None])
        # Coarsest level: dense Cholesky (A_c is SPD once shifted); pseudo-inverse if not.
        Ac = self.A[-1].toarray().astype(np.float64)
        try:
            self.coarse_chol = sla.cho_factor((Ac + Ac.T) * 0.5)
            self.coarse_inv = None
        except np.linalg.LinAlgError:
            w, V = np.linalg.eigh((Ac + Ac.T) * 0.5)
            keep = np.abs(w) > 1e-12 * max(np.abs(w).max(), 1e-300)
            self.coarse_inv = ((V[:, keep] / w[keep]) @ V[:, keep].T).astype(dtype)
        self.sizes = [a.shape[0] for a in self.A]
        self.nnz = [a.nnz for a in self.A]

    def __call__(self, B: np.ndarray) -> np.ndarray:
        return self._cycle(0, np.asarray(B, self.dtype))

    def _cycle(self, lvl: int, b: np.ndarray) -> np.ndarray:
        if lvl == len(self.A) - 1:
            if self.coarse_inv is not None:
                return self.coarse_inv @ b
            return sla.cho_solve(self.coarse_chol, b).astype(self.dtype, copy=False)
        A, Dinv = self.A_cycle[lvl], self.inv_diag[lvl]
        x = Dinv * b
        for _ in range(self.params.sweeps - 1):
            x += Dinv * (b - spmm(A, x))
        r = b - spmm(A, x)
        x += spmm(self.P[lvl], self._cycle(lvl + 1, spmm(self.R[lvl], r)))
        for _ in range(self.params.sweeps):
            x += Dinv * (b - spmm(A, x))
        return x


def _filtered(A: sp.csr_matrix, threshold: float) -> sp.csr_matrix:
    """A without its weak off-diagonal entries, their sum added to the diagonal."""
    C = A.tocoo()
    d = np.abs(A.diagonal()).astype(np.float64)
    off = C.row != C.col
    weak = off & (np.abs(C.data) < threshold * np.sqrt(d[C.row] * d[C.col]))
    lumped = np.bincount(C.row[weak], weights=C.data[weak], minlength=A.shape[0])
    keep = ~weak
    F = sp.csr_matrix((C.data[keep], (C.row[keep], C.col[keep])), shape=A.shape, dtype=A.dtype)
    return (F + sp.diags(lumped.astype(A.dtype))).tocsr()


def near_nullspace(guide: Optional[np.ndarray], n: int) -> np.ndarray:
    """AMG candidates: the matting Laplacian is (nearly) zero on functions that are locally
    affine in the colour (Levin et al.), so aggregates carry [1, R, G, B], not just 1."""
    ones = np.ones((n, 1))
    if guide is None or guide.shape[0] * guide.shape[1] != n:
        return ones
    g = np.asarray(guide, np.float64).reshape(n, -1)[:, :3]
    return np.concatenate([ones, g - g.mean(axis=0)], axis=1)


class SubCycle:
    """The V-cycle started at level j (preconditioner for the level-j problem)."""

    def __init__(self, amg: BlockVCycle, j: int):
        self.amg, self.j = amg, j

    def __call__(self, B: np.ndarray) -> np.ndarray:
        return self.amg._cycle(self.j, np.asarray(B, self.amg.dtype))
