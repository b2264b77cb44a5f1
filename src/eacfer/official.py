"""Import checkpoints of the official EAC code (github.com/zyh-uaiaaaa/Erasing-Attention-Consistency).

The official ``Model`` wraps the Caffe-style ResNet-50 as ``features = Sequential(conv1, bn1, relu, maxpool,
layer1..layer4)``, ``features2 = AvgPool2d(7)`` and ``fc = Linear(2048, 7)``. A ``state_dict`` saved from it
(``torch.save(model.state_dict(), ...)``, optionally through DataParallel) maps one-to-one onto
:class:`eacfer.models.eac.EACNet` with the ``resnet50_msceleb`` backbone, so the same weights give the same
logits and CAMs in both code bases.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

# index in the official ``features`` Sequential -> attribute of our CaffeResNet50 trunk
_OFFICIAL_FEATURES = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


def convert_official_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official EAC ``Model.state_dict()`` to eacfer's ``EACNet`` keys.

    Example:
        >>> convert_official_state_dict({"module.features.4.0.conv1.weight": torch.zeros(1), "fc.weight": torch.zeros(7, 2048)}).keys()
        dict_keys(['backbone.layer1.0.conv1.weight', 'fc.weight'])
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        k = key.removeprefix("module.")
        if k.startswith("features."):
            idx, _, rest = k[len("features.") :].partition(".")
            if not idx.isdigit() or int(idx) >= len(_OFFICIAL_FEATURES):
                raise ValueError(f"unexpected key {key!r} in an official EAC state_dict")
            out[f"backbone.{_OFFICIAL_FEATURES[int(idx)]}.{rest}"] = value
        elif k.startswith("fc."):
            out[k] = value
        else:
            raise ValueError(f"unexpected key {key!r}: not an official EAC (ResNet-50) state_dict")
    if "fc.weight" not in out:
        raise ValueError("no fc.weight: not an official EAC state_dict")
    return out


def import_official_checkpoint(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    image_size: int = 224,
    class_names: list[str] | None = None,
    face_size: int | None = 100,
) -> None:
    """Convert an official EAC ``.pth`` state_dict into a self-describing eacfer ``model.pt``.

    ``face_size``: the face images it was trained on (the official code: RAF-DB's 100×100 aligned faces).

    The file is read with ``weights_only=True``: plain state_dicts load, pickled code is refused.

    Example:
        >>> import_official_checkpoint("eac_official.pth", "model.pt")  # doctest: +SKIP
    """
    from eacfer.checkpoint import ModelInfo, load_checkpoint, save_model
    from eacfer.constants import IMAGENET_MEAN, IMAGENET_STD, RAFDB_CLASSES
    from eacfer.models.factory import create_model

    payload = load_checkpoint(path)
    state = payload.get("state_dict", payload) if isinstance(payload.get("state_dict"), dict) else payload
    try:
        converted = convert_official_state_dict(state)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    num_classes = int(converted["fc.weight"].shape[0])
    names = list(class_names or RAFDB_CLASSES)
    if len(names) != num_classes:
        raise ValueError(f"{path}: fc has {num_classes} classes but {len(names)} class names were given")
    net = create_model("resnet50_msceleb", num_classes=num_classes)
    missing, unexpected = net.load_state_dict(converted, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{path}: does not fit the Caffe-style ResNet-50: missing {missing[:3]}, unexpected {unexpected[:3]}")
    info = ModelInfo(
        backbone="resnet50_msceleb",
        class_names=names,
        input_size=image_size,
        mean=list(IMAGENET_MEAN),
        std=list(IMAGENET_STD),
        train_config={"source": "official EAC checkpoint", "file": os.fspath(path)},
        face_size=face_size,
    )
    save_model(out, net, info)
