"""Robust image decoding shared by every consumer (datasets, predict, UI): always H×W×3 uint8 RGB.

Real folders hold grayscale, palette, CMYK, 16-bit and transparent images, phone photos that are
only upright after their EXIF orientation is applied, and broken files. :func:`load_image` turns
every valid one into the same array and every broken one into :class:`ImageLoadError` whose
message is ``"<path>: <reason>"``.

Choices:

* Transparent images (RGBA, LA, PA, palette with a transparent colour) are composited on **white**:
  scraped face images with alpha are mostly cut-outs meant for a white page, and black would merge
  with dark hair.
* 16-bit images are scaled ``v * 255 / 65535`` (rounded) instead of being clipped at 255.
* Float images (mode ``F``) in [0, 1] are scaled by 255; other ranges are min-max normalised.
* Decompression bombs (``width * height > max_pixels``) are refused from the header, before any
  pixel is decoded, so a 100 000 × 100 000 PNG costs nothing.
* Pillow's global settings (``MAX_IMAGE_PIXELS``, ``LOAD_TRUNCATED_IMAGES``) are never modified.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import IO, Any

import numpy as np

DEFAULT_MAX_PIXELS = 90_000_000
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class ImageLoadError(ValueError):
    """An image could not be decoded; the message is ``"<path>: <reason>"``."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable with its two arguments (DataLoader workers and process pools send errors back).
        return (type(self), (self.path, self.reason))


def load_image(
    path: str | os.PathLike[str] | bytes | IO[bytes], max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode an image file into an H×W×3 uint8 RGB array (EXIF orientation applied).

    ``path`` may also be ``bytes`` or a binary file object (see :func:`decode_image_bytes`).
    Raises :class:`ImageLoadError` for missing, empty, truncated, non-image or oversized files.

    Example:
        >>> img = load_image("face.jpg")  # doctest: +SKIP
        >>> img.shape, img.dtype          # doctest: +SKIP
        ((100, 100, 3), dtype('uint8'))
    """
    if isinstance(path, (bytes, bytearray, memoryview)) or hasattr(path, "read"):
        return decode_image_bytes(path, max_pixels=max_pixels)  # type: ignore[arg-type]
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ImageLoadError(p, "file not found") from None
    except OSError as e:
        raise ImageLoadError(p, f"cannot access file ({e.strerror or e})") from None
    if p.is_dir():
        raise ImageLoadError(p, "is a directory, not an image")
    if st.st_size == 0:
        raise ImageLoadError(p, "empty file (0 bytes)")
    try:
        fh = open(p, "rb")
    except OSError as e:
        raise ImageLoadError(p, f"cannot read file ({e.strerror or e})") from None
    with fh:
        return _decode(fh, p, max_pixels)


def decode_image_bytes(
    data: bytes | bytearray | memoryview | IO[bytes],
    name: str = "<bytes>",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode an encoded image held in memory (``bytes`` or a binary file object); see :func:`load_image`.

    Example:
        >>> img = decode_image_bytes(open("face.png", "rb").read(), name="face.png")  # doctest: +SKIP
    """
    if hasattr(data, "read"):
        fh: IO[bytes] = data  # type: ignore[assignment]
    else:
        buf = bytes(data)  # type: ignore[arg-type]
        if not buf:
            raise ImageLoadError(name, "empty file (0 bytes)")
        fh = io.BytesIO(buf)
    return _decode(fh, name, max_pixels)


def image_size(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """``(width, height)`` read from the header only; raises :class:`ImageLoadError` like :func:`load_image`.

    Cheap validation for lazy datasets: identifies the format and refuses bombs without decoding.

    Example:
        >>> image_size("face.jpg")  # doctest: +SKIP
        (100, 100)
    """
    p = Path(path)
    if not p.is_file():
        raise ImageLoadError(p, "file not found" if not p.exists() else "not a regular file")
    if p.stat().st_size == 0:
        raise ImageLoadError(p, "empty file (0 bytes)")
    with open(p, "rb") as fh:
        im = _open(fh, p, max_pixels)
        with im:
            return _oriented_size(im)


def is_image_name(path: str | os.PathLike[str]) -> bool:
    """True when a file's name has an image extension (:data:`IMAGE_EXTENSIONS`, any case).

    Example:
        >>> is_image_name("a/face.JPG"), is_image_name("clip.mp4")
        (True, False)
    """
    return os.path.splitext(os.fspath(path))[1].lower() in IMAGE_EXTENSIONS


def list_images(root: str | os.PathLike[str], recursive: bool = True) -> list[Path]:
    """Image-like files under ``root`` (by extension, case-insensitive), sorted.

    Hidden files and folders (name starting with ``.``, e.g. macOS ``._x.jpg`` resource forks) are
    left out; symlinked folders are not followed (no loops). A file ``root`` gives ``[root]``.

    Example:
        >>> list_images("photos/")  # doctest: +SKIP
        [PosixPath('photos/a.jpg'), PosixPath('photos/sub/b.png')]
    """
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in filenames:
            if not fn.startswith(".") and is_image_name(fn):
                found.append(Path(dirpath) / fn)
        if not recursive:
            break
    return sorted(found)


# --------------------------------------------------------------------------------------------
def _open(fh: IO[bytes], name: str | os.PathLike[str], max_pixels: int) -> Any:
    """Open (header only) and refuse bombs; the caller closes the image."""
    from PIL import Image, UnidentifiedImageError

    try:
        im = Image.open(fh)
    except Image.DecompressionBombError as e:
        raise ImageLoadError(name, f"refused: too many pixels, possible decompression bomb ({e})") from None
    except UnidentifiedImageError:
        raise ImageLoadError(name, f"not an image ({_sniff(fh)})") from None
    except Exception as e:  # noqa: BLE001 - hostile headers make Pillow raise many types
        kind = "truncated file" if "truncat" in str(e).lower() else "corrupt image header"
        raise ImageLoadError(name, f"{kind} ({type(e).__name__}: {e})") from None
    w, h = im.size
    if w <= 0 or h <= 0:
        im.close()
        raise ImageLoadError(name, f"invalid image size {w}x{h}")
    if w * h > max_pixels:
        im.close()
        raise ImageLoadError(
            name,
            f"refused: {w}x{h} = {w * h:,} pixels exceeds the limit of {max_pixels:,} (decompression bomb?)",
        )
    return im


def _decode(fh: IO[bytes], name: str | os.PathLike[str], max_pixels: int) -> np.ndarray:
    from PIL import ImageOps

    im = _open(fh, name, max_pixels)
    try:
        with im:
            im.load()
            try:
                # in place: the default returns a full copy even when no rotation is needed, which
                # doubled the peak memory of a 9000x7000 photo
                ImageOps.exif_transpose(im, in_place=True)
            except Exception:  # noqa: BLE001 - a broken EXIF block should not lose the image itself
                pass
            return _to_rgb(im)
    except ImageLoadError:
        raise
    except MemoryError:
        raise ImageLoadError(name, "out of memory while decoding") from None
    except OSError as e:
        msg = str(e)
        reason = "truncated image data" if "truncated" in msg.lower() else "corrupt image data"
        raise ImageLoadError(name, f"{reason} ({msg})") from None
    except Exception as e:  # noqa: BLE001 - decoders raise SyntaxError, ValueError, struct.error...
        raise ImageLoadError(name, f"corrupt image data ({type(e).__name__}: {e})") from None


def _oriented_size(im: Any) -> tuple[int, int]:
    w, h = im.size
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001
        orientation = 1
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _to_rgb(im: Any) -> np.ndarray:
    """Any Pillow mode → H×W×3 uint8 RGB."""
    from PIL import Image

    mode = im.mode
    if mode == "RGB":
        out = np.asarray(im, dtype=np.uint8)
    elif mode.startswith("I;16") or mode == "I":
        out = _gray_to_rgb(_scale_int(np.asarray(im), sixteen_bit=mode.startswith("I;16")))
    elif mode == "F":
        out = _gray_to_rgb(_scale_float(np.asarray(im, dtype=np.float64)))
    elif (
        mode in ("RGBA", "LA", "PA", "RGBa", "La")
        or (mode == "P" and "transparency" in im.info)
        or (mode in ("L", "RGB") and "transparency" in im.info)
    ):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        out = np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.uint8)
    elif mode == "L":
        out = _gray_to_rgb(np.asarray(im, dtype=np.uint8))
    else:  # "1", "P", "CMYK", "YCbCr", "LAB", "HSV", ...: Pillow knows the conversion
        out = np.asarray(im.convert("RGB"), dtype=np.uint8)
    if out.ndim != 3 or out.shape[2] != 3:
        raise ValueError(f"unexpected decoded shape {out.shape} from mode {mode}")
    return np.ascontiguousarray(out)


def _gray_to_rgb(g: np.ndarray) -> np.ndarray:
    return np.repeat(g[:, :, None], 3, axis=2)


def _scale_int(a: np.ndarray, sixteen_bit: bool) -> np.ndarray:
    a = a.astype(np.int64)
    if sixteen_bit or (a.min(initial=0) >= 0 and a.max(initial=0) <= 65535 and a.max(initial=0) > 255):
        return ((np.clip(a, 0, 65535) * 255 + 32767) // 65535).astype(np.uint8)
    if a.min(initial=0) >= 0 and a.max(initial=0) <= 255:
        return a.astype(np.uint8)
    return _scale_float(a.astype(np.float64))


def _scale_float(a: np.ndarray) -> np.ndarray:
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min(initial=0.0)), float(a.max(initial=0.0))
    if lo >= 0.0 and hi <= 1.0:
        return np.round(a * 255.0).astype(np.uint8)
    if hi - lo < 1e-12:
        return np.zeros(a.shape, np.uint8)
    return np.round((a - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _sniff(fh: IO[bytes]) -> str:
    """A short description of what a non-image file looks like."""
    try:
        fh.seek(0)
        head = fh.read(512)
    except Exception:  # noqa: BLE001
        return "unrecognised format"
    if not head:
        return "empty file (0 bytes)"
    if head[:2] == b"\xff\xd8":
        return "JPEG header but unreadable data"
    if head[:4] in (b"\x00\x00\x00\x18", b"\x00\x00\x00\x1c", b"\x00\x00\x00\x20") and b"ftyp" in head[:12]:
        return "looks like a video or HEIC file, which is not supported"
    if not any(b < 9 or 13 < b < 32 or b == 127 for b in head):  # no control bytes: text (any encoding)
        return "looks like a text file"
    return "unrecognised format"
