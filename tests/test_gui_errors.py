"""Bad input keeps the document intact: an unreadable photo, a failed run, a model
that cannot load, an export to a folder that cannot be written, a damaged project;
and the worker serialises runs (a new request cancels the running one)."""

import numpy as np
import pytest

from gui_helpers import TIMEOUT, opened


def test_unreadable_photo_and_bad_project_keep_the_document(qtbot, studio, studio_scene, tmp_path):
    w = opened(qtbot, studio, studio_scene)
    state = w.doc.stack.snapshot()
    photo = w.doc.photo_path
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    assert not w.open_photo(str(bad))
    assert not w.open_photo(str(tmp_path / "missing.png"))
    junk = tmp_path / "junk.sssproj"
    junk.write_text("not a zip")
    assert not w.open_project(str(junk))
    assert len(w.errors) == 3 and all(e for e in w.errors)
    assert "broken.jpg" in w.errors[0] and "junk.sssproj" in w.errors[2]
    assert w.doc.photo_path == photo and w.doc.stack.alphas is state.alphas
    assert not w.worker.busy
    assert w.statusBar().currentMessage()  # the error is on the status bar too


def test_model_that_cannot_load(qtbot, studio, studio_scene, tmp_path, monkeypatch):
    w = studio(features=False, model_path=str(tmp_path / "no_such_model.onnx"))
    assert w.open_photo(str(studio_scene[0]))
    qtbot.waitUntil(lambda: not w.worker.busy, timeout=TIMEOUT)
    assert w.errors and "model" in w.errors[-1]
    assert w.doc.image is not None and w.doc.stack is None  # the photo stays open
    assert w.canvas.has_image


def test_failed_run_keeps_the_layers(qtbot, studio, studio_scene):
    w = opened(qtbot, studio, studio_scene)
    state = w.doc.stack.snapshot()
    params = w.doc.params

    def boom(*a, **k):
        raise ValueError("the solver diverged")

    w.worker._segmenter.run = boom
    w.weights_panel.set_value("colour", 0.05)
    w.weights_panel.flush()
    qtbot.waitUntil(lambda: not w.worker.busy, timeout=TIMEOUT)
    assert "the solver diverged" in w.errors[-1]
    assert w.doc.stack.alphas is state.alphas and w.doc.stack.layers == state.layers
    assert w.doc.params == params and w.weights_panel.params() == params


def test_export_to_unwritable_folder(qtbot, studio, studio_scene, tmp_path):
    w = opened(qtbot, studio, studio_scene)
    state = w.doc.stack.snapshot()
    blocker = tmp_path / "a_file"
    blocker.write_text("a file, not a folder")
    for export in (lambda: w.export_psd(str(blocker / "out.psd")), lambda: w.export_png_stack(str(blocker / "png"))):
        with qtbot.waitSignal(w.export_finished, timeout=TIMEOUT) as sig:
            export()
        assert sig.args[0] is False and sig.args[1]
        assert w.errors[-1] == sig.args[1]
    assert w.doc.stack.alphas is state.alphas
    # A PNG stack to a good folder works and carries the names.
    with qtbot.waitSignal(w.export_finished, timeout=TIMEOUT) as sig:
        w.export_png_stack(str(tmp_path / "png"))
    assert sig.args[0] is True
    assert len(list((tmp_path / "png").glob("0?_*_alpha.png"))) == 3


def test_new_request_cancels_the_running_one(qtbot, studio, studio_scene):
    w = opened(qtbot, studio, studio_scene)
    count = w.doc.undo_stack.count()
    w.gate.close()
    w.weights_panel.set_value("semantic", 0.03)
    w.weights_panel.flush()
    qtbot.waitUntil(w.gate.entered.is_set, timeout=TIMEOUT)
    first = w.worker.running_request
    w.weights_panel.set_value("semantic", 0.002)
    w.weights_panel.flush()
    # The second waits for the first to stop; the GUI thread is never blocked.
    assert w.worker.running_request is first and w.worker._pending is not None
    w.gate.open.set()
    qtbot.waitUntil(lambda: not w.worker.busy, timeout=TIMEOUT)
    assert w.errors == []
    assert w.doc.params.weights.semantic == pytest.approx(0.002, rel=0.02)
    assert w.doc.undo_stack.count() == count + 1  # only the newest result is applied
    assert np.allclose(w.doc.stack.alphas.sum(axis=0), 1.0, atol=1e-4)


def test_cancel_the_first_run(qtbot, studio, studio_scene):
    w = studio()
    w.gate.close()
    assert w.open_photo(str(studio_scene[0]))
    qtbot.waitUntil(w.gate.entered.is_set, timeout=TIMEOUT)
    w.actions_.cancel.trigger()
    qtbot.waitUntil(lambda: not w.worker.busy, timeout=TIMEOUT)
    assert w.doc.stack is None and w.doc.image is not None and w.errors == []
    assert "Cancelled" in w.statusBar().currentMessage()
    w.gate.open.set()
    w.actions_.rerun.trigger()  # Segment › Run starts it again
    qtbot.waitUntil(lambda: not w.worker.busy, timeout=TIMEOUT)
    assert w.doc.has_layers


def test_rerun_with_unchanged_sliders_keeps_edits(qtbot, studio, studio_scene):
    w = opened(qtbot, studio, studio_scene)
    w.doc.rename(0, "Kept")
    count = w.doc.undo_stack.count()
    w.actions_.rerun.trigger()  # the same parameters: the cached result
    qtbot.waitUntil(lambda: not w.worker.busy, timeout=TIMEOUT)
    assert w.doc.stack.layer(0).name == "Kept" and w.doc.undo_stack.count() == count
    assert "nothing changed" in w.statusBar().currentMessage()


def _damaged_projects(tmp_path, good):
    """Copies of a good project with one thing broken each, by name."""
    import io
    import json
    import zipfile

    with zipfile.ZipFile(good) as z:
        meta = json.loads(z.read("project.json"))
        alphas = z.read("alphas.npy")

    def make(name, meta_obj, alpha_bytes=alphas):
        path = tmp_path / f"{name}.sssproj"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("project.json", json.dumps(meta_obj))
            z.writestr("alphas.npy", alpha_bytes)
        return path

    nan = np.load(io.BytesIO(alphas)).copy()
    nan[0, 0, 0] = np.nan
    buf = io.BytesIO()
    np.save(buf, nan)
    recolour = json.loads(json.dumps(meta))
    recolour["layers"][0]["recolour"] = "red"
    return {
        "a JSON list": make("list", [1, 2, 3]),
        "version 'two'": make("version", {**meta, "version": "two"}),
        "a recolour given as a string": make("recolour", recolour),
        "NaN alphas": make("nan", meta, buf.getvalue()),
        "settings that are not a mapping": make("settings", {**meta, "settings": [1]}),
    }


def test_damaged_projects_are_refused_with_a_message(qtbot, studio, studio_scene, tmp_path):
    w = opened(qtbot, studio, studio_scene)
    good = tmp_path / "good.sssproj"
    assert w.save_project(str(good))
    state, photo = w.doc.stack.snapshot(), w.doc.photo_path
    for what, path in _damaged_projects(tmp_path, good).items():
        count = len(w.errors)
        assert not w.open_project(str(path)), what
        assert len(w.errors) == count + 1 and path.name in w.errors[-1], (what, w.errors[-1:])
        assert w.doc.stack.alphas is state.alphas and w.doc.photo_path == photo, what
    assert w.open_project(str(good))  # the good one still opens


def test_autosave_and_restore_after_a_crash(qtbot, studio, studio_scene, tmp_path):
    import shutil

    from sss_studio.gui.recovery import left_behind

    w = opened(qtbot, studio, studio_scene)
    assert w.doc.rename(0, "sky after the crash")
    assert w.autosave.save_now() and w.autosave.path.is_file()
    # The process dies: its recovery file stays behind under a pid that is gone.
    dead = w.autosave.path.with_name("autosave-999999.sssproj")
    shutil.copy(w.autosave.path, dead)
    assert dead in left_behind()
    w.doc.undo_stack.setClean()          # a clean document has nothing to recover …
    assert not w.autosave.path.exists()  # … and its file goes
    w2 = studio()
    asked = []
    w2.ask_restore = lambda path: asked.append(path) or True
    assert w2.offer_recovery()
    assert asked == [dead] and not dead.exists()
    assert w2.doc.stack.layer(0).name == "sky after the crash"
    assert w2.doc.is_modified and w2.doc.project_path is None   # unsaved work until saved
    w2.doc.undo_stack.setClean()


def test_undo_history_memory_stays_within_its_budget(qtbot, studio, studio_scene):
    w = opened(qtbot, studio, studio_scene)
    one = w.doc.stack.alphas.nbytes
    w.doc.history.budget_bytes = 3 * one
    shown = [w.doc.stack.alphas.copy()]
    for i in range(10):  # ten re-runs, each a new alpha array in the history
        w.weights_panel.set_value("semantic", 0.004 + 0.002 * i)
        w.weights_panel.flush()
        qtbot.waitUntil(lambda: not w.worker.busy, timeout=TIMEOUT)
        if not np.array_equal(w.doc.stack.alphas, shown[-1]):  # a re-run that changes nothing adds no step
            shown.append(w.doc.stack.alphas.copy())
        assert w.doc.history.in_memory_bytes(w.doc.stack.alphas) <= 3 * one
    assert len(shown) >= 6  # the re-runs really changed the layers
    # Undo all the way: every earlier state comes back bit for bit (from disk where spilled).
    for expected in reversed(shown[:-1]):
        w.actions_.undo.trigger()
        assert np.array_equal(w.doc.stack.alphas, expected)
    assert not w.doc.undo_stack.canUndo()
    assert w.doc.history.in_memory_bytes(w.doc.stack.alphas) <= 3 * one
