"""The studio: a PySide6 editor for soft layers (Qt only; the numerics are in
``segmentation`` and ``layers``)."""
