"""``create_model``: the one way to build an EAC network."""

from __future__ import annotations

from eacfer.models.eac import EACNet
from eacfer.models.registry import get_backbone_spec


def create_model(backbone: str, num_classes: int = 7, pretrained: str | None = None) -> EACNet:
    """Build an :class:`EACNet` on a registered backbone.

    Args:
        backbone: a name from :func:`eacfer.list_backbones` (e.g. ``"resnet50_msceleb"``, ``"mobilenet_v2"``).
        num_classes: K, the number of expression classes.
        pretrained: backbone weights: a path (``resnet50_ft_weight.pkl`` for ``resnet50_msceleb``, a
            torchvision state_dict for the others) or ``"imagenet"`` for torchvision backbones.

    Example:
        >>> net = create_model("mobilenet_v2", num_classes=7)
        >>> net.backbone_name
        'mobilenet_v2'
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    spec = get_backbone_spec(backbone)
    trunk, channels = spec.builder(pretrained)
    return EACNet(trunk, channels, num_classes=num_classes, backbone_name=backbone)
