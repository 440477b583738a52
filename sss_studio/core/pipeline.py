"""The Segmenter: photo (+ features) → K soft layers, stage by stage, with progress,
cancellation and a cache that makes a change of affinity weights or of the number of
layers re-run only the stages that depend on it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Optional

import cv2
import numpy as np

from . import spectral
from .affinity import AffinityWeights, build_laplacian, matting_affinity
from .cancel import CancelFn, Cancelled, ProgressFn, check
from .features import FeatureParams, check_feature_size, prepare_given_features, preprocess_features
from .guided_filter import guided_upsample
from .layer_names import name_layers
from .sparsify import (
    ConstrainedParams,
    GroupingParams,
    RelaxedParams,
    assign_segments,
    constrained_sparsify,
    initial_segments,
    layers_from_assignment,
    normalise_planes_inplace,
    relaxed_sparsify,
)
from .superpixels import SuperpixelParams, compute_superpixels

# What the command line and the studio run unless told otherwise: the reference takes
# minutes per photo, the fast mode ~11 s at 640×480 (benchmarks/RESULTS.md).
DEFAULT_MODE = "fast"

__all__ = ["DEFAULT_MODE", "Cancelled", "SegmenterParams", "SegmentationResult", "Segmenter", "STAGES"]

# Stage names in order, with a rough share of the run time (for an overall progress figure).
STAGES: list[tuple[str, float]] = [
    ("resize", 0.0),
    ("embedding", 0.05),
    ("features", 0.03),
    ("superpixels", 0.03),
    ("affinities", 0.04),
    ("eigenvectors", 0.30),
    ("initial segments", 0.01),
    ("soft segments", 0.35),
    ("grouping", 0.01),
    ("refining layers", 0.17),
    ("classes", 0.0),
    ("naming", 0.01),
    ("upsampling", 0.02),
]
_TOTAL = sum(share for _, share in STAGES)
_START = {}
_acc = 0.0
for _name, _share in STAGES:
    _START[_name] = (_acc / _TOTAL, _share / _TOTAL)
    _acc += _share


@dataclass(frozen=True)
class SegmenterParams:
    mode: str = "reference"            # eigensolver/schedule: "reference" or "fast"
    layers: int = 5
    working_pixels: int = 300_000      # larger photos are processed at this size
    seed: int = 0
    clip_layers: bool = True           # final layers clipped to [0, 1], renormalised
    weights: AffinityWeights = AffinityWeights()
    features: FeatureParams = FeatureParams()
    superpixels: SuperpixelParams = SuperpixelParams()
    eigen: spectral.EigenParams = spectral.EigenParams()
    constrained: ConstrainedParams = ConstrainedParams()
    grouping: GroupingParams = GroupingParams()
    relaxed: RelaxedParams = RelaxedParams()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def for_mode(cls, mode: str, **overrides: Any) -> "SegmenterParams":
        """The parameter preset of a mode ("reference" or "fast"), with ``overrides``.

        Every schedule difference between the modes lives here (docs/solver.md), not
        in branches inside the stages.
        """
        if mode == "reference":
            base = cls(mode="reference")
        elif mode == "fast":
            base = cls(
                mode="fast",
                working_pixels=FAST_WORKING_PIXELS,
                eigen=FAST_EIGEN,
                constrained=FAST_CONSTRAINED,
                relaxed=FAST_RELAXED,
            )
        else:
            raise ValueError(f"unknown mode {mode!r}; choose one of {spectral.solver_names()}")
        return replace(base, **overrides)


# Fast-mode schedule (measured in benchmarks/bench_speed.py, explained in docs/solver.md).
# Working size ≈ 0.08 MP (320×240 for a 640×480 photo), layers brought back by guided
# upsampling: PERFORMANCE.md §4 found the half-resolution pipeline within the
# reference's own run-to-run spread from 640 px up; every stage is ~4× cheaper.
FAST_WORKING_PIXELS = 80_000
# 3 pixel-level LOBPCG steps after the level-1 solve: 10 steps cost 2.5× more and did
# not match the reference better (matched IoU 0.89–0.99 either way at 320×240).
# After a weight change the previous basis is Rayleigh–Ritz'd on the new L; a moderate
# change (semantic ×0.5 or ×1.5) leaves it as converged as the cold solve was, so no
# step is taken (0.3 s instead of 2 s); a large one (×5) gets one step. Against a cold
# run with the new weights, the forced step scored no better (astronaut ×0.5: IoU 0.79
# without, 0.79 with; the cold runs' own spread).
# The AMG cycle smooths its coarse levels with entries below 1e-3 (relative) lumped into
# the diagonal: 82 % of the level-1 entries go, the eigenvalue problems stay exact;
# 640×480 eigenvectors 7.1–8.0 → 5.9–6.7 s (astronaut), subspace angles to the exact
# eigenvectors unchanged (median 7.4° → 7.3°; coffee 5.9° → 5.9°).
# 3 Jacobi sweeps on the vectors prolongated to the pixels (sparse products only, ≈0.1 s)
# before the pixel-level steps: matched IoU against three reference seeds at 320×240,
# over 9 eigensolver × 3 k-means seeds, 0.797 → 0.821 (astronaut), 0.709 → 0.719
# (chelsea), 0.884 → 0.898 (coffee) (docs/solver.md, fourth pass).
# Soft locking at 0.3 on the pixel level (about 25 of 110 vectors get no new direction):
# 0.3–0.4 s less end to end; IoU against the references 0.796 / 0.760 / 0.885 (mean the
# same), ground-truth scores within noise and still level with the reference's (fifth pass).
FAST_EIGEN = spectral.EigenParams(
    count=100, tol=1e-5, fast_iterations=3, fast_warm_iterations=1, fast_coarse_iterations=15,
    fast_dtype="float32", fast_filter=1e-3, fast_smoothing=3, fast_lock=0.3,
)
# Gram statistics on every 4th pixel per axis; the reference's 40 steps and drop schedule
# (20 steps with drops every 5 kept other segments: IoU 0.55 vs 0.92 at 640×480 with
# exact eigenvectors), stopping early once max|Δα| < 1e-3 after the last drop.
# After a weight change: 5 steps from the previous segments (0.4–0.5 s instead of 2 s),
# and the grouping restarts from the previous assignment, so the layers keep their
# identity and order. Semantic ×1.5 at 640×480, IoU against cold runs with the new
# weights (three seeds) vs the cold runs' own spread: coffee 0.87 vs 0.87, chelsea 0.91
# vs 0.88, astronaut 0.94 vs 0.98 (there a 40-step restart scored 0.955); against the
# layers before the move 0.96–0.99. 10 steps scored the same.
FAST_CONSTRAINED = ConstrainedParams(pixel_stride=4, tol=1e-3, warm_iterations=5)
# Exact per-pixel block preconditioner: CG converges in a few steps, so fewer are allowed.
FAST_RELAXED = RelaxedParams(iterations=4, cg_tol=1e-4, cg_iterations=20, final_cg_iterations=50,
                             preconditioner="pixel_block")


@dataclass
class SegmentationResult:
    alphas: np.ndarray                 # K×H×W float32, full resolution, sum to one
    image: np.ndarray                  # H×W×3 float32, full resolution
    params: SegmenterParams
    timings: dict[str, float] = field(default_factory=dict)
    working_size: tuple[int, int] = (0, 0)   # (h, w) the layers were computed at
    provider: Optional[str] = None     # onnxruntime provider that ran the model, if any
    layer_names: Optional[list[str]] = None   # from the model's class head ("sky", "person"), if it has one

    @property
    def layer_count(self) -> int:
        return int(self.alphas.shape[0])


def working_shape(h: int, w: int, max_pixels: int) -> tuple[int, int]:
    if h * w <= max_pixels:
        return h, w
    s = (max_pixels / (h * w)) ** 0.5
    return max(3, int(round(h * s))), max(3, int(round(w * s)))


class Segmenter:
    """Runs the stages for one photo. Not thread-safe: one run at a time.

    ``embedding_model`` is anything with ``embed(image, cancel=...) -> H×W×D`` and a
    ``provider`` attribute (``features.EmbeddingModel``); it is only needed when no
    features are given.
    """

    def __init__(self, params: SegmenterParams = SegmenterParams(), embedding_model: Any = None):
        self.params = params
        self.embedding_model = embedding_model
        self._image: Optional[np.ndarray] = None
        self._given_features: Optional[np.ndarray] = None
        self._cache: dict[str, tuple[Any, Any]] = {}
        self._last_basis: Optional[spectral.EigenBasis] = None
        # ((init key, params), N×C soft segments, their layer assignment): the warm start's input
        self._last_segments: Optional[tuple[Any, np.ndarray, np.ndarray]] = None

    # -- inputs -----------------------------------------------------------------------
    def set_image(self, image: np.ndarray, features: Optional[np.ndarray] = None) -> None:
        image = np.ascontiguousarray(image, dtype=np.float32)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError("the photo must be an H×W×3 RGB array")
        if features is not None:
            if features.ndim == 2:
                features = features[:, :, None]
            check_feature_size(features, image)
        self._image = image
        self._given_features = None if features is None else np.asarray(features, np.float32)
        self._cache.clear()
        self._last_basis = None
        self._last_segments = None

    @property
    def image(self) -> Optional[np.ndarray]:
        return self._image

    # -- running ----------------------------------------------------------------------
    def run(
        self,
        params: Optional[SegmenterParams] = None,
        progress: ProgressFn = None,
        cancel: CancelFn = None,
    ) -> SegmentationResult:
        """Run (or re-run from the first stage whose inputs changed). Raises Cancelled."""
        if self._image is None:
            raise RuntimeError("no photo set")
        p = params or self.params
        self.params = p
        timings: dict[str, float] = {}
        provider = None

        reported = [0.0]

        def stage_progress(name: str) -> Callable[[str, float], None]:
            start, share = _START.get(name, (_START["affinities"][0], 0.0) if name == "matting" else (0.0, 0.0))

            def cb(_stage: str, frac: float) -> None:
                if progress is not None:
                    # Never backwards (one stage's end and the next one's start can differ by an ulp).
                    reported[0] = max(reported[0], min(1.0, start + share * frac))
                    progress(name, reported[0])

            return cb

        def stage(name: str, key: Any, fn: Callable[[], Any]) -> Any:
            hit = self._cache.get(name)
            if hit is not None and hit[0] == key:
                return hit[1]
            check(cancel)
            stage_progress(name)(name, 0.0)
            t0 = time.perf_counter()
            value = fn()
            timings[name] = time.perf_counter() - t0
            check(cancel)  # a stage finished after cancel is not cached as the answer
            self._cache[name] = (key, value)
            stage_progress(name)(name, 1.0)
            return value

        full = self._image
        H, W = full.shape[:2]
        h, w = working_shape(H, W, p.working_pixels)
        work_key = (h, w)
        image = stage("resize", work_key, lambda: _resize(full, h, w)) if (h, w) != (H, W) else full

        if self._given_features is not None:
            emb_key = ("given", work_key)
            raw = stage("embedding", emb_key, lambda: _resize(self._given_features, h, w))
        else:
            if self.embedding_model is None:
                raise RuntimeError("no features given and no embedding model loaded")
            emb_key = ("model", id(self.embedding_model), work_key)
            raw = stage("embedding", emb_key, lambda: self.embedding_model.embed(image, cancel=cancel))
            provider = getattr(self.embedding_model, "provider", None)

        feat_key = (emb_key, p.features)
        if self._given_features is not None:
            feats = stage("features", feat_key, lambda: prepare_given_features(image, raw, p.features))
        else:
            feats = stage("features", feat_key, lambda: preprocess_features(image, raw, p.features))

        spx_key = (feat_key, p.superpixels)
        spx = stage("superpixels", spx_key, lambda: compute_superpixels(image, feats, p.superpixels))

        mat_key = (work_key, p.weights.matting_eps)
        matting = stage("matting", mat_key, lambda: matting_affinity(image, p.weights.matting_eps))
        lap_key = (spx_key, mat_key, p.weights)
        lap = stage("affinities", lap_key, lambda: build_laplacian(image, spx, p.weights, matting))

        eig_key = (lap_key, p.mode, p.eigen)
        solver = spectral.get_solver(p.mode)
        warm = self._last_basis if (self._last_basis is not None and self._last_basis.vectors.shape[0] == h * w) else None
        basis = stage(
            "eigenvectors",
            eig_key,
            lambda: solver(lap, p.eigen, warm_start=warm, cancel=cancel, progress=stage_progress("eigenvectors"),
                           guide=image),
        )
        self._last_basis = basis

        init_key = (feat_key, p.constrained.components, p.seed)
        init = stage("initial segments", init_key, lambda: initial_segments(feats, p.constrained.components, p.seed))
        seg_key = (eig_key, init_key, p.constrained)
        start, seg_params, previous_groups = init, p.constrained, None
        last = self._last_segments
        if (p.constrained.warm_iterations > 0 and last is not None and last[0] == (init_key, p.constrained)
                and last[1].shape[0] == h * w):
            # Warm start: the previous segments set the first IRLS weights; they keep their
            # identity (and so the layers theirs) and converge in a few steps, not 40.
            start, previous_groups = last[1], last[2]
            seg_params = replace(p.constrained, iterations=p.constrained.warm_iterations, drop_every=0)
        segments = stage(
            "soft segments",
            seg_key,
            lambda: constrained_sparsify(
                basis.vectors, basis.values, start, seg_params, (h, w), cancel, stage_progress("soft segments")
            ),
        )
        grp_key = (seg_key, p.layers, p.grouping, p.seed)
        grouping = replace(p.grouping, layers=p.layers)
        assignment = stage("grouping", grp_key,
                           lambda: assign_segments(segments, feats, grouping, p.seed, previous_groups))
        grouped = layers_from_assignment(segments, assignment)
        self._last_segments = (init_key, p.constrained), segments, assignment
        rel_key = (grp_key, p.relaxed)
        relaxed = stage(
            "refining layers",
            rel_key,
            lambda: relaxed_sparsify(grouped, lap, image, p.relaxed, cancel, stage_progress("refining layers")),
        )
        names = None
        model = self.embedding_model if self._given_features is None else None
        if model is not None and getattr(model, "has_classes", False):
            probs = stage("classes", emb_key, lambda: _class_probs(model, full, h, w, cancel))
            names = stage("naming", (rel_key, emb_key), lambda: name_layers(
                np.clip(relaxed, 0.0, 1.0).T.reshape(-1, h, w), probs, model.class_names))
        up_key = (rel_key, p.clip_layers, (H, W))
        alphas = stage("upsampling", up_key, lambda: _finish(relaxed, full, image, p.clip_layers))
        if progress is not None:
            progress("done", 1.0)
        return SegmentationResult(
            alphas=alphas, image=full, params=p, timings=timings, working_size=(h, w), provider=provider,
            layer_names=names,
        )


def _class_probs(model: Any, full: np.ndarray, h: int, w: int, cancel: CancelFn) -> np.ndarray:
    """h×w×C class probabilities. The model looks at the photo at up to 512 px, not at
    the working size: names need the detail (a 0.08 MP working photo loses the person
    in a portrait), and the embedding stays at the working size it was measured at."""
    H, W = full.shape[:2]
    s = min(1.0, 512 / max(H, W))
    look = _resize(full, max(1, round(H * s)), max(1, round(W * s)))
    return _resize(model.classify(look, cancel=cancel), h, w)


def _resize(x: np.ndarray, h: int, w: int) -> np.ndarray:
    if x.shape[:2] == (h, w):
        return x
    out = np.empty((h, w) + x.shape[2:], np.float32)
    # INTER_AREA averages when shrinking; cv2 handles ≤ 4 channels per call reliably.
    src = x if x.ndim == 3 else x[:, :, None]
    o = out if out.ndim == 3 else out[:, :, None]
    for c0 in range(0, src.shape[2], 4):
        c1 = min(c0 + 4, src.shape[2])
        r = cv2.resize(np.ascontiguousarray(src[:, :, c0:c1], dtype=np.float32), (w, h), interpolation=cv2.INTER_AREA)
        o[:, :, c0:c1] = r.reshape(h, w, c1 - c0)
    return out


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
