"""Guided filter: the banded full-resolution upsampling against a whole-image reference,
constants, sums of layers, and edges that follow the full-resolution photo."""

import cv2
import numpy as np
import pytest

from sss_studio.segmentation.guided_filter import guided_filter_coefficients, guided_upsample


def _photo(h, w, seed=0):
    """A smooth random colour photo with some fine texture, in [0, 1]."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.random((h // 8 + 2, w // 8 + 2, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(base + rng.normal(0, 0.03, (h, w, 3)).astype(np.float32), 0, 1)


def _softmax_layers(h, w, k, seed=1):
    rng = np.random.default_rng(seed)
    z = cv2.GaussianBlur(rng.normal(size=(h, w, k)).astype(np.float32), (0, 0), 2) * 8
    e = np.exp(z - z.max(axis=2, keepdims=True))
    return (e / e.sum(axis=2, keepdims=True)).astype(np.float32)


def _reference_upsample(full, small, size, eps):
    """The straightforward formula: a and b resized whole (INTER_LINEAR), q = Σ a·I + b."""
    H, W = full.shape[:2]
    h, w = small.shape[:2]
    guide_small = cv2.resize(full, (w, h), interpolation=cv2.INTER_AREA)
    a, b = guided_filter_coefficients(guide_small, small, size, eps)  # h×w×C×3, h×w×C
    c = a.shape[2]
    a = a.reshape(h, w, c * 3)
    a_up = np.concatenate([cv2.resize(np.ascontiguousarray(a[:, :, i:i + 1]), (W, H), interpolation=cv2.INTER_LINEAR)[:, :, None]
                           for i in range(c * 3)], axis=2).reshape(H, W, c, 3)
    b_up = np.stack([cv2.resize(np.ascontiguousarray(b[:, :, i]), (W, H), interpolation=cv2.INTER_LINEAR) for i in range(c)], axis=2)
    return (a_up.astype(np.float64) * full[:, :, None, :]).sum(axis=3) + b_up


@pytest.mark.parametrize("band_rows", [7, 64, 1000])
def test_banded_upsample_equals_whole_image_bilinear_reference(band_rows):
    full = _photo(203, 171)  # 203 rows: not a multiple of any band size used
    small = _softmax_layers(47, 40, 3)
    ref = _reference_upsample(full, small, 5, 1e-3)
    up = guided_upsample(full, small, size=5, eps=1e-3, band_rows=band_rows)
    assert up.shape == (203, 171, 3) and up.dtype == np.float32
    assert np.abs(up - ref).max() < 1e-5
    # The other layouts give the same numbers.
    first = guided_upsample(full, small, size=5, eps=1e-3, band_rows=band_rows, channels_first=True)
    assert np.abs(np.moveaxis(first, 0, -1) - up).max() < 1e-6
    out = np.full((203, 171, 3), np.nan, np.float32)
    assert guided_upsample(full, small, size=5, eps=1e-3, band_rows=band_rows, out=out) is out
    assert np.abs(out - up).max() < 1e-6
    one = guided_upsample(full, small[:, :, 1], size=5, eps=1e-3, band_rows=band_rows)
    assert one.shape == (203, 171) and np.abs(one - up[:, :, 1]).max() < 1e-5


def test_coefficients_match_a_per_pixel_float64_solve():
    rng = np.random.default_rng(3)
    guide = _photo(24, 30)
    guide[:, :, 2] = guide[:, :, 1]  # nearly singular colour covariance: ε must carry it
    src = rng.random((24, 30, 2)).astype(np.float32)
    size, eps = 5, 1e-3
    a, b = guided_filter_coefficients(guide, src, size, eps)
    box = lambda x: cv2.boxFilter(x, -1, (size, size), borderType=cv2.BORDER_REPLICATE)  # noqa: E731
    g, s = guide.astype(np.float64), src.astype(np.float64)
    mi = np.dstack([box(g[:, :, k]) for k in range(3)])
    cov = np.stack([np.dstack([box(g[:, :, p] * g[:, :, q]) - mi[:, :, p] * mi[:, :, q] for q in range(3)]) for p in range(3)], 2)
    for c in range(2):
        mp = box(s[:, :, c])
        cip = np.dstack([box(g[:, :, k] * s[:, :, c]) - mi[:, :, k] * mp for k in range(3)])
        ac = np.linalg.solve(cov + eps * np.eye(3), cip[..., None])[..., 0]
        bc = mp - (ac * mi).sum(axis=2)
        ac = np.dstack([box(ac[:, :, k]) for k in range(3)])
        assert np.abs(a[:, :, c] - ac).max() < 1e-3 * max(1.0, np.abs(ac).max())
        assert np.abs(b[:, :, c] - box(bc)).max() < 1e-3


def test_constants_map_to_constants():
    full = _photo(150, 97, seed=4)
    small = np.full((30, 20, 2), 0.3, np.float32)
    small[:, :, 1] = 1.0
    up = guided_upsample(full, small, size=5, eps=1e-4)
    assert np.abs(up[:, :, 0] - 0.3).max() < 1e-5 and np.abs(up[:, :, 1] - 1.0).max() < 1e-5


def test_layers_summing_to_one_still_sum_to_one():
    full = _photo(230, 310, seed=5)
    small = _softmax_layers(46, 62, 5, seed=6)
    up = guided_upsample(full, small, size=5, eps=1e-4, channels_first=True)
    assert up.shape == (5, 230, 310)
    assert np.abs(up.sum(axis=0) - 1.0).max() < 1e-4


def test_soft_edges_follow_a_sharp_edge_of_the_full_photo():
    """A step edge between working-size pixels: the guided upsampling keeps the layer's edge
    where the photo's is, about as sharp as the photo; plain bilinear spreads it over pixels."""
    H, W, f = 120, 160, 4
    yy, xx = np.mgrid[0:H, 0:W]
    mask = (xx > 0.2 * yy + 70).astype(np.float32)  # slanted step, off the working grid
    full = np.dstack([0.2 + 0.6 * mask, 0.3 + 0.4 * mask, 0.7 - 0.5 * mask]).astype(np.float32)
    small_mask = cv2.resize(mask, (W // f, H // f), interpolation=cv2.INTER_AREA)
    layers = np.dstack([small_mask, 1.0 - small_mask]).astype(np.float32)
    guided = guided_upsample(full, layers, size=5, eps=1e-4)[:, :, 0]
    bilinear = cv2.resize(small_mask, (W, H), interpolation=cv2.INTER_LINEAR)
    err_g, err_b = np.abs(guided - mask).mean(), np.abs(bilinear - mask).mean()
    assert err_g < 0.3 * err_b
    soft = lambda x: ((x > 0.1) & (x < 0.9)).sum(axis=1).mean()  # noqa: E731  (edge width, pixels per row)
    assert soft(guided) < 1.0 and soft(bilinear) >= 3.0
