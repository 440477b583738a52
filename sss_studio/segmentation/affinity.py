"""Affinities and the Laplacian (the paper's three affinities).

W = matting·W_matting + semantic·W_semantic + colour·W_colour,  L = diag(W·1) − W.
``AffinityWeights`` holds exactly the values the studio's sliders change.
Pixel indices are row-major (i = row·width + col).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree
from scipy.special import erf

from .params import AffinityWeights
from .superpixels import Superpixels


# 5×5 neighbourhood offsets, in increasing flat-index order for any width ≥ 5 (a
# matting Laplacian row's columns), and the cells of a 3×3 matting window.
OFFSETS = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]
WINDOW = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def matting_affinity(image: np.ndarray, eps: float = 1e-7) -> sp.csr_matrix:
    """Levin et al.'s closed-form matting affinity over all 3×3 windows inside the image.

    W_ij = Σ_w (1 + (I_i − μ_w)ᵀ (Σ_w + ε/9·𝟙)⁻¹ (I_j − μ_w)) / 9. Built as 25 shifted
    images (one per neighbour offset) that become CSR arrays directly: no per-pixel loop,
    no COO sort.
    """
    img = np.asarray(image, np.float64)
    h, w = img.shape[:2]
    if h < 3 or w < 3:
        raise ValueError("the photo must be at least 3×3 pixels")
    hc, wc = h - 2, w - 2
    # Window pixels: 9 views of shape hc×wc×3.
    win = [img[1 + dy : 1 + dy + hc, 1 + dx : 1 + dx + wc] for dy, dx in WINDOW]
    mu = sum(win) / 9.0
    d = [x - mu for x in win]
    cov = sum(np.einsum("hwi,hwj->hwij", x, x) for x in d) / 9.0
    cov += (eps / 9.0) * np.eye(3)
    inv = np.linalg.inv(cov)
    md = [np.einsum("hwij,hwj->hwi", inv, x) for x in d]

    diag = np.zeros((25, h, w))
    for a, (ay, ax) in enumerate(WINDOW):
        for b, (by, bx) in enumerate(WINDOW):
            if b < a:
                continue
            val = (1.0 + np.einsum("hwi,hwi->hw", d[a], md[b])) / 9.0
            k = OFFSETS.index((by - ay, bx - ax))
            diag[k, 1 + ay : 1 + ay + hc, 1 + ax : 1 + ax + wc] += val
            if b != a:
                kt = OFFSETS.index((ay - by, ax - bx))
                diag[kt, 1 + by : 1 + by + hc, 1 + bx : 1 + bx + wc] += val
    return _offsets_to_csr(diag, h, w)


def _offsets_to_csr(diag: np.ndarray, h: int, w: int) -> sp.csr_matrix:
    n = h * w
    rows, cols = np.divmod(np.arange(n), w)
    col_idx = np.empty((n, 25), np.int64)
    valid = np.empty((n, 25), bool)
    for k, (dy, dx) in enumerate(OFFSETS):
        r, c = rows + dy, cols + dx
        valid[:, k] = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        col_idx[:, k] = r * w + c
    data = diag.reshape(25, n).T
    valid &= data != 0.0
    indptr = np.concatenate([[0], np.cumsum(valid.sum(axis=1))])
    return sp.csr_matrix((data[valid], col_idx[valid], indptr), shape=(n, n))


def semantic_affinity(spx: Superpixels, features_shape: tuple[int, int], weights: AffinityWeights) -> sp.csr_matrix:
    """Adjacent superpixels s, t: erf(steepness·(cutoff − ‖f̄_s − f̄_t‖)) at their representative pixels."""
    s, t = spx.adjacency[:, 0], spx.adjacency[:, 1]
    d = np.linalg.norm(spx.mean_feature[s] - spx.mean_feature[t], axis=1)
    a = erf(weights.semantic_steepness * (weights.semantic_cutoff - d))
    return _symmetric_at_representatives(spx, s, t, a, features_shape)


def colour_affinity(spx: Superpixels, features_shape: tuple[int, int], weights: AffinityWeights) -> sp.csr_matrix:
    """Superpixels with centroids within ``colour_radius``: (erf(steepness·(cutoff − ‖c̄_s − c̄_t‖)) + 1)/2."""
    pairs = cKDTree(spx.centroid).query_pairs(weights.colour_radius, output_type="ndarray")
    if len(pairs) == 0:
        n = features_shape[0] * features_shape[1]
        return sp.csr_matrix((n, n))
    s, t = pairs[:, 0], pairs[:, 1]
    d = np.linalg.norm(spx.mean_colour[s] - spx.mean_colour[t], axis=1)
    a = (erf(weights.colour_steepness * (weights.colour_cutoff - d)) + 1.0) / 2.0
    keep = a > weights.colour_min
    return _symmetric_at_representatives(spx, s[keep], t[keep], a[keep], features_shape)


def _symmetric_at_representatives(spx, s, t, a, shape) -> sp.csr_matrix:
    n = shape[0] * shape[1]
    i, j = spx.representative[s], spx.representative[t]
    m = sp.coo_matrix((np.concatenate([a, a]), (np.concatenate([i, j]), np.concatenate([j, i]))), shape=(n, n))
    return m.tocsr()


def laplacian_from_affinity(W: sp.spmatrix) -> sp.csr_matrix:
    """L = diag(W·1) − W: symmetric, zero row sums."""
    W = sp.csr_matrix(W)
    return (sp.diags(np.asarray(W.sum(axis=1)).ravel()) - W).tocsr()


def build_laplacian(
    image: np.ndarray,
    spx: Superpixels,
    weights: AffinityWeights = AffinityWeights(),
    matting: sp.csr_matrix | None = None,
) -> sp.csr_matrix:
    """The combined Laplacian. Pass a cached ``matting`` affinity (it only depends on the photo)."""
    h, w = image.shape[:2]
    if matting is None:
        matting = matting_affinity(image, weights.matting_eps)
    W = weights.matting * matting
    if weights.semantic != 0.0:
        W = W + weights.semantic * semantic_affinity(spx, (h, w), weights)
    if weights.colour != 0.0:
        W = W + weights.colour * colour_affinity(spx, (h, w), weights)
    return laplacian_from_affinity(W)
