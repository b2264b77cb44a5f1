"""EAC's augmentations on decoded uint8 images (H×W×3 RGB numpy arrays).

Faithful to the official code's order: Gaussian pixel noise (σ²=30, p=0.5) on the raw uint8 image →
resize → [0,1] → ImageNet normalisation → RandomErasing(p=0.5, scale=(0.02, 0.25), ratio=(0.3, 3.3),
value 0). The flipped view x′ is built in one of two ways (``flip_view``):

* ``"mirrored"`` — x′ is the mirror image of the augmented x (erased patch mirrored too). The official
  code does this when training on the clean label file.
* ``"independent"`` — x′ is the flipped *raw* image through resize/normalise/erasing with its own random
  erasing and no pixel noise. The official code does this when training on a noisy label file.

All randomness comes from torch's global generator; the trainer seeds it per image from the run's loader
generator (:class:`eacfer.training.run_data.SeededDataset`), so runs are reproducible, resumable and the same
whatever the number of DataLoader workers. Decoding is elsewhere (:mod:`eacfer.data`): images can be cached decoded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torchvision.transforms import RandomErasing

from eacfer.constants import IMAGENET_MEAN, IMAGENET_STD
from eacfer.data.resample import resize_uint8

FLIP_VIEWS = ("mirrored", "independent")


def to_tensor_uint8(img: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 numpy → 3×H×W uint8 tensor (no copy of writable contiguous arrays)."""
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected an H×W×3 uint8 image, got shape {img.shape} dtype {img.dtype}")
    # Cached dataset images are read-only; torch.from_numpy warns on those, so copy them (a few KB).
    arr = np.ascontiguousarray(img) if img.flags.writeable else img.copy()
    return torch.from_numpy(arr).permute(2, 0, 1)


def add_gaussian_noise(img: torch.Tensor, var: float = 30.0) -> torch.Tensor:
    """Add N(0, var) noise to a uint8 image, clip to [0, 255] and truncate back to uint8 (as the official code)."""
    noisy = img.to(torch.float64) + torch.randn(img.shape, dtype=torch.float64) * math.sqrt(var)
    return noisy.clamp_(0, 255).to(torch.uint8)


def resize_normalize(img: torch.Tensor, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 3×H×W → float 3×size×size: Pillow's bilinear resize (byte for byte, as the official code's
    ``transforms.Resize`` on PIL images), /255, normalised."""
    x = resize_uint8(img, size).to(torch.float32).div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - m) / s


class EvalTransform:
    """Resize + normalise (test time).

    Example:
        >>> EvalTransform(32)(np.zeros((100, 100, 3), np.uint8)).shape
        torch.Size([3, 32, 32])
    """

    def __init__(self, image_size: int = 224, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        self.image_size, self.mean, self.std = int(image_size), tuple(mean), tuple(std)

    def __call__(self, img: np.ndarray) -> torch.Tensor:
        return resize_normalize(to_tensor_uint8(img), self.image_size, self.mean, self.std)


class EACTrainTransform:
    """Training augmentation returning the pair ``(x, x_flipped)``.

    Args:
        image_size: network input side.
        noise_p, noise_var: probability and variance of the Gaussian pixel noise on x.
        erasing_p, erasing_scale, erasing_ratio: RandomErasing parameters (torchvision semantics, value 0).
        flip_view: ``"mirrored"`` or ``"independent"`` (see module docstring).
        augment: ``False`` turns every random step off (x′ is then exactly the mirror of x); used by tests.

    Example:
        >>> x, xf = EACTrainTransform(32, augment=False)(np.zeros((100, 100, 3), np.uint8))
        >>> bool(torch.equal(xf, x.flip(-1)))
        True
    """

    def __init__(
        self,
        image_size: int = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        noise_p: float = 0.5,
        noise_var: float = 30.0,
        erasing_p: float = 0.5,
        erasing_scale: tuple[float, float] = (0.02, 0.25),
        erasing_ratio: tuple[float, float] = (0.3, 3.3),
        flip_view: str = "mirrored",
        augment: bool = True,
    ):
        if flip_view not in FLIP_VIEWS:
            raise ValueError(f"flip_view must be one of {FLIP_VIEWS}, got {flip_view!r}")
        self.image_size, self.mean, self.std = int(image_size), tuple(mean), tuple(std)
        self.noise_p, self.noise_var = float(noise_p), float(noise_var)
        self.flip_view, self.augment = flip_view, augment
        self.erase = RandomErasing(p=erasing_p, scale=erasing_scale, ratio=erasing_ratio, value=0)

    def _finish(self, img: torch.Tensor) -> torch.Tensor:
        x = resize_normalize(img, self.image_size, self.mean, self.std)
        return self.erase(x) if self.augment else x

    def __call__(self, img: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        raw = to_tensor_uint8(img)
        src = raw
        # torch.rand, not random.uniform: one generator to seed, save and restore
        if self.augment and self.noise_p > 0 and torch.rand(()).item() < self.noise_p:
            src = add_gaussian_noise(raw, self.noise_var)
        x = self._finish(src)
        if self.flip_view == "mirrored":
            return x, x.flip(-1)
        return x, self._finish(raw.flip(-1))
