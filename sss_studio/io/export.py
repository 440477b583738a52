"""Writers for soft layers: a PNG stack (+ .npz) and a layered PSD.

Every file is written under a temporary name in the target folder and renamed into
place, so an interrupted or failing export never leaves a half-written file.
"""

from __future__ import annotations

import colorsys
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import cv2
import numpy as np
from PIL import Image

from ..segmentation.layer_names import default_names


class ExportError(Exception):
    """The export failed; the message says why in one line. Nothing half-written is left."""


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file to ``path``."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    ensure_folder(folder)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    except ExportError:
        _remove(tmp)
        raise
    except OSError as e:
        _remove(tmp)
        raise ExportError(f"cannot write {target}: {e.strerror or e}") from None
    except BaseException:
        _remove(tmp)
        raise
    return target


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def ensure_folder(folder: str | os.PathLike) -> Path:
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ExportError(f"cannot write to {folder}: a file of that name exists") from None
    except OSError as e:
        raise ExportError(f"cannot create folder {folder}: {e.strerror or e}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write to folder {folder}: permission denied")
    return folder


def layer_palette(count: int) -> np.ndarray:
    """Distinct, evenly spaced hues (golden-ratio steps) as count×3 floats in [0, 1]."""
    return np.array(
        [colorsys.hsv_to_rgb((0.03 + i * 0.618034) % 1.0, 0.75, 0.95) for i in range(count)], np.float32
    )


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(x, np.float64) * 255.0), 0, 255).astype(np.uint8)


def _check(image: np.ndarray, alphas: np.ndarray, layer_images: Optional[np.ndarray]) -> None:
    if alphas.ndim != 3 or alphas.shape[1:] != image.shape[:2]:
        raise ExportError(f"layers are {alphas.shape[1:]} but the photo is {image.shape[:2]}")
    if layer_images is not None and layer_images.shape != (alphas.shape[0],) + image.shape[:2] + (3,):
        raise ExportError("layer_images must be K×H×W×3, one RGB image per layer")


def preview_image(image: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """The photo beside the layers drawn in distinct colours (H×2W×3 float)."""
    colours = layer_palette(alphas.shape[0])
    coloured = np.einsum("khw,kc->hwc", np.clip(alphas, 0, 1), colours)
    shaded = 0.75 * coloured + 0.25 * image.mean(axis=2, keepdims=True)
    return np.concatenate([image, shaded], axis=1)


def write_png_stack(
    folder: str | os.PathLike,
    image: np.ndarray,
    alphas: np.ndarray,
    names: Optional[Sequence[str]] = None,
    layer_images: Optional[np.ndarray] = None,
    params: Optional[dict[str, Any]] = None,
) -> list[Path]:
    """layer_k.png (RGBA, photo colours, alpha = layer), alpha_k.png (16-bit grey),
    preview.png, layers.npz (float32 K×H×W alphas, names, parameters as JSON)."""
    _check(image, alphas, layer_images)
    folder = ensure_folder(folder)
    names = list(names) if names is not None else default_names(alphas.shape[0])
    written: list[Path] = []
    for k, a in enumerate(alphas):
        rgb = image if layer_images is None else layer_images[k]
        rgba = np.dstack([_to_u8(rgb), _to_u8(a)])
        written.append(atomic_write(folder / f"layer_{k + 1}.png", lambda t, x=rgba: _save_png(t, x)))
        a16 = np.clip(np.rint(np.clip(a, 0, 1) * 65535.0), 0, 65535).astype(np.uint16)
        written.append(atomic_write(folder / f"alpha_{k + 1}.png", lambda t, x=a16: _save_cv_png(t, x)))
    prev = _to_u8(preview_image(image, alphas))
    written.append(atomic_write(folder / "preview.png", lambda t: _save_png(t, prev)))
    meta = json.dumps({"names": names, "params": params or {}}, default=str)
    written.append(
        atomic_write(
            folder / "layers.npz",
            lambda t: _save_npz(t, alphas=np.asarray(alphas, np.float32), meta=np.array(meta)),
        )
    )
    return written


def _save_png(path: str, arr: np.ndarray) -> None:
    Image.fromarray(arr).save(path, format="PNG")


def _save_cv_png(path: str, arr: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        raise ExportError(f"PNG encoding failed for {path}")
    with open(path, "wb") as f:
        f.write(buf.tobytes())


def _save_npz(path: str, **arrays: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def load_layers_npz(path: str | os.PathLike) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        return z["alphas"], meta.get("names", []), meta.get("params", {})


def write_psd(
    path: str | os.PathLike,
    image: np.ndarray,
    alphas: np.ndarray,
    names: Optional[Sequence[str]] = None,
    layer_images: Optional[np.ndarray] = None,
    hidden: Optional[Sequence[bool]] = None,
) -> Path:
    """A layered PSD in an RGBA document (so layer alpha stays transparency, not a mask).
    ``hidden[k]``: soft layer k is written with its eye off (as hidden in the studio).

    Stack, bottom to top: an opaque "Photo" layer, then one layer per soft layer with
    the photo's (or its recoloured) pixels and alpha = the soft layer. Shown alone, a
    layer is its soft cut-out; with everything visible in Normal mode the composite is
    the photo (each layer has the photo's colours). A recoloured layer shows its edit
    through its soft alpha; where soft layers overlap, the layers above it cover a
    little of it, so callers put edited layers on top (``order`` of the arguments).
    """
    from psd_tools import PSDImage
    from psd_tools.api.layers import PixelLayer

    _check(image, alphas, layer_images)
    names = list(names) if names is not None else default_names(alphas.shape[0])
    h, w = image.shape[:2]
    photo8 = _to_u8(image)

    def write(tmp: str) -> None:
        psd = PSDImage.new("RGBA", (w, h))
        base = np.dstack([photo8, np.full((h, w), 255, np.uint8)])
        psd.append(PixelLayer.frompil(Image.fromarray(base, "RGBA"), psd, "Photo"))
        for k, a in enumerate(alphas):
            rgb = photo8 if layer_images is None else _to_u8(layer_images[k])
            rgba = np.dstack([rgb, _to_u8(a)])
            layer = PixelLayer.frompil(Image.fromarray(rgba, "RGBA"), psd, names[k])
            if hidden is not None and hidden[k]:
                layer.visible = False
            psd.append(layer)
        with open(tmp, "wb") as f:
            psd.save(f)

    return atomic_write(path, write)
