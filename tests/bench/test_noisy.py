"""``eacfer bench noisy``: grid planning, the whole flow on tiny synthetic data, resumability."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eacfer.bench.noisy import (
    GridCell,
    NoisyBench,
    make_config,
    noise_tag,
    parse_label_files,
    plan_grid,
    rate_from_label_file,
    read_run,
    write_noisy_outputs,
)
from eacfer.bench.published import load_published
from eacfer.commands.cli import main

TINY = ["--epochs", "1", "--image-size", "32", "--batch-size", "16", "--workers", "0", "--device", "cpu",
        "--no-tensorboard", "--pretrained", "mobilenet_v2=none"]  # tiny random-init runs, on purpose
METRICS = ("last5_mean_accuracy", "best_accuracy", "final_mean_class_accuracy")


# ---------------------------------------------------------------- planning (no training)


def test_plan_grid_names_and_order() -> None:
    cells = plan_grid(["mobilenet_v2", "timm:vit_tiny"], ["eac", "ce"], noise_rates=[0.0, 0.1, 0.25])
    assert [c.name for c in cells[:3]] == ["mobilenet_v2_eac_clean", "mobilenet_v2_eac_noise10",
                                           "mobilenet_v2_eac_noise25"]
    assert cells[-1].name == "timm-vit_tiny_ce_noise25"  # folder-safe
    assert [c.column for c in cells[:3]] == ["clean", "10%", "25%"]
    assert noise_tag(0.125) == "noise12p5"
    with pytest.raises(ValueError, match="outside"):
        plan_grid(["mobilenet_v2"], ["eac"], noise_rates=[1.0])
    with pytest.raises(ValueError, match="distinct"):
        plan_grid(["mobilenet_v2"], ["eac"], noise_rates=[0.1, 0.1])
    with pytest.raises(ValueError, match="either"):
        plan_grid(["mobilenet_v2"], ["eac"])


def test_label_file_rates(tmp_path: Path) -> None:
    assert rate_from_label_file("EmoLabel/noise01.txt") == 0.1
    assert rate_from_label_file("noise03.txt") == 0.3
    assert rate_from_label_file("noise25.txt") == 0.25
    assert rate_from_label_file("0.2noise_train.txt") == 0.2
    assert rate_from_label_file("list_patition_label.txt") == 0.0
    assert rate_from_label_file("whatever.txt") is None
    (tmp_path / "EmoLabel").mkdir()
    (tmp_path / "EmoLabel" / "noise02.txt").write_text("train_00001.jpg 1\n")
    (tmp_path / "mine.txt").write_text("train_00001.jpg 1\n")
    got = parse_label_files(["noise02.txt", f"0.35={tmp_path / 'mine.txt'}"], data=tmp_path)
    assert got == [(str(tmp_path / "EmoLabel" / "noise02.txt"), 0.2), (str(tmp_path / "mine.txt"), 0.35)]
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        parse_label_files(["missing.txt"], data=tmp_path)
    cells = plan_grid(["mobilenet_v2"], ["ce"], label_files=got)
    assert [c.name for c in cells] == ["mobilenet_v2_ce_noise02", "mobilenet_v2_ce_mine"]
    assert [c.column for c in cells] == ["noise02.txt (20%)", "mine.txt (35%)"]


def test_make_config_passes_options_and_rejects_unknown(tmp_path: Path) -> None:
    cell = GridCell("mobilenet_v2", "ce", "noise20", 0.2)
    cfg = make_config(cell, "data", tmp_path / "run", {"epochs": 3, "lr": 0.01}, {"mobilenet_v2": "w.pth"}, 7)
    assert (cfg.backbone, cfg.method, cfg.noise_rate, cfg.noise_seed, cfg.epochs, cfg.lr, cfg.pretrained) == (
        "mobilenet_v2", "ce", 0.2, 7, 3, 0.01, "w.pth")
    with pytest.raises(ValueError, match="not_an_option"):
        make_config(cell, "data", tmp_path, {"not_an_option": 1}, {}, 0)
    with pytest.raises(ValueError, match="backbone"):
        make_config(cell, "data", tmp_path, {"backbone": "resnet18"}, {}, 0)


def _fake_summary(run: Path, epochs: int, finished: bool, acc: float = 0.5) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "summary.json").write_text(json.dumps({
        "best_accuracy": acc, "best_epoch": 1, "last5_mean_accuracy": acc - 0.1, "final_accuracy": acc,
        "final_mean_class_accuracy": acc - 0.2, "epochs": epochs, "epochs_planned": epochs, "seconds": 1.0,
        "finished": finished}))
    with open(run / "metrics.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["epoch", "train_loss", "train_ce", "train_consistency", "train_accuracy", "test_accuracy",
                    "test_mean_class_accuracy", "lr", "seconds"])
        for e in range(1, epochs + 1):
            w.writerow([e, 1.0, 1.0, 0.0, 0.5, acc, acc - 0.2, 1e-4, 1.0])
    if finished:
        (run / "model.pt").write_bytes(b"x")


def test_run_decides_skip_resume_restart(synth_rafdb: Path, tmp_path: Path) -> None:
    """Which cells train, resume or start over, with a fake trainer (no real training)."""
    import torch

    cells = plan_grid(["mobilenet_v2"], ["eac"], noise_rates=[0.0, 0.1, 0.2, 0.3])
    bench = NoisyBench(str(synth_rafdb), str(tmp_path), cells, train_options={"epochs": 2, "workers": 0},
                       pretrained={"mobilenet_v2": "none"})
    runs = [bench.run_dir(c) for c in cells]
    _fake_summary(runs[0], 2, finished=True)  # finished → skipped (and told it was made with another lr)
    (runs[0] / "config.yaml").write_text("lr: 0.5\nbatch_size: 32\n")
    runs[1].mkdir(parents=True)
    torch.save({"epoch": 1}, runs[1] / "last.pt")  # interrupted with a readable state → resumed
    runs[2].mkdir(parents=True)
    (runs[2] / "last.pt").write_bytes(b"")  # truncated state → started over
    calls: list[tuple[str, bool, bool]] = []

    def fake_train(cfg):  # noqa: ANN001
        calls.append((Path(cfg.out).name, cfg.resume, cfg.force))
        if Path(cfg.out).name.endswith("noise30"):
            raise RuntimeError("boom")
        _fake_summary(Path(cfg.out), 2, finished=True, acc=0.7)
        return {}

    results = bench.run(fake_train)
    assert calls == [("mobilenet_v2_eac_noise10", True, False), ("mobilenet_v2_eac_noise20", False, True),
                     ("mobilenet_v2_eac_noise30", False, False)]
    assert [r.action.split(":")[0] for r in results] == ["skipped (made with other lr)", "resumed", "restarted",
                                                        "failed"]
    assert [r.status for r in results] == ["done", "done", "done", "failed"]
    assert results[1].metric("best_accuracy") == pytest.approx(70.0)
    # a finished run with fewer epochs than now planned is not "done"
    assert read_run(cells[0], runs[0], epochs=5).status == "partial"


def test_progress_log_says_training_before_and_trained_after(synth_rafdb: Path, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """The log must not claim a run "trained" before its training ran (or when it failed)."""
    import logging

    cells = plan_grid(["mobilenet_v2"], ["eac"], noise_rates=[0.0, 0.1])
    bench = NoisyBench(str(synth_rafdb), str(tmp_path), cells, train_options={"epochs": 1, "workers": 0},
                       pretrained={"mobilenet_v2": "none"})
    seen_when_called: list[list[str]] = []

    def fake_train(cfg):  # noqa: ANN001
        seen_when_called.append([r.getMessage() for r in caplog.records])
        if Path(cfg.out).name.endswith("noise10"):
            raise RuntimeError("boom")
        _fake_summary(Path(cfg.out), 1, finished=True, acc=0.7)
        return {}

    with caplog.at_level(logging.INFO, logger="eacfer.bench.noisy"):
        bench.run(fake_train)
    first = seen_when_called[0]
    assert any("[1/2] mobilenet_v2_eac_clean: training" in m for m in first)
    assert not any("trained" in m for m in first)  # not yet
    messages = [r.getMessage() for r in caplog.records]
    assert "[1/2] mobilenet_v2_eac_clean: trained" in messages  # after it returned
    assert not any("noise10: trained" in m for m in messages)  # it failed
    assert any("noise10: run failed" in m for m in messages)


def test_tables_from_hand_made_run_dirs(tmp_path: Path) -> None:
    cells = plan_grid(["resnet50_msceleb", "mobilenet_v2"], ["eac", "ce"], noise_rates=[0.0, 0.1, 0.3])
    accs = {}
    results = []
    for i, c in enumerate(cells):
        run = tmp_path / "runs" / c.name
        if c.name != "mobilenet_v2_ce_noise30":  # one missing run → an empty cell
            accs[c.name] = 0.3 + 0.05 * i
            _fake_summary(run, 3, finished=True, acc=accs[c.name])
        results.append(read_run(c, run, 3))
    files = write_noisy_outputs(tmp_path, results, load_published(), plots=False)
    rows = list(csv.DictReader(open(files["csv"], encoding="utf-8")))
    measured = [r for r in rows if r["source"] == "measured"]
    assert len(measured) == 3 * 4  # 3 metrics × (2 backbones × 2 methods)
    assert list(rows[0])[4:] == ["clean", "10%", "30%"]
    r = next(r for r in measured if (r["backbone"], r["method"], r["metric"]) == ("resnet50_msceleb", "ce", "best_accuracy"))
    assert float(r["10%"]) == pytest.approx(100 * accs["resnet50_msceleb_ce_noise10"])
    r = next(r for r in measured if (r["backbone"], r["method"], r["metric"]) == ("mobilenet_v2", "ce", "last5_mean_accuracy"))
    assert r["30%"] == "" and float(r["clean"]) == pytest.approx(100 * (accs["mobilenet_v2_ce_clean"] - 0.1))
    published = [r for r in rows if r["source"].startswith("published")]
    assert len(published) == 4 and all("github.com/zyh-uaiaaaa" in r["source"] for r in published)
    res_eac = next(r for r in published if r["backbone"] == "ResNet-50" and r["method"] == "eac")
    assert (res_eac["clean"], res_eac["10%"], res_eac["30%"]) == ("90.35", "88.62", "85.27")
    md = files["md"].read_text(encoding="utf-8")
    assert "## Measured here: Mean test accuracy of the last 5 epochs" in md
    assert "Published, same layout (not measured here)" in md and "| mobilenet_v2 | ce | " in md


# ---------------------------------------------------------------- the whole flow with the real trainer


@pytest.fixture(scope="module")
def grid(synth_rafdb: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("bench_noisy")
    argv = ["-q", "bench", "noisy", "--data", str(synth_rafdb), "--backbones", "mobilenet_v2", "--methods", "eac,ce",
            "--noise", "0,0.2", *TINY, "--out", str(out)]
    assert main(argv) == 0
    return out, argv


def _runs(out: Path) -> list[Path]:
    return sorted((out / "runs").iterdir())


def test_grid_tables_match_run_summaries(grid: tuple[Path, list[str]]) -> None:
    out, _ = grid
    runs = _runs(out)
    assert [r.name for r in runs] == ["mobilenet_v2_ce_clean", "mobilenet_v2_ce_noise20", "mobilenet_v2_eac_clean",
                                      "mobilenet_v2_eac_noise20"]
    rows = list(csv.DictReader(open(out / "noisy_table.csv", encoding="utf-8")))
    measured = [r for r in rows if r["source"] == "measured"]
    assert len(measured) == 3 * 2 and list(rows[0])[4:] == ["clean", "20%"]
    for r in measured:
        for col, tag in (("clean", "clean"), ("20%", "noise20")):
            summary = json.loads((out / "runs" / f"mobilenet_v2_{r['method']}_{tag}" / "summary.json").read_text())
            assert summary["finished"] and summary["epochs"] == 1
            assert float(r[col]) == pytest.approx(100.0 * summary[r["metric"]], rel=1e-12)
    cfg = (out / "runs" / "mobilenet_v2_ce_noise20" / "config.yaml").read_text()
    assert "noise_rate: 0.2" in cfg and "method: ce" in cfg and "image_size: 32" in cfg
    for name in ("noisy_table.md", "noisy_curves.png", "noisy_table.png", "bench_meta.json"):
        assert (out / name).stat().st_size > 0
    assert (out / "noisy_curves.png").read_bytes()[:4] == b"\x89PNG"
    meta = json.loads((out / "bench_meta.json").read_text())
    assert meta["command"].startswith("eacfer") and "bench noisy" in meta["command"]
    assert meta["machine"]["cores"] >= 1 and meta["machine"]["torch"] and meta["date"] and meta["commit"]


def test_grid_rerun_repeats_only_the_killed_run(grid: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    out, argv = grid
    runs = _runs(out)
    killed = out / "runs" / "mobilenet_v2_eac_noise20"
    stamps = {r.name: {f.name: f.stat().st_mtime_ns for f in r.iterdir() if f.is_file()} for r in runs}
    # "kill" the run: no summary or model, and its state truncated as a crash mid-write would leave it
    (killed / "summary.json").unlink()
    (killed / "model.pt").unlink()
    (killed / "last.pt").write_bytes(b"")
    capsys.readouterr()
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "mobilenet_v2_eac_noise20" in printed and "restarted" in printed
    assert printed.count("skipped") == 3
    for r in runs:
        now = {f.name: f.stat().st_mtime_ns for f in r.iterdir() if f.is_file()}
        if r == killed:
            assert json.loads((r / "summary.json").read_text())["finished"]
            assert now["metrics.csv"] != stamps[r.name]["metrics.csv"]
        else:
            assert now == stamps[r.name], f"{r.name} was touched"
    assert "| `runs/mobilenet_v2_eac_noise20` | done | restarted |" in (out / "noisy_table.md").read_text()


def test_tables_only_trains_nothing(grid: tuple[Path, list[str]]) -> None:
    out, argv = grid
    stamps = {f: f.stat().st_mtime_ns for r in _runs(out) for f in r.iterdir() if f.is_file()}
    (out / "noisy_table.csv").unlink()
    assert main([*argv, "--tables-only", "--no-plots"]) == 0
    assert {f: f.stat().st_mtime_ns for f in stamps} == stamps
    rows = [r for r in csv.DictReader(open(out / "noisy_table.csv", encoding="utf-8")) if r["source"] == "measured"]
    assert len(rows) == 6 and all(r["clean"] and r["20%"] for r in rows)


def test_interrupted_run_resumes_not_restarts(synth_rafdb: Path, tmp_path: Path) -> None:
    """A run stopped after epoch 1 of 2 continues from last.pt: epoch 1's metrics are kept as they were."""
    from eacfer.training.trainer import train

    cells = plan_grid(["mobilenet_v2"], ["eac"], noise_rates=[0.2])
    opts = {"epochs": 2, "image_size": 32, "batch_size": 16, "workers": 0, "device": "cpu", "tensorboard": False,
            "progress": False}
    bench = NoisyBench(str(synth_rafdb), str(tmp_path), cells, train_options=opts, pretrained={"mobilenet_v2": "none"})
    run = bench.run_dir(cells[0])
    cfg = make_config(cells[0], str(synth_rafdb), run, {**opts, "epochs": 1}, {"mobilenet_v2": "none"}, 0)
    train(cfg)  # the state a kill after epoch 1 leaves (last.pt of epoch 1), as far as the grid can tell
    first = (run / "metrics.csv").read_text().splitlines()
    assert bench.collect()[0].status == "partial"
    (result,) = bench.run()
    assert result.action == "resumed" and result.status == "done"
    lines = (run / "metrics.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[:2] == first


def test_real_kill_then_rerun_resumes(synth_rafdb: Path, tmp_path: Path) -> None:
    """SIGKILL the bench process mid-grid, rerun it: the killed run resumes, the finished one is skipped."""
    out = tmp_path / "b"
    argv = [sys.executable, "-m", "eacfer", "-q", "bench", "noisy", "--data", str(synth_rafdb), "--backbones",
            "mobilenet_v2", "--methods", "ce", "--noise", "0,0.2", *TINY, "--out", str(out), "--no-plots"]
    argv[argv.index("--epochs") + 1] = "3"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = out / "runs" / "mobilenet_v2_ce_noise20"
    deadline = time.monotonic() + 240
    try:
        while not (second / "last.pt").exists():  # the second run has finished at least one epoch
            assert proc.poll() is None, "the bench ended before it could be killed"
            assert time.monotonic() < deadline, "timed out waiting for the second run to start"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    first_done = json.loads((out / "runs" / "mobilenet_v2_ce_clean" / "summary.json").read_text())
    assert first_done["finished"]
    killed_epochs = len((second / "metrics.csv").read_text().splitlines()) - 1
    assert 1 <= killed_epochs < 3
    clean_stamp = (out / "runs" / "mobilenet_v2_ce_clean" / "metrics.csv").stat().st_mtime_ns
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "mobilenet_v2_ce_clean" in done.stdout and "skipped" in done.stdout and "resumed" in done.stdout
    assert (out / "runs" / "mobilenet_v2_ce_clean" / "metrics.csv").stat().st_mtime_ns == clean_stamp
    summary = json.loads((second / "summary.json").read_text())
    assert summary["finished"] and summary["epochs"] == 3


def test_cli_errors_are_one_line(synth_rafdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["bench", "noisy", "--data", str(synth_rafdb), "--out", str(tmp_path), "--backbones", "mobilenet_v2"]
    assert main([*base, "--noise", "0,abc"]) == 2
    assert "--noise" in capsys.readouterr().err
    assert main([*base, "--pretrained", "resnet18=x.pth"]) == 2
    assert "not in the grid" in capsys.readouterr().err
    assert main([*base, "--train-opt", "bogus=1"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main(["bench", "noisy", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"),
                 "--pretrained", "resnet50_msceleb=none", "--pretrained", "mobilenet_v2=none"]) == 2
    assert "not found" in capsys.readouterr().err


def test_grid_without_weights_stops_before_training(synth_rafdb: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """#18: a backbone whose recipe needs weights, without --pretrained, is refused before any run starts."""
    base = ["bench", "noisy", "--data", str(synth_rafdb), "--out", str(tmp_path / "o"), "--backbones", "mobilenet_v2",
            "--methods", "ce", "--noise", "0", *TINY[:-2]]
    assert main(base) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--pretrained mobilenet_v2=none" in err and "mobilenet_v2" in err
    assert not (tmp_path / "o" / "runs").exists()
