"""torchvision backbones (MobileNetV2, ResNet-18/50) and optional timm models for the registry.

``pretrained`` may be ``None`` (random init), ``"imagenet"`` (torchvision's own weights mechanism and
cache: works online, or offline when the file is already in the cache), or a path to a torchvision
state_dict file (loaded with ``weights_only=True``; classifier keys are dropped).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from eacfer.models.spec import BackboneSpec

log = logging.getLogger(__name__)


def _load_state_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pretrained weights file not found")
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        msg = str(e)
        if "weights_only" in msg or "Unsupported global" in msg or "Unsupported operand" in msg:
            # torch's own message advises loading it unsafely; say plainly why it is refused instead
            raise ValueError(f"{path}: refused: it contains pickled Python objects/code, not just tensors") from None
        first = msg.splitlines()[0][:200] if msg else ""
        raise ValueError(f"{path}: not a loadable torch state_dict (truncated or corrupted?): "
                         f"{type(e).__name__}: {first}") from None
    from eacfer.utils.integrity import verify_torch_zip

    verify_torch_zip(path)  # torch.load does not check the archive's checksums
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state_dict, found {type(obj).__name__}")
    return obj


def _load_into(trunk: nn.Module, state: dict[str, torch.Tensor], source: str, drop_prefixes: tuple[str, ...]) -> None:
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(drop_prefixes)}
    own = trunk.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    bad = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or bad:
        raise ValueError(
            f"{source}: weights do not match this backbone: {len(missing)} missing (e.g. {missing[:2]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:2]}), {len(bad)} mis-shaped (e.g. {bad[:2]})"
        )
    trunk.load_state_dict(state, strict=False)
    log.info("loaded backbone weights from %s", source)


def _imagenet_state(arch: str) -> dict[str, torch.Tensor]:
    import torchvision.models as tvm

    weights = tvm.get_model_weights(arch).DEFAULT
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as e:  # offline: say exactly which file goes where
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        raise ValueError(
            f"could not fetch torchvision ImageNet weights for {arch} ({type(e).__name__}). "
            f"Offline, place {Path(weights.url).name} (from {weights.url}) at {cache}, "
            f"or pass --pretrained PATH to a torchvision state_dict file"
        ) from None


class _ResNetTrunk(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        # keep torchvision's attribute names so torchvision state_dicts load as they are
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, name, getattr(net, name))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class _MobileNetTrunk(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.features = net.features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _tv_builder(arch: str, wrap: type[nn.Module], channels: int, drop: tuple[str, ...]):
    def build(pretrained: str | None) -> tuple[nn.Module, int]:
        import torchvision.models as tvm

        trunk = wrap(getattr(tvm, arch)(weights=None))
        if pretrained:
            state = _imagenet_state(arch) if pretrained == "imagenet" else _load_state_file(pretrained)
            _load_into(trunk, state, "imagenet" if pretrained == "imagenet" else str(pretrained), drop)
        return trunk, channels

    return build


def specs() -> list[BackboneSpec]:
    help_ = "'imagenet' (torchvision weights) or a path to a torchvision state_dict"
    return [
        BackboneSpec("mobilenet_v2", _tv_builder("mobilenet_v2", _MobileNetTrunk, 1280, ("classifier.",)),
                     "torchvision MobileNetV2 (EAC's lightweight backbone)", pretrained_help=help_),
        BackboneSpec("resnet18", _tv_builder("resnet18", _ResNetTrunk, 512, ("fc.",)),
                     "torchvision ResNet-18", pretrained_help=help_),
        BackboneSpec("resnet50", _tv_builder("resnet50", _ResNetTrunk, 2048, ("fc.",)),
                     "torchvision ResNet-50 (not the Caffe-style MS-Celeb one)", pretrained_help=help_),
    ]


def timm_names_hint() -> list[str]:
    try:
        import importlib.util

        return ["timm:<model_name>"] if importlib.util.find_spec("timm") else []
    except Exception:
        return []


class _TimmTrunk(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x)


def timm_spec(name: str) -> BackboneSpec:
    """Spec for ``timm:<model>``; needs the optional ``timm`` extra."""
    try:
        import timm
    except ImportError:
        raise ValueError(f"backbone {name!r} needs timm: pip install 'eacfer[timm]'") from None
    model_name = name.split(":", 1)[1]
    if model_name not in timm.list_models():
        raise ValueError(f"timm has no model {model_name!r}")

    def build(pretrained: str | None) -> tuple[nn.Module, int]:
        net = timm.create_model(model_name, pretrained=False, num_classes=0)
        if pretrained:
            _load_into(net, _load_state_file(pretrained), str(pretrained), ("fc.", "classifier.", "head."))
        return _TimmTrunk(net), int(net.num_features)

    cfg = getattr(timm.models, "get_pretrained_cfg", lambda n: None)(model_name)
    mean = tuple(getattr(cfg, "mean", None) or (0.485, 0.456, 0.406))
    std = tuple(getattr(cfg, "std", None) or (0.229, 0.224, 0.225))
    return BackboneSpec(name, build, f"timm {model_name}", mean=mean, std=std)  # type: ignore[arg-type]
