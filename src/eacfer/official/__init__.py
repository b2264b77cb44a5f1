"""Import EAC checkpoints trained elsewhere: the official code (github.com/zyh-uaiaaaa/Erasing-Attention-Consistency)
and any EAC-shaped model (a backbone's feature extractor, global average pooling, one linear head).

The official ``Model`` wraps the Caffe-style ResNet-50 as ``features = Sequential(conv1, bn1, relu, maxpool,
layer1..layer4)``, ``features2 = AvgPool2d(7)`` and ``fc = Linear(2048, 7)``; notebooks that copy it swap the
backbone (torchvision ResNet-18/50, MobileNetV2). :mod:`eacfer.official.mapping` maps such state_dicts onto
:class:`eacfer.models.eac.EACNet` by structure, so the same weights give the same logits and CAMs in both code
bases; :mod:`eacfer.official.importer` writes the self-describing model file. ``import_official_checkpoint``
is the official ResNet-50 case of it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from eacfer.official.importer import ImportReport, import_checkpoint
from eacfer.official.mapping import MappingError, map_state_dict, target_of

__all__ = ["ImportReport", "MappingError", "convert_official_state_dict", "import_checkpoint",
           "import_official_checkpoint"]


def convert_official_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official EAC ``Model.state_dict()`` (Caffe-style ResNet-50) to eacfer's ``EACNet`` keys.

    Raises :class:`MappingError` (a ValueError) when a key or shape does not fit.

    Example:
        >>> from eacfer import create_model
        >>> sd = {f"features.{4 + i}.{k}": v for i, n in enumerate(["layer1", "layer2", "layer3", "layer4"])
        ...       for k, v in getattr(create_model("resnet50_msceleb").backbone, n).state_dict().items()}
        >>> sd |= {"features.0.weight": torch.zeros(64, 3, 7, 7), "features.1.weight": torch.ones(64),
        ...        "features.1.bias": torch.zeros(64), "features.1.running_mean": torch.zeros(64),
        ...        "features.1.running_var": torch.ones(64), "fc.weight": torch.zeros(7, 2048), "fc.bias": torch.zeros(7)}
        >>> "backbone.layer1.0.conv1.weight" in convert_official_state_dict(sd)
        True
    """
    from eacfer.models import create_model

    return map_state_dict(state, target_of(create_model("resnet50_msceleb")), "state_dict", "resnet50_msceleb").state


def import_official_checkpoint(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    image_size: int = 224,
    class_names: list[str] | None = None,
    face_size: int | None = 100,
) -> ImportReport:
    """Convert an official EAC ``.pth`` state_dict into a self-describing eacfer ``model.pt``.

    ``face_size``: the face images it was trained on (the official code: RAF-DB's 100×100 aligned faces).
    The file is read with ``weights_only=True``: plain state_dicts load, pickled code is refused.

    Example:
        >>> import_official_checkpoint("eac_official.pth", "model.pt")  # doctest: +SKIP
    """
    return import_checkpoint(path, out, "resnet50_msceleb", class_names=class_names, image_size=image_size,
                             face_size=face_size, source="official EAC checkpoint")
