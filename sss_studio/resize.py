"""The one resize helper: float maps of any channel count, with OpenCV."""

from __future__ import annotations

import cv2
import numpy as np

AREA = cv2.INTER_AREA        # averages when shrinking (the default)
LINEAR = cv2.INTER_LINEAR

# cv2.resize handles at most 4 channels per call reliably: wider maps go in chunks.
_CHUNK = 4


def resize(x: np.ndarray, h: int, w: int, interpolation: int = AREA) -> np.ndarray:
    """H×W or H×W×C → h×w (×C) float32; ``x`` itself when it is already that size."""
    if x.shape[:2] == (h, w):
        return x
    out = np.empty((h, w) + x.shape[2:], np.float32)
    src = x if x.ndim == 3 else x[:, :, None]
    o = out if out.ndim == 3 else out[:, :, None]
    for c0 in range(0, src.shape[2], _CHUNK):
        c1 = min(c0 + _CHUNK, src.shape[2])
        r = cv2.resize(np.ascontiguousarray(src[:, :, c0:c1], dtype=np.float32), (w, h), interpolation=interpolation)
        o[:, :, c0:c1] = r.reshape(h, w, c1 - c0)
    return out
