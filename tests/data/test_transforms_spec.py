"""The CPU reference transform (data/transforms.py) against the EAC specification, with augmentation ON.

Specification (the official code's dataset, docs/TRAINING.md, the module docstring):
  * x  = RandomErasing(normalise(resize(noise?(raw))))  — Gaussian pixel noise σ²=30 with p=0.5 on the
    raw uint8 image, Pillow bilinear resize, /255, ImageNet normalisation, RandomErasing
    (p=0.5, scale=(0.02, 0.25), ratio=(0.3, 3.3), value 0);
  * "mirrored" (clean labels): x′ is exactly the mirror image of x — the same noise, the same erased patch;
  * "independent" (noisy labels): x′ is the *raw* image flipped, through resize/normalise and its *own*
    random erasing, and never the pixel noise.
The existing tests only ran the CPU transform with augmentation off, where both modes give the same pair.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eacfer.constants import IMAGENET_MEAN, IMAGENET_STD
from eacfer.data.transforms import EACTrainTransform, EvalTransform, add_gaussian_noise

pytestmark = pytest.mark.spec  # written from the paper or a specification (`pytest -m spec`)

SIZE = 32


def _raw(seed: int, side: int = 40) -> np.ndarray:
    """A textured image with values well inside 0..255, so noise is never hidden by clipping."""
    rng = np.random.default_rng(seed)
    return rng.integers(40, 216, size=(side, side, 3), dtype=np.uint8)


def _erased_box(view: torch.Tensor, clean: torch.Tensor) -> tuple[int, int, int, int] | None:
    """Bounding box (top, left, h, w) of the pixels where ``view`` differs from ``clean``; None when equal."""
    diff = (view != clean).any(dim=0)
    if not bool(diff.any()):
        return None
    rows = torch.nonzero(diff.any(dim=1)).flatten()
    cols = torch.nonzero(diff.any(dim=0)).flatten()
    top, left = int(rows[0]), int(cols[0])
    return top, left, int(rows[-1]) - top + 1, int(cols[-1]) - left + 1


def _assert_clean_outside_one_zero_patch(view: torch.Tensor, clean: torch.Tensor) -> tuple[int, int, int, int]:
    """``view`` equals ``clean`` exactly except inside one rectangle, which is all zeros (the erasing value)."""
    box = _erased_box(view, clean)
    assert box is not None, "no erased patch although erasing_p=1"
    top, left, h, w = box
    patch = view[:, top : top + h, left : left + w]
    assert bool((patch == 0).all()), "pixels differ outside one zero-valued rectangle (noise or another image)"
    outside = torch.ones_like(view, dtype=torch.bool)
    outside[:, top : top + h, left : left + w] = False
    assert torch.equal(view[outside], clean[outside])
    return box


@pytest.mark.parametrize("seed", range(6))
def test_independent_view_is_eval_of_flipped_raw_outside_its_patch(seed):
    raw = _raw(seed)
    torch.manual_seed(seed)
    t = EACTrainTransform(SIZE, noise_p=1.0, erasing_p=1.0, flip_view="independent")
    x, xf = t(raw)
    expected_flip = EvalTransform(SIZE)(np.ascontiguousarray(raw[:, ::-1]))
    _assert_clean_outside_one_zero_patch(xf, expected_flip)
    # x itself did get the pixel noise (noise_p=1): it differs from the clean view outside its patch
    clean = EvalTransform(SIZE)(raw)
    box = _erased_box(x, clean)
    assert box is not None
    top, left, h, w = box
    assert h * w > 0.5 * SIZE * SIZE, "x should differ almost everywhere (pixel noise), not only in its patch"


def test_independent_view_without_erasing_is_exactly_eval_of_flipped_raw():
    raw = _raw(11)
    torch.manual_seed(0)
    t = EACTrainTransform(SIZE, noise_p=1.0, erasing_p=0.0, flip_view="independent")
    x, xf = t(raw)
    assert torch.equal(xf, EvalTransform(SIZE)(np.ascontiguousarray(raw[:, ::-1])))
    assert not torch.equal(x, EvalTransform(SIZE)(raw))  # the noise went to x only


def test_independent_view_has_its_own_erasing():
    """Over a few draws, x′'s patch is at least once not the mirror of x's patch (own random erasing)."""
    raw = _raw(3)
    t = EACTrainTransform(SIZE, noise_p=0.0, erasing_p=1.0, flip_view="independent")
    clean, clean_f = EvalTransform(SIZE)(raw), EvalTransform(SIZE)(np.ascontiguousarray(raw[:, ::-1]))
    mirrored_patches = 0
    for seed in range(8):
        torch.manual_seed(seed)
        x, xf = t(raw)
        bx = _assert_clean_outside_one_zero_patch(x, clean)
        bf = _assert_clean_outside_one_zero_patch(xf, clean_f)
        top, left, h, w = bx
        mirrored_patches += bf == (top, SIZE - left - w, h, w)
    assert mirrored_patches < 8


@pytest.mark.parametrize("seed", range(6))
def test_mirrored_view_is_exact_mirror_of_augmented_x(seed):
    raw = _raw(100 + seed)
    torch.manual_seed(seed)
    t = EACTrainTransform(SIZE, noise_p=1.0, erasing_p=1.0, flip_view="mirrored")
    x, xf = t(raw)
    assert torch.equal(xf, x.flip(-1))
    # and x really is augmented: the noise is there and so is a zero patch
    assert not torch.equal(x, EvalTransform(SIZE)(raw))
    assert int((x == 0).all(dim=0).sum()) >= 0.02 * SIZE * SIZE * 0.5


def test_modes_are_not_swapped_and_default_is_mirrored():
    raw = _raw(7)
    for seed in range(4):
        torch.manual_seed(seed)
        x, xf = EACTrainTransform(SIZE, noise_p=1.0, erasing_p=0.0, flip_view="mirrored")(raw)
        assert torch.equal(xf, x.flip(-1))
        torch.manual_seed(seed)
        x, xf = EACTrainTransform(SIZE, noise_p=1.0, erasing_p=0.0, flip_view="independent")(raw)
        assert not torch.equal(xf, x.flip(-1))  # the noisy x mirrored is not the clean flipped raw
        assert torch.equal(xf, EvalTransform(SIZE)(np.ascontiguousarray(raw[:, ::-1])))
    assert EACTrainTransform(SIZE).flip_view == "mirrored"
    with pytest.raises(ValueError, match="flip_view"):
        EACTrainTransform(SIZE, flip_view="mirror")


def test_augment_off_gives_clean_views_in_both_modes():
    raw = _raw(5)
    for mode in ("mirrored", "independent"):
        torch.manual_seed(0)
        x, xf = EACTrainTransform(SIZE, noise_p=1.0, erasing_p=1.0, flip_view=mode, augment=False)(raw)
        assert torch.equal(x, EvalTransform(SIZE)(raw))
        if mode == "mirrored":
            assert torch.equal(xf, x.flip(-1))
        else:
            assert torch.equal(xf, EvalTransform(SIZE)(np.ascontiguousarray(raw[:, ::-1])))


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    m = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    s = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((x * s + m) * 255.0).round().to(torch.int64)


def _noise_of(t: EACTrainTransform, side: int = 256) -> torch.Tensor:
    raw = np.full((side, side, 3), 128, np.uint8)
    x, _ = t(raw)  # side → side: the resize is the identity, so x shows the noise itself
    return (_to_uint8(x) - 128).to(torch.float64)


def test_pixel_noise_has_variance_30_and_is_truncated_like_the_official_code():
    """add_g: raw + N(0, 30), clipped to [0, 255], cast to uint8 (truncation: mean shift -0.5, +1/12 variance)."""
    torch.manual_seed(0)
    d = _noise_of(EACTrainTransform(256, noise_p=1.0, erasing_p=0.0))
    # 196 608 samples: the sample variance has a standard error of ~0.1
    assert 29.6 < float(d.var()) < 30.55, float(d.var())
    assert -0.6 < float(d.mean()) < -0.4
    torch.manual_seed(0)
    d = _noise_of(EACTrainTransform(256, noise_p=1.0, erasing_p=0.0, noise_var=100.0))
    assert 98.0 < float(d.var()) < 102.5  # noise_var is passed on
    torch.manual_seed(0)
    direct = add_gaussian_noise(torch.full((3, 256, 256), 128, dtype=torch.uint8)).to(torch.float64) - 128
    assert 29.6 < float(direct.var()) < 30.55  # the default variance is the official 30


def test_pixel_noise_is_clipped_not_wrapped():
    torch.manual_seed(0)
    black = add_gaussian_noise(torch.zeros(3, 64, 64, dtype=torch.uint8), 1e4)
    white = add_gaussian_noise(torch.full((3, 64, 64), 255, dtype=torch.uint8), 1e4)
    assert black.dtype == white.dtype == torch.uint8
    # σ = 100: about half the draws fall below 0 (→ 0) or above 255 (→ 255); the rest stay near the border
    assert 0.45 < float((black == 0).double().mean()) < 0.55
    assert 0.45 < float((white == 255).double().mean()) < 0.55
    assert float((black > 200).double().mean()) < 0.05 and float((white < 55).double().mean()) < 0.05


def test_to_tensor_checks_each_property_and_never_warns():
    import warnings

    from eacfer.data.transforms import to_tensor_uint8

    for bad in (np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 3), np.float32),
                np.zeros((8, 8, 3, 1), np.uint8)):
        with pytest.raises(ValueError, match=r"expected an H×W×3 uint8 image, got shape"):
            to_tensor_uint8(bad)
    ro = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    ro.flags.writeable = False  # cached dataset images are read-only
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = to_tensor_uint8(ro)
    assert t.shape == (3, 8, 8) and torch.equal(t.permute(1, 2, 0), torch.from_numpy(ro.copy()))


def test_default_sizes_are_the_papers_224():
    assert EACTrainTransform().image_size == 224 and EvalTransform().image_size == 224
    x, xf = EACTrainTransform(augment=False)(np.zeros((100, 100, 3), np.uint8))
    assert x.shape == xf.shape == (3, 224, 224)
    assert EvalTransform()(np.zeros((100, 100, 3), np.uint8)).shape == (3, 224, 224)


def test_noise_and_erasing_happen_about_half_the_time_by_default():
    raw = _raw(9, side=SIZE)
    clean = EvalTransform(SIZE)(raw)
    t = EACTrainTransform(SIZE)
    torch.manual_seed(1)
    noisy = erased = 0
    n = 200
    for _ in range(n):
        x, _ = t(raw)
        box = _erased_box(x, clean)
        if box is None:
            continue
        zero_px = int((x == 0).all(dim=0).sum())
        erased += zero_px > 0
        noisy += int((x != clean).any(dim=0).sum()) - zero_px > SIZE * SIZE // 2
    assert 0.38 * n < noisy < 0.62 * n
    assert 0.38 * n < erased < 0.62 * n


def test_erased_area_follows_scale_and_ratio():
    raw = _raw(4, side=64)
    t = EACTrainTransform(64, noise_p=0.0, erasing_p=1.0)
    clean = EvalTransform(64)(raw)
    areas, ratios = [], []
    for seed in range(60):
        torch.manual_seed(seed)
        x, _ = t(raw)
        top, left, h, w = _assert_clean_outside_one_zero_patch(x, clean)
        areas.append(h * w / 64.0**2)
        ratios.append(h / w)
    assert min(areas) >= 0.02 * 0.8 and max(areas) <= 0.25 * 1.15
    assert max(areas) > 0.12  # the range is used, not one fixed size
    assert min(ratios) >= 0.3 * 0.7 and max(ratios) <= 3.3 / 0.7
