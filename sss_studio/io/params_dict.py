"""Parameters to and from the plain dict that ``layers.npz`` (the command line) and
projects (the studio) store: the same record from both."""

from __future__ import annotations

import math
from dataclasses import fields, replace
from typing import Any

from ..segmentation.params import AffinityWeights, SegmenterParams

_WEIGHTS = tuple(f.name for f in fields(AffinityWeights))


def params_to_dict(params: SegmenterParams) -> dict[str, Any]:
    """Every parameter, nested as the dataclasses are (JSON-ready)."""
    return params.to_dict()


def params_from_dict(record: Any, base: SegmenterParams) -> SegmenterParams:
    """``base`` with what a stored record says about the mode, the number of layers, the
    working size, the seed and the affinity weights (the settings a user changes); the
    rest of the schedule is the mode's preset (or ``base``'s, for the same mode).
    Raises ValueError, saying which value is wrong, for a record that is not one."""
    if not isinstance(record, dict):
        raise ValueError(f"the settings are a {type(record).__name__}, not a mapping")
    p = base
    mode = record.get("mode", base.mode)
    if mode != base.mode:
        if mode not in ("fast", "reference"):
            raise ValueError(f"unknown mode {mode!r}")
        p = SegmenterParams.for_mode(mode, weights=base.weights, layers=base.layers, seed=base.seed)
    changes: dict[str, Any] = {}
    for name, lo in (("layers", 1), ("working_pixels", 1000), ("seed", 0)):
        if name in record:
            changes[name] = _integer(record[name], name, lo)
    weights = record.get("weights", {})
    if not isinstance(weights, dict):
        raise ValueError("the weights are not a mapping")
    known = {k: _finite(v, k) for k, v in weights.items() if k in _WEIGHTS}
    return replace(p, weights=replace(p.weights, **known), **changes)


def _integer(value: Any, name: str, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer() or value < lo:
        raise ValueError(f"{name} must be an integer ≥ {lo}, not {value!r}")
    return int(value)


def _finite(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"the weight {name} must be a finite number, not {value!r}")
    return float(value)
