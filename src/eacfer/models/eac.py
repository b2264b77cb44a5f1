"""EAC network: backbone trunk → global average pool → linear layer, plus class attention maps.

CAMs (class activation maps) follow the official EAC code: the last feature map F (N×C×h×w) weighted by
the linear layer's weights W (K×C, detached so the consistency loss trains the trunk only through F),
summed over C: cams[n, k] = Σ_c W[k, c] · F[n, c].
"""

from __future__ import annotations

import torch
from torch import nn


class EACNet(nn.Module):
    """Classifier whose CAMs are exposed for the EAC consistency loss.

    Example:
        >>> from eacfer import create_model
        >>> net = create_model("resnet18")
        >>> logits, cams = net.forward_with_cams(torch.zeros(2, 3, 64, 64))
        >>> tuple(cams.shape)
        (2, 7, 2, 2)
    """

    def __init__(self, trunk: nn.Module, num_features: int, num_classes: int = 7, backbone_name: str = ""):
        super().__init__()
        self.backbone = trunk
        self.fc = nn.Linear(num_features, num_classes)
        self.num_features = num_features
        self.num_classes = num_classes
        self.backbone_name = backbone_name

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, N×C×h×w."""
        return self.backbone(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Logits N×K from the feature map (global average pool + linear)."""
        return self.fc(features.mean(dim=(2, 3)))

    def cams_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Class attention maps N×K×h×w (at least float32) from a feature map, with the fc weights detached.

        Always computed in fp32 (or the model's fp64) with autocast off: under bf16/fp16 autocast the einsum would
        otherwise run in half precision, and the consistency loss (documented as fp32) would be built from rounded
        CAMs. A float64 model keeps float64 (parity checks run in double precision).
        """
        w = self.fc.weight.detach()
        dtype = torch.promote_types(torch.promote_types(features.dtype, w.dtype), torch.float32)
        with torch.autocast(features.device.type, enabled=False):
            # einsum == (F.unsqueeze(1) * W.view(1,K,C,1,1)).sum(2) of the official code, without the N×K×C×h×w temporary
            return torch.einsum("nchw,kc->nkhw", features.to(dtype), w.to(dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_with_cams(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, cams)`` in one pass."""
        f = self.forward_features(x)
        return self.forward_head(f), self.cams_from_features(f)
