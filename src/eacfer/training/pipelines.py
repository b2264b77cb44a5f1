"""The two training pipelines behind one interface: :class:`ReferencePipeline` (the faithful per-image CPU
path: torchvision transforms in DataLoader workers) and :class:`eacfer.training.fast.runner.FastPipeline`
(decoded-image cache, on-GPU augmentation, autocast, DDP). The trainer only calls what both have:
``amp``, ``make_optimizer``, ``make_scaler``, ``train_epoch``, ``evaluate`` and ``record``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import torch
from torch import nn

from eacfer.training import engine
from eacfer.training.config import PIPELINES, TrainConfig


class TrainingPipeline(Protocol):
    """What the trainer needs of a pipeline (both pipelines have it)."""

    amp: bool  # autocast while training (evaluation is always fp32)

    def make_optimizer(self, params: Iterable[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
        """The recipe's Adam."""

    def make_scaler(self) -> torch.amp.GradScaler:
        """The GradScaler of fp16 autocast (a disabled one otherwise)."""

    def train_epoch(self, optimizer: torch.optim.Optimizer, *, epoch: int, method: str = "eac", lam: float = 5.0,
                    progress: bool = True, scaler: torch.amp.GradScaler | None = None) -> dict[str, float]:
        """One epoch: the keys of :func:`eacfer.training.engine.train_one_epoch`."""

    def evaluate(self, class_names: Sequence[str]) -> dict[str, Any]:
        """Test metrics in fp32: the keys of :func:`eacfer.training.engine.evaluate`."""

    def record(self) -> dict[str, Any]:
        """What ``config.yaml`` records about the pipeline's numerics."""


def step_function(pipeline: str) -> engine.StepFn:
    """The per-batch step of a pipeline (looked up at call time so it can be swapped or wrapped).

    Example:
        >>> step_function("reference") is engine.train_step
        True
    """
    if pipeline == "reference":
        return engine.train_step
    raise ValueError(f"unknown pipeline {pipeline!r}; known: {', '.join(PIPELINES)}")


class ReferencePipeline:
    """The reference pipeline with :class:`~eacfer.training.fast.runner.FastPipeline`'s interface.

    Autocast (fp16) only with ``--amp`` on CUDA; the loaders draw their order and augmentation seeds from
    ``generator`` (whose state ``last.pt`` stores).

    Example:
        >>> rp = ReferencePipeline(model, cfg, data, generator, torch.device("cpu"), mean, std)  # doctest: +SKIP
        >>> stats = rp.train_epoch(rp.make_optimizer(model.parameters(), 1e-4, 1e-4), epoch=1)  # doctest: +SKIP
    """

    def __init__(self, model: nn.Module, cfg: TrainConfig, data: Any, generator: torch.Generator,
                 device: torch.device, mean: Sequence[float], std: Sequence[float]):
        from eacfer.training.run_data import make_loaders

        self.model, self.device, self.progress = model, device, cfg.progress
        self.amp = bool(device.type == "cuda" and cfg.amp)
        self.train_loader, self.test_loader = make_loaders(cfg, data, generator, pin_memory=device.type == "cuda",
                                                           mean=mean, std=std)
        self.step_fn = step_function("reference")

    def make_optimizer(self, params: Iterable[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
        """The recipe's Adam."""
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)

    def make_scaler(self) -> torch.amp.GradScaler:
        """fp16 autocast's GradScaler (disabled without ``--amp``)."""
        return torch.amp.GradScaler("cuda", enabled=self.amp)

    def train_epoch(self, optimizer: torch.optim.Optimizer, *, epoch: int, method: str = "eac", lam: float = 5.0,
                    progress: bool = True, scaler: torch.amp.GradScaler | None = None) -> dict[str, float]:
        """One epoch of :func:`eacfer.training.engine.train_one_epoch`."""
        return engine.train_one_epoch(self.model, self.train_loader, optimizer, method=method, lam=lam,
                                      device=self.device, epoch=epoch, scaler=scaler, amp=self.amp,
                                      step_fn=self.step_fn, progress=progress)

    def evaluate(self, class_names: Sequence[str]) -> dict[str, Any]:
        """Reported numbers are evaluated in fp32 on every pipeline (autocast only trains)."""
        return engine.evaluate(self.model, self.test_loader, class_names, device=self.device, amp=False,
                               progress=self.progress)

    def record(self) -> dict[str, Any]:
        """The precision record of ``config.yaml`` (``--amp`` as asked: True means fp16)."""
        from eacfer.training.numerics import precision_record

        return precision_record(self.device, None, False, self.amp)


def make_pipeline(cfg: TrainConfig, model: nn.Module, data: Any, spec: Any, dist_info: Any,
                  generator: torch.Generator) -> TrainingPipeline:
    """The pipeline ``cfg.pipeline`` names (already resolved: ``reference`` or ``fast``)."""
    if cfg.pipeline != "fast":
        return ReferencePipeline(model, cfg, data, generator, dist_info.device, spec.mean, spec.std)
    from eacfer.training.fast.runner import FastPipeline
    from eacfer.training.fast.step import FastSettings

    return FastPipeline(model, data.train, data.test, image_size=cfg.image_size, batch_size=cfg.batch_size,
                        eval_batch_size=cfg.eval_batch_size, flip_view=data.flip_view, noise_p=cfg.noise_p,
                        noise_var=cfg.noise_var, erasing_scale=cfg.erasing_scale, seed=cfg.seed,
                        dist_info=dist_info, mean=spec.mean, std=spec.std, views=cfg.views,
                        compile=cfg.compile, sync_bn=cfg.sync_bn, cache_dir=cfg.cache_dir,
                        settings=FastSettings.for_device(dist_info.device, **cfg.fast_settings))
