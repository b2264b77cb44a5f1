"""An independent Caffe-style ResNet-50 for tests, written from the published architecture.

He et al. 2016 (Table 1, the "ResNet-50" Caffe prototxt released with the paper) and the VGGFace2 /
MS-Celeb-1M conversion that EAC uses:
  * stem: 7×7/2 conv (pad 3, no bias) → BN → ReLU → 3×3/2 max-pool, *no padding, ceil mode*;
  * stages of 3, 4, 6, 3 bottlenecks with 64, 128, 256, 512 mid channels and 4× expansion;
  * bottleneck: 1×1 conv → BN → ReLU → 3×3 conv (pad 1) → BN → ReLU → 1×1 conv → BN, + shortcut, ReLU;
    in the first block of stages 2–4 the stride 2 sits on the *first 1×1 conv* ("res3a_branch2a" has
    stride 2), and the shortcut is a 1×1/2 conv + BN ("res3a_branch1");
  * the first block of stage 1 has a 1×1/1 projection shortcut (64 → 256 channels).

This file deliberately does not import eacfer: it is the reference the eacfer network is compared with.
The forward is functional (``torch.nn.functional``) over a state dict with the usual torch names
(``conv1.weight``, ``layer2.0.conv1.weight``, ``layer2.0.downsample.0.weight`` …), so it shares weights
with any module that uses those names, and it returns every stage's output for layer-by-layer checks.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

STAGES = (("layer1", 64, 3, 1), ("layer2", 128, 4, 2), ("layer3", 256, 6, 2), ("layer4", 512, 3, 2))
BN_EPS = 1e-5


def _bn(x: torch.Tensor, sd: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
    # inference-mode BN: (x - running_mean) / sqrt(running_var + eps) * weight + bias
    shape = (1, -1, 1, 1)
    mean, var = sd[f"{name}.running_mean"].view(shape), sd[f"{name}.running_var"].view(shape)
    return (x - mean) / torch.sqrt(var + BN_EPS) * sd[f"{name}.weight"].view(shape) + sd[f"{name}.bias"].view(shape)


def _bottleneck(x: torch.Tensor, sd: Mapping[str, torch.Tensor], p: str, stride: int, project: bool) -> torch.Tensor:
    y = F.relu(_bn(F.conv2d(x, sd[f"{p}.conv1.weight"], stride=stride), sd, f"{p}.bn1"))  # branch2a: stride here
    y = F.relu(_bn(F.conv2d(y, sd[f"{p}.conv2.weight"], stride=1, padding=1), sd, f"{p}.bn2"))  # branch2b
    y = _bn(F.conv2d(y, sd[f"{p}.conv3.weight"]), sd, f"{p}.bn3")  # branch2c
    short = _bn(F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=stride), sd, f"{p}.downsample.1") if project else x
    return F.relu(y + short)


def caffe_resnet50_stages(sd: Mapping[str, torch.Tensor], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Outputs of the stem (after the max-pool) and of layer1..layer4 for input ``x``."""
    out: dict[str, torch.Tensor] = {}
    y = F.relu(_bn(F.conv2d(x, sd["conv1.weight"], stride=2, padding=3), sd, "bn1"))
    y = F.max_pool2d(y, kernel_size=3, stride=2, padding=0, ceil_mode=True)
    out["stem"] = y
    for name, _mid, blocks, stride in STAGES:
        for b in range(blocks):
            y = _bottleneck(y, sd, f"{name}.{b}", stride if b == 0 else 1, project=b == 0)
        out[name] = y
    return out


def random_caffe_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict with every key and shape of the architecture above (non-trivial BN statistics).

    Convolutions get He-normal weights (std √(2/fan_out)) so activations keep their scale through 50 layers.
    """
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}

    def conv(name: str, cout: int, cin: int, k: int) -> None:
        sd[f"{name}.weight"] = torch.randn(cout, cin, k, k, generator=g) * (2.0 / (cout * k * k)) ** 0.5

    def bn(name: str, c: int) -> None:
        sd[f"{name}.weight"] = 1.0 + 0.1 * torch.randn(c, generator=g)
        sd[f"{name}.bias"] = 0.1 * torch.randn(c, generator=g)
        sd[f"{name}.running_mean"] = 0.1 * torch.randn(c, generator=g)
        sd[f"{name}.running_var"] = 0.5 + torch.rand(c, generator=g)
        sd[f"{name}.num_batches_tracked"] = torch.tensor(0)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    cin = 64
    for name, mid, blocks, _stride in STAGES:
        for b in range(blocks):
            p = f"{name}.{b}"
            conv(f"{p}.conv1", mid, cin, 1)
            bn(f"{p}.bn1", mid)
            conv(f"{p}.conv2", mid, mid, 3)
            bn(f"{p}.bn2", mid)
            conv(f"{p}.conv3", mid * 4, mid, 1)
            bn(f"{p}.bn3", mid * 4)
            if b == 0:
                conv(f"{p}.downsample.0", mid * 4, cin, 1)
                bn(f"{p}.downsample.1", mid * 4)
            cin = mid * 4
    return sd


class OfficialLayoutEAC(nn.Module):
    """The official EAC ``Model`` layout: ``features`` (conv1, bn1, relu, maxpool, layer1..4 as a Sequential),
    ``features2`` (average pool) and ``fc`` (2048 → K); forward returns ``(logits, CAMs)``.

    Parameters are stored under the official names; the computation is the functional reference above.
    """

    _ORDER = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")

    def __init__(self, num_classes: int = 7, seed: int = 0):
        super().__init__()
        self.trunk_state = random_caffe_state(seed)
        self.fc = nn.Linear(2048, num_classes)

    def state_dict_official(self) -> dict[str, torch.Tensor]:
        """Keys as the official code saves them: ``features.<index>.<rest>`` and ``fc.*``."""
        out = {}
        for k, v in self.trunk_state.items():
            head, _, rest = k.partition(".")
            out[f"features.{self._ORDER.index(head)}.{rest}"] = v
        out.update({f"fc.{k}": v for k, v in self.fc.state_dict().items()})
        return out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = caffe_resnet50_stages(self.trunk_state, x)["layer4"]
        logits = self.fc(f.mean(dim=(2, 3)))  # AvgPool2d(7) on the 7×7 map of a 224 input = the mean
        w = self.fc.weight.detach()
        cams = (f.unsqueeze(1) * w.view(1, w.shape[0], w.shape[1], 1, 1)).sum(2)
        return logits, cams
