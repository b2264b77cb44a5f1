"""``torchrun -m eacfer train`` on CPU: 2 processes, gloo, the fast pipeline, a run and its resume.

Each spawned process sets the environment torchrun sets (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR,
MASTER_PORT, TORCHELASTIC_USE_AGENT_STORE) and calls :func:`eacfer.commands.cli.main` — what ``python -m eacfer``
runs under torchrun. The run and its resume are two launches, each with its own rendezvous store hosted by the test
(as torchrun's agent hosts it): with one store address for both, a rank that finished the first run early joined
the second rendezvous on rank 0's first-run store, still open while rank 0 wrote its files, and failed with
"Connection reset by peer" when rank 0 closed it (seen under two pytest-xdist workers).
"""

from __future__ import annotations

import json
import os

import pytest
import torch
import torch.multiprocessing as mp

from fast_testutils import torchrun_rendezvous

WORLD = 2


def _worker(rank: int, launches: list[dict[str, str]], data: str, run: str, log_dir: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    import contextlib

    import eacfer.checkpoint
    import eacfer.utils.atomic
    from eacfer.commands.cli import main
    from eacfer.training.fast.runner import FastPipeline

    writes: list[str] = []
    stats: list[dict] = []
    real_atomic = eacfer.utils.atomic.atomic_path

    @contextlib.contextmanager
    def spy(path, *a, **kw):  # every file eacfer writes goes through atomic_path
        writes.append(os.path.basename(str(path)))
        with real_atomic(path, *a, **kw) as tmp:
            yield tmp

    eacfer.utils.atomic.atomic_path = spy
    eacfer.checkpoint.atomic_path = spy
    real_train, real_eval = FastPipeline.train_epoch, FastPipeline.evaluate

    def train_epoch(self, *a, **kw):
        out = real_train(self, *a, **kw)
        stats.append({"kind": "train", "n": out["n"], "loss": out["train_loss"], "acc": out["train_accuracy"]})
        return out

    def evaluate(self, *a, **kw):
        out = real_eval(self, *a, **kw)
        stats.append({"kind": "eval", "n": out["n"], "acc": out["accuracy"]})
        return out

    FastPipeline.train_epoch, FastPipeline.evaluate = train_epoch, evaluate
    import logging

    epoch_lines: list[str] = []

    class EpochLines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("epoch "):
                epoch_lines.append(record.getMessage())

    trainer_log = logging.getLogger("eacfer.training.trainer")
    trainer_log.addHandler(EpochLines())
    trainer_log.setLevel(logging.INFO)
    common = ["-q", "train", "--data", data, "--out", run, "--backbone", "resnet18", "--image-size", "32",
              "--batch-size", "8", "--pipeline", "fast", "--device", "cpu", "--no-tensorboard", "--workers", "0"]
    os.environ.update(launches[0])  # first launch
    rc1 = main(common + ["--epochs", "1"])
    os.environ.update(launches[1])  # second launch: the resume
    rc2 = main(common + ["--epochs", "2", "--resume"])
    with open(os.path.join(log_dir, f"rank{rank}.json"), "w") as fh:  # outside the run folder, not via eacfer
        json.dump({"rc": [rc1, rc2], "writes": writes, "stats": stats, "epoch_lines": epoch_lines}, fh)


@pytest.mark.slow
def test_torchrun_two_processes_train_and_resume(synth_rafdb, tmp_path):
    from eacfer.checkpoint import load_model
    from eacfer.training.fast.gpu_augment import GPUAugment
    from eacfer.training.fast.loader import FastLoader
    from eacfer.training.fast.step import fast_evaluate
    from eacfer.training.trainer import read_metrics_csv

    run, logs = tmp_path / "run", tmp_path / "logs"
    logs.mkdir()
    with torchrun_rendezvous(WORLD) as first, torchrun_rendezvous(WORLD) as second:
        mp.spawn(_worker, args=([first, second], str(synth_rafdb), str(run), str(logs)), nprocs=WORLD, join=True)
    r0, r1 = (json.loads((logs / f"rank{r}.json").read_text()) for r in range(WORLD))
    assert r0["rc"] == r1["rc"] == [0, 0]
    # only rank 0 wrote files, and logged the epoch lines (issue #24: every rank logged each one)
    assert r1["writes"] == []
    assert r1["epoch_lines"] == [] and [line.split()[1] for line in r0["epoch_lines"]] == ["1/1", "2/2"]
    assert {"config.yaml", "metrics.csv", "last.pt", "summary.json", "model.pt"} <= set(r0["writes"])
    # metrics are global: every rank saw all 56 training and all 28 test images, and the same figures
    assert r0["stats"] == r1["stats"]
    assert [s["n"] for s in r0["stats"]] == [56, 28, 56, 28]
    # the resume continued the first run: 2 epochs in the history, epoch 1 unchanged
    rows = read_metrics_csv(run / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[0]["train_loss"] == pytest.approx(r0["stats"][0]["loss"], rel=1e-12)
    assert rows[1]["test_accuracy"] == pytest.approx(r0["stats"][3]["acc"], rel=1e-12)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["finished"] and summary["epochs"] == 2
    # the saved model reproduces the reported (global) test accuracy in a single process
    net, info = load_model(run / "model.pt")
    from eacfer.data.datasets import FERDataset, load_split

    test = FERDataset(load_split(synth_rafdb, "test"))
    ev = fast_evaluate(net, FastLoader(test.uint8_stack(), test.labels(), 16,
                                       eval_transform=GPUAugment(32, mean=info.mean, std=info.std)), info.class_names)
    assert ev["accuracy"] == pytest.approx(summary["final_accuracy"])
    assert "world_size: 2" in (run / "config.yaml").read_text()
