"""Studio project files (``.sssproj``): a zip that references the photo and stores
the layers and their edits.

Contents:
  project.json  version, photo path (absolute and relative to the project file),
                layer records (name, colour, visibility, recolour), settings
                (mode, number of layers, affinity weights, …)
  alphas.npy    K×H×W float32 alphas, deflated (exact round trip)

The photo itself is not copied: a project is small and the photo stays where it is.
Written under a temporary name and renamed, so a failing save never leaves a broken
project behind.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..layers.stack import Layer
from .export import ExportError, atomic_write

__all__ = ["ProjectError", "ProjectData", "save_project", "load_project", "PROJECT_SUFFIX", "FORMAT_VERSION"]

PROJECT_SUFFIX = ".sssproj"
FORMAT_VERSION = 1
_MAGIC = "sss_studio project"


class ProjectError(Exception):
    """The project cannot be saved or opened; the message says why in one line."""


@dataclass
class ProjectData:
    photo_path: str                        # absolute path of the photo
    alphas: np.ndarray                     # K×H×W float32
    layers: list[Layer]
    settings: dict[str, Any] = field(default_factory=dict)   # mode, layers, weights, …
    # The run's spectral basis (segmentation.pipeline.Segmenter.warm_state): kept so that
    # the first slider move after reopening is a warm re-run, not a full one. Optional.
    warm_state: Optional[dict[str, np.ndarray]] = None


def save_project(path: str | os.PathLike, data: ProjectData) -> Path:
    alphas = np.ascontiguousarray(data.alphas, np.float32)
    if alphas.ndim != 3 or alphas.shape[0] != len(data.layers):
        raise ProjectError(f"{len(data.layers)} layer records for alphas of shape {alphas.shape}")
    target = Path(path)
    photo = Path(data.photo_path).resolve()
    try:
        relative: Optional[str] = os.path.relpath(photo, target.resolve().parent)
    except ValueError:  # another drive on Windows
        relative = None
    meta = {
        "format": _MAGIC,
        "version": FORMAT_VERSION,
        "photo": str(photo),
        "photo_relative": relative,
        "size": [int(alphas.shape[2]), int(alphas.shape[1])],
        "layers": [l.to_dict() for l in data.layers],
        "settings": data.settings,
    }
    buf = io.BytesIO()
    np.save(buf, alphas, allow_pickle=False)
    warm = io.BytesIO()
    if data.warm_state:
        np.savez(warm, **data.warm_state)

    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as z:
            z.writestr("project.json", json.dumps(meta, indent=1, default=str))
            z.writestr("alphas.npy", buf.getvalue())
            if data.warm_state:
                z.writestr("basis.npz", warm.getvalue())

    try:
        return atomic_write(target, write)
    except ExportError as e:
        raise ProjectError(str(e)) from None


def load_project(path: str | os.PathLike) -> ProjectData:
    """Read a project; a damaged one raises ProjectError with one line saying what is
    wrong (never opens half a project)."""
    p = Path(path)
    if not p.is_file():
        raise ProjectError(f"{p}: no such project file")
    try:
        with zipfile.ZipFile(p) as z:
            meta = json.loads(z.read("project.json").decode("utf-8"))
            alphas = np.load(io.BytesIO(z.read("alphas.npy")), allow_pickle=False)
            warm_state = _read_warm_state(z)
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError, OSError, UnicodeDecodeError) as e:
        raise ProjectError(f"{p}: not a readable sss_studio project ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != _MAGIC:
        raise ProjectError(f"{p}: not an sss_studio project")
    version = meta.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ProjectError(f"{p}: damaged project (format version {version!r} is not a number)")
    if version > FORMAT_VERSION:
        raise ProjectError(f"{p}: made by a newer sss_studio (format {version})")
    records = meta.get("layers")
    if not isinstance(records, list) or not all(isinstance(d, dict) for d in records):
        raise ProjectError(f"{p}: damaged layer records (not a list of layers)")
    try:
        layers = [Layer.from_dict(d) for d in records]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ProjectError(f"{p}: damaged layer records ({type(e).__name__}: {e})") from None
    if alphas.ndim != 3 or alphas.shape[0] != len(layers) or alphas.shape[0] == 0:
        raise ProjectError(f"{p}: damaged project (alphas {alphas.shape} for {len(layers)} layers)")
    if not np.issubdtype(alphas.dtype, np.floating):
        raise ProjectError(f"{p}: damaged project (alphas of type {alphas.dtype})")
    if not np.isfinite(alphas).all():
        raise ProjectError(f"{p}: damaged project (alphas with NaN or infinite values)")
    if alphas.min() < -1e-3 or alphas.max() > 1 + 1e-3 or np.abs(alphas.sum(axis=0) - 1.0).max() > 1e-2:
        raise ProjectError(f"{p}: damaged project (the layers' alphas do not sum to one)")
    settings = meta.get("settings") or {}
    if not isinstance(settings, dict):
        raise ProjectError(f"{p}: damaged project (settings are not a mapping)")
    return ProjectData(
        photo_path=_find_photo(p, meta),
        alphas=alphas.astype(np.float32, copy=False),
        layers=layers,
        settings=dict(settings),
        warm_state=warm_state,
    )


def _read_warm_state(z: zipfile.ZipFile) -> Optional[dict[str, np.ndarray]]:
    """The stored basis, or None when absent or unusable (it is only a head start)."""
    if "basis.npz" not in z.namelist():
        return None
    try:
        with np.load(io.BytesIO(z.read("basis.npz")), allow_pickle=False) as b:
            state = {k: b[k] for k in b.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile):
        return None
    ok = all(np.isfinite(v).all() for v in state.values() if np.issubdtype(v.dtype, np.number))
    return state if ok else None


def _find_photo(project: Path, meta: dict) -> str:
    """The photo next to the project (moved together) first, then its absolute path."""
    rel = meta.get("photo_relative")
    if rel:
        cand = (project.resolve().parent / rel).resolve()
        if cand.is_file():
            return str(cand)
    return str(meta.get("photo", ""))
