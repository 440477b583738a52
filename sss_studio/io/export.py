"""Writers for soft layers: a PNG stack (+ .npz) and a layered PSD.

All or nothing: a file is written under a temporary name beside its target and
renamed into place; a PNG stack is written whole into a temporary sibling folder and
swapped in at the end, so an interrupted or failing export leaves the previous result
as it was, never a mix. Temporary names carry the writer's process id, and a later
export removes those of processes that are gone (killed runs). A written file gets
the permissions a normal save gives (the umask's, or those of the file it replaces).
The photo's ICC profile and resolution go into the PNGs and the PSD.
"""

from __future__ import annotations

import colorsys
import json
import os
import re
import shutil
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
    remove_stale_parts(folder, target.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".part", dir=folder)
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


_PART = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.part$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # someone else's live process
        return True
    except OSError:
        return True
    return True


def remove_stale_parts(folder: Path, name: Optional[str] = None) -> int:
    """Remove our temporary files and folders in ``folder`` (of ``name`` only, if given)
    whose writing process is gone; returns how many."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for e in entries:
        m = _PART.match(e.name)
        if m is None or (name is not None and m.group("name") != name) or _alive(int(m.group("pid"))):
            continue
        try:
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path)
            else:
                os.remove(e.path)
            removed += 1
        except OSError:
            pass
    return removed


def check_destination(path: str | os.PathLike, kind: str = "folder", replace_read_only: bool = False) -> Path:
    """Say now, without creating anything, whether ``path`` can be written: a folder to
    create or fill (``kind="folder"``) or a file to create or replace (``"file"``).
    A read-only file is refused unless ``replace_read_only`` (an editor asks too)."""
    p = Path(path)
    if kind == "file":
        if p.is_dir():
            raise ExportError(f"cannot write {p}: it is a folder, not a file name")
        if p.exists() and not replace_read_only and not os.access(p, os.W_OK):
            raise ExportError(f"{p} is read-only; pass --force to replace it")
        return _check_folder(p.parent if str(p.parent) else Path("."), create_message=False)
    if p.exists() and not p.is_dir():
        raise ExportError(f"cannot write to {p}: a file of that name exists")
    return _check_folder(p)


def _check_folder(folder: Path, create_message: bool = True) -> Path:
    """The folder exists and is writable, or could be created (its nearest existing
    ancestor is a writable folder)."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ExportError(f"cannot create folder {folder}: {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        what = "write to folder" if probe == folder else "create folder"
        raise ExportError(f"cannot {what} {folder}: permission denied")
    return folder


def free_space_check(folder: str | os.PathLike, needed_bytes: int) -> None:
    """Refuse before the run when the disk holding ``folder`` (or its nearest existing
    ancestor) has less room than the export will take."""
    probe = Path(folder)
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return
    if free < needed_bytes:
        raise ExportError(f"not enough free space in {probe}: the export needs about "
                          f"{needed_bytes / 1e6:.0f} MB, {free / 1e6:.0f} MB are free")


def estimated_export_bytes(h: int, w: int, layers: int, png_stack: bool, psd: bool) -> int:
    """A generous estimate: PNGs at their raw size (RGBA 8-bit + 16-bit alpha per layer,
    the preview, the float32 .npz), the PSD raw (RGBA per layer and the photo)."""
    n = h * w
    total = 0
    if png_stack:
        total += layers * n * (4 + 2 + 4) + n * 6
    if psd:
        total += (layers + 1) * n * 4 + n * 4
    return int(total * 1.1) + (1 << 20)


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
    """[0, 1] floats → uint8, rounded; in float32 and in bands of rows, so that a 50 MP
    layer costs its own 150 MB, not a float64 copy of 1.2 GB."""
    x = np.asarray(x)
    out = np.empty(x.shape, np.uint8)
    for r in range(0, x.shape[0], 512):
        band = x[r:r + 512].astype(np.float32) * np.float32(255.0)
        np.rint(band, out=band)
        np.clip(band, 0, 255, out=band)
        out[r:r + 512] = band
    return out


def _to_u16(x: np.ndarray) -> np.ndarray:
    """An alpha in [0, 1] → uint16 (0–65535), rounded, in bands (see _to_u8)."""
    x = np.asarray(x)
    out = np.empty(x.shape, np.uint16)
    for r in range(0, x.shape[0], 512):
        band = x[r:r + 512].astype(np.float64) * 65535.0
        np.rint(band, out=band)
        np.clip(band, 0, 65535, out=band)
        out[r:r + 512] = band
    return out


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


# Files a PNG stack export writes (and older versions wrote): a later export into the
# same folder replaces exactly these, never a user's other files.
_OURS = re.compile(r"^(\d{2,}_.+\.png|layer_\d+\.png|alpha_\d+\.png|preview\.png|layers\.npz)$")


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
    K×H×W alphas, names, parameters as JSON).

    All or nothing: the stack is written into a temporary sibling folder and swapped
    in at the end; files of an earlier export that this one does not write (layer 4
    of a 4-layer run, after a 2-layer one) are removed, other files are left alone."""
    _check(image, alphas, layer_images)
    target = Path(folder)
    if target.exists() and not target.is_dir():
        raise ExportError(f"cannot write to {target}: a file of that name exists")
    parent = ensure_folder(target.parent if str(target.parent) else Path("."))
    if target.exists() and not os.access(target, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write to folder {target}: permission denied")
    names = list(names) if names is not None else default_names(alphas.shape[0])
    remove_stale_parts(parent, target.name)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".part", dir=parent))
    try:
        written = _write_stack_files(staging, image, alphas, names, layer_images, params, metadata)
        _swap_in(staging, target)
    except OSError as e:
        raise ExportError(f"cannot write the PNG stack to {target}: {e.strerror or e}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return [target / name for name in written]


def _write_stack_files(folder: Path, image, alphas, names, layer_images, params, metadata) -> list[str]:
    written: list[str] = []
    mode = 0o666 & ~_umask()

    def put(name: str, save: Callable[[str], None]) -> None:
        save(str(folder / name))
        os.chmod(folder / name, mode)
        written.append(name)

    for k, a in enumerate(alphas):
        stem = layer_file_stem(k, names[k])
        rgb = image if layer_images is None else layer_images[k]
        rgba = np.dstack([_to_u8(rgb), _to_u8(a)])
        put(f"{stem}.png", lambda t, x=rgba: _save_png(t, x, metadata))
        del rgba
        put(f"{stem}_alpha.png", lambda t, x=a: _save_cv_png(t, _to_u16(x)))
    prev = _to_u8(preview_image(image, alphas))
    put("preview.png", lambda t, x=prev: _save_png(t, x, metadata))
    meta = json.dumps({"names": names, "params": params or {}}, default=str)
    put("layers.npz", lambda t: _save_npz(t, alphas=np.asarray(alphas, np.float32), meta=np.array(meta)))
    return written


def _swap_in(staging: Path, target: Path) -> None:
    """Put the finished stack in ``staging`` where ``target`` is, in as few renames as
    possible: the folder itself when ``target`` is new or holds only an earlier export,
    else file by file (the user's own files in it stay)."""
    if not target.exists():
        os.chmod(staging, 0o777 & ~_umask())
        os.rename(staging, target)
        return
    old = os.listdir(target)
    if all(_OURS.match(n) for n in old):
        os.chmod(staging, stat.S_IMODE(target.stat().st_mode))
        aside = target.parent / f".{target.name}.{os.getpid()}.old.part"
        os.rename(target, aside)
        os.rename(staging, target)
        shutil.rmtree(aside, ignore_errors=True)
        return
    new = set(os.listdir(staging))
    for name in new:
        os.replace(staging / name, target / name)
    for name in old:
        if _OURS.match(name) and name not in new:
            os.remove(target / name)
    staging.rmdir()


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
