"""Reading features computed elsewhere: an H×W×D .npy/.npz array, or an H×W×3 image."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .image import ImageLoadError, load_image


class FeaturesFileError(Exception):
    """The features file cannot be used; the message says why in one line."""


def load_features_file(path: str | os.PathLike) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise FeaturesFileError(f"{p}: no such features file")
    if p.suffix.lower() in (".npy", ".npz"):
        try:
            arr = np.load(p, allow_pickle=False)
            if hasattr(arr, "files"):
                arr = arr[arr.files[0]]
        except (ValueError, OSError, EOFError, IndexError) as e:
            raise FeaturesFileError(f"{p}: not a readable .npy array ({e})") from None
        if arr.ndim not in (2, 3) or not np.issubdtype(arr.dtype, np.number) or 0 in arr.shape:
            raise FeaturesFileError(f"{p}: features must be a numeric H×W×D array with D ≥ 1, got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise FeaturesFileError(f"{p}: features contain NaN or infinite values")
        return arr.astype(np.float32)
    try:
        return load_image(p)
    except ImageLoadError as e:
        raise FeaturesFileError(str(e)) from None
