"""Studio pieces: canvas navigation and hover, the layer panel (eye, solo, rename),
view modes, recent files, drag and drop, projects, the unsaved-edits prompt."""

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QLineEdit, QMessageBox

from sss_studio.gui import settings as app_settings
from sss_studio.gui.panels.layers import EYE, NAME

from gui_helpers import TIMEOUT, opened


def send_mouse(widget, kind, pos, button, buttons, modifiers=Qt.KeyboardModifier.NoModifier):
    p = QPointF(pos)
    ev = QMouseEvent(kind, p, widget.mapToGlobal(p), button, buttons, modifiers)
    QApplication.sendEvent(widget, ev)


def test_canvas_zoom_about_cursor_pan_fit_and_hover(qtbot, studio, studio_scene):
    w = opened(qtbot, studio, studio_scene)
    c = w.canvas
    vp = c.viewport()
    pos = QPointF(vp.width() * 0.3, vp.height() * 0.6)
    under = c.mapToScene(pos.toPoint())
    z0 = c.zoom
    ev = QWheelEvent(pos, c.mapToGlobal(pos), QPoint(0, 0), QPoint(0, 240), Qt.MouseButton.NoButton,
                     Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(vp, ev)
    assert c.zoom == pytest.approx(z0 * 1.25 ** 2, rel=1e-3)
    after = c.mapToScene(pos.toPoint())
    assert abs(after.x() - under.x()) < 1.5 / c.zoom + 0.5 and abs(after.y() - under.y()) < 1.5 / c.zoom + 0.5

    # Middle-drag pans: the scene point under the cursor follows it.
    start = QPointF(vp.width() / 2, vp.height() / 2)
    end = start + QPointF(40, 25)
    s0 = c.mapToScene(start.toPoint())
    send_mouse(vp, QEvent.Type.MouseButtonPress, start, Qt.MouseButton.MiddleButton, Qt.MouseButton.MiddleButton)
    send_mouse(vp, QEvent.Type.MouseMove, end, Qt.MouseButton.NoButton, Qt.MouseButton.MiddleButton)
    send_mouse(vp, QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.MiddleButton, Qt.MouseButton.NoButton)
    s1 = c.mapToScene(end.toPoint())
    assert abs(s1.x() - s0.x()) < 1.0 and abs(s1.y() - s0.y()) < 1.0

    # Space-drag pans too, and does not select.
    w.doc.set_selection([])
    qtbot.keyPress(c, Qt.Key.Key_Space)
    s0 = c.mapToScene(end.toPoint())
    send_mouse(vp, QEvent.Type.MouseButtonPress, end, Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton)
    send_mouse(vp, QEvent.Type.MouseMove, start, Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton)
    send_mouse(vp, QEvent.Type.MouseButtonRelease, start, Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton)
    qtbot.keyRelease(c, Qt.Key.Key_Space)
    s1 = c.mapToScene(start.toPoint())
    assert abs(s1.x() - s0.x()) < 1.0 and abs(s1.y() - s0.y()) < 1.0
    assert w.doc.selection == []

    # Ctrl+1: 100 %; Ctrl+0: the whole photo fits.
    qtbot.keyClick(w, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert c.zoom == pytest.approx(1.0)
    qtbot.keyClick(w, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    r = c.mapFromScene(c.image_rect()).boundingRect()
    assert vp.rect().adjusted(-2, -2, 2, 2).contains(r)
    assert r.width() > vp.width() * 0.9 or r.height() > vp.height() * 0.9

    # Hover names the layer under the cursor.
    stack = w.doc.stack
    k = stack.hit_test(46, 24)
    send_mouse(vp, QEvent.Type.MouseMove, QPointF(c.mapFromScene(QPointF(46.5, 24.5))),
               Qt.MouseButton.NoButton, Qt.MouseButton.NoButton)
    assert w.status.hover.text().startswith(stack.layer(k).name)


def test_view_modes_and_opacity(qtbot, studio, studio_scene):
    w = opened(qtbot, studio, studio_scene)
    w.doc.set_selection([0])  # "layer alone" shows the selected layer on a checkerboard
    shots = {}
    for mode in ("overlay", "layer", "photo"):
        w.actions_.view_modes[mode].trigger()
        assert w.view_mode == mode
        w.render()
        shots[mode] = w.canvas._item.pixmap().toImage()
    assert shots["overlay"] != shots["photo"] and shots["layer"] != shots["photo"]
    w.actions_.view_modes["overlay"].trigger()
    w.doc.set_selection([])
    w.actions_.opacity_slider.setValue(0)
    assert w.opacity == 0.0
    w.render()
    assert w.canvas._item.pixmap().toImage() == shots["photo"]


def test_layer_panel_eye_solo_rename(qtbot, studio, studio_scene):
    w = opened(qtbot, studio, studio_scene)
    stack, view, model = w.doc.stack, w.layer_panel.view, w.layer_panel.model
    assert model.rowCount() == 3

    def click_eye(row, mod=Qt.KeyboardModifier.NoModifier):
        rect = view.visualRect(model.index(row, EYE))
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, mod, rect.center())

    click_eye(1)
    assert stack.visibility() == [True, False, True]
    assert w.doc.selection == []  # the eye does not select
    click_eye(1)
    assert stack.visibility() == [True, True, True]
    click_eye(1)
    click_eye(2, Qt.KeyboardModifier.AltModifier)  # solo
    assert stack.visibility() == [False, False, True]
    click_eye(2, Qt.KeyboardModifier.AltModifier)  # again: the visibility before the solo
    assert stack.visibility() == [True, False, True]
    w.actions_.undo.trigger()
    assert stack.visibility() == [False, False, True]

    # Double-click opens the name editor; committing renames (undoably).
    rect = view.visualRect(model.index(0, NAME))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert view.state() == view.State.EditingState
    editor = view.viewport().findChild(QLineEdit)
    assert editor is not None
    editor.setText("Sky")
    view.commitData(editor)  # what Return does in the editor
    assert stack.layer(0).name == "Sky"
    assert model.data(model.index(0, NAME)) == "Sky"
    w.actions_.undo.trigger()
    assert stack.layer(0).name == "Layer 1"

    # Selecting rows in the panel selects on the canvas side.
    view.selectionModel().select(model.index(2, NAME), view.selectionModel().SelectionFlag.ClearAndSelect
                                 | view.selectionModel().SelectionFlag.Rows)
    assert w.doc.selection == [2]
    assert w.recolour_panel.isEnabled() and "Layer 3" in w.recolour_panel.target.text()


def test_recent_files_and_drag_drop(qtbot, studio, studio_scene, tmp_path):
    path = str(studio_scene[0].resolve())
    assert app_settings.recent_files() == []
    w = opened(qtbot, studio, studio_scene)
    assert app_settings.recent_files() == [path]
    menu = w.actions_.recent_menu
    menu.aboutToShow.emit() if False else None  # filled on show; fill it now
    from sss_studio.gui.menus import fill_recent

    fill_recent(w, menu)
    entries = [a for a in menu.actions() if a.toolTip() == path]
    assert entries
    entries[0].trigger()
    assert w.worker.busy
    qtbot.waitUntil(lambda: not w.worker.busy, timeout=TIMEOUT)

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(path)])
    drop = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    w.dropEvent(drop)
    assert w.worker.busy and w.doc.photo_path == path
    qtbot.waitUntil(lambda: not w.worker.busy and w.doc.has_layers, timeout=TIMEOUT)


def test_project_save_reopen_and_unsaved_prompt(qtbot, studio, studio_scene, tmp_path):
    from sss_studio.layers import Recolour

    w = opened(qtbot, studio, studio_scene)
    stack = w.doc.stack
    w.doc.set_selection([0, 1])
    w.merge_selected()
    w.doc.rename(0, "Merged")
    w.doc.set_recolour([1], Recolour(hue=90, tint=(1.0, 0.0, 0.0), tint_strength=0.3))
    w.doc.set_visible(1, False)
    assert w.doc.is_modified and w.isWindowModified()

    # Closing with unsaved edits asks; Cancel keeps the window.
    answers = [QMessageBox.StandardButton.Cancel]
    w.ask_unsaved = lambda: answers.pop(0)
    assert not w.close()
    assert w.isVisible()

    proj = tmp_path / "scene.sssproj"
    assert w.save_project(str(proj))
    assert not w.doc.is_modified and not w.isWindowModified()
    assert w.close()  # clean now: no question

    w2 = studio()
    assert w2.open_project(str(proj))
    s2 = w2.doc.stack
    assert np.array_equal(s2.alphas, stack.alphas)
    assert s2.layers == stack.layers
    assert np.array_equal(s2.edited_image(), stack.edited_image())
    assert w2.doc.params.weights == w.doc.params.weights
    assert not w2.worker.busy  # a project opens without re-running
    assert app_settings.recent_files()[0] == str(proj.resolve())


def test_weight_slider_mapping_and_debounce(qtbot, isolated_settings):
    from synthetic import quick_params

    from sss_studio.gui.document import Document
    from sss_studio.gui.panels.weights import SPECS, WeightsPanel

    for spec in SPECS:
        for v in (spec.lo, spec.hi, (spec.lo * spec.hi) ** 0.5 if spec.log else (spec.lo + spec.hi) / 2):
            assert spec.from_slider(spec.to_slider(v)) == pytest.approx(v, rel=0.01)
    base = quick_params(layers=3)
    doc = Document(base)
    doc.set_photo("photo.png", np.zeros((8, 8, 3), np.float32))
    panel = WeightsPanel(doc)
    qtbot.addWidget(panel)
    assert panel.params() == base  # the sliders reproduce the base values exactly
    got = []
    doc.run_requested.connect(got.append)
    panel.set_value("semantic", 0.02)
    panel.set_value("semantic", 0.03)
    panel.set_value("layers", 4)
    assert got == []  # debounced while the sliders move
    qtbot.waitUntil(lambda: len(got) == 1, timeout=5000)
    assert got[0].weights.semantic == pytest.approx(0.03, rel=0.02) and got[0].layers == 4
    assert doc.settings == got[0] and doc.params == base  # asked for; the layers' params stay
    doc.request_ended()  # the run ended without new layers: the sliders show the params again
    qtbot.wait(50)
    assert len(got) == 1 and panel.params() == base


def test_working_size_and_solver_menu(qtbot, studio, studio_scene):
    w = opened(qtbot, studio, studio_scene)
    assert w.solver_actions[w.doc.params.mode].isChecked()
    before = w.doc.stack.alphas
    w.size_actions[30_000].trigger()  # larger than the photo: the same result, nothing to undo
    qtbot.waitUntil(lambda: not w.worker.busy, timeout=TIMEOUT)
    assert w.doc.params.working_pixels == 30_000 and w.doc.stack.alphas is before
    w.set_quality(working_pixels=2000)  # smaller than the photo: computed smaller, upsampled
    qtbot.waitUntil(lambda: not w.worker.busy, timeout=TIMEOUT)
    assert w.errors == []
    assert w.doc.params.working_pixels == 2000 and w.doc.stack.alphas is not before
    assert w.doc.stack.alphas.shape[1:] == before.shape[1:]
    w.actions_.undo.trigger()
    assert w.doc.stack.alphas is before and w.doc.params.working_pixels == 30_000


def test_solver_change_uses_the_mode_preset(qtbot, studio, monkeypatch):
    from sss_studio.segmentation.pipeline import SegmenterParams

    w = studio()  # no photo: the choice is only remembered
    w.weights_panel.set_value("layers", 4)
    w.set_quality(mode="fast")
    fast = SegmenterParams.for_mode("fast")
    assert w.doc.params.mode == "fast" and w.doc.params.eigen == fast.eigen
    assert w.doc.params.layers == 4
    from sss_studio.gui import settings as app_settings

    assert app_settings.saved_quality()[0] == "fast"


def test_solver_change_takes_the_new_modes_working_size_unless_the_user_chose_one(qtbot, studio):
    from sss_studio.segmentation.pipeline import SegmenterParams

    fast_px = SegmenterParams.for_mode("fast").working_pixels
    ref_px = SegmenterParams.for_mode("reference").working_pixels
    assert fast_px < ref_px  # the fast mode works smaller and upsamples
    w = studio()
    w.set_quality(mode="reference", working_pixels=ref_px)
    w.set_quality(mode="fast")
    assert w.doc.params.working_pixels == fast_px
    w.set_quality(mode="reference")
    assert w.doc.params.working_pixels == ref_px
    w.set_quality(working_pixels=1_000_000)  # the user's own choice survives a mode switch
    w.set_quality(mode="fast")
    assert w.doc.params.mode == "fast" and w.doc.params.working_pixels == 1_000_000
