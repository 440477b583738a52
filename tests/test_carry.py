"""Edits survive a re-run: new layers take over the edits of the earlier layer they
overlap most, and merged layers come back merged (layers.carry)."""

import numpy as np

from sss_studio.layers import Layer, Recolour
from sss_studio.layers.carry import carry_edits


def _bands(bounds, w=60, h=20, soft=2.0):
    """Vertical soft bands with edges at ``bounds`` (x), K×H×W summing to one."""
    x = np.arange(w)[None, :].repeat(h, 0).astype(np.float64)
    edges = [0.0, *bounds, float(w)]
    ramps = [np.clip((x - e) / soft + 0.5, 0, 1) for e in edges[1:-1]]
    cum = [np.ones_like(x), *ramps, np.zeros_like(x)]
    return np.stack([cum[i] - cum[i + 1] for i in range(len(edges) - 1)]).astype(np.float32)


def test_each_new_layer_takes_over_the_edits_of_the_one_it_overlaps():
    old = _bands([20, 40])
    layers = [Layer("sky", (1, 2, 3), recolour=Recolour(hue=30)), Layer("sea", (4, 5, 6), visible=False),
              Layer("boat", (7, 8, 9))]
    new = _bands([22, 41])[[2, 0, 1]]           # moved a little, and in another order
    c = carry_edits(old, layers, new, ["a", "b", "c"])
    assert [l.name for l in c.layers] == ["sky", "sea", "boat"]
    assert c.layers[0].recolour == Recolour(hue=30) and not c.layers[1].visible
    assert np.array_equal(c.alphas[0], new[1]) and c.kept == 3 and c.new == [] and c.gone == []
    assert np.allclose(c.alphas.sum(axis=0), 1.0)


def test_a_layer_with_no_earlier_match_is_new_and_said_so():
    old = _bands([30])
    layers = [Layer("left", (230, 25, 75)), Layer("right", (60, 180, 75))]
    c = carry_edits(old, layers, _bands([15, 30, 45]), ["a", "b", "c", "d"])
    assert len(c.layers) == 4 and c.kept == 2
    assert len(c.new) == 2 and set(c.new) <= {"a", "b", "c", "d"}
    colours = [l.colour for l in c.layers]
    assert len(set(colours)) == 4   # new layers get colours no kept layer has


def test_a_merged_layer_comes_back_merged():
    old = _bands([20, 40])
    merged = np.stack([old[0] + old[1], old[2]])
    layers = [Layer("sky + sea", (1, 2, 3), recolour=Recolour(saturation=0.5), merged=True), Layer("boat", (7, 8, 9))]
    new = _bands([21, 39])                        # the run splits the merged region again
    c = carry_edits(merged, layers, new, ["a", "b", "c"])
    assert [l.name for l in c.layers] == ["sky + sea", "boat"] and c.layers[0].merged
    assert np.allclose(c.alphas[0], new[0] + new[1]) and np.allclose(c.alphas.sum(axis=0), 1.0)
    assert c.layers[0].recolour == Recolour(saturation=0.5)


def test_fewer_layers_say_which_earlier_ones_have_no_match():
    old = _bands([15, 30, 45])
    layers = [Layer(n, (i, i, i)) for i, n in enumerate("abcd")]
    c = carry_edits(old, layers, _bands([30]), ["x", "y"])
    assert len(c.layers) == 2 and c.kept == 2 and len(c.gone) == 2
