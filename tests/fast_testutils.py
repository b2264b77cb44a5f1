"""Shared helpers of the fast-pipeline tests: a tiny BN network and a learnable synthetic image set."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from eacfer.models.eac import EACNet


def tiny_net(num_classes: int = 7, seed: int = 0, width: int = 16, bn: bool = True) -> EACNet:
    """A 3-conv (BatchNorm) network under the real EAC head (fast enough for CPU tests)."""
    torch.manual_seed(seed)

    def norm(c: int) -> nn.Module:
        return nn.BatchNorm2d(c) if bn else nn.Identity()

    trunk = nn.Sequential(
        nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False), norm(width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False), norm(2 * width), nn.ReLU(),
        nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1, bias=False), norm(2 * width), nn.ReLU(),
    )
    return EACNet(trunk, 2 * width, num_classes=num_classes, backbone_name="tiny")


def synthetic_faces(n: int, size: int = 40, num_classes: int = 7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """N×size×size×3 uint8 images whose class is a bright blob's position and colour, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, size=n)
    imgs = rng.integers(40, 90, size=(n, size, size, 3)).astype(np.int16)
    yy, xx = np.mgrid[0:size, 0:size]
    for k in range(n):
        c = labels[k]
        cy = size * (0.25 + 0.5 * ((c // 3) % 2)) + rng.normal(0, 1.5)
        cx = size * (0.2 + 0.3 * (c % 3)) + rng.normal(0, 1.5)
        blob = ((yy - cy) ** 2 + (xx - cx) ** 2) < (size * 0.18) ** 2
        imgs[k][blob] += np.array([150 if c % 2 else 20, 40 + 40 * (c % 4), 150 if c >= 4 else 10])
    return np.clip(imgs, 0, 255).astype(np.uint8), labels.astype(np.int64)


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov–Smirnov statistic (no scipy in the env)."""
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / a.size
    cdf_b = np.searchsorted(b, grid, side="right") / b.size
    return float(np.abs(cdf_a - cdf_b).max())


def ks_critical(n: int, m: int, alpha: float = 1e-3) -> float:
    """Critical KS distance at level ``alpha`` (asymptotic formula)."""
    c = np.sqrt(-np.log(alpha / 2) / 2)
    return float(c * np.sqrt((n + m) / (n * m)))


@contextlib.contextmanager
def torchrun_rendezvous(world_size: int) -> Iterator[dict[str, str]]:
    """One ``torchrun`` launch's rendezvous: the environment its agent gives the workers, with the store hosted here.

    torchrun's agent hosts the TCPStore and tells the workers (``TORCHELASTIC_USE_AGENT_STORE=True``) to join it as
    clients; this does the same. The store listens on a port the OS assigns and that stays bound until the block
    ends, so no other process (another test, another pytest-xdist worker, a gloo connection) can take it between
    picking and binding, and each call is a fresh store, i.e. a new launch (a resumed run is a second launch).

    Example:
        >>> with torchrun_rendezvous(2) as env:  # doctest: +SKIP
        ...     mp.spawn(worker, args=(env,), nprocs=2)  # each worker: os.environ.update(env, RANK=..., LOCAL_RANK=...)
    """
    from torch.distributed import TCPStore

    store = TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    try:
        yield {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(store.port), "WORLD_SIZE": str(world_size),
               "TORCHELASTIC_USE_AGENT_STORE": "True", "TORCHELASTIC_RESTART_COUNT": "0"}
    finally:
        del store
