"""Batch segmentation from the command line (`sss-studio segment FOLDER --out …`): one
folder per photo, an error line for a bad one, resumable, the same layers with --jobs 2
and on a Dask cluster."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_helpers import run_cli
from sss_studio.batch import expand_inputs, output_names
from synthetic import soft_regions


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Three small synthetic photos and one corrupt file in a folder."""
    folder = tmp_path_factory.mktemp("shoot")
    for i in range(3):
        image, _, _ = soft_regions(72, 96, seed=i)
        Image.fromarray((np.roll(image, 8 * i, axis=1) * 255).round().astype(np.uint8)).save(folder / f"p{i}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


def _lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def _alphas(folder: Path) -> np.ndarray:
    with np.load(folder / "layers.npz") as z:
        return z["alphas"]


def assert_same_layers(a: np.ndarray, b: np.ndarray) -> None:
    """The same layers as a user sees them: every pixel in the same layer (after
    matching the layers), and the soft values close. Runs with other BLAS thread counts
    (--jobs 2 gives each worker one thread) round differently, so not bit for bit."""
    from scipy.optimize import linear_sum_assignment

    assert a.shape == b.shape
    la, lb = a.argmax(axis=0).ravel(), b.argmax(axis=0).ravel()
    k = a.shape[0]
    inter = np.zeros((k, k))
    np.add.at(inter, (la, lb), 1)
    rows, cols = linear_sum_assignment(-inter)
    assert inter[rows, cols].sum() / la.size >= 0.97
    assert np.abs(a[rows] - b[cols]).mean() <= 0.02


@pytest.fixture(scope="module")
def first_batch(photos, tmp_path_factory):
    out = tmp_path_factory.mktemp("layers")
    r = run_cli("segment", photos, "--out", out, "--psd", "--json", "--layers", "3")
    return out, r


def test_a_folder_gives_one_output_folder_per_photo_and_an_error_line(first_batch):
    out, r = first_batch
    assert r.returncode == 1, r.stderr          # one photo failed
    recs = {Path(x["path"]).name: x for x in _lines(r.stdout)}
    assert set(recs) == {"p0.png", "p1.png", "p2.png", "broken.jpg"}
    assert recs["broken.jpg"]["status"] == "error" and recs["broken.jpg"]["error"]
    for i in range(3):
        rec = recs[f"p{i}.png"]
        assert rec["status"] == "ok" and len(rec["layers"]) == 3 and rec["seconds"] > 0
        assert (out / f"p{i}" / "layers.npz").is_file() and (out / f"p{i}" / f"p{i}.psd").is_file()
        a = _alphas(out / f"p{i}")
        assert np.abs(a.sum(axis=0) - 1).max() < 1e-3
    assert "3 segmented" in r.stderr and "1 failed" in r.stderr


def test_a_rerun_skips_what_is_done_and_other_settings_redo_it(first_batch, photos, tmp_path):
    import shutil

    out = tmp_path / "layers"
    shutil.copytree(first_batch[0], out)
    before = (out / "p0" / "layers.npz").stat().st_mtime_ns
    r = run_cli("segment", photos, "--out", out, "--psd", "--json", "--layers", "3")
    recs = {Path(x["path"]).name: x["status"] for x in _lines(r.stdout)}
    assert recs == {"p0.png": "skipped", "p1.png": "skipped", "p2.png": "skipped", "broken.jpg": "error"}
    assert (out / "p0" / "layers.npz").stat().st_mtime_ns == before
    # --quiet still names the photo that failed, and nothing else.
    r = run_cli("segment", photos, "--out", out, "--psd", "--layers", "3", "--quiet")
    assert r.returncode == 1 and "broken.jpg" in r.stderr and "p0.png" not in r.stderr
    # Other parameters are not "done".
    r = run_cli("segment", photos / "p0.png", photos / "p1.png", "--out", out, "--psd", "--json", "--layers", "2")
    assert [x["status"] for x in _lines(r.stdout)] == ["ok", "ok"] and r.returncode == 0


def test_two_jobs_give_the_same_layers(first_batch, photos, tmp_path):
    out, _ = first_batch
    r = run_cli("segment", f"{photos}/p*.png", "--out", tmp_path, "--jobs", "2", "--layers", "3", "--quiet")
    assert r.returncode == 0, r.stderr
    for i in range(3):
        assert_same_layers(_alphas(tmp_path / f"p{i}"), _alphas(out / f"p{i}"))


def test_a_dask_cluster_gives_the_same_layers(first_batch, photos, tmp_path, monkeypatch):
    distributed = pytest.importorskip("dask.distributed")
    from sss_studio.cli import main

    out, _ = first_batch
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        code = main(["segment", str(photos / "p1.png"), str(photos / "p2.png"), "--out", str(tmp_path),
                     "--dask", cluster.scheduler_address, "--layers", "3", "--quiet"])
    assert code == 0
    for i in (1, 2):
        assert_same_layers(_alphas(tmp_path / f"p{i}"), _alphas(out / f"p{i}"))


def test_inputs_and_names(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for p in ("a/x.jpg", "b/x.jpg", "a/y.png", "b/notes.txt"):
        (tmp_path / p).write_bytes(b"")
    photos, missing = expand_inputs([str(tmp_path / "a"), str(tmp_path / "*" / "x.jpg"), str(tmp_path / "nope")],
                                    recursive=False)
    assert [p.relative_to(tmp_path).as_posix() for p in photos] == ["a/x.jpg", "a/y.png", "b/x.jpg"]
    assert missing == [str(tmp_path / "nope")]
    assert output_names(photos) == ["x", "y", "b_x"]
    assert [p.name for p in expand_inputs([str(tmp_path)], recursive=True)[0]] == ["x.jpg", "y.png", "x.jpg"]
    # The output folder inside an input folder: its layer PNGs are no photos.
    assert [p.name for p in expand_inputs([str(tmp_path)], recursive=True, exclude=str(tmp_path / "b"))[0]] == [
        "x.jpg", "y.png"]


def test_ctrl_c_stops_a_parallel_batch_leaving_no_half_written_file(photos, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "sss_studio", "segment", str(photos), "--out", str(tmp_path),
                             "--jobs", "2", "--layers", "3", "--quiet", "--force"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (130, 1, 0), err          # 0/1: it finished before the signal
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".part")]
    assert leftovers == []
    for folder in (p for p in tmp_path.iterdir() if p.is_dir()):
        assert (folder / "layers.npz").is_file()        # every folder there is whole
