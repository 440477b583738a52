"""Grouping soft segments into layers (k-means on their mean features), cold and warm."""

from __future__ import annotations

import numpy as np

from sss_studio.segmentation.sparsify import assign_segments, group_segments


def _segments(rng, sizes=(300, 200, 100), per=4):
    """Hard segments over N pixels, ``per`` segments in each of three feature clusters."""
    n = sum(sizes)
    feats = np.zeros((n, 3))
    seg_of = np.zeros(n, int)
    start, s = 0, 0
    for c, size in enumerate(sizes):
        feats[start:start + size] = np.eye(3)[c] + 0.02 * rng.standard_normal((size, 3))
        seg_of[start:start + size] = s + (np.arange(size) * per) // size
        start, s = start + size, s + per
    segments = (seg_of[:, None] == np.arange(s)[None, :]).astype(float)
    return segments, feats


def test_layers_are_ordered_by_size_and_sum_to_one():
    segments, feats = _segments(np.random.default_rng(0))
    layers = group_segments(segments, feats, 3)
    assert np.allclose(layers.sum(axis=1), 1.0)
    assert list(layers.sum(axis=0)) == [300, 200, 100]


def test_a_warm_grouping_keeps_each_layer_in_its_place():
    # After a slider move the same segments come back slightly changed; with the previous
    # assignment the layers keep their indices, even where a cold run would reorder them
    # by size.
    rng = np.random.default_rng(1)
    segments, feats = _segments(rng)
    first = assign_segments(segments, feats, 3)
    # Cluster 2 grows past cluster 1: a cold grouping would now put it at index 1.
    taken = np.r_[0:40, 75:115, 150:190]   # 120 pixels of cluster 0 (from three of its segments) …
    grown = segments.copy()
    grown[taken] = 0.0
    grown[taken, 8] = 1.0                  # … join a cluster-2 segment: 180 / 200 / 220 pixels
    feats2 = feats.copy()
    feats2[taken] = np.eye(3)[2]           # … and take its colour
    cold = assign_segments(grown, feats2, 3)
    warm = assign_segments(grown, feats2, 3, previous=first)
    assert not np.array_equal(cold, first)
    assert np.array_equal(warm, first)
    # A previous assignment for another number of layers is ignored.
    assert np.array_equal(assign_segments(grown, feats2, 2, previous=first),
                          assign_segments(grown, feats2, 2))
