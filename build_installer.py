#!/usr/bin/env python
"""Build a standalone SSS Studio: a PyInstaller one-folder app with the embedding model
(models/) and the resources (icons, style, sample photos), smoke-test the frozen app,
and pack it into an archive.

    pip install -e ".[cpu,installer]"
    python build_installer.py                 # build, smoke test, archive into dist/
    python build_installer.py --skip-smoke    # build and archive only
    python build_installer.py --smoke-only    # test an existing dist/sss-studio

The smoke test runs the frozen executable as ``sss-studio gui SAMPLE --screenshot
OUT.png`` on the offscreen Qt platform with a small working size: it must open the
window, segment the sample photo with the bundled model, save a screenshot and exit 0.
CI runs it (`.ci/run`); the README's release checklist names it too.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
NAME = "sss-studio"
DIST = ROOT / "dist"
BUILD = ROOT / "build" / "pyinstaller"

# Packages that read their own metadata (importlib.metadata) when they load: PyInstaller
# does not copy dist-info folders unless told (pyamg's missing metadata killed the
# frozen `segment` with a traceback).
COPY_METADATA = ["pyamg", "scikit-image", "numba", "onnxruntime", "onnxruntime-gpu", "imageio",
                 "pillow", "numpy", "scipy", "opencv-python-headless", "threadpoolctl", "sss_studio"]

# Libraries of the build machine that the app does not need: the GTK platform theme
# plugin and the GTK stack it drags in (the studio draws its own style), found by
# PyInstaller's dependency scan. Removed from the folder after the build.
PRUNE = [
    "PySide6/Qt/plugins/platformthemes/libqgtk3.so",
    "libgtk-3.so*", "libgdk-3.so*", "libgdk_pixbuf-2.0.so*", "libatk-1.0.so*", "libatk-bridge-2.0.so*",
    "libatspi.so*", "libpango-1.0.so*", "libpangocairo-1.0.so*", "libpangoft2-1.0.so*", "libcairo.so*",
    "libcairo-gobject.so*", "libepoxy.so*", "libfribidi.so*", "libthai.so*", "libdatrie.so*", "libcolord*.so*",
    "libwayland-cursor.so*", "libXcomposite.so*", "libXdamage.so*", "libXinerama.so*", "libXrandr.so*",
    "libXcursor.so*", "libXi.so*", "libXfixes.so*", "libXext.so*", "libXrender.so*", "libpixman-1.so*",
]

# Qt modules the studio never uses: leaving them out keeps the bundle smaller.
EXCLUDES = [
    "tkinter", "matplotlib", "torch", "tensorflow", "IPython", "pytest",
    "PySide6.QtNetwork", "PySide6.QtQml", "PySide6.QtQuick", "PySide6.QtWebEngineCore",
    "PySide6.Qt3DCore", "PySide6.QtMultimedia", "PySide6.QtSql", "PySide6.QtTest",
]


def _data_arg(src: Path, dest: str) -> str:
    return f"{src}{os.pathsep}{dest}"


def build(clean: bool = True) -> Path:
    try:
        import PyInstaller.__main__ as pyinstaller
    except ImportError:
        sys.exit('PyInstaller is not installed: pip install -e ".[installer]"')
    model = ROOT / "models" / "sss_embed.onnx"
    if not model.is_file():
        print(f"warning: {model} is missing: the app will need --features or SSS_STUDIO_MODEL", file=sys.stderr)
    BUILD.mkdir(parents=True, exist_ok=True)
    launcher = BUILD / "sss_studio_main.py"
    launcher.write_text(
        "import multiprocessing, sys\n"
        "from sss_studio.cli import main\n"
        "if __name__ == '__main__':\n"
        "    multiprocessing.freeze_support()\n"
        "    sys.exit(main())\n",
        encoding="utf-8",
    )
    args = [
        str(launcher),
        "--name", NAME,
        "--onedir",
        "--noconfirm",
        "--console",                      # the same executable is also the command-line tool
        "--distpath", str(DIST),
        "--workpath", str(BUILD / "work"),
        "--specpath", str(BUILD),
        "--paths", str(ROOT),
        "--add-data", _data_arg(ROOT / "resources", "resources"),
        "--add-data", _data_arg(ROOT / "NOTICE", "."),
        "--add-data", _data_arg(ROOT / "LICENSE", "."),
        "--collect-submodules", "sss_studio",
        "--collect-data", "skimage",
        "--collect-binaries", "onnxruntime",
        "--hidden-import", "PySide6.QtSvg",
    ]
    if model.is_file():
        args += ["--add-data", _data_arg(model, "models")]
        card = ROOT / "models" / "MODEL_CARD.md"
        if card.is_file():
            args += ["--add-data", _data_arg(card, "models")]
    icon = ROOT / "resources" / "icons" / "app.ico"
    if icon.is_file():
        args += ["--icon", str(icon)]
    for mod in EXCLUDES:
        args += ["--exclude-module", mod]
    for dist in COPY_METADATA:
        if _installed(dist):
            args += ["--copy-metadata", dist]
    if clean:
        args.append("--clean")
    print("pyinstaller " + " ".join(args))
    pyinstaller.run(args)
    app_dir = DIST / NAME
    if not app_dir.is_dir():
        sys.exit(f"PyInstaller did not produce {app_dir}")
    prune(app_dir)
    return app_dir


def _installed(dist: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        version(dist)
        return True
    except PackageNotFoundError:
        return False


def _size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def prune(app_dir: Path) -> None:
    """Remove the PRUNE files (anywhere in the folder) and say how much that saved."""
    before = _size_mb(app_dir)
    removed = 0
    for pattern in PRUNE:
        for path in list(app_dir.rglob(pattern)):
            if path.is_file() or path.is_symlink():
                path.unlink()
                removed += 1
    # llvmlite ships its 179 MB library with its symbol table: stripped it is 160 MB and
    # loads the same. (PyInstaller's --strip on every library broke numpy's OpenBLAS:
    # "ELF load command address/offset not page-aligned".)
    strip = shutil.which("strip")
    for lib in app_dir.rglob("libllvmlite.so"):
        if strip and sys.platform.startswith("linux"):
            subprocess.run([strip, "--strip-unneeded", str(lib)], check=False)
    print(f"pruned {removed} files and stripped llvmlite: {before:.0f} MB → {_size_mb(app_dir):.0f} MB")


def executable(app_dir: Path) -> Path:
    exe = app_dir / (NAME + (".exe" if os.name == "nt" else ""))
    if not exe.is_file():
        sys.exit(f"no executable at {exe}")
    return exe


def smoke_test(app_dir: Path, timeout: int = 900) -> Path:
    """Run the frozen app on a sample photo with --screenshot; return the screenshot."""
    exe = executable(app_dir)
    samples = sorted((ROOT / "resources" / "samples").glob("*.png"))
    if not samples:
        sys.exit("no sample photo under resources/samples for the smoke test")
    out = Path(tempfile.mkdtemp(prefix="sss_smoke_")) / "frozen_screenshot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    # A small copy of the sample keeps the frozen run to seconds.
    small = out.parent / "sample_small.png"
    from PIL import Image

    with Image.open(samples[0]) as im:
        im.convert("RGB").resize((96, int(96 * im.height / im.width))).save(small)
    cmd = [str(exe), "gui", str(small), "--screenshot", str(out)]
    print("smoke test: " + " ".join(cmd))
    t0 = time.time()
    proc = subprocess.run(cmd, env=env, timeout=timeout, capture_output=True, text=True)
    print(proc.stdout[-2000:])
    print(proc.stderr[-4000:], file=sys.stderr)
    if proc.returncode != 0:
        sys.exit(f"smoke test failed: exit code {proc.returncode}")
    if not out.is_file() or out.stat().st_size < 10_000:
        sys.exit(f"smoke test failed: no screenshot at {out}")
    version = subprocess.run([str(exe), "--version"], env=env, capture_output=True, text=True, timeout=120)
    if version.returncode != 0:
        sys.exit("smoke test failed: --version")
    print(f"smoke test passed in {time.time() - t0:.0f} s: {out}")
    return out


def package(app_dir: Path) -> Path:
    from sss_studio import __version__

    system = {"Linux": "linux", "Darwin": "macos", "Windows": "windows"}.get(platform.system(), platform.system().lower())
    base = DIST / f"{NAME}-{__version__}-{system}-{platform.machine().lower()}"
    fmt = "zip" if os.name == "nt" else "gztar"
    archive = shutil.make_archive(str(base), fmt, root_dir=DIST, base_dir=app_dir.name)
    print(f"archive: {archive} ({Path(archive).stat().st_size / 1e6:.0f} MB)")
    return Path(archive)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-smoke", action="store_true", help="do not run the frozen smoke test")
    ap.add_argument("--smoke-only", action="store_true", help="only smoke-test an existing build")
    ap.add_argument("--no-archive", action="store_true", help="leave the folder, make no archive")
    ap.add_argument("--no-clean", action="store_true", help="reuse PyInstaller's cache")
    args = ap.parse_args(argv)
    if args.smoke_only:
        smoke_test(DIST / NAME)
        return 0
    app_dir = build(clean=not args.no_clean)
    if not args.skip_smoke:
        shot = smoke_test(app_dir)
        shutil.copy(shot, DIST / "frozen_screenshot.png")
    if not args.no_archive:
        package(app_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
