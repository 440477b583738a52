"""Persistent settings (recent files, window geometry), always in INI format so that
tests can redirect them with ``QSettings.setPath``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import QSettings

ORGANISATION = "sss_studio"
APPLICATION = "studio"
MAX_RECENT = 10


def settings() -> QSettings:
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION, APPLICATION)


def recent_files() -> list[str]:
    value = settings().value("recent", [])
    if isinstance(value, str):
        value = [value]
    return [str(v) for v in (value or [])]


def add_recent(path: str) -> list[str]:
    path = str(Path(path).resolve())
    items = [p for p in recent_files() if p != path]
    items.insert(0, path)
    items = items[:MAX_RECENT]
    s = settings()
    s.setValue("recent", items)
    s.sync()
    return items


def clear_recent() -> None:
    s = settings()
    s.remove("recent")
    s.sync()


def save_quality(mode: str, working_pixels: int) -> None:
    s = settings()
    s.setValue("mode", mode)
    s.setValue("working_pixels", int(working_pixels))
    s.sync()


def default_layers() -> Optional[int]:
    """The number of layers new photos get (Preferences), if the user set one."""
    try:
        v = settings().value("layers")
        return int(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def save_default_layers(layers: int) -> None:
    s = settings()
    s.setValue("layers", int(layers))
    s.sync()


def export_alpha_files() -> bool:
    """Whether PNG stacks include the 16-bit NN_name_alpha.png files (Preferences)."""
    v = settings().value("export_alpha_files", True)
    return str(v).lower() not in ("false", "0", "no")


def save_export_alpha_files(on: bool) -> None:
    s = settings()
    s.setValue("export_alpha_files", bool(on))
    s.sync()


def saved_quality() -> tuple[Optional[str], Optional[int]]:
    """The solver and working size last chosen in the Segment menu, if any."""
    s = settings()
    mode = s.value("mode")
    pixels = s.value("working_pixels")
    try:
        pixels = int(pixels) if pixels is not None else None
    except (TypeError, ValueError):
        pixels = None
    return (str(mode) if mode else None), pixels
