"""The package layout: old import paths still work (with a warning) and the layer contracts hold."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from eacfer import _moved

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("old,new", sorted(_moved.MOVED.items()))
def test_old_module_path_is_the_new_module_with_a_warning(old: str, new: str) -> None:
    # run in a fresh interpreter: in this one the old name may already be cached in sys.modules
    code = (
        "import importlib, warnings, sys\n"
        "import eacfer\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        f"    old = importlib.import_module({old!r})\n"
        f"new = importlib.import_module({new!r})\n"
        "assert old is new, (old, new)\n"
        "msgs = [str(x.message) for x in w if issubclass(x.category, DeprecationWarning)]\n"
        f"assert any({old!r} in m and {new!r} in m for m in msgs), msgs\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def test_submodule_of_a_moved_package_is_not_loaded_twice() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = importlib.import_module("eacfer.fast.step")
        old_det = importlib.import_module("eacfer.detect.base")
    assert old is importlib.import_module("eacfer.training.fast.step")
    assert old_det is importlib.import_module("eacfer.infer.detect.base")
    # one class object, so isinstance checks agree whichever name a user imported
    assert old.FastSettings is sys.modules["eacfer.training.fast.step"].FastSettings


def test_new_name_maps_prefixes_only() -> None:
    assert _moved.new_name("eacfer.cli") == "eacfer.commands.cli"
    assert _moved.new_name("eacfer.detect.haar") == "eacfer.infer.detect.haar"
    assert _moved.new_name("eacfer.detector") is None  # a prefix of a name is not a match
    assert _moved.new_name("eacfer.models.eac") is None


def test_public_api_names_resolve() -> None:
    import eacfer

    for name in eacfer.__all__:
        assert getattr(eacfer, name) is not None
    # the training function is not shadowed by the training package
    assert callable(eacfer.train) and eacfer.train.__module__ == "eacfer.training.trainer"


def test_no_loose_modules_at_the_top() -> None:
    top = sorted(p.name for p in (ROOT / "src" / "eacfer").glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "_moved.py", "checkpoint.py", "constants.py", "demo.py",
                   "export.py", "official.py"]


def test_layer_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed in this environment (make test installs it)")
    r = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:]
