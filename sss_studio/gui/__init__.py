"""The studio: a PySide6 editor for soft layers (no numerics here; see core.layers)."""

