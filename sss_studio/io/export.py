"""Writers for soft layers: a PNG stack (+ .npz) and a layered PSD.

Every file is written under a temporary name in the target folder and renamed into
place, so an interrupted or failing export never leaves a half-written file; the
file then gets the permissions a normal save gives (the umask's, or those of the
file it replaces). The photo's ICC profile and resolution go into the PNGs and the PSD.
"""

from __future__ import annotations

import colorsys
import json
import os
import re
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import cv2
import numpy as np
from PIL import Image

from ..segmentation.layer_names import default_names


class ExportError(Exception):
    """The export failed; the message says why in one line. Nothing half-written is left."""


@dataclass(frozen=True)
class PhotoMetadata:
    """What an export carries over from the photo file."""

    icc_profile: Optional[bytes] = None          # the embedded colour profile, as stored
    dpi: Optional[tuple[float, float]] = None     # horizontal, vertical resolution


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask (Linux reads it without changing it; elsewhere set and restore)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _save_mode(target: Path) -> int:
    """The mode a plain ``open(target, "w")`` would leave: the existing file's, else
    0o666 less the umask (mkstemp's own 0o600 is for the temporary name only)."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file to ``path``."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    ensure_folder(folder)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _save_mode(target))
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


def layer_file_stem(index: int, name: str) -> str:
    """``03_person`` for layer index 2 named "person": the number keeps the stack's order,
    the name (lower case, anything but letters, digits and ``-`` as ``_``) says which."""
    slug = re.sub(r"[^\w\-]+", "_", name.casefold()).strip("_")[:48] or "layer"
    return f"{index + 1:02d}_{slug}"


def write_png_stack(
    folder: str | os.PathLike,
    image: np.ndarray,
    alphas: np.ndarray,
    names: Optional[Sequence[str]] = None,
    layer_images: Optional[np.ndarray] = None,
    params: Optional[dict[str, Any]] = None,
    metadata: PhotoMetadata = PhotoMetadata(),
) -> list[Path]:
    """Per layer ``NN_name.png`` (RGBA, photo colours, alpha = layer) and
    ``NN_name_alpha.png`` (16-bit grey), then preview.png and layers.npz (float32
    K×H×W alphas, names, parameters as JSON)."""
    _check(image, alphas, layer_images)
    folder = ensure_folder(folder)
    names = list(names) if names is not None else default_names(alphas.shape[0])
    written: list[Path] = []
    for k, a in enumerate(alphas):
        stem = layer_file_stem(k, names[k])
        rgb = image if layer_images is None else layer_images[k]
        rgba = np.dstack([_to_u8(rgb), _to_u8(a)])
        written.append(atomic_write(folder / f"{stem}.png", lambda t, x=rgba: _save_png(t, x, metadata)))
        a16 = np.clip(np.rint(np.clip(a, 0, 1) * 65535.0), 0, 65535).astype(np.uint16)
        written.append(atomic_write(folder / f"{stem}_alpha.png", lambda t, x=a16: _save_cv_png(t, x)))
    prev = _to_u8(preview_image(image, alphas))
    written.append(atomic_write(folder / "preview.png", lambda t: _save_png(t, prev, metadata)))
    meta = json.dumps({"names": names, "params": params or {}}, default=str)
    written.append(
        atomic_write(
            folder / "layers.npz",
            lambda t: _save_npz(t, alphas=np.asarray(alphas, np.float32), meta=np.array(meta)),
        )
    )
    return written


def _save_png(path: str, arr: np.ndarray, metadata: PhotoMetadata = PhotoMetadata()) -> None:
    extra: dict[str, Any] = {}
    if metadata.icc_profile:
        extra["icc_profile"] = metadata.icc_profile
    if metadata.dpi:
        extra["dpi"] = metadata.dpi
    Image.fromarray(arr).save(path, format="PNG", **extra)


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
    metadata: PhotoMetadata = PhotoMetadata(),
) -> Path:
    """Write a layered PSD: an opaque "Photo" layer, then one layer per soft layer.

    The document is RGBA, so layer alpha stays transparency, not a mask. Each soft
    layer holds the photo's (or its recoloured) pixels with alpha = the layer: shown
    alone it is its soft cut-out; with everything visible in Normal mode the
    composite is the photo. Where soft layers overlap, the layers above a recoloured
    one cover a little of it, so callers put edited layers last.

    Parameters
    ----------
    path : path
        Where to write (atomically: a temporary file, then a rename).
    image : ndarray
        H×W×3 float RGB in [0, 1].
    alphas : ndarray
        K×H×W soft layers.
    names : sequence of str, optional
        Layer names, any script (written in the Unicode name block); numbered by default.
    layer_images : ndarray, optional
        K×H×W×3 per-layer pixels (e.g. recoloured); the photo by default.
    hidden : sequence of bool, optional
        Layers written with their eye off.
    metadata : PhotoMetadata, optional
        The photo's ICC profile and resolution, carried into the file.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ExportError
        One line saying why (sizes, a name over 255 characters, the disk); nothing
        half-written is left.
    """
    from psd_tools import PSDImage
    from psd_tools.api.layers import PixelLayer

    _check(image, alphas, layer_images)
    names = list(names) if names is not None else default_names(alphas.shape[0])
    h, w = image.shape[:2]
    photo8 = _to_u8(image)

    for name in names:
        if len(name) > 255:
            raise ExportError(f"a PSD layer name has at most 255 characters: {name[:40]}…")

    def write(tmp: str) -> None:
        psd = PSDImage.new("RGBA", (w, h))
        _psd_metadata(psd, metadata)
        base = np.dstack([photo8, np.full((h, w), 255, np.uint8)])
        psd.append(PixelLayer.frompil(Image.fromarray(base, "RGBA"), psd, "Photo"))
        for k, a in enumerate(alphas):
            rgb = photo8 if layer_images is None else _to_u8(layer_images[k])
            rgba = np.dstack([rgb, _to_u8(a)])
            layer = PixelLayer.frompil(Image.fromarray(rgba, "RGBA"), psd, "Layer")
            _set_layer_name(layer, names[k])
            if hidden is not None and hidden[k]:
                layer.visible = False
            psd.append(layer)
        with open(tmp, "wb") as f:
            psd.save(f)

    return atomic_write(path, write)


def _set_layer_name(layer: Any, name: str) -> None:
    """The Unicode name block ('luni', what Photoshop, GIMP and psd-tools read) and, as
    the legacy Pascal name, the name's UTF-8 bytes (≤ 255, whole characters): readers of
    the legacy name only (ImageMagick) then show the name, not '?'."""
    layer.name = name  # psd-tools writes 'luni' here
    raw = name.encode("utf-8")
    while len(raw) > 255:
        name = name[:-1]
        raw = name.encode("utf-8")
    layer._record.name = raw.decode("mac_roman")  # written back as these very bytes


def _psd_metadata(psd: Any, metadata: PhotoMetadata) -> None:
    """The ICC profile (resource 1039) and the resolution (1005, pixels per inch)."""
    from psd_tools.constants import Resource
    from psd_tools.psd.image_resources import ImageResource, ResoulutionInfo

    resources = psd.image_resources
    if metadata.icc_profile:
        resources[Resource.ICC_PROFILE] = ImageResource(key=Resource.ICC_PROFILE, data=metadata.icc_profile)
    if metadata.dpi:
        hx, vy = (int(round(float(d) * 65536)) for d in metadata.dpi)   # 16.16 fixed point
        info = ResoulutionInfo(horizontal=hx, horizontal_unit=1, width_unit=1, vertical=vy, vertical_unit=1,
                               height_unit=1)
        resources[Resource.RESOLUTION_INFO] = ImageResource(key=Resource.RESOLUTION_INFO, data=info)
