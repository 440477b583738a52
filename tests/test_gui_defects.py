"""Defects a retoucher met in the studio (issue 17, part 5), each checked as it was seen."""

import numpy as np
from PIL import Image
from PySide6.QtCore import QCoreApplication, QSize, Qt
from PySide6.QtGui import QAction, QKeySequence

from gui_helpers import TIMEOUT, opened


def _keys(action: QAction) -> list[str]:
    return [k.toString(QKeySequence.SequenceFormat.PortableText) for k in action.shortcuts()]


def test_no_key_is_claimed_twice_and_redo_works_by_keyboard(qtbot, studio, studio_scene):
    w = opened(qtbot, studio, studio_scene)
    owners: dict[str, str] = {}
    for act in w.findChildren(QAction):
        keys = _keys(act)
        assert len(keys) == len(set(keys)), (act.text(), keys)   # one key twice on an action: ambiguous
        for k in keys:
            assert k not in owners or owners[k] == act.text(), (k, owners.get(k), act.text())
            owners[k] = act.text()
    assert {"Ctrl+Shift+Z", "Ctrl+Y"} <= set(_keys(w.actions_.redo))
    assert "Ctrl+=" in _keys(w.actions_.zoom_in)
    assert w.doc.rename(0, "sky")
    w.actions_.undo.trigger()
    assert w.doc.stack.layer(0).name != "sky"
    w.activateWindow()
    w.canvas.setFocus()
    qtbot.keyClick(w.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert w.doc.stack.layer(0).name == "sky"
    zoom = w.canvas.zoom
    qtbot.keyClick(w.canvas, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    assert w.canvas.zoom > zoom


def test_another_photo_with_as_many_layers_gets_its_own_thumbnails(qtbot, studio, studio_scene, tmp_path):
    w = opened(qtbot, studio, studio_scene)
    first = w.layer_panel.model.thumbnail(0).toImage()
    other = tmp_path / "other.png"
    img = np.asarray(Image.open(studio_scene[0]))
    Image.fromarray(255 - img).save(other)   # other colours, the same size and regions
    assert w.open_photo(str(other))
    qtbot.waitUntil(lambda: not w.worker.busy and w.doc.has_layers, timeout=TIMEOUT)
    assert len(w.doc.stack) == 3
    assert w.layer_panel.model.thumbnail(0).toImage() != first


def test_open_recent_is_enabled_once_something_was_opened(qtbot, studio, studio_scene):
    w = studio()
    assert not w.actions_.recent_menu.isEnabled()   # nothing opened yet
    assert w.open_photo(str(studio_scene[0]))
    assert w.actions_.recent_menu.isEnabled()
    qtbot.waitUntil(lambda: not w.worker.busy, timeout=TIMEOUT)


def test_nothing_in_the_status_bar_moves_when_a_run_starts_or_ends(qtbot, studio, studio_scene):
    w = opened(qtbot, studio, studio_scene)
    QCoreApplication.processEvents()
    before = [x.geometry() for x in (w.status.provider, w.status.timings, w.status.hover)]
    w.status.set_running(True, "Segmenting…")
    QCoreApplication.processEvents()
    assert [x.geometry() for x in (w.status.provider, w.status.timings, w.status.hover)] == before
    w.status.set_running(False)
    QCoreApplication.processEvents()
    assert [x.geometry() for x in (w.status.provider, w.status.timings, w.status.hover)] == before


def test_status_texts_are_elided_not_cut_and_never_stale(qtbot, studio, studio_scene):
    w = opened(qtbot, studio, studio_scene)
    w.status.set_timings({f"a stage with a long name {i}": 1.0 + i for i in range(8)})
    text = w.status.timings.text()
    assert text.endswith("…") and w.status.timings.fontMetrics().horizontalAdvance(text) <= w.status.timings.maximumWidth()
    long = "New settings applied: 5 layers; 4 kept their names and edits; new: Layer 5 (Ctrl+Z to go back). " * 3
    w.status.showMessage(long, 5000)
    QCoreApplication.processEvents()
    shown = w.status.message.text()
    assert w.status.currentMessage() == long and shown.endswith("…") and long.startswith(shown[:-1])
    w._hover(5.0, 20.0)
    assert w.doc.stack.layer(w.doc.stack.hit_test(5, 20)).name in w.status.hover.text()
    w.doc.set_selection([0, 1])
    assert w.doc.merge_selected()            # the layers change: no old name stays on show
    assert w.status.hover.text() == ""


def test_the_window_never_opens_larger_than_the_screen(qtbot, studio):
    w = studio()
    screen = w.screen().availableGeometry()
    w.resize(QSize(screen.width() * 3, screen.height() * 3))
    w.clamp_to_screen()
    assert w.frameGeometry().width() <= screen.width() and w.frameGeometry().height() <= screen.height()


def test_the_eye_fits_its_column(qtbot, studio, studio_scene):
    from sss_studio.gui.panels.layers import EYE

    w = opened(qtbot, studio, studio_scene)
    pix = w.layer_panel.model.data(w.layer_panel.model.index(0, EYE), Qt.ItemDataRole.DecorationRole)
    size = pix.deviceIndependentSize()
    assert size.width() <= w.layer_panel.view.header().sectionSize(EYE) - 4


def test_quit_after_rerun_undo_redo_gives_no_traceback(qtbot, studio, studio_scene):
    # Seen: "MainWindow already deleted" on quit after re-segment, undo, redo, Quit, Discard.
    # pytest-qt fails the test on any exception raised inside a Qt callback.
    w = opened(qtbot, studio, studio_scene)
    w.weights_panel.set_value("semantic", 0.03)
    w.weights_panel.flush()
    qtbot.waitUntil(lambda: not w.worker.busy, timeout=TIMEOUT)
    w.actions_.undo.trigger()
    w.actions_.redo.trigger()
    assert w.doc.is_modified
    w.close()
    assert w.prompts == ["unsaved"]      # asked, answered Discard
    QCoreApplication.processEvents()
    # The fixture then deletes the window as run_app does (deleteLater, posted events):
    # an exception raised in a callback while it goes fails this test at teardown.


def test_disabled_menu_items_look_disabled(qtbot, studio):
    # The dark theme drew disabled items like enabled ones: grab both and compare.
    from PySide6.QtWidgets import QMenu

    from sss_studio.gui.resources import style_sheet

    w = studio()
    menu = QMenu(w)
    menu.setStyleSheet(style_sheet())   # the app's theme (run_app sets it on the application)
    on, off = menu.addAction("Export PSD…"), menu.addAction("Export PSD…")
    off.setEnabled(False)
    menu.popup(w.mapToGlobal(w.rect().center()))
    qtbot.waitExposed(menu)
    img = menu.grab().toImage()
    rows = [menu.actionGeometry(a) for a in (on, off)]
    ink = []
    for r in rows:
        px = [img.pixelColor(x, y).lightness() for x in range(r.left(), r.right()) for y in range(r.top(), r.bottom())]
        ink.append(max(px))
    menu.close()
    assert ink[1] < ink[0] - 40   # the disabled item's text is clearly dimmer


# -- what a retoucher expected and did not find (issue 17, part 4) ---------------------

def test_mask_view_zoom_readout_hover_outline_and_help(qtbot, studio, studio_scene):
    from sss_studio.layers.render import render_view

    w = opened(qtbot, studio, studio_scene)
    stack = w.doc.stack
    w.doc.set_selection([1])
    mask = render_view(stack, "mask", 0.5, [1])
    assert np.allclose(mask[:, :, 0], np.clip(stack.alphas[1], 0, 1)) and np.allclose(mask[:, :, 0], mask[:, :, 2])
    w.canvas.actual_size()
    assert w.status.zoom.text() == "100 %"
    w.canvas.zoom_by(2.0)
    assert w.status.zoom.text() == "200 %"
    # The layer under the pointer is outlined on the canvas, not only named in the status bar.
    w.doc.set_selection([])
    w._hover(5.0, 20.0)
    assert w.hovered == stack.hit_test(5, 20)
    plain = render_view(stack, "overlay", 0.5, [])
    outlined = render_view(stack, "overlay", 0.5, [], hovered=w.hovered)
    assert (np.abs(outlined - plain).max(axis=2) > 0).sum() > 10
    w.show_shortcuts()
    names = dict(w.last_help)
    assert names["Redo"] and names["Merge selected layers"] == "Ctrl+E" and "Delete layer" in names


def test_reorder_and_delete_layers_keep_the_sum_and_undo(qtbot, studio, studio_scene):
    w = opened(qtbot, studio, studio_scene)
    stack = w.doc.stack
    before = stack.snapshot()
    names = [l.name for l in stack.layers]
    w.doc.set_selection([2])
    w.actions_.move_up.trigger()
    assert [l.name for l in stack.layers] == [names[0], names[2], names[1]]
    assert np.array_equal(stack.alphas[1], before.alphas[2])
    w.doc.set_selection([1])
    w.actions_.delete_layer.trigger()
    assert len(stack) == 2 and np.allclose(stack.alphas.sum(axis=0), 1.0, atol=1e-5)
    assert [l.name for l in stack.layers] == [names[0], names[1]]
    w.actions_.undo.trigger()
    w.actions_.undo.trigger()
    assert stack.alphas is before.alphas and stack.layers == before.layers


def test_a_brush_stroke_changes_alpha_only_under_the_brush_and_undoes_in_one_step(qtbot, studio, studio_scene):
    from PySide6.QtCore import QPointF

    w = opened(qtbot, studio, studio_scene)
    stack = w.doc.stack
    before = stack.snapshot()
    k = stack.hit_test(30, 4)           # the "rest" layer, painted into the band on the left
    w.doc.set_selection([k])
    w.actions_.brush.trigger()
    assert w.canvas.tool == "brush"
    w.brush = w.brush.__class__(radius=3.0, hardness=1.0)
    vp = w.canvas.viewport()
    path = [QPointF(6.5, 20.5), QPointF(10.5, 20.5), QPointF(14.5, 20.5)]
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, w.canvas.mapFromScene(path[0]))
    for p in path[1:]:
        qtbot.mouseMove(vp, w.canvas.mapFromScene(p))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, w.canvas.mapFromScene(path[-1]))
    after = stack.alphas
    assert after is not before.alphas and np.allclose(after.sum(axis=0), 1.0, atol=1e-4)
    changed = np.abs(after - before.alphas).max(axis=0) > 1e-6
    ys, xs = np.nonzero(changed)
    assert changed.any() and ys.min() >= 20 - 4 and ys.max() <= 20 + 4 and xs.min() >= 6 - 4 and xs.max() <= 14 + 4
    assert after[k, 20, 10] > 0.99                      # painted in
    assert "Brush on" in w.doc.undo_stack.undoText()
    w.actions_.undo.trigger()                            # one stroke, one step
    assert stack.alphas is before.alphas
    w.set_brush_tool(False)
    assert w.canvas.tool == "select"


def test_preferences_set_what_new_photos_get_and_what_exports_write(qtbot, studio, studio_scene, tmp_path):
    from sss_studio.gui import settings as app_settings

    w = studio()
    dialog = w.show_preferences()
    dialog.layers.setValue(2)
    dialog.alpha_files.setChecked(False)
    dialog.accept()
    assert app_settings.default_layers() == 2 and not app_settings.export_alpha_files()
    assert w.open_photo(str(studio_scene[0]))
    qtbot.waitUntil(lambda: not w.worker.busy and w.doc.has_layers, timeout=TIMEOUT)
    assert len(w.doc.stack) == 2 and w.doc.params.layers == 2
    with qtbot.waitSignal(w.export_finished, timeout=TIMEOUT) as sig:
        w.export_png_stack(str(tmp_path / "png"))
    assert sig.args[0] is True
    names = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert not [n for n in names if n.endswith("_alpha.png")] and len([n for n in names if n[:2].isdigit()]) == 2
