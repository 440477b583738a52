"""The Python API: one call from a photo to its soft layers (``segment``); the classes
and writers it is built from are re-exported by the package (``sss_studio.Segmenter``,
``LayerStack``, ``write_psd``, …). No Qt, no change to the environment."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Optional, Union

import numpy as np

from .io.image import load_image
from .segmentation.cancel import CancelFn, ProgressFn
from .segmentation.embedding import EmbeddingModel
from .segmentation.features import check_feature_size
from .segmentation.params import DEFAULT_MODE, SegmenterParams
from .segmentation.pipeline import SegmentationResult, Segmenter
from .segmentation.sources import FeatureSource

PathLike = Union[str, "os.PathLike[str]"]


def segment(
    photo: Union[PathLike, np.ndarray],
    *,
    layers: int = 5,
    mode: str = DEFAULT_MODE,
    seed: int = 0,
    working_size: Optional[float] = None,
    features: Union[PathLike, np.ndarray, None] = None,
    model: Union[PathLike, EmbeddingModel, None] = None,
    prefer_gpu: bool = True,
    progress: ProgressFn = None,
    cancel: CancelFn = None,
) -> SegmentationResult:
    """Split a photo into soft layers.

    Parameters
    ----------
    photo : path or ndarray
        A photo file (JPEG, PNG, TIFF, …; grey, 16-bit, CMYK and alpha are converted)
        or an H×W×3 RGB array (uint8, or float in [0, 1]).
    layers : int, optional
        Number of soft layers (default 5).
    mode : {"fast", "reference"}, optional
        The solver and schedule (``SegmenterParams.for_mode``); "reference" is the
        paper's, minutes per photo.
    seed : int, optional
        Seeds every random step: the same seed gives the same layers.
    working_size : float, optional
        Megapixels the layers are computed at (the mode's default when None); larger
        photos are brought back to full size edge-aware.
    features : path or ndarray, optional
        Semantic features for this photo (H×W×D) instead of the embedding model.
    model : path or EmbeddingModel, optional
        The ONNX embedding model (default: the bundled one, or ``$SSS_STUDIO_MODEL``).
    prefer_gpu : bool, optional
        Run the model with CUDA when onnxruntime-gpu can.
    progress : callable, optional
        ``progress(stage, fraction)`` as the stages run.
    cancel : callable, optional
        Polled between steps; returning True raises ``Cancelled``.

    Returns
    -------
    SegmentationResult
        ``alphas`` (K×H×W float32, summing to one at every pixel), ``layer_names``,
        ``timings``, ``working_size`` and the ``provider`` that ran the model.

    Raises
    ------
    ImageLoadError
        The photo cannot be read.
    FeatureError
        No features: the model is missing or broken, or the features file unusable.
    ValueError
        Features of another size than the photo, or a bad parameter.

    Examples
    --------
    >>> from sss_studio import segment, write_psd
    >>> result = segment("photo.jpg", layers=4)                      # doctest: +SKIP
    >>> write_psd("photo_layers.psd", result.image, result.alphas,
    ...           result.layer_names)                                  # doctest: +SKIP
    """
    image = _as_photo(photo)
    params = SegmenterParams.for_mode(mode, layers=int(layers), seed=int(seed))
    if working_size is not None:
        if not working_size > 0:
            raise ValueError("working_size must be a positive number of megapixels")
        params = replace(params, working_pixels=max(1000, int(working_size * 1e6)))
    if features is not None:
        feats = features if isinstance(features, np.ndarray) else FeatureSource(
            features_path=os.fspath(features)).features_file()
        check_feature_size(feats, image)
        seg = Segmenter(params)
        seg.set_image(image, feats)
    elif isinstance(model, EmbeddingModel):
        seg = Segmenter(params, embedding_model=model)
        seg.set_image(image)
    else:
        source = FeatureSource(model_path=None if model is None else os.fspath(model), prefer_gpu=prefer_gpu)
        seg = source.prepare(image, params).segmenter
    return seg.run(progress=progress, cancel=cancel)


def _as_photo(photo: Any) -> np.ndarray:
    if not isinstance(photo, np.ndarray):
        return load_image(photo)
    a = np.asarray(photo)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"the photo must be an H×W×3 RGB array, not {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    return np.clip(a.astype(np.float32), 0.0, 1.0)
