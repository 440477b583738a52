import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import erf

from sss_studio.segmentation.affinity import (
    AffinityWeights,
    build_laplacian,
    colour_affinity,
    laplacian_from_affinity,
    matting_affinity,
    semantic_affinity,
)
from sss_studio.segmentation.superpixels import Superpixels, compute_superpixels, superpixel_statistics


def direct_matting(img: np.ndarray, eps: float) -> np.ndarray:
    """Levin et al.'s affinity window by window, straight from the formula."""
    h, w = img.shape[:2]
    W = np.zeros((h * w, h * w))
    flat = img.reshape(-1, 3)
    for y in range(1, h - 1):
        for x in range(1, w - 1):
            idx = [(y + dy) * w + (x + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
            I = flat[idx]
            mu = I.mean(axis=0)
            cov = (I - mu).T @ (I - mu) / 9.0
            inv = np.linalg.inv(cov + eps / 9.0 * np.eye(3))
            W[np.ix_(idx, idx)] += (1.0 + (I - mu) @ inv @ (I - mu).T) / 9.0
    return W


def test_matting_affinity_equals_per_window_computation_on_6x6():
    img = np.random.default_rng(1).random((6, 6, 3))
    fast = matting_affinity(img, eps=1e-7).toarray()
    slow = direct_matting(img, 1e-7)
    assert np.abs(fast - slow).max() <= 1e-9 * np.abs(slow).max()
    # At most the 5×5 neighbourhood is connected.
    assert (matting_affinity(img).getnnz(axis=1) <= 25).all()


def test_matting_affinity_on_a_flat_window_is_one_ninth_per_window():
    # Constant colour: the (I−μ) terms vanish, W_ij = (#windows holding i and j)/9.
    img = np.full((3, 3, 3), 0.5)
    W = matting_affinity(img, eps=1e-7).toarray()
    assert np.allclose(W, 1.0 / 9.0)


def _two_superpixels(mean_feature, mean_colour, centroid):
    labels = np.array([[0, 0, 1, 1]] * 2, np.int32)
    return Superpixels(
        labels=labels,
        count=2,
        adjacency=np.array([[0, 1]]),
        representative=np.array([1, 6]),
        centroid=np.asarray(centroid, float),
        mean_colour=np.asarray(mean_colour, float),
        mean_feature=np.asarray(mean_feature, float),
    )


def test_semantic_affinity_hand_value():
    spx = _two_superpixels([[0, 0, 0], [0.3, 0.4, 0.0]], [[0, 0, 0], [1, 1, 1]], [[0.5, 0.2], [0.5, 0.8]])
    W = semantic_affinity(spx, (2, 4), AffinityWeights()).toarray()
    expected = erf(20 * (0.15 - 0.5))  # distance 0.5 → repulsive
    assert W[1, 6] == pytest.approx(expected) and W[6, 1] == pytest.approx(expected)
    assert expected < 0
    assert np.count_nonzero(W) == 2  # only at the representative pixels


def test_semantic_affinity_attracts_similar_neighbours():
    spx = _two_superpixels([[0, 0, 0], [0.03, 0.04, 0.0]], [[0, 0, 0], [0, 0, 0]], [[0.5, 0.2], [0.5, 0.8]])
    W = semantic_affinity(spx, (2, 4), AffinityWeights()).toarray()
    assert W[1, 6] == pytest.approx(erf(20 * (0.15 - 0.05)))
    assert W[1, 6] > 0.9


def test_colour_affinity_hand_value_and_radius():
    near = _two_superpixels(np.zeros((2, 3)), [[0.2, 0.2, 0.2], [0.2, 0.23, 0.24]], [[0.5, 0.45], [0.5, 0.55]])
    W = colour_affinity(near, (2, 4), AffinityWeights()).toarray()
    d = 0.05  # ‖(0, 0.03, 0.04)‖
    assert W[1, 6] == pytest.approx((erf(50 * (0.05 - d)) + 1) / 2)  # = 0.5
    far = _two_superpixels(np.zeros((2, 3)), [[0.2, 0.2, 0.2], [0.2, 0.2, 0.2]], [[0.5, 0.1], [0.5, 0.9]])
    assert colour_affinity(far, (2, 4), AffinityWeights()).nnz == 0  # centroids 0.8 apart


def test_laplacian_is_symmetric_with_zero_row_sums_and_repulsion_shows():
    rng = np.random.default_rng(0)
    img = rng.random((24, 30, 3)).astype(np.float32)
    feats = np.repeat(np.linspace(0, 1, 30)[None, :, None], 24, 0).repeat(3, 2).astype(np.float32)
    spx = compute_superpixels(img, feats)
    L = build_laplacian(img, spx, AffinityWeights(semantic=0.05))
    assert sp.issparse(L)
    assert abs(L - L.T).max() < 1e-12
    assert np.abs(np.asarray(L.sum(axis=1))).max() < 1e-10


def test_weights_scale_their_terms():
    rng = np.random.default_rng(2)
    img = rng.random((12, 12, 3))
    labels = np.repeat(np.arange(4), 36).reshape(12, 12).astype(np.int32)
    spx = superpixel_statistics(img, img, labels)
    base = build_laplacian(img, spx, AffinityWeights(semantic=0.0, colour=0.0))
    sem = build_laplacian(img, spx, AffinityWeights(semantic=1.0, colour=0.0))
    diff = (sem - base).toarray()
    expected = laplacian_from_affinity(semantic_affinity(spx, (12, 12), AffinityWeights())).toarray()
    assert np.allclose(diff, expected)
