"""Backbone registry (timm-style): ``@register_backbone`` builders looked up by name.

A builder returns the convolutional trunk (input N×3×H×W → feature map N×C×h×w) and C. The EAC head
(global average pool + linear layer + class attention maps) is added by :class:`eacfer.models.eac.EACNet`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from eacfer.constants import IMAGENET_MEAN, IMAGENET_STD

Builder = Callable[[str | None], tuple[nn.Module, int]]


@dataclass(frozen=True)
class BackboneSpec:
    """What the registry knows about a backbone."""

    name: str
    builder: Builder
    description: str
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pretrained_help: str = ""


class UnknownBackboneError(KeyError):
    """Raised for a backbone name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def _registry() -> dict[str, BackboneSpec]:
    # Built on first use, not at import (no import-time side effects); cached on the function object.
    reg = getattr(_registry, "_cache", None)
    if reg is None:
        from eacfer.models import resnet_caffe, tv_backbones  # noqa: F401  (modules register themselves via _all_specs)

        reg = {}
        for spec in resnet_caffe.specs() + tv_backbones.specs():
            reg[spec.name] = spec
        _registry._cache = reg  # type: ignore[attr-defined]
    return reg


def list_backbones() -> list[str]:
    """Names accepted by :func:`eacfer.create_model`.

    Example:
        >>> "resnet50_msceleb" in list_backbones()
        True
    """
    from eacfer.models import tv_backbones

    return sorted(_registry()) + tv_backbones.timm_names_hint()


def get_backbone_spec(name: str) -> BackboneSpec:
    """Return the :class:`BackboneSpec` for ``name`` (``timm:<model>`` for timm models)."""
    reg = _registry()
    if name in reg:
        return reg[name]
    if name.startswith("timm:"):
        from eacfer.models import tv_backbones

        return tv_backbones.timm_spec(name)
    raise UnknownBackboneError(
        f"unknown backbone {name!r}; known backbones: {', '.join(sorted(reg))} (and timm:<name> when timm is installed)"
    )
