"""Batches straight from the decoded uint8 cache, augmented on the device.

:class:`FastLoader` holds the whole uint8 stack on the device when it fits (RAF-DB: 368 MB) — then an
epoch costs no host work at all besides kernel launches — or in (pinned) host memory, gathering each
batch on the CPU and copying it with ``non_blocking=True``. Each epoch's order and augmentation come from
generators seeded by ``(seed, epoch)``, so a run resumed at an epoch boundary replays exactly the batches
it would have seen, and every rank of a DDP job draws the same permutation and takes its own shard.

Training batches are ``(x, x_flipped, labels, index)``; evaluation batches (``augment=None``) are
``(x, labels, index)`` — the same shape :func:`eacfer.training.engine.predict` consumes.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from eacfer.training.fast.gpu_augment import GPUAugment

log = logging.getLogger(__name__)

# a stack larger than this share of free GPU memory stays on the host
_RESIDENT_SHARE = 0.25


def shard_indices(perm: torch.Tensor, rank: int, world_size: int, drop_last: bool) -> torch.Tensor:
    """This rank's share of a permutation, as :class:`torch.utils.data.DistributedSampler` does it.

    Without ``drop_last`` the permutation is padded with its own head so every rank gets the same
    number of samples; with it, the tail that does not divide evenly is dropped.

    Example:
        >>> shard_indices(torch.arange(5), 1, 2, drop_last=False).tolist()
        [1, 3, 0]
    """
    if world_size == 1:
        return perm
    n = perm.numel()
    if drop_last:
        per = n // world_size
        perm = perm[: per * world_size]
    else:
        per = math.ceil(n / world_size)
        pad = per * world_size - n
        if pad:
            perm = torch.cat([perm, perm.repeat(math.ceil(pad / max(n, 1)))[:pad]])
    return perm[rank::world_size]


def _fits_on_device(nbytes: int, device: torch.device) -> bool:
    if device.type != "cuda":
        return True  # CPU "device": the stack is already in host memory
    free, _total = torch.cuda.mem_get_info(device)
    # memory the caching allocator holds but no tensor uses is free to this process too (mem_get_info
    # counts it as taken: after an earlier run in the same process, e.g. a benchmark grid, it would be)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return nbytes < _RESIDENT_SHARE * (free + max(cached, 0))


class FastLoader:
    """Iterate over device-side batches of a uint8 image stack.

    Args:
        images: N×H×W×3 uint8 (numpy array, memmap or tensor).
        labels: N class indices.
        batch_size: images per batch *on this rank*.
        device: where batches are produced.
        augment: a :class:`GPUAugment` for training batches, ``None`` for evaluation batches.
        shuffle, drop_last: as in ``DataLoader``.
        seed: base seed of the per-epoch order and augmentation streams.
        rank, world_size: DDP shard of this process.
        resident: keep the stack on the device (``None``: when it fits in a quarter of free memory).
        channels_last: return x in channels-last memory format (faster convolutions on tensor cores).

    Example:
        >>> imgs = np.zeros((10, 40, 40, 3), np.uint8)
        >>> dl = FastLoader(imgs, np.arange(10) % 7, batch_size=4, augment=GPUAugment(32), seed=0)
        >>> x, xf, y, idx = next(iter(dl))
        >>> tuple(x.shape), len(dl)
        ((4, 3, 32, 32), 3)
    """

    def __init__(
        self,
        images: np.ndarray | torch.Tensor,
        labels: np.ndarray | torch.Tensor,
        batch_size: int,
        *,
        device: torch.device | str = "cpu",
        augment: GPUAugment | None = None,
        eval_transform: GPUAugment | None = None,
        shuffle: bool | None = None,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        resident: bool | None = None,
        channels_last: bool = False,
    ):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.device = torch.device(device)
        self.augment = augment
        # evaluation needs only resize + normalise; reuse the training transform's settings if given
        self.eval_transform = eval_transform or augment
        if augment is None and eval_transform is None:
            raise ValueError("FastLoader needs augment (training) or eval_transform (evaluation)")
        self.batch_size, self.drop_last = int(batch_size), drop_last
        self.shuffle = (augment is not None) if shuffle is None else shuffle
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.channels_last = channels_last
        self.epoch = 0
        if isinstance(images, torch.Tensor):
            host = images
        else:
            with warnings.catch_warnings():
                # a read-only memmap of the decoded cache: wrapped without a copy and never written to
                warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                host = torch.from_numpy(np.ascontiguousarray(images))
        if host.dtype != torch.uint8 or host.ndim != 4 or host.shape[-1] != 3:
            raise ValueError(f"expected an N×H×W×3 uint8 stack, got shape {tuple(host.shape)} dtype {host.dtype}")
        self.resident = _fits_on_device(host.numel(), self.device) if resident is None else resident
        # non-resident: the stack (possibly a memmap) stays where it is; each gathered batch is pinned
        # so its copy is asynchronous (pinning the whole stack would lock all of it in RAM)
        self.images = host.to(self.device) if self.resident else host
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long).to(self.device)
        self.num_samples = len(self._order())
        log.debug("FastLoader: %d images, resident=%s, device=%s", len(host), self.resident, self.device)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation the next iteration replays."""
        self.epoch = int(epoch)

    def _generator(self, device: torch.device, stream: int) -> torch.Generator:
        # distinct, reproducible streams per (seed, epoch, rank, purpose)
        g = torch.Generator(device=device)
        g.manual_seed((self.seed * 1_000_003 + self.epoch * 7919 + self.rank * 104_729 + stream) % (2**63))
        return g

    def _order(self) -> torch.Tensor:
        n = len(self.images)
        if self.shuffle:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) % (2**63))
            perm = torch.randperm(n, generator=g)  # same on every rank: the shards do not overlap
        else:
            perm = torch.arange(n)
        if self.augment is None:
            # evaluation: disjoint shards without padding, so reduced metrics count every image once
            return perm[self.rank :: self.world_size]
        return shard_indices(perm, self.rank, self.world_size, self.drop_last)

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def _gather(self, idx: torch.Tensor, idx_dev: torch.Tensor) -> torch.Tensor:
        if self.resident:
            return self.images[idx_dev]
        batch = self.images[idx]  # host gather (memmap pages are read here)
        if self.device.type == "cuda":
            batch = batch.pin_memory()
        return batch.to(self.device, non_blocking=True)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        order = self._order()
        # one copy of the epoch's order to the device, then only device-side slicing per batch
        order_dev = order.to(self.device)
        g = self._generator(self.device, stream=1) if self.augment is not None else None
        for b in range(len(self)):
            sl = slice(b * self.batch_size, (b + 1) * self.batch_size)
            index = order_dev[sl]
            raw = self._gather(order[sl], index)
            labels = self.labels[index]
            if self.augment is None:
                x = self.eval_transform.normalize(raw)  # type: ignore[union-attr]
                yield self._fmt(x), labels, index
            else:
                x, xf = self.augment(raw, generator=g)
                yield self._fmt(x), self._fmt(xf), labels, index

    def _fmt(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x.contiguous()

    def state(self) -> dict[str, Any]:
        """What a resume needs (the epoch; the streams are derived from it)."""
        return {"seed": self.seed, "epoch": self.epoch}
