"""Edge refinement at the photo's own resolution (closed-form matting on the uncertain band).

The layers come from a working size of about 0.02 MP; brought back to full size they are
settled almost everywhere and blurred guesses along their edges. Here, at full size:

1. ``uncertain_band``: the pixels where no layer is near 1, grown by the upsampling
   factor (the blur the working size put there) plus a few pixels, near an edge between
   layers;
2. outside the band every pixel where a layer is near 1 is settled: that layer 1, the
   others exactly 0 (a wide soft mixture far from any edge is kept as it is);
3. inside it all K layers are re-solved together with the matting Laplacian L of the
   full-size photo (Levin et al.'s closed form, the multi-layer form of spectral matting):
   minimise Σ_k α_kᵀ L α_k + λ‖α_k − α̂_k‖² over the band, the settled pixels as
   constraints, α̂ the upsampled layers. L·1 = 0 and the constraints and α̂ sum to one,
   so the K solutions sum to one too (up to the solver's tolerance; renormalised after).
   Then a few IRLS steps of the relaxed sparsification's prior push textured solid
   pixels to 0 or 1, with no pull along the photo's own gradients (blurred edges)
   unless the matting solution already puts the layer within a few hundredths of 0 or 1.
4. ``missed_mix``: pixels whose colour shows another layer that the working size lost
   (a strand thinner than its pixels) join the band with a weak pull, starting from the
   mix their colour shows.

The band is solved tile by tile (each tile with a margin of context whose outer ring is
held at its current values, the tiles before it already refined), so memory is bounded
by the tile, not the photo. L is assembled only for the windows that touch the band.
Above ``level_factor``× upsampling a first pass runs at 1/level_factor of the size, so
the full-size band is only a few pixels wide. docs/solver.md has the measurements.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import scipy.sparse as sp

from .affinity import OFFSETS
from .band_stencil import band_stencil
from .cancel import CancelFn, ProgressFn, check, report
from .column_cg import cg_columns
from .layer_colours import box_mean
from .params import RefineParams
from ..resize import AREA, LINEAR, resize
from .sparsify import image_gradient, normalise_planes_inplace


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def band_radius(scale: float, params: RefineParams) -> int:
    """How far the band of uncertain pixels is grown: ``params.grow`` × the upsampling
    factor (the blur the working size left) + ``params.grow_px``."""
    return int(math.ceil(params.grow * max(scale, 1.0))) + params.grow_px


def uncertain_band(alphas: np.ndarray, scale: float, params: RefineParams = RefineParams()) -> np.ndarray:
    """H×W bool: the pixels to re-solve. Those where no layer reaches ``params.confident``,
    grown by ``params.grow`` × ``scale`` (the upsampling factor: the blur the working size
    left) + ``params.grow_px`` pixels, and only near an edge between layers (where the
    strongest layer changes, within twice that): a wide soft mixture of two layers far
    from any edge is no edge to sharpen, and is kept as it is."""
    k = alphas.shape[0]
    radius = band_radius(scale, params)
    unsure = (alphas.max(axis=0) < params.confident).astype(np.uint8)
    if not unsure.any() or not params.near_edges:
        return cv2.dilate(unsure, _disc(radius)).astype(bool)
    top = alphas.argmax(axis=0).astype(np.uint8 if k < 256 else np.uint16)
    edge = np.zeros(top.shape, np.uint8)
    edge[:, 1:] |= top[:, 1:] != top[:, :-1]
    edge[:, :-1] |= top[:, 1:] != top[:, :-1]
    edge[1:] |= top[1:] != top[:-1]
    edge[:-1] |= top[1:] != top[:-1]
    near_edge = cv2.dilate(edge, _disc(2 * radius))
    return (cv2.dilate(unsure, _disc(radius)) & near_edge).astype(bool)


def _layer_colour_stats(image: np.ndarray, sq: np.ndarray, mine: np.ndarray, radius: int,
                        shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local mean colour (hc×wc×3), colour variance (trace) and share of the pixels
    ``mine`` within ``radius``, at ``shape``: a coarser size, since over so wide a box the
    means are smooth. ``sq``: the photo's squared colour norm."""
    h, w = mine.shape
    hc, wc = shape
    r = max(1, round(radius * hc / h))
    m = mine.astype(np.float32)
    mass = np.maximum(box_mean(resize(m, hc, wc), r), 1e-6)
    mean = box_mean(resize(image * m[:, :, None], hc, wc), r) / mass[:, :, None]
    spread = np.maximum(box_mean(resize(sq * m, hc, wc), r) / mass - np.einsum("hwc,hwc->hw", mean, mean), 0.0)
    return mean, spread, mass


def missed_structures(image: np.ndarray, alphas: np.ndarray, params: RefineParams = RefineParams()) -> np.ndarray:
    """H×W bool: the pixels ``missed_mix`` finds."""
    return missed_mix(image, alphas, params)[0] >= 0


def missed_mix(image: np.ndarray, alphas: np.ndarray,
               params: RefineParams = RefineParams()) -> tuple[np.ndarray, np.ndarray]:
    """Pixels whose colour is a mix of their strongest layer's and another layer's, with
    more of that other layer than the layers give it: something of it is there that the
    working size missed (a strand thinner than its pixels). H×W int (that other layer,
    −1 where none) and H×W float32 (its share of the colour).

    Each layer's local colour F and its variance are taken over its pure pixels
    (α ≥ ``params.confident``) within ``params.missed_radius`` × √(H·W). A pixel of layer
    t is flagged when its colour is more than ``params.missed_spread`` variances from F_t,
    and, on the line from F_t to another layer's F_j (at least 0.1 apart, with pure pixels
    within the radius), it lies at a share s ≥ ``params.missed_share`` of the way, s
    exceeds α_j by as much, and it is at most half as far from the line as from F_t."""
    k, h, w = alphas.shape
    radius = max(1, round(params.missed_radius * math.sqrt(h * w)))
    f = max(1, radius // 16)
    coarse = (max(1, -(-h // f)), max(1, -(-w // f)))
    image = np.asarray(image, np.float32)
    sq = np.einsum("hwc,hwc->hw", image, image)
    top = alphas.argmax(axis=0)
    pure = alphas.max(axis=0) >= params.confident
    stats = [_layer_colour_stats(image, sq, (top == j) & pure, radius, coarse) for j in range(k)]
    # Candidates first: pixels unlike their own layer's colours (few), with their offset.
    # Each layer's coarse mean and variance are brought to full size once.
    far = np.empty((h, w), np.float32)
    odd = np.zeros((h, w), bool)
    own = np.empty_like(image)
    for t, (mean, spread, _) in enumerate(stats):
        mine = top == t
        full = resize(np.concatenate([mean, spread[:, :, None]], axis=2), h, w, LINEAR)
        np.copyto(own, full[:, :, :3], where=mine[:, :, None])
        d = image - full[:, :, :3]
        np.copyto(far, np.einsum("hwc,hwc->hw", d, d), where=mine)
        odd |= mine & (far > params.missed_spread * full[:, :, 3])
    layer = np.full((h, w), -1, np.int64)
    mix = np.zeros((h, w), np.float32)
    ys, xs = np.nonzero(odd)
    if not len(ys):
        return layer, mix
    best = np.zeros(len(ys), np.float32)
    ts, own, far = top[ys, xs], own[ys, xs], far[ys, xs]
    off = image[ys, xs] - own
    # The other layers' means at the candidates: bilinear from the coarse maps.
    # (cv2.remap's maps, as rows of 1024: its sides must stay below 32767.)
    n = len(ys)
    rows = -(-n // 1024)
    map_y, map_x = (np.pad(np.clip((v + 0.5) * c / s - 0.5, 0, c - 1).astype(np.float32), (0, rows * 1024 - n),
                           mode="edge").reshape(rows, 1024)
                    for v, c, s in ((ys, coarse[0], h), (xs, coarse[1], w)))

    def at(m: np.ndarray) -> np.ndarray:
        got = cv2.remap(m.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return got.reshape(rows * 1024, -1)[:n]

    for j, (mean, _, mass) in enumerate(stats):
        d = at(mean) - own
        d2 = np.einsum("nc,nc->n", d, d)
        share = np.einsum("nc,nc->n", off, d) / np.maximum(d2, 1e-12)
        rest = off - np.clip(share, 0.0, 1.0)[:, None] * d
        hit = ((ts != j) & (at(mass)[:, 0] > 0.01) & (d2 > 0.01) & (share >= params.missed_share)
               & (share - alphas[j, ys, xs] >= params.missed_share)
               & (np.einsum("nc,nc->n", rest, rest) < 0.25 * far))
        hit &= share > best
        best[hit] = share[hit]
        layer[ys[hit], xs[hit]] = j
    mix[ys, xs] = np.minimum(best, 1.0)
    return layer, mix


def _missed_at_most(image: np.ndarray, alphas: np.ndarray, params: RefineParams) -> tuple[np.ndarray, np.ndarray]:
    """``missed_mix``, looked for at no more than ``params.missed_pixels`` pixels
    (area-averaged: a strand still shows there as a mix) and brought back to full size,
    where the band's solve gives it its shape."""
    k, h, w = alphas.shape
    if h * w <= params.missed_pixels:
        return missed_mix(image, alphas, params)
    f = math.sqrt(params.missed_pixels / (h * w))
    hs, ws = max(8, round(h * f)), max(8, round(w * f))
    layer, mix = missed_mix(resize(image, hs, ws), resize_planes(alphas, hs, ws), params)
    return (cv2.resize(layer.astype(np.int32), (w, h), interpolation=cv2.INTER_NEAREST).astype(np.int64),
            cv2.resize(mix, (w, h), interpolation=cv2.INTER_NEAREST))


def settle_inplace(alphas: np.ndarray, band: np.ndarray, confident: float, band_rows: int = 256) -> None:
    """Outside ``band``, where a layer reaches ``confident``: that layer 1, every other
    layer exactly 0 (in bands of rows)."""
    k = alphas.shape[0]
    for y0 in range(0, alphas.shape[1], band_rows):
        a = alphas[:, y0:y0 + band_rows]
        keep = band[y0:y0 + band_rows] | (a.max(axis=0) < confident)
        top = a.argmax(axis=0)
        onehot = (top[None] == np.arange(k)[:, None, None]).astype(a.dtype)
        np.copyto(a, onehot, where=~keep[None])


def band_system(image: np.ndarray, unknown: np.ndarray, values: np.ndarray,
                eps: float) -> tuple[sp.csr_matrix, np.ndarray]:
    """The matting Laplacian's rows for the ``unknown`` pixels of ``image`` (h×w×3), split
    into L_UU (n_u × n_u CSR) and L_UF·x_F (n_u × K, ``values``: K×h×w, the known pixels'
    layers). No unknown pixel may lie within 2 pixels of the region's edge unless it is
    the photo's edge. Only the 3×3 windows that contain an unknown pixel are built
    (band_stencil.py)."""
    h, w = unknown.shape
    u, data = band_stencil(image, unknown, eps)
    pos = np.full(h * w, -1, np.int64)
    pos[u] = np.arange(len(u))
    cols = u[:, None] + np.array([dy * w + dx for dy, dx in OFFSETS])[None, :]     # n_u×25
    nz = data != 0.0   # windows never leave the region, so a non-zero entry is a real neighbour
    cols = np.where(nz, cols, 0)
    inner = nz & (pos[cols] >= 0)
    outer = nz & ~inner
    k = values.shape[0]
    flat = values.reshape(k, -1)
    fixed = np.stack([(np.where(outer, data, 0.0) * flat[j][cols]).sum(axis=1) for j in range(k)], axis=1)
    indptr = np.concatenate([[0], np.cumsum(inner.sum(axis=1))])
    A = sp.csr_matrix((data[inner], pos[cols[inner]], indptr), shape=(len(u), len(u)))
    return A, fixed


def _solve_region(image: np.ndarray, current: np.ndarray, guess: np.ndarray, unknown: np.ndarray,
                  params: RefineParams, cancel: CancelFn, weak: np.ndarray | None = None) -> np.ndarray:
    """The band's layers in one region: n_unknown × K (float32). ``weak`` (bool, as
    ``unknown``): pixels pulled to ``guess`` with ``params.missed_data_weight`` only."""
    k = current.shape[0]
    A, fixed = band_system(image, unknown, current, params.eps)
    flat_u = np.flatnonzero(unknown.ravel())
    lam = np.full(len(flat_u), params.data_weight)
    if weak is not None:
        lam[weak.ravel()[flat_u]] = params.missed_data_weight
    # float32 for the solves (to 1e-3: ample), half the memory traffic of float64; the
    # windows' inverses above need float64.
    A = (A + sp.diags(lam, format="csr")).astype(np.float32)
    b = (lam[:, None] * guess.reshape(k, -1).T[flat_u] - fixed).astype(np.float32)
    x = current.reshape(k, -1).T[flat_u].astype(np.float32)
    x = cg_columns(A, b, x, params.cg_tol, params.cg_iterations, cancel)
    if not params.sparsity_iterations:
        return x
    # Sparsity (as the relaxed sparsification's, |α|^γ + |1 − α|^γ by IRLS from the
    # matting solution): the matting solve alone leaves solid but textured pixels near an
    # edge partly in the other layer. The IRLS systems, with their strong diagonal,
    # converge in a few steps where the plain one needs ~100.
    # As there, γ rises to 1 (no pull) with the photo's gradient: a blurred edge has one
    # and keeps its ramp; a flat region has none and gets the full pull.
    # Texture inside a solid region has gradients too, and there the matting solve leaves
    # small leaks of the other layers: a layer it puts within ``sparsity_settled`` of 0 or
    # 1 gets the full pull whatever the gradient (docs/solver.md, "Small leaks").
    g = params.sparsity_gradient
    gamma = (np.minimum(image_gradient(image, params.colour_gradient).ravel()[flat_u], g) / g * (1.0 - params.sparsity)
             + params.sparsity)[:, None]
    if params.sparsity_settled > 0.0:
        near = (x < params.sparsity_settled) | (x > 1.0 - params.sparsity_settled)
        gamma = np.where(near, np.float32(params.sparsity), gamma)
    for _ in range(params.sparsity_iterations):
        u = np.maximum(np.abs(x), params.sparsity_floor) ** (gamma - 2.0)
        v = np.maximum(np.abs(1.0 - x), params.sparsity_floor) ** (gamma - 2.0)
        w = params.sparsity_weight
        x = cg_columns(A, b + w * v, x, params.cg_tol, params.cg_iterations, cancel,
                       extra=(w * (u + v)).astype(np.float32))
    return x


def resize_planes(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """K×H×W float32 → K×h×w (area when shrinking, bilinear when enlarging), summing to one."""
    interp = AREA if h * w < x.shape[1] * x.shape[2] else LINEAR
    # Plane by plane: each plane is contiguous, so no channel-last copy (4-5x faster at
    # 12 MP than resizing H×W×K, same values; docs/solver.md). Always a new array: the
    # caller's layers are the pipeline's cached ones and may be read-only.
    out = np.empty((x.shape[0], h, w), np.float32)
    for i in range(x.shape[0]):
        out[i] = resize(x[i], h, w, interp)
    return normalise_planes_inplace(out)


def refine_layers(image: np.ndarray, alphas: np.ndarray, scale: float, params: RefineParams = RefineParams(),
                  cancel: CancelFn = None, progress: ProgressFn = None,
                  region: np.ndarray | None = None) -> np.ndarray:
    """Refined copies of K×H×W upsampled layers, solved at the photo's resolution.

    ``image``: H×W×3 in [0, 1]. ``scale``: the upsampling factor (full side / working side),
    which sets how wide the band of uncertain pixels is. Settled pixels end one-hot; every
    pixel sums to one. ``region`` (H×W bool): refine only there (a seeded change); every
    pixel outside it keeps its layers exactly.

    Coarse to fine: above ``params.level_factor``× upsampling the layers are first refined
    at 1/level_factor of the size (and so on down), so that each level solves a band only
    a few of its pixels wide around edges that the level below already sharpened (a
    12 MP photo would otherwise solve a band as wide as the working size's blur).
    """
    k, H, W = alphas.shape
    image = np.asarray(image, np.float32)
    if region is not None:
        box = _region_box(region, scale, params)
        if box is None:
            return np.array(alphas, np.float32, copy=True)
        y0, y1, x0, x1 = box
        if (y1 - y0) * (x1 - x0) < 0.9 * H * W:   # a compact region: refine its box only
            out = np.array(alphas, np.float32, copy=True)
            out[:, y0:y1, x0:x1] = refine_layers(image[y0:y1, x0:x1], alphas[:, y0:y1, x0:x1], scale, params,
                                                 cancel, progress, region[y0:y1, x0:x1])
            return out
    levels = []
    h, w, s = H, W, float(scale)
    while s > params.level_factor and min(h, w) >= 64:
        f = params.level_factor
        h, w, s = max(8, round(h / f)), max(8, round(w / f)), s / f
        levels.append((h, w))
    done = [0]
    total = 1 + sum((hh * ww) / (H * W) for hh, ww in levels)

    def level_report(stage: str, frac: float, share: float) -> None:
        report(progress, stage, (done[0] + frac * share) / total)

    current, level_scale = None, s
    for hh, ww in list(reversed(levels)) + [(H, W)]:
        img = resize(image, hh, ww)
        inside = None if region is None else _region_at(region, hh, ww)
        if current is None:
            start = resize_planes(alphas, hh, ww)
        else:   # the level below's refined layers, upsampled (within the region only)
            start = resize_planes(current, hh, ww)
            if inside is not None:
                np.copyto(start, resize_planes(alphas, hh, ww), where=~inside[None])
        share = (hh * ww) / (H * W)
        # Strands are looked for on the first level, and on any other up to missed_pixels:
        # above that a finer level's band already holds what a coarser one found.
        look = params.missed and (current is None or hh * ww <= params.missed_pixels)
        current = _refine_level(img, start, level_scale, params, cancel,
                                lambda st, f, share=share: level_report(st, f, share), inside, look)
        done[0] += share
        level_scale = params.level_factor
    if region is not None:   # exactly the caller's layers outside the region
        np.copyto(current, np.asarray(alphas, current.dtype), where=~region[None])
    return current


CHANGED = 0.02   # a pixel whose layers moved by more than this is refined again


def changed_region(change: np.ndarray, scale: float, params: RefineParams) -> np.ndarray:
    """H×W bool: the pixels where ``change`` (K×H×W) exceeds ``CHANGED``, grown by the
    reach of the band test (twice the band's radius: ``uncertain_band``'s near-edge rule)."""
    moved = (np.abs(change).max(axis=0) > CHANGED).astype(np.uint8)
    if not moved.any():
        return moved.astype(bool)
    return cv2.dilate(moved, _disc(2 * band_radius(scale, params))).astype(bool)


def refine_again(image: np.ndarray, alphas: np.ndarray, scale: float, params: RefineParams,
                 before: np.ndarray, refined_before: np.ndarray, cancel: CancelFn = None,
                 progress: ProgressFn = None) -> np.ndarray:
    """``refine_layers`` for a re-run whose layers ``alphas`` differ from the previous
    run's ``before`` (same shape) only in places: where they moved, the new layers are
    refined with the previous refined layers as context; everywhere else the previous
    refined layers are kept as they are (they were refined from the same values)."""
    region = changed_region(np.asarray(alphas, np.float32) - before, scale, params)
    merged = np.array(refined_before, np.float32, copy=True)
    np.copyto(merged, np.asarray(alphas, np.float32), where=region[None])
    if not region.any():
        report(progress, "edges", 1.0)
        return merged
    return refine_layers(image, merged, scale, params, cancel, progress, region=region)


def _region_box(region: np.ndarray, scale: float, params: RefineParams) -> tuple[int, int, int, int] | None:
    """The bounding box of ``region`` grown by the context its refinement reads (the band
    test's reach, a tile's margin, the matting windows), or None when it is empty."""
    rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    if not len(rows):
        return None
    pad = 2 * band_radius(scale, params) + params.margin + 4
    pad = int(math.ceil(pad * max(1.0, scale / params.level_factor)))   # a first pass at a smaller size
    H, W = region.shape
    return (max(0, rows[0] - pad), min(H, rows[-1] + 1 + pad), max(0, cols[0] - pad), min(W, cols[-1] + 1 + pad))


def _region_at(region: np.ndarray, h: int, w: int) -> np.ndarray:
    """``region`` at h×w: a pixel is in when any of the full-size pixels it covers is."""
    if region.shape == (h, w):
        return region
    return cv2.resize(region.astype(np.uint8) * 255, (w, h), interpolation=cv2.INTER_AREA) > 0


def _refine_level(image: np.ndarray, alphas: np.ndarray, scale: float, params: RefineParams,
                  cancel: CancelFn, progress: ProgressFn, region: np.ndarray | None = None,
                  missed: bool = False) -> np.ndarray:
    """One level: settle the confident pixels, solve the band in tiles (within ``region``
    when given; pixels outside it are context only)."""
    k, H, W = alphas.shape
    band = uncertain_band(alphas, scale, params)
    weak = None
    if missed:
        mixed_with, mix = _missed_at_most(image, alphas, params)
        weak = cv2.dilate((mixed_with >= 0).astype(np.uint8), _disc(1)).astype(bool)
        band |= weak
    if region is not None:
        band &= region
    guess, alphas = alphas, alphas.copy()
    settle_inplace(alphas, band if region is None else band | ~region, params.confident)
    if weak is not None and params.missed_start:
        # The solve starts the found pixels at the mix their colour shows: the weak pull
        # leaves a long strand to CG, which carries a value about one pixel per step.
        ys, xs = np.nonzero((mixed_with >= 0) & band)
        share = mix[ys, xs]
        alphas[:, ys, xs] *= 1.0 - share
        alphas[mixed_with[ys, xs], ys, xs] += share
    if not band.any():
        report(progress, "edges", 1.0)
        return alphas
    t, m = params.tile, params.margin
    tiles = [(y, x) for y in range(0, H, t) for x in range(0, W, t) if band[y:y + t, x:x + t].any()]
    for i, (y, x) in enumerate(tiles):
        check(cancel)
        y0, y1, x0, x1 = max(0, y - m), min(H, y + t + m), max(0, x - m), min(W, x + t + m)
        unknown = band[y0:y1, x0:x1].copy()
        # The region's outer two rings hold context at its current values (a window of
        # an unknown pixel must lie inside the region), except along the photo's edge.
        if y0 > 0:
            unknown[:2] = False
        if y1 < H:
            unknown[-2:] = False
        if x0 > 0:
            unknown[:, :2] = False
        if x1 < W:
            unknown[:, -2:] = False
        if not unknown.any():
            continue
        cur = alphas[:, y0:y1, x0:x1]
        sol = _solve_region(image[y0:y1, x0:x1], cur, guess[:, y0:y1, x0:x1], unknown, params, cancel,
                            None if weak is None else weak[y0:y1, x0:x1])
        np.clip(sol, 0.0, 1.0, out=sol)
        sol /= np.maximum(sol.sum(axis=1, keepdims=True), 1e-12)
        # Keep only the tile's own pixels; the margin is the next tiles' to solve.
        core = np.zeros_like(unknown)
        core[y - y0:y - y0 + t, x - x0:x - x0 + t] = True
        flat_u = np.flatnonzero(unknown.ravel())
        take = core.ravel()[flat_u]
        ys, xs = np.divmod(flat_u[take], x1 - x0)
        cur[:, ys, xs] = sol[take].T.astype(alphas.dtype)
        report(progress, "edges", (i + 1) / len(tiles))
    return alphas
