"""Classification metrics (accuracy, mean-class accuracy, per-class accuracy, confusion) and the confusion plot.

Conventions: labels are 0-based class indices; the confusion matrix has rows = truth, columns =
prediction. Mean-class accuracy averages the per-class recalls of the classes that occur in the truth
(a class absent from the evaluated split has no accuracy: ``None`` in ``per_class``, left out of the mean).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eacfer.utils.atomic import atomic_path

log = logging.getLogger(__name__)


def confusion_matrix(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, num_classes: int) -> np.ndarray:
    """K×K int64 counts, rows = truth, columns = prediction.

    Example:
        >>> confusion_matrix([0, 0, 1], [0, 1, 1], 2).tolist()
        [[1, 1], [0, 1]]
    """
    t = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(y_pred, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} vs {p.size}")
    for name, arr in (("y_true", t), ("y_pred", p)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(f"{name} holds a class index outside 0..{num_classes - 1}")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def metrics_from_confusion(confusion: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, mean-class accuracy, per-class accuracy and the confusion (as lists) from a confusion matrix.

    Example:
        >>> m = metrics_from_confusion(np.array([[3, 1], [0, 2]]), ["a", "b"])
        >>> m["accuracy"], m["mean_class_accuracy"], m["per_class"]
        (0.8333333333333334, 0.875, {'a': 0.75, 'b': 1.0})
    """
    cm = np.asarray(confusion, dtype=np.int64)
    k = len(class_names)
    if cm.shape != (k, k):
        raise ValueError(f"confusion matrix shape {cm.shape} does not match {k} classes")
    n = int(cm.sum())
    support = cm.sum(axis=1)
    correct = np.diag(cm)
    per_class: dict[str, float | None] = {}
    recalls = []
    for i, name in enumerate(class_names):
        if support[i] > 0:
            r = float(correct[i] / support[i])
            per_class[str(name)] = r
            recalls.append(r)
        else:
            per_class[str(name)] = None
    return {
        "accuracy": float(correct.sum() / n) if n else 0.0,
        "mean_class_accuracy": float(np.mean(recalls)) if recalls else 0.0,
        "per_class": per_class,
        "confusion": cm.tolist(),
        "n": n,
    }


def classification_metrics(
    y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """All metrics of a prediction run: ``accuracy``, ``mean_class_accuracy``, ``per_class``, ``confusion``, ``n``.

    Example:
        >>> classification_metrics([0, 1, 1], [0, 1, 0], ["a", "b"])["mean_class_accuracy"]
        0.75
    """
    return metrics_from_confusion(confusion_matrix(y_true, y_pred, len(class_names)), class_names)


def plot_confusion(
    confusion: Sequence[Sequence[int]] | np.ndarray,
    class_names: Sequence[str],
    path: str | os.PathLike[str],
    title: str | None = None,
) -> Path:
    """Save the confusion matrix as a PNG: colours row-normalised (per-class recall), cells annotated with counts.

    Example:
        >>> plot_confusion([[3, 1], [0, 2]], ["a", "b"], "confusion.png")  # doctest: +SKIP
    """
    # no matplotlib.use(): a bare Figure renders to files without any backend, and switching the backend
    # here would silently turn off a notebook's inline plots
    from matplotlib.figure import Figure  # Figure without pyplot: no global figure registry

    cm = np.asarray(confusion, dtype=np.int64)
    k = len(class_names)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    side = max(4.0, 0.75 * k + 2.0)
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_xticks(range(k), labels=[str(c) for c in class_names], rotation=45, ha="right")
    ax.set_yticks(range(k), labels=[str(c) for c in class_names])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=9,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title or f"confusion (n={int(cm.sum())})")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    log.debug("wrote %s", path)
    return path


def named_confusion(confusion: Sequence[Sequence[int]] | np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """The confusion matrix with its rows and columns named, for metrics.json.

    ``rows`` = the true class, ``columns`` = the predicted class, both in ``class_names`` order;
    ``by_name[true][predicted]`` is the count.

    Example:
        >>> named_confusion([[3, 1], [0, 2]], ["a", "b"])["by_name"]["a"]
        {'a': 3, 'b': 1}
    """
    cm = np.asarray(confusion, dtype=np.int64)
    names = [str(c) for c in class_names]
    return {
        "rows": "true class",
        "columns": "predicted class",
        "labels": names,
        "by_name": {t: {p: int(cm[i, j]) for j, p in enumerate(names)} for i, t in enumerate(names)},
    }
