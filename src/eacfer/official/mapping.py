"""The key-mapping engine: an EAC-shaped ``state_dict`` saved by someone else's code → eacfer ``EACNet`` keys.

"EAC-shaped" means a backbone's feature extractor, global average pooling and one linear head. Training code
names these differently; the engine recognises the layouts by *structure*, never by guessing from values:

* wrappers: the state_dict itself, or a dict holding it under ``model_state_dict`` / ``state_dict`` / ``model``;
  key prefixes ``module.`` (DataParallel / DDP) and ``_orig_mod.`` (``torch.compile``) are dropped;
* the head: one ``Linear`` named ``fc`` / ``classifier`` / ``head`` (also ``classifier.1`` — torchvision
  MobileNetV2's ``Sequential(Dropout, Linear)`` — or ``head.fc``);
* the trunk, tried in turn until one layout accounts for every key with the right shape:
  the eacfer names themselves (``conv1.*``/``layer1.*`` of a torchvision ResNet, ``features.*`` of a
  MobileNetV2), the same under one or two shared wrapper names (``backbone.``, ``model.`` …), the trunk module's
  own children under the eacfer root (timm: ``net.``), and a ``Sequential`` of the backbone's children
  (the official EAC ``features = nn.Sequential(*list(resnet.children())[:-2])``: ``features.4.0.conv1.weight``
  → ``layer1.0.conv1.weight``; for MobileNetV2 ``nn.Sequential(*list(m.children())[:-1])``:
  ``features.0.3.conv…`` → ``features.3.conv…``).

Nothing loads partially: unless a layout matches every key and shape, :class:`MappingError` names the
unmatched, missing and mis-shaped keys (at most three of each) of the layout that came closest.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

#: dict keys under which training code commonly keeps the state_dict, in the order they are looked for
WRAPPER_KEYS = ("model_state_dict", "state_dict", "model")
#: key prefixes added by wrappers of the whole model (DataParallel/DDP, torch.compile)
_MODEL_PREFIXES = ("module.", "_orig_mod.")
_HEAD = re.compile(r"^(?P<name>(?:fc|classifier|head)(?:\.\d+|\.fc)?)\.(?P<leaf>weight|bias)$")
_SHOW = 3  # keys named per kind of problem in an error message


class MappingError(ValueError):
    """The state_dict does not fit the backbone; the message lists what did not fit (one line)."""


@dataclass(frozen=True)
class Target:
    """What the eacfer model expects: its trunk's keys/shapes and the trunk's structure.

    ``root`` is the prefix under which the backbone's own module sits inside the trunk ("" for the
    ResNet/MobileNet trunks, ``"net."`` for timm); ``children`` are that module's child names in order.
    """

    trunk: dict[str, tuple[int, ...]]
    num_features: int
    root: str
    children: tuple[str, ...]


@dataclass(frozen=True)
class Mapped:
    """A state_dict in eacfer ``EACNet`` keys, and how it was recognised."""

    state: dict[str, torch.Tensor]
    layout: str
    head: str
    num_classes: int


def target_of(net: torch.nn.Module) -> Target:
    """Describe an :class:`eacfer.models.eac.EACNet` for :func:`map_state_dict`.

    Example:
        >>> from eacfer import create_model
        >>> t = target_of(create_model("resnet18"))
        >>> t.children[:4], t.num_features
        (('conv1', 'bn1', 'relu', 'maxpool'), 512)
    """
    trunk = net.backbone
    kids = list(trunk.named_children())
    # a trunk that wraps one whole network (timm: ``net``) is described by that network's children
    root, module = (f"{kids[0][0]}.", kids[0][1]) if len(kids) == 1 and kids[0][0] == "net" else ("", trunk)
    return Target(
        trunk={k: tuple(v.shape) for k, v in trunk.state_dict().items()},
        num_features=int(net.num_features),
        root=root,
        children=tuple(name for name, _ in module.named_children()),
    )


def find_state_dict(payload: Mapping[str, Any], source: str) -> dict[str, torch.Tensor]:
    """The state_dict inside a loaded checkpoint: the payload itself or one of :data:`WRAPPER_KEYS`.

    Example:
        >>> sorted(find_state_dict({"epoch": 3, "model_state_dict": {"fc.weight": torch.zeros(7, 4)}}, "x.pth"))
        ['fc.weight']
    """
    if payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return dict(payload)
    for key in WRAPPER_KEYS:
        inner = payload.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            return dict(inner)
    keys = ", ".join(map(repr, list(payload)[:8]))
    raise MappingError(f"{source}: no state_dict of tensors found (top-level keys: {keys}); expected the "
                       f"state_dict itself or one under {' / '.join(WRAPPER_KEYS)}")


def _strip_model_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        k = key
        while k.startswith(_MODEL_PREFIXES):
            k = k.split(".", 1)[1]
        out[k] = value
    # the whole EAC model kept inside another module (``self.model = Model()``): every key, head included,
    # under one name
    while _shared_first_segment(list(out)) is not None and not any(_HEAD.match(k) for k in out):
        out = {k.split(".", 1)[1]: v for k, v in out.items()}
    return out


def _split_head(state: dict[str, torch.Tensor], source: str) -> tuple[str, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """(head name, weight K×C, bias K, the remaining trunk keys)."""
    weights = [k for k, v in state.items() if (m := _HEAD.match(k)) and m["leaf"] == "weight" and v.ndim == 2]
    if len(weights) != 1:
        found = f"found {len(weights)} ({', '.join(weights[:_SHOW])})" if weights else "found none"
        raise MappingError(f"{source}: expected one linear head named fc/classifier/head (a 2-D '…weight'), {found}")
    name = weights[0].rsplit(".", 1)[0]
    weight, bias = state[f"{name}.weight"], state.get(f"{name}.bias")
    if bias is None or tuple(bias.shape) != (weight.shape[0],):
        raise MappingError(f"{source}: head {name} has no bias of shape ({weight.shape[0]},); eacfer's head is "
                           f"a Linear with bias")
    trunk = {k: v for k, v in state.items() if k not in (f"{name}.weight", f"{name}.bias")}
    return name, weight, bias, trunk


def _shared_first_segment(keys: list[str]) -> str | None:
    first = {k.split(".", 1)[0] for k in keys}
    if len(first) == 1 and all("." in k for k in keys):
        seg = first.pop()
        return None if seg.isdigit() else seg
    return None


def _layouts(keys: list[str], target: Target) -> list[tuple[str, Callable[[str], str | None]]]:
    """Candidate renamings (name, key → eacfer trunk key or None when the key does not fit the layout)."""
    strips: list[tuple[str, int]] = [("", 0)]
    rest = keys
    for depth in (1, 2):
        seg = _shared_first_segment(rest)
        if seg is None:
            break
        strips.append((f"{strips[-1][0]}{seg}.", depth))
        rest = [k.split(".", 1)[1] for k in rest]

    def children_seq(k: str) -> str | None:
        # ``<seq>.<i>.<rest>``: the i-th child of the backbone, as nn.Sequential(*list(net.children())[:n]) names it
        parts = k.split(".", 2)
        if len(parts) < 3 or not parts[1].isdigit() or int(parts[1]) >= len(target.children):
            return None
        return f"{target.root}{target.children[int(parts[1])]}.{parts[2]}"

    out: list[tuple[str, Callable[[str], str | None]]] = []
    for prefix, depth in strips:
        def drop(k: str, n: int = depth) -> str:
            return k.split(".", n)[n] if n else k

        where = f" under '{prefix}'" if prefix else ""
        out.append((f"eacfer names{where}", drop))
        if target.root:
            out.append((f"backbone names{where}", lambda k, d=drop: target.root + d(k)))
        out.append((f"Sequential of the backbone's children{where}", lambda k, d=drop: children_seq(d(k))))
    return out


def _try(layout: Callable[[str], str | None], trunk: dict[str, torch.Tensor], target: Target):
    mapped: dict[str, torch.Tensor] = {}
    unmatched, bad = [], []
    for key, value in trunk.items():
        new = layout(key)
        if new is None or new not in target.trunk:
            if not key.endswith("num_batches_tracked"):  # a counter, not a weight: absent in some versions
                unmatched.append(key)
        elif tuple(value.shape) != target.trunk[new]:
            bad.append(f"{key} {tuple(value.shape)}≠{target.trunk[new]}")
        else:
            mapped[new] = value
    missing = [k for k in target.trunk if k not in mapped and not k.endswith("num_batches_tracked")]
    return mapped, unmatched, missing, bad


def _problems(unmatched: list[str], missing: list[str], bad: list[str]) -> str:
    parts = []
    for what, keys in (("unmatched", unmatched), ("missing", missing), ("mis-shaped", bad)):
        if keys:
            more = f" and {len(keys) - _SHOW} more" if len(keys) > _SHOW else ""
            parts.append(f"{len(keys)} {what} key{'s' if len(keys) > 1 else ''} ({', '.join(keys[:_SHOW])}{more})")
    return "; ".join(parts)


def _head_problem(in_features: int, out_features: int, channels: int) -> str:
    if out_features == channels:
        return (f"the head weight is {out_features}×{in_features}, i.e. features×classes: transposed (an nn.Linear "
                f"stores classes×features); save it as weight.T")
    cells = in_features // channels if in_features % channels == 0 else 0
    side = math.isqrt(cells) if cells else 0
    if cells > 1 and side * side == cells:
        # the official Model pools with a fixed AvgPool2d(7) and flattens: at another input size the map
        # is larger than 7×7 and the pooled grid (side×side) is flattened into the head
        return (f"the head takes {in_features} = {channels}×{side}×{side} features: it was trained on a "
                f"{side}×{side} pooled grid (a fixed AvgPool2d at another input size), which a global average "
                f"pool cannot reproduce")
    fits = _backbones_giving(in_features)
    hint = f" (a {in_features}-channel backbone: {', '.join(fits)})" if fits else ""
    return f"the head takes {in_features} features but this backbone gives {channels}{hint}"


def _backbones_giving(channels: int) -> list[str]:
    """Registered backbones whose last feature map has ``channels`` channels (built only on this error path)."""
    from eacfer.models import create_model, list_backbones

    return [name for name in list_backbones() if ":" not in name
            and create_model(name, num_classes=2).num_features == channels]


def map_state_dict(state: Mapping[str, torch.Tensor], target: Target, source: str, backbone: str) -> Mapped:
    """Rename ``state`` to ``EACNet`` keys (``backbone.*`` + ``fc.*``), every key and shape checked.

    Raises :class:`MappingError` (one line, naming ``source``) unless a layout fits completely.

    Example:
        >>> from eacfer import create_model
        >>> net = create_model("resnet18")
        >>> sd = {f"module.{k}": v for k, v in net.backbone.state_dict().items()}
        >>> sd |= {"module.fc.weight": torch.zeros(7, 512), "module.fc.bias": torch.zeros(7)}
        >>> map_state_dict(sd, target_of(net), "x.pth", "resnet18").layout
        'eacfer names'
    """
    state = _strip_model_prefixes(state)
    head, weight, bias, trunk = _split_head(state, source)
    if weight.shape[1] != target.num_features:
        problem = _head_problem(int(weight.shape[1]), int(weight.shape[0]), target.num_features)
        raise MappingError(f"{source}: does not fit {backbone}: {problem}")
    best: tuple[int, str] | None = None
    for name, layout in _layouts(list(trunk), target):
        mapped, unmatched, missing, bad = _try(layout, trunk, target)
        if not (unmatched or missing or bad):
            out = {f"backbone.{k}": v for k, v in mapped.items()}
            out["fc.weight"], out["fc.bias"] = weight, bias
            return Mapped(out, layout=name, head=head, num_classes=int(weight.shape[0]))
        score = len(unmatched) + len(missing) + len(bad)
        if best is None or score < best[0]:
            best = (score, _problems(unmatched, missing, bad))
    assert best is not None  # _layouts always offers at least the eacfer names
    raise MappingError(f"{source}: does not fit {backbone} (nothing loaded): {best[1]}")
