"""Shared helpers of the fast-pipeline tests: a tiny BN network and a learnable synthetic image set."""

from __future__ import annotations

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


def free_port() -> int:
    """A TCP port nobody listens on right now (for a test's DDP rendezvous)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
