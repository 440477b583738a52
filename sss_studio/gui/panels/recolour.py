"""Recolour controls for the selected layers: hue shift, saturation, brightness and a
tint colour. Each slider drag is one undo step; the maths is in layers.recolour."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QColorDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from ...layers.recolour import Recolour
from ..document import Document


class RecolourPanel(QWidget):
    def __init__(self, doc: Document, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.doc = doc
        self._loading = False
        self._tint = QColor(255, 160, 60)
        self.hue = self._slider(-180, 180, "Hue shift in degrees")
        self.saturation = self._slider(0, 200, "Saturation, % of the original")
        self.brightness = self._slider(0, 200, "Brightness, % of the original")
        self.tint_strength = self._slider(0, 100, "How far the layer is pulled to the tint colour, %")
        self.tint_button = QPushButton()
        self.tint_button.setToolTip("Pick the tint colour")
        self.tint_button.setFixedWidth(48)
        self.tint_button.clicked.connect(self.pick_tint)
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("Remove the recolour of the selected layers")
        self.reset_button.clicked.connect(self.reset)
        self.target = QLabel("Select a layer to recolour it.")
        self.target.setObjectName("hint")
        self.target.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Hue", self._with_label(self.hue, "°"))
        form.addRow("Saturation", self._with_label(self.saturation, " %"))
        form.addRow("Brightness", self._with_label(self.brightness, " %"))
        tint_row = QHBoxLayout()
        tint_row.addWidget(self.tint_button)
        tint_row.addWidget(self._with_label(self.tint_strength, " %"), 1)
        form.addRow("Tint", tint_row)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.target)
        layout.addLayout(form)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.reset_button)
        layout.addLayout(bottom)
        layout.addStretch(1)
        # Coalesce slider ticks: one stack update per event-loop pass.
        self._apply_timer = QTimer(self)
        self._apply_timer.setSingleShot(True)
        self._apply_timer.setInterval(0)
        self._apply_timer.timeout.connect(self.apply)
        doc.selection_changed.connect(self.load)
        doc.changed.connect(self.load)
        self._paint_tint_button()
        self.load()

    def _slider(self, lo: int, hi: int, tip: str) -> QSlider:
        s = QSlider(Qt.Orientation.Horizontal)
        s.setRange(lo, hi)
        s.setToolTip(tip)
        s.valueChanged.connect(self._changed)
        s.sliderReleased.connect(self.doc.new_recolour_session)
        return s

    def _with_label(self, slider: QSlider, unit: str) -> QWidget:
        w = QWidget()
        lab = QLabel()
        lab.setMinimumWidth(44)
        lab.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        slider.valueChanged.connect(lambda v: lab.setText(f"{v}{unit}"))
        lab.setText(f"{slider.value()}{unit}")
        h = QHBoxLayout(w)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(slider, 1)
        h.addWidget(lab)
        return w

    def _paint_tint_button(self) -> None:
        self.tint_button.setStyleSheet(f"background-color: {self._tint.name()}; border: 1px solid #888;")

    # -- document → controls ----------------------------------------------------------
    def load(self) -> None:
        stack = self.doc.stack
        sel = [i for i in self.doc.selection if stack is not None and 0 <= i < len(stack)]
        enabled = stack is not None and bool(sel)
        self.setEnabled(enabled)
        if not enabled:
            self.target.setText("Select a layer to recolour it (click it on the photo).")
            self._show(Recolour())
            return
        assert stack is not None
        names = ", ".join(stack.layer(i).name for i in sel)
        self.target.setText(f"Recolouring: {names}")
        self._show(stack.layer(sel[0]).recolour)

    def _show(self, rc: Recolour) -> None:
        self._loading = True
        try:
            self.hue.setValue(int(round(rc.hue)))
            self.saturation.setValue(int(round(rc.saturation * 100)))
            self.brightness.setValue(int(round(rc.brightness * 100)))
            self.tint_strength.setValue(int(round(rc.tint_strength * 100)))
            if rc.tint is not None:
                self._tint = QColor.fromRgbF(*rc.tint)
                self._paint_tint_button()
        finally:
            self._loading = False

    # -- controls → document ----------------------------------------------------------
    def recolour(self) -> Recolour:
        return Recolour(
            hue=float(self.hue.value()),
            saturation=self.saturation.value() / 100.0,
            brightness=self.brightness.value() / 100.0,
            tint=(self._tint.redF(), self._tint.greenF(), self._tint.blueF()) if self.tint_strength.value() else None,
            tint_strength=self.tint_strength.value() / 100.0,
        )

    def _changed(self, *_: object) -> None:
        if not self._loading:
            self._apply_timer.start()

    def apply(self) -> None:
        self._apply_timer.stop()
        self.doc.set_recolour(self.doc.selection, self.recolour())

    def pick_tint(self) -> None:
        c = QColorDialog.getColor(self._tint, self, "Tint colour")
        if c.isValid():
            self.set_tint(c)

    def set_tint(self, colour: QColor) -> None:
        self._tint = colour
        self._paint_tint_button()
        if self.tint_strength.value() == 0:
            self._loading = True
            self.tint_strength.setValue(50)
            self._loading = False
        self.doc.new_recolour_session()
        self.apply()
        self.doc.new_recolour_session()

    def reset(self) -> None:
        self.doc.new_recolour_session()
        self.doc.set_recolour(self.doc.selection, Recolour())
        self.doc.new_recolour_session()
