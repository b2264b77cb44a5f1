"""The fast pipeline's side of ``eacfer train``: data on the device, wrapped model, epoch and eval loops.

:class:`FastPipeline` is what :func:`eacfer.training.trainer.train` uses instead of DataLoaders and
:mod:`eacfer.training.engine` when ``pipeline == "fast"``. The trainer keeps owning the run directory, resume,
the optimizer's schedule and the summary; checkpoints hold the plain network's weights, exactly as with
the reference pipeline (DDP / torch.compile / two-view wrappers are never saved).

Under ``torchrun`` the global batch stays ``batch_size`` (each of the W ranks takes ``batch_size / W``),
so the optimisation follows the recipe; BatchNorm then sees ``batch_size / W`` images per rank unless
``sync_bn`` is set (SyncBatchNorm, CUDA only).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch import nn

from eacfer.training.fast import distributed as fd
from eacfer.training.fast.cache import content_key, default_cache_dir, load_or_build, memory_budget
from eacfer.training.fast.gpu_augment import GPUAugment
from eacfer.training.fast.loader import FastLoader
from eacfer.training.fast.step import (
    FastSettings,
    TwoViewEAC,
    configure_backend,
    fast_evaluate,
    fast_train_epoch,
    make_optimizer,
)
from eacfer.training.numerics import device_capability, precision_for, precision_record

log = logging.getLogger(__name__)


def device_plan(device: torch.device | str = "auto", recipe: str = "auto") -> str:
    """One line saying what ``eacfer train --recipe RECIPE`` runs on ``device`` (the notebook prints it).

    Example:
        >>> device_plan("cpu", "paper")
        'cpu: reference pipeline, fp32, TF32 off, deterministic cuDNN'
    """
    from eacfer.training.numerics import device_name
    from eacfer.utils.device import resolve_device

    dev = resolve_device(str(device))
    capability = device_capability(dev)
    where = device_name(dev) + (f" (compute capability {capability[0]}.{capability[1]})" if capability else "")
    if recipe == "paper":
        return f"{where}: reference pipeline, fp32, TF32 off, deterministic cuDNN"
    if dev.type != "cuda":
        return f"{where}: reference pipeline, fp32"
    compile_ok = precision_for(capability).compile_ok
    return (f"{where}: fast pipeline, {FastSettings.for_device(dev).describe()}; "
            f"--compile {'available' if compile_ok else 'not available here (ignored)'}")


def stack_bytes(ds: Any, image_size: int) -> int:
    """The size of a dataset's decoded uint8 stack, from its image headers (before decoding anything).

    Example:
        >>> stack_bytes(FERDataset(split), 224)  # doctest: +SKIP
        368000000
    """
    h, w = getattr(ds, "common_size", None) or (image_size, image_size)
    return len(ds.samples) * int(h) * int(w) * 3


def cache_dir_for(splits: Sequence[tuple[str, Any]], image_size: int, cache_dir: str | None,
                  budget: int | None = None) -> str | None:
    """``cache_dir``, or — when there is none and the decoded ``(name, dataset)`` splits together need more
    than ``budget`` bytes (default: half the available host memory) — the default cache folder, with a
    warning: AffectNet at 224 px is ~42 GB, Colab has 12.7 GB of RAM. Raises ValueError when such splits
    have no image files to cache (pixels from a CSV).

    Example:
        >>> cache_dir_for([("train", FERDataset(split))], 224, None, budget=10**6)  # doctest: +SKIP
        '/home/me/.cache/eacfer/decoded'
    """
    if cache_dir is not None:
        return cache_dir
    budget = memory_budget() if budget is None else budget
    need = sum(stack_bytes(ds, image_size) for _, ds in splits)
    if budget is None or need <= budget:
        return None
    names = " and ".join(name for name, _ in splits)
    if any(getattr(s, "path", None) is None for _, ds in splits for s in ds.samples):
        raise ValueError(f"{names} split: the decoded images need {need / 1e9:.1f} GB, more than the "
                         f"{budget / 1e9:.1f} GB memory budget (half the available RAM), and have no image files "
                         f"to cache on disk; use --pipeline reference")
    folder = str(default_cache_dir())
    log.warning("%s split: the decoded images need %.1f GB, more than the %.1f GB memory budget (half the "
                "available RAM); streaming them into memory-mapped files in %s (choose the folder with "
                "--cache-dir)", names, need / 1e9, budget / 1e9, folder)
    return folder


def decoded_stack(ds: Any, image_size: int, cache_dir: str | None, split: str) -> np.ndarray:
    """A dataset's images as one N×H×W×3 uint8 stack (memory-mapped from ``cache_dir`` when given).

    Images of one size are stacked as they are (the on-device resize then matches the reference);
    mixed sizes are first resized to ``image_size`` on the CPU, which the reference does not do (warned).
    With a cache folder the images are decoded straight into the memory-mapped file, never held in RAM as
    a whole (:func:`cache_dir_for` chooses one when a set is too large for memory).
    """

    def build(allocate: Any) -> np.ndarray:
        try:
            return ds.uint8_stack(out=allocate)
        except ValueError as e:
            log.warning("%s split: %s; caching the images resized to %d (the reference pipeline resizes "
                        "after the pixel noise instead)", split, e, image_size)
            return ds.uint8_stack(image_size, out=allocate)

    paths = [getattr(s, "path", None) for s in ds.samples]
    if cache_dir is None or any(p is None for p in paths):
        if cache_dir is not None:
            log.info("%s split has in-memory pixels (no files): decoded cache kept in memory", split)
        return load_or_build(build, key="", cache_dir=None)
    key = content_key(paths, extra=f"{split}|n={len(paths)}|size={image_size}")
    return load_or_build(build, key=key, cache_dir=cache_dir, expected_len=len(paths), prefix=f"decoded-{split}")


class FastPipeline:
    """Loaders, model wrappers and loops of a fast-pipeline run.

    Args:
        net: the EAC network, already on ``dist_info.device`` (its weights are what checkpoints store).
        train_ds, test_ds: :class:`~eacfer.data.datasets.FERDataset`-like (``uint8_stack``, ``labels``, ``samples``).
        views: ``"split"`` (reference BatchNorm semantics) or ``"joint"`` (one 2N forward pass).
        compile: ``torch.compile`` the wrapped model (``True``: the default inductor backend; a string names
            another backend, e.g. ``"aot_eager"`` in tests).
        settings: autocast / fused Adam / channels_last / cuDNN choices (default: :meth:`FastSettings.for_device`).

    Example:
        >>> fp = FastPipeline(net, data.train, data.test, cfg, fd.setup("cpu"), mean, std)  # doctest: +SKIP
        >>> stats = fp.train_epoch(optimizer, epoch=1)                                      # doctest: +SKIP
    """

    def __init__(
        self,
        net: nn.Module,
        train_ds: Any,
        test_ds: Any,
        *,
        image_size: int,
        batch_size: int,
        eval_batch_size: int | None,
        flip_view: str,
        noise_p: float,
        noise_var: float,
        erasing_scale: Sequence[float],
        seed: int,
        dist_info: fd.DistInfo,
        mean: Sequence[float],
        std: Sequence[float],
        views: str = "split",
        compile: bool | str = False,
        sync_bn: bool = False,
        cache_dir: str | None = None,
        settings: FastSettings | None = None,
    ):
        self.info = dist_info
        self.device = dist_info.device
        world = dist_info.world_size
        if batch_size % world:
            raise ValueError(f"--batch-size {batch_size} must be divisible by the number of processes ({world})")
        per_rank = batch_size // world
        self.settings = settings or FastSettings.for_device(self.device)
        self.amp = self.settings.amp  # autocast per GPU generation (numerics.precision_for); CPU runs stay fp32
        configure_backend(self.device, self.settings)
        aug = GPUAugment(image_size, mean=mean, std=std, noise_p=noise_p, noise_var=noise_var,
                         erasing_scale=(float(erasing_scale[0]), float(erasing_scale[1])), flip_view=flip_view)
        # chosen before any rank decodes, so that all ranks agree on it
        cache_dir = cache_dir_for((("train", train_ds), ("test", test_ds)), image_size, cache_dir)
        # with a cache folder rank 0 writes the memory-mapped cache and the others then map it; without one
        # there is nothing to share, and every rank decodes at once instead of one after another
        with fd.main_first(dist_info) if cache_dir is not None else contextlib.nullcontext():
            train_imgs = decoded_stack(train_ds, image_size, cache_dir, "train")
            test_imgs = decoded_stack(test_ds, image_size, cache_dir, "test")
        shard = -(-len(train_imgs) // world)
        # as the reference: drop a trailing batch of exactly one image (BatchNorm cannot train on it)
        drop_last = shard % per_rank == 1 and shard > 1
        common = {"device": self.device, "rank": dist_info.rank, "world_size": world,
                  "channels_last": self.settings.channels_last}
        self.train_loader = FastLoader(train_imgs, train_ds.labels(), per_rank, augment=aug, seed=seed,
                                       drop_last=drop_last, **common)
        self.test_loader = FastLoader(test_imgs, test_ds.labels(), max(1, (eval_batch_size or max(batch_size, 64)) // world),
                                      eval_transform=aug, **common)
        if self.settings.channels_last:
            net.to(memory_format=torch.channels_last)  # in place: the Parameter objects stay the same
        self.net = net
        model: nn.Module = fd.wrap_ddp(TwoViewEAC(net, views), dist_info, sync_bn=sync_bn)
        if compile and not precision_for(device_capability(self.device)).compile_ok:
            log.warning("--compile ignored: %s", precision_for(device_capability(self.device)).reason)
            compile = False
        if compile:
            model = torch.compile(model, backend=compile) if isinstance(compile, str) else torch.compile(model)
        self.model = model
        self.views, self.compiled = views, bool(compile)
        log.info("fast pipeline: %d train images (%s on %s), per-rank batch %d × %d ranks, views %s, %s%s",
                 len(train_imgs), "resident" if self.train_loader.resident else "streamed", self.device,
                 per_rank, world, views, self.settings.describe(), ", torch.compile" if compile else "")

    def make_optimizer(self, params: Iterable[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
        """The recipe's Adam (fused on CUDA)."""
        return make_optimizer(params, lr, weight_decay, self.device, fused=self.settings.fused_adam)

    def make_scaler(self) -> torch.amp.GradScaler:
        """The GradScaler of fp16 autocast (7.x GPUs); a disabled one otherwise (bf16 and fp32 need none)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.settings.needs_scaler)

    def train_epoch(self, optimizer: torch.optim.Optimizer, *, epoch: int, method: str = "eac", lam: float = 5.0,
                    progress: bool = True, scaler: torch.amp.GradScaler | None = None) -> dict[str, float]:
        """One epoch; same keys as :func:`eacfer.training.engine.train_one_epoch`, reduced over all ranks."""
        return fast_train_epoch(self.model, self.train_loader, optimizer, method=method, lam=lam, amp=self.amp,
                                epoch=epoch, dist_info=self.info, progress=progress,
                                amp_dtype=self.settings.amp_dtype, scaler=scaler)

    def evaluate(self, class_names: Sequence[str]) -> dict[str, Any]:
        """Test metrics over every rank's shard; same keys as :func:`eacfer.training.engine.evaluate`.

        Always fp32 (no autocast), whatever ``settings.amp``: bf16 is for training steps only, the reported
        accuracy is computed at full precision as in the reference pipeline.
        """
        return fast_evaluate(self.model, self.test_loader, class_names, amp=False, dist_info=self.info)

    def record(self) -> dict[str, Any]:
        """What ``config.yaml`` records about the numerics (:func:`~eacfer.training.numerics.precision_record`)
        and the settings the fast path really runs with (device defaults + ``--fast-settings``)."""
        return {**precision_record(self.device, self.settings, self.compiled, self.amp),
                "fast_settings_effective": asdict(self.settings)}
