"""Results a user can read on their own (#19): metrics.json names the confusion matrix's rows and
columns; the noisy-table plot's legend, title and axis describe what is drawn."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

import pytest
import torch


def test_metrics_json_names_confusion_rows_and_columns(tmp_path, synth_rafdb):
    from eacfer import create_model
    from eacfer.checkpoint import save_model
    from eacfer.constants import IMAGENET_MEAN, IMAGENET_STD, RAFDB_CLASSES
    from eacfer.modelinfo import ModelInfo
    from eacfer.training.evaluation import evaluate_checkpoint

    torch.manual_seed(0)
    save_model(tmp_path / "model.pt", create_model("resnet18", num_classes=7),
               ModelInfo("resnet18", list(RAFDB_CLASSES), 32, list(IMAGENET_MEAN), list(IMAGENET_STD)))
    out = tmp_path / "eval"
    evaluate_checkpoint(tmp_path / "model.pt", synth_rafdb, out_dir=out, device="cpu", batch_size=10, progress=False)
    saved = json.loads((out / "metrics.json").read_text())
    axes = saved["confusion_axes"]
    assert axes["rows"] == "true class" and axes["columns"] == "predicted class"
    assert axes["labels"] == list(RAFDB_CLASSES)
    with open(out / "predictions.csv", newline="") as fh:
        pairs = Counter((r["truth"], r["prediction"]) for r in csv.DictReader(fh))
    for t in RAFDB_CLASSES:
        for p in RAFDB_CLASSES:
            assert axes["by_name"][t][p] == pairs[(t, p)], (t, p)
    # the named view is the same matrix as the plain one
    assert [[axes["by_name"][t][p] for p in RAFDB_CLASSES] for t in RAFDB_CLASSES] == saved["confusion"]


def test_named_confusion_is_not_transposed():
    from eacfer.training.metrics import classification_metrics, named_confusion

    m = classification_metrics([0, 0, 0, 1], [1, 1, 0, 1], ["a", "b"])  # two a's predicted as b
    assert named_confusion(m["confusion"], ["a", "b"])["by_name"] == {"a": {"a": 1, "b": 2}, "b": {"a": 0, "b": 1}}


# ---------------------------------------------------------------- the noisy-table plot


def _summary(run: Path, epochs: int, acc: float) -> None:
    run.mkdir(parents=True, exist_ok=True)
    n = min(5, epochs)
    (run / "summary.json").write_text(json.dumps({
        "best_accuracy": acc, "best_epoch": 1, "last5_mean_accuracy": acc, "last5_mean_epochs": n,
        "final_accuracy": acc, "final_mean_class_accuracy": acc, "epochs": epochs, "epochs_planned": epochs,
        "seconds": 1.0, "finished": True}))
    (run / "model.pt").write_bytes(b"x")


def _draw(tmp_path, monkeypatch, epochs, skip=()):
    from eacfer.bench import plots
    from eacfer.bench.noisy import plan_grid, read_run
    from eacfer.bench.published import load_published

    cells = plan_grid(["resnet50_msceleb", "mobilenet_v2"], ["eac", "ce"], noise_rates=[0.0, 0.1, 0.3])
    results = []
    for i, c in enumerate(cells):
        run = tmp_path / "runs" / c.name
        if c.name not in skip:
            _summary(run, epochs, 0.3 + 0.05 * i)
        results.append(read_run(c, run, epochs))
    figs = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figs.append(fig) or Path(path))
    plots.plot_noisy_table(results, load_published(), tmp_path / "t.png")
    return figs[0].axes[0]


def _legend(ax):
    leg = ax.get_legend()
    return {t.get_text(): h for t, h in zip(leg.get_texts(), leg.legend_handles, strict=True)}


def test_noisy_plot_legend_matches_the_lines(tmp_path, monkeypatch):
    # resnet50_msceleb eac has no 10% run; mobilenet_v2 ce only the clean one
    ax = _draw(tmp_path, monkeypatch, 8, skip={"resnet50_msceleb_eac_noise10", "mobilenet_v2_ce_noise10",
                                               "mobilenet_v2_ce_noise30"})
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    legend = _legend(ax)
    assert set(legend) == set(lines)  # every entry is drawn, every drawn line has an entry
    for label, handle in legend.items():
        line = lines[label]
        assert handle.get_linestyle() == line.get_linestyle(), label
        assert handle.get_marker() == line.get_marker() and handle.get_color() == line.get_color(), label
    gap = lines["resnet50_msceleb eac (measured)"]
    assert math.isnan(gap.get_ydata()[1])  # the missing 10% run is a gap, not a line through it
    lone = lines["mobilenet_v2 ce (measured)"]
    assert lone.get_linestyle() == "None" and legend["mobilenet_v2 ce (measured)"].get_linestyle() == "None"
    assert "solid: measured here" in ax.get_title() and "dots: measured here" in ax.get_title()
    assert "dashed: published" in ax.get_title()
    assert ax.get_ylabel() == "last-5-epoch mean test accuracy (%)"


def test_noisy_plot_says_what_was_averaged_when_fewer_than_5_epochs(tmp_path, monkeypatch):
    ax = _draw(tmp_path, monkeypatch, 3)
    assert "last 3 epoch" in ax.get_ylabel() and "fewer than 5" in ax.get_ylabel()
    assert "last-5-epoch" not in ax.get_ylabel()


def test_noisy_plot_without_runs_has_no_legend(tmp_path, monkeypatch):
    from eacfer.bench.plots import plot_noisy_table  # noqa: F401

    ax = _draw(tmp_path, monkeypatch, 3, skip={f"{b}_{m}_{t}" for b in ("resnet50_msceleb", "mobilenet_v2")
                                               for m in ("eac", "ce") for t in ("clean", "noise10", "noise30")})
    measured = [ln for ln in ax.get_lines() if "(measured)" in ln.get_label()]
    assert measured == []
    assert "measured" not in ax.get_title()


@pytest.mark.parametrize("n", [1, 4])
def test_summary_counts_the_averaged_epochs(n):
    from eacfer.training.trainer import summarize

    hist = [{"epoch": e, "test_accuracy": 0.1 * e, "test_mean_class_accuracy": 0.0, "seconds": 1.0}
            for e in range(1, n + 1)]
    s = summarize(hist, 0, n, True)
    assert s["last5_mean_epochs"] == n
    assert s["last5_mean_accuracy"] == pytest.approx(sum(0.1 * e for e in range(1, n + 1)) / n)


@pytest.mark.parametrize("epochs, note", [(3, True), (8, False)])
def test_noisy_table_says_when_the_last5_mean_is_over_fewer_epochs(tmp_path, epochs, note):
    from eacfer.bench.noisy import plan_grid, read_run
    from eacfer.bench.published import load_published
    from eacfer.bench.tables import write_noisy_tables

    cells = plan_grid(["mobilenet_v2"], ["eac"], noise_rates=[0.0, 0.2])
    results = []
    for c in cells:
        _summary(tmp_path / "runs" / c.name, epochs, 0.5)
        results.append(read_run(c, tmp_path / "runs" / c.name, epochs))
    md = write_noisy_tables(tmp_path, results, load_published())["md"].read_text(encoding="utf-8")
    assert ("means of the last 3 epoch(s), not last-5 means" in md) is note
