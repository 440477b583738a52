"""Entry point of the studio: ``run_app`` (called by ``sss-studio`` and ``sss-studio gui``)."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Optional

from ..segmentation.params import DEFAULT_MODE, SegmenterParams


class StudioCannotStart(Exception):
    """The window cannot open here; the message says why and what to install."""


def _close_on_sigterm(window) -> None:
    """SIGTERM (a session logging out, ``kill``) closes the studio without asking, its
    unsaved work kept in the recovery project for the next start. Python runs signal
    handlers between its own steps only, so a short timer gives it those steps while
    Qt's event loop runs."""
    import signal

    from PySide6.QtCore import QTimer

    asked = {"term": False}

    def handler(_signum, _frame) -> None:
        asked["term"] = True

    try:
        signal.signal(signal.SIGTERM, handler)
    except (ValueError, AttributeError):  # not the main thread, or no SIGTERM here
        return
    timer = QTimer(window)
    timer.setInterval(200)

    def check() -> None:
        if asked["term"]:
            timer.stop()
            window.terminate()

    timer.timeout.connect(check)
    timer.start()


def _check_features_fit(source, photo: str) -> None:
    """A features file given with a photo is for that photo: another size is refused now,
    as ``segment`` does (other photos opened later use the model)."""
    from ..io.image import ImageLoadError, read_image
    from ..segmentation.features import check_feature_size
    from ..segmentation.sources import FeatureError

    try:
        image, _ = read_image(photo)
        check_feature_size(source.features_file(), image)
    except ImageLoadError:
        return  # the window says so when it opens the photo
    except (FeatureError, ValueError) as e:
        raise StudioCannotStart(str(e)) from None


def _ensure_platform() -> None:
    # Without a display (CI, SSH) Qt cannot start the default platform; offscreen works.
    if sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM"):
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            os.environ["QT_QPA_PLATFORM"] = "offscreen"


# Qt warnings that a normal run gives and that say nothing to a user (the offscreen
# platform has no window manager to pass size hints to): logged at debug level.
_QT_NOISE = ("does not support propagateSizeHints",)


def _qt_messages_to_logging() -> None:
    """Qt's messages go to the ``sss_studio.qt`` logger (shown with --verbose), not raw
    to stderr: a normal run prints nothing of Qt's own."""
    import logging

    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    log = logging.getLogger("sss_studio.qt")
    levels = {QtMsgType.QtDebugMsg: logging.DEBUG, QtMsgType.QtInfoMsg: logging.INFO,
              QtMsgType.QtWarningMsg: logging.WARNING, QtMsgType.QtCriticalMsg: logging.ERROR,
              QtMsgType.QtFatalMsg: logging.CRITICAL}

    def handler(kind, _context, text) -> None:
        level = levels.get(kind, logging.WARNING)
        if level == logging.WARNING and any(n in text for n in _QT_NOISE):
            level = logging.DEBUG
        log.log(level, "%s", text)

    qInstallMessageHandler(handler)


def make_application():
    from PySide6.QtWidgets import QApplication

    from . import settings as app_settings
    from .resources import icon, style_sheet

    app = QApplication.instance()
    if app is None:
        _qt_messages_to_logging()
        app = QApplication(sys.argv[:1])
    app.setOrganizationName(app_settings.ORGANISATION)
    app.setApplicationName(app_settings.APPLICATION)
    app.setApplicationDisplayName("SSS Studio")
    app.setWindowIcon(icon("app"))
    qss = style_sheet()
    if qss:
        app.setStyleSheet(qss)
    return app


def run_app(
    photo: Optional[str] = None,
    screenshot: Optional[str] = None,
    mode: Optional[str] = None,
    model: Optional[str] = None,
    features: Optional[str] = None,
    working_pixels: Optional[int] = None,
) -> int:
    """Open the studio (optionally on a photo or project). With ``screenshot``, wait for
    the segmentation, save a grab of the window there and exit. Returns the exit code."""
    if screenshot:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    _ensure_platform()
    from .platform_check import message, missing_libraries, uses_xcb

    if uses_xcb():
        missing = missing_libraries()
        if missing:
            raise StudioCannotStart(message(missing))
    from PySide6.QtWidgets import QApplication

    owns_app = QApplication.instance() is None
    app = make_application()
    from PySide6.QtCore import QTimer

    from ..segmentation.sources import FeatureSource
    from .main_window import MainWindow

    from . import settings as app_settings

    # The solver/working size chosen last time in Segment ›, unless given on the command line.
    saved_mode, saved_pixels = app_settings.saved_quality()
    params = SegmenterParams.for_mode(mode or saved_mode or DEFAULT_MODE)
    if working_pixels or saved_pixels:
        params = replace(params, working_pixels=int(working_pixels or saved_pixels))
    if app_settings.default_layers():
        params = replace(params, layers=app_settings.default_layers())
    source = FeatureSource(model_path=model, features_path=features)
    if features and photo and not str(photo).lower().endswith(".sssproj"):
        _check_features_fit(source, photo)
    window = MainWindow(params, source)
    if screenshot:
        window.show_dialogs = False
        window.remember_recent = False
        window.resize(1400, 880)
    else:
        window.restore_geometry()
    window.show()

    exit_code = {"value": 0}
    _close_on_sigterm(window)
    if not screenshot:
        window.offer_recovery()
    if photo:
        if not window.open_path(str(photo)):
            exit_code["value"] = 1
    if screenshot:
        def grab() -> None:
            if exit_code.get("grabbed"):
                return
            exit_code["grabbed"] = 1
            window.render()
            app.processEvents()
            out = Path(screenshot)
            out.parent.mkdir(parents=True, exist_ok=True)
            if not window.grab().save(str(out)):
                print(f"sss-studio: cannot write the screenshot {out}", file=sys.stderr)
                exit_code["value"] = 1
            if window.errors:
                print("sss-studio: " + window.errors[-1], file=sys.stderr)
                exit_code["value"] = 1
            window.doc.undo_stack.setClean()
            window.close()

        if window.worker.busy:
            window.idle.connect(lambda: QTimer.singleShot(300, grab))
        else:
            QTimer.singleShot(300, grab)
    if owns_app:
        app.exec()
    else:
        # Inside a running application (tests, embedding): a local loop until the window
        # closes, leaving the application itself running.
        from PySide6.QtCore import QEventLoop

        loop = QEventLoop()
        window.closed.connect(loop.quit)
        if window.isVisible():
            loop.exec()
    # Delete the window while the application still exists (not at interpreter exit).
    from PySide6.QtCore import QCoreApplication, QEvent

    window.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    return exit_code["value"]
