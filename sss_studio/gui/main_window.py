"""The main window: puts the canvas, panels and status bar together and connects the
document, the worker and the file operations. Menus are built in ``menus.py``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMainWindow, QMessageBox, QWidget

from ..io.image import ImageLoadError, read_image
from ..io.params_dict import params_from_dict, params_to_dict
from ..io.project import PROJECT_SUFFIX, ProjectData, ProjectError, load_project, save_project
from ..layers.brush import BrushParams
from ..layers.render import render_view
from ..layers.stack import Layer, LayerStack, StackState, default_colour
from ..segmentation.params import SegmenterParams
from ..segmentation.sources import FeatureSource
from . import settings as app_settings
from .canvas import Canvas
from .document import Document
from .file_filters import PROJECT_FILTER
from .menus import Actions, build_menus, fill_recent
from .panels.layers import LayerPanel
from .panels.recolour import RecolourPanel
from .panels.weights import WeightsPanel
from .qimage import to_qimage
from .recovery import Autosave, left_behind
from .status import StudioStatusBar
from .worker import Outcome, Request, SegmentationWorker, Worker

if TYPE_CHECKING:
    from .preferences import PreferencesDialog

APP_TITLE = "SSS Studio"
PREVIEW_PIXELS = 2_500_000     # larger photos are rendered on screen from a downscaled copy


class MainWindow(QMainWindow):
    idle = Signal()                  # no run in progress and no run pending (tests, screenshots)
    export_finished = Signal(bool, str)   # ok, path or error message
    closed = Signal()                      # the window accepted a close

    def __init__(self, params: Optional[SegmenterParams] = None, source: Optional[FeatureSource] = None):
        super().__init__()
        self.setWindowTitle(f"{APP_TITLE}[*]")
        self.setAcceptDrops(True)
        self.errors: list[str] = []           # every error shown, newest last (tests read it)
        self.show_dialogs = True               # False: errors only go to the status bar
        self.remember_recent = True            # False: opened files stay out of Open Recent
        self._terminating = False              # closing on SIGTERM: keep the recovery file
        self.ask_unsaved: Callable[[], QMessageBox.StandardButton] = self._ask_unsaved
        self.view_mode = "overlay"
        self.hovered: Optional[int] = None      # the layer under the pointer, outlined on the canvas
        self.brush = BrushParams()
        self.opacity = 0.5
        self._tasks: list[Worker] = []
        self._preview: Optional[LayerStack] = None
        self._preview_source: Optional[tuple] = None
        self._early: Optional[LayerStack] = None   # a first run's layers before their edges are refined

        self.doc = Document(params or SegmenterParams(), self)
        self.worker = SegmentationWorker(source or FeatureSource(), self)
        self.canvas = Canvas(self)
        self.setCentralWidget(self.canvas)
        self.layer_panel = LayerPanel(self.doc)
        self.recolour_panel = RecolourPanel(self.doc)
        self.weights_panel = WeightsPanel(self.doc)
        self.status = StudioStatusBar(self)
        self.setStatusBar(self.status)
        self.layers_dock = self._dock("Layers", self.layer_panel, "layers_dock")
        self.recolour_dock = self._dock("Recolour", self.recolour_panel, "recolour_dock")
        self.weights_dock = self._dock("Affinity weights", self.weights_panel, "weights_dock")
        self.tabifyDockWidget(self.recolour_dock, self.weights_dock)
        self.recolour_dock.raise_()
        # Set by build_menus: the Segment menu's working-size and solver choices.
        self.size_actions: dict[int, QAction] = {}
        self.solver_actions: dict[str, QAction] = {}
        self.actions_: Actions = build_menus(self)
        self.autosave = Autosave(self.doc, self)
        # Asked when a studio that is gone left unsaved work (tests replace it).
        self.ask_restore: Callable[[Path], bool] = self._ask_restore

        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(0)
        self._render_timer.timeout.connect(self.render)

        self.doc.changed.connect(self.schedule_render)
        self.doc.selection_changed.connect(self.schedule_render)
        self.doc.selection_changed.connect(self._update_actions)
        self.doc.changed.connect(self._update_actions)
        self.doc.run_requested.connect(self._submit)
        # Bound methods, not lambdas, wherever a child's signal reaches the window: Qt
        # disconnects those when the window goes, while a lambda could still be called
        # from a child dying after it ("MainWindow already deleted" on quit).
        self.doc.undo_stack.cleanChanged.connect(self._clean_changed)
        self.canvas.hovered.connect(self._hover)
        self.doc.changed.connect(self._clear_hover)   # never the name of a layer that is gone
        self.doc.changed.connect(self._show_seeds)
        self.doc.edges_refining.connect(self._on_edges_refining)
        self.canvas.hover_left.connect(self._clear_hover)
        self.canvas.clicked.connect(self._click)
        self.canvas.zoom_changed.connect(self.status.set_zoom)
        self.canvas.stroke_started.connect(self._stroke_started)
        self.canvas.stroke_moved.connect(self._stroke_moved)
        self.canvas.stroke_ended.connect(self._stroke_ended)
        self.layer_panel.merge_requested.connect(self.merge_selected)
        self.status.cancel_clicked.connect(self.cancel_run)
        self.worker.started.connect(self._run_started)
        self.worker.progress.connect(self._run_progress)
        self.worker.previewed.connect(self._run_previewed)
        self.worker.finished.connect(self._run_finished)
        self.worker.failed.connect(self._run_failed)
        self.worker.cancelled.connect(self._run_cancelled)
        self.worker.busy_changed.connect(self._busy_changed)
        self.resize(QSize(1280, 820))
        self._update_actions()
        self.status.showMessage("Open a photo (File › Open, or drop it here) to split it into soft layers.")

    def _dock(self, title: str, widget: QWidget, name: str) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(name)
        d.setWidget(widget)
        d.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, d)
        return d

    # -- errors -----------------------------------------------------------------------
    def show_error(self, title: str, text: str) -> None:
        self.errors.append(text)
        self.status.showMessage(f"{title}: {text}", 15000)
        if self.show_dialogs:
            box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.open()  # not exec(): the window (and a running segmentation) keep going

    # -- rendering --------------------------------------------------------------------
    def schedule_render(self) -> None:
        self._render_timer.start()

    def preview_stack(self) -> Optional[LayerStack]:
        """The stack at display size: big photos are shown from a downscaled copy so
        that a click or a slider tick re-renders quickly (hit-tests use the full stack).
        Before a photo's first layers arrive, the run's early layers (not yet in the
        document) are shown while their edges are refined."""
        stack = self.doc.stack
        if stack is None:
            early = self._early
            if early is None or early.image is not self.doc.image:
                return None
            stack = early
        src = self._preview_source
        # Compared by identity (not id()): alphas are never written in place.
        if src is None or src[0] is not stack.image or src[1] is not stack.alphas:
            self._preview = stack.downscaled(PREVIEW_PIXELS)
            self._preview_source = (stack.image, stack.alphas)
        assert self._preview is not None
        if self._preview is not stack:
            self._preview.restore(StackState(self._preview.alphas, stack.layers))
        return self._preview

    def render(self) -> None:
        self._render_timer.stop()
        preview = self.preview_stack()
        if preview is not None:
            arr = render_view(preview, self.view_mode, self.opacity, self.doc.selection, hovered=self.hovered)
            size = self.doc.stack.shape if self.doc.stack is not None else preview.shape
        elif self.doc.image is not None:
            arr = self.doc.image
            size = arr.shape[:2]
        else:
            self.canvas.set_image(None)
            return
        self.canvas.set_image(to_qimage(arr), logical_size=QSize(size[1], size[0]))

    def set_view_mode(self, mode: str) -> None:
        self.view_mode = mode
        act = self.actions_.view_modes.get(mode)
        if act is not None and not act.isChecked():
            act.setChecked(True)
        self.schedule_render()

    def set_opacity(self, value: float) -> None:
        self.opacity = float(min(max(value, 0.0), 1.0))
        slider = self.actions_.opacity_slider
        if slider.value() != int(round(self.opacity * 100)):
            slider.setValue(int(round(self.opacity * 100)))
        self.schedule_render()

    # -- canvas interaction -------------------------------------------------------------
    def _clean_changed(self, clean: bool) -> None:
        self.setWindowModified(not clean)

    def _clear_hover(self) -> None:
        self.status.set_hover("")
        if self.hovered is not None:
            self.hovered = None
            self.schedule_render()

    # -- the brush ------------------------------------------------------------------------
    def set_brush_tool(self, on: bool) -> None:
        self._set_tool("brush" if on else "select")
        if on:
            self._brush_message()

    def set_seed_tool(self, on: bool) -> None:
        self._set_tool("seeds" if on else "select")
        if on:
            self.status.showMessage("Seeds: click or scribble where the selected layer should be; Alt or Ctrl "
                                    "where it should not; Shift for a new layer (split a layer). S again to "
                                    "select.", 10000)

    def _set_tool(self, tool: str) -> None:
        """One tool at a time: the brush, the seeds or selecting."""
        self.canvas.set_tool(tool)
        for name, act in (("brush", self.actions_.brush), ("seeds", self.actions_.seeds)):
            if act.isChecked() != (tool == name):
                act.setChecked(tool == name)
        self._show_seeds()

    def _show_seeds(self) -> None:
        """The seeds as dots on the photo while the seed tool is on (filled: this layer;
        dark: not this layer)."""
        stack = self.doc.stack
        if self.canvas.tool != "seeds" or stack is None:
            if self.canvas.marker_count:
                self.canvas.set_markers([])
            return
        self.canvas.set_markers([(s.x, s.y, layer.colour, s.positive) for layer in stack.layers for s in layer.seeds])

    def change_brush(self, size: float = 1.0, hardness: float = 0.0) -> None:
        """[ and ] scale the size, Shift+[ and Shift+] change the hardness (as in Photoshop)."""
        r = min(max(self.brush.radius * size, 1.0), 2000.0)
        h = min(max(self.brush.hardness + hardness, 0.0), 1.0)
        self.brush = replace(self.brush, radius=r, hardness=h)
        self._brush_message()

    def _brush_message(self) -> None:
        self.status.showMessage(f"Brush {2 * self.brush.radius:.0f} px, hardness {self.brush.hardness:.0%}: "
                                "paint on the selected layer; Alt or Ctrl takes alpha away; [ ] size, "
                                "Shift+[ ] hardness; B again to select.", 8000)

    def _stroke_started(self, x: float, y: float, modifiers) -> None:
        stack = self.doc.stack
        if stack is None:
            return
        if self.canvas.tool == "seeds":
            self._seeds_started(x, y, modifiers)
            return
        if not self.doc.selection:   # nothing selected: the layer under the brush
            k = stack.hit_test(x, y)
            if k is None:
                return
            self.doc.set_selection([k])
        subtract = bool(modifiers & (Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.ControlModifier))
        if self.doc.begin_stroke(self.doc.selection[0], self.brush, add=not subtract):
            self.doc.stroke_to(x, y)

    def _stroke_moved(self, x: float, y: float) -> None:
        if self.doc.seeding:
            self.doc.seeds_to(x, y)
        else:
            self.doc.stroke_to(x, y)

    def _stroke_ended(self) -> None:
        if self.doc.seeding:
            self.doc.end_seeds()
        else:
            self.doc.end_stroke()

    def _seeds_started(self, x: float, y: float, modifiers) -> None:
        stack = self.doc.stack
        assert stack is not None
        if self.doc.seed_graph is None:
            self.status.showMessage("Seeds need this photo's layers computed in this session: Segment › Run "
                                    "segmentation (Ctrl+R), then seed again.", 10000)
            return
        new_layer = bool(modifiers & Qt.KeyboardModifier.ShiftModifier)
        negative = bool(modifiers & (Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.ControlModifier))
        if new_layer:
            index = None
        elif self.doc.selection:
            index = self.doc.selection[0]
        else:   # nothing selected: seeds go to the layer under the click
            index = stack.hit_test(x, y)
            if index is None:
                return
            self.doc.set_selection([index])
        if self.doc.begin_seeds(index, positive=new_layer or not negative):
            self.doc.seeds_to(x, y)

    def move_selected(self, step: int) -> None:
        if self.doc.selection:
            k = self.doc.selection[0]
            self.doc.move_layer(k, k + step)

    def delete_selected(self) -> None:
        if self.doc.selection and not self.doc.delete_layer(self.doc.selection[0]):
            self.status.showMessage("The last layer cannot be deleted.", 5000)

    def show_preferences(self) -> "PreferencesDialog":
        from .preferences import PreferencesDialog

        dialog = PreferencesDialog(self)
        if self.show_dialogs:
            dialog.open()
        return dialog

    def show_shortcuts(self) -> None:
        """Help › Keyboard shortcuts: every action that has keys, from the actions themselves."""
        rows = []
        for act in self.findChildren(QAction):
            keys = ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in act.shortcuts())
            if keys and act.text():
                rows.append((act.text().replace("&", ""), keys))
        rows = sorted(set(rows), key=lambda r: r[0].lower())
        rows += [("Pan", "Space + drag, or middle button"), ("Zoom about the pointer", "mouse wheel"),
                 ("Add to / remove from the selection", "Shift+click / Alt+click"),
                 ("Show only this layer", "Alt+click the eye")]
        text = "<table>" + "".join(f"<tr><td>{a}</td><td>&nbsp;&nbsp;<b>{k}</b></td></tr>" for a, k in rows) + "</table>"
        self.last_help = rows
        if self.show_dialogs:
            box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard shortcuts", text, QMessageBox.StandardButton.Close, self)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.open()

    def _hover(self, x: float, y: float) -> None:
        stack = self.doc.stack
        if stack is None:
            self.status.set_hover(f"{int(x)}, {int(y)}")
            return
        k = stack.hit_test(x, y)
        if k != self.hovered:
            self.hovered = k
            self.schedule_render()   # the layer under the pointer is outlined, as a magic wand shows it
        if k is None:
            self.status.set_hover("")
            return
        self.status.set_hover(f"{stack.layer(k).name}  ·  α {stack.alpha_at(k, x, y):.2f}  ·  {int(x)}, {int(y)}")

    def _click(self, x: float, y: float, modifiers: Qt.KeyboardModifier) -> None:
        stack = self.doc.stack
        if stack is None:
            return
        k = stack.hit_test(x, y)
        sel = set(self.doc.selection)
        if modifiers & Qt.KeyboardModifier.AltModifier:
            if k is not None:
                sel.discard(k)
        elif modifiers & Qt.KeyboardModifier.ShiftModifier:
            if k is not None:
                sel.add(k)
        else:
            sel = set() if k is None else {k}
        self.doc.new_recolour_session()
        self.doc.set_selection(sorted(sel))

    # -- edits --------------------------------------------------------------------------
    def merge_selected(self) -> None:
        if not self.doc.merge_selected():
            self.status.showMessage("Select two or more layers to merge (Shift-click on the photo).", 5000)

    def rename_selected(self) -> None:
        if self.doc.selection:
            view = self.layer_panel.view
            view.edit(self.layer_panel.model.index(self.doc.selection[0], 2))

    def _update_actions(self) -> None:
        a = self.actions_
        has = self.doc.has_layers
        a.merge.setEnabled(has and len(self.doc.selection) >= 2)
        a.rename.setEnabled(has and bool(self.doc.selection))
        for act in (a.move_up, a.move_down):
            act.setEnabled(has and bool(self.doc.selection))
        a.delete_layer.setEnabled(has and bool(self.doc.selection) and len(self.doc.stack or ()) > 1)
        for act in (a.export_psd, a.export_png, a.save_project, a.save_project_as, a.select_none):
            act.setEnabled(has)
        a.rerun.setEnabled(self.doc.image is not None)

    # -- running the engine ------------------------------------------------------------
    def start_segmentation(self, kind: str = "open") -> None:
        """Run on the open photo: a new photo with the document's parameters, a re-run
        (Segment › Run) with the sliders' values."""
        if self.doc.image is None:
            return
        self.doc.request(self.weights_panel.params() if kind == "rerun" else self.doc.params)

    def _submit(self, params: SegmenterParams) -> None:
        """The document asked for a run (the layers shown stay until it ends)."""
        if self.doc.image is not None:
            self.worker.submit("rerun" if self.doc.has_layers else "open", self.doc.image, params)

    def set_quality(self, mode: Optional[str] = None, working_pixels: Optional[int] = None) -> None:
        """Change the solver or the working size; re-runs when a photo is open."""
        p = self.weights_panel.params()
        if mode is not None and mode != p.mode:
            # The mode's own schedule preset (eigen/sparsification settings), keeping
            # what the user chose: weights, number of layers, seed, and the working size
            # unless it was the old mode's default (then the new mode's default).
            pixels = p.working_pixels
            if pixels == SegmenterParams.for_mode(p.mode).working_pixels:
                pixels = SegmenterParams.for_mode(mode).working_pixels
            p = SegmenterParams.for_mode(mode, weights=p.weights, layers=p.layers, working_pixels=pixels, seed=p.seed)
        if working_pixels is not None:
            p = replace(p, working_pixels=int(working_pixels))
        app_settings.save_quality(p.mode, p.working_pixels)
        self.doc.request(p)

    def cancel_run(self) -> None:
        self.worker.cancel()

    def _run_started(self, req: Request) -> None:
        what = "Segmenting" if req.kind == "open" else "Re-running with the new weights"
        self.status.set_running(True, f"{what}…")
        self.weights_panel.status.setText("Running… (the current layers stay until the new ones arrive)")

    def _run_progress(self, _rid: int, stage: str, fraction: float) -> None:
        self.status.set_progress(stage, fraction)

    def _run_previewed(self, outcome: Outcome) -> None:
        """A photo's first layers, before their edges are refined: shown, not yet editable."""
        result = outcome.preview
        if result is None or outcome.request.image is not self.doc.image or self.doc.stack is not None:
            return
        self._early = LayerStack(self.doc.image, result.alphas, _named_layers(result.layer_names))
        self.status.showMessage("Layers at working-size detail; refining their edges at full size…", 8000)
        self.render()

    def _busy_changed(self, busy: bool) -> None:
        if not busy:
            self.status.set_running(False)
            self.weights_panel.status.setText("")
            self.doc.request_ended()
            self.idle.emit()

    def _run_finished(self, outcome: Outcome) -> None:
        req, result = outcome.request, outcome.result
        assert result is not None
        self._early = None
        if req.image is not self.doc.image:
            return  # a run for a photo that is no longer open
        self.status.set_provider(outcome.note)
        self.status.set_timings(outcome.timings)
        if self.doc.stack is None:
            self.doc.set_layers(LayerStack(self.doc.image, result.alphas, _named_layers(result.layer_names)), req.params,
                                result.seed_graph)
            self.status.showMessage(f"{result.layer_count} layers. Click a region to select its layer.", 8000)
        elif self.doc.stack.has_alphas(result.alphas):
            self.doc.set_params(req.params)
            self.doc.seed_graph = result.seed_graph
            self.status.showMessage("Same layers as before: nothing changed.", 6000)
        else:
            carried = self.doc.apply_new_layers(result.alphas, req.params, result.layer_names, result.seed_graph)
            self.status.showMessage(_carried_message(carried), 10000)

    def _run_failed(self, outcome: Outcome) -> None:
        self.status.set_provider(outcome.note)
        self.show_error("Segmentation failed", f"{outcome.error}. The document is unchanged.")

    def _run_cancelled(self, outcome: Outcome) -> None:
        self._early = None
        early = outcome.preview
        if early is not None and outcome.request.image is self.doc.image and self.doc.stack is None:
            # A photo's first run cancelled while the edges were refined: the layers shown
            # are complete but for that. (A cancelled re-run keeps the document's layers.)
            outcome.result = early
            self._run_finished(outcome)
            self.status.showMessage("Cancelled while refining the edges: kept the layers at working-size "
                                    "detail.", 10000)
            return
        kept = "kept the previous layers" if self.doc.has_layers else "no layers yet (Segment › Run to start again)"
        self.status.showMessage(f"Cancelled: {kept}.", 8000)

    # -- files --------------------------------------------------------------------------
    def confirm_discard(self) -> bool:
        """True when the current document may be replaced (saved, discarded, or clean)."""
        if not self.doc.is_modified:
            return True
        answer = self.ask_unsaved()
        if answer == QMessageBox.StandardButton.Save:
            return self.save_project_dialog()
        return answer == QMessageBox.StandardButton.Discard

    def _ask_unsaved(self) -> QMessageBox.StandardButton:
        return QMessageBox.question(
            self,
            "Unsaved edits",
            "The layers have edits that are not saved in a project. Save them first?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save,
        )

    def open_path(self, path: str) -> bool:
        """A photo or a project, by its suffix (drops, recent files, the command line)."""
        if path.lower().endswith(PROJECT_SUFFIX):
            return self.open_project(path)
        return self.open_photo(path)

    def open_photo(self, path: str) -> bool:
        if not self.confirm_discard():
            return False
        try:
            image, info = read_image(path)
        except ImageLoadError as e:
            self.show_error("Cannot open the photo", str(e))
            return False
        except OSError as e:
            self.show_error("Cannot open the photo", f"{path}: {e.strerror or e}")
            return False
        layers = app_settings.default_layers()
        if layers and layers != self.doc.params.layers:   # Preferences: what new photos get
            self.doc.set_params(replace(self.doc.params, layers=layers))
        self.doc.set_photo(str(Path(path).resolve()), image, info.metadata)
        self.status.set_timings({})
        self.canvas.set_image(to_qimage(image), fit=True)
        self._set_title(Path(path).name)
        self._remember(path)
        self.start_segmentation("open")
        return True

    def open_project(self, path: str) -> bool:
        if not self.confirm_discard():
            return False
        try:
            data = load_project(path)
            params = params_from_dict(data.settings, self.doc.params)
            image, info = read_image(data.photo_path)
        except ValueError as e:
            self.show_error("Cannot open the project", f"{path}: damaged settings ({e})")
            return False
        except ProjectError as e:
            self.show_error("Cannot open the project", str(e))
            return False
        except ImageLoadError as e:
            self.show_error("Cannot open the project", f"its photo cannot be read: {e}")
            return False
        if data.alphas.shape[1:] != image.shape[:2]:
            self.show_error(
                "Cannot open the project",
                f"the photo {data.photo_path} is {image.shape[1]}×{image.shape[0]} but the project's "
                f"layers are {data.alphas.shape[2]}×{data.alphas.shape[1]}: the photo has changed",
            )
            return False
        self.worker.cancel()
        self.doc.set_photo(data.photo_path, image, info.metadata)
        self.doc.set_layers(LayerStack(image, data.alphas, data.layers), params)
        self.worker.warm_state = (image, data.warm_state) if data.warm_state else None
        self.doc.project_path = str(Path(path).resolve())
        self.status.set_timings({})
        self.canvas.set_image(to_qimage(image), fit=True)
        self.render()
        self._set_title(Path(path).name)
        self._remember(path)
        self.status.showMessage(f"Opened project {Path(path).name}: {len(data.layers)} layers.", 8000)
        return True

    def project_settings(self) -> dict:
        return params_to_dict(self.doc.params)

    def save_project(self, path: str) -> bool:
        stack = self.doc.stack
        if stack is None or self.doc.photo_path is None:
            return False
        if not path.lower().endswith(PROJECT_SUFFIX):
            path += PROJECT_SUFFIX
        data = ProjectData(self.doc.photo_path, stack.alphas, list(stack.layers), self.project_settings(),
                           warm_state=self._warm_state())
        try:
            save_project(path, data)
        except ProjectError as e:
            self.show_error("Cannot save the project", str(e))
            return False
        self.doc.project_path = str(Path(path).resolve())
        self.doc.undo_stack.setClean()
        self._set_title(Path(path).name)
        self._remember(path)
        self.status.showMessage(f"Saved {path}", 5000)
        return True

    def _warm_state(self):
        """The current run's basis for the project, when a finished run for this photo has one."""
        seg = self.worker._segmenter
        if self.worker.busy or seg is None or seg.image is not self.doc.image:
            return None
        return seg.warm_state()

    def save_project_dialog(self, save_as: bool = False) -> bool:
        path = self.doc.project_path
        if save_as or not path:
            start = str(Path(self.doc.photo_path or "untitled").with_suffix(PROJECT_SUFFIX))
            path, _ = QFileDialog.getSaveFileName(self, "Save project", start, PROJECT_FILTER)
            if not path:
                return False
        return self.save_project(path)

    def _export_inputs(self):
        stack = self.doc.stack
        assert stack is not None
        # Recoloured layers go on top, so that in the PSD their edit is not covered by
        # the soft edges of the layers above (write_psd stacks in the order given).
        order = sorted(range(len(stack)), key=lambda k: (not stack.layer(k).recolour.is_identity, k))
        state = stack.snapshot()
        names = [stack.layer(k).name for k in order]
        return stack.image, state, order, names

    def export_psd(self, path: str) -> None:
        from ..io.export import ExportError, write_psd

        if self.doc.stack is None:
            return
        if not path.lower().endswith(".psd"):
            path += ".psd"
        image, state, order, names = self._export_inputs()
        metadata = self.doc.metadata

        def work():
            snap = LayerStack(image, state.alphas, state.layers)  # its own recolour cache
            layer_images = snap.layer_images()[order]
            hidden = [not state.layers[k].visible for k in order]
            return write_psd(path, image, state.alphas[order], names=names, layer_images=layer_images, metadata=metadata,
                             hidden=hidden)

        self._run_task(work, (ExportError, OSError), f"Exporting {Path(path).name}…", "Export PSD failed")

    def export_png_stack(self, folder: str) -> None:
        from ..io.export import ExportError, write_png_stack

        if self.doc.stack is None:
            return
        image, state, order, names = self._export_inputs()
        settings = self.project_settings()
        metadata = self.doc.metadata
        alpha_files = app_settings.export_alpha_files()

        def work():
            snap = LayerStack(image, state.alphas, state.layers)
            layer_images = snap.layer_images()[order]
            write_png_stack(folder, image, state.alphas[order], names=names, layer_images=layer_images, params=settings,
                            metadata=metadata, alpha_files=alpha_files)
            return folder

        self._run_task(work, (ExportError, OSError), f"Exporting PNG stack to {folder}…", "Export PNG stack failed")

    def _run_task(self, fn, errors, message: str, error_title: str) -> None:
        task = Worker(lambda _w: fn(), errors, parent=self)
        self._tasks.append(task)
        self.status.showMessage(message)

        def forget() -> None:
            if task in self._tasks:
                self._tasks.remove(task)

        def ok(result) -> None:
            forget()
            self.status.showMessage(f"Exported {result}", 8000)
            self.export_finished.emit(True, str(result))

        def fail(msg: str) -> None:
            forget()
            self.show_error(error_title, msg)
            self.export_finished.emit(False, msg)

        task.returned.connect(ok)
        task.errored.connect(fail)
        task.start()

    def _remember(self, path: str) -> None:
        """Open Recent lists what a user opened or saved (not screenshots, not recovery files)."""
        if self.remember_recent and Path(path).parent != self.autosave.path.parent:
            app_settings.add_recent(path)
            fill_recent(self, self.actions_.recent_menu)   # enabled now, even if it was empty at launch

    def _on_edges_refining(self, busy: bool) -> None:
        if busy:
            self.status.showMessage("Refining the edges the seeds moved…")
        elif self.status.currentMessage().startswith("Refining the edges"):
            self.status.clearMessage()

    def _set_title(self, name: str) -> None:
        self.setWindowTitle(f"{name}[*] — {APP_TITLE}")

    # -- window events ----------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if files:
            event.acceptProposedAction()
            self.open_path(files[0])

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if not self.confirm_discard():
            event.ignore()
            return
        try:
            self.worker.shutdown()
            self.doc.cancel_edges(wait=True)
            for t in list(self._tasks):
                t.wait()
            self._tasks.clear()
            self.layer_panel.model.clear_cache()
            app_settings.settings().setValue("geometry", self.saveGeometry())
        except Exception:  # never let an exception escape a Qt virtual (it aborts)
            import traceback

            traceback.print_exc()
        if not self._terminating:
            self.autosave.discard()   # saved, discarded or clean: nothing to recover
        event.accept()
        self.closed.emit()

    # -- crash recovery -----------------------------------------------------------------
    def terminate(self) -> None:
        """Close now, asking nothing: unsaved work stays in the recovery project."""
        self._terminating = True
        self.autosave.save_now()
        self.ask_unsaved = lambda: QMessageBox.StandardButton.Discard
        self.close()

    def offer_recovery(self) -> bool:
        """At start-up: restore the newest recovery project a crashed studio left, if the
        user wants it (it opens as unsaved work); the others go either way."""
        found = left_behind()
        if not found:
            return False
        restored = False
        if self.ask_restore(found[0]):
            restored = self.open_project(str(found[0]))
            if restored:
                self.doc.project_path = None
                self.doc.undo_stack.resetClean()   # unsaved until the user saves it somewhere
                self._set_title("Recovered work")
                self.status.showMessage("Restored the unsaved work of the last session. Save it to keep it.", 10000)
                self.autosave.save_now()
        for path in found:
            try:
                path.unlink()
            except OSError:
                pass
        return restored

    def _ask_restore(self, path: Path) -> bool:
        import datetime

        when = datetime.datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        answer = QMessageBox.question(
            self, "Restore unsaved work?",
            f"SSS Studio did not close normally and left unsaved work from {when}. Restore it?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes)
        return answer == QMessageBox.StandardButton.Yes

    def restore_geometry(self) -> None:
        """The last session's geometry, clamped to the screen it lands on (a window saved
        at another scale factor or on a larger monitor must not open bigger than this one)."""
        g = app_settings.settings().value("geometry")
        if g is not None:
            self.restoreGeometry(g)
        else:
            self.resize(1280, 820)
        self.clamp_to_screen()

    def clamp_to_screen(self) -> None:
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return
        r = screen.availableGeometry()
        frame = self.frameGeometry()
        extra_w, extra_h = frame.width() - self.width(), frame.height() - self.height()
        w = min(self.width(), r.width() - extra_w)
        h = min(self.height(), r.height() - extra_h)
        if (w, h) != (self.width(), self.height()):
            self.resize(max(w, 320), max(h, 240))
        x = min(max(self.x(), r.left()), r.right() - self.frameGeometry().width() + 1)
        y = min(max(self.y(), r.top()), r.bottom() - self.frameGeometry().height() + 1)
        if (x, y) != (self.x(), self.y()):
            self.move(x, y)


def _carried_message(carried) -> str:
    """What a re-run did to the user's layers, in one line for the status bar."""
    if carried is None:
        return "New settings applied (Ctrl+Z to go back)."
    parts = [f"New settings applied: {len(carried.layers)} layers"]
    if carried.kept:
        parts.append(f"{carried.kept} kept their names and edits")
    if carried.new:
        parts.append("new: " + ", ".join(carried.new))
    if carried.gone:
        parts.append("no match for: " + ", ".join(carried.gone))
    return "; ".join(parts) + " (Ctrl+Z to go back)."


def _named_layers(names: list[str]) -> list[Layer]:
    """Layer records with the run's names (the model's classes, else numbered)."""
    return [Layer(n, default_colour(k)) for k, n in enumerate(names)]
