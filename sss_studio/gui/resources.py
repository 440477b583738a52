"""Where the bundled resources (icons, style sheet, sample photos) are."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtGui import QIcon


def resources_dir() -> Path:
    """resources/ beside the package (source tree) or inside a PyInstaller bundle."""
    frozen = getattr(sys, "_MEIPASS", None)
    candidates = []
    if frozen:
        candidates.append(Path(frozen) / "resources")
    candidates.append(Path(__file__).resolve().parents[2] / "resources")
    candidates.append(Path(sys.prefix) / "share" / "sss_studio" / "resources")
    for c in candidates:
        if c.is_dir():
            return c
    return candidates[0]


def icon(name: str) -> QIcon:
    # Not cached in a module global: Qt pixmaps/icons alive at interpreter exit are
    # destroyed after the QApplication, which can crash.
    path = resources_dir() / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()


def style_sheet() -> str:
    path = resources_dir() / "style.qss"
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def sample_photos() -> list[Path]:
    folder = resources_dir() / "samples"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff"))
