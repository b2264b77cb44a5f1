"""How a run computes on its device: the precision policy per GPU generation, TF32, and an optimizer
state that survives a change of pipeline, precision or memory layout on ``--resume``.

Precision policy (:func:`precision_for`), from the CUDA compute capability:

======================  =============================  ===============  =========================
capability              autocast                       channels_last    ``--compile``
======================  =============================  ===============  =========================
≥ 8.0 (A100, H100, L4)  bf16 (no GradScaler)           on               yes
7.x (V100, T4)          fp16 + GradScaler              on               yes
< 7.0 (P100, K80)       none (fp32)                    off              no (Triton needs ≥ 7.0)
CPU                     none (fp32)                    off              yes
======================  =============================  ===============  =========================

bf16 convolutions get tensor cores only from Ampere (8.0) on; below that they run slower than fp32, so a
Turing/Volta card trains in fp16 with loss scaling instead, and a Pascal card (no tensor cores at all)
in fp32, where channels_last only costs layout conversions.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger(__name__)

#: Optimizer ``param_groups`` keys that choose an implementation (kernel), not the update rule: a resumed
#: optimizer keeps its own, whatever the checkpoint's optimizer used.
IMPLEMENTATION_KEYS = ("fused", "foreach", "capturable", "differentiable")


@dataclass(frozen=True)
class Precision:
    """What a device trains with (see the module's table).

    Attributes:
        amp_dtype: ``"bfloat16"``, ``"float16"`` (with a GradScaler) or ``None`` (fp32, no autocast).
        channels_last: channels-last memory format of the model and batches.
        compile_ok: whether ``torch.compile`` (inductor / Triton) can run there.
        reason: one line for the log and ``config.yaml``.
    """

    amp_dtype: str | None
    channels_last: bool
    compile_ok: bool
    reason: str

    @property
    def needs_scaler(self) -> bool:
        """fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none."""
        return self.amp_dtype == "float16"


def precision_for(capability: tuple[int, int] | None) -> Precision:
    """The precision policy for a CUDA compute capability (``None``: not a CUDA device).

    Example:
        >>> precision_for((9, 0)).amp_dtype, precision_for((7, 5)).amp_dtype, precision_for((6, 0)).amp_dtype
        ('bfloat16', 'float16', None)
        >>> precision_for((7, 5)).needs_scaler, precision_for((6, 0)).compile_ok
        (True, False)
    """
    if capability is None:
        return Precision(None, False, True, "CPU: fp32")
    cc = f"{capability[0]}.{capability[1]}"
    if capability >= (8, 0):
        return Precision("bfloat16", True, True, f"compute capability {cc} ≥ 8.0: bf16 tensor cores")
    if capability >= (7, 0):
        return Precision("float16", True, True, f"compute capability {cc}: no bf16 tensor cores, fp16 autocast "
                                                f"with GradScaler")
    return Precision(None, False, False, f"compute capability {cc} < 7.0: no tensor cores, fp32 without "
                                         f"channels_last; torch.compile (Triton) needs ≥ 7.0")


def device_capability(device: torch.device | str) -> tuple[int, int] | None:
    """``(major, minor)`` of a CUDA device, ``None`` for any other device (or when no CUDA is present).

    Example:
        >>> device_capability("cpu") is None
        True
    """
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return tuple(torch.cuda.get_device_capability(device))  # type: ignore[return-value]


def device_name(device: torch.device | str) -> str:
    """The GPU's model name (``"cpu"`` otherwise), recorded because resume exactness needs the same model.

    Example:
        >>> device_name("cpu")
        'cpu'
    """
    device = torch.device(device)
    if device.type != "cuda":
        return "cpu"
    return torch.cuda.get_device_name(device) if torch.cuda.is_available() else "cuda (not present)"


def autocast_dtype(name: str | None) -> torch.dtype | None:
    """``"bfloat16"`` / ``"float16"`` → the torch dtype (``None`` stays ``None``).

    Example:
        >>> autocast_dtype("float16")
        torch.float16
    """
    return None if name is None else {"bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def tf32_enabled() -> dict[str, bool]:
    """The two TF32 switches as they are now (``matmul``: cuBLAS, ``cudnn``: convolutions).

    Example:
        >>> sorted(tf32_enabled())
        ['cudnn', 'matmul']
    """
    return {"matmul": bool(torch.backends.cuda.matmul.allow_tf32), "cudnn": bool(torch.backends.cudnn.allow_tf32)}


@contextlib.contextmanager
def exact_fp32(enabled: bool = True) -> Iterator[None]:
    """TF32 off inside the block (restored after): fp32 matmuls and convolutions on A100/H100 then compute
    what a T4 or a CPU computes (TF32 keeps a 10-bit mantissa). ``enabled=False`` changes nothing.

    Example:
        >>> with exact_fp32():
        ...     tf32_enabled()
        {'matmul': False, 'cudnn': False}
    """
    if not enabled:
        yield
        return
    before = tf32_enabled()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before["matmul"]
        torch.backends.cudnn.allow_tf32 = before["cudnn"]


def backward_and_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                      scaler: torch.amp.GradScaler | None = None) -> None:
    """One optimisation step from ``loss`` — the one place both training pipelines take it. With an enabled
    GradScaler (fp16 autocast on compute capability 7.x) the loss is scaled so small fp16 gradients do not
    underflow, and the step is skipped when they overflowed; otherwise a plain backward and step.

    Example:
        >>> w = torch.nn.Parameter(torch.ones(1)); opt = torch.optim.SGD([w], lr=0.5)
        >>> backward_and_step((w * 2).sum(), opt); w.item()
        0.0
    """
    if scaler is not None and scaler.is_enabled():
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """``optimizer.load_state_dict(saved)``, converted to this optimizer's implementation and layout.

    ``load_state_dict`` takes the saved ``param_groups`` whole, including the implementation switches
    (:data:`IMPLEMENTATION_KEYS`): a checkpoint of a fused Adam would turn a plain Adam fused, and its moments
    keep the saved memory layout (channels_last) although the parameters are now contiguous — the fused CPU
    step then computes another update, the CUDA one fails. Here the switches stay this optimizer's, and every
    state tensor shaped like its parameter gets the parameter's strides, so the next step is the one an
    uninterrupted run of this configuration makes from the same state.

    Example:
        >>> opt = torch.optim.Adam(torch.nn.Linear(2, 2).parameters())
        >>> load_optimizer_state(opt, opt.state_dict())
    """
    own = [{k: g[k] for k in IMPLEMENTATION_KEYS if k in g} for g in optimizer.param_groups]
    groups = saved.get("param_groups")
    if isinstance(groups, list) and len(groups) == len(own):
        saved = {**saved, "param_groups": [{**g, **mine} if isinstance(g, dict) else g
                                           for g, mine in zip(groups, own, strict=True)]}
    optimizer.load_state_dict(saved)  # casts each state tensor to its parameter's dtype and device
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            for k, v in state.items():
                if isinstance(v, torch.Tensor) and v.shape == p.shape and v.stride() != p.stride():
                    state[k] = torch.empty_like(p, dtype=v.dtype).copy_(v)  # empty_like keeps p's strides


def precision_record(device: torch.device, settings: Any | None, compiled: bool, amp: bool = False) -> dict[str, Any]:
    """What ``config.yaml`` records about the numerics: autocast (``amp_effective``), why, the GPU model (a
    resume is exact only on the same model), and whether TF32 was on while training. ``settings``: the fast
    pipeline's :class:`~eacfer.training.fast.step.FastSettings` (``None``: the reference pipeline, whose
    autocast is ``amp``, fp16 with ``--amp`` on CUDA).

    Example:
        >>> precision_record(torch.device("cpu"), None, False)["amp_effective"]
        False
    """
    capability = device_capability(device)
    effective: str | bool = amp  # the reference pipeline records --amp as it always did (True: fp16)
    if settings is not None:
        effective = {"bfloat16": "bf16", "float16": "fp16"}[settings.amp_dtype] if settings.amp else False
        reason = (f"{precision_for(capability).reason}; fast pipeline: {settings.describe()}"
                  f"{', torch.compile' if compiled else ''}")
    else:
        reason = f"reference pipeline: {'fp16 autocast + GradScaler (--amp)' if amp else 'fp32'}"
    return {"amp_effective": effective, "precision_reason": reason, "gpu": device_name(device),
            "compute_capability": list(capability) if capability else None,
            "tf32_training": device.type == "cuda" and any(tf32_enabled().values())}
