"""run_app: the entry point behind ``sss-studio gui photo --screenshot out.png``."""

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def quick_defaults(monkeypatch):
    from synthetic import quick_params

    from sss_studio.segmentation.pipeline import SegmenterParams

    # The studio starts from the default mode's preset; make it the small-photo preset.
    monkeypatch.setattr(SegmenterParams, "for_mode", classmethod(lambda cls, mode, **kw: quick_params(layers=3)))


def test_screenshot_mode_segments_and_saves(qapp, isolated_settings, quick_defaults, studio_scene, tmp_path):
    from sss_studio.gui.app import run_app

    photo, features, _ = studio_scene
    feats = tmp_path / "features.npy"
    np.save(feats, features)
    out = tmp_path / "shots" / "window.png"
    code = run_app(photo=str(photo), screenshot=str(out), features=str(feats))
    assert code == 0
    im = np.asarray(Image.open(out).convert("RGB"))
    assert im.shape[0] > 400 and im.shape[1] > 600
    assert im.std() > 10  # a real window, not a blank grab


def test_screenshot_mode_reports_a_bad_photo(qapp, isolated_settings, quick_defaults, tmp_path, capsys):
    from sss_studio.gui.app import run_app

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    out = tmp_path / "window.png"
    assert run_app(photo=str(bad), screenshot=str(out)) == 1
    assert out.is_file()  # the window is still grabbed, showing the error in the status bar
    assert "bad.png" in capsys.readouterr().err
