"""EAC's training augmentation, batched on the device (GPU or CPU), with the reference's distributions.

Same recipe and order as :class:`eacfer.data.transforms.EACTrainTransform`, but on a whole N×H×W×3 uint8
batch at once and with an explicit ``torch.Generator`` (so the stream is reproducible per epoch and
independent of torch's global generator):

1. Gaussian pixel noise N(0, σ²=30) on the raw uint8 image with probability 0.5 per image, clipped to
   [0, 255] and truncated back to uint8 (the official code's ``astype(uint8)``);
2. bilinear resize to the input size, byte for byte as Pillow's (:mod:`eacfer.data.resample`);
3. /255 and ImageNet normalisation;
4. RandomErasing with torchvision's exact sampling: up to 10 attempts of (area ∈ U(scale) · H·W,
   log-aspect ∈ U(log ratio)), h = round(√(area·r)), w = round(√(area/r)), the first attempt with h < H
   and w < W wins, top-left corner uniform; no valid attempt → no erasing. Fill value 0 (torchvision's
   default, which the official code uses) or ``"random"`` (per-pixel N(0, 1), torchvision's
   ``value="random"``);
5. the flipped view: ``"mirrored"`` (mirror of the augmented x) or ``"independent"`` (the mirrored raw
   image through resize/normalise with its own erasing and no noise).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from eacfer.constants import IMAGENET_MEAN, IMAGENET_STD
from eacfer.data.resample import resize_uint8
from eacfer.data.transforms import FLIP_VIEWS

ERASE_VALUES = ("zero", "random")


def _rand(shape: tuple[int, ...], g: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return torch.rand(shape, generator=g, device=device)


def add_noise_batch(
    raw: torch.Tensor, p: float, var: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Gaussian pixel noise on an N×3×H×W uint8 batch, each image with probability ``p``.

    Example:
        >>> out = add_noise_batch(torch.full((4, 3, 8, 8), 128, dtype=torch.uint8), p=1.0, var=30.0)
        >>> out.dtype
        torch.uint8
    """
    n = raw.shape[0]
    if p <= 0 or n == 0:
        return raw
    chosen = _rand((n,), generator, raw.device) < p
    noise = torch.randn(raw.shape, generator=generator, device=raw.device) * math.sqrt(var)
    # clip then truncate toward zero, as numpy's astype(uint8) after np.clip in the official code
    noisy = (raw.to(torch.float32) + noise).clamp_(0, 255).to(torch.uint8)
    return torch.where(chosen.view(n, 1, 1, 1), noisy, raw)


def resize_normalize_batch(
    raw: torch.Tensor, size: int, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor,
    backend: str = "auto",
) -> torch.Tensor:
    """uint8 N×3×H×W → float N×3×size×size: Pillow's bilinear resize (exact, on the batch's device), normalised.

    Equal to :func:`eacfer.data.transforms.resize_normalize` applied image by image.

    Example:
        >>> resize_normalize_batch(torch.zeros(2, 3, 100, 100, dtype=torch.uint8), 32,
        ...                        IMAGENET_MEAN, IMAGENET_STD).shape
        torch.Size([2, 3, 32, 32])
    """
    x = resize_uint8(raw, size, backend=backend).to(torch.float32).div_(255.0)
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def sample_erasing_boxes(
    n: int,
    height: int,
    width: int,
    p: float,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    attempts: int = 10,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Vectorised ``torchvision.transforms.RandomErasing.get_params`` for ``n`` images.

    Returns ``(erase, i, j, h, w)``: a bool mask of the images that get a box, and the boxes (int64).

    Example:
        >>> erase, i, j, h, w = sample_erasing_boxes(1000, 32, 32, 0.5, (0.02, 0.25), (0.3, 3.3))
        >>> bool(((h < 32) & (w < 32))[erase].all())
        True
    """
    device = torch.device(device)
    area = float(height * width)
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    # float64 like torchvision's Python-float arithmetic, so round() ties fall the same way
    u_area = _rand((n, attempts), generator, device).double() * (scale[1] - scale[0]) + scale[0]
    u_ratio = _rand((n, attempts), generator, device).double() * (log_r[1] - log_r[0]) + log_r[0]
    erase_area = area * u_area
    aspect = torch.exp(u_ratio)
    h_all = torch.round(torch.sqrt(erase_area * aspect)).long()
    w_all = torch.round(torch.sqrt(erase_area / aspect)).long()
    valid = (h_all < height) & (w_all < width)
    first = valid.to(torch.int32).argmax(dim=1, keepdim=True)  # index of the first valid attempt
    h = h_all.gather(1, first).squeeze(1)
    w = w_all.gather(1, first).squeeze(1)
    coin = _rand((n,), generator, device) < p
    erase = coin & valid.any(dim=1)
    # randint(0, H - h + 1): floor(U · (H - h + 1)) is uniform over the same integers
    i = (_rand((n,), generator, device) * (height - h + 1)).floor().long().clamp_(max=height - 1)
    j = (_rand((n,), generator, device) * (width - w + 1)).floor().long().clamp_(max=width - 1)
    zero = torch.zeros_like(h)
    return erase, torch.where(erase, i, zero), torch.where(erase, j, zero), torch.where(erase, h, zero), torch.where(erase, w, zero)


def random_erase_batch(
    x: torch.Tensor,
    p: float = 0.5,
    scale: tuple[float, float] = (0.02, 0.25),
    ratio: tuple[float, float] = (0.3, 3.3),
    value: str = "zero",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """RandomErasing on an N×C×H×W float batch, one independent box per image (see module docstring).

    Example:
        >>> out = random_erase_batch(torch.ones(8, 3, 16, 16), p=1.0)
        >>> bool((out == 0).any())
        True
    """
    if value not in ERASE_VALUES:
        raise ValueError(f"erasing value must be one of {ERASE_VALUES}, got {value!r}")
    n, _, height, width = x.shape
    if p <= 0 or n == 0:
        return x
    erase, i, j, h, w = sample_erasing_boxes(n, height, width, p, scale, ratio, generator, x.device)
    rows = torch.arange(height, device=x.device).view(1, height, 1)
    cols = torch.arange(width, device=x.device).view(1, 1, width)
    box = (
        (rows >= i.view(n, 1, 1)) & (rows < (i + h).view(n, 1, 1))
        & (cols >= j.view(n, 1, 1)) & (cols < (j + w).view(n, 1, 1))
    ).unsqueeze(1)  # N×1×H×W; all False for images without a box (h = w = 0)
    if value == "zero":
        return x.masked_fill(box, 0.0)
    fill = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return torch.where(box, fill, x)


class GPUAugment:
    """Batched EAC augmentation: N×H×W×3 (or N×3×H×W) uint8 on any device → ``(x, x_flipped)``.

    Args mirror :class:`eacfer.data.transforms.EACTrainTransform`; ``erasing_value`` is ``"zero"`` (official)
    or ``"random"``; ``augment=False`` turns every random step off (x′ is then exactly the mirror of x);
    ``resize_backend`` is :func:`eacfer.data.resample.resize_uint8`'s (``"auto"``: Pillow for CPU batches, integer
    tensor ops on a GPU; the same bytes either way).

    Example:
        >>> aug = GPUAugment(32)
        >>> g = torch.Generator().manual_seed(0)
        >>> x, xf = aug(torch.zeros(4, 100, 100, 3, dtype=torch.uint8), generator=g)
        >>> tuple(x.shape), tuple(xf.shape)
        ((4, 3, 32, 32), (4, 3, 32, 32))
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
        erasing_value: str = "zero",
        resize_backend: str = "auto",
    ):
        if flip_view not in FLIP_VIEWS:
            raise ValueError(f"flip_view must be one of {FLIP_VIEWS}, got {flip_view!r}")
        if erasing_value not in ERASE_VALUES:
            raise ValueError(f"erasing_value must be one of {ERASE_VALUES}, got {erasing_value!r}")
        self.image_size, self.mean, self.std = int(image_size), tuple(mean), tuple(std)
        self.noise_p, self.noise_var = float(noise_p), float(noise_var)
        self.erasing_p = float(erasing_p)
        self.erasing_scale, self.erasing_ratio = tuple(erasing_scale), tuple(erasing_ratio)
        self.flip_view, self.augment, self.erasing_value = flip_view, augment, erasing_value
        if resize_backend not in ("auto", "pil", "torch"):
            raise ValueError(f"resize_backend must be auto, pil or torch, got {resize_backend!r}")
        self.resize_backend = resize_backend
        self._stats: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def _mean_std(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        # made once per device: no small host→device copy per batch
        if device not in self._stats:
            self._stats[device] = (torch.tensor(self.mean, dtype=torch.float32, device=device),
                                   torch.tensor(self.std, dtype=torch.float32, device=device))
        return self._stats[device]

    def _resize(self, raw: torch.Tensor) -> torch.Tensor:
        return resize_normalize_batch(raw, self.image_size, *self._mean_std(raw.device), backend=self.resize_backend)

    @staticmethod
    def to_nchw(raw: torch.Tensor) -> torch.Tensor:
        """N×H×W×3 uint8 → N×3×H×W (a view); N×3×H×W passes through."""
        if raw.dtype != torch.uint8 or raw.ndim != 4:
            raise ValueError(f"expected an N×H×W×3 uint8 batch, got shape {tuple(raw.shape)} dtype {raw.dtype}")
        return raw.permute(0, 3, 1, 2) if raw.shape[-1] == 3 and raw.shape[1] != 3 else raw

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        """Evaluation preprocessing of a uint8 batch (resize + normalise), as :class:`EvalTransform`."""
        return self._resize(self.to_nchw(raw))

    def _erase(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        if not self.augment:
            return x
        return random_erase_batch(x, self.erasing_p, self.erasing_scale, self.erasing_ratio, self.erasing_value, g)

    def __call__(
        self, raw: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.to_nchw(raw)
        n = raw.shape[0]
        src = add_noise_batch(raw, self.noise_p, self.noise_var, generator) if self.augment else raw
        if self.flip_view == "mirrored":
            x = self._erase(self._resize(src), generator)
            return x, x.flip(-1)
        # independent: x from the (noisy) raw image, x′ from the mirrored clean raw image; one resize and
        # one vectorised erasing over the 2N stack, each image with its own box
        both = self._resize(torch.cat([src, raw.flip(-1)]))
        both = self._erase(both, generator)
        return both[:n], both[n:]
