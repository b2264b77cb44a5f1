"""Batched on-device augmentation vs the reference CPU transforms (eacfer.data.transforms / torchvision)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms import RandomErasing

from eacfer.constants import IMAGENET_MEAN, IMAGENET_STD
from eacfer.data.transforms import EACTrainTransform, EvalTransform, add_gaussian_noise, resize_normalize
from eacfer.training.fast.gpu_augment import (
    GPUAugment,
    add_noise_batch,
    random_erase_batch,
    resize_normalize_batch,
)
from fast_testutils import ks_critical, ks_statistic

N_DIST = 3000  # samples per distribution comparison


def _raw(n: int, h: int = 50, w: int = 50, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("src_size", [50, 32, 20])
def test_batched_resize_equals_per_image(src_size):
    raw = _raw(6, src_size, src_size)
    batch = GPUAugment(32).normalize(torch.from_numpy(raw))
    ref = torch.stack([EvalTransform(32)(im) for im in raw])
    assert batch.shape == (6, 3, 32, 32)
    torch.testing.assert_close(batch, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("flip_view", ["mirrored", "independent"])
def test_no_augment_matches_reference_transform(flip_view):
    raw = _raw(5)
    x, xf = GPUAugment(32, flip_view=flip_view, augment=False)(torch.from_numpy(raw))
    ref = [EACTrainTransform(32, flip_view=flip_view, augment=False)(im) for im in raw]
    torch.testing.assert_close(x, torch.stack([r[0] for r in ref]), rtol=0, atol=1e-6)
    torch.testing.assert_close(xf, torch.stack([r[1] for r in ref]), rtol=0, atol=1e-6)
    assert torch.equal(xf, x.flip(-1))


def _erased_stats(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image: erased?, erased-area fraction, box height/width (from an all-ones input)."""
    mask = (x[:, 0] == 0)
    erased = mask.flatten(1).any(1)
    frac = mask.flatten(1).float().mean(1)
    h = mask.any(2).sum(1).float()
    w = mask.any(1).sum(1).float()
    return erased.numpy(), frac.numpy(), (h / w.clamp(min=1)).numpy()


def _torchvision_erasing(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    er = RandomErasing(p=0.5, scale=(0.02, 0.25), ratio=(0.3, 3.3), value=0)
    return torch.stack([er(torch.ones(3, h, w)) for _ in range(n)])


@pytest.mark.parametrize("hw", [(32, 32), (4, 40)])  # (4, 40): most attempts fail, tests the retry rule
def test_erasing_distribution_matches_torchvision(hw):
    h, w = hw
    ref = _torchvision_erasing(N_DIST, h, w, seed=1)
    g = torch.Generator().manual_seed(2)
    ours = random_erase_batch(torch.ones(N_DIST, 3, h, w), 0.5, (0.02, 0.25), (0.3, 3.3), "zero", g)
    e_ref, f_ref, r_ref = _erased_stats(ref)
    e_our, f_our, r_our = _erased_stats(ours)
    # erasing probability (includes the "no valid attempt in 10" cases): within 4 binomial σ
    p = e_ref.mean()
    assert abs(e_our.mean() - p) < 4 * np.sqrt(p * (1 - p) / N_DIST) + 1e-9
    # erased-area fraction histogram and box aspect ratio of the erased images: KS at α = 0.001
    crit = ks_critical(int(e_ref.sum()), int(e_our.sum()))
    assert ks_statistic(f_ref[e_ref], f_our[e_our]) < crit
    assert ks_statistic(r_ref[e_ref], r_our[e_our]) < crit
    # every channel erased together, and always a full rectangle
    assert torch.equal((ours == 0).all(1), (ours == 0).any(1))


def test_erasing_box_positions_uniform():
    g = torch.Generator().manual_seed(0)
    ours = random_erase_batch(torch.ones(N_DIST, 1, 32, 32), 1.0, (0.02, 0.25), (0.3, 3.3), "zero", g)
    ref = _torchvision_erasing(N_DIST, 32, 32, seed=3)[:, :1]
    def first(x, axis):
        m = (x[:, 0] == 0).any(3 - axis).float()
        return m.argmax(1)[m.any(1)].numpy()

    for axis in (1, 2):  # first erased row / column
        a, b = first(ref, axis), first(ours, axis)
        assert ks_statistic(a, b) < ks_critical(a.size, b.size)


def test_erasing_random_value_option():
    g = torch.Generator().manual_seed(0)
    x = torch.full((2000, 3, 16, 16), 7.0)
    out = random_erase_batch(x, 1.0, value="random", generator=g)
    vals = out[out != 7.0]
    assert vals.numel() > 10000
    assert abs(vals.mean().item()) < 0.05 and abs(vals.std().item() - 1.0) < 0.05


def test_noise_statistics_match_reference():
    # a mid-grey image (no clipping) and a dark one (clipping at 0): compare the pixel-value distribution
    for level in (128, 3):
        raw = torch.full((N_DIST // 10, 3, 8, 8), level, dtype=torch.uint8)
        torch.manual_seed(0)
        ref = torch.stack([add_gaussian_noise(im, 30.0) for im in raw]).double()
        ours = add_noise_batch(raw, p=1.0, var=30.0, generator=torch.Generator().manual_seed(1)).double()
        assert abs(ours.mean() - ref.mean()) < 0.05
        assert abs(ours.std() - ref.std()) < 0.05
        assert abs((ours == 0).double().mean() - (ref == 0).double().mean()) < 0.01
    # truncation, not rounding: the mean of trunc(128 + N(0, 30)) is 127.5, not 128
    assert abs(ours.mean().item() - ref.mean().item()) < 0.05
    mid = add_noise_batch(torch.full((500, 3, 8, 8), 128, dtype=torch.uint8), 1.0, 30.0,
                          torch.Generator().manual_seed(2)).double()
    assert abs(mid.mean().item() - 127.5) < 0.05
    assert abs(mid.std().item() - np.sqrt(30.0 + 1 / 12)) < 0.05


def test_noise_probability_per_image():
    raw = torch.full((4000, 3, 8, 8), 128, dtype=torch.uint8)
    out = add_noise_batch(raw, p=0.5, var=30.0, generator=torch.Generator().manual_seed(0))
    changed = (out != raw).flatten(1).any(1).double().mean().item()
    assert abs(changed - 0.5) < 4 * np.sqrt(0.25 / 4000)


def test_flip_view_semantics():
    raw = torch.from_numpy(_raw(64, 40, 40))
    g = torch.Generator().manual_seed(0)
    # mirrored: x′ is exactly the mirror of the augmented x (noise and erased box included)
    x, xf = GPUAugment(32, flip_view="mirrored")(raw, generator=g)
    assert torch.equal(xf, x.flip(-1))
    # independent, erasing off: x′ is the mirrored *clean* image (no noise); x carries noise on ~half
    aug = GPUAugment(32, flip_view="independent", noise_p=1.0, erasing_p=0.0)
    x, xf = aug(raw, generator=g)
    clean = resize_normalize_batch(raw.permute(0, 3, 1, 2).flip(-1), 32, IMAGENET_MEAN, IMAGENET_STD)
    torch.testing.assert_close(xf, clean, rtol=0, atol=1e-6)
    assert not torch.allclose(x, xf.flip(-1))
    # independent with erasing: the two views get independent boxes (both erased ≈ 1/4 of the images)
    ones = torch.full((N_DIST, 32, 32, 3), 255, dtype=torch.uint8)
    x, xf = GPUAugment(32, flip_view="independent", noise_p=0.0)(ones, generator=g)
    ex = (x == 0).flatten(1).any(1)
    exf = (xf == 0).flatten(1).any(1)
    both = (ex & exf).double().mean().item()
    assert abs(both - ex.double().mean().item() * exf.double().mean().item()) < 0.03
    assert 0.2 < both < 0.3


def test_generator_reproducible():
    raw = torch.from_numpy(_raw(8))
    a = GPUAugment(32)(raw, generator=torch.Generator().manual_seed(5))
    b = GPUAugment(32)(raw, generator=torch.Generator().manual_seed(5))
    c = GPUAugment(32)(raw, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])


def test_bad_arguments():
    with pytest.raises(ValueError, match="flip_view"):
        GPUAugment(32, flip_view="sideways")
    with pytest.raises(ValueError, match="erasing_value"):
        GPUAugment(32, erasing_value="blue")
    with pytest.raises(ValueError, match="uint8"):
        GPUAugment(32)(torch.zeros(2, 8, 8, 3))


def test_single_image_resize_path_is_the_reference():
    # the reference's per-image function and the batched one share rounding rules at every size
    raw = torch.from_numpy(_raw(1, 37, 37)).permute(0, 3, 1, 2)
    torch.testing.assert_close(
        resize_normalize_batch(raw, 24, IMAGENET_MEAN, IMAGENET_STD)[0],
        resize_normalize(raw[0], 24, IMAGENET_MEAN, IMAGENET_STD), rtol=0, atol=1e-6)
