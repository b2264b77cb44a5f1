"""The trainer's two seams (issue #27): both pipelines answer the same calls, and every finished epoch goes to
each epoch sink in order, which are all closed once whether the run finishes or is interrupted."""

from __future__ import annotations

import csv
import inspect

import pytest

from eacfer.training import trainer
from eacfer.training.runstate import TrainingInterrupted
from eacfer.training.trainer import TrainConfig, train

INTERFACE = ("make_optimizer", "make_scaler", "train_epoch", "evaluate", "record")


def test_reference_and_fast_pipelines_offer_the_same_calls():
    from eacfer.training.fast.runner import FastPipeline
    from eacfer.training.pipelines import ReferencePipeline

    for name in INTERFACE:
        ref, fast = inspect.signature(getattr(ReferencePipeline, name)), inspect.signature(getattr(FastPipeline, name))
        assert list(ref.parameters) == list(fast.parameters), name
        assert [p.default for p in ref.parameters.values()] == [p.default for p in fast.parameters.values()], name


class Recorder:
    """A sink that records what it is given; ``stop_at``: raise Ctrl-C when that epoch arrives."""

    def __init__(self, stop_at: int | None = None):
        self.rows: list[dict] = []
        self.closed: list[bool] = []
        self.stop_at = stop_at

    def epoch(self, row, history, train, test):
        assert history[-1] is row and set(train) >= {"train_loss", "images_per_s"} and "accuracy" in test
        if row["epoch"] == self.stop_at:
            raise KeyboardInterrupt
        self.rows.append(dict(row))

    def close(self, history, completed):
        self.closed.append(completed)


def _with_sink(monkeypatch, sink: Recorder) -> None:
    real = trainer._open_sinks

    def open_sinks(*a, **kw):
        sinks, checkpoint, tracker = real(*a, **kw)
        return [*sinks, sink], checkpoint, tracker

    monkeypatch.setattr(trainer, "_open_sinks", open_sinks)


def _cfg(data, out, **kw) -> TrainConfig:
    return TrainConfig(data=str(data), out=str(out), backbone="resnet18", epochs=2, batch_size=16, image_size=32,
                       workers=0, device="cpu", progress=False, tensorboard=False, **kw)


def test_every_epoch_reaches_each_sink_after_the_files(synth_rafdb, tmp_path, monkeypatch):
    sink = Recorder()
    _with_sink(monkeypatch, sink)
    train(_cfg(synth_rafdb, tmp_path / "r"))
    assert [r["epoch"] for r in sink.rows] == [1, 2] and sink.closed == [True]
    with open(tmp_path / "r" / "metrics.csv", encoding="utf-8", newline="") as fh:
        written = list(csv.DictReader(fh))
    assert [float(r["test_accuracy"]) for r in written] == [r["test_accuracy"] for r in sink.rows]


def test_an_interrupted_run_closes_every_sink_and_names_the_last_checkpoint(synth_rafdb, tmp_path, monkeypatch):
    sink = Recorder(stop_at=2)  # the last sink: epoch 2 is already in metrics.csv and last.pt
    _with_sink(monkeypatch, sink)
    with pytest.raises(TrainingInterrupted) as e:
        train(_cfg(synth_rafdb, tmp_path / "r"))
    assert sink.closed == [False] and e.value.epoch == 2
    # the sinks before it ran for epoch 2: last.pt holds it
    assert e.value.completed == 2 and e.value.checkpoint == tmp_path / "r" / "last.pt"
