"""The status bar: hover read-out, run progress with Cancel, provider and timings."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QStatusBar, QWidget


def format_timings(timings: dict[str, float]) -> tuple[str, str]:
    """(short text, full tooltip) for per-stage timings in seconds."""
    if not timings:
        return "", ""
    total = sum(timings.values())
    longest = sorted(timings.items(), key=lambda kv: -kv[1])[:3]
    short = f"{total:.1f} s (" + ", ".join(f"{k} {v:.1f} s" for k, v in longest) + ")"
    full = "\n".join(f"{k}: {v:.3f} s" for k, v in timings.items()) + f"\ntotal: {total:.3f} s"
    return short, full


class StudioStatusBar(QStatusBar):
    cancel_clicked = Signal()

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.hover = QLabel("")
        self.hover.setMinimumWidth(160)
        self.stage = QLabel("")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(180)
        self.progress.setTextVisible(False)
        self.cancel = QPushButton("Cancel")
        self.cancel.setToolTip("Stop the segmentation (the current layers stay)")
        self.cancel.clicked.connect(self.cancel_clicked)
        self.provider = QLabel("")
        self.provider.setToolTip("Where the semantic features came from (onnxruntime provider)")
        self.timings = QLabel("")
        # All permanent (right-hand) widgets: temporary messages use the space on the left.
        for w in (self.hover, self.stage, self.progress, self.cancel, self.provider, self.timings):
            self.addPermanentWidget(w)
        self.set_running(False)

    def set_running(self, running: bool, text: str = "") -> None:
        for w in (self.stage, self.progress, self.cancel):
            w.setVisible(running)
        self.stage.setText(text)
        if running:
            self.progress.setValue(0)

    def set_progress(self, stage: str, fraction: float) -> None:
        self.stage.setText(f"{stage}…")
        self.progress.setValue(int(round(1000 * min(max(fraction, 0.0), 1.0))))

    def set_provider(self, note: str) -> None:
        self.provider.setText(note)

    def set_timings(self, timings: dict[str, float]) -> None:
        short, full = format_timings(timings)
        self.timings.setText(short)
        self.timings.setToolTip(full)
