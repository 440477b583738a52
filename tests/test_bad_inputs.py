"""Photos that are valid but unusual, through the command line as a user runs it (real
processes, the bundled model, the default fast mode): a correct result or one line."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "samples"


def _segment(photo: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sss_studio", "segment", str(photo), "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=600)


def _grey(name: str) -> np.ndarray:
    return np.asarray(Image.open(SAMPLES / f"{name}.png").convert("L"))


@pytest.mark.parametrize("case", ["grey jpeg", "grey png 16-bit", "rgb copy of a grey photo", "all black",
                                  "mostly transparent"])
def test_black_and_white_and_empty_photos_segment(tmp_path, case):
    # Where R = G = B the fast solver's coarse eigenproblem has tightly clustered
    # eigenvalues; LAPACK's fastest driver gave up there ("Internal Error").
    path = tmp_path / "photo.png"
    if case == "grey jpeg":
        path = tmp_path / "photo.jpg"
        Image.fromarray(_grey("coffee")).save(path, quality=92)
    elif case == "grey png 16-bit":
        Image.fromarray(_grey("astronaut").astype(np.uint16) * 257).save(path)
    elif case == "rgb copy of a grey photo":
        Image.fromarray(np.repeat(_grey("chelsea")[:, :, None], 3, axis=2)).save(path)
    elif case == "all black":
        Image.fromarray(np.zeros((300, 400), np.uint8)).save(path)
    else:
        rgba = np.zeros((300, 400, 4), np.uint8)
        rgba[100:130, 100:140] = (200, 40, 40, 255)
        Image.fromarray(rgba, "RGBA").save(path)
    proc = _segment(path, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    with np.load(tmp_path / "out" / "layers.npz") as z:
        alphas = z["alphas"]
    h, w = np.asarray(Image.open(path)).shape[:2]
    assert alphas.shape == (5, h, w)
    assert np.isfinite(alphas).all()
    assert np.abs(alphas.sum(axis=0) - 1.0).max() <= 1e-3
