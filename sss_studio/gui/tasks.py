"""One-off background tasks (exports): a callable run on a QThread, its outcome
reported back on the GUI thread."""

from __future__ import annotations

from typing import Any, Callable, Optional

from PySide6.QtCore import QObject, QThread, Signal


class Task(QThread):
    succeeded = Signal(object)
    failed = Signal(str)

    def __init__(self, fn: Callable[[], Any], errors: tuple[type[BaseException], ...], parent: Optional[QObject] = None):
        super().__init__(parent)
        self._fn = fn
        self._errors = errors
        self._result: Any = None
        self._error: Optional[str] = None
        self.finished.connect(self._report)

    def run(self) -> None:
        try:
            self._result = self._fn()
        except self._errors as e:
            self._error = str(e)
        except MemoryError:
            self._error = "out of memory"
        except Exception as e:  # unexpected: still reported, never a crash
            self._error = f"{type(e).__name__}: {e}"

    def _report(self) -> None:
        if self._error is not None:
            self.failed.emit(self._error)
        else:
            self.succeeded.emit(self._result)
        self.deleteLater()
