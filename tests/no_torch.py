"""What a runtime-only install (no torch) looks like to Python, for tests that run a child interpreter.

:data:`BLOCK_TORCH` is Python source to run first in the child: an import hook, first on ``sys.meta_path``,
that refuses ``torch`` and ``torchvision`` as a missing package would (``ModuleNotFoundError`` with ``name``
set). The real runtime-only venv is built by ``.ci/runtime_check`` (CI).
"""

BLOCK_TORCH = """\
import importlib.abc, sys

class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None

sys.meta_path.insert(0, _NoTorch())
"""
