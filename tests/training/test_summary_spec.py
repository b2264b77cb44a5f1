"""The run summary (training/sinks.py ``summarize``): EAC reports the mean test accuracy of the LAST 5 epochs."""

from __future__ import annotations

import pytest

from eacfer.training.sinks import summarize

pytestmark = pytest.mark.spec  # written from the paper or a specification (`pytest -m spec`)

ACCS = [0.10, 0.20, 0.90, 0.30, 0.40, 0.50, 0.60, 0.70]  # 8 epochs, best in epoch 3, not at the end


def _history(accs, mca=None):
    return [{"epoch": i + 1, "test_accuracy": a, "test_mean_class_accuracy": (mca or accs)[i] / 2,
             "seconds": 1.5 + i} for i, a in enumerate(accs)]


def test_last5_mean_over_an_8_epoch_history():
    s = summarize(_history(ACCS), skipped=3, epochs=10, finished=False)
    assert s["last5_mean_accuracy"] == pytest.approx((0.30 + 0.40 + 0.50 + 0.60 + 0.70) / 5)
    assert s["best_accuracy"] == pytest.approx(0.90) and s["best_epoch"] == 3
    assert s["final_accuracy"] == pytest.approx(0.70)
    assert s["final_mean_class_accuracy"] == pytest.approx(0.35)
    assert s["epochs"] == 8 and s["epochs_planned"] == 10
    assert s["skipped_images"] == 3 and s["finished"] is False
    assert s["seconds"] == pytest.approx(sum(1.5 + i for i in range(8)))


def test_last5_with_fewer_than_5_epochs_averages_what_there_is():
    s = summarize(_history([0.2, 0.4, 0.9]), 0, 60, True)
    assert s["last5_mean_accuracy"] == pytest.approx(0.5)
    assert s["finished"] is True and s["epochs"] == 3


def test_best_epoch_is_the_first_reaching_the_best_accuracy():
    s = summarize(_history([0.5, 0.8, 0.3, 0.8, 0.8, 0.1]), 0, 6, True)
    assert s["best_epoch"] == 2 and s["best_accuracy"] == pytest.approx(0.8)
    assert s["last5_mean_accuracy"] == pytest.approx((0.8 + 0.3 + 0.8 + 0.8 + 0.1) / 5)


def test_epochs_comes_from_the_history_not_its_length():
    # a resumed run whose history starts later still reports the last epoch number
    h = [{"epoch": 7, "test_accuracy": 0.5, "test_mean_class_accuracy": 0.4, "seconds": 2},
         {"epoch": 8, "test_accuracy": 0.6, "test_mean_class_accuracy": 0.45, "seconds": 3}]
    s = summarize(h, 0, 8, True)
    assert s["epochs"] == 8 and s["best_epoch"] == 8 and s["seconds"] == pytest.approx(5.0)


def test_empty_history():
    s = summarize([], skipped=2, epochs=60, finished=False)
    assert s == {"best_accuracy": None, "best_epoch": None, "last5_mean_accuracy": None, "final_accuracy": None,
                 "final_mean_class_accuracy": None, "skipped_images": 2, "epochs": 0, "epochs_planned": 60,
                 "seconds": 0.0, "finished": False, "last5_mean_epochs": 0}
