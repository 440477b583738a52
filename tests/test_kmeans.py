"""k-means: seeded, finds well-separated clusters, and its numba assignment agrees with numpy."""

import numpy as np
import pytest

from sss_studio.segmentation import kmeans as K


def _blobs(seed=0, n=3000, k=4):
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0], [5, 0, 0], [0, 5, 0], [0, 0, 5]], float)[:k]
    truth = rng.integers(0, k, n)
    return centres[truth] + 0.3 * rng.standard_normal((n, 3)), truth


def test_finds_separated_clusters_and_repeats():
    x, truth = _blobs()
    labels, centres = K.kmeans(x, 4, seed=3)
    # Every true cluster maps to exactly one found cluster.
    pairs = {(int(t), int(lab)) for t, lab in zip(truth, labels)}
    assert len(pairs) == 4 and len({lab for _, lab in pairs}) == 4
    labels2, centres2 = K.kmeans(x, 4, seed=3)
    assert np.array_equal(labels, labels2) and np.array_equal(centres, centres2)


@pytest.mark.skipif(not K.HAVE_NUMBA, reason="numba not installed")
def test_numba_assignment_matches_numpy(monkeypatch):
    x, _ = _blobs(seed=1, n=5000)
    c = np.random.default_rng(2).standard_normal((7, 3)) * 3
    labels, dist = K._nearest(x, c)
    d = K._sq_dist(x, c)
    assert np.array_equal(labels, np.argmin(d, axis=1))
    assert np.allclose(dist, d.min(axis=1), rtol=1e-9, atol=1e-9)
    fast = K.kmeans(x, 6, seed=0)
    monkeypatch.setattr(K, "HAVE_NUMBA", False)
    slow = K.kmeans(x, 6, seed=0)
    assert np.array_equal(fast[0], slow[0])
    assert np.allclose(fast[1], slow[1])
