"""DDP building blocks on CPU (gloo, 2 processes): gradient sync, sharded batches, reduced metrics."""

from __future__ import annotations

import copy
import os

import numpy as np
import torch
import torch.multiprocessing as mp

from eacfer.training.fast import distributed as fd
from eacfer.training.fast.gpu_augment import GPUAugment
from eacfer.training.fast.loader import FastLoader
from eacfer.training.fast.step import DeviceMeter, TwoViewEAC, fast_predict, fast_train_step, make_optimizer
from fast_testutils import synthetic_faces, tiny_net, torchrun_rendezvous

WORLD = 2


def _worker(rank: int, launch: dict[str, str], out_dir: str) -> None:
    os.environ.update(launch, RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = fd.setup("cpu")
    try:
        imgs, labels = synthetic_faces(24, size=40)
        # a BN-free net: then the DDP gradient over 2×6 images equals the one-process gradient over 12
        net = tiny_net(seed=0, bn=False)
        model = fd.wrap_ddp(TwoViewEAC(net), info)
        opt = make_optimizer(model.parameters(), 1e-3, 1e-4, info.device)
        dl = FastLoader(imgs, labels, 6, augment=GPUAugment(32, augment=False), seed=0,
                        rank=info.rank, world_size=info.world_size)
        dl.set_epoch(1)
        meter = DeviceMeter(info.device)
        batch = next(iter(dl))
        fast_train_step(model, batch, opt, lam=5.0, meter=meter)
        meter.reduce(info)
        pred = fast_predict(model, FastLoader(imgs, labels, 5, eval_transform=GPUAugment(32),
                                              rank=info.rank, world_size=info.world_size), dist_info=info)
        with fd.main_first(info):
            if info.is_main:
                (open(os.path.join(out_dir, "written_by_main"), "w")).close()
        torch.save({"index": batch[3], "state": fd.unwrap(model).net.state_dict(), "meter": meter.result(),
                    "pred_idx": pred["indices"], "probs": pred["probs"]}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        fd.teardown(info)


def test_ddp_two_processes_gloo(tmp_path):
    with torchrun_rendezvous(WORLD) as launch:
        mp.spawn(_worker, args=(launch, str(tmp_path)), nprocs=WORLD, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD))
    # disjoint shards of the same permutation
    assert not set(r0["index"].tolist()) & set(r1["index"].tolist())
    # weights identical on both ranks after the synchronised step ...
    for k, v in r0["state"].items():
        torch.testing.assert_close(r1["state"][k], v, rtol=0, atol=0)
    # ... and equal to a one-process step on the union of the two shards
    imgs, labels = synthetic_faces(24, size=40)
    net = tiny_net(seed=0, bn=False)
    ref = copy.deepcopy(net)
    opt = make_optimizer(ref.parameters(), 1e-3, 1e-4, torch.device("cpu"))
    idx = torch.cat([r0["index"], r1["index"]])
    x = GPUAugment(32, augment=False).normalize(torch.from_numpy(imgs[idx.numpy()]))
    fast_train_step(TwoViewEAC(ref), (x, x.flip(-1), torch.as_tensor(labels)[idx], idx), opt, lam=5.0)
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(r0["state"][k], v, rtol=1e-5, atol=1e-6)
    # metrics are global (both shards counted) and identical on both ranks
    assert r0["meter"] == r1["meter"] and r0["meter"]["n"] == 12
    # evaluation gathers every image exactly once, in dataset order, on every rank
    assert r0["pred_idx"].tolist() == list(range(24)) == r1["pred_idx"].tolist()
    np.testing.assert_array_equal(r0["probs"], r1["probs"])
    assert (tmp_path / "written_by_main").exists()


def test_single_process_helpers_are_no_ops():
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        os.environ.pop(k, None)
    info = fd.setup("cpu")
    assert (info.rank, info.world_size, info.is_main, info.enabled) == (0, 1, True, False)
    t = torch.ones(3)
    assert fd.all_reduce_sum(t, info) is t and fd.all_gather_varlen(t, info) is t
    m = torch.nn.Linear(2, 2)
    assert fd.wrap_ddp(m, info) is m and fd.unwrap(m) is m
    fd.teardown(info)
