"""The Caffe-style ResNet-50 of the VGGFace2 / MS-Celeb-1M weights (``resnet50_ft_weight.pkl``).

It differs from torchvision's ResNet-50 in two places that change every feature:
  * the stride of a downsampling bottleneck sits in its first 1×1 conv (torchvision: in the 3×3 conv);
  * the stem max-pool is 3×3/2 with ``ceil_mode=True`` and no padding (torchvision: padding 1).
Both networks have the same parameter names and shapes, so torchvision's model would accept these
weights silently and compute different features — hence a dedicated architecture.

The pickle is a dict of numpy arrays keyed like a torch state_dict. It is read with a restricted
unpickler that can only rebuild numpy arrays: a file that tries to call anything else is refused.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from eacfer.models.spec import BackboneSpec

log = logging.getLogger(__name__)


class CaffeBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        # Caffe puts the stride on the 1x1 reduction conv; this is the whole point of this class.
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class CaffeResNet50(nn.Module):
    """Trunk only (conv1 … layer4); ``forward`` returns the N×2048×h×w feature map."""

    def __init__(self, layers: tuple[int, ...] = (3, 4, 6, 3)):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=0, ceil_mode=True)
        self.layer1 = self._make_layer(64, layers[0], 1)
        self.layer2 = self._make_layer(128, layers[1], 2)
        self.layer3 = self._make_layer(256, layers[2], 2)
        self.layer4 = self._make_layer(512, layers[3], 2)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False), nn.BatchNorm2d(planes * 4)
            )
        mods = [CaffeBottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * 4
        mods += [CaffeBottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """The pickle asked for something other than numpy array reconstruction.

    Also a ValueError, so the CLI reports it as a one-line error instead of a traceback.
    """


# Exactly the globals numpy needs to rebuild ndarrays (and plain containers); nothing can be called
# beyond these, so a hostile pickle cannot run code.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("collections", "OrderedDict"),
}


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    # Python 3 pickles (protocol < 3) store the raw bytes of numpy arrays as _codecs.encode(text, "latin1");
    # only that exact call is admitted (no other codec can be reached through it). The default is the real
    # _codecs.encode's (UTF-8), so a one-argument call is refused instead of being encoded as latin1.
    if encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r}")
    if not isinstance(text, str):
        raise UnsafePickleError("refusing _codecs.encode of a non-string")
    return text.encode("latin1")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) not in _ALLOWED_GLOBALS:
            raise UnsafePickleError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        import importlib

        # Pickles made with numpy 1.x name numpy.core, numpy 2.x renamed it numpy._core.
        candidates = [module]
        if module.startswith("numpy.core"):
            candidates.insert(0, module.replace("numpy.core", "numpy._core", 1))
        elif module.startswith("numpy._core"):
            candidates.append(module.replace("numpy._core", "numpy.core", 1))
        for mod in candidates:
            try:
                return getattr(importlib.import_module(mod), name)
            except (ImportError, AttributeError):
                continue
        raise UnsafePickleError(f"cannot resolve {module}.{name} in this numpy version")


def load_numpy_pickle(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a pickle that holds a dict of numpy arrays, refusing anything executable.

    Example:
        >>> weights = load_numpy_pickle("resnet50_ft_weight.pkl")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pretrained weights file not found")
    data = path.read_bytes()
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: {e}") from None
    except Exception as e:  # truncated or not a pickle at all
        raise ValueError(f"{path}: not a readable weights pickle ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict of numpy arrays, found {type(obj).__name__}")
    return obj


def load_msceleb_weights(trunk: CaffeResNet50, path: str | os.PathLike[str]) -> None:
    """Load ``resnet50_ft_weight.pkl`` into ``trunk`` (the 8631-way ``fc`` is dropped).

    Raises ValueError naming missing, unexpected or mis-shaped keys.
    """
    import numpy as np

    raw = load_numpy_pickle(path)
    state: dict[str, torch.Tensor] = {}
    for k, v in raw.items():
        if not isinstance(v, np.ndarray):
            raise ValueError(f"{path}: key {k!r} holds {type(v).__name__}, expected a numpy array")
        state[str(k)] = torch.from_numpy(np.ascontiguousarray(v))
    for k in ("fc.weight", "fc.bias"):
        state.pop(k, None)
    own = trunk.state_dict()
    # num_batches_tracked is absent from the Caffe conversion; keep our zeros for those.
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    bad_shape = [f"{k} {tuple(state[k].shape)}≠{tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or bad_shape:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys (e.g. {', '.join(unexpected[:3])})")
        if bad_shape:
            parts.append(f"wrong shapes: {', '.join(bad_shape[:3])}")
        raise ValueError(f"{path}: not a Caffe-style ResNet-50 state: " + "; ".join(parts))
    for k, v in own.items():
        if k in state:
            state[k] = state[k].to(v.dtype)
        else:
            state[k] = v
    trunk.load_state_dict(state, strict=True)
    log.info("loaded MS-Celeb/VGGFace2 ResNet-50 weights from %s", path)


def _build(pretrained: str | None) -> tuple[nn.Module, int]:
    trunk = CaffeResNet50()
    if pretrained:
        if pretrained == "imagenet":
            raise ValueError(
                "resnet50_msceleb has no ImageNet weights; pass --pretrained resnet50_ft_weight.pkl "
                "(the MS-Celeb-1M/VGGFace2 pickle, see `eacfer weights`)"
            )
        load_msceleb_weights(trunk, pretrained)
    return trunk, 2048


def specs() -> list[BackboneSpec]:
    return [
        BackboneSpec(
            name="resnet50_msceleb",
            builder=_build,
            description="Caffe-style ResNet-50 (EAC's backbone), MS-Celeb-1M/VGGFace2 weights",
            pretrained_help="path to resnet50_ft_weight.pkl",
        )
    ]
