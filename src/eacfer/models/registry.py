"""Backbone registry (timm-style): builders looked up by name.

A builder returns the convolutional trunk (input N×3×H×W → feature map N×C×h×w) and C. The EAC head
(global average pool + linear layer + class attention maps) is added by :class:`eacfer.models.eac.EACNet`.
"""

from __future__ import annotations

import functools

from eacfer.models.spec import BackboneSpec, Builder, UnknownBackboneError

__all__ = ["BackboneSpec", "Builder", "UnknownBackboneError", "get_backbone_spec", "list_backbones"]


@functools.cache
def _registry() -> dict[str, BackboneSpec]:
    # Built on first use, not at import (no import-time side effects). Each backbone module lists its
    # specs; the registry collects them, so the import goes one way (registry → backbones → spec).
    from eacfer.models import mini_xception, resnet_caffe, tv_backbones

    return {spec.name: spec for spec in resnet_caffe.specs() + tv_backbones.specs() + mini_xception.specs()}


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
