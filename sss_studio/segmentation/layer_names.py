"""Names for soft layers from the embedding model's class head ("sky", "person", …).

Each layer's class distribution is the α-weighted mean of the per-pixel class
probabilities. The model's classes come in label sets (the bundled model: ADE20K's
32 scene and stuff classes, PASCAL VOC's 21 object classes); each set has a
catch-all first class ("other", "background"). An object class that owns the
layer wins (objects are the more specific name), then the scene class, else the
layer keeps a numbered name. A class must also clearly beat the runner-up of its
set: a close call is no name.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .params import NamingParams

# Readable forms of the teachers' compact class names.
_READABLE = {
    "diningtable": "dining table",
    "pottedplant": "potted plant",
    "tvmonitor": "tv monitor",
    "windowpane": "window",
}


def default_name(index: int) -> str:
    """The name of layer ``index`` (0-based) that no class owns: "Layer 1", "Layer 2", …"""
    return f"Layer {index + 1}"


def default_names(count: int) -> list[str]:
    return [default_name(i) for i in range(count)]


def readable(class_name: str) -> str:
    """'pascal:pottedplant' → 'potted plant'."""
    base = class_name.split(":", 1)[-1]
    return _READABLE.get(base, base.replace("_", " "))


def layer_class_shares(alphas: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """K×P α-weighted mean class probabilities. alphas: K×H×W; probs: H×W×C."""
    a = np.maximum(np.asarray(alphas, np.float64).reshape(alphas.shape[0], -1), 0.0)
    p = np.asarray(probs, np.float64).reshape(-1, probs.shape[-1])
    mass = a.sum(axis=1, keepdims=True)
    return (a @ p) / np.maximum(mass, 1e-12)


def name_layers(
    alphas: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    groups: Optional[Sequence[tuple[int, int]]] = None,
    params: NamingParams = NamingParams(),
) -> list[str]:
    """One name per layer, unique ("sky", "person", "person 2", "Layer 4").

    ``groups``: the (start, end) channel range of each label set, object sets last
    (default: the bundled model's ADE20K then PASCAL). The first class of each set is
    its catch-all and never names a layer.
    """
    k = alphas.shape[0]
    if probs.shape[-1] != len(class_names) or not class_names:
        return default_names(k)
    if groups is None:
        groups = _default_groups(class_names)
    shares = layer_class_shares(alphas, probs)
    *scene_sets, object_set = groups
    names = []
    for i in range(k):
        name = _best(shares[i], object_set, class_names, params.object_share, params.margin)
        for g in scene_sets:
            name = name or _best(shares[i], g, class_names, params.scene_share, params.margin)
        names.append(name or default_name(i))
    return _unique(names)


def _default_groups(class_names: Sequence[str]) -> list[tuple[int, int]]:
    """Contiguous runs of the same 'prefix:' (one label set each), in order."""
    prefixes = [c.split(":", 1)[0] if ":" in c else "" for c in class_names]
    groups, start = [], 0
    for j in range(1, len(prefixes) + 1):
        if j == len(prefixes) or prefixes[j] != prefixes[start]:
            groups.append((start, j))
            start = j
    return groups


def _best(share: np.ndarray, group: tuple[int, int], class_names: Sequence[str], need: float,
          margin: float = 1.0) -> Optional[str]:
    lo, hi = group
    if hi - lo < 2:
        return None
    ranked = lo + 1 + np.argsort(-share[lo + 1: hi], kind="stable")   # skip the set's catch-all class
    j = ranked[0]
    runner_up = share[ranked[1]] if len(ranked) > 1 else 0.0
    return readable(class_names[j]) if share[j] >= need and share[j] >= margin * runner_up else None


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} {seen[n]}")
    return out
