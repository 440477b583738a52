import os

import numpy as np
import pytest
from PIL import Image
from psd_tools import PSDImage

from sss_studio.io.export import ExportError, atomic_write, load_layers_npz, write_png_stack, write_psd

from synthetic import soft_regions


@pytest.fixture(scope="module")
def scene():
    image, _, alphas = soft_regions(40, 56)
    return image, alphas.astype(np.float32)


def test_psd_round_trip(tmp_path, scene):
    image, alphas = scene
    names = ["Sky", "Sea", "Ball"]
    write_psd(tmp_path / "x.psd", image, alphas, names, layer_colours=False)
    psd = PSDImage.open(tmp_path / "x.psd")
    assert psd.color_mode.name == "RGB" and psd.channels == 4  # RGBA document
    layers = list(psd)
    assert [l.name for l in layers] == ["Photo"] + names
    for layer, a in zip(layers[1:], alphas):
        px = layer.numpy()  # H×W×4 in [0, 1]
        assert px.shape == (40, 56, 4)
        assert np.abs(px[:, :, 3] - a).max() <= 1 / 255 + 1e-6
        # Shown alone, a layer is the photo cut out by its soft alpha.
        inside = a > 0.5
        assert np.abs(px[:, :, :3][inside] - image[inside]).max() <= 1 / 255 + 1e-6
    comp = np.asarray(psd.composite(), np.float64)
    comp = comp / 255.0 if comp.max() > 1.0 else comp
    assert np.abs(comp[:, :, :3] - image).max() <= 2 / 255


def test_psd_carries_recoloured_layers(tmp_path, scene):
    image, alphas = scene
    edited = np.repeat(image[None], 3, axis=0).copy()
    edited[2] = [1.0, 1.0, 0.0]
    write_psd(tmp_path / "r.psd", image, alphas, layer_images=edited)
    px = list(PSDImage.open(tmp_path / "r.psd"))[3].numpy()
    inside = alphas[2] > 0.5
    assert np.allclose(px[:, :, :3][inside], [1.0, 1.0, 0.0], atol=1 / 255)


def test_psd_keeps_hidden_layers_hidden(tmp_path, scene):
    image, alphas = scene
    write_psd(tmp_path / "h.psd", image, alphas, ["a", "b", "c"], hidden=[False, True, False])
    layers = list(PSDImage.open(tmp_path / "h.psd"))
    assert [l.name for l in layers] == ["Photo", "a", "b", "c"]
    assert [l.visible for l in layers] == [True, True, False, True]


def test_png_stack(tmp_path, scene):
    image, alphas = scene
    written = write_png_stack(tmp_path / "out", image, alphas, ["sky", "Person 2", "a/b"], params={"seed": 3})
    names = sorted(p.name for p in written)
    # Named after the layers, numbered in stack order.
    stems = ["01_sky", "02_person_2", "03_a_b"]
    assert names == sorted([f"{s}.png" for s in stems] + [f"{s}_alpha.png" for s in stems] + ["preview.png", "layers.npz"])
    rgba = np.asarray(Image.open(tmp_path / "out" / "02_person_2.png"))
    assert rgba.shape == (40, 56, 4)
    assert np.abs(rgba[:, :, 3] / 255.0 - alphas[1]).max() <= 0.5 / 255 + 1e-6
    a16 = np.asarray(Image.open(tmp_path / "out" / "01_sky_alpha.png"))
    assert a16.dtype in (np.uint16, np.int32) and np.abs(a16 / 65535.0 - alphas[0]).max() < 1e-4
    loaded, lnames, params = load_layers_npz(tmp_path / "out" / "layers.npz")
    assert loaded.dtype == np.float32 and np.array_equal(loaded, alphas)
    assert lnames == ["sky", "Person 2", "a/b"] and params == {"seed": 3}
    prev = Image.open(tmp_path / "out" / "preview.png")
    assert prev.size == (112, 40)
    assert not [p for p in os.listdir(tmp_path / "out") if p.endswith(".part")]


def test_failing_write_leaves_no_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "keep.psd"
    target.write_bytes(b"old")

    def boom(tmp):
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(ExportError, match="No space left"):
        atomic_write(target, boom)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["keep.psd"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_folder(tmp_path, scene):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ExportError, match="permission denied"):
            write_png_stack(ro / "x", *scene)
    finally:
        ro.chmod(0o700)


def test_folder_that_is_a_file(tmp_path, scene):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ExportError, match="a file of that name exists"):
        write_png_stack(tmp_path / "f", *scene)


@pytest.mark.parametrize("names", [["Небо", "Лес", "Река"], ["空", "人物", "背景"], ["🌅 sunset", "🐈", "naïve café"]])
def test_unicode_layer_names_in_the_psd(tmp_path, scene, names):
    image, alphas = scene
    write_psd(tmp_path / "u.psd", image, alphas, names)
    assert [l.name for l in PSDImage.open(tmp_path / "u.psd")] == ["Photo"] + names


def test_exports_get_the_permissions_of_a_normal_save(tmp_path, scene):
    import stat

    from sss_studio.io.project import ProjectData, save_project
    from sss_studio.layers import Layer

    old = os.umask(0o022)
    try:
        write_psd(tmp_path / "x.psd", *scene)
        write_png_stack(tmp_path / "png", *scene)
        save_project(tmp_path / "p.sssproj", ProjectData(str(tmp_path / "photo.png"), scene[1],
                                                        [Layer(f"L{k}", (0, 0, 0)) for k in range(3)]))
        files = [tmp_path / "x.psd", tmp_path / "p.sssproj", *sorted((tmp_path / "png").iterdir())]
        assert {oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == {"0o644"}
        # Replacing a file keeps that file's own mode, as an editor's save does.
        (tmp_path / "x.psd").chmod(0o664)
        write_psd(tmp_path / "x.psd", *scene)
        assert stat.S_IMODE((tmp_path / "x.psd").stat().st_mode) == 0o664
    finally:
        os.umask(old)


def test_colour_profile_and_resolution_are_carried(tmp_path, scene):
    from PIL import ImageCms
    from psd_tools.constants import Resource

    from sss_studio.io.export import PhotoMetadata
    from sss_studio.io.image import read_image

    image, alphas = scene
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    photo = tmp_path / "photo.jpg"
    Image.fromarray((image * 255).astype(np.uint8)).save(photo, icc_profile=icc, dpi=(300, 300))
    _, info = read_image(photo)
    assert info.metadata == PhotoMetadata(icc, (300.0, 300.0))
    write_png_stack(tmp_path / "png", image, alphas, ["a", "b", "c"], metadata=info.metadata)
    with Image.open(tmp_path / "png" / "01_a.png") as im:
        assert im.info["icc_profile"] == icc and tuple(round(d) for d in im.info["dpi"]) == (300, 300)
    write_psd(tmp_path / "m.psd", image, alphas, metadata=info.metadata)
    psd = PSDImage.open(tmp_path / "m.psd")
    assert psd.image_resources.get_data(Resource.ICC_PROFILE) == icc
    res = psd.image_resources.get_data(Resource.RESOLUTION_INFO)
    assert res.horizontal / 65536 == pytest.approx(300) and res.vertical / 65536 == pytest.approx(300)


def test_psd_layers_carry_their_own_colours_by_default(tmp_path, scene):
    """On by default: opaque pixels keep the photo's colour; a soft layer alone over a new
    background is closer to its true colours than the photo's mixed ones."""
    image, alphas = scene
    write_psd(tmp_path / "c.psd", image, alphas)
    for layer, a in zip(list(PSDImage.open(tmp_path / "c.psd"))[1:], alphas):
        px = layer.numpy()
        opaque = a >= 1.0 - 1e-6
        assert np.abs(px[:, :, :3][opaque] - image[opaque]).max() <= 1 / 255 + 1e-6
