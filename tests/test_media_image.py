"""Face photo loading: orientation, transparency, bit depths, colour modes, and bad files."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.errors import InputError
from pipeline.media.image import load_image


def _two_tone(width: int = 40, height: int = 20) -> Image.Image:
    """Left half red, right half blue: shows where the image's left edge went."""
    arr = np.zeros((height, width, 3), np.uint8)
    arr[:, : width // 2] = (255, 0, 0)
    arr[:, width // 2 :] = (0, 0, 255)
    return Image.fromarray(arr)


def test_real_photo_loads_as_rgb(astronaut_path: Path) -> None:
    rgb = load_image(astronaut_path)
    assert rgb.shape == (512, 512, 3) and rgb.dtype == np.uint8
    with Image.open(astronaut_path) as img:
        np.testing.assert_array_equal(rgb, np.asarray(img.convert("RGB")))


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    img = _two_tone()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90 degrees clockwise
    path = tmp_path / "phone.png"
    img.save(path, exif=exif)
    rgb = load_image(path)
    assert rgb.shape == (40, 20, 3)  # portrait after rotation
    # Rotating clockwise brings the stored left (red) half to the top.
    assert tuple(rgb[2, 10]) == (255, 0, 0)
    assert tuple(rgb[-3, 10]) == (0, 0, 255)


def test_transparency_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:4, :, 3] = 255  # top opaque red, bottom fully transparent
    rgba[4:, :4, 3] = 0
    rgba[4:, 4:, 3] = 128  # half-transparent: halfway to white
    path = tmp_path / "cutout.png"
    Image.fromarray(rgba, "RGBA").save(path)
    rgb = load_image(path)
    assert tuple(rgb[0, 0]) == (200, 0, 0)
    assert tuple(rgb[6, 0]) == (255, 255, 255)
    assert np.allclose(rgb[6, 6].astype(int), (228, 127, 127), atol=2)


def test_palette_with_transparency(tmp_path: Path) -> None:
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([0, 255, 0] + [0, 0, 0] * 255)
    pal.putpixel((0, 0), 1)
    path = tmp_path / "pal.png"
    pal.save(path, transparency=1)
    rgb = load_image(path)
    assert tuple(rgb[0, 0]) == (255, 255, 255)
    assert tuple(rgb[3, 3]) == (0, 255, 0)


def test_sixteen_bit_and_grayscale(tmp_path: Path) -> None:
    values = np.array([[0, 32768], [65535, 257 * 100]], np.uint16)
    path16 = tmp_path / "deep.png"
    Image.fromarray(values).save(path16)
    rgb = load_image(path16)
    assert rgb.shape == (2, 2, 3)
    np.testing.assert_array_equal(rgb[..., 0], [[0, 128], [255, 100]])
    assert (rgb[..., 0] == rgb[..., 2]).all()

    path8 = tmp_path / "gray.jpg"
    Image.fromarray(np.full((16, 16), 90, np.uint8), "L").save(path8)
    gray = load_image(path8)
    assert gray.shape == (16, 16, 3) and abs(int(gray[8, 8, 1]) - 90) <= 1


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "print.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)  # pure red ink
    rgb = load_image(path)
    assert rgb.shape == (16, 16, 3)
    assert rgb[8, 8, 0] > 240 and rgb[8, 8, 1] < 15 and rgb[8, 8, 2] < 15


def _png_header_claiming(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims a size; its pixel data is not there (never decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)  # a few bytes of a multi-gigabyte image
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize(("size", "words"), [((8000, 8000), "limit is 40 MP"),
                                              ((30000, 30000), "far too large")])
def test_pixel_limit_is_checked_from_the_header(tmp_path: Path, size: tuple[int, int],
                                                words: str) -> None:
    path = tmp_path / "bomb.png"
    _png_header_claiming(path, *size)
    with pytest.raises(InputError, match=words) as info:
        load_image(path, max_pixels=40_000_000)
    assert info.value.file == str(path) and info.value.fix


def test_small_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    _two_tone(100, 100).save(path)
    with pytest.raises(InputError, match="100x100"):
        load_image(path, max_pixels=5000)


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("notes.jpg", b"this is a text file, not a photo", "not an image"),
        ("empty.png", b"", "empty"),
        ("photo.heic", b"\x00\x00\x00\x18ftypheic" + b"\x00" * 32, "HEIC"),
    ],
)
def test_bad_files_name_the_file_and_the_fix(tmp_path: Path, name: str, content: bytes,
                                             words: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=words) as info:
        load_image(path)
    message = info.value.user_message()
    assert str(path) in message and "Fix:" in message


def test_truncated_image(tmp_path: Path, astronaut_path: Path) -> None:
    data = astronaut_path.read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="damaged or incomplete"):
        load_image(path)
    with pytest.raises(InputError, match="does not exist"):
        load_image(tmp_path / "missing.png")
