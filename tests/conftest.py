"""Shared test setup. Qt runs on the offscreen platform (set before Qt is imported),
and GUI tests get their own settings folder (``isolated_settings``)."""

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_LOGGING_RULES", "qt.qpa.*=false")

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import pytest  # noqa: E402


@pytest.fixture
def isolated_settings(tmp_path, monkeypatch):
    """QSettings and QStandardPaths point into this test's tmp folder."""
    from PySide6.QtCore import QSettings, QStandardPaths

    QStandardPaths.setTestModeEnabled(True)
    folder = tmp_path / "settings"
    folder.mkdir()
    for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
        QSettings.setPath(QSettings.Format.IniFormat, scope, str(folder))
    monkeypatch.setenv("HOME", str(tmp_path))
    yield folder


# -- the studio (GUI tests) ------------------------------------------------------------

class _Gate:
    """Lets a test hold the segmentation mid-run (see ``GatedSegmenter``)."""

    def __init__(self):
        import threading

        self.open = threading.Event()
        self.open.set()
        self.entered = threading.Event()
        self.runs = 0

    def close(self):
        self.open.clear()
        self.entered.clear()


def _gated_segmenter_class(gate: "_Gate"):
    import time

    from sss_studio.segmentation.cancel import Cancelled
    from sss_studio.segmentation.pipeline import Segmenter

    class GatedSegmenter(Segmenter):
        """A real Segmenter that, while the gate is closed, waits (honouring cancel)
        after reporting a first stage: a run that is "mid-way" for as long as a test needs."""

        def run(self, params=None, progress=None, cancel=None, preview=None):
            gate.runs += 1
            if not gate.open.is_set():
                if progress is not None:
                    progress("eigenvectors", 0.3)
                gate.entered.set()
                while not gate.open.is_set():
                    if cancel is not None and cancel():
                        raise Cancelled("cancelled")
                    time.sleep(0.005)
            return super().run(params, progress, cancel, preview)

    return GatedSegmenter


@pytest.fixture
def studio_scene(tmp_path):
    """A 48×64 synthetic photo saved as PNG, its features and true alphas."""
    import numpy as np
    from PIL import Image

    from synthetic import soft_regions

    image, features, alphas = soft_regions(48, 64)
    path = tmp_path / "scene.png"
    Image.fromarray((image * 255 + 0.5).astype(np.uint8)).save(path)
    return path, features, alphas


@pytest.fixture
def studio(qtbot, tmp_path, isolated_settings, studio_scene):
    """Factory: a shown MainWindow on fast params with synthetic features (and a gate)."""
    import cv2

    from synthetic import quick_params

    from PySide6.QtWidgets import QMessageBox

    from sss_studio.segmentation.sources import FeatureSource
    from sss_studio.gui.main_window import MainWindow

    made = []

    def make(features=True, gate=None, params=None, **source_kwargs):
        path, feats, _ = studio_scene
        gate = gate or _Gate()

        def features_fn(image):
            if image.shape[:2] == feats.shape[:2]:
                return feats
            return cv2.resize(feats, (image.shape[1], image.shape[0]))

        kwargs = dict(segmenter_factory=_gated_segmenter_class(gate))
        if features:
            kwargs["features_fn"] = features_fn
        kwargs.update(source_kwargs)
        w = MainWindow(params or quick_params(layers=3), FeatureSource(**kwargs))
        w.show_dialogs = False
        w.prompts = []

        def ask():
            w.prompts.append("unsaved")
            return QMessageBox.StandardButton.Discard

        w.ask_unsaved = ask
        qtbot.addWidget(w)
        w.show()
        qtbot.waitExposed(w)
        w.gate = gate
        made.append(w)
        return w

    yield make
    import gc

    from PySide6.QtCore import QCoreApplication, QEvent

    for w in made:
        w.worker.shutdown()
        w.doc.undo_stack.setClean()
        w.close()
        w.deleteLater()
    # Delete the windows while the QApplication is alive: left to the garbage
    # collector at interpreter exit, Qt objects can outlive the application (crash).
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    made.clear()
    gc.collect()
