"""Semantic features: an embedding (from the model or a file) → the 3-D features the
affinities use (clamp, guided filter, PCA to 3, min-max, as the reference does)."""

from __future__ import annotations

import numpy as np

from .dense import eigh, gram
from .guided_filter import guided_filter
from .params import FeatureParams


def pca_project(features: np.ndarray, dims: int) -> np.ndarray:
    """Project N×D (or H×W×D) features on their top principal axes (centred)."""
    shape = features.shape
    f = features.reshape(-1, shape[-1]).astype(np.float64)
    f = f - f.mean(axis=0)
    cov = gram(f)
    vals, vecs = eigh(cov)
    order = np.argsort(vals)[::-1][:dims]
    proj = vecs[:, order]
    # Fix the sign of each axis so results repeat exactly across runs/platforms.
    signs = np.sign(proj[np.argmax(np.abs(proj), axis=0), np.arange(proj.shape[1])])
    signs[signs == 0] = 1
    out = (f @ (proj * signs)).astype(np.float32)
    return out.reshape(*shape[:-1], out.shape[-1])


def minmax_channels(features: np.ndarray, shared: bool = False) -> np.ndarray:
    """Each channel to [0, 1]; with ``shared`` all channels divided by the widest one's
    range (the first principal component's, nearly always), so distances keep their
    proportions."""
    f = features.astype(np.float32)
    lo = f.reshape(-1, f.shape[-1]).min(axis=0)
    span = f.reshape(-1, f.shape[-1]).max(axis=0) - lo
    return (f - lo) / np.maximum(span.max() if shared else span, 1e-12)


def preprocess_features(
    image: np.ndarray, embedding: np.ndarray, params: FeatureParams = FeatureParams()
) -> np.ndarray:
    """Raw H×W×D embedding → H×W×``params.dims`` features in [0,1]: clamp, guided filter,
    PCA, min-max (each component on its own, as the paper does; or with
    ``params.shared_scale`` all by the widest component's range, so that the features'
    distances are the filtered embedding's up to one factor and a weak component's
    noise is not stretched to the strong ones' range: docs/solver.md has the measurements).

    The guided filter is linear in the filtered signal, so filtering the embedding's
    projection on its top ``pre_pca_dims`` principal axes equals projecting the
    filtered embedding on those axes: we filter 32 channels instead of up to 512,
    and the final PCA comes from that subspace (which holds nearly all variance).
    """
    if embedding.ndim != 3 or embedding.shape[:2] != image.shape[:2]:
        raise ValueError(
            f"features are {embedding.shape}, photo is {image.shape[:2]}: sizes must match"
        )
    f = np.clip(embedding.astype(np.float32), -params.clamp, params.clamp)
    if f.shape[2] > params.pre_pca_dims:
        f = pca_project(f, params.pre_pca_dims)
    f = guided_filter(image, f, params.filter_size, params.filter_eps)
    if f.shape[2] > params.dims:
        f = pca_project(f, params.dims)
    return minmax_channels(f, shared=params.shared_scale)


def check_feature_size(features: np.ndarray, image: np.ndarray) -> None:
    """Raise ValueError (one line a person can act on) unless features and photo are the same size."""
    if features.shape[:2] != image.shape[:2]:
        raise ValueError(
            f"features are {features.shape[1]}×{features.shape[0]} but the photo is "
            f"{image.shape[1]}×{image.shape[0]}: sizes must match"
        )


def prepare_given_features(image: np.ndarray, features: np.ndarray, params: FeatureParams = FeatureParams()) -> np.ndarray:
    """Features supplied by the user: H×W×3 are taken as already reduced (the reference's
    sample data), anything with D > 3 gets the full preprocessing."""
    if features.ndim == 2:
        features = features[:, :, None]
    check_feature_size(features, image)
    if features.shape[2] <= 3:
        return minmax_channels(features)
    return preprocess_features(image, features, params)
