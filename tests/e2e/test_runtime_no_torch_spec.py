"""Issue #25: a runtime-only install (``pip install eacfer``, no torch) still gets ``eacfer --help``, and a
command that needs torch says which extra to install, in one line with exit status 2, never a traceback.

The runtime-only environment is simulated in a subprocess whose ``-c`` prelude puts an import hook first on
``sys.meta_path`` that refuses ``torch`` and ``torchvision`` (as a missing package would: ``ImportError`` with
``name`` set), so the test runs in the full development environment. The real runtime-only venv is built
by ``.ci/runtime_check`` (CI), not here.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from no_torch import BLOCK_TORCH

pytestmark = pytest.mark.spec  # written from the paper or a specification (`pytest -m spec`)

# the CLI in a child that cannot import torch or torchvision (tests/no_torch.py)
NO_TORCH = BLOCK_TORCH + """
from eacfer.commands.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_without_torch(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def test_the_prelude_really_blocks_torch():
    p = subprocess.run([sys.executable, "-c", NO_TORCH.replace("from eacfer", "import torch\nfrom eacfer")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "No module named 'torch'" in p.stderr


def test_help_works_without_torch():
    p = run_without_torch("--help")
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    for command in ("train", "predict", "video", "export"):
        assert command in p.stdout


def test_train_help_works_without_torch():
    p = run_without_torch("train", "--help")
    assert p.returncode == 0, p.stderr
    assert "--backbone" in p.stdout and "eacfer[train]" in p.stdout  # the backbone list needs torch: says so


@pytest.mark.parametrize("command", [
    ["train", "--data", "no_such_data", "--backbone", "mobilenet_v2"],
    ["demo"],
])
def test_a_training_command_without_torch_is_one_line_naming_the_extra(command, tmp_path):
    out = tmp_path / "out" / "run"
    p = run_without_torch(*command, "--out", str(out), cwd=str(tmp_path))
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip() == f"eacfer {command[0]} needs the training extra: pip install 'eacfer[train]'"
    assert not (tmp_path / "out").exists()  # the --out folders the failed command made are removed again


def test_an_unrelated_missing_module_is_not_blamed_on_the_training_extra():
    from eacfer.commands.cli import needs_training_extra

    assert needs_training_extra(ModuleNotFoundError("No module named 'torch.nn'", name="torch.nn"))
    assert needs_training_extra(ModuleNotFoundError("No module named 'torchvision'", name="torchvision"))
    assert not needs_training_extra(ModuleNotFoundError("No module named 'torchaudio'", name="torchaudio"))
    assert not needs_training_extra(ModuleNotFoundError("No module named 'av'", name="av"))
    assert not needs_training_extra(ValueError("torch"))
