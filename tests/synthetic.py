"""Synthetic photos with known soft layers, made in the tests (no external data)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from sss_studio.segmentation.pipeline import SegmenterParams


def soft_regions(h: int = 48, w: int = 64, seed: int = 0, noise: float = 0.02):
    """Three regions: a left band with a soft (12 px) vertical edge, a disc with a soft rim,
    and the rest. Returns (image H×W×3 float32, features H×W×3 float32, alphas 3×H×W)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    left = np.clip((w * 0.42 - xx) / 6.0 + 0.5, 0.0, 1.0)
    disc = np.clip((min(h, w) * 0.22 - np.hypot(yy - h * 0.5, xx - w * 0.72)) / 2.5 + 0.5, 0.0, 1.0)
    alphas = np.stack([left, (1 - left) * (1 - disc), (1 - left) * disc])
    colours = np.array([[0.85, 0.20, 0.15], [0.20, 0.30, 0.80], [0.20, 0.75, 0.30]])
    image = np.einsum("khw,kc->hwc", alphas, colours) + rng.normal(0.0, noise, (h, w, 3))
    embed = np.array([[0.1, 0.1, 0.9], [0.9, 0.2, 0.1], [0.5, 0.9, 0.5]])
    features = np.einsum("khw,kc->hwc", alphas, embed)
    return np.clip(image, 0, 1).astype(np.float32), features.astype(np.float32), alphas


_REFERENCE = SegmenterParams.for_mode("reference")   # taken at import: some tests patch for_mode


def quick_params(**overrides) -> SegmenterParams:
    """Reduced sizes for tiny test photos (same algorithm, fewer superpixels/vectors)."""
    p = replace(
        _REFERENCE,
        superpixels=replace(_REFERENCE.superpixels, n_segments=150),
        eigen=replace(_REFERENCE.eigen, count=30),
        constrained=replace(_REFERENCE.constrained, components=12, iterations=20),
    )
    return replace(p, **overrides)


def best_match_errors(layers: np.ndarray, truth: np.ndarray) -> list[float]:
    """For each true alpha, mean |α − α_true| of the best-matching layer."""
    return [min(float(np.abs(a - t).mean()) for a in layers) for t in truth]
