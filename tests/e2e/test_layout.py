"""The package layout: the public API resolves, the top level stays small and the layer contracts hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_public_api_names_resolve() -> None:
    import eacfer

    for name in eacfer.__all__:
        assert getattr(eacfer, name) is not None
    # the training function is not shadowed by the training package
    assert callable(eacfer.train) and eacfer.train.__module__ == "eacfer.training.trainer"


def test_import_eacfer_installs_no_import_hook() -> None:
    """No import-time side effects: the pre-0.2 module paths of a never-released version are gone (#27)."""
    code = ("import sys; before = list(sys.meta_path); import eacfer; import importlib.util as u; "
            "assert sys.meta_path == before, sys.meta_path; assert u.find_spec('eacfer.predictor') is None")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def test_no_loose_modules_at_the_top() -> None:
    top = sorted(p.name for p in (ROOT / "src" / "eacfer").glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "checkpoint.py", "constants.py", "demo.py",
                   "export.py", "modelinfo.py"]
    assert (ROOT / "src" / "eacfer" / "official" / "__init__.py").is_file()  # the import of EAC checkpoints


def test_layer_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed in this environment (make test installs it)")
    r = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:]
