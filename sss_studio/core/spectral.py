"""Eigensolvers for the smallest eigenvectors of the Laplacian (ALGORITHM.md §4).

Every solver has the same call signature and returns an :class:`EigenBasis`, so the
pipeline picks one by name (``get_solver``). The "reference" solver is the faithful,
slow one: ARPACK shift-invert near zero, the eigenvalues of smallest magnitude.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Protocol

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .cancel import CancelFn, ProgressFn, check, report


@dataclass(frozen=True)
class EigenParams:
    count: int = 100
    shift: float = -1e-6  # L is singular (constants): shift-invert exactly at 0 fails
    seed: int = 0
    # Fast solver (fast_solver.py) only; the reference solver ignores these.
    tol: float = 1e-5                 # LOBPCG: max ‖r_i‖ / mean(diag L)
    fast_shift: float = 1e-4          # AMG built for L + fast_shift·mean(diag L)·I
    fast_iterations: int = 8          # LOBPCG steps on the pixel level from a cold start
    fast_warm_iterations: int = 4     # … at most, warm-started from the previous basis
    fast_warm_slack: float = 1.25     # warm start: done once max residual ≤ slack × the cold solve's
    # Pixel-level soft locking: vectors with a residual below fast_lock × the largest get no
    # search direction of their own (fast_solver.lobpcg); 0 = off
    fast_lock: float = 0.0
    fast_coarse_iterations: int = 20  # … on each intermediate AMG level
    fast_coarse_factor: int = 4       # coarsest level solved densely has ≥ factor·k unknowns
    fast_max_coarse: int = 1500
    fast_dense_coarse: int = 2000     # start level up to this size: dense eigh, else sparse shift-invert
    fast_sweeps: int = 1
    fast_smooth: bool = False
    fast_theta: float = 0.0
    fast_filter: float = 0.0          # AMG cycle: drop coarse entries below this (relative), fast_solver.AMGParams
    fast_smoothing: int = 0           # Jacobi sweeps on the vectors prolongated to the pixels
    fast_dtype: str = "float64"       # LOBPCG blocks; "float32" halves time and memory (final RR in float64)
    fast_threads: int = 0             # BLAS threads for the pixel level (0 = leave as is: the app's all cores)
    # … for set-up and the coarse levels: -1 = as the pixel level when idle threads sleep
    # (sss_studio/_threads_env.py), else 1 (spinning pools made two threads slower there)
    fast_coarse_threads: int = -1


@dataclass
class EigenBasis:
    vectors: np.ndarray  # N×k, orthonormal columns
    values: np.ndarray   # k, ascending by magnitude
    # Largest ‖L·v − λ·v‖ / mean(diag L) that the last cold solve reached (fast solver):
    # a warm start after a weight change iterates only until it is back at that level.
    target_residual: Optional[float] = None


class Eigensolver(Protocol):
    def __call__(
        self,
        laplacian: sp.csr_matrix,
        params: EigenParams,
        *,
        warm_start: Optional[EigenBasis] = None,
        cancel: CancelFn = None,
        progress: ProgressFn = None,
        guide: Optional[np.ndarray] = None,   # the photo L was built from (H×W×3), if known
    ) -> EigenBasis: ...


def reference_eigensolver(
    laplacian: sp.csr_matrix,
    params: EigenParams,
    *,
    warm_start: Optional[EigenBasis] = None,
    cancel: CancelFn = None,
    progress: ProgressFn = None,
    guide: Optional[np.ndarray] = None,
) -> EigenBasis:
    """`eigsh` in shift-invert mode: the ``count`` eigenpairs nearest ``shift`` (≈ smallest magnitude)."""
    n = laplacian.shape[0]
    k = min(params.count, n - 2)
    report(progress, "eigenvectors", 0.0)
    lu = spla.splu((laplacian - params.shift * sp.identity(n)).tocsc())
    check(cancel)
    calls = [0]
    expected = 4 * k + 60

    def solve(b: np.ndarray) -> np.ndarray:
        check(cancel)  # raising inside ARPACK's reverse-communication loop stops it cleanly
        calls[0] += 1
        if calls[0] % 20 == 0:
            report(progress, "eigenvectors", 0.1 + 0.85 * min(calls[0] / expected, 1.0))
        return lu.solve(np.asarray(b, dtype=np.float64))

    op_inv = spla.LinearOperator((n, n), matvec=solve, dtype=np.float64)
    v0 = np.random.default_rng(params.seed).standard_normal(n)  # seeded start: repeatable
    vals, vecs = spla.eigsh(laplacian, k=k, sigma=params.shift, which="LM", OPinv=op_inv, v0=v0)
    order = np.argsort(np.abs(vals))
    report(progress, "eigenvectors", 1.0)
    return EigenBasis(vectors=np.ascontiguousarray(vecs[:, order]), values=vals[order])


_SOLVERS: dict[str, Callable[..., EigenBasis]] = {"reference": reference_eigensolver}


def register_solver(name: str, solver: Callable[..., EigenBasis]) -> None:
    _SOLVERS[name] = solver


def get_solver(name: str) -> Callable[..., EigenBasis]:
    try:
        return _SOLVERS[name]
    except KeyError:
        raise ValueError(f"unknown solver mode {name!r}; choose one of {sorted(_SOLVERS)}") from None


def solver_names() -> list[str]:
    return sorted(_SOLVERS)


# The fast solver registers itself as "fast"; imported here so it is always available.
from . import fast_solver as _fast_solver  # noqa: E402,F401
