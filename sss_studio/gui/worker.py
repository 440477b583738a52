"""The background worker: runs the Segmenter off the GUI thread, one run at a time.

A new request cancels the running one (cooperatively, through the engine's cancel
callback) and starts when it has stopped, without blocking the GUI thread; only the
newest request's outcome is reported. Progress arrives as (request id, stage, fraction).
"""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..core.cancel import Cancelled
from ..core.pipeline import SegmentationResult, SegmenterParams
from .engine import FeatureError, FeatureSource


@dataclass(frozen=True)
class Request:
    id: int
    kind: str                    # "open" (a new photo) or "rerun" (new weights/layers)
    image: np.ndarray = field(repr=False, compare=False)
    params: SegmenterParams = field(compare=False)


@dataclass
class Outcome:
    request: Request
    result: Optional[SegmentationResult] = None
    error: Optional[str] = None
    cancelled: bool = False
    note: str = ""                    # where the features came from / the provider
    timings: dict[str, float] = field(default_factory=dict)


class _Job(QThread):
    progressed = Signal(int, str, float)

    def __init__(self, request: Request, worker: "SegmentationWorker"):
        super().__init__()
        self.request = request
        self._worker = worker
        self._cancel = threading.Event()
        self.outcome = Outcome(request)

    def cancel(self) -> None:
        self._cancel.set()

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> None:  # the worker thread
        req = self.request
        w = self._worker
        try:
            seg = w._segmenter
            if seg is None or seg.image is not req.image:
                self.progressed.emit(req.id, "preparing features", 0.0)
                prepared = w.source.prepare(req.image, req.params, self.cancelled)
                w._segmenter, w._note = prepared.segmenter, prepared.note
                self.outcome.timings.update(prepared.timings)
                seg = prepared.segmenter
            self.outcome.note = w._note
            result = seg.run(
                req.params,
                progress=lambda stage, frac: self.progressed.emit(req.id, stage, float(frac)),
                cancel=self.cancelled,
            )
            self.outcome.timings.update(result.timings)
            self.outcome.result = result
        except Cancelled:
            self.outcome.cancelled = True
        except FeatureError as e:
            self.outcome.error = str(e)
        except MemoryError:
            self.outcome.error = "out of memory: try a smaller working size"
        except Exception as e:  # the run failed: report it, keep the document
            traceback.print_exc()
            self.outcome.error = f"{type(e).__name__}: {e}"


class SegmentationWorker(QObject):
    started = Signal(object)            # Request
    progress = Signal(int, str, float)  # request id, stage, overall fraction
    finished = Signal(object)           # Outcome with a result
    failed = Signal(object)             # Outcome with an error
    cancelled = Signal(object)          # Outcome, cancelled (and not superseded)
    busy_changed = Signal(bool)

    def __init__(self, source: FeatureSource, parent: Optional[QObject] = None):
        super().__init__(parent)
        self.source = source
        self._segmenter: Any = None     # touched only by the running job's thread
        self._note = ""
        self._next_id = 0
        self._current: Optional[_Job] = None
        self._pending: Optional[Request] = None

    # -- requests ---------------------------------------------------------------------
    def submit(self, kind: str, image: np.ndarray, params: SegmenterParams) -> int:
        self._next_id += 1
        req = Request(self._next_id, kind, image, params)
        self._pending = req
        if self._current is not None:
            self._current.cancel()
        else:
            self._start_pending()
        return req.id

    def cancel(self) -> None:
        """Stop the running request and drop any pending one."""
        self._pending = None
        if self._current is not None:
            self._current.cancel()

    def forget_photo(self) -> None:
        """The next request sets up a new Segmenter (e.g. another photo was opened)."""
        if self._current is None:
            self._segmenter = None

    @property
    def busy(self) -> bool:
        return self._current is not None

    @property
    def running_request(self) -> Optional[Request]:
        return None if self._current is None else self._current.request

    @property
    def latest_id(self) -> int:
        return self._next_id

    def shutdown(self, timeout_ms: int = -1) -> bool:
        """Cancel and wait for the running job (on close). True when it stopped."""
        self._pending = None
        job = self._current
        if job is None:
            return True
        job.cancel()
        ok = job.wait() if timeout_ms < 0 else job.wait(timeout_ms)
        return bool(ok)

    # -- internals ----------------------------------------------------------------------
    def _start_pending(self) -> None:
        req, self._pending = self._pending, None
        if req is None:
            self.busy_changed.emit(False)
            return
        job = _Job(req, self)
        job.progressed.connect(self._on_progress)
        job.finished.connect(self._on_job_finished)
        self._current = job
        self.busy_changed.emit(True)
        self.started.emit(req)
        job.start(QThread.Priority.LowPriority)

    @Slot(int, str, float)
    def _on_progress(self, rid: int, stage: str, frac: float) -> None:
        if self._current is not None and self._current.request.id == rid and not self._current.cancelled():
            self.progress.emit(rid, stage, frac)

    @Slot()
    def _on_job_finished(self) -> None:
        job = self._current
        if job is None:
            return
        job.wait()
        self._current = None
        outcome = job.outcome
        job.deleteLater()
        superseded = self._pending is not None
        if not superseded:
            if outcome.result is not None:
                self.finished.emit(outcome)
            elif outcome.error is not None:
                self.failed.emit(outcome)
            else:
                self.cancelled.emit(outcome)
        self._start_pending()
