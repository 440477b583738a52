"""The one locator of bundled files (the embedding model, icons, style sheet, sample
photos), wherever the program runs from: a PyInstaller bundle, an installed wheel
(package data under ``sss_studio/_bundled/``, put there by setup.py's build hook), a
clone or an editable install (the repository's top-level ``models/`` and
``resources/``), or an environment's ``share/sss_studio``."""

from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path


def bundled_dir(name: str) -> Path:
    """The folder ``name`` ("models", "resources") where it exists; the first candidate
    otherwise (so that a message can name the place it was looked for)."""
    candidates = []
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        candidates.append(Path(frozen) / name)
    candidates.append(Path(str(files("sss_studio").joinpath("_bundled", name))))
    candidates.append(Path(__file__).resolve().parents[1] / name)
    candidates.append(Path(sys.prefix) / "share" / "sss_studio" / name)
    for c in candidates:
        if c.is_dir():
            return c
    return candidates[0]


def bundled_file(name: str, *parts: str) -> Path:
    """A file inside a bundled folder, e.g. ``bundled_file("models", "sss_embed.onnx")``."""
    return bundled_dir(name).joinpath(*parts)
