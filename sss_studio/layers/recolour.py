"""Recolouring a layer: hue, saturation, brightness and a tint, applied through its soft alpha."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["Recolour", "apply_recolour", "rgb_to_hsv", "hsv_to_rgb"]

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class Recolour:
    """How a layer's pixels are changed; applied through the layer's soft alpha.

    hue: shift in degrees; saturation, brightness: multipliers (1 = unchanged);
    tint: an RGB colour (0–1) the layer is pulled towards with ``tint_strength``
    (0–1), keeping each pixel's luminance.
    """

    hue: float = 0.0
    saturation: float = 1.0
    brightness: float = 1.0
    tint: Optional[tuple[float, float, float]] = None
    tint_strength: float = 0.0

    @property
    def is_identity(self) -> bool:
        return (
            self.hue % 360.0 == 0.0
            and self.saturation == 1.0
            and self.brightness == 1.0
            and (self.tint is None or self.tint_strength == 0.0)
        )

    def to_dict(self) -> dict:
        return {
            "hue": self.hue,
            "saturation": self.saturation,
            "brightness": self.brightness,
            "tint": None if self.tint is None else list(self.tint),
            "tint_strength": self.tint_strength,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Recolour":
        if not isinstance(d, dict):
            raise TypeError(f"a recolour is a mapping, not {type(d).__name__}")
        tint = d.get("tint")
        values = [d.get(k, 0.0) for k in ("hue", "saturation", "brightness", "tint_strength")]
        values += list(tint) if isinstance(tint, (list, tuple)) else []
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise ValueError("a recolour's values are finite numbers")
        if tint is not None and (not isinstance(tint, (list, tuple)) or len(tint) != 3):
            raise ValueError("a tint is three numbers")
        return cls(
            hue=float(d.get("hue", 0.0)),
            saturation=float(d.get("saturation", 1.0)),
            brightness=float(d.get("brightness", 1.0)),
            tint=None if tint is None else tuple(float(c) for c in tint),  # type: ignore[arg-type]
            tint_strength=float(d.get("tint_strength", 0.0)),
        )


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """…×3 RGB in [0,1] → …×3 HSV with hue in [0,1)."""
    rgb = np.asarray(rgb, np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx = rgb.max(axis=-1)
    mn = rgb.min(axis=-1)
    d = mx - mn
    safe = np.where(d > 0, d, 1.0)
    h = np.where(
        mx == r, ((g - b) / safe) % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0)
    )
    h = np.where(d > 0, h / 6.0, 0.0)
    s = np.where(mx > 0, d / np.where(mx > 0, mx, 1.0), 0.0)
    return np.stack([h, s, mx], axis=-1).astype(np.float32)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    h, s, v = hsv[..., 0] % 1.0, hsv[..., 1], hsv[..., 2]
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    p = v * (1 - s)
    q = v * (1 - s * f)
    t = v * (1 - s * (1 - f))
    i = i.astype(np.int32) % 6
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.stack([r, g, b], axis=-1).astype(np.float32)


def apply_recolour(rgb: np.ndarray, rc: Recolour) -> np.ndarray:
    """The layer's pixels after its recolour (the full photo, before the alpha)."""
    out = np.asarray(rgb, np.float32)
    if rc.hue % 360.0 != 0.0 or rc.saturation != 1.0 or rc.brightness != 1.0:
        hsv = rgb_to_hsv(out)
        hsv[..., 0] = (hsv[..., 0] + rc.hue / 360.0) % 1.0
        hsv[..., 1] = np.clip(hsv[..., 1] * rc.saturation, 0.0, 1.0)
        hsv[..., 2] = np.clip(hsv[..., 2] * rc.brightness, 0.0, 1.0)
        out = hsv_to_rgb(hsv)
    if rc.tint is not None and rc.tint_strength > 0.0:
        tint = np.asarray(rc.tint, np.float32)
        lum = out @ _LUMA
        # The tint colour scaled so that the pixel keeps its luminance.
        tinted = np.clip(lum[..., None] * (tint / max(float(tint @ _LUMA), 1e-3)), 0.0, 1.0)
        out = out + np.float32(rc.tint_strength) * (tinted - out)
    return np.ascontiguousarray(out, dtype=np.float32)
