"""#14: Weights & Biases logging, checked by reading the offline run files back (no network).

Every run here uses ``wandb_mode="offline"`` inside a temporary run folder; the assertions read the
``run-<id>.wandb`` files wandb wrote (tests/wandb_testutils.py decodes them with wandb's own protobuf
messages), so they check what a ``wandb sync`` would upload, not that a call happened.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytest.importorskip("wandb", reason="the optional extra eacfer[wandb] is not installed")

from eacfer.commands.cli import main  # noqa: E402
from eacfer.training.trainer import TrainConfig, train  # noqa: E402
from wandb_testutils import offline_runs, read_run  # noqa: E402


@pytest.fixture(autouse=True)
def wandb_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No key, no network, and every wandb side folder inside tmp_path."""
    for var in ("WANDB_API_KEY", "WANDB_DIR", "WANDB_MODE", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_ID",
                "WANDB_RESUME", "WANDB_RUN_GROUP", "WANDB_NAME"):
        monkeypatch.delenv(var, raising=False)
    side = tmp_path / "wandb-home"
    for var, sub in (("WANDB_CONFIG_DIR", "config"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_DATA_DIR", "data"),
                     ("WANDB_ARTIFACT_DIR", "artifacts")):
        monkeypatch.setenv(var, str(side / sub))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
    yield
    import wandb

    # wandb reads WANDB_* once per process (wandb.setup) and ignores later changes: a fresh session per test
    wandb.teardown()


#: what a run gets without --wandb-mode
DEFAULT_MODE = TrainConfig.__dataclass_fields__["wandb_mode"].default


def tiny(data, out, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), backbone="resnet18", epochs=3, batch_size=16, image_size=32, lr=1e-3,
                workers=0, device="cpu", progress=False, tensorboard=False, wandb="eacfer-test", wandb_mode="offline",
                wandb_media_every=2)
    return TrainConfig(**{**base, **kw})


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(path, encoding="utf-8")))


@pytest.fixture(scope="module")
def logged(synth_rafdb: Path, tmp_path_factory: pytest.TempPathFactory):
    """One 3-epoch run logged offline with the model artifact."""
    import os

    home = tmp_path_factory.mktemp("wandb-home")
    saved = {k: os.environ.get(k) for k in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR",
                                            "WANDB_ARTIFACT_DIR", "WANDB_SILENT", "WANDB_DISABLE_GIT")}
    os.environ.update(WANDB_CONFIG_DIR=str(home / "c"), WANDB_CACHE_DIR=str(home / "k"), WANDB_DATA_DIR=str(home / "d"),
                      WANDB_ARTIFACT_DIR=str(home / "a"), WANDB_SILENT="true", WANDB_DISABLE_GIT="true")
    try:
        out = tmp_path_factory.mktemp("wb") / "run"
        summary = train(tiny(synth_rafdb, out, wandb_name="tiny-r18", wandb_log_model=True))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    (path,) = offline_runs(out / "wandb")
    return out, summary, path, read_run(path)


def test_config_is_config_yaml(logged) -> None:
    out, _, _, run = logged
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert run.project == "eacfer-test" and run.name == "tiny-r18"
    assert run.run_id == json.loads((out / "wandb_run.json").read_text())["id"]
    assert set(cfg) <= set(run.config)
    for k, v in cfg.items():
        assert run.config[k] == v, k


def test_history_rows_match_metrics_csv(logged) -> None:
    out, _, _, run = logged
    rows = [h for h in run.history if "test/accuracy" in h]
    csv_rows = _csv(out / "metrics.csv")
    assert [h["epoch"] for h in rows] == [1, 2, 3] == [int(r["epoch"]) for r in csv_rows]
    for h, r in zip(rows, csv_rows, strict=True):
        assert h["test/accuracy"] == pytest.approx(float(r["test_accuracy"]))
        assert h["test/mean_class_accuracy"] == pytest.approx(float(r["test_mean_class_accuracy"]))
        assert h["train/consistency"] == pytest.approx(float(r["train_consistency"])) and h["train/consistency"] > 0
        assert h["train/loss"] == pytest.approx(float(r["train_loss"]))
        assert h["train/ce"] == pytest.approx(float(r["train_ce"]))
        assert h["lr"] == pytest.approx(float(r["lr"])) and h["images_per_s"] > 0
    # media every 2 epochs and at the last: epochs 2 and 3, not 1
    media = {h["epoch"]: h for h in rows}
    assert "test/cams" not in media[1] and "test/confusion" not in media[1]
    for e in (2, 3):
        assert media[e]["test/cams"]["_type"] == "image-file"
        assert media[e]["test/confusion"]["_type"] == "table-file"


def test_media_files_are_written(logged) -> None:
    _, _, path, run = logged
    files = path.parent / "files"
    cams = sorted(files.glob("media/images/test/cams_*.png"))
    assert len(cams) == 2
    from PIL import Image

    w, h = Image.open(cams[-1]).size
    assert (w, h) == (8 * 32, 2 * 32)  # 8 test faces over their CAM overlays, at the input size
    tables = sorted(files.glob("media/table/test/confusion_*.table.json"))
    assert len(tables) == 2
    last = next(h for h in run.history if h.get("epoch") == 3)["test/confusion"]["path"]
    t = json.loads((files / last).read_text())
    assert t["columns"][0] == "truth" and len(t["data"]) == 7
    assert sum(sum(r[1:]) for r in t["data"]) == 28  # every test image counted once


def test_summary_and_model_artifact(logged) -> None:
    out, summary, _, run = logged
    on_disk = json.loads((out / "summary.json").read_text())
    for k in ("final_accuracy", "last5_mean_accuracy", "best_accuracy", "best_epoch", "recipe", "pipeline"):
        assert run.summary[k] == pytest.approx(on_disk[k]) if isinstance(on_disk[k], float) else run.summary[k] == on_disk[k]
    assert run.exit_code == 0
    (art,) = [a for a in run.artifacts if a["type"] == "model"]  # (tables travel as run_table artifacts)
    assert art["type"] == "model" and art["files"] == ["model.pt"]
    assert art["metadata"]["final_accuracy"] == pytest.approx(summary["final_accuracy"])


def test_resume_continues_the_same_wandb_run(synth_rafdb: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(tiny(synth_rafdb, out, epochs=1))
    first_id = json.loads((out / "wandb_run.json").read_text())["id"]
    train(tiny(synth_rafdb, out, epochs=2, resume=True))
    paths = offline_runs(out / "wandb")
    assert len(paths) == 2
    a, b = (read_run(p) for p in paths)
    assert a.run_id == b.run_id == first_id
    assert [h["epoch"] for h in a.history if "test/accuracy" in h] == [1]
    assert [h["epoch"] for h in b.history if "test/accuracy" in h] == [2]
    # a fresh run (--force) is a new W&B run
    train(tiny(synth_rafdb, out, epochs=1, force=True))
    assert json.loads((out / "wandb_run.json").read_text())["id"] != first_id


def test_offline_runs_waits_until_wandb_wrote_the_file(tmp_path: Path, monkeypatch) -> None:
    """The reader must not race wandb's writer: with the run's finish request not yet handled by the service (as on
    a loaded machine), the file still holds the whole run when ``offline_runs`` returns it."""
    import wandb
    from wandb.sdk.lib.service.service_connection import ServiceConnection

    monkeypatch.setattr(ServiceConnection, "inform_finish", lambda self, run_id: None)  # not handled yet
    run = wandb.init(project="p", mode="offline", dir=str(tmp_path), id="flush1", reinit="create_new")
    run.log({"epoch": 1, "x": 0.5})
    run.finish()
    (path,) = offline_runs(tmp_path / "wandb")
    got = read_run(path)
    assert got.run_id == "flush1" and got.exit_code == 0
    assert [h["x"] for h in got.history if "x" in h] == [0.5]


def test_wandb_failure_is_a_warning_and_training_continues(synth_rafdb: Path, tmp_path: Path, monkeypatch,
                                                          caplog) -> None:
    import wandb

    def no_network(*a, **k):
        raise wandb.errors.CommError("could not reach api.wandb.ai")

    monkeypatch.setattr(wandb, "init", no_network)
    with caplog.at_level(logging.WARNING):
        summary = train(tiny(synth_rafdb, tmp_path / "a", epochs=2))
    assert summary["finished"] and len(_csv(tmp_path / "a" / "metrics.csv")) == 2
    warned = [r.getMessage() for r in caplog.records if "W&B logging failed" in r.getMessage()]
    assert len(warned) == 1 and "could not reach" in warned[0] and "training continues" in warned[0]


def test_wandb_failure_mid_run(synth_rafdb: Path, tmp_path: Path, monkeypatch, caplog) -> None:
    """A quota error at epoch 2's log call: one warning, the run finishes, the W&B run is closed as failed."""
    from wandb.sdk.wandb_run import Run

    real_log = Run.log

    def quota(self, data, *a, **k):
        if data.get("epoch") == 2:
            raise RuntimeError("quota exceeded")
        return real_log(self, data, *a, **k)

    monkeypatch.setattr(Run, "log", quota)
    with caplog.at_level(logging.WARNING):
        summary = train(tiny(synth_rafdb, tmp_path / "b", epochs=3))
    assert summary["finished"] and len(_csv(tmp_path / "b" / "metrics.csv")) == 3
    assert sum("W&B logging failed" in r.getMessage() for r in caplog.records) == 1
    (path,) = offline_runs(tmp_path / "b" / "wandb")
    run = read_run(path)
    assert [h["epoch"] for h in run.history if "test/accuracy" in h] == [1]
    assert run.exit_code == 1


def test_only_rank_0_logs(synth_rafdb: Path, tmp_path: Path) -> None:
    import torch

    from eacfer.training.fast.distributed import DistInfo
    from eacfer.training.trainer import _train

    out = tmp_path / "r1"
    cfg = tiny(synth_rafdb, out, epochs=1, pipeline="reference")
    _train(cfg, DistInfo(rank=1, world_size=1, device=torch.device("cpu")))  # a non-zero rank's view of a run
    assert not (out / "wandb").exists() and not (out / "wandb_run.json").exists()


def test_cli_flags_and_missing_extra(synth_rafdb: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import argparse
    import importlib.util

    from eacfer.commands import train as train_cmd

    p = argparse.ArgumentParser()
    sub = p.add_subparsers()
    train_cmd.add_parser(sub)
    args = p.parse_args(["train", "--data", "d", "--backbone", "resnet18", "--out", "o", "--wandb", "proj",
                         "--wandb-entity", "team", "--wandb-name", "n1", "--wandb-mode", "offline",
                         "--wandb-log-model", "--wandb-media-every", "3"])
    cfg = train_cmd.config_from_args(args)
    assert (cfg.wandb, cfg.wandb_entity, cfg.wandb_name, cfg.wandb_mode, cfg.wandb_log_model, cfg.wandb_media_every) == (
        "proj", "team", "n1", "offline", True, 3)
    args = p.parse_args(["train", "--data", "d", "--backbone", "resnet18", "--out", "o", "--wandb", "proj"])
    assert train_cmd.config_from_args(args).wandb_mode is None  # W&B decides: WANDB_MODE, else online (#30)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    rc = main(["train", "--data", str(synth_rafdb), "--backbone", "resnet18", "--out", str(tmp_path / "o"),
               "--wandb", "proj"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "pip install 'eacfer[wandb]'" in err
    assert not (tmp_path / "o").exists()


def test_bench_noisy_one_grouped_run_per_cell(synth_rafdb: Path, tmp_path: Path) -> None:
    out = tmp_path / "grid1"
    assert main(["-q", "bench", "noisy", "--data", str(synth_rafdb), "--backbones", "resnet18", "--methods", "ce",
                 "--noise", "0,0.2", "--epochs", "1", "--image-size", "32", "--batch-size", "16", "--workers", "0",
                 "--device", "cpu", "--no-tensorboard", "--no-plots", "--out", str(out), "--wandb", "grid-proj",
                 "--wandb-mode", "offline"]) == 0
    runs = [read_run(p) for p in offline_runs(out / "runs")]
    assert sorted(r.name for r in runs) == ["resnet18_ce_clean", "resnet18_ce_noise20"]
    assert {r.group for r in runs} == {"grid1"} and {r.project for r in runs} == {"grid-proj"}
    assert len({r.run_id for r in runs}) == 2
    assert sorted(r.config["noise_rate"] for r in runs) == [0.0, 0.2]


def test_wandb_mode_from_the_environment_alone(synth_rafdb: Path, tmp_path: Path, monkeypatch) -> None:
    """``WANDB_MODE=offline`` with no ``--wandb-mode``: the run is logged offline (#30: eacfer passed mode="online",
    which overrode the variable, and with no API key nothing was logged)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    out = tmp_path / "env"
    summary = train(tiny(synth_rafdb, out, epochs=1, wandb_mode=DEFAULT_MODE))
    assert summary["finished"]
    (path,) = offline_runs(out / "wandb")
    run = read_run(path)
    assert [h["epoch"] for h in run.history if "test/accuracy" in h] == [1] and run.exit_code == 0


def test_wandb_variables_win_over_eacfer_defaults(synth_rafdb: Path, tmp_path: Path, monkeypatch) -> None:
    """Where eacfer fills in a value itself (run name, id, job type, folder), a WANDB_* variable wins, as W&B
    documents; the id file records the id W&B used, so --resume continues that run."""
    side = tmp_path / "wandb-dir"
    for var, value in (("WANDB_MODE", "offline"), ("WANDB_NAME", "from-env"), ("WANDB_RUN_ID", "envid123"),
                       ("WANDB_JOB_TYPE", "sweep-train"), ("WANDB_DIR", str(side))):
        monkeypatch.setenv(var, value)
    out = tmp_path / "vars"
    train(tiny(synth_rafdb, out, epochs=1, wandb_mode=DEFAULT_MODE))
    assert not (out / "wandb").exists()  # WANDB_DIR, not RUN_DIR
    (path,) = offline_runs(side / "wandb")
    run = read_run(path)
    assert (run.name, run.run_id, run.job_type) == ("from-env", "envid123", "sweep-train")
    assert json.loads((out / "wandb_run.json").read_text())["id"] == "envid123"


def test_wandb_flags_win_over_variables() -> None:
    """A flag the user gave is passed to ``wandb.init`` (init arguments override W&B's variables); without flags
    nothing eacfer would choose itself hides a set variable."""
    from eacfer.training.wandb_log import init_arguments

    env = {"WANDB_MODE": "online", "WANDB_NAME": "env-name", "WANDB_RUN_GROUP": "env-group"}
    kw = init_arguments(Path("runs/r1"), "id1", {}, project="p", name="flag-name", mode="offline", group="g",
                        environ=env)
    assert (kw["mode"], kw["name"], kw["group"]) == ("offline", "flag-name", "g")
    kw = init_arguments(Path("runs/r1"), "id1", {}, project="p", environ=env)
    assert "mode" not in kw and "name" not in kw and "group" not in kw
    assert (kw["job_type"], kw["dir"], kw["reinit"], kw["id"]) == ("train", "runs/r1", "create_new", "id1")
    assert "resume" not in kw and init_arguments(Path("r"), "i", {}, project="p", resumed=True, environ={})["resume"] == "allow"
    assert "resume" not in init_arguments(Path("r"), "i", {}, project="p", resumed=True, environ={"WANDB_RESUME": "must"})
