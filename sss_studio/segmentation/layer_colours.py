"""A layer's own colours, so that it composites onto a new background without a fringe.

In a soft pixel the photo's colour is a mix, I = α·F + (1 − α)·B: a layer exported with
the photo's colours carries the old background's share into any new composite. This
estimates F for one layer against the rest of the photo with blur fusion (Forte and
Pitié, "Approximate fast foreground colour estimation", ICIP 2021): local α-weighted
means of the foreground and background, then the residual of the compositing equation
given back to both in proportion to α and 1 − α; a wide pass, a narrow one and a third
of a pixel or two (docs/solver.md, "Layer colours judged on composites"). Box filters
only, O(N) at any radius. Where α is 1 the result is the photo's colour exactly.
"""

from __future__ import annotations

import cv2
import numpy as np


def box_mean(x: np.ndarray, radius: int) -> np.ndarray:
    """The mean over a (2·radius + 1)² box, O(N) at any radius (edges reflected)."""
    return cv2.boxFilter(x, -1, (2 * radius + 1, 2 * radius + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def colour_radii(h: int, w: int) -> tuple[int, int, int]:
    """The three passes' radii: 90, 6 and 2 pixels for a 1-megapixel photo, in proportion
    to the photo's side."""
    s = (h * w / 1e6) ** 0.5
    return max(3, round(90 * s)), max(1, round(6 * s)), max(1, round(2 * s))


def layer_colours(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """H×W×3 float32: the colours of the layer whose alpha is ``alpha`` (H×W), the photo's
    own where α is 1 (and where α is 0, where no colour shows)."""
    image = np.asarray(image, np.float32)
    a = np.clip(np.asarray(alpha, np.float32), 0.0, 1.0)
    soft = (a > 0.0) & (a < 1.0)
    if not soft.any():
        return image
    a3 = a[:, :, None]
    fg, bg = image, image
    for radius in colour_radii(*a.shape):
        mean_a = box_mean(a, radius)[:, :, None]
        fg_mean = box_mean(fg * a3, radius) / (mean_a + 1e-5)
        bg_mean = box_mean(bg * (1.0 - a3), radius) / (1.0 - mean_a + 1e-5)
        residual = image - a3 * fg_mean - (1.0 - a3) * bg_mean
        fg = np.clip(fg_mean + a3 * residual, 0.0, 1.0)
        bg = np.clip(bg_mean + (1.0 - a3) * residual, 0.0, 1.0)
    return np.where(soft[:, :, None], fg, image).astype(np.float32)
