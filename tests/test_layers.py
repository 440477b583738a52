"""LayerStack: merge, hit-test, recolour through the soft alpha, undo data."""

import colorsys

import numpy as np
import pytest

from sss_studio.layers import (
    Layer,
    LayerStack,
    Recolour,
    apply_recolour,
    hsv_to_rgb,
    rgb_to_hsv,
    sums_to_one,
)

from synthetic import soft_regions


@pytest.fixture
def stack():
    image, _, alphas = soft_regions(40, 56)
    return LayerStack(image, alphas.astype(np.float32))


def test_hsv_round_trip_matches_colorsys():
    rng = np.random.default_rng(1)
    rgb = rng.random((200, 3)).astype(np.float32)
    hsv = rgb_to_hsv(rgb)
    ref = np.array([colorsys.rgb_to_hsv(*c) for c in rgb])
    assert np.allclose(hsv, ref, atol=1e-5)
    assert np.allclose(hsv_to_rgb(hsv), rgb, atol=1e-5)


def test_default_layers_and_validation(stack):
    assert len(stack) == 3
    assert [l.name for l in stack.layers] == ["Layer 1", "Layer 2", "Layer 3"]
    assert len({l.colour for l in stack.layers}) == 3
    with pytest.raises(ValueError):
        LayerStack(stack.image, stack.alphas[:, :10])
    with pytest.raises(ValueError):
        LayerStack(stack.image, stack.alphas, [Layer("a", (0, 0, 0))])


def test_hit_test_picks_largest_alpha(stack):
    h, w = stack.shape
    assert stack.hit_test(2, h // 2) == 0            # left band
    assert stack.hit_test(int(w * 0.72), h // 2) == 2  # disc centre
    assert stack.hit_test(w * 0.55, 2) == 1          # the rest
    assert stack.hit_test(-1, 3) is None and stack.hit_test(w, 3) is None


def test_merge_keeps_sum_one_and_is_the_sum(stack):
    before = stack.alphas.copy()
    stack.rename(1, "sky")
    stack.rename(2, "sun")
    j = stack.merge([2, 1])
    assert j == 1 and len(stack) == 2
    assert np.array_equal(stack.alphas[0], before[0])
    assert np.allclose(stack.alphas[1], before[1] + before[2])
    assert sums_to_one(stack.alphas)
    assert stack.layer(1).name == "sky + sun"
    with pytest.raises(ValueError):
        stack.merge([0])


def test_merge_recolour_kept_only_when_shared(stack):
    rc = Recolour(hue=90)
    stack.set_recolour(0, rc)
    stack.set_recolour(1, rc)
    stack.merge([0, 1])
    assert stack.layer(0).recolour == rc
    stack.set_recolour(1, Recolour(saturation=0.2))
    stack.merge([0, 1])
    assert stack.layer(0).recolour.is_identity


def test_recolour_changes_pixels_only_under_the_layer(stack):
    alphas = stack.alphas.astype(np.float64)
    # Make the disc's alpha exactly zero outside a ring to test the "only where α>0" rule.
    assert (alphas[2] == 0).any()
    stack.set_recolour(2, Recolour(hue=120, saturation=1.5, brightness=0.8))
    edited = stack.edited_image()
    changed = np.abs(edited - stack.image).max(axis=-1) > 0
    assert changed.any()
    assert (alphas[2][changed] > 0).all()
    # Fully inside the layer, the pixel is the recoloured pixel.
    inside = alphas[2] > 0.999
    full = apply_recolour(stack.image, stack.layer(2).recolour)
    assert np.allclose(edited[inside], np.clip(full[inside], 0, 1), atol=2e-3)
    # Soft edge: change is proportional to alpha.
    diff = np.abs(edited - stack.image).sum(-1)
    fulldiff = np.abs(full - stack.image).sum(-1)
    soft = (alphas[2] > 0.2) & (alphas[2] < 0.8) & (fulldiff > 0.05)
    assert soft.any()
    assert np.allclose(diff[soft] / fulldiff[soft], alphas[2][soft], atol=0.02)


def test_tint_keeps_luminance():
    rgb = np.array([[[0.5, 0.5, 0.5], [0.2, 0.4, 0.6]]], np.float32)
    out = apply_recolour(rgb, Recolour(tint=(1.0, 0.0, 0.0), tint_strength=1.0))
    luma = np.array([0.299, 0.587, 0.114])
    # Pure red cannot reach 0.5 luminance: it saturates, but it is red.
    assert out[0, 0, 0] == pytest.approx(1.0) and out[0, 0, 1] == 0
    out2 = apply_recolour(rgb, Recolour(tint=(0.5, 0.5, 0.6), tint_strength=1.0))
    assert np.allclose(out2 @ luma, rgb @ luma, atol=1e-3)
    assert Recolour(hue=360).is_identity and Recolour(tint=(1, 0, 0)).is_identity


def test_snapshot_restore_is_exact(stack):
    s0 = stack.snapshot()
    img0 = stack.edited_image()
    stack.set_recolour(0, Recolour(hue=45))
    stack.rename(1, "x")
    stack.set_visible(2, False)
    stack.merge([0, 1])
    assert len(stack) == 2
    stack.restore(s0)
    assert stack.alphas is s0.alphas
    assert stack.layers == s0.layers
    assert np.array_equal(stack.edited_image(), img0)
    # Alphas are never written in place, so the snapshot stays valid.
    with pytest.raises(ValueError):
        stack.alphas[0, 0, 0] = 1.0


def test_composite_hidden_and_isolated(stack):
    full = stack.composite()
    assert np.allclose(full, stack.image, atol=1e-6)
    stack.set_visible(0, False)
    bg = np.zeros(stack.image.shape, np.float32)
    hidden = stack.composite(background=bg)
    a0 = stack.alphas[0]
    assert np.allclose(hidden, stack.image * (1 - a0[:, :, None]), atol=1e-5)
    # A layer alone shows its own colours (as exported): the photo's where it is opaque.
    alone = stack.isolated([0], background=bg)
    assert np.allclose(alone, stack.own_colours(0) * a0[:, :, None], atol=1e-5)
    opaque = a0 >= 1.0 - 1e-6
    assert opaque.any() and np.allclose(alone[opaque], stack.image[opaque], atol=1e-5)


def test_overlay_thumbnail_outline(stack):
    over = stack.overlay(stack.image, 0.5)
    assert over.shape == stack.image.shape and not np.allclose(over, stack.image)
    assert np.array_equal(stack.overlay(stack.image, 0.0), stack.image)
    th = stack.thumbnail(0, 32)
    assert max(th.shape[:2]) == 32 and th.shape[2] == 3
    ol = stack.outline([2])
    assert ol.any() and not ol.all()


def test_serialisation_round_trip():
    l = Layer("a", (1, 2, 3), False, Recolour(10, 0.5, 1.2, (0.1, 0.2, 0.3), 0.4))
    assert Layer.from_dict(l.to_dict()) == l


def test_render_view_modes(stack):
    from sss_studio.layers import render_view

    for mode in ("overlay", "layer", "photo"):
        out = render_view(stack, mode, 0.5, [2])
        assert out.shape == stack.image.shape and out.dtype == np.float32
        assert 0 <= out.min() and out.max() <= 1
    assert np.allclose(render_view(stack, "photo", 0.5), stack.image, atol=1e-6)
    with pytest.raises(ValueError):
        render_view(stack, "nope", 0.5)


def test_downscaled_preview(stack):
    assert stack.downscaled(10**9) is stack
    small = stack.downscaled(400)
    assert small.shape[0] * small.shape[1] <= 400
    assert small.layers == stack.layers and sums_to_one(small.alphas)
