"""Edit › Preferences: what new photos get (number of layers, solver, working size) and
what a PNG stack export writes. Stored in the studio's settings; the solver and working
size are the Segment menu's choices, so changing them re-runs an open photo."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QSpinBox

from . import settings as app_settings
from .menus import SOLVERS, WORKING_SIZES

if TYPE_CHECKING:
    from .main_window import MainWindow


class PreferencesDialog(QDialog):
    def __init__(self, window: "MainWindow"):
        super().__init__(window)
        self.window_ = window
        self.setWindowTitle("Preferences")
        p = window.doc.settings
        self.layers = QSpinBox()
        self.layers.setRange(2, 12)
        self.layers.setValue(app_settings.default_layers() or p.layers)
        self.layers.setToolTip("How many soft layers a newly opened photo is split into")
        self.mode = QComboBox()
        for title, mode in SOLVERS:
            self.mode.addItem(title, mode)
        self.mode.setCurrentIndex(max(0, self.mode.findData(p.mode)))
        self.size = QComboBox()
        for title, pixels in WORKING_SIZES:
            self.size.addItem(title, pixels)
        if self.size.findData(p.working_pixels) < 0:
            self.size.addItem(f"{p.working_pixels / 1e6:.2f} MP", p.working_pixels)
        self.size.setCurrentIndex(self.size.findData(p.working_pixels))
        self.alpha_files = QCheckBox("Write 16-bit alpha files (NN_name_alpha.png) with PNG stacks")
        self.alpha_files.setChecked(app_settings.export_alpha_files())
        form = QFormLayout(self)
        form.addRow("Layers for new photos", self.layers)
        form.addRow("Solver", self.mode)
        form.addRow("Working size", self.size)
        form.addRow("Export", self.alpha_files)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def accept(self) -> None:
        w = self.window_
        app_settings.save_default_layers(self.layers.value())
        app_settings.save_export_alpha_files(self.alpha_files.isChecked())
        mode, pixels = self.mode.currentData(), int(self.size.currentData())
        p = w.doc.settings
        if mode != p.mode or pixels != p.working_pixels:
            w.set_quality(mode=mode, working_pixels=pixels)
        if w.doc.image is None:   # no photo yet: the next one gets the new count
            from dataclasses import replace

            w.doc.request(replace(w.doc.settings, layers=self.layers.value()))
        super().accept()
