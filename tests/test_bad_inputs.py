"""Hostile and unusual input, as a user meets it (real processes, the bundled model,
the default fast mode): a correct result or one line and exit 1, never a traceback,
never a hang; exports that are all or nothing."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_helpers import run_cli, write_small_photo

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


# -- the command line: one line and exit 1, never a traceback ------------------------------

def _one_line(proc, pattern):
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if not line.startswith("[")]  # progress lines
    assert len(lines) == 1 and lines[0].startswith("sss-studio: error:"), proc.stderr[-2000:]
    assert pattern in lines[0], lines[0]


@pytest.fixture(scope="module")
def small_photo(tmp_path_factory):
    d = tmp_path_factory.mktemp("small")
    write_small_photo(d)
    return d


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (1, 400), (400, 1), (5, 300)])
def test_photos_too_small_to_split_get_one_line(tmp_path, size):
    h, w = size
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(tmp_path / "tiny.png")
    proc = run_cli("segment", tmp_path / "tiny.png", "--out", tmp_path / "o")
    _one_line(proc, "too small")
    assert not (tmp_path / "o").exists()  # nothing created for a rejected photo


@pytest.mark.parametrize("args, pattern", [
    (["--working-size", "nan"], "--working-size must be a positive number"),
    (["--working-size", "inf"], "--working-size must be a positive number"),
    (["--seed", "-1"], "--seed must be 0 or more"),
])
def test_numbers_that_are_not_usable(small_photo, tmp_path, args, pattern):
    proc = run_cli("segment", small_photo / "photo.png", "--features", small_photo / "feats.npy",
                "--out", tmp_path / "o", *args)
    _one_line(proc, pattern)
    assert not (tmp_path / "o").exists()


def test_features_with_no_channels(small_photo, tmp_path):
    np.save(tmp_path / "empty.npy", np.zeros((40, 56, 0), np.float32))
    proc = run_cli("segment", small_photo / "photo.png", "--features", tmp_path / "empty.npy", "--out", tmp_path / "o")
    _one_line(proc, "D ≥ 1")


def test_a_model_that_returns_nan(small_photo, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    # A contract-following model (image in, 8-D embedding out) whose output is NaN.
    inp = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "h", "w"])
    out = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 8, "h", "w"])
    nan = helper.make_tensor("nan", TensorProto.FLOAT, [1, 8, 1, 1], [float("nan")] * 8)
    node = helper.make_node("Mul", ["image_mean", "nan"], ["embedding"])
    mean = helper.make_node("ReduceMean", ["image"], ["image_mean"], axes=[1], keepdims=1)
    graph = helper.make_graph([mean, node], "nan", [inp], [out], initializer=[nan])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "nan.onnx")
    proc = run_cli("segment", small_photo / "photo.png", "--model", tmp_path / "nan.onnx", "--out", tmp_path / "o")
    _one_line(proc, "NaN")


def test_more_layers_than_the_photo_has_are_said(small_photo, tmp_path):
    proc = run_cli("segment", small_photo / "photo.png", "--features", small_photo / "feats.npy",
                "--out", tmp_path / "o", "-k", "60")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "60 layers asked for; this photo gives" in proc.stderr


def test_a_read_only_psd_is_refused_unless_forced(small_photo, tmp_path):
    psd = tmp_path / "keep.psd"
    psd.write_bytes(b"old")
    psd.chmod(0o444)
    args = ("segment", small_photo / "photo.png", "--features", small_photo / "feats.npy", "--psd", psd, "-q")
    if os.geteuid() != 0:  # root may write anything: the refusal is checked by access(), as an editor does
        _one_line(run_cli(*args), "read-only")
        assert psd.read_bytes() == b"old"
    proc = run_cli(*args, "--force")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert psd.read_bytes()[:4] == b"8BPS"


def test_a_psd_path_that_is_a_folder(small_photo, tmp_path):
    (tmp_path / "x.psd").mkdir()
    proc = run_cli("segment", small_photo / "photo.png", "--features", small_photo / "feats.npy", "--psd", tmp_path / "x.psd")
    _one_line(proc, "it is a folder")


def test_float_tiff_and_damaged_png(tmp_path):
    import cv2

    from sss_studio.io.image import ImageLoadError, read_image

    a = np.random.default_rng(0).random((30, 40, 3)).astype(np.float32)
    cv2.imwrite(str(tmp_path / "f.tif"), a)
    img, info = read_image(tmp_path / "f.tif")
    assert img.shape == (30, 40, 3) and np.allclose(img, a[:, :, ::-1])
    Image.fromarray((a * 255).astype(np.uint8)).save(tmp_path / "ok.png")
    data = bytearray((tmp_path / "ok.png").read_bytes())
    data[40] ^= 0xFF
    (tmp_path / "bad.png").write_bytes(bytes(data))
    proc = run_cli("segment", tmp_path / "bad.png", "--out", tmp_path / "o")
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr  # no stray libpng line
    with pytest.raises(ImageLoadError):
        read_image(tmp_path / "bad.png")


def test_the_photo_size_limit_is_ours_not_pillows(tmp_path):
    from sss_studio.io.image import ImageLoadError, read_image

    Image.fromarray(np.zeros((100, 100), np.uint8)).save(tmp_path / "p.png")
    with pytest.raises(ImageLoadError, match="100×100 is 0 megapixels"):
        read_image(tmp_path / "p.png", max_pixels=5_000)
    assert read_image(tmp_path / "p.png", max_pixels=20_000)[0].shape == (100, 100, 3)
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's own, restored
    big = tmp_path / "big.png"
    Image.new("1", (10_200, 10_000)).save(big)   # 102 MP: above Pillow's limit, below ours
    _, info = read_image(big)
    assert (info.width, info.height) == (10_200, 10_000)


def test_a_screenshot_that_cannot_be_written_exits_instead_of_hanging(small_photo, tmp_path):
    (tmp_path / "afile").write_text("x")
    proc = run_cli("gui", small_photo / "photo.png", "--screenshot", tmp_path / "afile" / "shot.png",
                env_extra={"QT_QPA_PLATFORM": "offscreen"}, timeout=120)
    _one_line(proc, "cannot write the screenshot")


def test_the_studio_refuses_features_of_another_size(small_photo, tmp_path):
    np.save(tmp_path / "small.npy", np.zeros((10, 10, 3), np.float32))
    proc = run_cli("gui", small_photo / "photo.png", "--features", tmp_path / "small.npy", "--screenshot",
                tmp_path / "s.png", env_extra={"QT_QPA_PLATFORM": "offscreen"}, timeout=120)
    _one_line(proc, "sizes must match")


# -- exports: all or nothing -------------------------------------------------------------

def _exported(tmp_path, seed: int, layers: int):
    """A random photo and layers, already exported once to tmp_path/layers."""
    from sss_studio.io.export import write_png_stack

    rng = np.random.default_rng(seed)
    image = rng.random((20, 30, 3)).astype(np.float32)
    a = rng.random((layers, 20, 30)).astype(np.float32)
    a /= a.sum(0)
    out = tmp_path / "layers"
    write_png_stack(out, image, a)
    return image, a, out


def test_an_interrupted_export_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    import sss_studio.io.export as E

    image, a, out = _exported(tmp_path, 0, 4)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls = [0]
    real = E._save_png

    def interrupted(path, arr, metadata=E.PhotoMetadata()):
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt
        real(path, arr, metadata)

    monkeypatch.setattr(E, "_save_png", interrupted)
    with pytest.raises(KeyboardInterrupt):
        E.write_png_stack(out, image, a[::-1].copy())
    monkeypatch.setattr(E, "_save_png", real)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before   # the old export, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layers"]    # no temporary folder left
    # Fewer layers into the same folder: the stale ones go, a user's own file stays.
    (out / "notes.txt").write_text("mine")
    E.write_png_stack(out, image, (a[:2] / a[:2].sum(0)).astype(np.float32))
    assert sorted(p.name for p in out.iterdir()) == [
        "01_layer_1.png", "01_layer_1_alpha.png", "02_layer_2.png", "02_layer_2_alpha.png", "layers.npz",
        "notes.txt", "preview.png"]


def test_a_full_disk_leaves_the_previous_export(tmp_path, monkeypatch):
    import sss_studio.io.export as E

    image, a, out = _exported(tmp_path, 1, 3)
    before = sorted(p.name for p in out.iterdir())

    def full(path, arr):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(E, "_save_cv_png", full)
    with pytest.raises(E.ExportError, match="No space left"):
        E.write_png_stack(out, image, a)
    assert sorted(p.name for p in out.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layers"]


def test_temporary_files_of_killed_runs_are_removed(tmp_path):
    from sss_studio.io.export import atomic_write

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".out.psd.{dead}.abc123.part"
    stale.write_bytes(b"half")
    mine = tmp_path / f".out.psd.{os.getpid()}.zzz.part"   # a live writer's: kept
    mine.write_bytes(b"busy")
    atomic_write(tmp_path / "out.psd", lambda t: Path(t).write_bytes(b"new"))
    assert not stale.exists() and mine.exists() and (tmp_path / "out.psd").read_bytes() == b"new"


def test_sigterm_stops_a_run_like_ctrl_c(tmp_path):
    import signal
    import time

    from synthetic import soft_regions

    image, feats, _ = soft_regions(200, 300)   # big enough that the reference run is still going
    Image.fromarray((image * 255).round().astype(np.uint8)).save(tmp_path / "photo.png")
    np.save(tmp_path / "feats.npy", feats)
    proc = subprocess.Popen([sys.executable, "-m", "sss_studio", "segment", str(tmp_path / "photo.png"),
                             "--features", str(tmp_path / "feats.npy"), "--out", str(tmp_path / "o"),
                             "--mode", "reference"],
                            stderr=subprocess.PIPE, text=True)
    # Wait for the run to be under way, then terminate it.
    deadline = time.time() + 120
    seen = ""
    while time.time() < deadline and "superpixels" not in seen:
        seen += proc.stderr.readline()
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 143, seen + rest
    assert "terminated" in rest and "Traceback" not in rest
    assert not (tmp_path / "o").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
