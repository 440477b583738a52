"""Superpixels (SLIC0), their adjacency and per-superpixel statistics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.segmentation import slic

from .params import SuperpixelParams


@dataclass
class Superpixels:
    labels: np.ndarray          # H×W int32, 0..n-1
    count: int
    adjacency: np.ndarray       # E×2 int, pairs (s, t) with s < t that touch (4-neighbourhood)
    representative: np.ndarray  # n, flat (row-major) index of the pixel nearest each centroid
    centroid: np.ndarray        # n×2 (row/h, col/w) in [0, 1]
    mean_colour: np.ndarray     # n×3
    mean_feature: np.ndarray    # n×D


def compute_superpixels(
    image: np.ndarray, features: np.ndarray, params: SuperpixelParams = SuperpixelParams()
) -> Superpixels:
    h, w = image.shape[:2]
    labels = slic(
        image.astype(np.float64),
        n_segments=params.n_segments,
        compactness=params.compactness,
        slic_zero=params.slic_zero,
        start_label=0,
        channel_axis=-1,
        enforce_connectivity=True,
    )
    # Relabel to 0..n-1 without gaps.
    _, labels = np.unique(labels, return_inverse=True)
    labels = labels.reshape(h, w).astype(np.int32)
    return superpixel_statistics(image, features, labels)


def superpixel_statistics(image: np.ndarray, features: np.ndarray, labels: np.ndarray) -> Superpixels:
    h, w = labels.shape
    n = int(labels.max()) + 1
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=n).astype(np.float64)
    rows, cols = np.divmod(np.arange(h * w), w)
    cy = np.bincount(flat, rows, minlength=n) / counts
    cx = np.bincount(flat, cols, minlength=n) / counts

    # Representative pixel: the member nearest the centroid (a centroid can lie outside a
    # non-convex superpixel, so we pick a real member).
    dist = (rows - cy[flat]) ** 2 + (cols - cx[flat]) ** 2
    order = np.lexsort((dist, flat))
    first = np.searchsorted(flat[order], np.arange(n))
    representative = order[first]

    def means(values: np.ndarray) -> np.ndarray:
        v = values.reshape(h * w, -1).astype(np.float64)
        return np.stack([np.bincount(flat, v[:, c], minlength=n) for c in range(v.shape[1])], 1) / counts[:, None]

    adjacency = _adjacent_pairs(labels)
    centroid = np.stack([cy / h, cx / w], axis=1)
    return Superpixels(
        labels=labels,
        count=n,
        adjacency=adjacency,
        representative=representative.astype(np.int64),
        centroid=centroid,
        mean_colour=means(image),
        mean_feature=means(features),
    )


def _adjacent_pairs(labels: np.ndarray) -> np.ndarray:
    n = int(labels.max()) + 1
    a = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()]).astype(np.int64)
    b = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()]).astype(np.int64)
    keep = a != b
    lo = np.minimum(a[keep], b[keep])
    hi = np.maximum(a[keep], b[keep])
    key = np.unique(lo * n + hi)
    return np.stack(np.divmod(key, n), axis=1)
