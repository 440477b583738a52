"""The fast eigensolver (AMG-preconditioned LOBPCG) on small synthetic problems."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp

from sss_studio.segmentation import eigen
from sss_studio.segmentation.params import AMGParams, EigenParams, FastEigenParams
from sss_studio.segmentation.affinity import AffinityWeights, build_laplacian
from sss_studio.segmentation.cancel import Cancelled
from sss_studio.segmentation.eigen.amg import BlockVCycle, near_nullspace
from sss_studio.segmentation.eigen.fast import fast_eigensolver
from sss_studio.segmentation.eigen.lobpcg import lobpcg
from sss_studio.segmentation.eigen._kernels import spmm
from sss_studio.segmentation.superpixels import SuperpixelParams, compute_superpixels

from synthetic import soft_regions

COUNT = 12


@pytest.fixture(scope="module")
def problem():
    img, feats, _ = soft_regions(40, 56, seed=1)
    spx = compute_superpixels(img, feats, SuperpixelParams(n_segments=60))
    lap = build_laplacian(img, spx, AffinityWeights())
    return img, spx, lap


def _params(**kw) -> FastEigenParams:
    base = FastEigenParams(count=COUNT, tol=1e-7, iterations=60, warm_iterations=60,
                           coarse_iterations=0, max_coarse=800)
    return replace(base, **kw)


def _principal_angles_deg(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    qa, _ = np.linalg.qr(A)
    qb, _ = np.linalg.qr(B)
    s = np.linalg.svd(qa.T @ qb, compute_uv=False)
    return np.degrees(np.arccos(np.clip(s, -1.0, 1.0)))


def test_registered_and_spans_the_reference_subspace(problem):
    img, _, lap = problem
    assert "fast" in eigen.SOLVERS
    ref = eigen.reference_eigensolver(lap, EigenParams(count=COUNT + 6))
    fast = eigen.get_solver("fast")(lap, _params(), guide=img)
    assert fast.vectors.shape == (lap.shape[0], COUNT)
    assert np.allclose(fast.vectors.T @ fast.vectors, np.eye(COUNT), atol=1e-8)
    # The fast k vectors lie in the reference's span (k + a few guards: the k-th may swap
    # with a near-equal neighbour); the smallest ones match one to one.
    angles = _principal_angles_deg(fast.vectors, ref.vectors)
    assert angles.max() < 1.0, angles
    assert np.allclose(np.sort(fast.values)[:6], np.sort(ref.values[: COUNT + 6])[:6], atol=1e-7)


def test_warm_start_converges_in_fewer_iterations(problem):
    img, spx, lap = problem
    p = _params(tol=1e-6)
    first = fast_eigensolver(lap, p, guide=img)
    lap2 = build_laplacian(img, spx, AffinityWeights(semantic=0.015))
    cold = fast_eigensolver(lap2, p, guide=img)
    warm = fast_eigensolver(lap2, p, guide=img, warm_start=first)
    cold_its = sum(h[2] for h in cold.info["history"])
    warm_its = sum(h[2] for h in warm.info["history"])
    assert warm_its < cold_its, (warm_its, cold_its)
    assert _principal_angles_deg(warm.vectors, cold.vectors).max() < 2.0


def test_warm_start_on_an_unchanged_laplacian_takes_no_step(problem):
    # The previous basis is already as converged as the cold solve: one Rayleigh–Ritz,
    # no AMG set-up, no LOBPCG step; the target residual carries over unchanged.
    img, _, lap = problem
    p = _params(tol=1e-6)
    first = fast_eigensolver(lap, p, guide=img)
    again = fast_eigensolver(lap, p, guide=img, warm_start=first)
    assert set(again.info["timings"]) == {"warm Rayleigh-Ritz"}
    assert again.target_residual == first.target_residual
    scale = np.abs(lap.diagonal()).mean()
    res = np.linalg.norm(spmm(lap, again.vectors) - again.vectors * again.values, axis=0).max() / scale
    assert res <= p.warm_slack * first.target_residual
    assert _principal_angles_deg(again.vectors, first.vectors).max() < 0.1


def test_warm_start_after_a_large_change_iterates(problem):
    img, spx, lap = problem
    p = _params(tol=1e-6)
    first = fast_eigensolver(lap, p, guide=img)
    lap2 = build_laplacian(img, spx, AffinityWeights(semantic=0.1))   # ×10
    warm = fast_eigensolver(lap2, p, guide=img, warm_start=first)
    assert "lobpcg level 0" in warm.info["timings"]
    cold = fast_eigensolver(lap2, p, guide=img)
    assert _principal_angles_deg(warm.vectors, cold.vectors).max() < 2.0


def test_filtered_coarse_levels_keep_row_sums_and_the_solution(problem):
    img, _, lap = problem
    n = lap.shape[0]
    A = (lap + 1e-3 * sp.identity(n)).tocsr()
    exact = BlockVCycle(A, AMGParams(max_coarse=40), candidates=near_nullspace(img, n))
    lumped = BlockVCycle(A, AMGParams(max_coarse=40, filter=1e-2), candidates=near_nullspace(img, n))
    assert len(lumped.A) > 2
    A1, F1 = lumped.A[1], lumped.A_cycle[1]
    assert F1.nnz < A1.nnz                                           # something was dropped …
    assert np.allclose(np.asarray(F1.sum(axis=1)), np.asarray(A1.sum(axis=1)), atol=1e-9)  # … and lumped
    assert (lumped.A[1] != exact.A[1]).nnz == 0                      # the coarse problem itself is exact
    # Still as good a preconditioner: preconditioned Richardson steps shrink the error
    # about as fast as with the exact hierarchy.
    x_true = np.random.default_rng(1).standard_normal((n, 3))
    b = A @ x_true
    errors = []
    for cycle in (exact, lumped):
        x = np.zeros_like(b)
        for _ in range(10):
            x += cycle(b - A @ x)
        errors.append(np.linalg.norm(x - x_true) / np.linalg.norm(x_true))
    assert errors[1] < 0.6 and errors[1] < 1.2 * errors[0], errors


def test_same_seed_same_result(problem):
    img, _, lap = problem
    a = fast_eigensolver(lap, _params(iterations=5), guide=img)
    b = fast_eigensolver(lap, _params(iterations=5), guide=img)
    assert np.array_equal(a.vectors, b.vectors) and np.array_equal(a.values, b.values)


def test_cancel_raises_and_progress_is_reported(problem):
    img, _, lap = problem
    seen = []
    calls = [0]

    def cancel() -> bool:
        calls[0] += 1
        return calls[0] > 3

    with pytest.raises(Cancelled):
        fast_eigensolver(lap, _params(), guide=img, cancel=cancel, progress=lambda s, f: seen.append(f))
    assert seen and seen[0] == 0.0 and all(0.0 <= f <= 1.0 for f in seen)
    with pytest.raises(Cancelled):
        fast_eigensolver(lap, _params(), guide=img, cancel=lambda: True)


def test_block_vcycle_is_one_cycle_per_column_and_reduces_error(problem):
    img, _, lap = problem
    n = lap.shape[0]
    A = (lap + 1e-3 * sp.identity(n)).tocsr()
    cyc = BlockVCycle(A, candidates=near_nullspace(img, n))
    B = np.random.default_rng(0).standard_normal((n, 5))
    block = cyc(B)
    cols = np.stack([cyc(B[:, [j]])[:, 0] for j in range(5)], axis=1)
    assert np.allclose(block, cols)
    # As a stationary iteration x ← x + T(b − Ax) it must converge.
    x = np.zeros_like(B)
    for _ in range(30):
        x += cyc(B - A @ x)
    assert np.linalg.norm(B - A @ x) < 0.2 * np.linalg.norm(B)


def test_lobpcg_on_a_diagonal_matrix():
    d = np.linspace(1.0, 100.0, 400)
    A = sp.diags(d).tocsr()
    X0 = np.random.default_rng(3).standard_normal((400, 8))
    lam, X, info = lobpcg(lambda X: A @ X, lambda R: R / d[:, None], X0, 5, 100, 1e-8, 1.0)
    assert np.allclose(lam[:5], d[:5], atol=1e-8)
    assert info.iterations < 100


def test_soft_locking_gives_the_same_pairs_with_fewer_directions():
    d = np.linspace(1.0, 100.0, 400)
    A = sp.diags(d).tocsr()
    X0 = np.random.default_rng(3).standard_normal((400, 8))
    run = lambda lock: lobpcg(lambda X: A @ X, lambda R: R / d[:, None], X0, 5, 100, 1e-8, 1.0, lock=lock)
    _, _, info0 = run(0.0)
    lam, X, info = run(0.5)
    assert np.allclose(lam[:5], d[:5], atol=1e-8)
    assert np.allclose(np.abs(X[:5, :5]), np.eye(5), atol=1e-4)   # the vectors e_1 … e_5
    assert min(info.active) < 8 and sum(info.active) < sum(info0.active)
    with pytest.raises(ValueError):
        run(1.0)


def test_soft_locking_in_the_solver_keeps_the_subspace(problem):
    img, _, lap = problem
    plain = eigen.get_solver("fast")(lap, _params(tol=1e-6), guide=img)
    locked = eigen.get_solver("fast")(lap, _params(tol=1e-6, lock=0.5), guide=img)
    assert _principal_angles_deg(plain.vectors[:, :6], locked.vectors).max() < 1.0
    assert np.allclose(np.sort(plain.values)[:6], np.sort(locked.values)[:6], atol=1e-7)
    active = [a for h in locked.info["history"] if h[0] == 0 for a in h[4]]
    assert min(active) < locked.vectors.shape[1] + 4   # some vectors were locked


def test_spmm_matches_scipy():
    rng = np.random.default_rng(0)
    A = sp.random(300, 300, density=0.05, random_state=1, format="csr")
    for k in (1, 3, 7):
        X = rng.standard_normal((300, k))
        assert np.allclose(spmm(A, X), A @ X)
    assert np.allclose(spmm(A, X[:, 0]), A @ X[:, 0])


def test_jacobi_sweeps_after_prolongation_improve_the_subspace(problem):
    """Piecewise prolongation leaves jumps at aggregate borders; the sweeps the fast preset
    runs before its pixel-level steps must bring the Ritz values down, not up."""
    from sss_studio.segmentation.eigen.fast import _rayleigh_ritz_residuals, _smooth_prolongated

    img, _, lap = problem
    L = sp.csr_matrix(lap, dtype=np.float64)
    amg = BlockVCycle(L + 1e-4 * sp.identity(L.shape[0], format="csr"),
                      AMGParams(max_coarse=200), candidates=near_nullspace(img, L.shape[0]))
    assert len(amg.A) >= 2
    coarse = (amg.A[1] - 1e-4 * sp.identity(amg.sizes[1])).toarray()
    _, Y = np.linalg.eigh((coarse + coarse.T) * 0.5)
    X = spmm(amg.P[0], np.ascontiguousarray(Y[:, :COUNT]))
    _, before, res_before = _rayleigh_ritz_residuals(L, X)
    _, after, res_after = _rayleigh_ritz_residuals(L, _smooth_prolongated(L, X, 3, spmm))
    assert np.sort(after).sum() < 0.5 * np.sort(before).sum()   # 0.29 → 0.11 here
    assert res_after.max() < 0.5 * res_before.max()              # 0.41 → 0.06


def test_coarsest_level_holds_at_most_max_coarse_unknowns(problem):
    # pyamg counts a level's size in blocks of the candidate count (4 here); the cycle's
    # dense coarse solve costs the cube of the unknowns, so the limit is in unknowns.
    img, _, lap = problem
    n = lap.shape[0]
    A = (lap + 1e-3 * sp.identity(n)).tocsr()
    cyc = BlockVCycle(A, AMGParams(max_coarse=150), candidates=near_nullspace(img, n))
    assert cyc.sizes[-1] <= 150 < cyc.sizes[-2], cyc.sizes
