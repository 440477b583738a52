"""sss_studio: semantic soft segmentation, as a library, a command and a desktop editor.

    >>> from sss_studio import segment, write_psd
    >>> result = segment("photo.jpg")                                        # doctest: +SKIP
    >>> write_psd("layers.psd", result.image, result.alphas, result.layer_names)  # doctest: +SKIP

The names below load on first use (PEP 562): importing the package loads nothing
heavy, never Qt, and changes no environment variable (the command-line entry point
sets the thread environment itself).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# public name → module that defines it
_API = {
    "segment": "sss_studio.api",
    "Segmenter": "sss_studio.segmentation.pipeline",
    "SegmentationResult": "sss_studio.segmentation.pipeline",
    "SegmenterParams": "sss_studio.segmentation.params",
    "AffinityWeights": "sss_studio.segmentation.params",
    "Cancelled": "sss_studio.segmentation.cancel",
    "EmbeddingModel": "sss_studio.segmentation.embedding",
    "LayerStack": "sss_studio.layers.stack",
    "Layer": "sss_studio.layers.stack",
    "Recolour": "sss_studio.layers.recolour",
    "load_image": "sss_studio.io.image",
    "write_psd": "sss_studio.io.export",
    "write_png_stack": "sss_studio.io.export",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'sss_studio' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
