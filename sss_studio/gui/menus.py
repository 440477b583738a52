"""Menus, tool bar and shortcuts of the main window."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QFileDialog, QLabel, QMenu, QSlider, QToolBar

from . import settings as app_settings
from .file_filters import PHOTO_FILTER, PROJECT_FILTER, PSD_FILTER
from .resources import icon, sample_photos

if TYPE_CHECKING:
    from .main_window import MainWindow

VIEW_MODE_TITLES = {"overlay": "Overlay", "layer": "Layer alone", "photo": "Photo only", "mask": "Mask"}


@dataclass
class Actions:
    open: QAction
    open_project: QAction
    save_project: QAction
    save_project_as: QAction
    export_psd: QAction
    export_png: QAction
    quit: QAction
    undo: QAction
    redo: QAction
    merge: QAction
    rename: QAction
    move_up: QAction
    move_down: QAction
    delete_layer: QAction
    shortcuts: QAction
    brush: QAction
    seeds: QAction
    preferences: QAction
    select_none: QAction
    fit: QAction
    actual: QAction
    zoom_in: QAction
    zoom_out: QAction
    rerun: QAction
    cancel: QAction
    recent_menu: QMenu
    opacity_slider: QSlider
    view_modes: dict[str, QAction] = field(default_factory=dict)


def _action(w: "MainWindow", text: str, slot, shortcut=None, icon_name: str = "", tip: str = "") -> QAction:
    a = QAction(icon(icon_name) if icon_name else QAction().icon(), text, w)
    if shortcut is not None:
        a.setShortcut(QKeySequence(shortcut))
    if tip:
        a.setStatusTip(tip)
        a.setToolTip(tip)
    a.triggered.connect(slot)
    return a


def build_menus(w: "MainWindow") -> Actions:
    def open_dialog() -> None:
        path, _ = QFileDialog.getOpenFileName(w, "Open photo", _last_dir(), PHOTO_FILTER)
        if path:
            w.open_photo(path)

    def open_project_dialog() -> None:
        path, _ = QFileDialog.getOpenFileName(w, "Open project", _last_dir(), PROJECT_FILTER)
        if path:
            w.open_project(path)

    def export_psd_dialog() -> None:
        start = str(Path(w.doc.photo_path or "layers").with_suffix("")) + "_layers.psd"
        path, _ = QFileDialog.getSaveFileName(w, "Export PSD", start, PSD_FILTER)
        if path:
            w.export_psd(path)

    def export_png_dialog() -> None:
        folder = QFileDialog.getExistingDirectory(w, "Export PNG stack into folder", _last_dir())
        if folder:
            w.export_png_stack(folder)

    undo = w.doc.undo_stack.createUndoAction(w, "&Undo")
    undo.setShortcut(QKeySequence.StandardKey.Undo)
    undo.setIcon(icon("undo"))
    redo = w.doc.undo_stack.createRedoAction(w, "&Redo")
    # Ctrl+Shift+Z and Ctrl+Y on every platform, each once: the platform's own Redo keys
    # often include Ctrl+Shift+Z already, and one key twice on an action is an
    # "ambiguous shortcut" that Qt then ignores.
    redo.setShortcuts(_unique_keys([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y"),
                                    *QKeySequence.keyBindings(QKeySequence.StandardKey.Redo)]))
    redo.setIcon(icon("redo"))

    a = Actions(
        open=_action(w, "&Open photo…", open_dialog, QKeySequence.StandardKey.Open, "open", "Open a photo and segment it"),
        open_project=_action(w, "Open &project…", open_project_dialog, "Ctrl+Shift+O", "", "Open a saved project"),
        save_project=_action(w, "&Save project", lambda: w.save_project_dialog(), QKeySequence.StandardKey.Save, "save",
                             "Save the layers and edits in a project file"),
        save_project_as=_action(w, "Save project &as…", lambda: w.save_project_dialog(save_as=True), "Ctrl+Shift+S"),
        export_psd=_action(w, "Export &PSD…", export_psd_dialog, "Ctrl+Shift+E", "export",
                           "Export a layered PSD (recolours applied)"),
        export_png=_action(w, "Export PNG s&tack…", export_png_dialog, None, "", "Export one RGBA PNG per layer"),
        quit=_action(w, "&Quit", w.close, QKeySequence.StandardKey.Quit),
        undo=undo,
        redo=redo,
        merge=_action(w, "&Merge selected layers", w.merge_selected, "Ctrl+E", "merge",
                      "Merge the selected layers into one (alphas add up)"),
        rename=_action(w, "Re&name layer", w.rename_selected, "F2"),
        move_up=_action(w, "Move layer &up", lambda: w.move_selected(-1), "Ctrl+Up", "",
                        "Move the selected layer up the list (and down the PSD's stack)"),
        move_down=_action(w, "Move layer do&wn", lambda: w.move_selected(1), "Ctrl+Down"),
        delete_layer=_action(w, "&Delete layer", w.delete_selected, QKeySequence.StandardKey.Delete, "",
                             "Remove the selected layer; the others share its alpha"),
        shortcuts=_action(w, "&Keyboard shortcuts", w.show_shortcuts, "F1"),
        preferences=_action(w, "Pre&ferences…", w.show_preferences, QKeySequence.StandardKey.Preferences),
        brush=_action(w, "&Brush on the layer", lambda on=False: w.set_brush_tool(bool(on)), "B", "",
                      "Paint the selected layer's alpha (Alt or Ctrl: take it away)"),
        seeds=_action(w, "&Seeds on the layer", lambda on=False: w.set_seed_tool(bool(on)), "S", "",
                      "Click or scribble where the selected layer should be (Alt or Ctrl: should not be; "
                      "Shift: a new layer); the layers are solved again"),
        select_none=_action(w, "Select &none", lambda: w.doc.set_selection([]), "Ctrl+Shift+A"),
        fit=_action(w, "&Fit to window", w.canvas.fit, "Ctrl+0", "fit", "Fit the photo in the window"),
        actual=_action(w, "&Actual size (100 %)", w.canvas.actual_size, "Ctrl+1", "actual", "Show the photo at 100 %"),
        zoom_in=_action(w, "Zoom &in", lambda: w.canvas.zoom_by(1.25), QKeySequence.StandardKey.ZoomIn),  # + Ctrl+= below
        zoom_out=_action(w, "Zoom &out", lambda: w.canvas.zoom_by(0.8), QKeySequence.StandardKey.ZoomOut),
        rerun=_action(w, "&Run segmentation", lambda: w.start_segmentation("rerun" if w.doc.has_layers else "open"),
                      "Ctrl+R", "run", "Run the segmentation again with the current sliders"),
        # No Esc shortcut: Esc belongs to editors (renaming a layer) and dialogs.
        cancel=_action(w, "&Cancel", w.cancel_run, None, "", "Stop the running segmentation"),
        recent_menu=QMenu("Open &recent", w),
        opacity_slider=QSlider(Qt.Orientation.Horizontal),
    )

    # Ctrl+= zooms in too (the key under Ctrl++ without Shift), as in browsers and editors.
    a.zoom_in.setShortcuts(_unique_keys([*QKeySequence.keyBindings(QKeySequence.StandardKey.ZoomIn),
                                         QKeySequence("Ctrl+=")]))
    if not a.preferences.shortcuts():   # no platform binding (most Linux desktops)
        a.preferences.setShortcut(QKeySequence("Ctrl+,"))
    mb = w.menuBar()
    fm = mb.addMenu("&File")
    fm.addAction(a.open)
    fm.addMenu(a.recent_menu)
    samples = sample_photos()
    if samples:
        sm = fm.addMenu("Open &sample")
        for p in samples:
            sm.addAction(p.name, lambda p=p: w.open_photo(str(p)))
    fm.addSeparator()
    fm.addAction(a.open_project)
    fm.addAction(a.save_project)
    fm.addAction(a.save_project_as)
    fm.addSeparator()
    fm.addAction(a.export_psd)
    fm.addAction(a.export_png)
    fm.addSeparator()
    fm.addAction(a.quit)
    a.recent_menu.aboutToShow.connect(lambda: fill_recent(w, a.recent_menu))
    fill_recent(w, a.recent_menu)

    em = mb.addMenu("&Edit")
    for act in (a.undo, a.redo):
        em.addAction(act)
    em.addSeparator()
    for act in (a.merge, a.rename, a.move_up, a.move_down, a.delete_layer, a.select_none):
        em.addAction(act)
    em.addSeparator()
    em.addAction(a.preferences)
    em.addSeparator()
    a.brush.setCheckable(True)
    a.seeds.setCheckable(True)
    em.addAction(a.seeds)
    em.addAction(a.brush)
    for text, keys, slot in (("Brush smaller", "[", lambda: w.change_brush(size=0.8)),
                             ("Brush larger", "]", lambda: w.change_brush(size=1.25)),
                             ("Brush softer", "Shift+[", lambda: w.change_brush(hardness=-0.1)),
                             ("Brush harder", "Shift+]", lambda: w.change_brush(hardness=0.1))):
        act = _action(w, text, slot, keys)
        if keys.startswith("Shift+"):   # Shift+[ arrives as '{' on most layouts
            act.setShortcuts([QKeySequence(keys), QKeySequence("{" if keys.endswith("[") else "}")])
        em.addAction(act)

    vm = mb.addMenu("&View")
    group = QActionGroup(w)
    for i, (mode, title) in enumerate(VIEW_MODE_TITLES.items()):
        act = QAction(title, w, checkable=True)
        act.setShortcut(QKeySequence(f"Ctrl+{i + 2}"))
        act.setChecked(mode == w.view_mode)
        act.triggered.connect(lambda _c=False, m=mode: w.set_view_mode(m))
        group.addAction(act)
        vm.addAction(act)
        a.view_modes[mode] = act
    vm.addSeparator()
    for act in (a.fit, a.actual, a.zoom_in, a.zoom_out):
        vm.addAction(act)
    vm.addSeparator()
    vm.addAction(w.layers_dock.toggleViewAction())
    vm.addAction(w.recolour_dock.toggleViewAction())
    vm.addAction(w.weights_dock.toggleViewAction())

    rm = mb.addMenu("&Segment")
    rm.addAction(a.rerun)
    rm.addAction(a.cancel)
    rm.addSeparator()
    _quality_menus(w, rm)
    hm = mb.addMenu("&Help")
    hm.addAction(a.shortcuts)

    tb = QToolBar("Main", w)
    tb.setObjectName("main_toolbar")
    tb.setMovable(False)
    tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
    for act in (a.open, a.save_project, a.export_psd):
        tb.addAction(act)
    tb.addSeparator()
    for act in (a.undo, a.redo, a.merge):
        tb.addAction(act)
    tb.addSeparator()
    for act in (a.fit, a.actual):
        tb.addAction(act)
    tb.addSeparator()
    for mode in VIEW_MODE_TITLES:
        tb.addAction(a.view_modes[mode])
    tb.addSeparator()
    tb.addWidget(QLabel(" Overlay "))
    a.opacity_slider.setRange(0, 100)
    a.opacity_slider.setValue(int(round(w.opacity * 100)))
    a.opacity_slider.setMaximumWidth(140)
    a.opacity_slider.setToolTip("Opacity of the layer colours over the photo")
    a.opacity_slider.valueChanged.connect(lambda v: w.set_opacity(v / 100.0))
    tb.addWidget(a.opacity_slider)
    w.addToolBar(Qt.ToolBarArea.TopToolBarArea, tb)
    return a


WORKING_SIZES = (("0.02 MP (fast mode's default)", 20_000), ("0.03 MP", 30_000), ("0.08 MP (finer)", 80_000),
                 ("0.3 MP (reference mode's default)", 300_000), ("1 MP (slow)", 1_000_000))
SOLVERS = (("Fast", "fast"), ("Reference (the paper's, slow)", "reference"))


def _quality_menus(w: "MainWindow", menu: QMenu) -> None:
    """Solver and working size: both re-run the segmentation (one undoable step)."""
    sizes = menu.addMenu("&Working size")
    solver = menu.addMenu("S&olver")
    size_group, solver_group = QActionGroup(w), QActionGroup(w)
    for title, pixels in WORKING_SIZES:
        act = QAction(title, w, checkable=True)
        act.triggered.connect(lambda _c=False, p=pixels: w.set_quality(working_pixels=p))
        size_group.addAction(act)
        sizes.addAction(act)
        w.size_actions[pixels] = act
    for title, mode in SOLVERS:
        act = QAction(title, w, checkable=True)
        act.triggered.connect(lambda _c=False, m=mode: w.set_quality(mode=m))
        solver_group.addAction(act)
        solver.addAction(act)
        w.solver_actions[mode] = act

    def sync() -> None:
        p = w.doc.params
        for pixels, act in w.size_actions.items():
            act.setChecked(pixels == p.working_pixels)
        for mode, act in w.solver_actions.items():
            act.setChecked(mode == p.mode)

    menu.aboutToShow.connect(sync)
    sync()


def _unique_keys(keys: list[QKeySequence]) -> list[QKeySequence]:
    seen, out = set(), []
    for k in keys:
        text = k.toString(QKeySequence.SequenceFormat.PortableText)
        if text and text not in seen:
            seen.add(text)
            out.append(k)
    return out


def _last_dir() -> str:
    recent = app_settings.recent_files()
    return str(Path(recent[0]).parent) if recent else str(Path.home())


def fill_recent(w: "MainWindow", menu: QMenu) -> None:
    menu.clear()
    items = app_settings.recent_files()
    for path in items:
        menu.addAction(Path(path).name, lambda p=path: w.open_path(p)).setToolTip(path)
    if items:
        menu.addSeparator()
        menu.addAction("Clear", app_settings.clear_recent)
    menu.setEnabled(bool(items))
