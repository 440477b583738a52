"""The soft brush changes one layer's alpha under the brush only, keeps Σα = 1, and
gives or takes the alpha from the other layers as the studio promises (layers.brush)."""

import numpy as np

from sss_studio.layers.brush import BrushParams, Stroke


def _three(h=40, w=60):
    x = np.linspace(0, 1, w)[None, :].repeat(h, 0)
    a = np.stack([1 - x, x * 0.5, x * 0.5]).astype(np.float32)
    return a / a.sum(0)


def test_adding_raises_the_layer_under_the_brush_only():
    a = _three()
    s = Stroke(a, 1, BrushParams(radius=6, hardness=0.8), add=True)
    s.to(20, 20)
    s.to(35, 20)
    out = s.result()
    assert np.allclose(out.sum(axis=0), 1.0, atol=1e-5)
    changed = np.abs(out - a).max(axis=0) > 1e-6
    yy, xx = np.mgrid[0:40, 0:60]
    near = (np.abs(yy + 0.5 - 20) <= 6.5) & (xx + 0.5 >= 20 - 6.5) & (xx + 0.5 <= 35 + 6.5)
    assert changed.any() and not (changed & ~near).any()     # nothing outside the brush
    assert out[1, 20, 27] > 0.99 and out[1, 20, 27] > a[1, 20, 27]   # the centre of the stroke: all of it
    assert not np.shares_memory(out, a) and np.array_equal(a, _three())   # the start is untouched


def test_subtracting_gives_the_alpha_to_the_largest_other_layer():
    a = _three()
    s = Stroke(a, 0, BrushParams(radius=5, hardness=1.0), add=False)
    s.to(10, 10)
    out = s.result()
    assert out[0, 10, 10] < 1e-6
    assert np.allclose(out.sum(axis=0), 1.0, atol=1e-5)
    gained = out[1:, 10, 10] - a[1:, 10, 10]
    assert np.isclose(gained.sum(), a[0, 10, 10], atol=1e-5) and (gained >= -1e-7).all()


def test_going_over_the_same_spot_does_not_build_up():
    a = _three()
    once = Stroke(a, 2, BrushParams(radius=8, hardness=0.0, strength=0.4), add=True)
    once.to(30, 20)
    twice = Stroke(a, 2, BrushParams(radius=8, hardness=0.0, strength=0.4), add=True)
    for _ in range(3):
        twice.to(30, 20)
    assert np.allclose(once.result(), twice.result())
