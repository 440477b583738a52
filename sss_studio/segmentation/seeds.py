"""Seeds: clicks and scribbles that correct a layer, without a new eigensolve.

A seed says "this pixel belongs to layer k" (positive) or "not to layer k"
(negative). All seeds of a document are applied together to the layers as they are,
at the working size, in two steps (moving the run's whole soft segments to the
seeded layer first was tried and made the clicks worse: docs/solver.md):

1. **Superpixels.** A random walk on the superpixel graph (affinity from mean
   colour and mean semantic feature): every superpixel is pulled weakly towards
   the layers as they are, a seeded one strongly towards its seed's layer. One
   sparse solve of about 2,500 unknowns for all K layers at once; the targets of
   every row sum to one and the graph Laplacian has constant null space, so the
   result sums to one exactly.
2. **Pixels.** Where step 1 moved a boundary between layers, a band of a few pixels
   around the new boundary is solved again with the run's pixel affinity Laplacian
   (the matting affinity and the semantic terms), the pixels outside the band fixed:
   the boundary leaves the superpixels' edges for the photo's.

The change (never the layers themselves) is spread along the photo's edges with a
guided filter and brought to full size with the guided upsampling, so edits
elsewhere (brush strokes, refined edges) stay as they were. A negative seed's alpha
goes to the other layer whose confident pixels look most like it semantically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import cv2
import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from .cancel import CancelFn
from .dense import gram
from .guided_filter import guided_filter, guided_upsample
from .params import RefineParams, SeedParams
from .column_cg import cg_columns
from .refine import changed_region, refine_layers, resize_planes
from .sparsify import normalise_planes_inplace
from .superpixels import Superpixels

__all__ = ["Seed", "SeedGraph", "seed_graph", "seeded_layers", "apply_seeds", "refine_seeded"]


@dataclass(frozen=True)
class Seed:
    """A click or one point of a scribble, in the photo's pixel coordinates."""

    x: float
    y: float
    positive: bool = True     # False: "not this layer"

    def to_dict(self) -> dict:
        return {"x": round(float(self.x), 2), "y": round(float(self.y), 2), "positive": bool(self.positive)}

    @classmethod
    def from_dict(cls, d: dict) -> "Seed":
        x, y = float(d["x"]), float(d["y"])
        if not (np.isfinite(x) and np.isfinite(y)):
            raise ValueError("a seed's position must be a number")
        return cls(x, y, bool(d.get("positive", True)))


@dataclass(frozen=True)
class SeedGraph:
    """What seeds need from a run, at its working size (h×w, N = h·w pixels)."""

    image: np.ndarray             # h×w×3 float32 photo at the working size
    labels: np.ndarray            # h×w superpixel labels, 0..S−1
    laplacian: sp.csc_matrix      # S×S superpixel graph Laplacian
    sizes: np.ndarray             # S pixels per superpixel
    features: np.ndarray          # S×D mean semantic feature per superpixel
    params: SeedParams
    pixels: Optional[sp.csr_matrix] = None   # N×N pixel affinity Laplacian, or None (then step 2 is skipped)
    refine: Optional[RefineParams] = None    # the run's edge refinement, for seeded edges (None: off)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.labels.shape[0]), int(self.labels.shape[1])


def seed_graph(image: np.ndarray, superpixels: Superpixels, params: SeedParams = SeedParams(),
               pixels: Optional[sp.spmatrix] = None, refine: Optional[RefineParams] = None) -> SeedGraph:
    """The superpixel graph: adjacent superpixels attract by mean colour and mean feature."""
    s = superpixels
    n = int(s.count)
    a = np.asarray(s.adjacency, np.int64).reshape(-1, 2)
    dc = np.sum((s.mean_colour[a[:, 0]] - s.mean_colour[a[:, 1]]) ** 2, axis=1) / params.colour_sigma ** 2
    df = np.sum((s.mean_feature[a[:, 0]] - s.mean_feature[a[:, 1]]) ** 2, axis=1) / params.feature_sigma ** 2
    w = np.exp(-(dc + df))
    W = sp.coo_matrix((np.r_[w, w], (np.r_[a[:, 0], a[:, 1]], np.r_[a[:, 1], a[:, 0]])), shape=(n, n)).tocsr()
    lap = (sp.diags(np.asarray(W.sum(axis=1)).ravel()) - W).tocsc()
    sizes = np.bincount(s.labels.ravel(), minlength=n).astype(np.float64)
    return SeedGraph(image=np.ascontiguousarray(image, np.float32), labels=s.labels, laplacian=lap, sizes=sizes,
                     features=np.asarray(s.mean_feature, np.float64), params=params,
                     pixels=None if pixels is None else sp.csr_matrix(pixels),
                     refine=refine if refine is not None and refine.enabled else None)


def _normalise_rows(a: np.ndarray) -> np.ndarray:
    a = np.clip(a, 0.0, 1.0)
    s = a.sum(axis=1, keepdims=True)
    out = np.divide(a, s, out=np.full_like(a, 1.0 / a.shape[1]), where=s > 1e-12)
    return out


def _taker(layers_sp: np.ndarray, sizes: np.ndarray, features: np.ndarray) -> Callable[[int, int], int]:
    """taker(k, s): the layer that takes superpixel s's alpha from layer k. Among the
    others, the one whose confident superpixels' mean feature is nearest s's; without
    confident ones, the largest other layer at s, then overall."""
    sure = layers_sp > 0.9                                             # S×K
    weight = sure * sizes[:, None]
    has = weight.sum(axis=0) > 0
    means = gram(weight, features) / np.maximum(weight.sum(axis=0), 1e-12)[:, None]   # K×D
    total = (layers_sp * sizes[:, None]).sum(axis=0)

    def taker(k: int, s: int) -> int:
        d = np.linalg.norm(means - features[s], axis=1)
        d[~has] = np.inf
        d[k] = np.inf
        if np.isfinite(d).any():
            return int(np.argmin(d))
        at = layers_sp[s].copy()
        at[k] = -1.0
        if at.max() > 0:
            return int(np.argmax(at))
        rest = total.copy()
        rest[k] = -1.0
        return int(np.argmax(rest))

    return taker


def apply_seeds(graph: SeedGraph, layers: np.ndarray, seeds: Sequence[tuple[int, int, bool]]) -> np.ndarray:
    """Working-size step: N×K layers (sum to one) and seeds as (flat pixel index, layer,
    positive) → new N×K layers summing to one (before the change is smoothed)."""
    p = graph.params
    K = layers.shape[1]
    A = _normalise_rows(np.asarray(layers, np.float64))
    if K < 2 or not seeds:
        return A
    labels = graph.labels.ravel()
    sizes = graph.sizes
    S = sizes.shape[0]
    eye = np.eye(K)

    # 1. random walk on the superpixel graph, pulled to the layers, seeded superpixels pinned.
    A_sp = np.stack([np.bincount(labels, A[:, j], minlength=S) for j in range(K)], axis=1)
    A_sp /= np.maximum(sizes, 1)[:, None]
    c = np.full(S, p.prior)
    rhs = A_sp * c[:, None]
    taker = _taker(A_sp, sizes, graph.features)
    for pix, k, positive in seeds:
        s = int(labels[pix])
        target = eye[k] if positive else eye[taker(k, s)]
        rhs[s] += p.seed_weight * target
        c[s] += p.seed_weight
    X = splu((graph.laplacian + sp.diags(c)).tocsc()).solve(rhs)
    C = _normalise_rows(A + (X - A_sp)[labels])
    if graph.pixels is None or p.band_px <= 0:
        return C
    return _normalise_rows(_pixel_band(graph, A, C, [pix for pix, _, _ in seeds]))


def _pixel_band(graph: SeedGraph, before: np.ndarray, after: np.ndarray, pinned: list[int]) -> np.ndarray:
    """Step 2: re-solve a band around the boundaries that moved, with the pixel
    Laplacian, a weak pull to ``after`` and every other pixel fixed."""
    p = graph.params
    h, w = graph.shape
    old = np.argmax(before, axis=1).reshape(h, w)
    new = np.argmax(after, axis=1).reshape(h, w)
    moved = (old != new).astype(np.uint8)
    if not moved.any():
        return after
    ring = np.ones((3, 3), np.uint8)
    zone = cv2.dilate(moved, ring, iterations=2)
    edge = (cv2.morphologyEx(new.astype(np.float32), cv2.MORPH_GRADIENT, ring) > 0).astype(np.uint8)
    band = cv2.dilate(edge & zone, ring, iterations=int(p.band_px)).ravel() > 0
    band[pinned] = False
    unknown = np.flatnonzero(band)
    if unknown.size == 0:
        return after
    L = graph.pixels
    rows = L[unknown]
    fixed = ~band
    L_uu = rows[:, unknown]
    L_uf = rows[:, np.flatnonzero(fixed)]
    lam = p.band_prior * float(np.abs(L.diagonal()).mean() or 1.0)
    M = (L_uu + lam * sp.identity(unknown.size, format="csr")).tocsr()
    rhs = lam * after[unknown] - L_uf @ after[fixed]
    out = after.copy()
    out[unknown] = cg_columns(M, rhs, after[unknown], p.band_tol, p.band_iterations, None)
    return out


def seeded_layers(graph: SeedGraph, photo: np.ndarray, alphas: np.ndarray,
                  seeds: Sequence[tuple[int, "Seed"]], edges: bool = False) -> np.ndarray:
    """Full-size K×H×W layers with every seed applied: ``seeds`` are (layer index, Seed)
    in the photo's coordinates. Returns a new float32 array summing to one.

    ``edges``: where the seeds changed the layers, their edges are then refined at the
    photo's resolution as the run's were (refine.py, with the run's parameters); the
    layers elsewhere stay exactly as given. Off for the live preview of a scribble."""
    K, H, W = alphas.shape
    h, w = graph.shape
    keep = [(k, s) for k, s in seeds if 0 <= k < K and 0 <= s.x < W and 0 <= s.y < H]
    if not keep or K < 2:
        return np.array(alphas, np.float32, copy=True)
    before = resize_planes(alphas, h, w).reshape(K, h * w).T.astype(np.float64)
    flat = [(min(int(s.y * h / H), h - 1) * w + min(int(s.x * w / W), w - 1), k, s.positive) for k, s in keep]
    after = apply_seeds(graph, before, flat)
    change = (after - before).reshape(h, w, K).astype(np.float32)
    p = graph.params
    if (h, w) == (H, W):
        delta = np.moveaxis(guided_filter(graph.image, change, size=p.smooth_size, eps=p.smooth_eps), -1, 0)
    else:
        delta = guided_upsample(photo, change, size=p.smooth_size, eps=p.smooth_eps, guide_small=graph.image,
                                channels_first=True)
    out = normalise_planes_inplace(np.ascontiguousarray(np.asarray(alphas, np.float32) + delta, np.float32))
    return refine_seeded(graph, photo, alphas, out) if edges else out


def refine_seeded(graph: SeedGraph, photo: np.ndarray, before: np.ndarray, after: np.ndarray,
                  cancel: CancelFn = None) -> np.ndarray:
    """The studio's second step after a scribble (the first, ``seeded_layers`` without
    edges, is what the preview shows): ``after`` with the edges that moved since
    ``before`` (the layers before the seeds; a layer the seeds added counts from zero)
    refined at the photo's size (refine.changed_region; every other pixel keeps its
    layers exactly). ``after`` itself when nothing moved or the run had no refinement."""
    if graph.refine is None:
        return after
    K, H, W = after.shape
    before = np.asarray(before, np.float32)
    if before.shape[0] < K:
        before = np.concatenate([before, np.zeros((K - before.shape[0], H, W), np.float32)])
    h, w = graph.shape
    scale = ((H * W) / (h * w)) ** 0.5
    region = changed_region(np.asarray(after, np.float32) - before[:K], scale, graph.refine)
    if not region.any():
        return after
    return refine_layers(photo, np.asarray(after, np.float32), scale, graph.refine, cancel, region=region)
