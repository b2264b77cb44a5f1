"""``import_checkpoint``: an EAC-shaped checkpoint from other training code → a self-describing eacfer model.

The file is read with ``torch.load(weights_only=True)`` (through :func:`eacfer.checkpoint.load_checkpoint`):
tensors and plain containers load, a pickle that needs code is refused. Keys are mapped by
:mod:`eacfer.official.mapping`; nothing is written unless every key and shape fits.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import torch

from eacfer.official.mapping import Mapped, MappingError, find_state_dict, map_state_dict, target_of

log = logging.getLogger(__name__)

CHANNEL_ORDERS = ("rgb", "bgr")
#: the official EAC model pools with a fixed ``AvgPool2d(7)``: the same as a global average only on a 7×7 map
_OFFICIAL_POOL = 7


@dataclass
class ImportReport:
    """What :func:`import_checkpoint` found and wrote."""

    backbone: str
    layout: str
    head: str
    class_names: list[str]
    feature_map: tuple[int, int]
    warnings: list[str] = field(default_factory=list)


def _flip_input_channels(state: dict[str, torch.Tensor]) -> str:
    """Reverse the input channels of the first convolution (BGR-trained → takes RGB); returns its key."""
    for key, value in state.items():  # state_dict order is the forward order: the first 3-channel conv is the stem
        if key.startswith("backbone.") and value.ndim == 4 and value.shape[1] == 3:
            state[key] = value.flip(1).contiguous()
            return key
    raise MappingError("no convolution with 3 input channels found to reorder BGR → RGB")


def _self_check(net: torch.nn.Module, image_size: int, source: str) -> tuple[tuple[int, int], list[str]]:
    """Run the imported model once at ``image_size``; return the feature-map size and warnings.

    It catches what the weights alone can show: an input too small for the backbone, non-finite outputs,
    and an input size at which the official fixed ``AvgPool2d(7)`` would not equal the global average.
    """
    x = torch.randn(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            features = net.forward_features(x)
            logits, cams = net.forward_head(features), net.cams_from_features(features)
    except RuntimeError as e:
        raise MappingError(f"{source}: the model cannot run at --image-size {image_size}: "
                           f"{str(e).splitlines()[0][:150]}") from None
    h, w = int(features.shape[-2]), int(features.shape[-1])
    if h == 0 or w == 0 or not torch.isfinite(logits).all() or not torch.isfinite(cams).all():
        raise MappingError(f"{source}: the imported model gives no finite output at --image-size {image_size}")
    warnings = []
    if max(h, w) > _OFFICIAL_POOL:
        warnings.append(
            f"at {image_size} px the last feature map is {h}×{w}: if the original pooled with the official fixed "
            f"AvgPool2d({_OFFICIAL_POOL}) rather than a global average, its outputs differ at this size "
            f"(the official code trains at 224)")
    return (h, w), warnings


def import_checkpoint(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    backbone: str,
    class_names: list[str] | None = None,
    image_size: int = 224,
    face_size: int | None = 100,
    channels: str = "rgb",
    source: str = "EAC checkpoint",
) -> ImportReport:
    """Convert an EAC-shaped ``.pth`` (trunk + global average pool + one linear head) into an eacfer ``model.pt``.

    Args:
        path: the checkpoint: a state_dict, or a dict with it under ``model_state_dict``/``state_dict``/``model``.
        out: the eacfer model file to write (atomically; not written when anything does not fit).
        backbone: the eacfer backbone it was trained on (``resnet50_msceleb``, ``resnet18``, ``resnet50``,
            ``mobilenet_v2``, ``timm:NAME``).
        class_names: the head's classes in order (default: RAF-DB's order, :data:`eacfer.constants.RAFDB_CLASSES`).
        image_size: the input side it was trained at. face_size: side of its training faces (RAF-DB: 100).
        channels: ``"bgr"`` for a model trained on BGR input (cv2 images not converted): the first
            convolution's input channels and mean/std are reversed so the model takes RGB like every eacfer model.

    Example:
        >>> import_checkpoint("mobilenet_v2_final.pth", "model.pt", backbone="mobilenet_v2")  # doctest: +SKIP
    """
    from eacfer.checkpoint import load_checkpoint, save_model
    from eacfer.constants import RAFDB_CLASSES
    from eacfer.modelinfo import MAX_INPUT_SIZE, ModelInfo
    from eacfer.models import create_model, get_backbone_spec

    src = os.fspath(path)
    if channels not in CHANNEL_ORDERS:
        raise ValueError(f"channels must be one of {CHANNEL_ORDERS}, got {channels!r}")
    if not 8 <= image_size <= MAX_INPUT_SIZE:
        raise ValueError(f"--image-size must be in 8..{MAX_INPUT_SIZE}, got {image_size}")
    spec = get_backbone_spec(backbone)  # unknown names fail here, before the file is read
    state = find_state_dict(load_checkpoint(path), src)
    probe = create_model(backbone, num_classes=2)
    mapped: Mapped = map_state_dict(state, target_of(probe), src, backbone)
    names = list(class_names) if class_names else list(RAFDB_CLASSES)
    if len(names) != mapped.num_classes:
        hint = "" if class_names else " (the default is RAF-DB's 7; give yours with --classes)"
        raise MappingError(f"{src}: the head has {mapped.num_classes} classes but {len(names)} class names{hint}")
    net = create_model(backbone, num_classes=mapped.num_classes)
    state_out = dict(mapped.state)
    mean, std = list(spec.mean), list(spec.std)
    if channels == "bgr":
        _flip_input_channels(state_out)
        mean, std = mean[::-1], std[::-1]  # normalisation followed the channels it was trained on
    for k, v in net.state_dict().items():  # counters absent from older checkpoints keep their fresh value
        state_out.setdefault(k, v)
        state_out[k] = state_out[k].to(v.dtype)
    net.load_state_dict(state_out, strict=True)
    net.eval()
    fmap, warnings = _self_check(net, image_size, src)
    for w in warnings:
        log.warning("%s: %s", src, w)
    info = ModelInfo(
        backbone=backbone,
        class_names=names,
        input_size=image_size,
        mean=mean,
        std=std,
        train_config={"source": source, "file": src, "layout": mapped.layout, "head": mapped.head,
                      "channels": channels},
        face_size=face_size,
    )
    save_model(out, net, info)
    return ImportReport(backbone, mapped.layout, mapped.head, names, fmap, warnings)
