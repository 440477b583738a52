"""Background work off the GUI thread.

``Worker``: the one worker type. It runs a callable on its own thread and reports on
the GUI thread exactly one of ``returned(result)``, ``errored(message)`` or
``aborted()`` (cancelled), after Qt's own ``started``; ``progressed(stage, fraction)``
on the way (the shape of superqt's WorkerBase). Exports use it directly.

``SegmentationWorker``: segmentation requests, one run at a time, the newest wins. A
new request cancels the running one (cooperatively, through the engine's cancel
callback) and starts when it has stopped, without blocking the GUI thread; only the
newest request's outcome is reported.
"""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..segmentation.cancel import Cancelled
from ..segmentation.embedding import ModelError
from ..segmentation.params import SegmenterParams
from ..segmentation.pipeline import SegmentationResult
from ..segmentation.sources import FeatureError, FeatureSource


class Worker(QThread):
    progressed = Signal(str, float)
    previewed = Signal(object)       # an early result the work function hands over
    returned = Signal(object)
    errored = Signal(str)
    aborted = Signal()

    def __init__(self, fn: Callable[["Worker"], Any], errors: tuple[type[BaseException], ...] = (),
                 out_of_memory: str = "out of memory", parent: Optional[QObject] = None):
        super().__init__(parent)
        self._fn = fn
        self._errors = errors
        self._out_of_memory = out_of_memory
        self._cancel = threading.Event()
        self.result: Any = None
        self.error: Optional[str] = None
        self.was_cancelled = False
        self.finished.connect(self._report)

    # -- called from the work function (its thread) -----------------------------------
    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def report(self, stage: str, fraction: float) -> None:
        self.progressed.emit(stage, float(fraction))

    def show_early(self, value: Any) -> None:
        self.previewed.emit(value)

    # -- called from the GUI thread -----------------------------------------------------
    def cancel(self) -> None:
        self._cancel.set()

    def run(self) -> None:  # the worker thread
        try:
            self.result = self._fn(self)
        except Cancelled:
            self.was_cancelled = True
        except self._errors as e:
            self.error = str(e)
        except MemoryError:
            self.error = self._out_of_memory
        except Exception as e:  # unexpected: reported, never a crash
            traceback.print_exc()
            self.error = f"{type(e).__name__}: {e}"

    def _report(self) -> None:
        if self.was_cancelled:
            self.aborted.emit()
        elif self.error is not None:
            self.errored.emit(self.error)
        else:
            self.returned.emit(self.result)
        self.deleteLater()


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
    # The layers at full size before their edges were refined: shown while the edges are
    # solved, and kept as the result when the run is cancelled during that stage.
    preview: Optional[SegmentationResult] = None


class SegmentationWorker(QObject):
    started = Signal(object)            # Request
    progress = Signal(int, str, float)  # request id, stage, overall fraction
    previewed = Signal(object)          # Outcome with .preview: the layers before their edges are refined
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
        self._current: Optional[Worker] = None
        self._current_request: Optional[Request] = None
        self._pending: Optional[Request] = None
        # A reopened project's spectral basis, for its photo's first run (then dropped).
        self.warm_state: Optional[tuple[np.ndarray, dict]] = None

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

    @property
    def busy(self) -> bool:
        return self._current is not None

    @property
    def running_request(self) -> Optional[Request]:
        return self._current_request

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
    def _segment(self, req: Request, outcome: Outcome, job: Worker) -> None:
        """The job's work, on its thread."""
        seg = self._segmenter
        if seg is None or seg.image is not req.image:
            job.report("preparing features", 0.0)
            prepared = self.source.prepare(req.image, req.params, job.is_cancelled)
            self._segmenter, self._note = prepared.segmenter, prepared.note
            outcome.timings.update(prepared.timings)
            seg = prepared.segmenter
            warm, self.warm_state = self.warm_state, None
            if warm is not None and warm[0] is req.image:
                seg.params = req.params
                seg.restore_warm_state(warm[1])
        outcome.note = self._note

        def early(result: SegmentationResult) -> None:
            outcome.preview = result
            job.show_early(outcome)

        outcome.result = seg.run(req.params, progress=job.report, cancel=job.is_cancelled, preview=early)
        outcome.timings.update(outcome.result.timings)

    def _start_pending(self) -> None:
        req, self._pending = self._pending, None
        if req is None:
            self.busy_changed.emit(False)
            return
        outcome = Outcome(req)
        job = Worker(lambda w: self._segment(req, outcome, w), (FeatureError, ModelError, ValueError),
                     "out of memory: try a smaller working size", self)
        job.progressed.connect(self._on_progress)
        job.previewed.connect(self._on_preview)
        job.returned.connect(lambda _r: self._on_done(job, outcome))
        job.errored.connect(lambda msg: self._on_done(job, outcome, error=msg))
        job.aborted.connect(lambda: self._on_done(job, outcome, cancelled=True))
        self._current, self._current_request = job, req
        self.busy_changed.emit(True)
        self.started.emit(req)
        job.start(QThread.Priority.LowPriority)

    @Slot(str, float)
    def _on_progress(self, stage: str, frac: float) -> None:
        # Queued from the job's thread: a cancelled or replaced job's late reports are dropped.
        job = self.sender()
        if job is not None and job is self._current and not self._current.is_cancelled():
            assert self._current_request is not None
            self.progress.emit(self._current_request.id, stage, frac)

    @Slot(object)
    def _on_preview(self, outcome: Outcome) -> None:
        job = self.sender()
        if job is not None and job is self._current and not self._current.is_cancelled():
            self.previewed.emit(outcome)

    def _on_done(self, job: Worker, outcome: Outcome, error: Optional[str] = None, cancelled: bool = False) -> None:
        if self._current is not job:
            return
        job.wait()
        self._current, self._current_request = None, None
        outcome.error, outcome.cancelled = error, cancelled
        if cancelled or error is not None:
            outcome.result = None
        if self._pending is None:  # not superseded
            if outcome.result is not None:
                self.finished.emit(outcome)
            elif outcome.error is not None:
                self.failed.emit(outcome)
            else:
                self.cancelled.emit(outcome)
        self._start_pending()
