"""The fast training step and epoch loops: no host synchronisation per batch, metrics kept on the device.

:class:`TwoViewEAC` puts both EAC forward passes behind a single ``forward`` so DistributedDataParallel
(which hooks ``forward`` only) and ``torch.compile`` see one call per step. ``views`` picks how x and x′
go through the network:

* ``"split"`` (default) — two forward passes of N images with the same weights, exactly like the
  reference: BatchNorm normalises each view with its own batch statistics and updates its running
  statistics twice per step.
* ``"joint"`` — one forward pass of the 2N stack [x; x′]: one larger, more GPU-efficient call, but
  BatchNorm statistics span both views and the running statistics are updated once per step. Measured on
  synthetic data (see benchmarks/RESULTS.md, "Training throughput"); opt-in, flagged in the run config.

Mixed precision follows the GPU generation (:func:`eacfer.training.numerics.precision_for`): bf16 autocast
(no GradScaler) from compute capability 8.0 on, fp16 autocast with a GradScaler on 7.x (T4, V100), fp32 below;
the CAMs and the EAC loss are computed in fp32. :class:`FastSettings` collects the device-dependent choices
(autocast and its dtype, fused Adam, channels_last, cuDNN autotuning). Each of them also runs on a CPU, so tests can exercise the exact CUDA configuration
on a machine without a GPU (``FastSettings.for_device("cuda")`` applied to a CPU run).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from eacfer.models.loss import ce_loss, eac_loss
from eacfer.training.fast.distributed import DistInfo, all_gather_varlen, all_reduce_sum
from eacfer.training.numerics import (
    autocast_dtype,
    backward_and_step,
    device_capability,
    exact_fp32,
    precision_for,
)

log = logging.getLogger(__name__)

VIEW_MODES = ("split", "joint")
AMP_DTYPES = {"bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16"}
_SWITCH = {"on": True, "off": False, "true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


class TwoViewEAC(nn.Module):
    """``forward(x, x_flipped)`` → ``(logits, cams, cams_of_flipped)``; ``forward(x)`` → logits.

    Example:
        >>> from eacfer import create_model
        >>> m = TwoViewEAC(create_model("resnet18"), views="joint")
        >>> logits, c, cf = m(torch.zeros(2, 3, 64, 64), torch.zeros(2, 3, 64, 64))
        >>> tuple(cf.shape)
        (2, 7, 2, 2)
    """

    def __init__(self, net: nn.Module, views: str = "split"):
        super().__init__()
        if views not in VIEW_MODES:
            raise ValueError(f"views must be one of {VIEW_MODES}, got {views!r}")
        self.net, self.views = net, views

    def forward(
        self, x: torch.Tensor, x_flipped: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if x_flipped is None:
            return self.net(x)
        if self.views == "joint":
            n = x.shape[0]
            logits, cams = self.net.forward_with_cams(torch.cat([x, x_flipped]))
            return logits[:n], cams[:n], cams[n:]
        logits, cams = self.net.forward_with_cams(x)
        _, cams_flipped = self.net.forward_with_cams(x_flipped)
        return logits, cams, cams_flipped


@dataclass(frozen=True)
class FastSettings:
    """The fast path's device-dependent choices; :meth:`for_device` gives the defaults.

    Attributes:
        amp: autocast of the forward pass in ``amp_dtype`` (the CAMs and the loss stay fp32).
        fused_adam: Adam's fused kernel (one kernel for all tensors; the same update rule).
        channels_last: model and batches in channels-last memory format (tensor-core convolutions).
        cudnn_benchmark: let cuDNN autotune kernels for the fixed training input size.
        amp_dtype: ``"bfloat16"`` or ``"float16"`` (the latter trains with a GradScaler).

    Example:
        >>> FastSettings.for_device("cuda", capability=(8, 0)).amp, FastSettings.for_device("cpu").amp
        (True, False)
        >>> FastSettings.for_device("cuda", capability=(7, 5)).amp_dtype
        'float16'
        >>> FastSettings.for_device("cpu", fused_adam=True).fused_adam
        True
    """

    amp: bool = False
    fused_adam: bool = False
    channels_last: bool = False
    cudnn_benchmark: bool = False
    amp_dtype: str = "bfloat16"

    @classmethod
    def for_device(cls, device: torch.device | str, capability: tuple[int, int] | None = None,
                   **overrides: Any) -> FastSettings:
        """The GPU generation's policy on CUDA (``capability``: the device's own unless given; a machine
        without CUDA, emulating it in tests, gets the ≥ 8.0 policy), all off for CPU (fp32, the reference
        numerics); ``overrides`` win."""
        if torch.device(device).type != "cuda":
            return replace(cls(), **overrides)
        policy = precision_for(capability or device_capability(device) or (8, 0))
        return replace(cls(amp=policy.amp_dtype is not None, fused_adam=True, channels_last=policy.channels_last,
                           cudnn_benchmark=True, amp_dtype=policy.amp_dtype or "bfloat16"), **overrides)

    @property
    def needs_scaler(self) -> bool:
        """fp16 autocast trains with a GradScaler (bf16 has fp32's exponent range and needs none)."""
        return self.amp and self.amp_dtype == "float16"

    @staticmethod
    def parse(text: str) -> dict[str, bool]:
        """``"amp=off,channels_last=on"`` → ``{"amp": False, "channels_last": True}`` (the CLI's form).

        Example:
            >>> FastSettings.parse("amp=off, fused_adam=on")
            {'amp': False, 'fused_adam': True}
        """
        known = tuple(f.name for f in fields(FastSettings) if f.name != "amp_dtype")
        out: dict[str, Any] = {}
        for item in (t.strip() for t in text.split(",")):
            if not item:
                continue
            key, sep, value = (v.strip() for v in item.partition("="))
            if sep and key == "amp_dtype" and value.lower() in AMP_DTYPES:
                out[key] = AMP_DTYPES[value.lower()]
                continue
            if not sep or key not in known or value.lower() not in _SWITCH:
                raise ValueError(f"--fast-settings: cannot read {item!r}; expected KEY=on|off with KEY one of "
                                 f"{', '.join(known)}, or amp_dtype=bf16|fp16")
            out[key] = _SWITCH[value.lower()]
        return out

    @staticmethod
    def check_overrides(overrides: dict[str, Any]) -> None:
        """Raise ValueError for unknown keys or non-boolean values (a config's ``fast_settings``)."""
        known = {f.name for f in fields(FastSettings)}
        bad = [k for k, v in overrides.items() if k not in known
               or (k == "amp_dtype" and v not in ("bfloat16", "float16")) or (k != "amp_dtype" and not isinstance(v, bool))]
        if bad:
            raise ValueError(f"fast_settings: {', '.join(map(repr, bad))} not understood; keys are "
                             f"{', '.join(sorted(known))}, values true/false (amp_dtype: bfloat16 or float16)")

    def describe(self) -> str:
        """One line for the log, e.g. ``bf16 autocast, fused Adam, channels_last``."""
        amp = "fp16 autocast + GradScaler" if self.needs_scaler else "bf16 autocast"
        parts = [amp if self.amp else "fp32"]
        parts += [name for on, name in ((self.fused_adam, "fused Adam"), (self.channels_last, "channels_last"),
                                        (self.cudnn_benchmark, "cudnn.benchmark")) if on]
        return ", ".join(parts)


def autocast_for(device: torch.device, amp: bool, dtype: str = "bfloat16") -> contextlib.AbstractContextManager[Any]:
    """``dtype`` autocast on ``device`` when ``amp`` (CUDA, or a CPU emulating the CUDA settings); else nothing."""
    if amp:
        return torch.autocast(device.type, dtype=autocast_dtype(dtype))
    return contextlib.nullcontext()


def configure_backend(device: torch.device, settings: FastSettings | None = None) -> None:
    """cuDNN autotuning for the fixed input size of training (call once per run, not at import)."""
    settings = settings or FastSettings.for_device(device)
    if device.type == "cuda" and settings.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True


def make_optimizer(
    params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float, device: torch.device,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    """The recipe's Adam; the fused kernel when ``fused`` (default: on CUDA). Same update rule either way.

    Example:
        >>> opt = make_optimizer(torch.nn.Linear(2, 2).parameters(), 1e-4, 1e-4, torch.device("cpu"))
        >>> opt.defaults["fused"]
        False
    """
    fused = device.type == "cuda" if fused is None else bool(fused)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)


class DeviceMeter:
    """Sample-weighted sums of loss terms and correct counts, accumulated on the device.

    Example:
        >>> m = DeviceMeter(torch.device("cpu"))
        >>> m.add({"loss": torch.tensor(2.0), "ce": torch.tensor(1.0), "consistency": torch.tensor(0.2)},
        ...       torch.tensor(3), 4)
        >>> m.result()["train_accuracy"]
        0.75
    """

    KEYS = ("loss", "ce", "consistency")

    def __init__(self, device: torch.device):
        # one float64 vector: [loss·n, ce·n, consistency·n, correct, n]
        self.sums = torch.zeros(5, dtype=torch.float64, device=device)

    def add(self, terms: dict[str, torch.Tensor], correct: torch.Tensor, n: int) -> None:
        # Python scalars go in as kernel arguments: no host→device copy, no synchronisation
        self.sums[:3] += torch.stack([terms[k].detach().to(torch.float64) for k in self.KEYS]) * n
        self.sums[3] += correct
        self.sums[4] += n

    def reduce(self, info: DistInfo | None) -> None:
        """Sum over DDP ranks (so every rank reports the global figures)."""
        if info is not None:
            all_reduce_sum(self.sums, info)

    def result(self) -> dict[str, float]:
        s = self.sums.cpu().tolist()  # the one host synchronisation of the epoch
        n = max(s[4], 1.0)
        return {"train_loss": s[0] / n, "train_ce": s[1] / n, "train_consistency": s[2] / n,
                "train_accuracy": s[3] / n, "n": int(s[4])}


def fast_train_step(
    model: nn.Module,
    batch: Sequence[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    method: str = "eac",
    lam: float = 5.0,
    amp: bool = False,
    meter: DeviceMeter | None = None,
    amp_dtype: str = "bfloat16",
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, torch.Tensor]:
    """One optimisation step on a device-side batch ``(x, x_flipped, labels, index)``.

    ``model`` is a :class:`TwoViewEAC` (possibly under DDP / torch.compile). Returns the detached loss
    terms as device tensors; nothing here waits for the GPU. ``scaler`` (fp16 autocast) scales the loss
    and skips steps whose gradients overflowed, as :func:`eacfer.training.engine.train_step` does.

    Example:
        >>> terms = fast_train_step(TwoViewEAC(net), batch, opt, lam=5.0, meter=meter)  # doctest: +SKIP
    """
    x, x_flipped, labels = batch[0], batch[1], batch[2]
    device = x.device
    with autocast_for(device, amp, amp_dtype):
        if method == "eac":
            logits, cams, cams_flipped = model(x, x_flipped)
            # fp32 loss: the MSE of small CAM differences loses precision in bf16
            terms = eac_loss(logits.float(), cams.float(), cams_flipped.float(), labels, lam=lam)
        elif method == "ce":
            logits = model(x)
            terms = ce_loss(logits.float(), labels)
        else:
            raise ValueError(f"unknown method {method!r}; known: eac, ce")
    optimizer.zero_grad(set_to_none=True)
    backward_and_step(terms["loss"], optimizer, scaler)
    out = {k: v.detach() for k, v in terms.items()}
    if meter is not None:
        meter.add(out, (logits.detach().argmax(1) == labels).sum(), int(labels.shape[0]))
    return out


def fast_train_epoch(
    model: nn.Module,
    loader: Any,
    optimizer: torch.optim.Optimizer,
    *,
    method: str = "eac",
    lam: float = 5.0,
    amp: bool = False,
    epoch: int = 1,
    dist_info: DistInfo | None = None,
    progress: bool = True,
    amp_dtype: str = "bfloat16",
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, float]:
    """Train one epoch on a :class:`~eacfer.training.fast.loader.FastLoader`; same keys as the reference loop.

    Metrics are reduced over DDP ranks (global figures on every rank); ``images_per_s`` counts all ranks.
    """
    from eacfer.utils.progress import progress_bar as tqdm

    model.train()
    device = loader.device
    meter = DeviceMeter(device)
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    t0 = time.perf_counter()
    show = progress and (dist_info is None or dist_info.is_main)
    for batch in tqdm(loader, total=len(loader), desc=f"epoch {epoch} train", leave=False, disable=not show, unit="batch"):
        fast_train_step(model, batch, optimizer, method=method, lam=lam, amp=amp, meter=meter, amp_dtype=amp_dtype,
                        scaler=scaler)
    meter.reduce(dist_info)
    out = meter.result()
    seconds = time.perf_counter() - t0
    if out["n"] == 0:
        raise ValueError("the training loader produced no batches (empty training set?)")
    if not np.isfinite(out["train_loss"]):
        raise ValueError(f"epoch {epoch}: training loss became {out['train_loss']} (try a lower --lr)")
    out.update(seconds=seconds, images_per_s=out["n"] / max(seconds, 1e-9))
    return out


@torch.no_grad()
def fast_predict(
    model: nn.Module, loader: Any, *, amp: bool = False, dist_info: DistInfo | None = None
) -> dict[str, np.ndarray]:
    """Predictions over an evaluation :class:`FastLoader` (all ranks' shards, in dataset order).

    Returns ``labels``, ``preds``, ``probs`` and ``indices`` like :func:`eacfer.training.engine.predict`.
    """
    model.eval()
    probs, labels, indices = [], [], []
    for x, y, idx in loader:
        with autocast_for(x.device, amp), exact_fp32(not amp):  # fp32 evaluation: TF32 off (see engine.predict)
            logits = model(x)
        probs.append(torch.softmax(logits.float(), dim=1))
        labels.append(y)
        indices.append(idx)
    device = loader.device
    k = getattr(unwrap_net(model), "num_classes", 1)
    p = torch.cat(probs) if probs else torch.zeros((0, k), device=device)
    y = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long, device=device)
    i = torch.cat(indices) if indices else torch.zeros(0, dtype=torch.long, device=device)
    if dist_info is not None and dist_info.enabled:
        p, y, i = (all_gather_varlen(t, dist_info) for t in (p, y, i))
    order = torch.argsort(i)
    p, y, i = p[order].cpu().numpy(), y[order].cpu().numpy(), i[order].cpu().numpy()
    if len(p) == 0:
        raise ValueError("the evaluation loader produced no batches (empty split?)")
    return {"labels": y.astype(np.int64), "preds": p.argmax(1).astype(np.int64), "probs": p, "indices": i.astype(np.int64)}


def fast_evaluate(
    model: nn.Module,
    loader: Any,
    class_names: Sequence[str],
    *,
    amp: bool = False,
    dist_info: DistInfo | None = None,
    return_predictions: bool = False,
) -> dict[str, Any]:
    """Metrics of ``model`` on an evaluation :class:`FastLoader`, like :func:`eacfer.training.engine.evaluate`."""
    from eacfer.training.metrics import classification_metrics

    t0 = time.perf_counter()
    pred = fast_predict(model, loader, amp=amp, dist_info=dist_info)
    out = classification_metrics(pred["labels"], pred["preds"], class_names)
    out["seconds"] = time.perf_counter() - t0
    if return_predictions:
        out["predictions"] = pred
    return out


def unwrap_net(model: nn.Module) -> nn.Module:
    """The EAC network under DDP / torch.compile / :class:`TwoViewEAC` wrappers."""
    from eacfer.training.fast.distributed import unwrap

    m = unwrap(model)
    while isinstance(m, TwoViewEAC):
        m = unwrap(m.net)
    return m
