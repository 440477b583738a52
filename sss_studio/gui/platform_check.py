"""Before Qt starts on a Linux desktop: are the X11 libraries its xcb platform plugin
needs there? Qt itself aborts with a long message when they are not; we say in one
line which Debian/Ubuntu packages to install."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

# soname → the Debian/Ubuntu package that has it
PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
}
# Loaded with dlopen by the plugin (not a link-time dependency ldd would list).
DLOPENED = ("libxcb-cursor.so.0",)


def uses_xcb(environ: Optional[dict] = None) -> bool:
    env = os.environ if environ is None else environ
    platform = env.get("QT_QPA_PLATFORM", "")
    if not sys.platform.startswith("linux"):
        return False
    if platform:
        return platform.split(":")[0].split(";")[0] == "xcb"
    return bool(env.get("DISPLAY")) and not env.get("WAYLAND_DISPLAY")


def not_found(ldd_output: str) -> list[str]:
    """The sonames ``ldd`` printed as "=> not found"."""
    names = []
    for line in ldd_output.splitlines():
        if "=> not found" in line:
            name = line.split("=>")[0].strip()
            if name not in names:
                names.append(name)
    return names


def missing_libraries() -> list[str]:
    """The sonames the xcb plugin needs and cannot find (empty: all there, or not checkable)."""
    try:
        import PySide6
    except ImportError:
        return []
    qt = Path(PySide6.__file__).parent / "Qt"
    missing: list[str] = []
    ldd = shutil.which("ldd")
    if ldd:
        for lib in (qt / "plugins" / "platforms" / "libqxcb.so", qt / "lib" / "libQt6XcbQpa.so.6"):
            if lib.is_file():
                try:
                    out = subprocess.run([ldd, str(lib)], capture_output=True, text=True, timeout=20).stdout
                except (OSError, subprocess.SubprocessError):
                    continue
                missing += [n for n in not_found(out) if n not in missing]
    for name in DLOPENED:
        try:
            ctypes.CDLL(name)
        except OSError:
            missing.append(name)
    return missing


def message(missing: list[str]) -> str:
    packages = " ".join(dict.fromkeys(PACKAGES.get(n, n) for n in missing))
    return (f"the studio cannot open a window: Qt's X11 platform needs {', '.join(missing)}; "
            f"install them (Debian/Ubuntu: sudo apt-get install {packages}), "
            "or run headless with QT_QPA_PLATFORM=offscreen")
