"""The Segmenter: photo (+ features) → K soft layers, stage by stage, with progress,
cancellation and a cache that makes a change of affinity weights or of the number of
layers re-run only the stages that depend on it.

Each stage's result is cached under a key made of everything it was computed from,
including, for the stages that warm-start from their previous result (eigenvectors,
soft segments, grouping), which previous result that was: one key always stands
for the same value.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional

import numpy as np

from ..resize import resize
from .affinity import build_laplacian, matting_affinity
from .cancel import CancelFn, Cancelled, ProgressFn, check
from .cpu_budget import free_cores, thread_budget
from .eigen import get_solver
from .features import check_feature_size, prepare_given_features, preprocess_features
from .guided_filter import guided_upsample
from .layer_names import default_names, name_layers
from .params import DEFAULT_MODE, SegmenterParams
from .refine import refine_again, refine_layers
from .seeds import SeedGraph, seed_graph
from .sparsify import (
    assign_segments,
    constrained_sparsify,
    initial_segments,
    layers_from_assignment,
    normalise_planes_inplace,
    relaxed_sparsify,
)
from .superpixels import compute_superpixels

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_MODE", "Cancelled", "SegmenterParams", "SegmentationResult", "Segmenter", "STAGES",
           "working_shape"]

# Stage names in order, with a rough share of the run time (for an overall progress
# figure): the fast mode's cold run at 640×480 (docs/solver.md, "The band's Laplacian").
STAGES: list[tuple[str, float]] = [
    ("resize", 0.0),
    ("embedding", 0.05),
    ("features", 0.01),
    ("superpixels", 0.01),
    ("affinities", 0.02),
    ("eigenvectors", 0.53),
    ("initial segments", 0.04),
    ("soft segments", 0.16),
    ("grouping", 0.01),
    ("refining layers", 0.02),
    ("classes", 0.0),
    ("naming", 0.01),
    ("upsampling", 0.01),
    ("seed graph", 0.0),
    ("edges", 0.15),
]
_TOTAL = sum(share for _, share in STAGES)
_START: dict[str, tuple[float, float]] = {}
_acc = 0.0
for _name, _share in STAGES:
    _START[_name] = (_acc / _TOTAL, _share / _TOTAL)
    _acc += _share
_START["matting"] = (_START["affinities"][0], 0.0)   # part of the affinities, reported under its own name


@dataclass
class SegmentationResult:
    alphas: np.ndarray                 # K×H×W float32, full resolution, sum to one
    image: np.ndarray                  # H×W×3 float32, full resolution
    params: SegmenterParams
    layer_names: list[str]             # from the model's class head ("sky", "person"), else numbered
    timings: dict[str, float] = field(default_factory=dict)
    working_size: tuple[int, int] = (0, 0)   # (h, w) the layers were computed at
    provider: Optional[str] = None     # onnxruntime provider that ran the model, if any
    # What seeds that correct these layers need (segmentation.seeds), at the working size.
    seed_graph: Optional[SeedGraph] = field(default=None, repr=False)
    threads: int = 0                   # threads the run used in each pool (cpu_budget)

    @property
    def layer_count(self) -> int:
        return int(self.alphas.shape[0])


# The smallest photo side the stages work on: the matting affinity needs 3×3 windows,
# the superpixels and eigenvectors a few hundred pixels; a 1-pixel strip is no photo.
MIN_SIDE = 8


def working_shape(h: int, w: int, max_pixels: int) -> tuple[int, int]:
    if h * w <= max_pixels:
        return h, w
    s = (max_pixels / (h * w)) ** 0.5
    return max(MIN_SIDE, int(round(h * s))), max(MIN_SIDE, int(round(w * s)))


@dataclass(frozen=True)
class _Entry:
    """A cached stage result. ``warm_from``: the serial of the entry it was warm-started from."""

    inputs: Any
    warm_from: Optional[int]
    serial: int
    value: Any

    @property
    def key(self) -> tuple:
        return self.inputs, self.warm_from


class _Run:
    """One call of Segmenter.run: the stage runner with its progress, cancel and timings."""

    def __init__(self, cache: dict[str, _Entry], serials: "itertools.count[int]", progress: ProgressFn,
                 cancel: CancelFn):
        self.cache, self.serials = cache, serials
        self.progress, self.cancel = progress, cancel
        self.timings: dict[str, float] = {}
        self._reported = 0.0

    def reporter(self, name: str) -> Callable[[str, float], None]:
        start, share = _START.get(name, (0.0, 0.0))

        def cb(_stage: str, frac: float) -> None:
            if self.progress is not None:
                # Never backwards (one stage's end and the next one's start can differ by an ulp).
                self._reported = max(self._reported, min(1.0, start + share * frac))
                self.progress(name, self._reported)

        return cb

    def previous(self, name: str) -> Optional[_Entry]:
        return self.cache.get(name)

    def stage(self, name: str, inputs: Any, fn: Callable[[], Any], warm: Optional[_Entry] = None) -> _Entry:
        """The cached entry when it was computed from ``inputs``, else ``fn()`` (timed, cached)."""
        hit = self.cache.get(name)
        if hit is not None and hit.inputs == inputs:
            return hit
        check(self.cancel)
        report = self.reporter(name)
        report(name, 0.0)
        t0 = time.perf_counter()
        value = fn()
        self.timings[name] = time.perf_counter() - t0
        log.info("%s: %.2f s", name, self.timings[name])
        check(self.cancel)  # a stage finished after cancel is not cached as the answer
        entry = _Entry(inputs, None if warm is None else warm.serial, next(self.serials), value)
        self.cache[name] = entry
        report(name, 1.0)
        return entry


class Segmenter:
    """Runs the stages for one photo, and re-runs only what a parameter change affects.

    Not thread-safe: one run at a time.

    Parameters
    ----------
    params : SegmenterParams, optional
        Defaults to the default mode's preset (``SegmenterParams()``, fast).
    embedding_model : EmbeddingModel, optional
        Anything with ``embed(image, cancel=...) -> H×W×D`` and a ``provider``
        attribute; only needed when ``set_image`` gets no features.
    threads : int, optional
        Threads per pool (BLAS, numba) during a run; 0 (default): the cores that other
        programs leave free when the run starts (cpu_budget).

    Examples
    --------
    >>> seg = Segmenter(SegmenterParams(layers=4), embedding_model=EmbeddingModel())  # doctest: +SKIP
    >>> seg.set_image(photo)                                                         # doctest: +SKIP
    >>> first = seg.run()                                                            # doctest: +SKIP
    >>> seg.run(replace(seg.params, layers=3))  # only the grouping and later stages run  # doctest: +SKIP
    """

    def __init__(self, params: Optional[SegmenterParams] = None, embedding_model: Any = None, threads: int = 0):
        self.params = params if params is not None else SegmenterParams()
        # Threads in every pool during a run; 0: the cores other programs leave free at its start.
        self.threads = int(threads)
        self.embedding_model = embedding_model
        self._image: Optional[np.ndarray] = None
        self._given_features: Optional[np.ndarray] = None
        self._cache: dict[str, _Entry] = {}
        self._serials = itertools.count(1)

    # -- inputs -----------------------------------------------------------------------
    def set_image(self, image: np.ndarray, features: Optional[np.ndarray] = None) -> None:
        image = np.ascontiguousarray(image, dtype=np.float32)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError("the photo must be an H×W×3 RGB array")
        if min(image.shape[:2]) < MIN_SIDE:
            raise ValueError(f"the photo is {image.shape[1]}×{image.shape[0]} pixels: too small to split into "
                             f"layers (at least {MIN_SIDE} pixels on each side)")
        if not np.isfinite(image).all():
            raise ValueError("the photo has pixels that are not numbers (NaN or infinite)")
        if features is not None:
            if features.ndim == 2:
                features = features[:, :, None]
            check_feature_size(features, image)
        self._image = image
        self._given_features = None if features is None else np.asarray(features, np.float32)
        self._cache.clear()

    @property
    def image(self) -> Optional[np.ndarray]:
        return self._image

    def warm_state(self) -> Optional[dict[str, np.ndarray]]:
        """What a later session needs for a warm re-run: the spectral basis (float16
        vectors: a start, not an answer), its values and the residual it reached; None
        before a run."""
        basis = self.cached("eigenvectors")
        if basis is None:
            return None
        target = basis.target_residual if basis.target_residual is not None else np.nan
        return {"vectors": basis.vectors.astype(np.float16), "values": np.asarray(basis.values, np.float64),
                "target_residual": np.asarray(target, np.float64)}

    def restore_warm_state(self, state: dict[str, np.ndarray]) -> bool:
        """Take a stored basis as the next eigenvector solve's warm start (never as its
        result: the entry's inputs match nothing). False when it does not fit this photo."""
        from .eigen.basis import EigenBasis

        try:
            vectors = np.asarray(state["vectors"], np.float64)
            values = np.asarray(state["values"], np.float64)
            target = float(state.get("target_residual", np.nan))
        except (KeyError, TypeError, ValueError):
            return False
        if self._image is None or vectors.ndim != 2 or vectors.shape[1] != values.shape[0]:
            return False
        h, w = working_shape(self._image.shape[0], self._image.shape[1], self.params.working_pixels)
        if vectors.shape[0] != h * w:
            return False
        q, _ = np.linalg.qr(vectors)   # float16 storage: orthonormal again
        basis = EigenBasis(vectors=q, values=values, target_residual=None if np.isnan(target) else target)
        self._cache["eigenvectors"] = _Entry(("restored",), None, next(self._serials), basis)
        return True

    def cached(self, stage: str) -> Any:
        """The last result of ``stage`` (e.g. "eigenvectors": an EigenBasis), or None."""
        entry = self._cache.get(stage)
        return None if entry is None else entry.value

    # -- running ----------------------------------------------------------------------
    def run(self, params: Optional[SegmenterParams] = None, progress: ProgressFn = None,
            cancel: CancelFn = None,
            preview: Optional[Callable[["SegmentationResult"], None]] = None) -> SegmentationResult:
        """Run, or re-run from the first stage whose inputs changed.

        Parameters
        ----------
        params : SegmenterParams, optional
            This run's parameters (default: the last ones); they become ``self.params``.
        progress : callable, optional
            ``progress(stage, overall_fraction)``.
        cancel : callable, optional
            Polled between steps; True stops the run.
        preview : callable, optional
            Called with the layers brought to full size before their edges are refined
            (``params.refine``), so that a viewer can show them while the edges are solved.

        Returns
        -------
        SegmentationResult

        Raises
        ------
        Cancelled
            ``cancel`` returned True; the cache keeps only finished stages.
        """
        if self._image is None:
            raise RuntimeError("no photo set")
        threads = self.threads if self.threads > 0 else free_cores()
        with thread_budget(threads):
            result = self._run(params, progress, cancel, preview)
        result.threads = threads
        return result

    def _run(self, params: Optional[SegmenterParams], progress: ProgressFn, cancel: CancelFn,
             preview: Optional[Callable[["SegmentationResult"], None]]) -> SegmentationResult:
        assert self._image is not None
        p = params or self.params
        self.params = p
        run = _Run(self._cache, self._serials, progress, cancel)
        full = self._image
        h, w = working_shape(full.shape[0], full.shape[1], p.working_pixels)
        image = run.stage("resize", (h, w), lambda: resize(full, h, w)).value if (h, w) != full.shape[:2] else full
        raw = self._embedding(run, image, full, p.features.embed_photo)
        feats = self._features(run, p, image, raw)
        spx = run.stage("superpixels", (feats.key, p.superpixels),
                        lambda: compute_superpixels(image, feats.value, p.superpixels))
        matting = run.stage("matting", ((h, w), p.weights.matting_eps),
                            lambda: matting_affinity(image, p.weights.matting_eps))
        lap = run.stage("affinities", (spx.key, matting.key, p.weights),
                        lambda: build_laplacian(image, spx.value, p.weights, matting.value))
        basis = self._eigenvectors(run, p, lap, image)
        init = run.stage("initial segments", (feats.key, p.constrained.components, p.seed),
                         lambda: initial_segments(feats.value, p.constrained.components, p.seed))
        segments, previous_groups = self._soft_segments(run, p, basis, init, (h, w))
        assignment = run.stage("grouping", (segments.key, p.layers, p.grouping, p.seed), lambda: assign_segments(
            segments.value, feats.value, p.layers, p.grouping, p.seed,
            None if previous_groups is None else previous_groups.value), warm=previous_groups)
        grouped = layers_from_assignment(segments.value, assignment.value)
        relaxed = run.stage("refining layers", (assignment.key, p.relaxed), lambda: relaxed_sparsify(
            grouped, lap.value, image, p.relaxed, cancel, run.reporter("refining layers")))
        names = self._names(run, p, full, (h, w), raw, relaxed)
        before_up, before_edges = run.previous("upsampling"), run.previous("edges")
        alphas = run.stage("upsampling", (relaxed.key, p.clip_layers, full.shape[:2]),
                           lambda: _finish(relaxed.value, full, image, p.clip_layers))
        graph = run.stage("seed graph", (spx.key, lap.key, p.seeds, p.refine), lambda: seed_graph(
            image, spx.value, p.seeds, lap.value, p.refine)).value
        if p.refine.enabled:
            if preview is not None:
                preview(SegmentationResult(alphas=alphas.value, image=full, params=p, layer_names=names,
                                           timings=dict(run.timings), working_size=(h, w), seed_graph=graph))
            scale = ((full.shape[0] * full.shape[1]) / (h * w)) ** 0.5
            alphas = self._edges(run, p, full, alphas, scale, before_up, before_edges)
        if progress is not None:
            progress("done", 1.0)
        provider = getattr(self.embedding_model, "provider", None) if self._given_features is None else None
        return SegmentationResult(alphas=alphas.value, image=full, params=p, layer_names=names,
                                  timings=run.timings, working_size=(h, w), provider=provider, seed_graph=graph)

    # -- stages with more than one line of glue ---------------------------------------
    def _edges(self, run: _Run, p: SegmenterParams, full: np.ndarray, up: _Entry, scale: float,
               before_up: Optional[_Entry], before_edges: Optional[_Entry]) -> _Entry:
        """The edges stage. After a re-run whose layers moved only in places (a slider
        move), only there: the previous run's refined layers stay elsewhere."""
        warm = (before_edges is not None and before_up is not None and before_edges.inputs == (before_up.key, p.refine)
                and before_up.value.shape == up.value.shape and before_up is not up)
        if not warm:
            return run.stage("edges", (up.key, p.refine), lambda: refine_layers(
                full, up.value, scale, p.refine, run.cancel, run.reporter("edges")))
        assert before_up is not None and before_edges is not None
        return run.stage("edges", (up.key, p.refine), lambda: refine_again(
            full, up.value, scale, p.refine, before_up.value, before_edges.value, run.cancel,
            run.reporter("edges")), warm=before_edges)

    def _embedding(self, run: _Run, image: np.ndarray, full: np.ndarray, photo: bool) -> _Entry:
        """(h×w×D embedding, h×w×C class probabilities or None) at the working size.

        ``photo`` (features.embed_photo): the network looks at the photo itself, at up to
        its own max side (the size it was trained at), in one pass for both outputs,
        and the embedding is averaged down to the working size (docs/solver.md: better
        layers than embedding the working-size copy). Else it embeds the working-size
        photo and the class probabilities come later from a pass of their own."""
        h, w = image.shape[:2]
        given = self._given_features
        if given is not None:
            return run.stage("embedding", ("given", (h, w)), lambda: (resize(given, h, w), None))
        model = self.embedding_model
        if model is None:
            raise RuntimeError("no features given and no embedding model loaded")
        if photo:
            return run.stage("embedding", ("model", id(model), (h, w), "photo", full.shape),
                             lambda: model.embed_and_classify(full, size=(h, w), cancel=run.cancel))
        return run.stage("embedding", ("model", id(model), (h, w)),
                         lambda: (model.embed(image, cancel=run.cancel), None))

    def _features(self, run: _Run, p: SegmenterParams, image: np.ndarray, raw: _Entry) -> _Entry:
        prepare = prepare_given_features if self._given_features is not None else preprocess_features
        return run.stage("features", (raw.key, p.features), lambda: prepare(image, raw.value[0], p.features))

    def _eigenvectors(self, run: _Run, p: SegmenterParams, lap: _Entry, image: np.ndarray) -> _Entry:
        """Warm-started from the previous basis of the same size (a slider re-run)."""
        n = image.shape[0] * image.shape[1]
        prev = run.previous("eigenvectors")
        warm = prev if prev is not None and prev.value.vectors.shape[0] == n else None
        solver = get_solver(p.mode)
        return run.stage("eigenvectors", (lap.key, p.mode, p.eigen, p.seed), lambda: solver(
            lap.value, p.eigen, seed=p.seed, warm_start=None if warm is None else warm.value, cancel=run.cancel,
            progress=run.reporter("eigenvectors"), guide=image), warm=warm)

    def _soft_segments(self, run: _Run, p: SegmenterParams, basis: _Entry, init: _Entry,
                       shape: tuple[int, int]) -> tuple[_Entry, Optional[_Entry]]:
        """The constrained sparsification, and the grouping its layers should keep.

        After a weight change the previous segments (same start, same parameters) set
        the first IRLS weights: they keep their identity, and so the layers theirs, and
        converge in a few steps, not 40. Their grouping is then the grouping's start."""
        c = p.constrained
        prev = run.previous("soft segments")
        warm = None
        if (c.warm_iterations > 0 and prev is not None and prev.inputs[1:] == (init.key, c)
                and prev.value.shape[0] == shape[0] * shape[1]):
            warm = prev
        start, seg_params = init.value, c
        if warm is not None:
            start, seg_params = warm.value, replace(c, iterations=c.warm_iterations, drop_every=0)
        segments = run.stage("soft segments", (basis.key, init.key, c), lambda: constrained_sparsify(
            basis.value.vectors, basis.value.values, start, seg_params, shape, run.cancel,
            run.reporter("soft segments")), warm=warm)
        groups = run.previous("grouping")
        if warm is None or groups is None or groups.inputs[0] != warm.key:
            groups = None
        return segments, groups

    def _names(self, run: _Run, p: SegmenterParams, full: np.ndarray, shape: tuple[int, int], raw: _Entry,
               relaxed: _Entry) -> list[str]:
        model = self.embedding_model if self._given_features is None else None
        k = relaxed.value.shape[1]
        if model is None or not getattr(model, "has_classes", False):
            return default_names(k)
        h, w = shape
        probs = run.stage("classes", raw.key, lambda: raw.value[1] if raw.value[1] is not None
                          else _class_probs(model, full, h, w, run.cancel))
        return run.stage("naming", (relaxed.key, probs.key, p.naming), lambda: name_layers(
            np.clip(relaxed.value, 0.0, 1.0).T.reshape(-1, h, w), probs.value, model.class_names,
            params=p.naming)).value


def _class_probs(model: Any, full: np.ndarray, h: int, w: int, cancel: CancelFn) -> np.ndarray:
    """h×w×C class probabilities from a pass of their own, when the embedding was taken
    from the working-size copy (features.embed_photo off). The model looks at the photo
    at up to 512 px, not at the working size: names need the detail (a 0.08 MP working
    photo loses the person in a portrait)."""
    H, W = full.shape[:2]
    s = min(1.0, 512 / max(H, W))
    look = resize(full, max(1, round(H * s)), max(1, round(W * s)))
    return resize(model.classify(look, cancel=cancel), h, w)


def _finish(layers: np.ndarray, full: np.ndarray, image: np.ndarray, clip: bool) -> np.ndarray:
    """N×K working-size layers → K×H×W float32 at full size, summing to one.

    ``image`` is the working-size photo the layers were computed on."""
    h, w = image.shape[:2]
    H, W = full.shape[:2]
    x = layers.reshape(h, w, -1)
    if (h, w) != (H, W):
        # Edge-aware: coefficients fitted at the working size, applied to the full photo
        # in bands of rows (no full-size coefficient maps).
        radius = max(2, int(round(4 * (h * w / 300_000) ** 0.5)))
        out = guided_upsample(full, np.clip(x, -0.5, 1.5).astype(np.float32), size=2 * radius + 1, eps=1e-4,
                              guide_small=image, channels_first=True)
    else:
        out = np.ascontiguousarray(np.moveaxis(x, -1, 0), dtype=np.float32)
    return normalise_planes_inplace(out, clip=clip)
