"""Any image a caller hands the predictor (arrays of any depth and channel count, PIL images) → H×W×3 uint8 RGB."""

from __future__ import annotations

from typing import Any

import numpy as np

#: channel orders a numpy frame may come in
COLORS = ("rgb", "bgr")


def to_rgb_array(image: np.ndarray, color: str = "rgb") -> np.ndarray:
    """Any H×W, H×W×1/3/4 uint8/uint16/float array in ``color`` order → contiguous H×W×3 uint8 RGB.

    Example:
        >>> to_rgb_array(np.zeros((4, 4), np.uint8)).shape
        (4, 4, 3)
    """
    if color not in COLORS:
        raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or a.size == 0:
        raise ValueError(f"expected an H×W, H×W×3 or H×W×4 image array, got shape {a.shape}")
    if a.dtype != np.uint8:
        if a.dtype == np.uint16:
            a = ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
        elif np.issubdtype(a.dtype, np.floating):
            scale = 255.0 if float(np.nanmax(a)) <= 1.0 else 1.0
            a = np.clip(np.nan_to_num(a) * scale, 0, 255).round().astype(np.uint8)
        else:
            a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        return np.ascontiguousarray(np.repeat(a[:, :, None], 3, axis=2))
    a = a[:, :, :3]  # alpha dropped: arrays are frames, not cut-outs (files go through load_image)
    if color == "bgr":
        a = a[:, :, ::-1]
    return np.ascontiguousarray(a)


def _pil_to_rgb(im: Any) -> np.ndarray:
    from PIL import ImageOps

    im = ImageOps.exif_transpose(im) or im
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        from PIL import Image

        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))  # same white background as load_image
        im = Image.alpha_composite(bg, rgba)
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        return to_rgb_array(np.asarray(im).astype(np.uint16) if im.mode.startswith("I;16") else
                            np.clip(np.asarray(im), 0, 65535).astype(np.uint16))
    return np.ascontiguousarray(np.asarray(im.convert("RGB")))
