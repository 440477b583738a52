"""The bundled resources (icons, style sheet, sample photos) as Qt needs them; where
they are is ``sss_studio.bundled``'s business."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QIcon

from ..bundled import bundled_dir


def resources_dir() -> Path:
    return bundled_dir("resources")


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
