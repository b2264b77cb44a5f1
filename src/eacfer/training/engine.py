"""One epoch of training and one pass of evaluation (torchvision-references style: plain functions).

``train_step`` is the per-batch unit: the trainer passes it to :func:`train_one_epoch` as ``step_fn`` so
that another pipeline (e.g. a GPU-side augmentation path) can swap in its own step without touching
the epoch loop. A training batch is ``((x, x_flipped), labels, indices)`` as produced by
:class:`eacfer.data.transforms.EACTrainTransform` through the dataset; an evaluation batch is
``(x, labels, indices)``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from eacfer.constants import TRAINING_METHODS
from eacfer.models.loss import ce_loss, eac_loss
from eacfer.training.metrics import classification_metrics
from eacfer.training.numerics import backward_and_step, exact_fp32

log = logging.getLogger(__name__)

METHODS = TRAINING_METHODS

StepFn = Callable[..., dict[str, Any]]


def _autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager[Any]:
    # AMP only on CUDA (fp16 + GradScaler); on CPU the trainer turns it off with a warning.
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def train_step(
    model: nn.Module,
    batch: Sequence[Any],
    optimizer: torch.optim.Optimizer,
    *,
    method: str = "eac",
    lam: float = 5.0,
    device: torch.device | str = "cpu",
    scaler: torch.amp.GradScaler | None = None,
    amp: bool = False,
) -> dict[str, Any]:
    """Forward, loss, backward and optimizer step on one batch.

    EAC runs the two views through the network in *separate* forward passes, like the official code:
    concatenating them would change the BatchNorm batch statistics. ``method="ce"`` forwards only x.

    Returns detached scalars ``loss``, ``ce``, ``consistency`` (tensors), ``correct`` and ``n`` (ints).

    Example:
        >>> out = train_step(net, ((x, xf), y, idx), opt, method="eac", lam=5.0)  # doctest: +SKIP
        >>> out["loss"].item()                                                   # doctest: +SKIP
    """
    device = torch.device(device)
    views, labels = batch[0], batch[1]
    x, x_flipped = views if isinstance(views, (list, tuple)) else (views, None)
    x = x.to(device, non_blocking=True)
    labels = labels.to(device, non_blocking=True)
    with _autocast(device, amp):
        if method == "eac":
            if x_flipped is None:
                raise ValueError("method 'eac' needs batches with (x, x_flipped) views")
            logits, cams = model.forward_with_cams(x)
            _, cams_flipped = model.forward_with_cams(x_flipped.to(device, non_blocking=True))
            # loss in float32 even under autocast: the MSE of small CAM differences underflows in fp16
            terms = eac_loss(logits.float(), cams.float(), cams_flipped.float(), labels, lam=lam)
        elif method == "ce":
            logits = model(x)
            terms = ce_loss(logits.float(), labels)
        else:
            raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    optimizer.zero_grad(set_to_none=True)
    backward_and_step(terms["loss"], optimizer, scaler)
    hard = labels.argmax(1) if labels.is_floating_point() else labels  # soft targets: accuracy vs their argmax
    correct = int((logits.detach().argmax(1) == hard).sum().item())
    return {
        "loss": terms["loss"].detach(),
        "ce": terms["ce"].detach(),
        "consistency": terms["consistency"].detach(),
        "correct": correct,
        "n": int(labels.shape[0]),
    }


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[Any],
    optimizer: torch.optim.Optimizer,
    *,
    method: str = "eac",
    lam: float = 5.0,
    device: torch.device | str = "cpu",
    epoch: int = 1,
    scaler: torch.amp.GradScaler | None = None,
    amp: bool = False,
    step_fn: StepFn | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Train for one pass over ``loader``; returns sample-weighted means.

    Returns ``train_loss``, ``train_ce``, ``train_consistency``, ``train_accuracy``, ``n``, ``seconds``,
    ``images_per_s``.

    Example:
        >>> stats = train_one_epoch(net, loader, opt, method="eac", lam=5.0, epoch=1)  # doctest: +SKIP
    """
    from eacfer.utils.progress import progress_bar as tqdm

    step = step_fn or train_step
    model.train()
    sums = {"loss": 0.0, "ce": 0.0, "consistency": 0.0}
    correct = n = 0
    t0 = time.perf_counter()
    total = len(loader) if hasattr(loader, "__len__") else None  # type: ignore[arg-type]
    bar = tqdm(loader, total=total, desc=f"epoch {epoch} train", leave=False, disable=not progress, unit="batch")
    for batch in bar:
        out = step(model, batch, optimizer, method=method, lam=lam, device=device, scaler=scaler, amp=amp)
        b = out["n"]
        loss = out["loss"].item()
        if not np.isfinite(loss):
            raise ValueError(f"epoch {epoch}: training loss became {loss} (try a lower --lr, or drop --amp)")
        sums["loss"] += loss * b
        sums["ce"] += out["ce"].item() * b
        sums["consistency"] += out["consistency"].item() * b
        correct += out["correct"]
        n += b
        elapsed = time.perf_counter() - t0
        bar.set_postfix(loss=f"{sums['loss'] / n:.4f}", acc=f"{correct / n:.3f}", img_s=f"{n / max(elapsed, 1e-9):.1f}")
    seconds = time.perf_counter() - t0
    if n == 0:
        raise ValueError("the training loader produced no batches (empty training set?)")
    return {
        "train_loss": sums["loss"] / n,
        "train_ce": sums["ce"] / n,
        "train_consistency": sums["consistency"] / n,
        "train_accuracy": correct / n,
        "n": n,
        "seconds": seconds,
        "images_per_s": n / max(seconds, 1e-9),
    }


@torch.no_grad()
def predict(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    device: torch.device | str = "cpu",
    amp: bool = False,
    progress: bool = True,
    desc: str = "eval",
    flip: bool = False,
) -> dict[str, np.ndarray]:
    """Run the model over ``loader``; returns ``labels``, ``preds``, ``probs`` (N×K softmax), ``logits`` (N×K)
    and dataset ``indices``; with ``flip`` also ``flip_logits``, the logits of the horizontally mirrored images."""
    from eacfer.utils.progress import progress_bar as tqdm

    device = torch.device(device)
    model.eval()
    labels, probs, indices, raw, raw_flip = [], [], [], [], []
    total = len(loader) if hasattr(loader, "__len__") else None  # type: ignore[arg-type]
    for batch in tqdm(loader, total=total, desc=desc, leave=False, disable=not progress, unit="batch"):
        x, y = batch[0], batch[1]
        # fp32 evaluation is exact fp32 (TF32 off), so an A100/H100 reports what a T4 or a CPU reports
        with _autocast(device, amp), exact_fp32(not amp):
            x = x.to(device, non_blocking=True)
            logits = model(x)
            if flip:
                raw_flip.append(model(torch.flip(x, dims=[3])).float().cpu())
        probs.append(F.softmax(logits.float(), dim=1).cpu())
        raw.append(logits.float().cpu())
        y = torch.as_tensor(y)
        labels.append((y.argmax(1) if y.is_floating_point() and y.ndim == 2 else y).cpu())
        if len(batch) > 2:
            indices.append(torch.as_tensor(batch[2]).cpu())
    if not probs:
        raise ValueError("the evaluation loader produced no batches (empty split?)")
    p = torch.cat(probs).numpy()
    out = {
        "labels": torch.cat(labels).numpy().astype(np.int64),
        "preds": p.argmax(1).astype(np.int64),
        "probs": p,
        "logits": torch.cat(raw).numpy(),
        "indices": torch.cat(indices).numpy().astype(np.int64) if indices else np.arange(len(p)),
    }
    if flip:
        out["flip_logits"] = torch.cat(raw_flip).numpy()
    return out


def evaluate(
    model: nn.Module,
    loader: Iterable[Any],
    class_names: Sequence[str],
    *,
    device: torch.device | str = "cpu",
    amp: bool = False,
    progress: bool = True,
    return_predictions: bool = False,
    flip: bool = False,
) -> dict[str, Any]:
    """Accuracy, mean-class accuracy, per-class accuracy and confusion of ``model`` on ``loader``.

    With ``return_predictions`` the dict also holds ``predictions`` (see :func:`predict`).

    Example:
        >>> m = evaluate(net, test_loader, RAFDB_CLASSES)  # doctest: +SKIP
        >>> m["accuracy"], m["mean_class_accuracy"]         # doctest: +SKIP
    """
    t0 = time.perf_counter()
    pred = predict(model, loader, device=device, amp=amp, progress=progress, flip=flip)
    out = classification_metrics(pred["labels"], pred["preds"], class_names)
    out["seconds"] = time.perf_counter() - t0
    if return_predictions:
        out["predictions"] = pred
    return out
