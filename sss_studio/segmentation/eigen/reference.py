"""The reference eigensolver: ARPACK shift-invert near zero, the eigenpairs of smallest
magnitude (the paper's; slow, exact)."""

from __future__ import annotations

from typing import Optional

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..cancel import CancelFn, ProgressFn, check, report
from ..params import EigenParams
from .basis import EigenBasis


def reference_eigensolver(
    laplacian: sp.csr_matrix,
    params: EigenParams,
    *,
    seed: int = 0,
    warm_start: Optional[EigenBasis] = None,
    cancel: CancelFn = None,
    progress: ProgressFn = None,
    guide: Optional[np.ndarray] = None,
) -> EigenBasis:
    """`eigsh` in shift-invert mode: the ``count`` eigenpairs nearest ``shift`` (≈ smallest magnitude).
    ``warm_start`` and ``guide`` are not used (ARPACK starts from one seeded vector)."""
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
    v0 = np.random.default_rng(seed).standard_normal(n)  # seeded start: repeatable
    vals, vecs = spla.eigsh(laplacian, k=k, sigma=params.shift, which="LM", OPinv=op_inv, v0=v0)
    order = np.argsort(np.abs(vals))
    report(progress, "eigenvectors", 1.0)
    return EigenBasis(vectors=np.ascontiguousarray(vecs[:, order]), values=vals[order])
