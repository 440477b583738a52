"""A soft brush on one layer's alpha, keeping Σα = 1 at every pixel.

Adding pulls the layer towards 1 under the brush and takes the alpha from the other
layers in proportion to what they hold; subtracting pulls it towards 0 and gives what
it loses to the largest other layer under the brush. A stroke is the pointwise maximum
of its dabs, applied to the alphas as they were when the stroke began, so going over
the same spot within one stroke does not build up (as Photoshop's brush at full flow).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class BrushParams:
    radius: float = 12.0      # pixels of the photo
    hardness: float = 0.5     # 1: a hard disc; 0: the strength falls from the centre outwards
    strength: float = 1.0     # how far one stroke pulls the alpha (1: all the way)


def dab(shape: tuple[int, int], x0: float, y0: float, x1: float, y1: float, p: BrushParams) -> tuple[tuple[slice, slice], np.ndarray]:
    """The brush swept from (x0, y0) to (x1, y1): its bounding box in the photo and the
    strength (0–1) inside it."""
    h, w = shape
    r = max(float(p.radius), 0.5)
    left, right = int(np.floor(min(x0, x1) - r)), int(np.ceil(max(x0, x1) + r)) + 1
    top, bottom = int(np.floor(min(y0, y1) - r)), int(np.ceil(max(y0, y1) + r)) + 1
    left, top, right, bottom = max(left, 0), max(top, 0), min(right, w), min(bottom, h)
    if left >= right or top >= bottom:
        return (slice(0, 0), slice(0, 0)), np.zeros((0, 0), np.float32)
    yy, xx = np.mgrid[top:bottom, left:right].astype(np.float32) + 0.5
    # Distance to the segment (a dab when the two points are one).
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / max(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
    d = np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy)) / r
    hard = min(max(float(p.hardness), 0.0), 0.999)
    m = np.clip((1.0 - d) / (1.0 - hard), 0.0, 1.0)
    m = m * m * (3.0 - 2.0 * m)   # smoothstep: no visible ring at the edge
    return (slice(top, bottom), slice(left, right)), (m * float(p.strength)).astype(np.float32)


def paint(start: np.ndarray, index: int, box: tuple[slice, slice], strength: np.ndarray, add: bool,
          out: np.ndarray) -> None:
    """Write into ``out[:, box]`` the stroke's effect on ``start[:, box]`` (K×h×w), where
    ``strength`` (h×w, 0–1) is the stroke's accumulated strength there."""
    a = start[:, box[0], box[1]].astype(np.float32)
    m = strength
    i = a[index]
    if add:
        new_i = i + m * (1.0 - i)
        others = np.ones_like(i)
        room = 1.0 - i
        np.divide(1.0 - new_i, room, out=others, where=room > 1e-7)
        res = a * others[None]
        res[index] = new_i
    else:
        new_i = i * (1.0 - m)
        res = a.copy()
        res[index] = new_i
        rest = a.copy()
        rest[index] = -1.0
        winner = np.argmax(rest, axis=0)   # the largest other layer takes what is given
        np.put_along_axis(res, winner[None], np.take_along_axis(res, winner[None], 0) + (i - new_i)[None], axis=0)
    out[:, box[0], box[1]] = res


class Stroke:
    """One stroke of the brush: dabs accumulate (maximum), the alphas update in the
    dabs' boxes only. ``alphas`` is the current result (a new array, never ``start``)."""

    def __init__(self, start: np.ndarray, index: int, params: BrushParams, add: bool):
        self.start = start
        self.index = index
        self.params = params
        self.add = add
        self.alphas = np.array(start, np.float32, copy=True)
        self._strength = np.zeros(start.shape[1:], np.float32)
        self._last: Optional[tuple[float, float]] = None

    def to(self, x: float, y: float) -> None:
        """Continue the stroke to (x, y) (its first call is a single dab)."""
        x0, y0 = self._last if self._last is not None else (x, y)
        self._last = (x, y)
        box, m = dab(self.start.shape[1:], x0, y0, x, y, self.params)
        if m.size == 0:
            return
        acc = self._strength[box]
        np.maximum(acc, m, out=acc)
        paint(self.start, self.index, box, acc, self.add, self.alphas)

    def result(self) -> np.ndarray:
        out = self.alphas
        out.setflags(write=False)
        return out
