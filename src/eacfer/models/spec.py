"""What the backbone registry knows about a backbone (kept apart so that backbone modules can describe
themselves without importing the registry, which imports them: registration is one-way)."""

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
