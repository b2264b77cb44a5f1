"""Old import paths of modules moved in 0.2 (``eacfer.predictor`` → ``eacfer.infer.predictor`` …).

They keep working for one release, with a DeprecationWarning, through one import hook rather than a
dozen alias files at the top of the package: the point of the move was a tree that shows the layers.
The hook only answers names listed in :data:`MOVED` and their submodules; it comes first in
``sys.meta_path`` because otherwise ``eacfer.fast.step`` would be found by the path finder through the
moved parent package and executed a second time as a separate module. Remove it in 0.3.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType

MOVED: dict[str, str] = {
    "eacfer.transforms": "eacfer.data.transforms",
    "eacfer.resample": "eacfer.data.resample",
    "eacfer.loss": "eacfer.models.loss",
    "eacfer.trainer": "eacfer.training.trainer",
    "eacfer.engine": "eacfer.training.engine",
    "eacfer.run_data": "eacfer.training.run_data",
    "eacfer.evaluation": "eacfer.training.evaluation",
    "eacfer.metrics": "eacfer.training.metrics",
    "eacfer.fast": "eacfer.training.fast",
    "eacfer.predictor": "eacfer.infer.predictor",
    "eacfer.backends": "eacfer.infer.backends",
    "eacfer.align": "eacfer.infer.align",
    "eacfer.results": "eacfer.infer.results",
    "eacfer.sources": "eacfer.infer.sources",
    "eacfer.tracking": "eacfer.infer.tracking",
    "eacfer.video": "eacfer.infer.video",
    "eacfer.batch": "eacfer.infer.batch",
    "eacfer.viz": "eacfer.infer.viz",
    "eacfer.detect": "eacfer.infer.detect",
    "eacfer.cli": "eacfer.commands.cli",
    "eacfer.models.official": "eacfer.official",
}


def new_name(old: str) -> str | None:
    """Where module ``old`` lives now, or None if it did not move.

    Example:
        >>> new_name("eacfer.fast.step")
        'eacfer.training.fast.step'
        >>> new_name("eacfer.models.eac") is None
        True
    """
    for prefix, target in MOVED.items():
        if old == prefix or old.startswith(prefix + "."):
            return target + old[len(prefix):]
    return None


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old module name to the module object at its new place (the same object, so
    ``mock.patch("eacfer.predictor.X")`` patches the real module)."""

    def find_spec(self, fullname: str, path: object = None, target: object = None):  # noqa: D102
        if new_name(fullname) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec) -> ModuleType:  # noqa: D102
        target = new_name(spec.name)
        warnings.warn(f"{spec.name} moved to {target}; the old name will be removed in eacfer 0.3",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(target)

    def exec_module(self, module: ModuleType) -> None:  # noqa: D102
        pass  # the module was executed at its new place


def install() -> None:
    """Put the finder first in ``sys.meta_path``, once (idempotent)."""
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())
