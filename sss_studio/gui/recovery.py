"""Crash recovery: the open document is autosaved to a recovery project shortly after
each edit (atomically, as any project), the file goes on a clean save or close, and a
studio that starts while one is left by a process that is gone offers to restore it."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from PySide6.QtCore import QObject, QStandardPaths, QTimer

from ..io.export import pid_alive
from ..io.params_dict import params_to_dict
from ..io.project import PROJECT_SUFFIX, ProjectData, ProjectError, save_project

if TYPE_CHECKING:
    from .document import Document

DEBOUNCE_MS = 1500
_NAME = re.compile(r"^autosave-(\d+)" + re.escape(PROJECT_SUFFIX) + "$")


def recovery_dir() -> Path:
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".sss_studio") / "recovery"


def left_behind() -> list[Path]:
    """Recovery projects of studios that are no longer running, newest first."""
    folder = recovery_dir()
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if (m := _NAME.match(p.name)) and not pid_alive(int(m.group(1)))]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


class Autosave(QObject):
    """Owned by the main window; watches the document's undo stack."""

    def __init__(self, doc: "Document", parent: Optional[QObject] = None):
        super().__init__(parent)
        self.doc = doc
        self.path = recovery_dir() / f"autosave-{os.getpid()}{PROJECT_SUFFIX}"
        self.errors: list[str] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.save_now)
        doc.undo_stack.indexChanged.connect(self._edited)
        doc.undo_stack.cleanChanged.connect(self._clean_changed)

    def _edited(self, _index: int) -> None:
        self._timer.start()

    def _clean_changed(self, clean: bool) -> None:
        if clean:
            self._timer.stop()
            self.discard()

    def save_now(self) -> bool:
        """Write the recovery project now (True), or remove it when there is nothing unsaved."""
        self._timer.stop()
        doc = self.doc
        if doc.stack is None or doc.photo_path is None or not doc.is_modified:
            self.discard()
            return False
        data = ProjectData(doc.photo_path, doc.stack.alphas, list(doc.stack.layers), params_to_dict(doc.params))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            save_project(self.path, data)
        except (ProjectError, OSError) as e:
            self.errors.append(str(e))   # autosave must never interrupt the user
            return False
        return True

    def discard(self) -> None:
        self._timer.stop()
        try:
            self.path.unlink()
        except OSError:
            pass
