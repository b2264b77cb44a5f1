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


# Each old name is imported first in a fresh interpreter (in this one it may already be cached in sys.modules).
# A fresh `python -c` per name cost a torch import each (~20 names, 3-15 s each on 2 busy cores): one child
# interpreter imports the heavy third-party packages once (nothing of eacfer), then forks once per name, so every
# name is still imported with no eacfer module loaded.
_FORK_PER_NAME = r"""
import importlib, json, os, sys, traceback, warnings
import numpy, torch  # third-party only: shared by the forks
assert not [m for m in sys.modules if m == "eacfer" or m.startswith("eacfer.")]
results = {}
for old, new in json.loads(sys.argv[1]):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        err = ""
        try:
            import eacfer
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                got_old = importlib.import_module(old)
            got_new = importlib.import_module(new)
            assert got_old is got_new, (got_old, got_new)
            msgs = [str(x.message) for x in caught if issubclass(x.category, DeprecationWarning)]
            assert any(old in m and new in m for m in msgs), msgs
        except BaseException:
            err = traceback.format_exc()
        os.write(w, err.encode())
        os._exit(1 if err else 0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    results[old] = data.decode() or ("" if status == 0 else f"child exited with status {status}")
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def old_name_results() -> dict[str, str]:
    """Per old module name: "" when it imported as its new module with a DeprecationWarning, else the error."""
    import json

    cases = json.dumps(sorted(_moved.MOVED.items()))
    r = subprocess.run([sys.executable, "-c", _FORK_PER_NAME, cases], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("old,new", sorted(_moved.MOVED.items()))
def test_old_module_path_is_the_new_module_with_a_warning(old: str, new: str, old_name_results) -> None:
    assert old_name_results[old] == "", old_name_results[old][-2000:]


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
                   "export.py"]
    assert (ROOT / "src" / "eacfer" / "official" / "__init__.py").is_file()  # the import of EAC checkpoints


def test_layer_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed in this environment (make test installs it)")
    r = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:]
