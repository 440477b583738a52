"""The dock panels: layers, recolour, affinity weights."""
