"""`eacfer weights import`: EAC-shaped checkpoints from other people's training code, proved by logits.

Each original architecture is rebuilt here independently of eacfer — torchvision ResNet-18/50 as the official
EAC ``Model`` builds it (``features = nn.Sequential(*list(resnet.children())[:-2])`` + ``fc``), torchvision
MobileNetV2 (its ``features`` + a head, or the whole torchvision model with its classifier replaced), and the
Caffe-style ResNet-50 of tests/caffe_reference.py — random-initialised with a seed (BatchNorm statistics too,
so a mis-mapped BN key shows), saved in the wrapper forms training code uses, imported, and the imported
model's logits and CAMs compared with the original's (≤ 1e-5). CAMs of the originals follow the official
formula (feature map × fc weights, summed over channels). Both sides run in float64 for the comparison: a
mis-mapped weight moves outputs by O(1), while float32 rounding alone reaches 1e-4 on CAMs of magnitude ~1000.
"""

from __future__ import annotations

import copy
import re

import pytest
import torch
import torchvision
from torch import nn

import hostile
from caffe_reference import OfficialLayoutEAC, caffe_resnet50_stages
from eacfer.checkpoint import load_model
from eacfer.constants import RAFDB_CLASSES
from eacfer.official import MappingError, import_checkpoint

TOL = 1e-5
SIZE = 96  # small input: a 3×3 last feature map for the ResNets and MobileNetV2


def _randomise(module: nn.Module, seed: int) -> nn.Module:
    """Seeded random weights everywhere, BN statistics included (torchvision's BN init is an identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_out) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1 + 0.1 * torch.randn(m.num_features, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.num_features, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.05)
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    return module.eval()


def _official_cams(f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (f.unsqueeze(1) * w.view(1, w.shape[0], w.shape[1], 1, 1)).sum(2)


class EACStyle(nn.Module):
    """The official EAC ``Model`` with a torchvision backbone: ``features`` = the backbone's children up to
    the pooling, then global average pooling and ``fc`` (how notebooks swap the Caffe ResNet-50 out)."""

    def __init__(self, arch: str, drop_last: int, channels: int, num_classes: int = 7, seed: int = 0):
        super().__init__()
        net = getattr(torchvision.models, arch)(weights=None)
        self.features = nn.Sequential(*list(net.children())[:-drop_last])
        self.fc = nn.Linear(channels, num_classes)
        _randomise(self, seed)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.fc(nn.functional.adaptive_avg_pool2d(f, 1).flatten(1)), _official_cams(f, self.fc.weight)


class TorchvisionWhole(nn.Module):
    """A whole torchvision model whose classifier was replaced by a 7-way one (``model.fc = nn.Linear(512, 7)``
    for a ResNet; ``classifier.1`` for MobileNetV2), saved with its own names."""

    def __init__(self, arch: str, num_classes: int = 7, seed: int = 1):
        super().__init__()
        self.net = _randomise(getattr(torchvision.models, arch)(weights=None, num_classes=num_classes), seed)
        self.head = self.net.fc if arch.startswith("resnet") else self.net.classifier[1]

    def state_dict_as_saved(self) -> dict[str, torch.Tensor]:
        return self.net.state_dict()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        trunk = nn.Sequential(*list(self.net.children())[:-2]) if hasattr(self.net, "fc") else self.net.features
        return self.net(x), _official_cams(trunk(x), self.head.weight)


class CaffeOfficial(nn.Module):
    """The official EAC Model (Caffe-style ResNet-50), from the independent functional reference."""

    def __init__(self, seed: int = 2):
        super().__init__()
        self.m = OfficialLayoutEAC(num_classes=7, seed=seed)
        _randomise(self.m.fc, seed)

    def state_dict_as_saved(self) -> dict[str, torch.Tensor]:
        return self.m.state_dict_official()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        state = {k: v.to(x.dtype) if v.is_floating_point() else v for k, v in self.m.trunk_state.items()}
        f = caffe_resnet50_stages(state, x)["layer4"]
        return self.m.fc(f.mean(dim=(2, 3))), _official_cams(f, self.m.fc.weight)


ORIGINALS = {  # name → (eacfer backbone, builder of the original)
    "resnet18": ("resnet18", lambda: EACStyle("resnet18", 2, 512)),
    "resnet50": ("resnet50", lambda: EACStyle("resnet50", 2, 2048, seed=3)),
    "resnet50_caffe": ("resnet50_msceleb", CaffeOfficial),
    "mobilenet_v2_eac": ("mobilenet_v2", lambda: EACStyle("mobilenet_v2", 1, 1280, seed=4)),
    "mobilenet_v2_tv": ("mobilenet_v2", lambda: TorchvisionWhole("mobilenet_v2")),
    "resnet18_tv": ("resnet18", lambda: TorchvisionWhole("resnet18", seed=6)),
}


def _saved(original: nn.Module) -> dict[str, torch.Tensor]:
    sd = original.state_dict_as_saved() if hasattr(original, "state_dict_as_saved") else original.state_dict()
    return {k: v.clone() for k, v in sd.items()}


WRAPPERS = {
    "plain": lambda sd: sd,
    "module": lambda sd: {f"module.{k}": v for k, v in sd.items()},  # saved through DataParallel
    "model_state_dict": lambda sd: {"epoch": 59, "model_state_dict": sd, "optimizer_state_dict": {"lr": 1e-4}},
    "state_dict": lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "best_acc": 0.9},
    "model": lambda sd: {"model": sd, "iter": 1000},
    "compiled": lambda sd: {f"module._orig_mod.{k}": v for k, v in sd.items()},  # torch.compile under DDP
}


@pytest.fixture(scope="module")
def originals():
    torch.manual_seed(0)
    return {name: builder() for name, (_bb, builder) in ORIGINALS.items()}


def _x(seed: int = 5) -> torch.Tensor:
    return torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _assert_same_outputs(original: nn.Module, net: nn.Module, x: torch.Tensor, x_original=None) -> None:
    original, net = copy.deepcopy(original).double(), copy.deepcopy(net).double()
    with torch.no_grad():
        ref_logits, ref_cams = original((x if x_original is None else x_original).double())
        logits, cams = net.forward_with_cams(x.double())
    assert cams.shape == ref_cams.shape and cams.shape[-1] == 3
    assert (logits - ref_logits).abs().max().item() <= TOL
    assert (cams - ref_cams).abs().max().item() <= TOL
    assert ref_logits.std().item() > 0.05  # outputs that carry the weights, not a constant


# every wrapper form on the EAC-style ResNet-18 and MobileNetV2, two on the others (the wrappers are unwrapped
# before the layout is looked at, so more combinations would only cost time; the ResNet-50 files are 100 MB)
CASES = [(a, w) for a in ("resnet18", "mobilenet_v2_eac") for w in WRAPPERS]
CASES += [(a, w) for a in ("resnet18_tv", "mobilenet_v2_tv") for w in ("plain", "state_dict")]
CASES += [("resnet50", "module"), ("resnet50_caffe", "model_state_dict")]


@pytest.mark.parametrize(("arch", "wrapper"), CASES)
def test_import_gives_the_original_logits_and_cams(originals, tmp_path, arch, wrapper):
    backbone, _ = ORIGINALS[arch]
    original = originals[arch]
    path = tmp_path / f"{arch}_final.pth"
    torch.save(WRAPPERS[wrapper](_saved(original)), path)
    out = tmp_path / "model.pt"
    report = import_checkpoint(path, out, backbone, image_size=SIZE)
    net, info = load_model(out)
    assert info.backbone == backbone and info.class_names == list(RAFDB_CLASSES) and info.input_size == SIZE
    assert report.feature_map == (3, 3) and report.warnings == []
    _assert_same_outputs(original, net, _x())


def test_class_names_and_self_description(originals, tmp_path):
    path = tmp_path / "m.pth"
    original = EACStyle("resnet18", 2, 512, num_classes=3, seed=7)
    torch.save(original.state_dict(), path)
    import_checkpoint(path, tmp_path / "m.pt", "resnet18", class_names=["neg", "neu", "pos"], image_size=112,
                      face_size=48)
    net, info = load_model(tmp_path / "m.pt")
    assert (info.class_names, info.input_size, info.face_size) == (["neg", "neu", "pos"], 112, 48)
    assert info.train_config["layout"].startswith("Sequential of the backbone's children")
    assert info.train_config["file"] == str(path) and info.train_config["head"] == "fc"
    _assert_same_outputs(original, net, _x())
    with pytest.raises(MappingError, match="3 classes but 7 class names.*--classes"):  # default RAF-DB names
        import_checkpoint(path, tmp_path / "n.pt", "resnet18")
    assert not (tmp_path / "n.pt").exists()


def test_bgr_trained_checkpoint_is_caught_and_converted(originals, tmp_path):
    """A model trained on BGR input (cv2 images never converted) with ImageNet's mean/std applied in place."""
    original = originals["resnet18"]
    raw = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(9))  # RGB images in [0, 1]
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    trained_view = (raw.flip(1) - mean) / std  # what the original network saw
    path = tmp_path / "bgr.pth"
    torch.save(original.state_dict(), path)

    def eacfer_view(info):  # eacfer's preprocessing: RGB normalised with the model file's mean/std
        return (raw - torch.tensor(info.mean).view(1, 3, 1, 1)) / torch.tensor(info.std).view(1, 3, 1, 1)

    import_checkpoint(path, tmp_path / "rgb.pt", "resnet18", image_size=SIZE)
    net, info = load_model(tmp_path / "rgb.pt")
    with torch.no_grad():
        gap = (net(eacfer_view(info)) - original(trained_view)[0]).abs().max().item()
    assert gap > 100 * TOL  # the logit check catches the channel order
    import_checkpoint(path, tmp_path / "bgr.pt", "resnet18", image_size=SIZE, channels="bgr")
    net, info = load_model(tmp_path / "bgr.pt")
    assert info.mean == pytest.approx([0.406, 0.456, 0.485]) and info.train_config["channels"] == "bgr"
    _assert_same_outputs(original, net, eacfer_view(info), x_original=trained_view)


def test_head_trained_at_another_input_size_is_refused(tmp_path):
    """The official Model pools with AvgPool2d(7) and flattens: trained at 256 px its fc takes 2048×2×2."""
    sd = {f"module.{k}": v for k, v in CaffeOfficial().state_dict_as_saved().items()}
    sd["module.fc.weight"] = torch.zeros(7, 2048 * 4)
    torch.save(sd, tmp_path / "eac256.pth")
    with pytest.raises(MappingError, match=r"eac256.pth.*8192 = 2048×2×2.*2×2 pooled grid"):
        import_checkpoint(tmp_path / "eac256.pth", tmp_path / "m.pt", "resnet50_msceleb")
    assert not (tmp_path / "m.pt").exists()


def test_input_size_where_fixed_pooling_differs_warns(originals, tmp_path):
    original = originals["resnet18"]
    torch.save(original.state_dict(), tmp_path / "r.pth")
    assert import_checkpoint(tmp_path / "r.pth", tmp_path / "a.pt", "resnet18", image_size=224).warnings == []
    report = import_checkpoint(tmp_path / "r.pth", tmp_path / "b.pt", "resnet18", image_size=256)
    assert report.feature_map == (8, 8) and "AvgPool2d(7)" in report.warnings[0]
    # and indeed: the official fixed pooling at 256 px is not the global average the imported model uses
    x = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(3))
    net, _ = load_model(tmp_path / "b.pt")
    with torch.no_grad():
        official = original.fc(nn.AvgPool2d(7)(original.features(x)).flatten(1))
        assert (net(x) - official).abs().max().item() > 100 * TOL
    with pytest.raises(ValueError, match="--image-size must be in 8..1024, got 4"):
        import_checkpoint(tmp_path / "r.pth", tmp_path / "c.pt", "resnet18", image_size=4)


def test_wrong_backbone_with_identical_keys_is_caught_by_logits(originals, tmp_path):
    """torchvision and Caffe-style ResNet-50 share every key and shape: only the logits tell them apart."""
    original = originals["resnet50"]
    torch.save(original.state_dict(), tmp_path / "tv50.pth")
    import_checkpoint(tmp_path / "tv50.pth", tmp_path / "wrong.pt", "resnet50_msceleb", image_size=SIZE)
    net, _ = load_model(tmp_path / "wrong.pt")
    with torch.no_grad():
        assert (net(_x()) - original(_x())[0]).abs().max().item() > 100 * TOL


@pytest.mark.parametrize(("edit", "backbone", "pattern"), [
    (lambda sd: sd.pop("features.4.0.conv1.weight"), "resnet18", r"1 missing key \(layer1.0.conv1.weight\)"),
    (lambda sd: sd.update({"features.8.weight": torch.zeros(3)}), "resnet18", r"1 unmatched key \(features.8.weight\)"),
    (lambda sd: sd.update({"features.0.weight": torch.zeros(64, 3, 3, 3)}), "resnet18",
     r"1 mis-shaped key \(features.0.weight \(64, 3, 3, 3\)≠\(64, 3, 7, 7\)\)"),
    (lambda sd: None, "resnet50", r"the head takes 512 features but this backbone gives 2048 \(a 512-channel "
                                  r"backbone: resnet18\)"),
    (lambda sd: None, "mobilenet_v2", "the head takes 512 features but this backbone gives 1280"),
    (lambda sd: sd.pop("fc.bias"), "resnet18", "head fc has no bias"),
    (lambda sd: sd.update({"fc.weight": sd["fc.weight"].T.contiguous(), "fc.bias": torch.zeros(512)}), "resnet18",
     r"the head weight is 512×7, i.e. features×classes: transposed"),
    (lambda sd: sd.update({"classifier.weight": torch.zeros(7, 512)}), "resnet18", "expected one linear head.*found 2"),
])
def test_refusals_name_the_keys_and_write_nothing(originals, tmp_path, edit, backbone, pattern):
    sd = _saved(originals["resnet18"])
    edit(sd)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(MappingError, match=r"bad.pth.*" + pattern):
        import_checkpoint(tmp_path / "bad.pth", tmp_path / "m.pt", backbone)
    assert not (tmp_path / "m.pt").exists()


def test_many_bad_keys_are_listed_briefly(originals, tmp_path):
    sd = {k: v for k, v in _saved(originals["resnet50_caffe"]).items() if not k.startswith("features.7.")}
    torch.save(sd, tmp_path / "other.pth")  # layer4 left out: dozens of missing keys
    with pytest.raises(MappingError) as e:
        import_checkpoint(tmp_path / "other.pth", tmp_path / "m.pt", "resnet50_msceleb")
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 400
    assert re.search(r"(\d+) missing keys \(layer4\.0\.\S+, layer4\.0\.\S+, layer4\.0\.\S+ and (\d+) more\)", msg)


def test_hostile_and_foreign_files_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = hostile.write_hostile_pt(tmp_path / "evil.pth", marker, {"fc.weight": torch.zeros(7, 512)})
    with pytest.raises(ValueError, match="evil.pth.*refused"):
        import_checkpoint(evil, tmp_path / "m.pt", "resnet18")
    assert not marker.exists() and not (tmp_path / "m.pt").exists()
    torch.save({"fc.weight": torch.zeros(7, 512), "fc.bias": torch.zeros(7)}, tmp_path / "ok.pth")
    cut = hostile.truncate_copy(tmp_path / "ok.pth", tmp_path / "cut.pth")
    with pytest.raises(ValueError, match="cut.pth.*(truncated|corrupted)"):
        import_checkpoint(cut, tmp_path / "m.pt", "resnet18")
    torch.save({"epoch": 3, "acc": 0.5}, tmp_path / "meta.pth")
    with pytest.raises(MappingError, match="meta.pth: no state_dict of tensors.*'epoch'"):
        import_checkpoint(tmp_path / "meta.pth", tmp_path / "m.pt", "resnet18")


def test_timm_backbone(tmp_path):
    timm = pytest.importorskip("timm")  # optional extra: tested where it is installed
    original = timm.create_model("resnet18", pretrained=False, num_classes=7)
    _randomise(original, 11)
    torch.save({"model": original.state_dict()}, tmp_path / "timm.pth")
    import_checkpoint(tmp_path / "timm.pth", tmp_path / "m.pt", "timm:resnet18", image_size=SIZE)
    net, info = load_model(tmp_path / "m.pt")
    x = _x()
    with torch.no_grad():
        f = original.forward_features(x)
        ref = original(x), _official_cams(f, original.fc.weight)
        logits, cams = net.forward_with_cams(x)
    assert info.backbone == "timm:resnet18"
    assert (logits - ref[0]).abs().max().item() <= TOL and (cams - ref[1]).abs().max().item() <= TOL


def test_cli_import_and_refusal(originals, tmp_path, capsys):
    from eacfer.commands.cli import main

    torch.save({"model_state_dict": _saved(originals["mobilenet_v2_eac"])}, tmp_path / "mobilenet_v2_final.pth")
    args = ["weights", "import", str(tmp_path / "mobilenet_v2_final.pth"), "--backbone", "mobilenet_v2"]
    assert main(args + ["--out", str(tmp_path / "m.pt"), "--image-size", "112"]) == 0
    out = capsys.readouterr().out
    assert "mobilenet_v2" in out and "Sequential of the backbone's children" in out
    assert load_model(tmp_path / "m.pt")[1].input_size == 112
    assert main(args + ["--out", str(tmp_path / "n.pt"), "--classes", "a,b"]) == 2
    err = capsys.readouterr().err
    assert not (tmp_path / "n.pt").exists()
    assert len(err.strip().splitlines()) == 1 and "7 classes but 2 class names" in err
    assert main(["weights", "import", str(tmp_path / "mobilenet_v2_final.pth"), "--out", str(tmp_path / "n.pt")]) == 2
    assert "--backbone" in capsys.readouterr().err
