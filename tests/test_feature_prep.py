import numpy as np

from sss_studio.segmentation.features import FeatureParams, pca_project, preprocess_features
from sss_studio.segmentation.guided_filter import guided_filter, guided_upsample


def test_guided_filter_keeps_constants_and_is_linear():
    rng = np.random.default_rng(0)
    guide = rng.random((30, 40, 3)).astype(np.float32)
    ones = np.ones((30, 40), np.float32)
    assert np.allclose(guided_filter(guide, ones, 10, 0.01), 1.0, atol=1e-4)
    a, b = rng.random((2, 30, 40)).astype(np.float32)
    both = guided_filter(guide, np.dstack([a, b]), 10, 0.01)
    assert np.allclose(both[:, :, 0] + both[:, :, 1], guided_filter(guide, a + b, 10, 0.01), atol=1e-4)


def test_guided_filter_preserves_an_edge_of_the_guide():
    guide = np.zeros((20, 40, 3), np.float32)
    guide[:, 20:] = 1.0
    noisy = guide[:, :, 0] + np.random.default_rng(1).normal(0, 0.05, (20, 40)).astype(np.float32)
    out = guided_filter(guide, noisy, 6, 1e-3)
    assert out[:, :18].mean() < 0.05 and out[:, 22:].mean() > 0.95  # edge kept, noise smoothed
    assert out[:, :18].std() < noisy[:, :18].std() / 2


def test_guided_upsample_follows_full_resolution_edges_and_sums_to_one():
    full = np.zeros((80, 120, 3), np.float32)
    full[:, 61:] = 1.0  # an edge between the working-size pixel columns
    small = np.zeros((20, 30, 2), np.float32)
    small[:, :15, 0] = 1.0
    small[:, 15:, 1] = 1.0
    up = guided_upsample(full, small, size=5, eps=1e-4)
    assert up.shape == (80, 120, 2)
    assert np.allclose(up.sum(axis=2), 1.0, atol=1e-3)
    assert up[:, 58, 0].mean() > 0.9 and up[:, 63, 1].mean() > 0.9


def test_pca_keeps_the_dominant_directions():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(500, 3)) * [5.0, 2.0, 1.0]
    mixed = base @ np.linalg.qr(rng.normal(size=(8, 8)))[0][:3]
    proj = pca_project(mixed, 3)
    # Distances between points are preserved (projection onto the occupied subspace).
    d0 = np.linalg.norm(mixed[:50, None] - mixed[None, :50], axis=2)
    d1 = np.linalg.norm(proj[:50, None] - proj[None, :50], axis=2)
    assert np.allclose(d0, d1, atol=1e-3)


def test_preprocess_features_gives_three_channels_in_unit_range():
    rng = np.random.default_rng(3)
    img = rng.random((24, 32, 3)).astype(np.float32)
    emb = rng.normal(size=(24, 32, 64)).astype(np.float32) * 3
    f = preprocess_features(img, emb, FeatureParams())
    assert f.shape == (24, 32, 3) and f.dtype == np.float32
    assert np.allclose(f.reshape(-1, 3).min(0), 0) and np.allclose(f.reshape(-1, 3).max(0), 1)


def test_shared_scale_keeps_the_embeddings_distances_up_to_one_factor():
    # The fast preset's features: 4 components, all scaled by the widest one's range, so a
    # weak (noisy) component is not stretched to the strong ones' range as per-component
    # min-max does; pixel-to-pixel distances are the filtered embedding's, times one factor.
    rng = np.random.default_rng(4)
    img = np.full((24, 32, 3), 0.5, np.float32)       # flat guide: the guided filter is a box blur
    strengths = np.array([4.0, 2.0, 1.0, 0.25, 0.01])
    emb = (rng.normal(size=(24, 32, 5)) * strengths).astype(np.float32)
    emb = emb @ np.linalg.qr(rng.normal(size=(16, 16)))[0][:5].astype(np.float32)   # 16-D, mixed
    params = FeatureParams(dims=4, shared_scale=True, clamp=100.0)
    f = preprocess_features(img, emb, params).reshape(-1, 4)
    assert f.min() >= 0.0 and np.isclose(f.max(), 1.0)
    assert np.isclose(f.max(axis=0).max(), 1.0) and f.max(axis=0).min() < 0.5   # ranges kept unequal
    filtered = guided_filter(img, emb, params.filter_size, params.filter_eps).reshape(-1, 16)
    d_emb = np.linalg.norm(filtered[:60, None] - filtered[None, :60], axis=2)
    d_feat = np.linalg.norm(f[:60, None] - f[None, :60], axis=2)
    factor = d_feat[d_emb > 0].mean() / d_emb[d_emb > 0].mean()
    np.testing.assert_allclose(d_feat, factor * d_emb, atol=0.02)
    per_component = preprocess_features(img, emb, FeatureParams(dims=4, clamp=100.0)).reshape(-1, 4)
    assert np.allclose(per_component.max(axis=0), 1.0)                      # the paper's way, for contrast
