"""Shared test fixtures (generic; used by several test modules)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Qt-based tests must never try to open a window.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Tiny test tensors run faster on one thread, and subprocesses inherit it: on a 2-core CI machine,
# several OpenMP pools waiting for each other made training steps ~10x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread per test (OMP_NUM_THREADS covers subprocesses; this covers torch if imported earlier)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session", autouse=True)
def _private_caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Caches and tool folders private to this test process, never the user's (~/.cache, ~/.config, ~/.local).

    Set unconditionally (an ``EACFER_CACHE_DIR`` already in the environment would otherwise be shared by the
    pytest-xdist workers and the user); each worker has its own base temporary folder. Tests that need a folder
    of their own still set it themselves.
    """
    base = tmp_path_factory.mktemp("tool_homes")
    private = {"EACFER_CACHE_DIR": base / "eacfer_cache", "WANDB_CONFIG_DIR": base / "wandb_config",
               "WANDB_CACHE_DIR": base / "wandb_cache", "WANDB_DATA_DIR": base / "wandb_data",
               "WANDB_ARTIFACT_DIR": base / "wandb_artifacts"}
    saved = {k: os.environ.get(k) for k in private}
    os.environ.update({k: str(v) for k, v in private.items()})
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def synth_rafdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic dataset in the official RAF-DB layout: 56 train + 28 test images, 48×48, seed 0.

    Session-scoped and shared: tests must not modify it (copy it first if they need to).
    """
    from eacfer.data.synth import generate_rafdb

    return generate_rafdb(tmp_path_factory.mktemp("synth_rafdb"), n_train=56, n_test=28, seed=0, size=48)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Folder of committed test fixtures (``tests/fixtures``)."""
    return FIXTURES
