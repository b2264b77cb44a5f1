"""eacfer's Caffe-style ResNet-50 (models/resnet_caffe.py) against an independent reference written from the
published architecture (tests/caffe_reference.py), stage by stage on shared weights.

The trap this network exists to avoid: torchvision's ResNet-50 has the same parameter names and shapes but puts
the stride of a downsampling bottleneck in its 3×3 conv and pads the stem max-pool; loading the MS-Celeb
weights into it "works" and computes other features.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from caffe_reference import STAGES, caffe_resnet50_stages, random_caffe_state
from eacfer.models.resnet_caffe import CaffeResNet50

pytestmark = pytest.mark.spec  # written from the paper or a specification (`pytest -m spec`)


def _stages_of(net: CaffeResNet50, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The same stage outputs from eacfer's module (hooks, so its own forward runs)."""
    out: dict[str, torch.Tensor] = {}
    hooks = [getattr(net, n).register_forward_hook(lambda _m, _i, o, n=n: out.__setitem__(n, o))
             for n in ("maxpool", "layer1", "layer2", "layer3", "layer4")]
    try:
        final = net(x)
    finally:
        for h in hooks:
            h.remove()
    out["stem"] = out.pop("maxpool")
    assert torch.equal(final, out["layer4"])
    return out


@pytest.fixture(scope="module")
def shared():
    sd = random_caffe_state(seed=3)
    net = CaffeResNet50().eval()
    net.load_state_dict(sd, strict=True)
    return sd, net


@pytest.mark.parametrize("side", [64, 65])
def test_every_stage_matches_the_reference(shared, side):
    sd, net = shared
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(side))
    with torch.no_grad():
        ref = caffe_resnet50_stages(sd, x)
        got = _stages_of(net, x)
    for name in ("stem", "layer1", "layer2", "layer3", "layer4"):
        assert got[name].shape == ref[name].shape, name
        scale = float(ref[name].abs().max())
        err = float((got[name] - ref[name]).abs().max())
        assert err <= 1e-4 * max(1.0, scale), f"{name}: max |diff| {err:.3g} (scale {scale:.3g})"


def test_stage_shapes_follow_ceil_mode_pooling(shared):
    _, net = shared
    # 64 px: conv1 → 32; a 3×3/2 pool without padding gives 15 in floor mode and 16 in ceil mode (Caffe)
    with torch.no_grad():
        got = _stages_of(net, torch.zeros(1, 3, 64, 64))
    assert tuple(got["stem"].shape[-2:]) == (16, 16)
    assert tuple(got["layer1"].shape[1:]) == (256, 16, 16)
    assert tuple(got["layer2"].shape[1:]) == (512, 8, 8)
    assert tuple(got["layer3"].shape[1:]) == (1024, 4, 4)
    assert tuple(got["layer4"].shape[1:]) == (2048, 2, 2)
    with torch.no_grad():
        assert tuple(net(torch.zeros(1, 3, 224, 224)).shape) == (1, 2048, 7, 7)


def test_stride_sits_in_the_first_1x1_conv_of_each_downsampling_block():
    net = CaffeResNet50()
    assert net.maxpool.ceil_mode is True and net.maxpool.padding in (0, (0, 0))
    for name, mid, blocks, stride in STAGES:
        layer = getattr(net, name)
        assert len(layer) == blocks
        for b, block in enumerate(layer):
            s = stride if b == 0 else 1
            assert block.conv1.stride == (s, s) and block.conv1.kernel_size == (1, 1), f"{name}.{b}.conv1"
            assert block.conv2.stride == (1, 1) and block.conv2.kernel_size == (3, 3), f"{name}.{b}.conv2"
            assert block.conv3.out_channels == mid * 4
            if b == 0:
                assert block.downsample[0].stride == (s, s)
            else:
                assert block.downsample is None


def test_torchvision_style_stride_would_be_caught(shared):
    """Move the stride to the 3×3 conv (torchvision style) in a copy: layer2 onwards must disagree clearly."""
    sd, net = shared
    import copy

    moved = copy.deepcopy(net)
    for name in ("layer2", "layer3", "layer4"):
        block = getattr(moved, name)[0]
        block.conv1.stride, block.conv2.stride = (1, 1), (2, 2)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref, bad = caffe_resnet50_stages(sd, x), _stages_of(moved, x)
    assert torch.allclose(bad["layer1"], ref["layer1"], atol=1e-4)  # stage 1 has no stride
    rel = float((bad["layer2"] - ref["layer2"]).abs().mean() / ref["layer2"].abs().mean())
    assert rel > 0.05, f"moving the stride changed layer2 by only {rel:.3%}"


def test_weights_load_and_bn_statistics_matter(shared):
    sd, net = shared
    assert set(net.state_dict()) == set(sd)
    for k, v in net.state_dict().items():
        assert v.shape == sd[k].shape, k
    # BN in eval mode uses the running statistics: shifting one running mean changes the output
    shifted = dict(sd)
    shifted["layer4.2.bn3.running_mean"] = sd["layer4.2.bn3.running_mean"] + 1.0
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert not torch.allclose(caffe_resnet50_stages(shifted, x)["layer4"], net(x), atol=1e-3)


def test_fresh_initialisation_is_he_normal_and_bn_identity():
    torch.manual_seed(0)
    net = CaffeResNet50()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 3 * 16 + 4  # stem + 16 bottlenecks × 3 + 4 projection shortcuts
    assert all(c.bias is None for c in convs)
    w = net.layer3[1].conv2.weight  # 256 → 256, 3×3: fan_out = 256·9
    assert abs(float(w.detach().std()) - (2.0 / (256 * 9)) ** 0.5) < 0.1 * (2.0 / (256 * 9)) ** 0.5
    w = net.layer3[1].conv3.weight  # 256 → 1024, 1×1: fan_out = 1024 (fan_in 256 would give twice the std)
    assert abs(float(w.detach().std()) - (2.0 / 1024) ** 0.5) < 0.1 * (2.0 / 1024) ** 0.5
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert bool((m.weight == 1).all()) and bool((m.bias == 0).all())


def _pickle(path, obj, protocol: int = 2) -> str:
    import pickle

    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return str(path)


def test_weights_errors_name_every_kind_of_problem(tmp_path):
    import numpy as np

    from eacfer.models.resnet_caffe import load_msceleb_weights

    trunk = CaffeResNet50()  # a refused file leaves it untouched, so one trunk serves every case
    own = trunk.state_dict()
    n_missing = len([k for k in own if k != "conv1.weight" and not k.endswith("num_batches_tracked")])
    bad = {"conv1.weight": np.zeros(1, np.float32), **{f"zzz.{c}": np.zeros(1, np.float32) for c in "abcd"}}
    path = _pickle(tmp_path / "bad.pkl", bad)
    with pytest.raises(ValueError) as e:
        load_msceleb_weights(trunk, path)
    assert str(e.value) == (
        f"{path}: not a Caffe-style ResNet-50 state: missing {n_missing} keys (e.g. bn1.weight, bn1.bias, "
        "bn1.running_mean); unexpected 4 keys (e.g. zzz.a, zzz.b, zzz.c); wrong shapes: conv1.weight (1,)≠(64, 3, 7, 7)")
    only_extra = {k: v.numpy() for k, v in own.items() if not k.endswith("num_batches_tracked")}
    only_extra["fc.weight"] = np.zeros((8631, 2048), np.float32)[:1]  # the identity classifier is dropped
    only_extra["extra.w"] = np.zeros(2, np.float32)
    with pytest.raises(ValueError, match=r"not a Caffe-style ResNet-50 state: unexpected 1 keys \(e\.g\. extra\.w\)$"):
        load_msceleb_weights(trunk, _pickle(tmp_path / "extra.pkl", only_extra, protocol=4))  # 100 MB
    with pytest.raises(ValueError, match=r"key 'conv1\.weight' holds str, expected a numpy array"):
        load_msceleb_weights(trunk, _pickle(tmp_path / "str.pkl", {"conv1.weight": "x"}))


def test_imagenet_weights_are_refused_with_the_way_out():
    from eacfer.models.factory import create_model

    with pytest.raises(ValueError, match=r"^resnet50_msceleb has no ImageNet weights; pass --pretrained "
                                         r"resnet50_ft_weight\.pkl \(the MS-Celeb-1M/VGGFace2 pickle, see `eacfer weights`\)$"):
        create_model("resnet50_msceleb", pretrained="imagenet")
