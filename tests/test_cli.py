"""The command line as a user meets it: real processes, real files."""

import os
import sys

import numpy as np
import pytest
from PIL import Image
from psd_tools import PSDImage

from cli_helpers import run_cli, write_small_photo
from synthetic import best_match_errors


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    d = tmp_path_factory.mktemp("photo")
    return d, write_small_photo(d)


def assert_one_line_error(proc, pattern):
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("sss-studio: error:")
    assert pattern in lines[0], lines[0]
    assert "Traceback" not in proc.stderr


def test_segment_writes_layers_and_psd(photo, tmp_path):
    d, truth = photo
    out, psd = tmp_path / "layers", tmp_path / "x.psd"
    proc = run_cli("segment", d / "photo.png", "--features", d / "feats.npy", "--out", out,
                   "--psd", psd, "--layers", "3", "--quiet")
    assert proc.returncode == 0, proc.stderr
    for k in (1, 2, 3):
        assert (out / f"0{k}_layer_{k}.png").exists() and (out / f"0{k}_layer_{k}_alpha.png").exists()
    assert (out / "preview.png").exists()
    with np.load(out / "layers.npz") as z:
        alphas = z["alphas"]
    assert alphas.shape == (3, 40, 56)
    assert np.abs(alphas.sum(0) - 1).max() <= 1e-3
    assert max(best_match_errors(alphas, truth)) <= 0.06
    layers = list(PSDImage.open(psd))
    assert [l.name for l in layers] == ["Photo", "Layer 1", "Layer 2", "Layer 3"]


def test_segment_accepts_reduced_features_as_an_image(photo, tmp_path):
    d, _ = photo
    proc = run_cli("segment", d / "photo.png", "--features", d / "feats.png", "--out", tmp_path / "o",
                   "--layers", "3", "--seed", "4")
    assert proc.returncode == 0, proc.stderr
    assert "3 layers written" in proc.stderr
    assert "eigenvectors" in proc.stderr  # progress lines name the stages


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "setup, pattern",
    [
        (lambda d, t: t / "missing.jpg", "no such file"),
        (lambda d, t: _write(t / "notes.jpg", b"hello"), "not an image"),
        (lambda d, t: _write(t / "empty.png", b""), "empty"),
        (lambda d, t: _write(t / "cut.png", (d / "photo.png").read_bytes()[:300]), "truncated"),
    ],
    ids=["missing", "not-an-image", "zero-bytes", "truncated"],
)
def test_bad_photos(photo, tmp_path, setup, pattern):
    d, _ = photo
    path = setup(d, tmp_path)
    proc = run_cli("segment", path, "--features", d / "feats.npy", "--out", tmp_path / "o")
    assert_one_line_error(proc, pattern)


def test_features_of_the_wrong_size(photo, tmp_path):
    d, _ = photo
    np.save(tmp_path / "small.npy", np.zeros((10, 10, 8), np.float32))
    proc = run_cli("segment", d / "photo.png", "--features", tmp_path / "small.npy", "--out", tmp_path / "o")
    assert_one_line_error(proc, "sizes must match")


def test_features_file_that_is_not_an_array(photo, tmp_path):
    d, _ = photo
    (tmp_path / "f.npy").write_text("garbage")
    proc = run_cli("segment", d / "photo.png", "--features", tmp_path / "f.npy", "--out", tmp_path / "o")
    assert_one_line_error(proc, "not a readable .npy")


def test_output_folder_that_cannot_be_created(photo, tmp_path):
    d, _ = photo
    (tmp_path / "afile").write_text("x")
    proc = run_cli("segment", d / "photo.png", "--features", d / "feats.npy", "--out", tmp_path / "afile" / "sub")
    assert_one_line_error(proc, "cannot create folder")
    proc = run_cli("segment", d / "photo.png", "--features", d / "feats.npy", "--out", tmp_path / "afile")
    assert_one_line_error(proc, "a file of that name exists")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_output_folder(photo, tmp_path):
    d, _ = photo
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        proc = run_cli("segment", d / "photo.png", "--features", d / "feats.npy", "--out", ro)
        assert_one_line_error(proc, "permission denied")
    finally:
        ro.chmod(0o700)


def test_a_wrong_model_file(photo, tmp_path):
    d, _ = photo
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a model")
    proc = run_cli("segment", d / "photo.png", "--model", bad, "--out", tmp_path / "o")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_missing_model_file(photo, tmp_path):
    d, _ = photo
    proc = run_cli("segment", d / "photo.png", "--model", tmp_path / "nope.onnx", "--out", tmp_path / "o")
    assert_one_line_error(proc, "not found")


@pytest.mark.parametrize("command", ["segment", "gui"])
def test_a_working_size_that_is_not_positive_is_refused(photo, tmp_path, command):
    d, _ = photo
    extra = ["--out", tmp_path / "o", "--features", d / "feats.npy"] if command == "segment" else []
    proc = run_cli(command, d / "photo.png", "--working-size", "0", *extra,
                   env_extra={"QT_QPA_PLATFORM": "offscreen"})
    assert_one_line_error(proc, "--working-size must be a positive number")
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="freedesktop.org desktops")
def test_install_desktop_adds_the_menu_entry_icon_and_project_type(tmp_path):
    import configparser

    proc = run_cli("install-desktop", env_extra={"XDG_DATA_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(tmp_path / "applications" / "sss-studio.desktop", encoding="utf-8")
    d = entry["Desktop Entry"]
    assert d["Type"] == "Application" and d["Icon"] == "sss-studio" and d["Exec"].endswith(" %f")
    assert "application/x-sss-studio-project" in d["MimeType"].split(";")
    icon = Image.open(tmp_path / "icons" / "hicolor" / "256x256" / "apps" / "sss-studio.png")
    assert icon.size == (256, 256)
    mime = (tmp_path / "mime" / "packages" / "sss-studio.xml").read_text(encoding="utf-8")
    assert 'glob pattern="*.sssproj"' in mime and "application/x-sss-studio-project" in mime


def test_version():
    from sss_studio import __version__

    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"sss-studio {__version__}"
