"""Robust image decoding: every colour mode to RGB uint8, EXIF orientation, broken and hostile files."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eacfer.data.imageio import ImageLoadError, decode_image_bytes, image_size, list_images, load_image


def _save(im: Image.Image, path: Path, **kw) -> Path:
    im.save(path, **kw)
    return path


def _check_rgb(a: np.ndarray, h: int, w: int) -> None:
    assert a.dtype == np.uint8 and a.shape == (h, w, 3) and a.flags["C_CONTIGUOUS"]


def test_rgba_composited_on_white(tmp_path):
    a = np.zeros((4, 6, 4), np.uint8)
    a[0, 0] = (255, 0, 0, 255)  # opaque red
    a[1, 1] = (0, 0, 255, 128)  # half-transparent blue
    img = load_image(_save(Image.fromarray(a, "RGBA"), tmp_path / "x.png"))
    _check_rgb(img, 4, 6)
    assert tuple(img[0, 0]) == (255, 0, 0)
    assert tuple(img[3, 5]) == (255, 255, 255)  # fully transparent -> white background
    assert abs(int(img[1, 1, 0]) - 127) <= 2 and img[1, 1, 2] == 255


def test_la_grayscale_alpha(tmp_path):
    a = np.zeros((3, 3, 2), np.uint8)
    a[..., 0] = 40
    a[0, 0, 1] = 255
    img = load_image(_save(Image.fromarray(a, "LA"), tmp_path / "la.png"))
    _check_rgb(img, 3, 3)
    assert tuple(img[0, 0]) == (40, 40, 40) and tuple(img[2, 2]) == (255, 255, 255)


def test_palette_gif_with_transparency(tmp_path):
    im = Image.new("P", (5, 4), 0)
    im.putpalette([0, 0, 0, 200, 10, 20] + [0] * 762)
    im.putpixel((1, 1), 1)
    path = _save(im, tmp_path / "p.gif", transparency=0)
    img = load_image(path)
    _check_rgb(img, 4, 5)
    assert tuple(img[1, 1]) == (200, 10, 20) and tuple(img[0, 0]) == (255, 255, 255)
    # The same palette image without transparency keeps its colours.
    img2 = load_image(_save(im, tmp_path / "p.png"))
    assert tuple(img2[0, 0]) == (0, 0, 0)


def test_grayscale_jpeg_and_one_bit(tmp_path):
    g = load_image(_save(Image.new("L", (7, 5), 90), tmp_path / "g.jpg", quality=95))
    _check_rgb(g, 5, 7)
    assert abs(int(g[2, 3, 0]) - 90) <= 2 and (g[..., 0] == g[..., 2]).all()
    b = Image.new("1", (4, 4), 0)
    b.putpixel((0, 0), 1)
    one = load_image(_save(b, tmp_path / "b.png"))
    assert tuple(one[0, 0]) == (255, 255, 255) and tuple(one[3, 3]) == (0, 0, 0)


def test_16bit_png_scaled_not_clipped(tmp_path):
    a = np.array([[0, 256, 32768, 65535]], dtype=np.uint16)
    path = _save(Image.fromarray(a), tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I")
    img = load_image(path)
    _check_rgb(img, 1, 4)
    assert img[0, :, 0].tolist() == [0, 1, 128, 255]


def test_int32_and_float_tiffs(tmp_path):
    i32 = np.array([[0, 1000, 4000]], dtype=np.int32)
    img = load_image(_save(Image.fromarray(i32, "I"), tmp_path / "i.tif"))
    assert img[0, :, 0].tolist() == [0, 4, 16]  # values above 255 and below 65536: 16-bit scale
    f = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    img = load_image(_save(Image.fromarray(f, "F"), tmp_path / "f.tif"))
    assert img[0, :, 0].tolist() == [0, 128, 255]


def test_cmyk_jpeg(tmp_path):
    path = _save(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(path).mode == "CMYK"
    img = load_image(path)
    _check_rgb(img, 8, 8)
    r, g, b = (int(v) for v in img[4, 4])
    assert r > 200 and g < 60 and b < 60  # red


def test_exif_orientation_6_rotates(tmp_path):
    a = np.zeros((20, 40, 3), np.uint8)  # stored landscape: H=20, W=40
    a[:4, :4] = (255, 0, 0)  # red marker at the stored top-left
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = _save(im, tmp_path / "phone.jpg", exif=exif, quality=95)
    img = load_image(path)
    _check_rgb(img, 40, 20)  # displayed portrait
    assert img[1, -2, 0] > 200 and img[1, -2, 1] < 60  # marker now at the top-right
    assert img[1, 1, 0] < 60
    assert image_size(path) == (20, 40)


def test_webp(tmp_path):
    a = np.full((6, 9, 3), (10, 200, 30), np.uint8)
    img = load_image(_save(Image.fromarray(a), tmp_path / "x.webp", lossless=True))
    _check_rgb(img, 6, 9)
    assert tuple(img[3, 3]) == (10, 200, 30)


def test_one_pixel(tmp_path):
    img = load_image(_save(Image.new("RGB", (1, 1), (1, 2, 3)), tmp_path / "one.png"))
    assert img.shape == (1, 1, 3) and tuple(img[0, 0]) == (1, 2, 3)


def test_bytes_and_bytesio():
    buf = io.BytesIO()
    Image.new("RGB", (3, 2), (9, 8, 7)).save(buf, "PNG")
    assert decode_image_bytes(buf.getvalue()).shape == (2, 3, 3)
    buf.seek(0)
    assert tuple(decode_image_bytes(buf, name="mem.png")[0, 0]) == (9, 8, 7)
    assert load_image(buf.getvalue()).shape == (2, 3, 3)
    with pytest.raises(ImageLoadError, match=r"^clip\.png: empty"):
        decode_image_bytes(b"", name="clip.png")


# ------------------------------------------------------------------------------ broken files
def _jpeg_bytes(size=(64, 48)) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.mark.parametrize(
    "name,data,reason",
    [
        ("empty.jpg", b"", "empty file"),
        ("truncated.jpg", _jpeg_bytes()[:700], "truncated"),
        ("notes.jpg", b"this is not an image, just text\n" * 3, "not an image (looks like a text file)"),
        ("junk.png", bytes(range(256)) * 4, "not an image"),
        ("header_only.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 20, "JPEG"),
    ],
)
def test_broken_files_raise_clear_errors(tmp_path, name, data, reason):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ImageLoadError) as ei:
        load_image(path)
    msg = str(ei.value)
    assert msg.startswith(f"{path}: ") and reason in msg
    assert isinstance(ei.value, ValueError) and ei.value.path == str(path)


def test_error_pickles(tmp_path):
    import pickle

    err = pickle.loads(pickle.dumps(ImageLoadError(tmp_path / "a.jpg", "empty file (0 bytes)")))
    assert isinstance(err, ImageLoadError) and str(err) == f"{tmp_path / 'a.jpg'}: empty file (0 bytes)"
    assert err.reason == "empty file (0 bytes)"


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageLoadError, match="file not found"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageLoadError, match="directory"):
        load_image(tmp_path)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG with a valid IHDR claiming width×height and no pixel data (costs nothing to make)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "w,h,limit", [(100_000, 100_000, 90_000_000), (20_000, 20_000, 90_000_000), (2000, 1000, 1_000_000)]
)
def test_decompression_bomb_refused_from_header(tmp_path, w, h, limit):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(w, h))
    t0 = time.perf_counter()
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        load_image(path, max_pixels=limit)
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        image_size(path, max_pixels=limit)
    assert time.perf_counter() - t0 < 1.0


def test_limit_is_inclusive(tmp_path):
    path = _save(Image.new("RGB", (100, 50)), tmp_path / "ok.png")
    assert load_image(path, max_pixels=5000).shape == (50, 100, 3)
    with pytest.raises(ImageLoadError):
        load_image(path, max_pixels=4999)


# ------------------------------------------------------------------------------ listing
def test_list_images_sorted_nested_hidden_skipped(tmp_path):
    for rel in [
        "b.JPG",
        "a.png",
        "sub/c.webp",
        "sub/deeper/d.tiff",
        "notes.txt",
        ".hidden.jpg",
        ".git/e.jpg",
        "sub/._f.jpg",
        "spaced name ü.jpeg",
    ]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    rel = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert rel == sorted(rel)
    assert set(rel) == {"a.png", "b.JPG", "spaced name ü.jpeg", "sub/c.webp", "sub/deeper/d.tiff"}
    flat = [p.name for p in list_images(tmp_path, recursive=False)]
    assert set(flat) == {"a.png", "b.JPG", "spaced name ü.jpeg"}
    assert list_images(tmp_path / "a.png") == [tmp_path / "a.png"]
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "missing")
