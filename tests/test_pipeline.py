from dataclasses import replace

import numpy as np
import pytest

from sss_studio.segmentation.affinity import AffinityWeights
from sss_studio.segmentation.cancel import Cancelled
from sss_studio.segmentation.pipeline import Segmenter, SegmenterParams

from synthetic import best_match_errors, quick_params, soft_regions


@pytest.fixture(scope="module")
def scene():
    return soft_regions(48, 64)


@pytest.fixture(scope="module")
def result(scene):
    image, feats, _ = scene
    seg = Segmenter(quick_params(layers=3))
    seg.set_image(image, feats)
    return seg.run()


def test_layers_sum_to_one_and_stay_in_range(result, scene):
    a = result.alphas
    assert a.shape == (3,) + scene[0].shape[:2]
    assert np.abs(a.sum(axis=0) - 1).max() <= 1e-3
    assert a.min() >= -0.05 and a.max() <= 1.05


def test_layers_recover_the_true_soft_regions(result, scene):
    errors = best_match_errors(result.alphas, scene[2])
    assert max(errors) <= 0.05, errors


def test_unclipped_output_also_sums_to_one(scene):
    image, feats, truth = scene
    seg = Segmenter(quick_params(layers=3, clip_layers=False))
    seg.set_image(image, feats)
    a = seg.run().alphas
    assert np.abs(a.sum(axis=0) - 1).max() <= 1e-3
    # The reference does not clip its output; small overshoots are expected there.
    assert a.min() >= -0.1 and a.max() <= 1.1
    assert max(best_match_errors(a, truth)) <= 0.05


def test_default_parameters_on_a_small_photo(scene):
    image, feats, truth = scene
    seg = Segmenter(replace(SegmenterParams(), layers=3))
    seg.set_image(image, feats)
    a = seg.run().alphas
    assert np.abs(a.sum(axis=0) - 1).max() <= 1e-3
    assert max(best_match_errors(a, truth)) <= 0.05


def test_same_seed_same_layers(scene):
    image, feats, _ = scene
    runs = []
    for _ in range(2):
        seg = Segmenter(quick_params(layers=3, seed=7))
        seg.set_image(image, feats)
        runs.append(seg.run().alphas)
    assert np.array_equal(runs[0], runs[1])


def test_weight_change_reruns_from_the_affinity_stage_only(scene):
    image, feats, _ = scene
    seg = Segmenter(quick_params(layers=3))
    seg.set_image(image, feats)
    first = seg.run()
    assert {"features", "superpixels", "affinities", "eigenvectors"} <= set(first.timings)
    p2 = replace(seg.params, weights=AffinityWeights(semantic=0.03))
    second = seg.run(p2)
    assert "superpixels" not in second.timings and "features" not in second.timings
    assert {"affinities", "eigenvectors", "soft segments", "refining layers"} <= set(second.timings)
    # Fewer layers: only grouping onwards.
    third = seg.run(replace(p2, layers=2))
    assert "eigenvectors" not in third.timings and "grouping" in third.timings
    assert third.alphas.shape[0] == 2
    assert np.abs(third.alphas.sum(axis=0) - 1).max() <= 1e-3


def test_progress_reports_named_stages_in_order(scene):
    image, feats, _ = scene
    seen = []
    seg = Segmenter(quick_params(layers=3))
    seg.set_image(image, feats)
    seg.run(progress=lambda stage, frac: seen.append((stage, frac)))
    fracs = [f for _, f in seen]
    assert fracs == sorted(fracs) and fracs[-1] == 1.0
    stages = [s for s, _ in seen]
    assert stages.index("eigenvectors") < stages.index("soft segments") < stages.index("refining layers")


@pytest.mark.parametrize("stop_in", ["eigenvectors", "soft segments", "refining layers"])
def test_cancel_inside_a_stage_raises_and_a_later_run_completes(scene, stop_in):
    image, feats, _ = scene
    seg = Segmenter(quick_params(layers=3))
    seg.set_image(image, feats)
    flag = {"stop": False}

    def progress(stage, frac):
        if stage == stop_in:
            flag["stop"] = True

    with pytest.raises(Cancelled):
        seg.run(progress=progress, cancel=lambda: flag["stop"])
    result = seg.run()  # nothing half-cached: the next run finishes normally
    assert np.abs(result.alphas.sum(axis=0) - 1).max() <= 1e-3


def test_large_photo_runs_at_working_size_and_comes_back_full_size():
    image, feats, truth = soft_regions(96, 128, noise=0.01)
    seg = Segmenter(quick_params(layers=3, working_pixels=48 * 64))
    seg.set_image(image, feats)
    res = seg.run()
    assert res.working_size == (48, 64)
    assert res.alphas.shape == (3, 96, 128)
    assert np.abs(res.alphas.sum(axis=0) - 1).max() <= 1e-3
    assert max(best_match_errors(res.alphas, truth)) <= 0.06


def test_features_of_the_wrong_size_are_refused(scene):
    image, feats, _ = scene
    with pytest.raises(ValueError, match="sizes must match"):
        Segmenter().set_image(image, feats[:-1])


def test_raw_high_dimensional_features_get_preprocessed(scene):
    image, feats, truth = scene
    rng = np.random.default_rng(3)
    raw = feats @ rng.normal(size=(3, 16)).astype(np.float32)  # 16-D embedding of the same regions
    seg = Segmenter(quick_params(layers=3))
    seg.set_image(image, raw)
    a = seg.run().alphas
    assert max(best_match_errors(a, truth)) <= 0.05


def _small_fast_params() -> SegmenterParams:
    """The fast preset with the sizes of quick_params (tiny test photos)."""
    p = SegmenterParams.for_mode("fast", layers=3)
    return replace(p, superpixels=replace(p.superpixels, n_segments=150), eigen=replace(p.eigen, count=30),
                   constrained=replace(p.constrained, components=12))


def test_fast_mode_weight_change_keeps_the_layers_identity(scene):
    # Fast mode warm-starts a slider move from the previous basis and segments: the
    # soft segments keep their order, so layer i after a small change is layer i before.
    image, feats, truth = scene
    p = _small_fast_params()
    seg = Segmenter(p)
    seg.set_image(image, feats)
    first = seg.run()
    second = seg.run(replace(p, weights=replace(p.weights, semantic=p.weights.semantic * 1.2)))
    assert "soft segments" in second.timings
    assert "warm Rayleigh-Ritz" in seg.cached("eigenvectors").info["timings"]
    assert np.abs(second.alphas.sum(axis=0) - 1).max() <= 1e-3
    for a, b in zip(first.alphas, second.alphas):   # same order, no matching
        assert np.abs(a - b).mean() <= 0.02
    assert max(best_match_errors(second.alphas, truth)) <= 0.05


def test_a_stored_basis_makes_the_first_rerun_warm(scene, tmp_path):
    # A reopened project keeps its spectral basis: the first slider move after it
    # warm-starts the eigensolver instead of a cold solve.
    from sss_studio.io.project import ProjectData, load_project, save_project
    from sss_studio.layers import Layer

    image, feats, truth = scene
    p = _small_fast_params()
    first = Segmenter(p)
    first.set_image(image, feats)
    result = first.run()
    state = first.warm_state()
    save_project(tmp_path / "p.sssproj", ProjectData(str(tmp_path / "photo.png"), result.alphas,
                                                    [Layer(n, (0, 0, 0)) for n in result.layer_names],
                                                    warm_state=state))
    stored = load_project(tmp_path / "p.sssproj").warm_state
    assert stored is not None and stored["vectors"].shape == state["vectors"].shape
    later = Segmenter(p)
    later.set_image(image, feats)
    assert later.restore_warm_state(stored)
    moved = replace(p, weights=replace(p.weights, semantic=p.weights.semantic * 1.2))
    again = later.run(moved)
    assert "warm Rayleigh-Ritz" in later.cached("eigenvectors").info["timings"]
    assert np.abs(again.alphas.sum(axis=0) - 1).max() <= 1e-3
    assert max(best_match_errors(again.alphas, truth)) <= 0.08
    # A basis of another photo size is refused, not used.
    other = Segmenter(p)
    other.set_image(image[:-4], feats[:-4])
    assert not other.restore_warm_state(stored)
