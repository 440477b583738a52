"""Every parameter of the engine, as frozen dataclasses, and the two mode presets.

A stage takes its own dataclass; :class:`SegmenterParams` bundles them for a run.
The ``fast`` preset (the default: ``SegmenterParams()``) and the ``reference`` preset
(the paper's schedule) differ only in the values set here; why each fast value was
chosen, with the measurements, is in ``docs/solver.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Union

# What the command line and the studio run unless told otherwise.
DEFAULT_MODE = "fast"


@dataclass(frozen=True)
class AffinityWeights:
    """W = matting·W_matting + semantic·W_semantic + colour·W_colour (the sliders' values)."""

    matting: float = 1.0
    semantic: float = 0.01
    colour: float = 0.01
    semantic_cutoff: float = 0.15      # feature distance where attraction turns to repulsion
    semantic_steepness: float = 20.0
    colour_cutoff: float = 0.05        # mean-colour distance where the colour affinity halves
    colour_steepness: float = 50.0
    colour_radius: float = 0.2         # superpixel centroids closer than this (normalised coords)
    colour_min: float = 1e-5           # colour affinities below this are dropped
    matting_eps: float = 1e-7


@dataclass(frozen=True)
class EmbeddingParams:
    max_side: int = 512   # the model was trained on photos of about 270–540 px: larger ones are
                          # embedded at this size and upsampled (also keeps CPU latency bounded)
    min_side: int = 32    # tiny inputs are upscaled so the stride-16 encoder has a few cells
    threads: int = 0      # onnxruntime intra-op threads; 0 = its default (all cores)


@dataclass(frozen=True)
class FeatureParams:
    clamp: float = 5.0          # the reference clamps its embedding to [-5, 5]
    filter_size: int = 10       # guided filter box, pixels
    filter_eps: float = 0.01    # guided filter ε for a guide in [0, 1]
    pre_pca_dims: int = 32      # see features.preprocess_features
    embed_photo: bool = True    # the network sees the photo (up to its max side), not the working-size copy
    dims: int = 3               # principal components kept (the paper: 3) …
    shared_scale: bool = False  # … each min-max scaled on its own (the paper), or all by the widest one's
                                # range, so that distances stay the embedding's up to one factor


@dataclass(frozen=True)
class SuperpixelParams:
    n_segments: int = 2500
    compactness: float = 0.1   # SLIC0 adapts compactness per superpixel; this is its start value
    slic_zero: bool = True     # the reference uses SLIC0


@dataclass(frozen=True)
class EigenParams:
    """The reference eigensolver (ARPACK shift-invert)."""

    count: int = 100
    shift: float = -1e-6  # L is singular (constants): shift-invert exactly at 0 fails


@dataclass(frozen=True)
class FastEigenParams:
    """The fast eigensolver (AMG-preconditioned multilevel LOBPCG, eigen/fast.py)."""

    count: int = 100
    tol: float = 1e-5                 # LOBPCG: max ‖r_i‖ / mean(diag L)
    shift: float = 1e-4               # AMG built for L + shift·mean(diag L)·I
    iterations: int = 8               # LOBPCG steps on the pixel level from a cold start
    warm_iterations: int = 4          # … at most, warm-started from the previous basis
    warm_slack: float = 1.25          # warm start: done once max residual ≤ slack × the cold solve's
    # Pixel-level soft locking: vectors with a residual below lock × the largest get no
    # search direction of their own (eigen.lobpcg); 0 = off
    lock: float = 0.0
    coarse_iterations: int = 20       # … on each intermediate AMG level
    coarse_factor: int = 4            # coarsest level solved densely has ≥ factor·k unknowns
    max_coarse: int = 1500
    dense_coarse: int = 2000          # start level up to this size: dense eigh, else sparse shift-invert
    sweeps: int = 1
    smooth: bool = False
    theta: float = 0.0
    filter: float = 0.0               # AMG cycle: drop coarse entries below this (relative), AMGParams
    smoothing: int = 0                # Jacobi sweeps on the vectors prolongated to the pixels
    dtype: str = "float64"            # LOBPCG blocks; "float32" halves time and memory (final RR in float64)
    threads: int = 0                  # BLAS threads for the pixel level (0 = leave as is: the app's all cores)
    # … for set-up and the coarse levels: -1 = as the pixel level when idle threads sleep
    # (sss_studio/_threads_env.py), else 1 (spinning pools made two threads slower there)
    coarse_threads: int = -1


@dataclass(frozen=True)
class AMGParams:
    max_coarse: int = 1500       # coarsest level solved densely
    strength_theta: float = 0.0
    smooth_prolongator: bool = False   # smoothed aggregation fills the 25-point stencil badly
    jacobi_omega: float = 0.7
    sweeps: int = 1              # pre- and post-smoothing sweeps
    # Coarse levels inside the cycle: entries with |a_ij| < filter·√(a_ii·a_jj) are dropped
    # and lumped into the diagonal (row sums kept). 0 = exact Galerkin matrices.
    filter: float = 0.0


@dataclass(frozen=True)
class ConstrainedParams:
    components: int = 40
    iterations: int = 40
    sparsity: float = 0.8          # γ
    drop_threshold: float = 0.1    # components with max|α| ≤ this are dropped …
    drop_every: int = 10           # … after iterations 11, 21, 31
    pixel_stride: int = 1          # Gram statistics on every n-th pixel per axis (1 = all)
    gram_dtype: str = "float64"    # "float32" halves the cost of the Gram products
    tol: float = 0.0               # stop once max|Δα| on the sampled pixels < tol (after the last drop)
    eigenvectors: int = 0          # use only the first n eigenvectors (0 = all given)
    # After a weight change: start from the previous soft segments (not the one-hot
    # k-means) and run at most this many iterations, no drops (0 = always from scratch).
    warm_iterations: int = 0


@dataclass(frozen=True)
class GroupingParams:
    n_init: int = 10   # k-means restarts: the grouping depends less on the seed


@dataclass(frozen=True)
class RelaxedParams:
    iterations: int = 20
    delta: float = 100.0        # soft sum-to-one weight
    cg_tol: float = 1e-6
    cg_iterations: int = 100
    final_cg_iterations: int = 1000
    # IRLS weights are capped at floor^(γ−2). The reference's 0.01 caps the pull to zero
    # below what the matting Laplacian's smoothing spreads, which left a haze of small
    # alphas over whole regions; 1e-3 lets absent layers reach zero (docs/solver.md).
    floor: float = 1e-3
    sparsity_weight: float = 1.0   # weight of the sparsity terms against the fidelity to the grouping
    gamma_min: float = 0.9         # γ_p = min(gamma_min + |∇I|, 1): the paper's 0.9
    # "jacobi" (the reference's diagonal) or "pixel_block": the exact inverse of each
    # pixel's K×K block diag(d) + δ·11ᵀ (Sherman–Morrison), which also captures the
    # strong sum-to-one coupling δ = 100 that plain Jacobi ignores.
    preconditioner: str = "jacobi"


@dataclass(frozen=True)
class RefineParams:
    """Edge refinement at the photo's own resolution (refine.py)."""

    enabled: bool = True
    confident: float = 0.9      # a pixel where one layer reaches this is settled (one-hot)
    grow: float = 1.0           # the band grows by grow × the upsampling factor …
    grow_px: int = 2            # … + this many pixels
    near_edges: bool = True     # … and only near an edge between layers (refine.uncertain_band)
    level_factor: float = 4.0   # above this upsampling factor, a first pass at 1/level_factor of the size
    eps: float = 1e-7           # matting Laplacian ε (as the affinity's)
    data_weight: float = 1e-2   # λ: pull towards the upsampled layers inside the band
    tile: int = 384             # band solved in tiles of this many pixels a side …
    margin: int = 24            # … each with this much context around it
    cg_tol: float = 1e-3
    cg_iterations: int = 300
    # A sparsity prior on the band's alphas, |α|^γ + |1 − α|^γ, by IRLS (0 iterations = off)
    sparsity: float = 0.7
    sparsity_weight: float = 3.0
    sparsity_floor: float = 1e-3
    sparsity_iterations: int = 2
    sparsity_gradient: float = 0.05  # γ rises linearly to 1 (no pull) at this photo gradient …
    colour_gradient: bool = True     # … of the colour (RMS over R, G, B); False: of the luminance
    sparsity_settled: float = 0.05   # … but full pull for a layer the matting solve puts within this of 0 or 1
    # Structures the working size missed (strands thinner than its pixels): pixels whose
    # colour is a mix of their layer's and another layer's nearby pure colours, with more
    # of that layer than the layers give it (refine.missed_mix), join the band with a weak
    # pull to the upsampled layers.
    missed: bool = True
    missed_radius: float = 0.3       # the layers' local colours: box radius, × √(H·W)
    missed_share: float = 0.25       # the other layer's share of the mix that flags a pixel
    missed_spread: float = 9.0       # … and its colour this many variances from its layer's mean
    missed_data_weight: float = 1e-4  # λ on those pixels (the upsampled layers know nothing there)
    missed_pixels: int = 1_000_000   # looked for at most at this size (cost at 12 MP)
    missed_start: bool = True        # the solve starts them at the mix their colour shows


@dataclass(frozen=True)
class SeedParams:
    """Seeds that correct a layer (seeds.py); values from benchmarks/bench_clicks.py."""

    prior: float = 1e-3           # pull of every superpixel towards the layers as they are
    seed_weight: float = 100.0    # pull of a seeded superpixel towards its seed's layer
    colour_sigma: float = 0.1     # superpixel graph: mean-colour distance scale …
    feature_sigma: float = 0.1    # … and semantic feature distance scale of its affinity
    band_px: int = 3              # pixels around a moved boundary re-solved with the pixel Laplacian (0: off) …
    band_prior: float = 1e-2      # … pulled this much (× mean diagonal) towards the superpixel answer …
    band_tol: float = 1e-3        # … by CG to this relative residual …
    band_iterations: int = 40     # … or this many steps
    smooth_size: int = 5          # the change is spread along the photo's edges: guided filter box …
    smooth_eps: float = 1e-3      # … and ε, at the working size


@dataclass(frozen=True)
class NamingParams:
    object_share: float = 0.5   # mean probability an object class needs to name a layer
    scene_share: float = 0.35   # … a scene / stuff class
    # … and at least this many times the runner-up of its label set: a guess that close
    # is no name (a numbered layer is honest, a wrong name misleads; docs/solver.md).
    margin: float = 1.5


# -- the presets (docs/solver.md: "Preset values" says what each was measured against) ----

FAST_WORKING_PIXELS = 20_000
REFERENCE_WORKING_PIXELS = 300_000
FAST_EIGEN = FastEigenParams(
    count=80, tol=1e-5, iterations=6, warm_iterations=1, coarse_iterations=15,
    dtype="float32", filter=1e-3, smoothing=3, lock=0.3,
)
FAST_CONSTRAINED = ConstrainedParams(pixel_stride=4, tol=1e-3, warm_iterations=5)
FAST_GROUPING = GroupingParams(n_init=20)
FAST_FEATURES = FeatureParams(dims=4, shared_scale=True)
# A stronger sparsity than the paper's (γ from 0.8, weight 3, 10 steps) settles the
# mixtures of two layers over whole regions that soft layers lost to hard ones on
# (docs/solver.md, "Mixtures over whole regions").
FAST_RELAXED = RelaxedParams(iterations=10, cg_tol=1e-4, cg_iterations=20, final_cg_iterations=50,
                             preconditioner="pixel_block", gamma_min=0.8, sparsity_weight=3.0)

# The eigensolver parameters each mode takes (eigen.SOLVERS holds the solvers themselves).
EIGEN_PARAMS: dict[str, type] = {"reference": EigenParams, "fast": FastEigenParams}


@dataclass(frozen=True)
class SegmenterParams:
    """One run's parameters. ``SegmenterParams()`` is the fast preset; ``for_mode``
    gives either preset with overrides."""

    mode: str = "fast"                 # eigensolver and schedule: "fast" or "reference"
    layers: int = 5
    working_pixels: int = FAST_WORKING_PIXELS   # larger photos are processed at this size
    seed: int = 0                      # every random step: k-means and the eigensolvers' starts
    clip_layers: bool = True           # final layers clipped to [0, 1], renormalised
    weights: AffinityWeights = AffinityWeights()
    features: FeatureParams = FAST_FEATURES
    superpixels: SuperpixelParams = SuperpixelParams()
    eigen: Union[EigenParams, FastEigenParams] = FAST_EIGEN
    constrained: ConstrainedParams = FAST_CONSTRAINED
    grouping: GroupingParams = FAST_GROUPING
    relaxed: RelaxedParams = FAST_RELAXED
    naming: NamingParams = NamingParams()
    refine: RefineParams = RefineParams()
    seeds: SeedParams = SeedParams()

    def __post_init__(self) -> None:
        kind = EIGEN_PARAMS.get(self.mode)
        if kind is None:
            raise ValueError(f"unknown mode {self.mode!r}; choose one of {sorted(EIGEN_PARAMS)}")
        if not isinstance(self.eigen, kind):
            raise ValueError(f"mode {self.mode!r} takes {kind.__name__}, not {type(self.eigen).__name__}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def for_mode(cls, mode: str, **overrides: Any) -> "SegmenterParams":
        """The parameter preset of a mode ("reference" or "fast"), with ``overrides``.

        Every schedule difference between the modes lives here, not in branches inside
        the stages.
        """
        if mode == "fast":
            base = cls()
        elif mode == "reference":
            base = cls(mode="reference", working_pixels=REFERENCE_WORKING_PIXELS, features=FeatureParams(), eigen=EigenParams(),
                       constrained=ConstrainedParams(), grouping=GroupingParams(), relaxed=RelaxedParams(floor=0.01),
                       refine=RefineParams(enabled=False))
        else:
            raise ValueError(f"unknown mode {mode!r}; choose one of {sorted(EIGEN_PARAMS)}")
        return replace(base, **overrides)
