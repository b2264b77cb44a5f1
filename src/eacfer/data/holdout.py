"""A stratified, seeded part of a training split held out for calibration (``eacfer train --val-fraction``).

RAF-DB has no validation split, and a temperature must never be fitted on the test split, so training can
hold out a fraction of *train* per class. The choice depends only on the split's labels (in the order the
loader lists them), the fraction and the seed, so ``eacfer calibrate --split val`` rebuilds the very same
held-out part from the numbers recorded in the model file.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask, True for the samples held out: ``round(fraction · n_c)`` of each class ``c`` (at least one,
    and at least one left for training, when the class has two or more samples), chosen with ``seed``.

    Example:
        >>> m = stratified_holdout(np.array([0] * 10 + [1] * 20), 0.1, seed=0)
        >>> int(m[:10].sum()), int(m[10:].sum())
        (1, 2)
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"--val-fraction must be between 0 and 1 (exclusive), got {fraction}")
    y = np.asarray(labels, dtype=np.int64).ravel()
    mask = np.zeros(y.size, dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if idx.size < 2:
            continue
        k = min(max(int(round(fraction * idx.size)), 1), idx.size - 1)
        # one generator per class: adding a class elsewhere does not move this class's choice
        rng = np.random.default_rng([int(seed), int(c)])
        mask[rng.permutation(idx)[:k]] = True
    return mask


def split_holdout(data: Any, fraction: float, seed: int) -> tuple[Any, Any]:
    """``(train without the held-out part, the held-out part as split "val")`` of a :class:`SplitData`.

    Example:
        >>> train, val = split_holdout(load_split("data/RAF-DB", "train"), 0.1, seed=0)  # doctest: +SKIP
    """
    mask = stratified_holdout(np.asarray(data.labels()), fraction, seed)
    keep = [s for s, m in zip(data.samples, mask, strict=True) if not m]
    held = [s for s, m in zip(data.samples, mask, strict=True) if m]
    return dataclasses.replace(data, samples=keep), dataclasses.replace(data, samples=held, split="val")
