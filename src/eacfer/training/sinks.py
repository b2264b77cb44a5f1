"""Where a training run's epochs go: one :class:`EpochSink` each for the log line, ``metrics.csv`` +
``summary.json``, ``last.pt``, TensorBoard and Weights & Biases.

The trainer hands every finished epoch to each sink in turn (:func:`eacfer.training.trainer.train`) and
closes them when the loop ends, finished or not; under DDP only rank 0 has sinks. A new output is a new sink,
not another branch in the epoch loop.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any, Protocol

import torch

from eacfer.training.config import LAST5, METRIC_COLUMNS
from eacfer.utils.atomic import write_json, write_text
from eacfer.utils.seed import capture_rng_state

log = logging.getLogger(__name__)


class EpochSink(Protocol):
    """Receives each finished epoch; closed once when the loop ends (``completed`` False: interrupted/failed)."""

    def epoch(self, row: dict[str, Any], history: list[dict[str, Any]], train: dict[str, Any],
              test: dict[str, Any]) -> None:
        """``row``: the ``metrics.csv`` row just appended to ``history``; ``train``/``test``: the epoch's
        :func:`~eacfer.training.engine.train_one_epoch` / :func:`~eacfer.training.engine.evaluate` results."""

    def close(self, history: list[dict[str, Any]], completed: bool) -> None:
        """Release what the sink holds (called from a ``finally``)."""


def summarize(history: list[dict[str, Any]], skipped: int, epochs: int, finished: bool) -> dict[str, Any]:
    """The run summary from the per-epoch history.

    Example:
        >>> summarize([{"epoch": 1, "test_accuracy": 0.5, "test_mean_class_accuracy": 0.4, "seconds": 2.0}], 0, 1, True)["best_epoch"]
        1
    """
    if not history:
        return {"best_accuracy": None, "best_epoch": None, "last5_mean_accuracy": None, "last5_mean_epochs": 0,
                "final_accuracy": None,
                "final_mean_class_accuracy": None, "skipped_images": skipped, "epochs": 0,
                "epochs_planned": epochs, "seconds": 0.0, "finished": finished}
    accs = [float(r["test_accuracy"]) for r in history]
    best = max(range(len(accs)), key=lambda i: (accs[i], -i))  # first epoch reaching the best accuracy
    tail = accs[-LAST5:]
    return {
        "best_accuracy": accs[best],
        "best_epoch": int(history[best]["epoch"]),
        "last5_mean_accuracy": sum(tail) / len(tail),
        "last5_mean_epochs": len(tail),  # < 5 when fewer epochs ran: the mean is over these last epochs
        "final_accuracy": accs[-1],
        "final_mean_class_accuracy": float(history[-1]["test_mean_class_accuracy"]),
        "skipped_images": skipped,
        "epochs": int(history[-1]["epoch"]),
        "epochs_planned": epochs,
        "seconds": float(sum(float(r["seconds"]) for r in history)),
        "finished": finished,
    }


def ran_as(config: dict[str, Any]) -> dict[str, Any]:
    """What ``summary.json`` says about how the run was made (recipe, pipeline, precision, weights)."""
    return {"recipe": config.get("recipe"), "pipeline": config.get("pipeline"),
            "amp_effective": config.get("amp_effective"), "eval_dtype": config.get("eval_dtype"),
            "pretrained": config.get("pretrained")}


def write_metrics_csv(path: Path, history: list[dict[str, Any]]) -> None:
    """``metrics.csv``: one row per epoch, floats written with ``repr`` (they read back exactly)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(METRIC_COLUMNS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})  # repr: round-trip exact
    write_text(path, buf.getvalue())


class EpochLog:
    """One log line per epoch, on the caller's logger (the trainer's: users filter the epoch lines by it)."""

    def __init__(self, epochs: int, logger: logging.Logger = log):
        self.epochs, self.log = epochs, logger

    def epoch(self, row: dict[str, Any], history: list[dict[str, Any]], train: dict[str, Any],
              test: dict[str, Any]) -> None:
        self.log.info("epoch %d/%d  loss %.4f (ce %.4f, cons %.5f)  train acc %.4f  test acc %.4f  mean-class %.4f  "
                 "%.0f img/s  %.1fs", row["epoch"], self.epochs, row["train_loss"], row["train_ce"],
                 row["train_consistency"], row["train_accuracy"], row["test_accuracy"],
                 row["test_mean_class_accuracy"], train["images_per_s"], row["seconds"])

    def close(self, history: list[dict[str, Any]], completed: bool) -> None:
        pass


class RunFiles:
    """``metrics.csv`` and the provisional ``summary.json`` (``finished: false``), rewritten every epoch."""

    def __init__(self, run: Path, epochs: int, skipped: int, skipped_entries: int, config: dict[str, Any]):
        self.run, self.epochs, self.skipped, self.skipped_entries = run, epochs, skipped, skipped_entries
        self.config = config

    def epoch(self, row: dict[str, Any], history: list[dict[str, Any]], train: dict[str, Any],
              test: dict[str, Any]) -> None:
        write_metrics_csv(self.run / "metrics.csv", history)
        write_json(self.run / "summary.json", {**summarize(history, self.skipped, self.epochs, finished=False),
                                               "skipped_entries": self.skipped_entries, **ran_as(self.config)})

    def close(self, history: list[dict[str, Any]], completed: bool) -> None:
        pass


class LastCheckpoint:
    """``last.pt``: everything a resume needs, written atomically after every epoch; ``saved`` is the last
    epoch it holds.

    The RNG states are captured after the epoch's evaluation: exactly the state the next epoch starts from.
    """

    def __init__(self, path: Path, saved: int, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: Any, scaler: Any, amp: bool, generator: torch.Generator, config: dict[str, Any]):
        self.path, self.saved = path, saved
        self.model, self.optimizer, self.scheduler, self.scaler = model, optimizer, scheduler, scaler
        self.amp, self.generator, self.config = amp, generator, config

    def epoch(self, row: dict[str, Any], history: list[dict[str, Any]], train: dict[str, Any],
              test: dict[str, Any]) -> None:
        from eacfer.checkpoint import save_checkpoint

        save_checkpoint(self.path, {
            "epoch": row["epoch"], "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict() if self.amp else {},
            "rng": capture_rng_state({"train_loader": self.generator}), "history": history, "config": self.config,
        })
        self.saved = row["epoch"]

    def close(self, history: list[dict[str, Any]], completed: bool) -> None:
        pass


class TensorBoard:
    """TensorBoard scalars under ``RUN_DIR/tb`` (``metrics.csv``'s columns, ``train_loss`` → ``train/loss``)."""

    def __init__(self, writer: Any):
        self.writer = writer

    @classmethod
    def open(cls, run: Path, purge_step: int) -> TensorBoard | None:
        """The sink, or ``None`` when tensorboard (an optional extra) is not installed."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # tensorboard is an optional extra
            log.info("tensorboard not installed: no TensorBoard events (pip install 'eacfer[tensorboard]')")
            return None
        return cls(SummaryWriter(log_dir=str(run / "tb"), purge_step=purge_step))

    def epoch(self, row: dict[str, Any], history: list[dict[str, Any]], train: dict[str, Any],
              test: dict[str, Any]) -> None:
        for k in METRIC_COLUMNS[1:]:
            self.writer.add_scalar(k.replace("_", "/", 1), float(row[k]), row["epoch"])
        self.writer.flush()

    def close(self, history: list[dict[str, Any]], completed: bool) -> None:
        self.writer.close()


class WandbRun:
    """Per-epoch metrics, confusion matrix and CAMs to W&B (:mod:`eacfer.training.wandb_log`); a run that
    stops early is closed as failed (``--resume`` continues it), a finished one by the trainer once
    ``model.pt`` exists."""

    def __init__(self, tracker: Any, model: torch.nn.Module, skipped: int, epochs: int):
        self.tracker, self.model, self.skipped, self.epochs = tracker, model, skipped, epochs

    def epoch(self, row: dict[str, Any], history: list[dict[str, Any]], train: dict[str, Any],
              test: dict[str, Any]) -> None:
        self.tracker.epoch(row, {"images_per_s": train["images_per_s"]}, test, self.model)

    def close(self, history: list[dict[str, Any]], completed: bool) -> None:
        if not completed:
            self.tracker.finish(summarize(history, self.skipped, self.epochs, finished=False), None, ok=False)
