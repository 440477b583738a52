"""Helpers shared by the studio's pytest-qt tests."""

TIMEOUT = 60_000  # ms; runs are small but the CI machine may be busy


def opened(qtbot, studio, studio_scene, **kw):
    """A studio window with the synthetic photo opened and its layers arrived."""
    w = studio(**kw)
    assert w.open_photo(str(studio_scene[0]))
    qtbot.waitUntil(lambda: not w.worker.busy, timeout=TIMEOUT)
    assert w.doc.has_layers, w.errors
    return w
