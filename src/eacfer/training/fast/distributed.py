"""DistributedDataParallel helpers: setup/teardown from torchrun's environment, reductions, rank-0 I/O.

``torchrun --nproc_per_node N -m eacfer train ...`` sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT`` (and the multi-node rendezvous); :func:`setup` reads them, initialises
the process group (NCCL on CUDA, gloo on CPU) and pins each process to its local GPU. Without those
variables everything degrades to a single process and every helper is a no-op.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and logs summaries."""
        return self.rank == 0


def env_world() -> tuple[int, int, int]:
    """``(rank, local_rank, world_size)`` from torchrun's environment (``(0, 0, 1)`` when absent).

    Example:
        >>> env_world()  # doctest: +SKIP
        (0, 0, 1)
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"inconsistent torchrun environment: RANK={rank} WORLD_SIZE={world}")
    return rank, local, world


def setup(device: torch.device | str = "auto", backend: str | None = None, timeout_s: float = 1800) -> DistInfo:
    """Initialise DDP when launched by torchrun; pick this process's device.

    ``device="auto"`` means ``cuda:LOCAL_RANK`` when CUDA exists, else CPU. The backend defaults to NCCL on
    CUDA and gloo on CPU. An already-initialised process group is reused (and left for its owner to close).

    Example:
        >>> info = setup("cpu")
        >>> info.world_size, info.is_main
        (1, True)
    """
    rank, local, world = env_world()
    dev = torch.device(device) if str(device) != "auto" else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda was requested but no CUDA GPU is available")
        dev = torch.device("cuda", local if world > 1 else (dev.index or 0))
        torch.cuda.set_device(dev)
    if world == 1:
        return DistInfo(0, 0, 1, dev, False)
    if dist.is_initialized():
        return DistInfo(dist.get_rank(), local, dist.get_world_size(), dev, False)
    backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
    kwargs = {"device_id": dev} if dev.type == "cuda" else {}
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s), **kwargs)
    log.info("DDP: rank %d/%d (local %d) on %s, backend %s", rank, world, local, dev, backend)
    return DistInfo(dist.get_rank(), local, dist.get_world_size(), dev, True)


def teardown(info: DistInfo) -> None:
    """Destroy the process group if :func:`setup` created it."""
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in a single process)."""
    if info.enabled and dist.is_initialized():
        if info.device.type == "cuda":
            dist.barrier(device_ids=[info.device.index])
        else:
            dist.barrier()


@contextlib.contextmanager
def main_first(info: DistInfo) -> Iterator[None]:
    """Let rank 0 do something first (e.g. build the decoded cache) while the others wait, then them.

    Example:
        >>> with main_first(setup("cpu")):
        ...     pass
    """
    if not info.is_main:
        barrier(info)
    yield
    if info.is_main:
        barrier(info)


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over ranks (in place; returned for chaining)."""
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_gather_varlen(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate every rank's ``t`` (first dimensions may differ) in rank order."""
    if not info.enabled:
        return t
    n = torch.tensor([t.shape[0]], device=t.device)
    sizes = [torch.zeros_like(n) for _ in range(info.world_size)]
    dist.all_gather(sizes, n)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros((longest, *t.shape[1:]), dtype=t.dtype, device=t.device)
    padded[: t.shape[0]] = t
    out = [torch.zeros_like(padded) for _ in range(info.world_size)]
    dist.all_gather(out, padded)
    return torch.cat([o[: int(s.item())] for o, s in zip(out, sizes, strict=True)])


def wrap_ddp(model: torch.nn.Module, info: DistInfo, sync_bn: bool = False) -> torch.nn.Module:
    """Wrap ``model`` in DistributedDataParallel (identity in a single process).

    ``sync_bn`` converts BatchNorm to SyncBatchNorm (CUDA only), so the batch statistics span the global
    batch as in a one-GPU run of the same global batch size.
    """
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    if sync_bn:
        if info.device.type != "cuda":
            raise ValueError("--sync-bn needs CUDA (SyncBatchNorm has no CPU implementation)")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [info.device.index] if info.device.type == "cuda" else None
    # buffers (BatchNorm statistics) are synced from rank 0 at every forward: DDP's default, left implicit
    # because torch 2.13 deprecated the ``broadcast_buffers`` argument (a FutureWarning on every run)
    return DDP(model, device_ids=ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP / torch.compile wrappers (what checkpoints store)."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None or inner is model:
            return model
        model = inner
