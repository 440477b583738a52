import cv2
import numpy as np
import pytest
from PIL import Image

from sss_studio.io.image import ImageLoadError, load_image, read_image


@pytest.fixture
def rgb():
    return (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)


def test_rgb_png_is_float_rgb_in_unit_range(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img.dtype == np.float32 and img.shape == (20, 30, 3)
    assert np.allclose(img, rgb / 255.0, atol=1e-6)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "RGBA", "LA", "1"])
def test_other_modes_are_converted(tmp_path, rgb, mode):
    im = Image.fromarray(rgb)
    im = im.convert(mode) if mode != "RGBA" else Image.fromarray(np.dstack([rgb, rgb[:, :, 0]]))
    ext = "jpg" if mode == "CMYK" else "png"
    if mode == "CMYK":
        im.save(tmp_path / f"x.{ext}")
    else:
        im.save(tmp_path / f"x.{ext}")
    img, info = read_image(tmp_path / f"x.{ext}")
    assert img.shape == (20, 30, 3) and img.dtype == np.float32
    assert 0.0 <= img.min() and img.max() <= 1.0
    assert info.mode == mode


def test_alpha_is_composited_over_white(tmp_path):
    arr = np.zeros((4, 4, 4), np.uint8)  # fully transparent black
    Image.fromarray(arr, "RGBA").save(tmp_path / "t.png")
    img, info = read_image(tmp_path / "t.png")
    assert info.had_alpha and np.allclose(img, 1.0)


def test_sixteen_bit_keeps_its_depth(tmp_path):
    a = np.random.default_rng(1).integers(0, 65536, (10, 12, 3)).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), a)  # OpenCV writes BGR
    img, info = read_image(tmp_path / "d.png")
    assert info.bit_depth == 16
    assert np.allclose(img, a[:, :, ::-1] / 65535.0, atol=1e-6)
    g = a[:, :, 0]
    cv2.imwrite(str(tmp_path / "g.png"), g)
    img = load_image(tmp_path / "g.png")
    assert np.allclose(img[:, :, 1], g / 65535.0, atol=1e-6)


def test_exif_orientation_is_applied(tmp_path, rgb):
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise for display
    im.save(tmp_path / "r.jpg", exif=exif, quality=95)
    img = load_image(tmp_path / "r.jpg")
    assert img.shape == (30, 20, 3)
    plain = np.asarray(Image.open(tmp_path / "r.jpg").convert("RGB"), np.float32) / 255
    assert np.allclose(img, np.rot90(plain, -1), atol=1e-6)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("this is not a picture"), "not an image"),
    ],
)
def test_bad_files_get_one_clear_line(tmp_path, make, message):
    p = tmp_path / "bad.png"
    make(p)
    with pytest.raises(ImageLoadError, match=message) as e:
        load_image(p)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_truncated_file(tmp_path, rgb, ext):
    Image.fromarray(rgb).save(tmp_path / f"full.{ext}")
    data = (tmp_path / f"full.{ext}").read_bytes()
    (tmp_path / f"cut.{ext}").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="truncated"):
        load_image(tmp_path / f"cut.{ext}")


def test_huge_image_is_refused_before_decoding(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "a.png")
    with pytest.raises(ImageLoadError, match="megapixels"):
        load_image(tmp_path / "a.png", max_pixels=100)
