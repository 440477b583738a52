"""The studio end to end (issue 5): open → layers arrive → click selects the covering
layer → merge → recolour only under that layer → undo exactly → export PSD and read it
back → a slider change gives a new result → cancelling mid-run keeps the old one."""

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from sss_studio.layers import sums_to_one
from sss_studio.gui.qimage import qimage_to_array

TIMEOUT = 60_000


def wait_idle(qtbot, w):
    qtbot.waitUntil(lambda: not w.worker.busy, timeout=TIMEOUT)


def click_image(qtbot, w, x, y, modifier=Qt.KeyboardModifier.NoModifier):
    pos = w.canvas.mapFromScene(QPointF(x + 0.5, y + 0.5))
    qtbot.mouseClick(w.canvas.viewport(), Qt.MouseButton.LeftButton, modifier, pos)


def shown_pixels(w):
    return qimage_to_array(w.canvas._item.pixmap().toImage())


def test_end_to_end(qtbot, studio, studio_scene, tmp_path):
    from psd_tools import PSDImage

    path, _, truth = studio_scene
    w = studio()
    assert w.open_photo(str(path))
    assert w.worker.busy  # the run is in the background; the window is live meanwhile
    wait_idle(qtbot, w)
    stack = w.doc.stack
    assert stack is not None and len(stack) == 3 and w.errors == []
    assert sums_to_one(stack.alphas)
    assert "features" in w.status.provider.text()
    assert "s" in w.status.timings.text() and "eigenvectors" in w.status.timings.toolTip()

    # A click on each region selects the layer covering it.
    regions = {"band": (3, 24), "disc": (46, 24), "rest": (30, 4)}
    truth_index = {"band": 0, "rest": 1, "disc": 2}
    covering = {}
    for name, (x, y) in regions.items():
        click_image(qtbot, w, x, y)
        k = int(np.argmax(stack.alphas[:, y, x]))
        assert w.doc.selection == [k], name
        assert stack.alphas[k, y, x] > 0.9
        # … and that layer is the region's true soft layer.
        assert np.abs(stack.alphas[k] - truth[truth_index[name]]).mean() < 0.1
        covering[name] = k
    assert len(set(covering.values())) == 3
    sel_rows = sorted({i.row() for i in w.layer_panel.view.selectionModel().selectedRows()})
    assert sel_rows == w.doc.selection  # the panel shows the canvas selection

    # Shift adds, Alt removes.
    click_image(qtbot, w, *regions["band"])
    click_image(qtbot, w, *regions["disc"], Qt.KeyboardModifier.ShiftModifier)
    click_image(qtbot, w, *regions["rest"], Qt.KeyboardModifier.ShiftModifier)
    assert len(w.doc.selection) == 3
    click_image(qtbot, w, *regions["rest"], Qt.KeyboardModifier.AltModifier)
    assert w.doc.selection == sorted([covering["band"], covering["disc"]])

    # Merge: one layer fewer, the merged alpha is the sum, still summing to one.
    state0 = stack.snapshot()
    w.actions_.merge.trigger()
    assert len(stack) == 2 and w.doc.is_modified
    assert sums_to_one(stack.alphas)
    merged = w.doc.selection[0]
    assert np.allclose(stack.alphas[merged], state0.alphas[covering["band"]] + state0.alphas[covering["disc"]])

    # Recolour the other layer ("rest"): pixels change only where its alpha is non-zero.
    click_image(qtbot, w, *regions["rest"])
    k = w.doc.selection[0]
    state1 = stack.snapshot()
    w.recolour_panel.hue.setValue(150)
    w.recolour_panel.saturation.setValue(60)
    qtbot.waitUntil(lambda: not stack.layer(k).recolour.is_identity, timeout=5000)
    edited = stack.edited_image()
    changed = np.abs(edited - stack.image).max(axis=-1) > 0
    assert changed.sum() > 100
    assert (stack.alphas[k][changed] > 0).all()
    # The canvas shows the edited photo (photo-only view).
    w.set_view_mode("photo")
    w.render()
    shown = shown_pixels(w).astype(int)
    expect = (np.clip(edited, 0, 1) * 255 + 0.5).astype(int)
    assert np.abs(shown - expect).max() <= 1
    w.set_view_mode("overlay")

    # Undo restores exactly the previous state, step by step (one step per slider drag).
    w.actions_.undo.trigger()
    assert stack.alphas is state1.alphas and stack.layers == state1.layers
    assert np.array_equal(stack.edited_image(), stack.image)
    w.actions_.undo.trigger()
    assert len(stack) == 3 and stack.alphas is state0.alphas and stack.layers == state0.layers
    assert not w.doc.is_modified
    w.actions_.redo.trigger()
    w.actions_.redo.trigger()
    assert len(stack) == 2 and not stack.layer(k).recolour.is_identity

    # Export a PSD (in the background) and read it back with psd-tools; a layer hidden
    # in the studio is hidden in the PSD.
    other = 1 - k
    w.doc.set_visible(other, False)
    out = tmp_path / "out" / "layers.psd"
    with qtbot.waitSignal(w.export_finished, timeout=TIMEOUT) as blocker:
        w.export_psd(str(out))
    assert blocker.args[0] is True, blocker.args
    w.doc.set_visible(other, True)   # shown again for what follows
    assert stack.layer(other).visible
    psd = PSDImage.open(out)
    layers = list(psd)
    assert [l.name for l in layers][0] == "Photo" and len(layers) == 3
    assert [l.visible for l in layers] == [True, False, True]
    top = layers[-1]  # the recoloured layer is stacked on top
    assert top.name == stack.layer(k).name
    rgba = np.asarray(top.topil().convert("RGBA"), np.float32) / 255.0
    h, wd = stack.shape
    full = np.zeros((h, wd, 4), np.float32)
    full[top.top : top.bottom, top.left : top.right] = rgba
    assert np.abs(full[..., 3] - stack.alphas[k]).max() < 2 / 255
    inside = stack.alphas[k] > 0.99
    recoloured = stack.layer_pixels(k)
    assert np.abs(full[..., :3][inside] - recoloured[inside]).max() < 2 / 255
    assert not np.allclose(full[..., :3][inside], stack.image[inside], atol=0.05)

    # A slider change re-runs from the affinity stage and gives a new result (one undo step).
    before = stack.snapshot()
    params_before = w.doc.params
    count = w.doc.undo_stack.count()
    w.weights_panel.set_value("semantic", 0.05)
    w.weights_panel.flush()
    assert w.worker.busy
    assert len(stack) == 2 and stack.alphas is before.alphas  # the old layers stay meanwhile
    wait_idle(qtbot, w)
    assert w.errors == []
    # The edits survive it: the merged layer comes back merged, the recoloured one keeps
    # its name and recolour (matched to the new layers by overlap).
    assert stack.alphas is not before.alphas and len(stack) == 2
    assert sums_to_one(stack.alphas)
    assert [l.name for l in stack.layers] == [l.name for l in before.layers]
    assert stack.layer(k).recolour == before.layers[k].recolour and not stack.layer(k).recolour.is_identity
    assert stack.layer(1 - k).merged
    assert "kept their names and edits" in w.statusBar().currentMessage()
    assert w.doc.params.weights.semantic == pytest.approx(0.05, rel=0.02)
    assert w.doc.undo_stack.count() == count + 1
    assert "weights" in w.doc.undo_stack.undoText()
    assert w.worker._segmenter is not None and "affinities" in w.status.timings.toolTip()
    assert "superpixels" not in w.status.timings.toolTip()  # cached: only from the affinities on
    w.actions_.undo.trigger()
    assert stack.alphas is before.alphas and stack.layers == before.layers
    assert w.doc.params == params_before
    assert w.weights_panel.params().weights.semantic == params_before.weights.semantic
    w.actions_.redo.trigger()
    new_state = stack.snapshot()
    new_params = w.doc.params

    # Cancelling mid-run keeps the current layers and puts the sliders back.
    w.gate.close()
    w.weights_panel.set_value("colour_cutoff", 0.2)
    w.weights_panel.flush()
    # Mid-run: the progress bar names the stage.
    qtbot.waitUntil(lambda: "eigenvectors" in w.status.stage.text() and w.status.cancel.isVisible(), timeout=TIMEOUT)
    assert w.gate.entered.is_set() and w.status.progress.value() > 0
    qtbot.mouseClick(w.status.cancel, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, w)
    assert stack.alphas is new_state.alphas and stack.layers == new_state.layers
    assert w.doc.params == new_params
    assert w.weights_panel.params() == new_params
    assert "Cancelled" in w.statusBar().currentMessage()
    assert w.errors == []
