"""FastLoader: epoch order, reproducibility, DDP shards, resident vs streamed, evaluation batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eacfer.training.fast.gpu_augment import GPUAugment
from eacfer.training.fast.loader import FastLoader, shard_indices


def _data(n=23, size=20):
    imgs = np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return imgs, np.arange(n) % 7


def _collect(dl):
    return [tuple(t.clone() for t in b) for b in dl]


def test_epoch_covers_every_image_once_and_is_reproducible():
    imgs, labels = _data()
    dl = FastLoader(imgs, labels, 5, augment=GPUAugment(16), seed=3)
    assert len(dl) == 5
    dl.set_epoch(1)
    e1 = _collect(dl)
    idx = torch.cat([b[3] for b in e1])
    assert sorted(idx.tolist()) == list(range(23))
    assert torch.equal(torch.cat([b[2] for b in e1]), torch.as_tensor(labels)[idx])
    x, xf, y, i = e1[0]
    assert x.shape == (5, 3, 16, 16) and torch.equal(xf, x.flip(-1))
    again = _collect(dl)  # same epoch again (a resume): identical batches and augmentation
    assert all(torch.equal(a, b) for ba, bb in zip(e1, again, strict=True) for a, b in zip(ba, bb, strict=True))
    dl.set_epoch(2)
    e2 = _collect(dl)
    assert not torch.equal(torch.cat([b[3] for b in e2]), idx)


def test_drop_last():
    imgs, labels = _data()
    dl = FastLoader(imgs, labels, 5, augment=GPUAugment(16), drop_last=True)
    assert len(dl) == 4 and all(b[0].shape[0] == 5 for b in dl)


def test_ddp_shards_disjoint_and_complete():
    imgs, labels = _data(22)
    shards = []
    for rank in range(3):
        dl = FastLoader(imgs, labels, 4, augment=GPUAugment(16), seed=1, rank=rank, world_size=3)
        dl.set_epoch(4)
        shards.append(torch.cat([b[3] for b in dl]).tolist())
    assert len({len(s) for s in shards}) == 1  # equal lengths (padded like DistributedSampler)
    flat = sum(shards, [])
    assert set(flat) == set(range(22)) and len(flat) == 24
    # evaluation shards: disjoint, no padding, every image exactly once
    ev = [torch.cat([b[2] for b in FastLoader(imgs, labels, 4, eval_transform=GPUAugment(16), rank=r, world_size=3)])
          for r in range(3)]
    assert sorted(torch.cat(ev).tolist()) == list(range(22))


def test_shard_indices_like_distributed_sampler():
    from torch.utils.data import DistributedSampler

    perm = torch.arange(10)
    for world in (2, 3, 4):
        for drop in (False, True):
            for rank in range(world):
                ref = list(DistributedSampler(range(10), num_replicas=world, rank=rank, shuffle=False, drop_last=drop))
                assert shard_indices(perm, rank, world, drop).tolist() == ref


def test_streamed_memmap_equals_resident_and_channels_last(tmp_path):
    imgs, labels = _data()
    np.save(tmp_path / "s.npy", imgs)
    mm = np.load(tmp_path / "s.npy", mmap_mode="r")  # what the decoded cache hands over
    a = _collect(FastLoader(imgs, labels, 6, augment=GPUAugment(16), seed=2, resident=True))
    b = _collect(FastLoader(mm, labels, 6, augment=GPUAugment(16), seed=2, resident=False, channels_last=True))
    for ba, bb in zip(a, b, strict=True):
        for ta, tb in zip(ba, bb, strict=True):
            assert torch.equal(ta, tb)
    assert b[0][0].is_contiguous(memory_format=torch.channels_last)


def test_eval_batches_are_ordered_and_unaugmented():
    from eacfer.data.transforms import EvalTransform

    imgs, labels = _data(9)
    dl = FastLoader(imgs, labels, 4, eval_transform=GPUAugment(16))
    batches = list(dl)
    assert [len(b) for b in batches] == [3, 3, 3]
    x = torch.cat([b[0] for b in batches])
    assert torch.cat([b[2] for b in batches]).tolist() == list(range(9))
    torch.testing.assert_close(x, torch.stack([EvalTransform(16)(im) for im in imgs]), rtol=0, atol=1e-6)


def test_bad_inputs():
    imgs, labels = _data(4)
    with pytest.raises(ValueError, match="labels"):
        FastLoader(imgs, labels[:3], 2, augment=GPUAugment(16))
    with pytest.raises(ValueError, match="uint8"):
        FastLoader(imgs.astype(np.float32), labels, 2, augment=GPUAugment(16))
    with pytest.raises(ValueError, match="rank"):
        FastLoader(imgs, labels, 2, augment=GPUAugment(16), rank=2, world_size=2)
    with pytest.raises(ValueError, match="augment"):
        FastLoader(imgs, labels, 2)
