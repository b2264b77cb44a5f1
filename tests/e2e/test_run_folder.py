"""A run folder is never rewritten or mixed silently (#19): ``--resume`` on a finished run touches
nothing, a higher ``--epochs`` trains on and records what really ran, the folder is locked while a
run uses it (two real processes), and Ctrl-C says where training stopped and how to resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from eacfer.commands.cli import main
from eacfer.training.trainer import read_metrics_csv
from eacfer.utils.runlock import LOCK_NAME, RunFolderLocked, RunLock, read_lock

TINY = ["--backbone", "resnet18", "--batch-size", "16", "--image-size", "32", "--lr", "1e-3", "--workers", "0",
        "--device", "cpu", "--no-tensorboard", "-q"]


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, synth_rafdb):
    out = tmp_path_factory.mktemp("runs") / "r18"
    assert main(["train", "--data", str(synth_rafdb), "--out", str(out), "--epochs", "2", *TINY]) == 0
    return out


def test_resume_on_a_finished_run_touches_nothing(finished_run, synth_rafdb, capsys, tmp_path):
    capsys.readouterr()
    cache = Path(os.environ["EACFER_CACHE_DIR"])
    cached = sorted(cache.rglob("*")) if cache.exists() else []
    before = _snapshot(finished_run)
    # a changed --lr and no --epochs: still nothing to train
    rc = main(["train", "--data", str(synth_rafdb), "--out", str(finished_run), *TINY, "--resume", "--lr", "0.01"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "already finished (2/2 epochs), nothing to do" in out
    assert _snapshot(finished_run) == before  # same bytes, same modification times, no new file
    assert not (finished_run / LOCK_NAME).exists()
    assert (sorted(cache.rglob("*")) if cache.exists() else []) == cached
    assert yaml.safe_load((finished_run / "config.yaml").read_text())["lr"] == 1e-3
    # an explicit --epochs that is not higher: nothing to do either
    rc = main(["train", "--data", str(synth_rafdb), "--out", str(finished_run), "--resume", "--epochs", "1", *TINY])
    assert rc == 0 and "already finished (2/2 epochs)" in capsys.readouterr().out
    assert _snapshot(finished_run) == before


def test_resume_of_a_finished_run_with_its_own_options_warns_nothing(finished_run, synth_rafdb, caplog):
    """#30 item 7: identical options used to warn "resuming with changed batch_size, lr, weight_decay, gamma,
    lam, image_size, seed, flip_view": the finished-run check compared the saved options with None (only the
    identity keys were passed on) and the resolved flip view with the one asked for."""
    import logging

    with caplog.at_level(logging.WARNING, logger="eacfer.training.trainer"):
        rc = main(["train", "--data", str(synth_rafdb), "--out", str(finished_run), "--epochs", "2", *TINY, "--resume"])
    assert rc == 0 and "resuming with changed" not in caplog.text, caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eacfer.training.trainer"):  # a real change is still named
        rc = main(["train", "--data", str(synth_rafdb), "--out", str(finished_run), *TINY, "--resume", "--lam", "3"])
    assert rc == 0 and "resuming with changed lam:" in caplog.text, caplog.text


def test_higher_epochs_trains_on_and_records_what_ran(finished_run, synth_rafdb, tmp_path, capsys):
    import shutil

    run = tmp_path / "longer"
    shutil.copytree(finished_run, run)
    rc = main(["train", "--data", str(synth_rafdb), "--out", str(run), *TINY, "--resume", "--epochs", "3",
               "--lr", "0.5", "--lam", "2.0"])  # the last --lr wins
    assert rc == 0, capsys.readouterr().err
    rows = read_metrics_csv(run / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    # the optimizer state of last.pt is restored: epoch 3 ran at the decayed original lr, not at 0.5
    assert rows[2]["lr"] == pytest.approx(1e-3 * 0.9 ** 2)
    first = read_metrics_csv(finished_run / "metrics.csv")
    assert rows[:2] == first  # the first two epochs are the original run's
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["epochs"] == 3
    assert cfg["lr"] == 1e-3 and cfg["lam"] == 5.0  # never claims an option the run did not start with
    seg1, seg2 = cfg["segments"]
    assert seg1 == {"first_epoch": 1, "until_epoch": 2}
    assert seg2["first_epoch"] == 3 and seg2["until_epoch"] == 3
    assert seg2["ignored"] == {"lr": 0.5}  # asked for, not used
    assert seg2["changed"]["lam"] == 2.0  # used from epoch 3 on
    assert "lr" not in seg2["changed"]
    from eacfer.checkpoint import load_model

    _, info = load_model(run / "model.pt")
    assert info.train_config["segments"] == cfg["segments"]
    # a plain --resume now finds 3/3 epochs: nothing to do
    capsys.readouterr()
    assert main(["train", "--data", str(synth_rafdb), "--out", str(run), "--resume", *TINY]) == 0
    assert "already finished (3/3 epochs)" in capsys.readouterr().out


def test_fresh_run_records_one_segment(finished_run):
    cfg = yaml.safe_load((finished_run / "config.yaml").read_text())
    assert cfg["segments"] == [{"first_epoch": 1, "until_epoch": 2}]


def test_last5_mean_says_what_was_averaged(finished_run, synth_rafdb, capsys):
    import json

    s = json.loads((finished_run / "summary.json").read_text())
    assert s["last5_mean_epochs"] == 2
    rows = read_metrics_csv(finished_run / "metrics.csv")
    assert s["last5_mean_accuracy"] == pytest.approx(sum(r["test_accuracy"] for r in rows) / 2)


def test_cli_names_the_mean_over_fewer_than_five_epochs(synth_rafdb, tmp_path, capsys):
    import json

    rc = main(["train", "--data", str(synth_rafdb), "--out", str(tmp_path / "one"), "--epochs", "1", *TINY])
    assert rc == 0
    out = capsys.readouterr().out
    shown = json.loads(out[:out.rindex("}") + 1])
    assert "last5_mean_accuracy" not in shown
    assert shown["mean_accuracy_last_1_epochs (fewer than 5 ran)"] == shown["final_accuracy"]


# ---------------------------------------------------------------- lock and Ctrl-C with real processes

# `eacfer train` whose step hangs in epoch 2 (after announcing it), so that it holds its run folder
DRIVER = r"""
import sys, time
from pathlib import Path
import eacfer.training.engine as engine
marker = Path(sys.argv[1])
real, calls = engine.train_step, [0]
def step(*a, **k):
    r = real(*a, **k)
    calls[0] += 1
    if calls[0] == 4 + 1:  # 4 batches per epoch: first batch of epoch 2
        marker.write_text("epoch 2")
        time.sleep(600)
    return r
engine.train_step = step
from eacfer.commands.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _eacfer(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "eacfer", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_second_run_into_a_locked_folder_fails_and_ctrl_c_says_how_to_resume(synth_rafdb, tmp_path):
    out, marker = tmp_path / "run", tmp_path / "in_epoch2"
    argv = ["train", "--data", str(synth_rafdb), "--out", str(out), "--epochs", "3", *TINY]
    first = subprocess.Popen([sys.executable, "-c", DRIVER, str(marker), *argv],
                             env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert first.poll() is None, f"training exited early: {first.communicate()}"
            assert time.monotonic() < deadline, "epoch 2 never started"
            time.sleep(0.05)
        assert read_lock(out)["pid"] == first.pid
        before = _snapshot(out)

        second = _eacfer(*argv[:-1], "--force")  # even --force may not take over a folder in use
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, err
        assert "in use by another eacfer training run" in lines[0] and f"process {first.pid}" in lines[0]
        assert _snapshot(out) == before  # the second run wrote nothing

        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 130, err
    assert "training interrupted during epoch 2/3" in err
    assert f"resumable checkpoint {out / 'last.pt'} holds epoch 1" in err
    resume = next(ln for ln in err.splitlines() if ln.startswith("resume with: "))[len("resume with: "):]
    assert resume.startswith("eacfer train ") and resume.endswith(" --resume") and f"--out {out}" in resume
    assert "Traceback" not in err
    assert not (out / LOCK_NAME).exists()  # released on the way out

    import shlex

    rc = subprocess.run([sys.executable, "-m", "eacfer", *shlex.split(resume)[1:]], capture_output=True,
                        text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert rc.returncode == 0, rc.stderr
    assert [r["epoch"] for r in read_metrics_csv(out / "metrics.csv")] == [1, 2, 3]


def test_interrupt_before_the_first_epoch_says_there_is_no_checkpoint():
    from eacfer.training.runstate import TrainingInterrupted

    msg = TrainingInterrupted(Path("r"), 1, 3, 0, None).describe()
    assert "during epoch 1/3" in msg and "no checkpoint yet" in msg


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, caplog):
    import json
    import socket

    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
    with caplog.at_level("WARNING"), RunLock(tmp_path) as lock:
        assert read_lock(tmp_path)["pid"] == os.getpid()
        assert lock.path.exists()
    assert "stale lock" in caplog.text
    assert not (tmp_path / LOCK_NAME).exists()


def test_lock_of_a_live_process_or_another_host_is_respected(tmp_path):
    import json
    import socket

    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    with pytest.raises(RunFolderLocked, match=f"process {os.getppid()}"):
        RunLock(tmp_path).acquire()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": _dead_pid(), "host": "elsewhere.example"}))
    with pytest.raises(RunFolderLocked, match="elsewhere.example"):
        RunLock(tmp_path).acquire()  # cannot tell whether a process on another host is alive
    assert (tmp_path / LOCK_NAME).exists()  # never removes a lock it does not own
