"""How far a model's probabilities can be trusted: ECE, NLL, Brier score, reliability diagram, temperature.

Definitions (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017):

* **ECE** (expected calibration error, 15 equal-width confidence bins): ``Σ_b (n_b / N) · |acc_b − conf_b|``
  where ``conf_b`` is the mean top-1 probability of the samples whose top-1 probability falls in bin ``b``
  and ``acc_b`` their accuracy. 0 for a perfectly calibrated predictor.
* **NLL**: mean ``−log p(true class)``.
* **Brier score**: mean over samples of ``Σ_k (p_k − 1[k = true])²`` (0 best, 2 worst).
* **Temperature scaling**: one scalar ``T > 0``; probabilities ``softmax(z / T)``. ``T`` is fitted by
  minimising the NLL on a calibration split (never the test split); it does not change the argmax, so
  accuracy is unchanged.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: the number of equal-width confidence bins of ECE and the reliability diagram (Guo et al. use 15)
ECE_BINS = 15


def softmax_t(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """float64 softmax of ``logits / temperature`` over the last axis.

    Example:
        >>> softmax_t(np.array([[0.0, np.log(3.0)]])).round(2).tolist()
        [[0.25, 0.75]]
    """
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _check(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64).ravel()
    if p.ndim != 2 or p.shape[0] != y.size or y.size == 0:
        raise ValueError(f"expected N×K probabilities and N labels (N > 0), got {p.shape} and {y.size}")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"labels outside 0..{p.shape[1] - 1}")
    return p, y


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict[str, list[Any]]:
    """Per confidence bin (equal width on [0, 1]): ``count``, mean ``confidence``, ``accuracy`` (None if empty).

    Example:
        >>> b = reliability_bins(np.array([[0.9, 0.1], [0.15, 0.85]]), np.array([0, 0]), bins=5)
        >>> b["count"], b["accuracy"][4]
        ([0, 0, 0, 0, 2], 0.5)
    """
    p, y = _check(probs, labels)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    # bin b holds confidences in (b/B, (b+1)/B]; a confidence of exactly 0 goes to the first bin
    idx = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    sum_conf = np.bincount(idx, weights=conf, minlength=bins)
    sum_acc = np.bincount(idx, weights=correct, minlength=bins)
    return {
        "edges": [float(e) for e in np.linspace(0.0, 1.0, bins + 1)],
        "count": [int(c) for c in count],
        "confidence": [float(s / c) if c else None for s, c in zip(sum_conf, count, strict=True)],
        "accuracy": [float(s / c) if c else None for s, c in zip(sum_acc, count, strict=True)],
    }


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE with ``bins`` equal-width bins (module docstring).

    Example:
        >>> expected_calibration_error(np.array([[0.9, 0.1], [0.9, 0.1]]), np.array([0, 1]))
        0.4
    """
    b = reliability_bins(probs, labels, bins)
    n = sum(b["count"])
    return float(sum(c / n * abs(a - f) for c, a, f in zip(b["count"], b["accuracy"], b["confidence"], strict=True) if c))


def negative_log_likelihood(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean ``−log p(true class)`` (probabilities clipped at 1e-12 so a confident error costs ~27.6, not inf).

    Example:
        >>> round(negative_log_likelihood(np.array([[0.5, 0.5]]), np.array([1])), 4)
        0.6931
    """
    p, y = _check(probs, labels)
    return float(-np.mean(np.log(np.clip(p[np.arange(y.size), y], 1e-12, 1.0))))


def brier_score(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean squared distance between the probability vector and the one-hot truth (summed over classes).

    Example:
        >>> brier_score(np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([0, 0]))
        0.25
    """
    p, y = _check(probs, labels)
    onehot = np.zeros_like(p)
    onehot[np.arange(y.size), y] = 1.0
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def confidence_metrics(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict[str, Any]:
    """``ece``, ``nll``, ``brier``, ``mean_confidence``, ``accuracy`` and the ``reliability`` bins.

    Example:
        >>> confidence_metrics(np.array([[0.9, 0.1]]), np.array([0]))["nll"] < 0.11
        True
    """
    p, y = _check(probs, labels)
    return {
        "ece": expected_calibration_error(p, y, bins),
        "nll": negative_log_likelihood(p, y),
        "brier": brier_score(p, y),
        "mean_confidence": float(p.max(axis=1).mean()),
        "accuracy": float((p.argmax(axis=1) == y).mean()),
        "bins": bins,
        "reliability": reliability_bins(p, y, bins),
    }


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iter: int = 200) -> float:
    """The temperature ``T`` minimising the NLL of ``softmax(logits / T)`` on these (calibration) samples.

    Optimised over ``log T`` (so ``T`` stays positive) with ``torch.optim.LBFGS``, in float64; the result is
    clipped to the range a model file accepts (:data:`eacfer.modelinfo.TEMPERATURE_RANGE`).

    Example:
        >>> z = np.array([[4.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 0.0]]); y = np.array([0, 1, 1, 0])
        >>> fit_temperature(z, y) > 1.0   # one confident error in four: soften
        True
    """
    import torch

    from eacfer.modelinfo import TEMPERATURE_RANGE

    z = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64).ravel())
    if z.ndim != 2 or z.shape[0] != y.numel() or y.numel() == 0:
        raise ValueError(f"expected N×K logits and N labels (N > 0), got {tuple(z.shape)} and {y.numel()}")
    if not torch.isfinite(z).all():
        raise ValueError("the logits hold NaN or infinite values; cannot fit a temperature")
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    lo, hi = TEMPERATURE_RANGE
    t = float(log_t.detach().exp().item())
    return float(min(max(t, lo), hi)) if np.isfinite(t) else 1.0


def plot_reliability(
    before: dict[str, Any], path: str | os.PathLike[str], after: dict[str, Any] | None = None,
    title: str | None = None,
) -> Path:
    """Save a reliability diagram PNG: accuracy per confidence bin against the diagonal of perfect calibration,
    for the raw softmax (``before``) and, when given, the temperature-scaled one (``after``); ECE in the legend.

    Example:
        >>> plot_reliability(confidence_metrics(p, y), "reliability.png")  # doctest: +SKIP
    """
    from matplotlib.figure import Figure  # no pyplot: no global figure registry, no backend switch

    from eacfer.utils.atomic import atomic_path

    fig = Figure(figsize=(5.5, 5.0))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect calibration")
    series: list[tuple[str, dict[str, Any], str]] = [("softmax", before, "tab:red")]
    if after is not None:
        series.append((f"T = {after.get('temperature', 1.0):.2f}", after, "tab:blue"))
    bins = before["reliability"]
    width = (bins["edges"][1] - bins["edges"][0])
    for i, (name, m, colour) in enumerate(series):
        r = m["reliability"]
        centres = [(a + b) / 2 for a, b in zip(r["edges"][:-1], r["edges"][1:], strict=True)]
        xs = [c + (i - (len(series) - 1) / 2) * width / (len(series) + 1) for c in centres]
        acc = [a if a is not None else 0.0 for a in r["accuracy"]]
        ax.bar(xs, acc, width=width / (len(series) + 1), color=colour, alpha=0.7,
               label=f"{name} (ECE {m['ece']:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-1 probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(title or f"reliability (n={sum(bins['count'])}, {len(bins['count'])} bins)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path
