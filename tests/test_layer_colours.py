"""Layer colours: a soft layer alone over a new background shows no old-background fringe."""

from __future__ import annotations

import numpy as np

from sss_studio.segmentation.layer_colours import layer_colours


def _scene(h: int = 120, w: int = 160):
    """A warm foreground with a soft edge and thin soft strands, over a cool background."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    alpha = np.clip((w * 0.5 - xx) / 8.0 + 0.5, 0, 1)
    alpha = np.maximum(alpha, 0.6 * (np.abs(np.sin(yy / 5.0)) > 0.9) * (xx < w * 0.75))
    fg = np.stack([0.9 - 0.2 * yy / h, 0.6 + 0.0 * xx, 0.2 + 0.1 * xx / w], axis=2)
    bg = np.stack([0.1 + 0.0 * xx, 0.35 + 0.2 * yy / h, 0.85 + 0.0 * xx], axis=2)
    photo = alpha[:, :, None] * fg + (1 - alpha[:, :, None]) * bg
    return photo.astype(np.float32), alpha.astype(np.float32), fg.astype(np.float32)


def _error_ratio(photo: np.ndarray, alpha: np.ndarray, fg: np.ndarray) -> float:
    """The layer over a new background with its own colours against the true foreground
    over it, as a share of the same error with the photo's colours."""
    new_bg = np.array([0.2, 0.9, 0.2], np.float32)
    a = alpha[:, :, None]
    truth = a * fg + (1 - a) * new_bg
    ours = np.abs(a * layer_colours(photo, alpha) + (1 - a) * new_bg - truth).sum()
    raw = np.abs(a * photo + (1 - a) * new_bg - truth).sum()
    return float(ours / raw)


def test_composited_on_a_new_background_the_layer_colours_beat_the_photo_colours():
    photo, alpha, fg = _scene()
    assert _error_ratio(photo, alpha, fg) < 0.4     # 0.35 (two passes without the background's correction: 0.40)


def test_over_a_striped_background_the_old_background_is_taken_out_too():
    # A busy background behind soft strands: the background's local mean is itself
    # corrected by the compositing residual (blur fusion as Forte and Pitié give it).
    h, w = 160, 200
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    alpha = np.clip((w * 0.5 - xx) / 10.0 + 0.5, 0, 1)
    alpha = np.maximum(alpha, 0.5 * (np.abs(np.sin(yy / 4.0 + xx / 30.0)) > 0.85) * (xx < w * 0.8))
    fg = np.stack([0.85 - 0.3 * yy / h, 0.55 + 0.1 * xx / w, 0.25 + 0.0 * xx], axis=2)
    stripes = 0.5 + 0.5 * np.sin(xx / 3.0 + yy / 7.0)
    bg = np.stack([0.1 + 0.3 * stripes, 0.3 + 0.4 * (1 - stripes), 0.9 - 0.3 * stripes], axis=2)
    a = alpha[:, :, None]
    photo = (a * fg + (1 - a) * bg).astype(np.float32)
    assert _error_ratio(photo, alpha.astype(np.float32), fg) < 0.57    # 0.54 (the mean alone, two passes: 0.60)


def test_opaque_pixels_keep_the_photo_colour_exactly():
    photo, alpha, _ = _scene()
    est = layer_colours(photo, alpha)
    assert np.array_equal(est[alpha == 1], photo[alpha == 1])
    assert np.array_equal(layer_colours(photo, (alpha > 0.5).astype(np.float32)), photo)
