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

from ..resize import resize
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


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs (ours always does)."""
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill(pid, 0) would send Ctrl+C there
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        ctypes.windll.kernel32.CloseHandle(handle)
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:   # PermissionError: someone else's live process
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
        if m is None or (name is not None and m.group("name") != name) or pid_alive(int(m.group("pid"))):
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
        return _check_folder(p.parent if str(p.parent) else Path("."))
    if p.exists() and not p.is_dir():
        raise ExportError(f"cannot write to {p}: a file of that name exists")
    return _check_folder(p)


def _nearest_existing(path: Path) -> Path:
    """``path`` itself if it exists, else its nearest ancestor that does."""
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return probe


def _check_folder(folder: Path) -> Path:
    """The folder exists and is writable, or could be created (its nearest existing
    ancestor is a writable folder)."""
    probe = _nearest_existing(folder)
    if probe.exists() and not probe.is_dir():
        raise ExportError(f"cannot create folder {folder}: {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        what = "write to folder" if probe == folder else "create folder"
        raise ExportError(f"cannot {what} {folder}: permission denied")
    return folder


def free_space_check(folder: str | os.PathLike, needed_bytes: int) -> None:
    """Refuse before the run when the disk holding ``folder`` (or its nearest existing
    ancestor) has less room than the export will take."""
    probe = _nearest_existing(Path(folder))
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


def _quantised(x: np.ndarray, dtype: type, work: type) -> np.ndarray:
    """[0, 1] floats → the integer ``dtype``'s full range, rounded, computed in ``work``
    precision in bands of rows: a 50 MP layer costs its own output, not a float64 copy."""
    x = np.asarray(x)
    peak = np.iinfo(dtype).max
    out = np.empty(x.shape, dtype)
    for r in range(0, x.shape[0], 512):
        band = x[r:r + 512].astype(work) * work(peak)
        np.rint(band, out=band)
        np.clip(band, 0, peak, out=band)
        out[r:r + 512] = band
    return out


def _to_u8(x: np.ndarray) -> np.ndarray:
    return _quantised(x, np.uint8, np.float32)


def _to_u16(x: np.ndarray) -> np.ndarray:
    return _quantised(x, np.uint16, np.float64)


def _check(image: np.ndarray, alphas: np.ndarray, layer_images: Optional[np.ndarray]) -> None:
    if alphas.ndim != 3 or alphas.shape[1:] != image.shape[:2]:
        raise ExportError(f"layers are {alphas.shape[1:]} but the photo is {image.shape[:2]}")
    if layer_images is not None and layer_images.shape != (alphas.shape[0],) + image.shape[:2] + (3,):
        raise ExportError("layer_images must be K×H×W×3, one RGB image per layer")


PREVIEW_PIXELS = 4_000_000   # preview.png is a look, not a product: larger photos are shown smaller


def preview_image(image: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """The photo beside the layers drawn in distinct colours (H×2W×3 float), at most
    PREVIEW_PIXELS in all."""
    h, w = image.shape[:2]
    if 2 * h * w > PREVIEW_PIXELS:
        s = (PREVIEW_PIXELS / (2 * h * w)) ** 0.5
        sh, sw = max(1, int(h * s)), max(1, int(w * s))
        image = resize(image, sh, sw)
        alphas = np.stack([resize(a, sh, sw) for a in alphas])
    colours = layer_palette(alphas.shape[0])
    coloured = np.einsum("khw,kc->hwc", np.clip(alphas, 0, 1), colours)
    shaded = 0.75 * coloured + 0.25 * image.mean(axis=2, keepdims=True)
    return np.concatenate([image, shaded], axis=1)


def _layer_rgb(image: np.ndarray, alphas: np.ndarray, layer_images: Optional[np.ndarray], k: int,
               unmix: bool) -> np.ndarray:
    """Layer k's RGB: its pixels (the photo or its recolour), unmixed in soft pixels."""
    from ..segmentation.layer_colours import layer_colours

    rgb = image if layer_images is None else layer_images[k]
    return layer_colours(rgb, alphas[k]) if unmix else rgb


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
    alpha_files: bool = True,
    layer_colours: bool = True,
    extra_meta: Optional[dict[str, Any]] = None,
) -> list[Path]:
    """Per layer ``NN_name.png`` (RGBA, the layer's own colours — the photo's, unmixed
    from the other layers in soft pixels, see ``segmentation.layer_colours``; the
    photo's exactly with ``layer_colours=False`` — alpha = layer) and
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
        written = _write_stack_files(staging, image, alphas, names, layer_images, params, metadata, alpha_files,
                                     layer_colours, extra_meta)
        _swap_in(staging, target)
    except OSError as e:
        raise ExportError(f"cannot write the PNG stack to {target}: {e.strerror or e}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return [target / name for name in written]


def _write_stack_files(folder: Path, image, alphas, names, layer_images, params, metadata,
                       alpha_files: bool = True, layer_colours: bool = True,
                       extra_meta: Optional[dict[str, Any]] = None) -> list[str]:
    """The files, encoded on two threads (zlib and the PNG encoders release the GIL): at
    most two layers' 8-bit pixels are in memory at once."""
    from concurrent.futures import ThreadPoolExecutor

    written: list[str] = []
    mode = 0o666 & ~_umask()

    def put(name: str, make: Callable[[], np.ndarray], save: Callable[[str, np.ndarray], None]) -> str:
        save(str(folder / name), make())
        os.chmod(folder / name, mode)
        return name

    def layer_rgba(k: int) -> np.ndarray:
        return np.dstack([_to_u8(_layer_rgb(image, alphas, layer_images, k, layer_colours)), _to_u8(alphas[k])])

    jobs: list[tuple[str, Callable[[], np.ndarray], Callable[[str, np.ndarray], None]]] = []
    for k in range(alphas.shape[0]):
        stem = layer_file_stem(k, names[k])
        jobs.append((f"{stem}.png", lambda k=k: layer_rgba(k), lambda t, x: _save_png(t, x, metadata)))
        if alpha_files:
            jobs.append((f"{stem}_alpha.png", lambda k=k: _to_u16(alphas[k]), _save_cv_png))
    jobs.append(("preview.png", lambda: _to_u8(preview_image(image, alphas)), lambda t, x: _save_png(t, x, metadata)))
    with ThreadPoolExecutor(max_workers=2) as pool:
        for name in pool.map(lambda job: put(*job), jobs):
            written.append(name)
    meta = json.dumps({**(extra_meta or {}), "names": names, "params": params or {}}, default=str)
    _save_npz(str(folder / "layers.npz"), alphas=np.asarray(alphas, np.float32), meta=np.array(meta))
    os.chmod(folder / "layers.npz", mode)
    written.append("layers.npz")
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
    # zlib level 1: files about a third larger than at the default 6 (42 vs 32 MB for a
    # 50 MP layer); with the two threads and the stored .npz, a 50 MP stack went from
    # 45.6 to 20.7 s (benchmarks/bench_export.py times the stack as it is now).
    Image.fromarray(arr).save(path, format="PNG", compress_level=PNG_LEVEL, **extra)


PNG_LEVEL = 1


def _save_cv_png(path: str, arr: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
    if not ok:
        raise ExportError(f"PNG encoding failed for {path}")
    with open(path, "wb") as f:
        f.write(buf.tobytes())


NPZ_STORE_BYTES = 64 * 2**20   # larger arrays are stored, not deflated


def _save_npz(path: str, **arrays: np.ndarray) -> None:
    """The .npz format (np.load reads it), streamed: a 50 MP stack's 1 GB of float32
    alphas is not held twice. Small arrays are deflated (level 1); large ones stored, as
    soft alphas deflate poorly (a 50 MP stack: 1.0 GB → 0.8 GB for 20 s of zlib)."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, arr in arrays.items():
            arr = np.asanyarray(arr)
            member: "str | zipfile.ZipInfo" = f"{name}.npy"
            if arr.nbytes > NPZ_STORE_BYTES:
                member = zipfile.ZipInfo(f"{name}.npy")
                member.compress_type = zipfile.ZIP_STORED
            with z.open(member, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, arr, allow_pickle=False)


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
    layer_colours: bool = True,
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
    layer_colours : bool, optional
        Each layer's own colours in its soft pixels (unmixed from the other layers, so
        that it composites onto a new background without a fringe); the stack over the
        Photo layer then differs from the photo in soft pixels. False: the photo's
        colours, and the composite is the photo.

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
    from .psd_writer import MAX_SIDE, PsdLayer, write_layered_psd

    _check(image, alphas, layer_images)
    names = list(names) if names is not None else default_names(alphas.shape[0])
    h, w = image.shape[:2]
    if max(h, w) > MAX_SIDE:
        raise ExportError(f"a PSD is at most {MAX_SIDE} pixels a side and the photo is {w}×{h}: "
                          "export a PNG stack instead")
    for name in names:
        if len(name) > 255:
            raise ExportError(f"a PSD layer name has at most 255 characters: {name[:40]}…")
    photo8 = _to_u8(image)
    opaque = np.full((h, w, 1), 255, np.uint8)

    def layer_rgba(k: int) -> np.ndarray:
        if layer_images is None and not layer_colours:
            rgb = photo8
        else:
            rgb = _to_u8(_layer_rgb(image, alphas, layer_images, k, layer_colours))
        return np.concatenate([rgb, _to_u8(alphas[k])[:, :, None]], axis=2)

    layers = [PsdLayer("Photo", lambda: np.concatenate([photo8, opaque], axis=2))]
    layers += [PsdLayer(names[k], lambda k=k: layer_rgba(k), visible=not (hidden is not None and hidden[k]))
               for k in range(alphas.shape[0])]

    def write(tmp: str) -> None:
        merged = _flatten(image, alphas, layer_images, hidden)
        with open(tmp, "wb") as f:
            write_layered_psd(f, layers, merged, metadata.icc_profile, metadata.dpi)

    return atomic_write(path, write)


def _flatten(image: np.ndarray, alphas: np.ndarray, layer_images: Optional[np.ndarray],
             hidden: Optional[Sequence[bool]]) -> np.ndarray:
    """The PSD's merged image, H×W×4 uint8: the opaque photo with the visible layers laid
    over it in Normal mode, bottom to top, as a reader shows the file; in bands of rows."""
    h, w = image.shape[:2]
    out = np.empty((h, w, 4), np.uint8)
    out[:, :, 3] = 255
    for r in range(0, h, 512):
        c = _u8_float(image[r:r + 512])
        for k in range(alphas.shape[0]):
            if hidden is not None and hidden[k]:
                continue
            a = _u8_float(alphas[k, r:r + 512])[:, :, None]
            layer = c if layer_images is None else _u8_float(layer_images[k, r:r + 512])
            c = a * layer + (1.0 - a) * c
        out[r:r + 512, :, :3] = np.clip(np.rint(c * 255.0), 0, 255)
    return out


def _u8_float(x: np.ndarray) -> np.ndarray:
    """What a reader sees of a value written as 8 bits: round(x·255) / 255, float32."""
    return np.clip(np.rint(np.asarray(x, np.float32) * np.float32(255.0)), 0, 255) / np.float32(255.0)
