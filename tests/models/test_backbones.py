"""Backbones: logits/CAM shapes, Caffe-style vs torchvision ResNet-50, and the safe weights loader."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from eacfer import create_model, list_backbones
from eacfer.models.resnet_caffe import CaffeResNet50, UnsafePickleError, load_numpy_pickle

BACKBONES = [b for b in list_backbones() if not b.startswith("timm:")]


def test_registry_lists_the_paper_backbones():
    assert {"resnet50_msceleb", "mobilenet_v2", "resnet18", "resnet50"} <= set(BACKBONES)


def test_unknown_backbone_lists_known_ones():
    with pytest.raises(KeyError) as e:
        create_model("vgg_nope")
    msg = str(e.value)
    assert "vgg_nope" in msg and "resnet50_msceleb" in msg and "mobilenet_v2" in msg


@pytest.mark.parametrize("name", BACKBONES)
def test_logits_and_cam_shapes(name):
    torch.manual_seed(0)
    net = create_model(name, num_classes=5).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = net.forward_features(x)
        logits, cams = net.forward_with_cams(x)
        plain = net(x)
    n, c, h, w = feats.shape
    assert c == net.num_features and h >= 1 and w >= 1
    assert logits.shape == (2, 5)
    assert cams.shape == (2, 5, h, w)
    torch.testing.assert_close(plain, logits)
    # CAMs are Σ_c W[k,c]·F[c]: averaging them over space gives the logits minus the bias
    torch.testing.assert_close(cams.mean(dim=(2, 3)) + net.fc.bias, logits, rtol=1e-4, atol=1e-4)


def _caffe_and_torchvision_with_same_weights():
    torch.manual_seed(0)
    caffe = CaffeResNet50().eval()
    # non-trivial BN statistics so every layer matters
    for m in caffe.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    tv = create_model("resnet50").backbone.eval()
    result = tv.load_state_dict(caffe.state_dict(), strict=True)  # silently accepted: same names and shapes
    assert not result.missing_keys and not result.unexpected_keys
    return caffe, tv


def test_torchvision_resnet50_accepts_caffe_weights_but_computes_other_features():
    caffe, tv = _caffe_and_torchvision_with_same_weights()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        fc, ft = caffe(x), tv(x)
    assert fc.shape == ft.shape == (1, 2048, 2, 2)
    rel = (fc - ft).abs().mean() / fc.abs().mean()
    assert rel > 0.1, f"features should differ substantially, relative difference {rel:.4f}"


def test_caffe_maxpool_ceil_mode_changes_shapes():
    caffe, tv = _caffe_and_torchvision_with_same_weights()
    # conv1 of a 65-px input gives 33×33: ceil-mode pool without padding → 16, torchvision (pad 1) → 17
    z = torch.zeros(1, 64, 33, 33)
    assert caffe.maxpool(z).shape[-1] == 16
    assert tv.maxpool(z).shape[-1] == 17
    with torch.no_grad():
        assert caffe(torch.randn(1, 3, 65, 65)).shape[-2:] == (2, 2)
        assert tv(torch.randn(1, 3, 65, 65)).shape[-2:] == (3, 3)


# ---------------------------------------------------------------- resnet50_ft_weight.pkl loading


class _Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def fake_msceleb_state():
    """A random Caffe ResNet-50 state as numpy arrays, like resnet50_ft_weight.pkl (no num_batches_tracked, 8631-way fc)."""
    torch.manual_seed(1)
    trunk = CaffeResNet50()
    state = {k: v.numpy().copy() for k, v in trunk.state_dict().items() if not k.endswith("num_batches_tracked")}
    rng = np.random.default_rng(0)
    state["fc.weight"] = rng.standard_normal((8631, 2048), dtype=np.float32) * 0.01
    state["fc.bias"] = np.zeros(8631, np.float32)
    return state


def _write(path, obj, protocol=4):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=protocol)
    return path


@pytest.fixture(scope="module")
def fake_pkl(tmp_path_factory, fake_msceleb_state):
    return _write(tmp_path_factory.mktemp("w") / "resnet50_ft_weight.pkl", fake_msceleb_state)


def test_old_protocol_pickles_load_but_only_latin1_codecs(tmp_path):
    # Python 3 protocol-2 pickles of arrays go through _codecs.encode(..., "latin1"): admitted, nothing else is
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = load_numpy_pickle(_write(tmp_path / "p2.pkl", {"a": arr}, protocol=2))
    np.testing.assert_array_equal(out["a"], arr)

    class Rot13:
        def __reduce__(self):
            import codecs

            return (codecs.encode, ("abc", "rot13"))

    with pytest.raises(UnsafePickleError, match="rot13"):
        load_numpy_pickle(_write(tmp_path / "rot.pkl", {"a": Rot13()}, protocol=2))


def test_restricted_unpickler_refuses_hostile_pickle(tmp_path):
    marker = tmp_path / "pwned"
    bad = _write(tmp_path / "evil.pkl", {"conv1.weight": np.zeros(3, np.float32), "x": _Hostile(marker)})
    with pytest.raises(UnsafePickleError, match="posix.system|os.system|refusing"):
        load_numpy_pickle(bad)
    with pytest.raises(ValueError, match="evil.pkl"):
        create_model("resnet50_msceleb", pretrained=str(bad))
    assert not marker.exists(), "the hostile pickle ran code"
    # pickle.load would have run it: proves the file really was hostile
    with open(bad, "rb") as fh:
        pickle.load(fh)
    assert marker.exists()


def test_loads_numpy_pickle_into_caffe_resnet(fake_pkl, fake_msceleb_state):
    net = create_model("resnet50_msceleb", num_classes=7, pretrained=str(fake_pkl))
    own = net.backbone.state_dict()
    for k in ("conv1.weight", "layer4.2.bn3.running_var", "layer2.0.downsample.0.weight"):
        np.testing.assert_array_equal(own[k].numpy(), fake_msceleb_state[k])
    assert net.fc.weight.shape == (7, 2048)  # the 8631-way identity fc is dropped


def test_weights_errors_name_missing_and_mismatched_keys(tmp_path, fake_msceleb_state):
    trunk_only = {k: v for k, v in fake_msceleb_state.items() if not k.startswith("fc.")}  # smaller files
    missing = dict(trunk_only)
    del missing["layer3.1.conv2.weight"]
    with pytest.raises(ValueError, match=r"missing 1 keys.*layer3\.1\.conv2\.weight"):
        create_model("resnet50_msceleb", pretrained=str(_write(tmp_path / "missing.pkl", missing)))
    bad = dict(trunk_only)
    bad["layer1.0.conv1.weight"] = np.zeros((64, 64, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"wrong shapes: layer1\.0\.conv1\.weight"):
        create_model("resnet50_msceleb", pretrained=str(_write(tmp_path / "shape.pkl", bad)))
    with pytest.raises(FileNotFoundError):
        create_model("resnet50_msceleb", pretrained=str(tmp_path / "nope.pkl"))
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match="junk.pkl"):
        create_model("resnet50_msceleb", pretrained=str(tmp_path / "junk.pkl"))


def test_weights_verify_command(tmp_path, fake_pkl, capsys):
    from eacfer.commands.cli import main

    pkl = fake_pkl
    assert main(["weights", "verify", str(pkl)]) == 0
    out = capsys.readouterr().out
    import hashlib

    assert hashlib.sha256(pkl.read_bytes()).hexdigest() in out and "OK" in out
    evil = _write(tmp_path / "evil.pkl", {"x": _Hostile(tmp_path / "m")})
    assert main(["weights", "verify", str(evil)]) == 2
    assert "refusing" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
    assert main(["weights"]) == 0
    assert "resnet50_ft_weight.pkl" in capsys.readouterr().out
