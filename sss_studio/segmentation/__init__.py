"""The engine: photo (+ features) → soft layers, one plain function per stage, each with
its parameters dataclass (``params``); ``pipeline.Segmenter`` runs them. No Qt here."""
