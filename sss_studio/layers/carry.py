"""The work survives a re-run: a slider move, a new layer count or a reopened project
gives new layers, and each takes over the edits (name, swatch colour, visibility,
recolour) of the earlier layer it overlaps most; new layers that fall inside an
earlier merged layer are merged again. Matching is Hungarian on the overlap (IoU) of
the layers' hard regions. A layer made from seeds that nothing matches comes back
empty (``keep_seeded``), for its seeds to rebuild it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..segmentation.layer_names import default_names
from .stack import PALETTE, Layer, default_colour

MIN_IOU = 0.3          # a weaker overlap is no match: the layer is new
INSIDE_MERGED = 0.6    # a new layer with this share of its region inside a merged one rejoins it
_GRID_PIXELS = 250_000  # the regions are compared on a grid of about this many pixels


@dataclass(frozen=True)
class Carried:
    alphas: np.ndarray                 # K'×H×W, summing to one (parts of merged layers summed)
    layers: list[Layer]
    kept: int                          # layers that took over an earlier layer's edits
    new: list[str]                     # names of the layers with no earlier match
    gone: list[str]                    # earlier layers nothing matched


def carry_edits(old_alphas: np.ndarray, old_layers: Sequence[Layer], new_alphas: np.ndarray,
                new_names: Optional[Sequence[str]] = None, min_iou: float = MIN_IOU) -> Carried:
    """The new layers with the earlier layers' edits where they match (see the module)."""
    k_old, k_new = old_alphas.shape[0], new_alphas.shape[0]
    names = list(new_names) if new_names else default_names(k_new)
    h, w = new_alphas.shape[1:]
    step = max(1, int(np.sqrt(h * w / _GRID_PIXELS)))
    lo = np.argmax(old_alphas[:, ::step, ::step], axis=0).ravel()
    ln = np.argmax(new_alphas[:, ::step, ::step], axis=0).ravel()
    inter = np.bincount(lo * k_new + ln, minlength=k_old * k_new).reshape(k_old, k_new).astype(np.float64)
    size_new = inter.sum(axis=0)

    # Merged layers come back whole: the new layers mostly inside one become one group.
    groups: list[list[int]] = []
    taken: set[int] = set()
    for i, layer in enumerate(old_layers):
        if not layer.merged:
            continue
        inside = [j for j in range(k_new) if j not in taken and size_new[j] > 0
                  and inter[i, j] / size_new[j] >= INSIDE_MERGED]
        if len(inside) >= 2:
            groups.append(inside)
            taken.update(inside)
    groups += [[j] for j in range(k_new) if j not in taken]
    groups.sort(key=lambda g: g[0])

    g_inter = np.stack([inter[:, g].sum(axis=1) for g in groups], axis=1)
    size_old = inter.sum(axis=1)
    g_size = g_inter.sum(axis=0)
    iou = g_inter / np.maximum(size_old[:, None] + g_size[None, :] - g_inter, 1.0)
    rows, cols = linear_sum_assignment(-iou)
    match = {int(c): int(r) for r, c in zip(rows, cols) if iou[r, c] >= min_iou}

    # Matched layers take their earlier places; new ones follow in the run's order.
    order = sorted(range(len(groups)), key=lambda g: (match.get(g, k_old + g), g))
    used = {old_layers[i].colour for i in match.values()}
    spare = [c for c in PALETTE if c not in used]
    alphas = np.empty((len(groups),) + new_alphas.shape[1:], np.float32)
    layers: list[Layer] = []
    new: list[str] = []
    for slot, g in enumerate(order):
        members = groups[g]
        alphas[slot] = new_alphas[members].sum(axis=0, dtype=np.float32) if len(members) > 1 else new_alphas[members[0]]
        if g in match:
            layers.append(old_layers[match[g]])
        else:
            name = " + ".join(names[j] for j in members)
            colour = spare.pop(0) if spare else default_colour(len(layers))
            layers.append(replace(Layer(name, colour), merged=len(members) > 1))
            new.append(name)
    gone = [old_layers[i].name for i in range(k_old) if i not in match.values()]
    return Carried(alphas, layers, len(match), new, gone)


def keep_seeded(carried: Carried, old_layers: Sequence[Layer]) -> Carried:
    """``carried`` plus, as empty layers at the end, the earlier layers with seeds that
    no new layer took over (applying the seeds again fills them)."""
    lost = [l for l in old_layers if l.seeds and all(l is not c for c in carried.layers)]
    if not lost:
        return carried
    zeros = np.zeros((len(lost),) + carried.alphas.shape[1:], np.float32)
    names = {l.name for l in lost}
    return replace(carried, alphas=np.concatenate([carried.alphas, zeros]), layers=carried.layers + lost,
                   gone=[n for n in carried.gone if n not in names])
