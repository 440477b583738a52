"""Seeds that correct layers (segmentation.seeds, LayerStack.seed): a seed splits the
layer it is in, a "not this layer" seed gives a region away, Σα = 1 stays, and the
layers away from the seeds stay as they were."""

import numpy as np
import pytest

from sss_studio.layers.stack import Layer, LayerStack
from sss_studio.segmentation.pipeline import Segmenter
from sss_studio.segmentation.seeds import Seed
from synthetic import quick_params, soft_regions

H, W = 72, 96
# A point well inside each true region of soft_regions: the band, the rest, the disc.
CENTRES = {0: (0.15 * W, 0.5 * H), 1: (0.55 * W, 0.1 * H), 2: (0.72 * W, 0.5 * H)}


def iou(a, b):
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def two_in_one():
    """Three true regions split into two layers: one layer holds two regions."""
    image, features, truth = soft_regions(H, W)
    seg = Segmenter(quick_params(layers=2))
    seg.set_image(image, features)
    res = seg.run()
    hard = truth >= 0.5
    owner = [int(np.argmax([iou(a >= 0.5, t) for a in res.alphas])) for t in hard]
    both = next(k for k in range(2) if owner.count(k) == 2)
    regions = [r for r in range(3) if owner[r] == both]
    assert res.seed_graph is not None
    return image, res, hard, both, regions


def test_a_new_layer_from_a_seed_splits_the_layer_it_is_in(two_in_one):
    image, res, hard, both, (r_keep, r_split) = two_in_one
    stack = LayerStack(image, res.alphas)
    before = stack.alphas
    assert iou(before[both] >= 0.5, hard[r_split]) < 0.7     # one layer, two regions
    new = stack.seed(res.seed_graph, None, [Seed(*CENTRES[r_split])])
    stack.seed(res.seed_graph, both, [Seed(*CENTRES[r_keep])])
    a = stack.alphas
    assert len(stack) == 3 and new == 2
    assert np.allclose(a.sum(axis=0), 1.0, atol=1e-3)
    assert iou(a[new] >= 0.5, hard[r_split]) >= 0.9
    assert iou(a[both] >= 0.5, hard[r_keep]) >= 0.9
    # The layer no seed touched keeps its pixels far from the seeded regions.
    other = 1 - both
    far = hard[[r for r in range(3) if r not in (r_keep, r_split)][0]]
    assert np.abs(a[other][far] - before[other][far]).mean() < 0.02
    assert [s.positive for s in stack.layer(new).seeds] == [True]


def test_a_not_this_layer_seed_gives_the_region_to_another_layer(two_in_one):
    image, res, hard, both, (r_keep, r_split) = two_in_one
    stack = LayerStack(image, res.alphas)
    stack.seed(res.seed_graph, both, [Seed(*CENTRES[r_split], positive=False)])
    a = stack.alphas
    assert np.allclose(a.sum(axis=0), 1.0, atol=1e-3)
    assert a[both][hard[r_split]].mean() < 0.2             # the region left the layer …
    assert a[both][hard[r_keep]].mean() > 0.8              # … and the rest stayed
    assert stack.layer(both).seeds == (Seed(*CENTRES[r_split], positive=False),)


def test_seeds_survive_merge_and_the_project_record():
    s = (Seed(1.5, 2.5), Seed(3.0, 4.0, positive=False))
    layer = Layer("sky", (1, 2, 3), seeds=s)
    assert Layer.from_dict(layer.to_dict()) == layer
    image = np.zeros((8, 8, 3), np.float32)
    alphas = np.full((3, 8, 8), 1 / 3, np.float32)
    stack = LayerStack(image, alphas, [layer, Layer("b", (0, 0, 0), seeds=(Seed(5, 5),)), Layer("c", (9, 9, 9))])
    stack.merge([0, 1])
    assert stack.layer(0).seeds == s + (Seed(5, 5),)
    with pytest.raises(ValueError):
        Seed.from_dict({"x": "nan", "y": 1})


def test_seeds_outside_the_photo_or_with_one_layer_change_nothing(two_in_one):
    from sss_studio.segmentation.seeds import seeded_layers

    image, res, _, both, _ = two_in_one
    out = seeded_layers(res.seed_graph, image, res.alphas, [(both, Seed(-5, 3)), (9, Seed(3, 3))])
    assert np.array_equal(out, res.alphas) and out is not res.alphas
    one = np.ones((1, H, W), np.float32)
    assert np.array_equal(seeded_layers(res.seed_graph, image, one, [(0, Seed(3, 3, False))]), one)


def test_the_studio_splits_a_layer_with_seeds_and_keeps_the_split_through_a_rerun(qtbot, studio, studio_scene):
    """pytest-qt: S, then Shift+click splits a region out of the layer it shares, a plain
    click keeps the other region; undo restores the exact layers; a slider re-run keeps
    the split (the seeds are applied again to the new layers)."""
    from dataclasses import replace

    from PySide6.QtCore import QPointF, Qt

    from gui_helpers import opened

    path, _, truth = studio_scene
    hard = truth >= 0.5
    w = opened(qtbot, studio, studio_scene, params=quick_params(layers=2))
    stack = w.doc.stack
    h, wd = stack.shape
    centres = {0: (0.15 * wd, 0.5 * h), 1: (0.55 * wd, 0.1 * h), 2: (0.72 * wd, 0.5 * h)}
    owner = [int(np.argmax([iou(a >= 0.5, t) for a in stack.alphas])) for t in hard]
    both = next(k for k in range(2) if owner.count(k) == 2)
    r_keep, r_split = [r for r in range(3) if owner[r] == both]
    before = stack.snapshot()

    w.doc.set_selection([both])
    w.actions_.seeds.trigger()
    assert w.canvas.tool == "seeds" and not w.actions_.brush.isChecked()
    vp = w.canvas.viewport()

    def click(xy, modifier=Qt.KeyboardModifier.NoModifier):
        pos = w.canvas.mapFromScene(QPointF(*xy))
        qtbot.mousePress(vp, Qt.MouseButton.LeftButton, modifier, pos)
        qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, modifier, pos)

    click(centres[r_split], Qt.KeyboardModifier.ShiftModifier)
    assert len(stack) == 3 and w.doc.selection == [2]
    assert w.doc.undo_stack.undoText().startswith("New layer from 1 seed")
    w.doc.set_selection([both])
    click(centres[r_keep])
    a = stack.alphas
    assert np.allclose(a.sum(axis=0), 1.0, atol=1e-3)
    assert iou(a[2] >= 0.5, hard[r_split]) >= 0.9 and iou(a[both] >= 0.5, hard[r_keep]) >= 0.9
    assert w.canvas.marker_count == 2                      # the seeds are shown

    w.actions_.undo.trigger()
    w.actions_.undo.trigger()
    assert stack.alphas is before.alphas and stack.layers == before.layers
    w.actions_.redo.trigger()
    w.actions_.redo.trigger()
    split_name = stack.layer(2).name
    w.doc.rename(2, "split off")

    params = w.doc.params
    w.doc.request(replace(params, weights=replace(params.weights, semantic=params.weights.semantic * 2)))
    qtbot.waitUntil(lambda: not w.worker.busy and w.doc.params != params, timeout=60_000)
    names = [l.name for l in stack.layers]
    assert "split off" in names, (names, split_name)
    k = names.index("split off")
    assert iou(stack.alphas[k] >= 0.5, hard[r_split]) >= 0.9
    assert np.allclose(stack.alphas.sum(axis=0), 1.0, atol=1e-3)
    w.set_seed_tool(False)
    assert w.canvas.marker_count == 0


def test_a_scribble_is_one_undo_step_with_a_seed_every_few_pixels(qtbot, studio, studio_scene):
    from PySide6.QtCore import QPointF, Qt

    from gui_helpers import opened

    w = opened(qtbot, studio, studio_scene, params=quick_params(layers=2))
    stack = w.doc.stack
    before = stack.snapshot()
    h, wd = stack.shape
    w.set_seed_tool(True)
    vp = w.canvas.viewport()
    path = [QPointF(0.72 * wd + dx, 0.5 * h) for dx in (-6, -3, 0, 3, 6)]
    shift = Qt.KeyboardModifier.ShiftModifier
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, shift, w.canvas.mapFromScene(path[0]))
    for p in path[1:]:
        qtbot.mouseMove(vp, w.canvas.mapFromScene(p))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, shift, w.canvas.mapFromScene(path[-1]))
    assert len(stack) == 3 and len(stack.layer(2).seeds) >= 2
    assert w.doc.undo_stack.count() == 1
    assert np.allclose(stack.alphas.sum(axis=0), 1.0, atol=1e-3)
    w.actions_.undo.trigger()
    assert stack.alphas is before.alphas and len(stack) == 2


def test_seeded_edges_are_refined_at_the_photo_size_and_nothing_else_moves():
    """At 4× the working size a split's new layer is first the guided-upsampled change,
    soft over several pixels around its edge; refined as the run's edges were, it is
    settled where the photo is solid and follows the true rim at least as well, sums to
    one, and pixels away from the change stay exactly."""
    from dataclasses import replace

    from sss_studio.segmentation.params import RefineParams
    from sss_studio.segmentation.seeds import seeded_layers

    f = 4
    image, features, truth = soft_regions(H * f, W * f)
    seg = Segmenter(quick_params(layers=2, working_pixels=H * W, refine=RefineParams()))
    seg.set_image(image, features)
    res = seg.run()
    assert res.working_size == (H, W) and res.seed_graph.refine is not None
    hard = truth >= 0.5
    owner = [int(np.argmax([iou(a >= 0.5, t) for a in res.alphas])) for t in hard]
    both = next(k for k in range(2) if owner.count(k) == 2)
    r_keep, r_split = [r for r in range(3) if owner[r] == both]
    alphas = np.concatenate([res.alphas, np.zeros((1, H * f, W * f), np.float32)])
    seeds = [(2, Seed(CENTRES[r_split][0] * f, CENTRES[r_split][1] * f)),
             (both, Seed(CENTRES[r_keep][0] * f, CENTRES[r_keep][1] * f))]
    plain = seeded_layers(res.seed_graph, image, alphas, seeds)
    edged = seeded_layers(res.seed_graph, image, alphas, seeds, edges=True)
    assert np.allclose(edged.sum(axis=0), 1.0, atol=1e-3)
    band = (truth[r_split] > 0.02) & (truth[r_split] < 0.98)
    sad_plain, sad_edged = (float(np.abs(a[2] - truth[r_split]).sum()) for a in (plain, edged))
    assert sad_edged <= 0.5 * sad_plain, (sad_plain, sad_edged)
    band_plain, band_edged = (float(np.abs(a[2] - truth[r_split])[band].mean()) for a in (plain, edged))
    assert band_edged <= band_plain, (band_plain, band_edged)
    assert iou(edged[2] >= 0.5, hard[r_split]) >= 0.9
    # The untouched region's interior (far from both seeded regions) did not move at all.
    other = [r for r in range(3) if r not in (r_keep, r_split)][0]
    far = truth[other] > 0.999
    assert np.array_equal(edged[:, far], plain[:, far])
    # Without the run's refinement (the reference preset) there is nothing to refine with.
    off = replace(res.seed_graph, refine=None)
    assert np.array_equal(seeded_layers(off, image, alphas, seeds, edges=True), plain)


def test_the_studio_refines_seeded_edges_after_the_click_within_the_same_undo_step(qtbot, studio, studio_scene):
    """A Shift+click shows the seeded layers at once; their moved edges are refined on a
    worker thread and replace them in the same undo step; an undo before that lands
    drops it."""
    from PySide6.QtCore import QPointF, Qt

    from gui_helpers import TIMEOUT, opened
    from sss_studio.segmentation.params import RefineParams

    h0, w0 = 48, 64
    params = quick_params(layers=2, working_pixels=h0 * w0 // 4, refine=RefineParams())
    w = opened(qtbot, studio, studio_scene, params=params)
    stack = w.doc.stack
    assert w.doc.seed_graph is not None and w.doc.seed_graph.refine is not None
    before = stack.snapshot()
    w.set_seed_tool(True)
    vp = w.canvas.viewport()
    shift = Qt.KeyboardModifier.ShiftModifier
    at = w.canvas.mapFromScene(QPointF(0.72 * w0, 0.5 * h0))
    qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, shift, at)
    first = stack.alphas
    assert len(stack) == 3 and w.doc.refining_edges
    qtbot.waitUntil(lambda: not w.doc.refining_edges, timeout=TIMEOUT)
    refined = stack.alphas
    assert refined is not first and w.doc.undo_stack.count() == 1
    assert np.allclose(refined.sum(axis=0), 1.0, atol=1e-3)
    # Only where the seeds moved the layers (and the band the refinement needs) changed.
    from sss_studio.segmentation.refine import changed_region

    change = first - np.concatenate([before.alphas, np.zeros((1, h0, w0), np.float32)])
    near = changed_region(change, 2.0, params.refine)
    assert 0 < near.mean() < 1 and np.array_equal(refined[:, ~near], first[:, ~near])
    w.actions_.undo.trigger()
    assert stack.alphas is before.alphas
    w.actions_.redo.trigger()
    assert stack.alphas is refined
    # An undo before the refinement lands: it is dropped, the undo stands.
    w.actions_.undo.trigger()
    qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, shift, at)
    w.actions_.undo.trigger()
    qtbot.waitUntil(lambda: not w.doc.refining_edges, timeout=TIMEOUT)
    qtbot.wait(50)
    assert stack.alphas is before.alphas and len(stack) == 2


def test_refined_edges_that_land_after_a_save_mark_the_document_modified(qtbot, studio, studio_scene):
    from PySide6.QtCore import QPointF, Qt

    from gui_helpers import TIMEOUT, opened
    from sss_studio.segmentation.params import RefineParams

    w = opened(qtbot, studio, studio_scene, params=quick_params(layers=2, working_pixels=48 * 64 // 4,
                                                                refine=RefineParams()))
    w.set_seed_tool(True)
    at = w.canvas.mapFromScene(QPointF(0.72 * 64, 0.5 * 48))
    qtbot.mouseClick(w.canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, at)
    assert w.doc.refining_edges
    w.doc.undo_stack.setClean()          # what a save does, before the refinement lands
    assert not w.doc.is_modified
    qtbot.waitUntil(lambda: not w.doc.refining_edges, timeout=TIMEOUT)
    assert w.doc.is_modified
