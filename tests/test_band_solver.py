"""The edge refinement's compiled kernels against their plain numpy / scipy forms."""

import numpy as np
import pytest
import scipy.sparse as sp

from sss_studio.segmentation import band_stencil as BS
from sss_studio.segmentation import column_cg as CG
from sss_studio.segmentation.refine import band_system

needs_numba = pytest.mark.skipif(not (BS.HAVE_NUMBA and CG.HAVE_NUMBA), reason="numba not installed")


def _photo_and_band(seed: int = 0):
    rng = np.random.default_rng(seed)
    h, w = 60, 70
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx / w, yy / h, 0.5 + 0.1 * np.sin(xx / 3.0)], -1) + 0.05 * rng.random((h, w, 3))
    unknown = rng.random((h, w)) < 0.4
    unknown[:2] = unknown[-2:] = False
    unknown[:, :2] = unknown[:, -2:] = False
    return img, unknown


@needs_numba
def test_compiled_stencil_equals_the_numpy_form():
    img, unknown = _photo_and_band()
    u1, d1 = BS.band_stencil(img, unknown, 1e-7, use_numba=True)
    u2, d2 = BS.band_stencil(img, unknown, 1e-7, use_numba=False)
    assert np.array_equal(u1, u2)
    assert np.abs(d1 - d2).max() < 1e-9 * max(1.0, np.abs(d2).max())
    assert np.array_equal(d1 != 0, d2 != 0)


def test_band_rows_are_a_laplacian_where_the_whole_stencil_is_unknown():
    """A row of L sums to zero, and L_UU is symmetric: the band system of a region where
    every pixel is unknown (but the rim) has rows whose L_UU part + L_UF part sum to 0."""
    img, _ = _photo_and_band(1)
    unknown = np.zeros(img.shape[:2], bool)
    unknown[2:-2, 2:-2] = True
    values = np.ones((1,) + img.shape[:2])
    A, fixed = band_system(img, unknown, values, 1e-7)
    row_sums = np.asarray(A.sum(axis=1)).ravel() + fixed[:, 0]
    assert np.abs(row_sums).max() < 1e-8
    assert abs(A - A.T).max() < 1e-8


def _spd_system(n: int = 3000, k: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    R = sp.random(n, n, density=8 / n, format="csr", random_state=seed)
    L = sp.csgraph.laplacian((R + R.T).tocsr())
    A = (L + 1e-2 * sp.eye(n)).tocsr().astype(np.float32)
    B = rng.random((n, k)).astype(np.float32)
    extra = rng.random((n, k)).astype(np.float32)
    return A, B, extra


@needs_numba
@pytest.mark.parametrize("with_extra", [False, True])
def test_compiled_cg_solves_each_column_to_its_tolerance(with_extra):
    A, B, extra = _spd_system()
    e = extra if with_extra else None
    X0 = np.zeros_like(B)
    X = CG.cg_columns(A, B, X0, 1e-6, 2000, None, e, use_numba=True)
    assert X.dtype == B.dtype
    for j in range(B.shape[1]):
        Aj = A if e is None else A + sp.diags(e[:, j])
        r = np.linalg.norm(Aj @ X[:, j].astype(np.float64) - B[:, j]) / np.linalg.norm(B[:, j])
        assert r < 1e-4
    Y = CG.cg_columns(A, B, X0, 1e-6, 2000, None, e, use_numba=False)
    assert np.abs(X - Y).max() < 1e-3 * np.abs(Y).max()


def test_cg_starts_from_the_given_guess():
    """From the exact answer no step is taken: the guess comes back."""
    A, B, _ = _spd_system(500, 2, 1)
    X = CG.cg_columns(A, B, np.zeros_like(B), 1e-7, 5000, None)
    again = CG.cg_columns(A, A @ X, X, 1e-3, 0, None)
    assert np.array_equal(again, X)
