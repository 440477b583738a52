"""``sss-studio install-desktop``: the studio in a Linux desktop's menus, with its icon,
and ``.sssproj`` files opening in it (freedesktop.org: a .desktop entry, a hicolor icon,
a shared-mime-info package), for the current user."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .bundled import bundled_file


def data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def install(executable: str | None = None) -> list[Path]:
    """Write the entry, the icon and the MIME type under $XDG_DATA_HOME; returns the files.
    ``Exec`` names this very program (so a venv's sss-studio works from the menu)."""
    exe = executable or shutil.which("sss-studio") or sys.argv[0]
    home = data_home()
    entry = bundled_file("resources", "sss-studio.desktop").read_text(encoding="utf-8")
    entry = entry.replace("Exec=sss-studio %f", f"Exec={_quote(str(Path(exe).resolve()))} %f")
    targets = {
        home / "applications" / "sss-studio.desktop": entry.encode("utf-8"),
        home / "icons" / "hicolor" / "256x256" / "apps" / "sss-studio.png":
            bundled_file("resources", "icons", "app.png").read_bytes(),
        home / "mime" / "packages" / "sss-studio.xml": bundled_file("resources", "sss-studio-mime.xml").read_bytes(),
    }
    for path, data in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    for tool, folder in (("update-mime-database", home / "mime"), ("update-desktop-database", home / "applications")):
        if shutil.which(tool):
            subprocess.run([tool, str(folder)], capture_output=True, timeout=60)
    return list(targets)


def _quote(path: str) -> str:
    """Exec's quoting (Desktop Entry spec): double quotes when the path has spaces."""
    if any(c in path for c in ' \t"\\$`'):
        return '"' + path.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`") + '"'
    return path
