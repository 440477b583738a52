"""The studio: a PySide6 editor for soft layers (no numerics here; see core.layers)."""

from . import signals as _signals  # noqa: F401  (applies the PySide6 refcount work-around first)
