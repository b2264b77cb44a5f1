"""resample.resize_uint8 reproduces Pillow's BILINEAR resize byte for byte (the official code's Resize)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from eacfer.data.resample import resize_uint8


def _pil(a: np.ndarray, h: int, w: int) -> np.ndarray:
    return np.asarray(Image.fromarray(a).resize((w, h), Image.BILINEAR))


def _image(rng, h, w, kind):
    a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if kind == "smooth":
        a = np.sort(a, axis=1).astype(np.uint8)
    elif kind == "edges":
        a = (a > 128).astype(np.uint8) * 255
    return a


# Pillow ≤ 11 always runs the horizontal pass first; newer Pillow runs the vertical pass first in some
# shapes where the height shrinks, which moves a few pixels by one level. Where the height does not
# shrink (RAF-DB's 100 → 224 among them) every Pillow version and both backends agree byte for byte.
GROW = [((100, 100), (224, 224)), ((100, 100), (112, 112)), ((37, 53), (224, 224)), ((1, 1), (5, 7)),
        ((100, 100), (100, 224)), ((48, 48), (64, 32)), ((2, 3), (3, 2))]
SHRINK = [((100, 100), (48, 48)), ((480, 640), (224, 224)), ((5, 7), (1, 1)), ((224, 224), (100, 100)),
          ((2, 2), (1, 4))]


def _ids(cases):
    return [f"{a[0]}x{a[1]}-{b[0]}x{b[1]}" for a, b in cases]


@pytest.mark.parametrize("src, dst", GROW, ids=_ids(GROW))
@pytest.mark.parametrize("kind", ["noise", "smooth", "edges"])
def test_torch_backend_equals_pillow(src, dst, kind):
    a = _image(np.random.default_rng(0), *src, kind)
    ours = resize_uint8(torch.from_numpy(a).permute(2, 0, 1), dst, backend="torch").permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(ours, _pil(a, *dst))


@pytest.mark.parametrize("src, dst", SHRINK, ids=_ids(SHRINK))
def test_torch_backend_within_one_level_of_pillow_when_height_shrinks(src, dst):
    a = _image(np.random.default_rng(0), *src, "noise")
    ours = resize_uint8(torch.from_numpy(a).permute(2, 0, 1), dst, backend="torch").permute(1, 2, 0).numpy()
    d = np.abs(ours.astype(int) - _pil(a, *dst))
    assert d.max() <= 1 and d.mean() < 0.1, (d.max(), d.mean())


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), dh=st.integers(0, 40), ow=st.integers(1, 60),
       seed=st.integers(0, 2**16))
def test_torch_backend_equals_pillow_any_sizes(h, w, dh, ow, seed):
    oh = h + dh  # height kept or grown (see GROW above); any width
    a = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    ours = resize_uint8(torch.from_numpy(a).permute(2, 0, 1), (oh, ow), backend="torch").permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(ours, _pil(a, oh, ow))


def test_backends_agree_on_batches_and_channel_layouts():
    rng = np.random.default_rng(1)
    batch = torch.from_numpy(rng.integers(0, 256, (2, 4, 3, 30, 41), dtype=np.uint8))
    a, b = resize_uint8(batch, 64, backend="torch"), resize_uint8(batch, 64, backend="pil")
    assert a.shape == b.shape == (2, 4, 3, 64, 64) and torch.equal(a, b)
    assert torch.equal(resize_uint8(batch, 64), b)  # auto on CPU = Pillow
    gray = torch.from_numpy(rng.integers(0, 256, (5, 1, 48, 48), dtype=np.uint8))
    g = resize_uint8(gray, 100)
    assert torch.equal(g, resize_uint8(gray, 100, backend="torch"))
    np.testing.assert_array_equal(g[2, 0].numpy(), _pil(gray[2, 0].numpy(), 100, 100))
    plane = gray[0, 0]
    assert torch.equal(resize_uint8(plane, (20, 30)), resize_uint8(plane, (20, 30), backend="torch"))
    assert resize_uint8(plane, 48) is plane  # unchanged size: no work


def test_bad_arguments():
    with pytest.raises(ValueError, match="uint8"):
        resize_uint8(torch.zeros(3, 4, 4), 8)
    with pytest.raises(ValueError, match="cannot resize to 0"):
        resize_uint8(torch.zeros(3, 4, 4, dtype=torch.uint8), (0, 4))
    with pytest.raises(ValueError, match="backend"):
        resize_uint8(torch.zeros(3, 4, 4, dtype=torch.uint8), 8, backend="cv2")


def test_eval_transform_equals_the_official_torchvision_pipeline():
    """The official code tests with ToPILImage → Resize((224, 224)) → ToTensor → Normalize."""
    from torchvision import transforms as T

    from eacfer.constants import IMAGENET_MEAN, IMAGENET_STD
    from eacfer.data.transforms import EvalTransform
    from eacfer.training.fast.gpu_augment import GPUAugment

    official = T.Compose([T.ToPILImage(), T.Resize((224, 224)), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    imgs = np.stack([_image(np.random.default_rng(s), 100, 100, k) for s, k in enumerate(["noise", "smooth", "edges"])])
    ref = torch.stack([official(im) for im in imgs])
    ours = torch.stack([EvalTransform(224)(im) for im in imgs])
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)
    for backend in ("auto", "torch"):  # the fast pipeline's batched resize, as on CPU and as on a GPU
        batched = GPUAugment(224, resize_backend=backend).normalize(torch.from_numpy(imgs))
        torch.testing.assert_close(batched, ref, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="resize_backend"):
        GPUAugment(224, resize_backend="cv2")
