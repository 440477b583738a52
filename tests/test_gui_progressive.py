"""Progressive layers in the studio: a photo's first layers are shown at working-size
detail while their edges are refined at full size; the refined ones replace them; a
cancel during the refinement keeps the early layers."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import sss_studio.segmentation.pipeline as pipeline
from sss_studio.layers import sums_to_one
from sss_studio.segmentation.cancel import Cancelled
from sss_studio.segmentation.params import RefineParams

TIMEOUT = 60_000


@pytest.fixture
def held_edges(monkeypatch):
    """The edges stage waits until released (or cancelled), then refines as usual."""
    release = threading.Event()
    real = pipeline.refine_layers

    def held(image, alphas, scale, params, cancel=None, progress=None):
        while not release.wait(0.005):
            if cancel is not None and cancel():
                raise Cancelled("cancelled")
        return real(image, alphas, scale, params, cancel, progress)

    monkeypatch.setattr(pipeline, "refine_layers", held)
    return release


def _open(qtbot, studio, studio_scene):
    from synthetic import quick_params

    path, _, _ = studio_scene
    w = studio(params=quick_params(layers=3, refine=RefineParams()))
    assert w.open_photo(str(path))
    qtbot.waitUntil(lambda: w._early is not None, timeout=TIMEOUT)
    return w


def test_early_layers_are_shown_then_replaced_by_the_refined_ones(qtbot, studio, studio_scene, held_edges):
    from sss_studio.gui.qimage import qimage_to_array

    w = _open(qtbot, studio, studio_scene)
    early = w._early.alphas
    assert w.doc.stack is None and w.worker.busy          # shown, not yet in the document
    shown = qimage_to_array(w.canvas._item.pixmap().toImage())[..., :3].astype(np.float32) / 255
    assert np.abs(shown - w.doc.image).mean() > 0.01      # the overlay, not the bare photo
    assert "refining" in w.status.currentMessage()
    held_edges.set()
    qtbot.waitUntil(lambda: not w.worker.busy, timeout=TIMEOUT)
    assert w.errors == [] and w._early is None and w.doc.stack is not None
    assert sums_to_one(w.doc.stack.alphas)
    assert not np.array_equal(w.doc.stack.alphas, early)   # the refined layers replaced them


def test_cancel_while_refining_keeps_the_early_layers(qtbot, studio, studio_scene, held_edges):
    w = _open(qtbot, studio, studio_scene)
    early = w._early.alphas
    w.cancel_run()
    qtbot.waitUntil(lambda: not w.worker.busy, timeout=TIMEOUT)
    assert w.doc.stack is not None and np.array_equal(w.doc.stack.alphas, early)
    assert "working-size detail" in w.status.currentMessage()
    assert w.errors == []
