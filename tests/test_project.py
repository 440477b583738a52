"""Project files: round trip, the photo found beside a moved project, bad files."""

import shutil
import zipfile

import numpy as np
import pytest

from sss_studio.layers import Layer, Recolour
from sss_studio.io.project import ProjectData, ProjectError, load_project, save_project


def _data(tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"not needed by the project layer")
    rng = np.random.default_rng(0)
    a = rng.random((3, 20, 30)).astype(np.float32)
    a /= a.sum(axis=0)
    layers = [
        Layer("sky", (1, 2, 3)),
        Layer("tree", (4, 5, 6), visible=False),
        Layer("ground", (7, 8, 9), recolour=Recolour(hue=30, tint=(1.0, 0.5, 0.0), tint_strength=0.3)),
    ]
    return ProjectData(str(photo), a, layers, {"mode": "fast", "layers": 3, "weights": {"semantic": 0.02}})


def test_round_trip_is_exact(tmp_path):
    data = _data(tmp_path)
    out = save_project(tmp_path / "p.sssproj", data)
    assert out.is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []
    back = load_project(out)
    assert np.array_equal(back.alphas, data.alphas) and back.alphas.dtype == np.float32
    assert back.layers == data.layers
    assert back.settings == data.settings
    assert back.photo_path == str((tmp_path / "photo.png").resolve())


def test_photo_found_beside_a_moved_project(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    data = _data(a)
    save_project(a / "p.sssproj", data)
    shutil.move(str(a), str(b))
    assert load_project(b / "p.sssproj").photo_path == str((b / "photo.png").resolve())
    (b / "photo.png").unlink()
    # Neither beside it nor where it was: the stored absolute path comes back (the studio reports it).
    assert load_project(b / "p.sssproj").photo_path == str((a / "photo.png").resolve())


def test_bad_files(tmp_path):
    with pytest.raises(ProjectError, match="no such project"):
        load_project(tmp_path / "missing.sssproj")
    junk = tmp_path / "junk.sssproj"
    junk.write_bytes(b"hello")
    with pytest.raises(ProjectError, match="not a readable"):
        load_project(junk)
    other = tmp_path / "other.sssproj"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("project.json", '{"format": "something else"}')
        z.writestr("alphas.npy", b"")
    with pytest.raises(ProjectError):
        load_project(other)


def test_unwritable_target_keeps_the_old_file(tmp_path):
    data = _data(tmp_path)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ProjectError):
        save_project(blocker / "p.sssproj", data)
    good = save_project(tmp_path / "p.sssproj", data)
    before = good.read_bytes()
    with pytest.raises(ProjectError):
        save_project(good, ProjectData(data.photo_path, data.alphas[:2], data.layers))
    assert good.read_bytes() == before
