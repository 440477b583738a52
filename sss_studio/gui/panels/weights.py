"""Affinity-weight sliders and the number of layers. They show the document's settings
and, once they have rested, write the new ones to it as a request (a re-run from the
affinity stage); the panel keeps no parameters of its own and runs nothing itself."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget

from ...segmentation.params import AffinityWeights, SegmenterParams
from ..document import Document

DEBOUNCE_MS = 600
STEPS = 1000


@dataclass(frozen=True)
class SliderSpec:
    field: str                      # AffinityWeights field
    label: str
    lo: float
    hi: float
    log: bool
    tip: str

    def to_slider(self, value: float) -> int:
        if self.log:
            t = (math.log10(max(value, self.lo)) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        else:
            t = (value - self.lo) / (self.hi - self.lo)
        return int(round(min(max(t, 0.0), 1.0) * STEPS))

    def from_slider(self, pos: int) -> float:
        t = pos / STEPS
        if self.log:
            v = 10 ** (math.log10(self.lo) + t * (math.log10(self.hi) - math.log10(self.lo)))
            return float(f"{v:.3g}")
        return float(f"{self.lo + t * (self.hi - self.lo):.3g}")


SPECS = (
    SliderSpec("semantic", "Semantic weight", 1e-4, 1.0, True,
               "How strongly the neural features pull pixels of the same object together"),
    SliderSpec("colour", "Colour weight", 1e-4, 1.0, True,
               "How strongly similar colours far apart are tied into one layer"),
    SliderSpec("semantic_cutoff", "Semantic cut-off", 0.01, 0.5, False,
               "Feature distance where attraction turns into repulsion (erf cut-off)"),
    SliderSpec("colour_cutoff", "Colour cut-off", 0.005, 0.3, False,
               "Colour distance where the colour affinity halves (erf cut-off)"),
)


class WeightsPanel(QWidget):
    """Calls ``doc.request(params)`` once the sliders have rested for DEBOUNCE_MS."""

    def __init__(self, doc: Document, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.doc = doc
        self._loading = False
        self.sliders: dict[str, QSlider] = {}
        self._labels: dict[str, QLabel] = {}
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for spec in SPECS:
            form.addRow(spec.label, self._row(spec.field, 0, STEPS, spec.tip))
        form.addRow("Layers", self._row("layers", 2, 12, "Number of soft layers (re-runs only the grouping)"))
        self.reset_button = QPushButton("Defaults")
        self.reset_button.setToolTip("Put the sliders back to the default weights")
        self.reset_button.clicked.connect(self.reset_to_defaults)
        self.status = QLabel("")
        self.status.setObjectName("hint")
        self.status.setWordWrap(True)
        # Room for two lines always: the sliders above do not move when "Running…" appears.
        self.status.setMinimumHeight(2 * self.status.fontMetrics().lineSpacing() + 4)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.reset_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addLayout(bottom)
        layout.addStretch(1)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self._emit)
        doc.params_changed.connect(self.sync)
        self.sync()

    def _row(self, name: str, lo: int, hi: int, tip: str) -> QWidget:
        w = QWidget()
        s = QSlider(Qt.Orientation.Horizontal)
        s.setRange(lo, hi)
        s.setToolTip(tip)
        s.setObjectName(f"slider_{name}")
        lab = QLabel()
        lab.setMinimumWidth(48)
        lab.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        s.valueChanged.connect(lambda _v, n=name: self._moved(n))
        h = QHBoxLayout(w)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(s, 1)
        h.addWidget(lab)
        self.sliders[name] = s
        self._labels[name] = lab
        return w

    # -- values -----------------------------------------------------------------------
    def sync(self) -> None:
        """Show the document's settings without asking for a run."""
        params = self.doc.settings
        self._loading = True
        try:
            for spec in SPECS:
                self.sliders[spec.field].setValue(spec.to_slider(getattr(params.weights, spec.field)))
            self.sliders["layers"].setValue(params.layers)
        finally:
            self._loading = False
        self._update_labels()
        self._timer.stop()

    def params(self) -> SegmenterParams:
        """The document's settings with the slider values."""
        base_params = self.doc.settings
        values = {spec.field: spec.from_slider(self.sliders[spec.field].value()) for spec in SPECS}
        # A slider left where the base value sits keeps the exact base value.
        for spec in SPECS:
            base = getattr(base_params.weights, spec.field)
            if spec.to_slider(base) == self.sliders[spec.field].value():
                values[spec.field] = base
        weights: AffinityWeights = replace(base_params.weights, **values)
        return replace(base_params, weights=weights, layers=int(self.sliders["layers"].value()))

    def set_value(self, name: str, value: float) -> None:
        """Move one slider to ``value`` (in parameter units), as a user would."""
        if name == "layers":
            self.sliders[name].setValue(int(value))
        else:
            spec = next(s for s in SPECS if s.field == name)
            self.sliders[name].setValue(spec.to_slider(value))

    def reset_to_defaults(self) -> None:
        d = AffinityWeights()
        for spec in SPECS:
            self.set_value(spec.field, getattr(d, spec.field))
        self.sliders["layers"].setValue(SegmenterParams().layers)

    def _moved(self, _name: str) -> None:
        self._update_labels()
        if not self._loading:
            self._timer.start()

    def _update_labels(self) -> None:
        p = self.params()
        for spec in SPECS:
            self._labels[spec.field].setText(f"{getattr(p.weights, spec.field):.3g}")
        self._labels["layers"].setText(str(p.layers))

    def flush(self) -> None:
        """Emit now if a request is waiting for the debounce (tests, Enter)."""
        if self._timer.isActive():
            self._timer.stop()
            self._emit()

    def _emit(self) -> None:
        p = self.params()
        if p != self.doc.settings:
            self.doc.request(p)
