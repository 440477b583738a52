"""The open document: photo, layer stack, selection, parameters and undo stack.

Every edit goes through :meth:`Document.edit`, which snapshots the stack before and
after and pushes one undoable command (alphas are shared, never copied, so undo
restores exactly the previous state); views listen to ``changed`` and
``selection_changed``.

The document owns the parameters: ``params`` (those of the layers shown) and, while a
run for new ones is pending, ``requested``. Panels show ``settings`` (the one or the
other) and write through ``request``; ``params_changed`` tells them to re-read.
"""

from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from ..io.export import PhotoMetadata
from ..layers.brush import BrushParams, Stroke
from ..layers.carry import Carried, carry_edits, keep_seeded
from ..layers.history import Snapshot, UndoStore
from ..layers.recolour import Recolour
from ..layers.stack import LayerStack, StackState
from ..segmentation.params import SegmenterParams
from ..segmentation.seeds import Seed, SeedGraph, refine_seeded
from .worker import Worker

# A scribble keeps a point every this many working-size pixels; a live preview at most this often.
SEED_SPACING = 3.0
SEED_PREVIEW_S = 0.12


class Document(QObject):
    photo_changed = Signal()          # a new photo (layers may not have arrived yet)
    changed = Signal()                # layers or edits changed
    selection_changed = Signal()
    params_changed = Signal()         # ``settings`` changed (shown layers' params or a request)
    run_requested = Signal(object)    # SegmenterParams: run with these (a photo is open)
    edges_refining = Signal(bool)     # the edges seeds moved are being refined off the GUI thread

    def __init__(self, params: SegmenterParams, parent: Optional[QObject] = None):
        super().__init__(parent)
        self.params = params                          # of the layers shown
        self.requested: Optional[SegmenterParams] = None   # of the run asked for, until it ends
        self.photo_path: Optional[str] = None
        self.metadata = PhotoMetadata()               # the photo file's colour profile and resolution
        self.image: Optional[np.ndarray] = None
        self.stack: Optional[LayerStack] = None
        self.selection: list[int] = []
        self.project_path: Optional[str] = None
        self.undo_stack = QUndoStack(self)
        # The history's alphas, within a memory budget (older re-runs spill to disk).
        self.history = UndoStore()
        self._solo_saved: Optional[list[bool]] = None
        self._stroke: Optional[Stroke] = None
        self._stroke_before: Optional[StackState] = None
        self._recolour_session = 0
        # What seeds need from the run that made the layers (None before a run in this session).
        self.seed_graph: Optional[SeedGraph] = None
        self._seeding: Optional[dict] = None
        self._edges_job: Optional[Worker] = None
        self._last_command: Optional[StackEditCommand] = None

    # -- state ----------------------------------------------------------------------
    @property
    def has_layers(self) -> bool:
        return self.stack is not None and len(self.stack) > 0

    @property
    def is_modified(self) -> bool:
        return not self.undo_stack.isClean()

    @property
    def settings(self) -> SegmenterParams:
        """What the controls show: the pending request's parameters, else the layers'."""
        return self.requested if self.requested is not None else self.params

    def set_params(self, params: SegmenterParams) -> None:
        if params != self.params:
            self.params = params
            self.params_changed.emit()

    def request(self, params: SegmenterParams) -> None:
        """Ask for a run with ``params`` (only remembered while no photo is open)."""
        if self.image is None:
            self.requested = None
            self.params = params
            self.params_changed.emit()
            return
        self.requested = params
        self.params_changed.emit()
        self.run_requested.emit(params)

    def request_ended(self) -> None:
        """The requested run finished, failed or was cancelled: show the layers' params."""
        if self.requested is not None:
            self.requested = None
            self.params_changed.emit()

    def set_photo(self, path: Optional[str], image: Optional[np.ndarray],
                  metadata: PhotoMetadata = PhotoMetadata()) -> None:
        self.requested = None
        self.metadata = metadata
        self.photo_path = path
        self.image = image
        self.cancel_edges()
        self.stack = None
        self.seed_graph = None
        self._seeding = None
        self.selection = []
        self.project_path = None
        self._solo_saved = None
        self.undo_stack.clear()
        self.photo_changed.emit()
        self.changed.emit()
        self.selection_changed.emit()

    def set_layers(self, stack: LayerStack, params: Optional[SegmenterParams] = None,
                   seed_graph: Optional[SeedGraph] = None) -> None:
        """The first layers for this photo (not an edit: nothing to undo to)."""
        self.cancel_edges()
        self.stack = stack
        self.seed_graph = seed_graph
        if params is not None:
            self.params = params
        self.requested = None
        self.selection = []
        self._solo_saved = None
        self.undo_stack.clear()
        self.changed.emit()
        self.selection_changed.emit()
        self.params_changed.emit()

    def set_selection(self, indices: Sequence[int]) -> None:
        n = len(self.stack) if self.stack is not None else 0
        sel = sorted({int(i) for i in indices if 0 <= int(i) < n})
        if sel != self.selection:
            self.selection = sel
            self.selection_changed.emit()

    # -- applying undo data (called by commands) --------------------------------------
    def apply_state(self, snap: Snapshot, params: Optional[SegmenterParams], selection: Sequence[int]) -> None:
        assert self.stack is not None
        self.cancel_edges()   # an undo or redo: a refinement under way would be dropped
        count_before = len(self.stack)
        self.stack.restore(self.history.state(snap))
        self.history.enforce(self.stack.alphas)
        if len(self.stack) != count_before:
            self._solo_saved = None
        n = len(self.stack)
        self.selection = sorted({int(i) for i in selection if 0 <= int(i) < n})
        if params is not None:
            self.set_params(params)
        self.changed.emit()
        self.selection_changed.emit()

    # -- edits ------------------------------------------------------------------------
    def edit(
        self,
        text: str,
        mutate: Callable[[LayerStack], Optional[Sequence[int]]],
        params: Optional[SegmenterParams] = None,
        merge_key: Optional[tuple] = None,
    ) -> bool:
        """Apply ``mutate`` to the stack as one undoable step. ``mutate`` may return the
        selection to have afterwards."""
        if self.stack is None:
            return False
        self.cancel_edges()   # a refinement of earlier layers would land on these
        before = self.stack.snapshot()
        sel_before = list(self.selection)
        params_before = self.params
        new_sel = mutate(self.stack)
        after = self.stack.snapshot()
        self.stack.restore(before)  # the command's first redo applies it
        before, after = self.history.keep(before), self.history.keep(after)
        sel_after = list(self.selection) if new_sel is None else list(new_sel)
        cmd = StackEditCommand(
            self, text, before, after, sel_before, sel_after,
            params_before if params is not None else None, params, merge_key,
        )
        self.undo_stack.push(cmd)
        self._last_command = cmd
        return True

    def merge_selected(self) -> bool:
        if self.stack is None or len(self.selection) < 2:
            return False
        names = len(self.selection)
        return self.edit(f"Merge {names} layers", lambda s: [s.merge(self.selection)])

    # -- the brush: one undoable step per stroke -------------------------------------------
    def begin_stroke(self, index: int, params: BrushParams, add: bool) -> bool:
        if self.stack is None or not 0 <= index < len(self.stack):
            return False
        self._stroke = Stroke(self.stack.alphas, index, params, add)
        self._stroke_before = self.stack.snapshot()
        return True

    def stroke_to(self, x: float, y: float) -> None:
        """Paint towards (x, y) and show it (not yet an undo step)."""
        if self._stroke is None or self.stack is None:
            return
        self._stroke.to(x, y)
        # A new array object each time (the same memory): views compare alphas by identity.
        self.stack.restore(StackState(self._stroke.alphas.view(), self.stack.layers))
        self.changed.emit()

    def end_stroke(self) -> bool:
        stroke, before = self._stroke, self._stroke_before
        self._stroke = self._stroke_before = None
        if stroke is None or self.stack is None or before is None:
            return False
        final = stroke.result()
        self.stack.restore(before)
        if np.array_equal(final, before.alphas):
            self.changed.emit()
            return False
        name = self.stack.layer(stroke.index).name
        verb = "Brush on" if stroke.add else "Erase from"
        return self.edit(f"{verb} {name}", lambda s: s.restore(StackState(final, s.layers)))

    # -- seeds: a click or scribble is one undoable step, previewed while drawn ---------------
    def begin_seeds(self, index: Optional[int], positive: bool) -> bool:
        """Start a scribble of seeds for layer ``index`` (None: a new layer). False
        without layers or without the run's seed graph."""
        if self.stack is None or self.seed_graph is None:
            return False
        if index is not None and not 0 <= index < len(self.stack):
            return False
        h, w = self.seed_graph.shape
        spacing = SEED_SPACING * max(self.stack.shape[0] / h, self.stack.shape[1] / w)
        self._seeding = dict(index=index, positive=positive, points=[], before=self.stack.snapshot(),
                             spacing=spacing, last=0.0)
        return True

    def seeds_to(self, x: float, y: float) -> None:
        """Add a point to the scribble (a new one only past the spacing) and show the
        layers with it, at most every SEED_PREVIEW_S seconds (not yet an undo step)."""
        s = self._seeding
        if s is None or self.stack is None:
            return
        h, w = self.stack.shape
        if not (0 <= x < w and 0 <= y < h):
            return
        pts = s["points"]
        if pts and (pts[-1].x - x) ** 2 + (pts[-1].y - y) ** 2 < s["spacing"] ** 2:
            return
        pts.append(Seed(float(x), float(y), s["positive"]))
        if time.monotonic() - s["last"] >= SEED_PREVIEW_S:
            self._show_seeds()

    def _seeded(self) -> tuple[StackState, int]:
        """The layers with the scribble's seeds (their moved edges are refined later,
        off the GUI thread: _refine_edges_later)."""
        s = self._seeding
        assert s is not None and self.stack is not None and self.seed_graph is not None
        before: StackState = s["before"]
        scratch = LayerStack(self.stack.image, before.alphas, before.layers)
        index = scratch.seed(self.seed_graph, s["index"], s["points"])
        return scratch.snapshot(), index

    def _show_seeds(self) -> None:
        s = self._seeding
        assert s is not None and self.stack is not None
        state, _ = self._seeded()
        s["last"] = time.monotonic()
        self.stack.restore(state)
        self.changed.emit()

    def end_seeds(self) -> bool:
        """The scribble becomes one undoable step; the seeded layer is selected."""
        s = self._seeding
        if s is None or self.stack is None:
            return False
        try:
            if not s["points"]:
                self.stack.restore(s["before"])
                self.changed.emit()
                return False
            state, index = self._seeded()
        finally:
            self._seeding = None
        self.stack.restore(s["before"])
        count = len(s["points"])
        if s["index"] is None:
            text = f"New layer from {count} seed{'s' if count > 1 else ''}"
        else:
            kind = "Seeds on" if s["positive"] else "Seeds off"
            text = f"{kind} {self.stack.layer(s['index']).name}"
        done = self.edit(text, lambda st: (st.restore(state), [index])[1])
        if done:
            self._refine_edges_later(s["before"].alphas)
        return done

    # -- the edges seeds moved, refined off the GUI thread ------------------------------
    def _refine_edges_later(self, before: np.ndarray) -> None:
        """The last edit's layers (seeds applied, edges as the guided upsampling left
        them) get the edges that moved since ``before`` refined at the photo's size, on a
        worker thread; the result replaces that edit's layers, with no undo step of its
        own, if the edit is still what is shown, and is dropped otherwise."""
        graph, stack, cmd = self.seed_graph, self.stack, self._last_command
        if graph is None or graph.refine is None or stack is None or cmd is None:
            return
        after, photo = stack.alphas, stack.image
        job = Worker(lambda w: refine_seeded(graph, photo, before, after, w.is_cancelled),
                     (ValueError,), "out of memory refining the seeded edges", parent=self)
        self._edges_job = job

        def landed(refined: np.ndarray) -> None:
            self._edges_ended(job)
            shown = self.stack
            if refined is after or shown is None or shown.alphas is not after or cmd.after.slot.array is not after:
                return
            refined = np.ascontiguousarray(refined, np.float32)
            refined.setflags(write=False)
            state = StackState(refined, shown.layers)
            cmd.after = self.history.keep(state)
            shown.restore(state)
            self.history.enforce(shown.alphas)
            if self.undo_stack.isClean():   # saved before it landed: the file lacks these edges
                self.undo_stack.resetClean()
            self.changed.emit()

        job.returned.connect(landed)
        job.errored.connect(lambda _msg: self._edges_ended(job))   # the unrefined layers stay
        job.aborted.connect(lambda: self._edges_ended(job))
        self.edges_refining.emit(True)
        job.start()

    def _edges_ended(self, job: Worker) -> None:
        if self._edges_job is job:
            self._edges_job = None
            self.edges_refining.emit(False)

    @property
    def refining_edges(self) -> bool:
        return self._edges_job is not None

    def cancel_edges(self, wait: bool = False) -> None:
        """Stop a refinement of seeded edges (its result would be dropped anyway);
        ``wait``: until its thread has ended (closing the window)."""
        job = self._edges_job
        if job is None:
            return
        job.cancel()
        self._edges_job = None
        self.edges_refining.emit(False)
        if wait:
            job.wait()

    @property
    def seeding(self) -> bool:
        return self._seeding is not None

    def move_layer(self, index: int, to: int) -> bool:
        """Move a layer up or down the stack (the PSD's order), as one undoable step."""
        if self.stack is None or not (0 <= index < len(self.stack)) or not (0 <= to < len(self.stack)) or index == to:
            return False
        name = self.stack.layer(index).name
        return self.edit(f"Move {name}", lambda s: [s.move(index, to)])

    def delete_layer(self, index: int) -> bool:
        """Remove a layer; the others share its alpha (Σα = 1 stays), one undoable step."""
        if self.stack is None or len(self.stack) < 2 or not 0 <= index < len(self.stack):
            return False
        self._solo_saved = None
        name = self.stack.layer(index).name
        return self.edit(f"Delete {name}", lambda s: (s.delete(index), [])[1])

    def rename(self, index: int, name: str) -> bool:
        name = name.strip()
        if self.stack is None or not name or name == self.stack.layer(index).name:
            return False
        return self.edit(f"Rename to “{name}”", lambda s: s.rename(index, name))

    def set_visible(self, index: int, visible: bool) -> bool:
        if self.stack is None or self.stack.layer(index).visible == visible:
            return False
        self._solo_saved = None
        name = self.stack.layer(index).name
        return self.edit(("Show " if visible else "Hide ") + name, lambda s: s.set_visible(index, visible))

    def toggle_solo(self, index: int) -> bool:
        """Show only this layer; on the soloed layer again, restore the visibility before."""
        if self.stack is None:
            return False
        current = self.stack.visibility()
        solo = self.stack.solo_visibility(index)
        if current == solo and self._solo_saved is not None and len(self._solo_saved) == len(current):
            saved, self._solo_saved = self._solo_saved, None
            return self.edit("Unsolo", lambda s: s.set_visibility(saved))
        self._solo_saved = current
        name = self.stack.layer(index).name
        return self.edit(f"Solo {name}", lambda s: s.set_visibility(solo))

    def new_recolour_session(self) -> None:
        """Recolour changes merge into one undo step until a new session starts
        (slider released, selection changed)."""
        self._recolour_session += 1

    def set_recolour(self, indices: Sequence[int], recolour: Recolour) -> bool:
        if self.stack is None or not indices:
            return False
        idx = [i for i in indices if 0 <= i < len(self.stack)]
        if all(self.stack.layer(i).recolour == recolour for i in idx):
            return False

        def mutate(s: LayerStack) -> None:
            for i in idx:
                s.set_recolour(i, recolour)

        return self.edit("Recolour", mutate, merge_key=("recolour", tuple(idx), self._recolour_session))

    def apply_new_layers(self, alphas: np.ndarray, params: SegmenterParams,
                         names: Optional[Sequence[str]] = None,
                         seed_graph: Optional[SeedGraph] = None) -> Optional[Carried]:
        """A re-run's layers replace the current ones as one undoable step, each taking
        over the edits of the earlier layer it matches (layers.carry), seeds included:
        they are applied again to the new layers. Returns what was carried over (None
        without layers)."""
        if self.stack is None:
            return None
        carried = carry_edits(self.stack.alphas, self.stack.layers, alphas, names)
        if seed_graph is not None:
            self.seed_graph = seed_graph
            carried = keep_seeded(carried, self.stack.layers)
        fresh = LayerStack(self.stack.image, carried.alphas, carried.layers)
        reseeded = seed_graph is not None and fresh.reseed(seed_graph)
        text = f"Apply weights ({len(carried.layers)} layers)"
        if self.edit(text, lambda s: (s.restore(fresh.snapshot()), [])[1], params=params) and reseeded:
            self._refine_edges_later(carried.alphas)
        return carried


_MERGEABLE_ID = 1001


class StackEditCommand(QUndoCommand):
    def __init__(
        self,
        doc: "Document",
        text: str,
        before: Snapshot,
        after: Snapshot,
        selection_before: Sequence[int],
        selection_after: Sequence[int],
        params_before: Optional[SegmenterParams] = None,
        params_after: Optional[SegmenterParams] = None,
        merge_key: Optional[tuple] = None,
    ):
        super().__init__(text)
        self.doc = doc
        self.before, self.after = before, after
        self.sel_before, self.sel_after = list(selection_before), list(selection_after)
        self.params_before, self.params_after = params_before, params_after
        self.merge_key = merge_key

    def id(self) -> int:  # noqa: A003 (Qt's name)
        return _MERGEABLE_ID if self.merge_key is not None else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802
        if not isinstance(other, StackEditCommand) or other.merge_key != self.merge_key:
            return False
        self.after = other.after
        self.sel_after = other.sel_after
        return True

    def redo(self) -> None:
        self.doc.apply_state(self.after, self.params_after, self.sel_after)

    def undo(self) -> None:
        self.doc.apply_state(self.before, self.params_before, self.sel_before)
