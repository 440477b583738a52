"""Block LOBPCG (Knyazev) with SVQB orthonormalisation and soft locking, on whole blocks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..cancel import CancelFn, ProgressFn, check, report
from ..dense import eigh, gram, tall_dot


def _orthonormalise(S: np.ndarray, drop: Optional[float] = None) -> np.ndarray:
    """SVQB (Stathopoulos & Wu): columns of S made orthonormal via eigh of SᵀS; directions
    with relative weight < ``drop`` are removed (LOBPCG's blocks become dependent)."""
    if drop is None:
        drop = 1e-10 if S.dtype == np.float64 else 1e-5
    # The column scaling is applied to the small Gram and folded into the final m×m
    # factor: no scaled N×m copy of S (two passes over the block fewer).
    G = gram(S).astype(np.float64)
    d = np.sqrt(np.maximum(np.diag(G), 1e-30))
    w, V = eigh(G / d[:, None] / d[None, :])
    keep = w > drop * w.max()
    return tall_dot(S, ((V[:, keep] / np.sqrt(w[keep])) / d[:, None]).astype(S.dtype))


def _rayleigh_ritz(Q: np.ndarray, AQ: np.ndarray, k: int):
    G = gram(Q, AQ).astype(np.float64)
    G = (G + G.T) * 0.5
    w, C = eigh(G)
    return w[:k], C[:, :k].astype(Q.dtype)


@dataclass
class LobpcgInfo:
    iterations: int = 0
    residuals: Optional[np.ndarray] = None
    history: Optional[list] = None
    active: Optional[list] = None      # columns that got a new search direction, per step


def lobpcg(
    matmul,
    precond,
    X0: np.ndarray,
    k: int,
    max_iterations: int,
    tol: float,
    scale: float,
    cancel: CancelFn = None,
    progress: ProgressFn = None,
    stage: str = "eigenvectors",
    progress_range: tuple[float, float] = (0.0, 1.0),
    lock: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, LobpcgInfo]:
    """Block LOBPCG (Knyazev) for the smallest algebraic eigenpairs of a symmetric operator.

    ``matmul(X)`` = A·X, ``precond(R)`` ≈ A_shift⁻¹·R, both on whole blocks. Stops when
    the first ``k`` columns reach ‖r_i‖ ≤ tol·scale; the extra columns of X0 guard the
    k-th. Dense work is ≈ 40·N·m² flops per step (m = columns of X0): the Rayleigh–Ritz
    Gram blocks are formed piecewise (XᵀAX = Λ is known) and A·P is never needed.

    ``lock`` in (0, 1): soft locking (0: off). Columns whose residual is below ``lock`` × the
    largest of the first ``k`` stay in X and in every Rayleigh–Ritz (they keep
    improving through the others' directions) but get no search direction of their
    own, so a step works on a narrower block once the residuals spread out.
    """
    if not 0.0 <= lock < 1.0:
        raise ValueError(f"lock must be in [0, 1), got {lock}")
    X = _orthonormalise(X0)
    AX = matmul(X)
    lam, C = _rayleigh_ritz(X, AX, X.shape[1])
    X, AX = X @ C, AX @ C
    m = X.shape[1]
    P = None
    info = LobpcgInfo(history=[], active=[])
    lo, hi = progress_range
    for it in range(1, max_iterations + 1):
        check(cancel)
        R = AX - X * lam.astype(X.dtype)
        res = np.linalg.norm(R, axis=0)
        info.history.append(float(res[:k].max() / scale))
        info.residuals = res
        if res[:k].max() <= tol * scale:
            break
        active = res > lock * res[:k].max() if lock > 0 else slice(None)
        W = precond(R[:, active])
        info.active.append(W.shape[1])
        S = W if P is None else np.concatenate([W, P[:, active]], axis=1)
        for _ in range(2):  # twice is enough (one pass loses orthogonality once R is small)
            S -= tall_dot(X, gram(X, S))
        S = _orthonormalise(S)
        AS = matmul(S)
        # Gram of [X S] with A: [[Λ, XᵀAS], [·, SᵀAS]].
        XAS = gram(X, AS)
        SAS = gram(S, AS)
        G = np.block([[np.diag(lam), XAS], [XAS.T, (SAS + SAS.T) * 0.5]]).astype(np.float64)
        lam_all, C = eigh(G)
        lam, C = lam_all[:m], C[:, :m].astype(X.dtype)
        Cx, Cs = C[:m], C[m:]
        P = S @ Cs
        X = X @ Cx + P
        AX = AX @ Cx + AS @ Cs
        info.iterations = it
        report(progress, stage, lo + (hi - lo) * it / max_iterations)
    else:
        R = AX - X * lam.astype(X.dtype)
        info.residuals = np.linalg.norm(R, axis=0)
        info.history.append(float(info.residuals[:k].max() / scale))
    return lam, X, info
