"""The status bar: hover read-out, run progress with Cancel, provider and timings."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt, QTimer, Signal
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


STAGE_WIDTH = 150
PROVIDER_WIDTH = 190
TIMINGS_WIDTH = 260
HOVER_WIDTH = 230


def _set_elided(label: QLabel, text: str, width: int) -> None:
    """Show ``text`` in ``label``, ending in "…" if it is wider than ``width``; the full
    text stays available (``full_text`` and, when elided, the tooltip)."""
    shown = label.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, width - 4)
    label.setText(shown)
    label.setProperty("full_text", text)
    if shown != text and not label.toolTip():
        label.setToolTip(text)


class StudioStatusBar(QStatusBar):
    cancel_clicked = Signal()

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        # Messages: our own label on the left, taking the room left over and elided
        # there with "…" (QStatusBar's own message area cuts text mid-word).
        self.message = QLabel("")
        self.message.setMinimumWidth(80)
        self._message_text = ""
        self._message_timer = QTimer(self)
        self._message_timer.setSingleShot(True)
        self._message_timer.timeout.connect(self.clearMessage)
        self.addWidget(self.message, 1)
        self.hover = QLabel("")
        self.hover.setFixedWidth(HOVER_WIDTH)
        self.zoom = QLabel("")
        self.zoom.setFixedWidth(56)
        self.zoom.setToolTip("Zoom (Ctrl+0 fits, Ctrl+1 is 100 %)")
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
        # Widths fixed and the run's widgets keeping their place while hidden: nothing in
        # the bar moves under the pointer when a run starts or ends. Long texts are
        # elided with "…" (the whole text in the tooltip), never cut mid-word.
        self.stage.setFixedWidth(STAGE_WIDTH)
        self.provider.setMaximumWidth(PROVIDER_WIDTH)
        self.timings.setMaximumWidth(TIMINGS_WIDTH)
        for w in (self.stage, self.progress, self.cancel):
            policy = w.sizePolicy()
            policy.setRetainSizeWhenHidden(True)
            w.setSizePolicy(policy)
        # All permanent (right-hand) widgets: temporary messages use the space on the left.
        for w in (self.hover, self.zoom, self.stage, self.progress, self.cancel, self.provider, self.timings):
            self.addPermanentWidget(w)
        self.set_running(False)

    # -- messages (QStatusBar's API, drawn by our label) ------------------------------------
    def showMessage(self, text: str, timeout: int = 0) -> None:  # noqa: N802 (Qt's name)
        self._message_text = text
        self._show_message()
        self.message.setToolTip(text)
        if timeout > 0:
            self._message_timer.start(timeout)
        else:
            self._message_timer.stop()

    def clearMessage(self) -> None:  # noqa: N802
        self._message_text = ""
        self.message.setText("")
        self.message.setToolTip("")

    def currentMessage(self) -> str:  # noqa: N802
        return self._message_text

    def _show_message(self) -> None:
        width = max(self.message.width(), 80)
        self.message.setText(self.message.fontMetrics().elidedText(self._message_text,
                                                                   Qt.TextElideMode.ElideRight, width - 4))

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._show_message()

    def set_hover(self, text: str) -> None:
        _set_elided(self.hover, text, HOVER_WIDTH)

    def set_running(self, running: bool, text: str = "") -> None:
        for w in (self.stage, self.progress, self.cancel):
            w.setVisible(running)
        _set_elided(self.stage, text, STAGE_WIDTH)
        if running:
            self.progress.setValue(0)

    def set_progress(self, stage: str, fraction: float) -> None:
        _set_elided(self.stage, f"{stage}…", STAGE_WIDTH)
        self.progress.setValue(int(round(1000 * min(max(fraction, 0.0), 1.0))))

    def set_zoom(self, scale: float) -> None:
        self.zoom.setText(f"{scale * 100:.0f} %" if scale >= 0.1 else f"{scale * 100:.1f} %")

    def set_provider(self, note: str) -> None:
        _set_elided(self.provider, note, PROVIDER_WIDTH)

    def set_timings(self, timings: dict[str, float]) -> None:
        short, full = format_timings(timings)
        _set_elided(self.timings, short, TIMINGS_WIDTH)
        self.timings.setToolTip(full)
