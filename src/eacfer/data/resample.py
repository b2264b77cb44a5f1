"""Bilinear resizing of uint8 images that gives exactly Pillow's result, in torch (CPU or GPU, batched).

The official EAC code resizes with torchvision's ``transforms.Resize`` on PIL images, i.e. Pillow's
``Image.resize(..., BILINEAR)``. Pillow resamples in two passes (horizontal, then vertical), rounds to
uint8 after each, and uses 22-bit fixed-point filter weights. ``torch.nn.functional.interpolate`` in
float differs by one grey level in ~16 % of the pixels of a 100→224 resize; that is harmless for
training but makes predictions on identical weights drift from the official code's. This module
reproduces Pillow's arithmetic (its ``precompute_coeffs`` / ``normalize_coeffs_8bpc`` and the 8-bit
horizontal and vertical passes) with integer tensors, so the two agree pixel for pixel.

Pillow ≤ 11 always runs the horizontal pass first, as here; newer Pillow runs the vertical pass first in
some shapes where the height shrinks, which moves a few pixels by one level. Where the height does not
shrink (RAF-DB's 100 → 224 among them) the result is identical for every Pillow version; on a CPU the
default backend calls Pillow itself anyway.

Each output pixel reads at most ``ksize`` input pixels (3 when enlarging, more when shrinking: the
filter widens to anti-alias), so a pass is ``ksize`` gathers and multiply-adds, not a dense matrix.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed-point precision for 8-bit images


@lru_cache(maxsize=64)
def _coefficients(in_size: int, out_size: int) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...], int]:
    """Pillow's bilinear taps for one axis: (first input index per output, fixed-point weights, ksize).

    A transcription of the arithmetic (double precision, the same operation order), not of the code.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale  # the bilinear (triangle) filter has support 1
    ksize = int(math.ceil(support)) * 2 + 1
    starts, weights = [], []
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        ss = 1.0 / filterscale
        xmin = max(int(center - support + 0.5), 0)  # C's (int) truncates toward zero
        xmax = min(int(center + support + 0.5), in_size) - xmin
        k = []
        for x in range(xmax):
            t = abs((x + xmin - center + 0.5) * ss)
            k.append(1.0 - t if t < 1.0 else 0.0)
        ww = _sum_in_order(k)
        if ww != 0.0:
            k = [v / ww for v in k]
        fixed = [int(-0.5 + v * (1 << PRECISION_BITS)) if v < 0 else int(0.5 + v * (1 << PRECISION_BITS)) for v in k]
        starts.append(xmin)
        weights.append(tuple(fixed + [0] * (ksize - len(fixed))))
    return tuple(starts), tuple(weights), ksize


def _sum_in_order(values: list[float]) -> float:
    """Plain left-to-right float sum, as Pillow's C loop (Python ≥ 3.12's ``sum`` compensates rounding)."""
    total = 0.0
    for v in values:
        total += v
    return total


@lru_cache(maxsize=64)
def _taps(in_size: int, out_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_coefficients` as tensors on ``device``, made once: no host→device copy per batch."""
    starts, weights, _ = _coefficients(in_size, out_size)
    return (torch.tensor(starts, dtype=torch.long, device=device),
            torch.tensor(weights, dtype=torch.int32, device=device))  # out_size × ksize


def _pass(x: torch.Tensor, out_size: int) -> torch.Tensor:
    """One Pillow 8-bit resampling pass along the last dimension of an int32 tensor (values 0..255)."""
    in_size = x.shape[-1]
    start, w = _taps(in_size, out_size, x.device)
    ksize = w.shape[1]
    dev = x.device
    # int32 is enough: the weights are non-negative and sum to ≈ 2^22, so |acc| < 2^21 + 255 · (2^22 + ksize) < 2^31
    acc = torch.full((*x.shape[:-1], out_size), 1 << (PRECISION_BITS - 1), dtype=torch.int32, device=dev)
    for t in range(ksize):
        # taps past a row's end carry weight 0; clamp their index so the gather stays in bounds
        idx = (start + t).clamp_(max=in_size - 1)
        acc += x.index_select(-1, idx) * w[:, t]
    # clip8: the rounded value (the +half above) shifted down, clamped to a byte
    return torch.bitwise_right_shift(acc, PRECISION_BITS).clamp_(0, 255)


def resize_uint8(img: torch.Tensor, size: int | tuple[int, int], backend: str = "auto") -> torch.Tensor:
    """Resize ``…×C×H×W`` uint8 images (any leading dimensions) to ``size`` exactly as Pillow's BILINEAR.

    ``size`` is an int (square) or ``(height, width)``; an unchanged size returns the input as it is.
    ``backend``: ``"pil"`` calls Pillow image by image (fastest on a CPU), ``"torch"`` runs the same
    arithmetic as batched integer tensor ops (on the tensor's device, e.g. a GPU); ``"auto"`` picks
    Pillow for CPU tensors. Both give identical bytes.

    Example:
        >>> from PIL import Image
        >>> import numpy as np
        >>> a = np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8)
        >>> t = torch.from_numpy(a).permute(2, 0, 1)
        >>> ours = resize_uint8(t, 224, backend="torch").permute(1, 2, 0).numpy()
        >>> bool((ours == np.asarray(Image.fromarray(a).resize((224, 224), Image.BILINEAR))).all())
        True
    """
    if img.dtype != torch.uint8 or img.ndim < 2:
        raise ValueError(f"resize_uint8 expects uint8 images (…×H×W), got {img.dtype} of shape {tuple(img.shape)}")
    if backend not in ("auto", "pil", "torch"):
        raise ValueError(f"backend must be auto, pil or torch, got {backend!r}")
    out_h, out_w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if out_h < 1 or out_w < 1:
        raise ValueError(f"cannot resize to {out_h}×{out_w}")
    in_h, in_w = img.shape[-2:]
    if (in_h, in_w) == (out_h, out_w):
        return img
    if backend == "pil" or (backend == "auto" and img.device.type == "cpu"):
        return _resize_pil(img, out_h, out_w)
    x = img.to(torch.int32)
    if out_w != in_w:  # Pillow: horizontal pass first, rounded to uint8
        x = _pass(x, out_w)
    if out_h != in_h:  # then the vertical pass on the rounded intermediate
        x = _pass(x.transpose(-1, -2), out_h).transpose(-1, -2)
    return x.to(torch.uint8).contiguous()


def _resize_pil(img: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    import numpy as np
    from PIL import Image

    # RGB images in one Pillow call each; anything else plane by plane (Pillow resamples channels independently)
    rgb = img.ndim >= 3 and img.shape[-3] == 3
    arrays = img.detach().cpu().reshape(-1, *img.shape[-3 if rgb else -2 :])
    if rgb:
        arrays = arrays.permute(0, 2, 3, 1)
    out = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(a)).resize((out_w, out_h), Image.BILINEAR))
                    for a in arrays.numpy()])
    res = torch.from_numpy(out)
    if rgb:
        res = res.permute(0, 3, 1, 2)
    return res.reshape(*img.shape[:-2], out_h, out_w).to(img.device).contiguous()
