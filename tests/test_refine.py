"""Edge refinement at full resolution (segmentation/refine.py) on synthetic photos with a
known soft boundary, made here at 4× the working size."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from sss_studio.segmentation.cancel import Cancelled
from sss_studio.segmentation.params import RefineParams, SegmenterParams
from sss_studio.segmentation.pipeline import Segmenter
from sss_studio.segmentation.refine import missed_structures, refine_layers, uncertain_band


def _blurred_disc(h: int = 256, w: int = 320) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = np.hypot(yy - h * 0.5, xx - w * 0.45)
    return np.clip((70.0 - r) / 5.0 + 0.5, 0.0, 1.0)


def _hair(h: int = 256, w: int = 320) -> np.ndarray:
    """A solid block on the left whose edge frays into thin wavy strands (1–2 px wide)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    alpha = np.clip((w * 0.35 - xx) / 2.0 + 0.5, 0.0, 1.0)
    for i in range(14):
        centre = 12 + i * 17.0 + 6.0 * np.sin(xx / (9.0 + i % 4) + i)
        strand = np.clip(1.2 - np.abs(yy - centre), 0.0, 1.0) * (xx > w * 0.3) * (xx < w * (0.55 + 0.02 * (i % 5)))
        alpha = np.maximum(alpha, strand)
    return alpha


def _composite(alpha: np.ndarray, seed: int = 0):
    """A photo of a foreground over a background (smooth colour gradients, a little noise),
    features that tell the two apart, and the true layers (foreground first)."""
    h, w = alpha.shape
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    fg = np.stack([0.85 - 0.1 * yy / h, 0.55 + 0.1 * xx / w, 0.2 + 0.0 * xx], axis=2)
    bg = np.stack([0.15 + 0.1 * xx / w, 0.3 + 0.0 * xx, 0.75 - 0.1 * yy / h], axis=2)
    a = alpha[:, :, None].astype(np.float32)
    photo = np.clip(a * fg + (1 - a) * bg + rng.normal(0, 0.005, (h, w, 3)), 0, 1).astype(np.float32)
    truth = np.stack([alpha, 1 - alpha]).astype(np.float32)
    features = np.einsum("khw,kc->hwc", truth, np.array([[0.9, 0.2, 0.1], [0.1, 0.1, 0.9]])).astype(np.float32)
    return photo, features, truth


@functools.lru_cache(maxsize=None)
def _run(make):
    """The fast pipeline at a quarter of the photo's side: (upsampled, refined, truth)."""
    photo, features, truth = _composite(make())
    h, w = photo.shape[:2]
    seg = Segmenter(SegmenterParams(layers=2, working_pixels=h * w // 16))
    seg.set_image(photo, features)
    refined = seg.run().alphas
    up = seg.cached("upsampling")
    if np.abs(up[0] - truth[0]).sum() > np.abs(up[1] - truth[0]).sum():   # layer order is the solver's
        up, refined = up[::-1], refined[::-1]
    return up, refined, truth


def _band_error(layers: np.ndarray, truth: np.ndarray) -> float:
    band = (truth[0] > 0.02) & (truth[0] < 0.98)
    return float(np.abs(layers[0] - truth[0])[band].sum())


def test_a_blurred_edge_refined_at_full_size_has_at_most_half_the_upsampled_error():
    up, refined, truth = _run(_blurred_disc)
    assert _band_error(refined, truth) <= 0.5 * _band_error(up, truth)
    np.testing.assert_allclose(refined.sum(axis=0), 1.0, atol=1e-3)
    assert refined.min() >= 0.0 and refined.max() <= 1.0


def test_hair_refined_at_full_size_has_at_most_half_the_upsampled_error():
    # Strands thinner than a working-size pixel are lost before refinement; the edges
    # stage finds them by their colour and solves them at full size.
    up, refined, truth = _run(_hair)
    assert _band_error(refined, truth) <= 0.5 * _band_error(up, truth)
    np.testing.assert_allclose(refined.sum(axis=0), 1.0, atol=1e-3)


def test_strands_the_working_size_missed_are_found_by_their_colour():
    up, _, truth = _run(_hair)
    photo, _, _ = _composite(_hair())
    found = missed_structures(photo, up)
    band = uncertain_band(up, 4.0, RefineParams())
    strands = (truth[0] > 0.5) & ~band & (up[1] > 0.9)   # strand cores the upsampled layers gave away
    assert strands.sum() > 500
    assert found[strands].mean() > 0.6
    assert not found[truth[0] == 0].any()                # nothing in the plain background
    assert not missed_structures(photo, up, RefineParams(missed_share=1.1)).any()


def test_far_from_any_edge_one_layer_is_exactly_one():
    up, refined, truth = _run(_blurred_disc)
    for y, x in [(5, 5), (128, 144), (250, 315)]:   # a corner, the disc's centre, a far corner
        top = int(refined[:, y, x].argmax())
        assert refined[top, y, x] == pytest.approx(1.0, abs=1e-3)
        assert np.delete(refined[:, y, x], top).max() <= 1e-3
    far = (truth[0] == 0) | (truth[0] == 1)
    far &= ~uncertain_band(up, 4.0, RefineParams())
    assert (refined.max(axis=0)[far] == 1.0).mean() > 0.99


def test_band_covers_the_soft_edge_and_not_the_flat_regions():
    up, _, truth = _run(_blurred_disc)
    band = uncertain_band(up, 4.0, RefineParams())
    soft = (truth[0] > 0.02) & (truth[0] < 0.98)
    assert band[soft].mean() > 0.99
    assert band.mean() < 0.3


def test_refinement_can_be_cancelled():
    up, _, _ = _run(_blurred_disc)
    photo = np.random.default_rng(0).random(up.shape[1:] + (3,), dtype=np.float32)
    with pytest.raises(Cancelled):
        refine_layers(photo, up, 4.0, cancel=lambda: True)


def test_the_preview_shows_the_upsampled_layers_before_the_edges():
    photo, features, _ = _composite(_blurred_disc())
    h, w = photo.shape[:2]
    seg = Segmenter(SegmenterParams(layers=2, working_pixels=h * w // 16))
    seg.set_image(photo, features)
    seen = []
    result = seg.run(preview=seen.append)
    assert len(seen) == 1 and seen[0].alphas.shape == result.alphas.shape
    assert not np.array_equal(seen[0].alphas, result.alphas)


def test_the_input_layers_are_left_alone_even_when_read_only():
    up, _, _ = _run(_blurred_disc)
    frozen = up.copy()
    frozen.setflags(write=False)        # as a LayerStack leaves the layers it shows
    photo, _, _ = _composite(_blurred_disc())
    refined = refine_layers(photo, frozen, 4.0)
    assert np.array_equal(frozen, up) and refined is not frozen


def test_a_slider_re_run_refines_again_only_where_the_layers_moved():
    """After a weight change the edges stage starts from the previous refined layers:
    where the upsampled layers did not move they are kept bit for bit, where they did
    the result is close to refining the new layers from scratch."""
    from dataclasses import replace

    from sss_studio.segmentation.refine import changed_region, refine_again

    photo, features, truth = _composite(_blurred_disc())
    h, w = photo.shape[:2]
    p = SegmenterParams(layers=2, working_pixels=h * w // 16)
    seg = Segmenter(p)
    seg.set_image(photo, features)
    first = seg.run()
    up0 = np.array(seg.cached("upsampling"))
    if np.abs(up0[0] - truth[0]).sum() > np.abs(up0[1] - truth[0]).sum():   # layer 0: the disc
        truth = truth[::-1]
    # A small weight change moves few upsampled pixels by 0.02 (a warm re-run's own jitter
    # reaches about that, with the thread count): everywhere else the previous edges stay.
    second = seg.run(replace(p, weights=replace(p.weights, semantic=p.weights.semantic * 1.5)))
    up1 = seg.cached("upsampling")
    still = ~changed_region(up1 - up0, 4.0, p.refine)
    assert not np.array_equal(up0, up1) and still.mean() > 0.9
    assert np.array_equal(second.alphas[:, still], first.alphas[:, still])
    assert np.abs(second.alphas - refine_layers(photo, up1, 4.0, p.refine)).mean() < 0.005
    # Layers that moved in one place (the disc's rim widened on its right): refined
    # again there, close to a refinement from scratch; bit for bit the same elsewhere.
    moved = up0.copy()
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(yy - h * 0.5, xx - w * 0.45)
    patch = (xx > w * 0.45 + 40) & (np.abs(r - 70) < 12)
    moved[0][patch] = np.clip((82.0 - r[patch]) / 24.0, 0, 1)
    moved[1][patch] = 1 - moved[0][patch]
    region = changed_region(moved - up0, 4.0, p.refine)
    assert 0.0 < region.mean() < 0.2
    again = refine_again(photo, moved, 4.0, p.refine, up0, first.alphas)
    assert np.array_equal(again[:, ~region], first.alphas[:, ~region])
    # The photo's rim is where it was: refined again, the widened rim goes back as far
    # as a refinement from scratch takes it.
    cold = refine_layers(photo, moved, 4.0, p.refine)
    err = {name: float(np.abs(a[0] - truth[0])[patch].mean()) for name, a in
           (("moved", moved), ("again", again), ("cold", cold))}
    assert err["again"] <= 0.5 * err["moved"] and err["again"] <= 1.2 * err["cold"] + 0.005, err
    np.testing.assert_allclose(again.sum(axis=0), 1.0, atol=1e-3)
