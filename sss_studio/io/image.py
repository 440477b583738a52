"""Photo loading: any common file becomes float32 RGB in [0, 1], orientation applied.

Grey, palette, alpha, 16-bit, float and CMYK inputs are converted, not rejected.
Every failure raises :class:`ImageLoadError` with one line a person can act on.
"""

from __future__ import annotations

import os
import struct
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .export import PhotoMetadata

# Pixels beyond this are refused before decoding (a 24-bit 200 MP photo needs 2.4 GB as
# float32). The one limit: Pillow's own decompression-bomb check (89 MP) is off while a
# photo's header is read, and this limit is checked before anything is decoded, so a
# 102 MP photo opens and a 300 MP one gets this module's message.
MAX_PIXELS = 200_000_000
_PIL_LIMIT = threading.Lock()


class ImageLoadError(Exception):
    """The photo cannot be used; the message says why in one line."""


@dataclass(frozen=True)
class ImageInfo:
    path: str
    width: int
    height: int
    mode: str          # the file's own mode, e.g. "CMYK", "I;16", "RGBA"
    bit_depth: int
    had_alpha: bool
    icc_profile: Optional[bytes] = None          # embedded colour profile, if any
    dpi: Optional[tuple[float, float]] = None     # resolution, if the file says

    @property
    def metadata(self) -> PhotoMetadata:
        """What an export carries over (io.export)."""
        return PhotoMetadata(self.icc_profile, self.dpi)


_EXIF_ORIENTATION = 0x0112


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an H×W[×C] array, as ImageOps.exif_transpose does."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.swapaxes(a, 0, 1)[::-1],
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(arr)) if op else arr


def _composite_over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    # Transparent pixels often hold arbitrary colour (black); white is what a viewer shows.
    a = alpha[:, :, None]
    return rgb * a + (1.0 - a)


def _sixteen_bit(path: str, orientation: int) -> np.ndarray | None:
    """Decode 16-bit PNG/TIFF at full depth with OpenCV (Pillow drops RGB to 8 bits)."""
    data = np.fromfile(path, dtype=np.uint8)
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16:
        return None
    f = arr.astype(np.float32) / 65535.0
    if f.ndim == 2:
        rgb = np.repeat(f[:, :, None], 3, axis=2)
    elif f.shape[2] == 2:
        rgb = _composite_over_white(np.repeat(f[:, :, :1], 3, axis=2), f[:, :, 1])
    elif f.shape[2] == 3:
        rgb = f[:, :, ::-1]
    else:
        rgb = _composite_over_white(f[:, :, 2::-1], f[:, :, 3])
    return _orient(np.ascontiguousarray(rgb, dtype=np.float32), orientation)


def read_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, ImageInfo]:
    """Load ``path`` → (H×W×3 float32 RGB in [0, 1], info)."""
    p = Path(path)
    if not p.exists():
        raise ImageLoadError(f"{p}: no such file")
    if p.is_dir():
        raise ImageLoadError(f"{p}: is a folder, not a photo")
    if p.stat().st_size == 0:
        raise ImageLoadError(f"{p}: the file is empty (0 bytes)")
    try:
        with _PIL_LIMIT, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None   # ours is checked below
            try:
                im = Image.open(p)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageLoadError(f"{p}: more than the {max_pixels / 1e6:.0f} MP this program handles") from None
    except UnidentifiedImageError:
        deep = _opencv_only(p)   # float TIFFs, which Pillow does not read
        if deep is not None:
            info = ImageInfo(str(p), deep.shape[1], deep.shape[0], "F", 32, False)
            return deep, info
        raise ImageLoadError(f"{p}: not an image file this program can read") from None
    except OSError as e:
        if "truncated" in str(e).lower():
            raise ImageLoadError(f"{p}: the file is truncated or damaged") from None
        raise ImageLoadError(f"{p}: cannot be read ({e})") from None
    with im:
        w, h = im.size
        if w * h > max_pixels:
            raise ImageLoadError(
                f"{p}: {w}×{h} is {w * h / 1e6:.0f} megapixels, more than the "
                f"{max_pixels / 1e6:.0f} MP this program handles"
            )
        if w == 0 or h == 0:
            raise ImageLoadError(f"{p}: the image has no pixels")
        mode = im.mode
        try:
            im.load()
            orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
        except (OSError, SyntaxError, ValueError, struct.error, EOFError) as e:
            msg = str(e) or e.__class__.__name__
            if "truncated" in msg.lower():
                raise ImageLoadError(f"{p}: the file is truncated or damaged") from None
            raise ImageLoadError(f"{p}: cannot be decoded ({msg})") from None
        had_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
            mode == "P" and "transparency" in im.info
        )
        bit_depth = 16 if mode.startswith("I;16") else 32 if mode in ("I", "F") else 8
        icc = im.info.get("icc_profile") or None
        dpi = _dpi(im.info.get("dpi"))
        if p.suffix.lower() in (".png", ".tif", ".tiff") and _deeper_than_8_bits(im, p):
            deep = _sixteen_bit(str(p), orientation)
            if deep is not None:
                info = ImageInfo(str(p), deep.shape[1], deep.shape[0], mode, 16, had_alpha, icc, dpi)
                return deep, info
        im = ImageOps.exif_transpose(im)
        rgb = _to_rgb_float(im)
    info = ImageInfo(str(p), rgb.shape[1], rgb.shape[0], mode, bit_depth, had_alpha, icc, dpi)
    return rgb, info


def _deeper_than_8_bits(im: Image.Image, path: Path) -> bool:
    """Whether the file holds more than 8 bits per sample (Pillow reads 16-bit RGB as 8):
    only then is OpenCV asked to decode it (it would print libpng's own errors for a
    damaged 8-bit PNG that Pillow has already read)."""
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        return True
    if im.format == "PNG":
        with open(path, "rb") as f:
            head = f.read(25)
        return len(head) == 25 and head[12:16] == b"IHDR" and head[24] == 16
    if im.format == "TIFF":
        bits = im.tag_v2.get(258) if hasattr(im, "tag_v2") else None
        bits = bits if isinstance(bits, tuple) else (bits,)
        return any(isinstance(b, int) and b > 8 for b in bits)
    return False


def _opencv_only(path: Path) -> Optional[np.ndarray]:
    """A float32/float64 TIFF (which Pillow cannot open) as H×W×3 float32 RGB; None if
    OpenCV cannot read it either. Values in [0, 1] are taken as they are, larger ones as
    0–255 or 0–65535 data."""
    if path.suffix.lower() not in (".tif", ".tiff"):
        return None
    arr = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype not in (np.float32, np.float64) or arr.size == 0:
        return None
    if arr.shape[0] * arr.shape[1] > MAX_PIXELS:
        raise ImageLoadError(f"{path}: more than the {MAX_PIXELS / 1e6:.0f} MP this program handles")
    f = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    peak = float(f.max(initial=0.0))
    f = f / (1.0 if peak <= 1.0 else 255.0 if peak <= 255.0 else 65535.0)
    if f.ndim == 2:
        rgb = np.repeat(f[:, :, None], 3, axis=2)
    elif f.shape[2] >= 3:
        rgb = f[:, :, 2::-1] if f.shape[2] == 3 else _composite_over_white(f[:, :, 2::-1], np.clip(f[:, :, 3], 0, 1))
    else:
        rgb = np.repeat(f[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(np.clip(rgb, 0.0, 1.0), dtype=np.float32)


def _dpi(value) -> Optional[tuple[float, float]]:
    """Pillow's dpi (two numbers, possibly rationals); None when absent or not positive."""
    try:
        x, y = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return (x, y) if x > 0 and y > 0 else None


def _to_rgb_float(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float32)
        scale = 65535.0 if (mode.startswith("I;16") or a.max(initial=0) > 255) else 255.0
        if mode == "F":
            scale = 1.0 if a.max(initial=0) <= 1.0 else 255.0
        g = np.clip(a / scale, 0.0, 1.0)
        return np.repeat(g[:, :, None], 3, axis=2)
    if mode == "P":
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("LA", "La", "PA"):
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "RGBa"):
        a = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
        return np.ascontiguousarray(_composite_over_white(a[:, :, :3], a[:, :, 3]), dtype=np.float32)
    # CMYK, YCbCr, LAB, HSV, 1, L: Pillow knows how to get to RGB.
    return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def load_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """H×W×3 float32 RGB in [0, 1] with EXIF orientation applied."""
    return read_image(path, max_pixels)[0]
