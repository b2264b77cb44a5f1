"""trainer: run-folder schema, label noise, flip-view choice, refusals, resume compatibility, validation."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import torch
import yaml

from eacfer.checkpoint import load_checkpoint, load_model
from eacfer.data.labels import parse_label_file
from eacfer.training.run_data import build_datasets, labels_are_noisy
from eacfer.training.trainer import METRIC_COLUMNS, TrainConfig, read_metrics_csv, train


def tiny(data, out, **kw):
    base = dict(data=str(data), out=str(out), backbone="resnet18", epochs=2, batch_size=16, image_size=32, lr=1e-3,
                workers=0, device="cpu", progress=False)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory, synth_rafdb):
    """One finished 2-epoch EAC run with 25% injected label noise."""
    out = tmp_path_factory.mktemp("runs") / "noisy"
    summary = train(tiny(synth_rafdb, out, noise_rate=0.25, noise_seed=7))
    return out, summary


def test_run_folder_schema(noisy_run):
    run, summary = noisy_run
    for name in ("config.yaml", "metrics.csv", "last.pt", "model.pt", "summary.json", "train_labels_used.txt"):
        assert (run / name).is_file(), name
    assert any((run / "tb").glob("events.out.tfevents.*"))
    assert not list(run.glob(".*.tmp"))  # atomic writes leave no temporaries

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["flip_view"] == "independent" and cfg["flip_view_requested"] == "auto" and cfg["noisy_labels"]
    assert cfg["format"] == "rafdb" and cfg["train_images"] == 56 and cfg["test_images"] == 28
    assert cfg["labels_changed_by_noise"] == 14
    assert cfg["eacfer_version"] and cfg["torch_version"] == str(torch.__version__)
    for k in ("lr", "weight_decay", "gamma", "lam", "epochs", "batch_size", "image_size", "seed", "backbone", "method"):
        assert k in cfg
    assert len(cfg["class_names"]) == 7

    with open(run / "metrics.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert tuple(header) == METRIC_COLUMNS
    rows = read_metrics_csv(run / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[0]["lr"] == pytest.approx(1e-3) and rows[1]["lr"] == pytest.approx(1e-3 * 0.9)  # ExponentialLR per epoch
    for r in rows:
        assert r["train_loss"] == pytest.approx(r["train_ce"] + 5.0 * r["train_consistency"], rel=1e-6)
        assert 0 <= r["test_accuracy"] <= 1 and 0 <= r["test_mean_class_accuracy"] <= 1 and r["seconds"] > 0

    saved = json.loads((run / "summary.json").read_text())
    assert saved == summary
    accs = [r["test_accuracy"] for r in rows]
    assert saved["final_accuracy"] == accs[-1]
    assert saved["best_accuracy"] == max(accs) and rows[saved["best_epoch"] - 1]["test_accuracy"] == max(accs)
    assert saved["last5_mean_accuracy"] == pytest.approx(sum(accs) / len(accs))
    assert saved["final_mean_class_accuracy"] == rows[-1]["test_mean_class_accuracy"]
    assert saved["skipped_images"] == 0 and saved["epochs"] == 2 and saved["finished"] is True

    net, info = load_model(run / "model.pt")
    assert info.backbone == "resnet18" and info.input_size == 32 and len(info.class_names) == 7
    assert info.face_size == 48  # the synthetic set's images are 48×48: the predictor crops faces at 48
    assert info.train_config["flip_view"] == "independent"
    assert info.metrics["final_accuracy"] == saved["final_accuracy"]
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 7)

    last = load_checkpoint(run / "last.pt")  # weights_only=True: RNG states are plain types
    assert last["epoch"] == 2 and len(last["history"]) == 2
    assert {"torch", "numpy", "python", "cuda", "generators"} <= set(last["rng"])
    assert {"model", "optimizer", "scheduler", "config"} <= set(last)


def test_noise_rate_writes_used_labels(noisy_run, synth_rafdb):
    run, _ = noisy_run
    used = parse_label_file(run / "train_labels_used.txt", strict=True).entries
    clean = {e.name: e.label for e in parse_label_file(synth_rafdb / "EmoLabel" / "list_patition_label.txt").entries
             if e.name.startswith("train_")}
    assert len(used) == 56 and {e.name for e in used} == set(clean)
    changed = [e for e in used if e.label != clean[e.name]]
    assert len(changed) == round(0.25 * 56)


def test_refuses_to_overwrite_a_finished_run(noisy_run, synth_rafdb):
    run, summary = noisy_run
    with pytest.raises(FileExistsError, match="finished run"):
        train(tiny(synth_rafdb, run, noise_rate=0.25, noise_seed=7))
    # --resume on a finished run trains nothing more and reports the same results
    again = train(tiny(synth_rafdb, run, noise_rate=0.25, noise_seed=7, resume=True, tensorboard=False))
    assert again["final_accuracy"] == summary["final_accuracy"] and again["epochs"] == 2


def test_resume_refuses_another_experiment(noisy_run, synth_rafdb, tmp_path):
    run, _ = noisy_run
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(run / "last.pt", other / "last.pt")
    with pytest.raises(FileExistsError, match="unfinished run"):
        train(tiny(synth_rafdb, other, noise_rate=0.25, noise_seed=7))
    with pytest.raises(ValueError, match="different run.*backbone"):
        train(tiny(synth_rafdb, other, backbone="mobilenet_v2", pretrained="none", noise_rate=0.25, noise_seed=7, resume=True))
    with pytest.raises(ValueError, match="different run.*method"):
        train(tiny(synth_rafdb, other, method="ce", noise_rate=0.25, noise_seed=7, resume=True))
    with pytest.raises(ValueError, match="different run.*noise_rate"):
        train(tiny(synth_rafdb, other, resume=True))


def test_ce_baseline_and_force(synth_rafdb, tmp_path):
    out = tmp_path / "ce"
    out.mkdir()
    (out / "notes.txt").write_text("mine")  # unrelated files are kept
    s = train(tiny(synth_rafdb, out, method="ce", epochs=1, tensorboard=False))
    rows = read_metrics_csv(out / "metrics.csv")
    assert rows[0]["train_consistency"] == 0.0 and rows[0]["train_loss"] == rows[0]["train_ce"]
    assert yaml.safe_load((out / "config.yaml").read_text())["flip_view"] == "mirrored"
    s2 = train(tiny(synth_rafdb, out, method="ce", epochs=1, tensorboard=False, force=True))
    assert s2["final_accuracy"] == s["final_accuracy"]  # same seed, same result
    assert (out / "notes.txt").read_text() == "mine"


def test_flip_view_auto(synth_rafdb, tmp_path):
    assert labels_are_noisy("x/EmoLabel/noise02.txt", 0.0)
    assert not labels_are_noisy("x/EmoLabel/list_patition_label.txt", 0.0)
    assert labels_are_noisy(None, 0.1) and not labels_are_noisy(None, 0.0)
    noisy_file = tmp_path / "noise01.txt"
    shutil.copy(synth_rafdb / "EmoLabel" / "list_patition_label.txt", noisy_file)
    assert build_datasets(tiny(synth_rafdb, tmp_path / "r", label_file=str(noisy_file))).flip_view == "independent"
    assert build_datasets(tiny(synth_rafdb, tmp_path / "r")).flip_view == "mirrored"
    assert build_datasets(tiny(synth_rafdb, tmp_path / "r", noise_rate=0.2, flip_view="mirrored")).flip_view == "mirrored"


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"epochs": -1}, "--epochs must be at least 1"),
        ({"batch_size": 0}, "--batch-size must be at least 1"),
        ({"backbone": "vgg"}, "unknown backbone 'vgg'; known backbones: .*resnet50_msceleb"),
        ({"label_file": "EmoLabel/list_patition_label.txt", "noise_rate": 0.2}, "either --label-file or --noise-rate"),
        ({"noise_rate": 1.5}, "--noise-rate must be in"),
        ({"method": "mixup"}, "--method must be one of"),
        ({"flip_view": "sideways"}, "--flip-view must be"),
        ({"lr": 0.0}, "--lr must be a positive"),
        ({"pipeline": "warp"}, "--pipeline must be one of"),
    ],
)
def test_validation_messages(synth_rafdb, tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        tiny(synth_rafdb, tmp_path / "r", **kw).validate()


def test_validation_paths(synth_rafdb, tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        tiny(tmp_path / "missing", tmp_path / "r").validate()
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        tiny(synth_rafdb, tmp_path / "file").validate()


def test_training_batches_do_not_depend_on_the_worker_count(synth_rafdb, tmp_path):
    """Same seed, --workers 0 or 2: the same images with the same augmentation in the same order (each image's
    augmentation is seeded from the loader's generator, not from whichever process loads it)."""
    from eacfer.training.run_data import make_loaders

    def batches(workers: int) -> list[torch.Tensor]:
        cfg = TrainConfig(data=str(synth_rafdb), out=str(tmp_path / f"w{workers}"), backbone="resnet18",
                          image_size=32, batch_size=16, workers=workers, progress=False)
        loader, _ = make_loaders(cfg, build_datasets(cfg), torch.Generator().manual_seed(0))
        out = []
        for _epoch in range(2):  # the second epoch too: a new order and new augmentations
            for b in loader:  # the image views of the batch (EAC: the image and its flip) as one tensor
                out.append(torch.cat(b[0]) if isinstance(b[0], (list, tuple)) else b[0])
        return out

    torch.manual_seed(123)
    before = torch.get_rng_state()
    zero = batches(0)
    assert torch.equal(torch.get_rng_state(), before)  # augmentation left the training step's RNG alone
    two = batches(2)
    assert len(zero) == len(two) == 2 * -(-56 // 16)
    for a, b in zip(zero, two, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(zero[0], zero[len(zero) // 2])  # epochs differ (not one fixed augmentation)


def test_whole_run_does_not_depend_on_the_worker_count(synth_rafdb, tmp_path):
    """The same seeded 2-epoch run with --workers 0 and 2 gives the same per-epoch metrics and the same final
    weights (#30 item 11). mobilenet_v2 has dropout, which draws from the main process's torch RNG: with 0
    workers the augmentation runs in that process too and must leave that RNG alone."""
    from eacfer.checkpoint import load_checkpoint

    runs = {}
    for workers in (0, 2):
        out = tmp_path / f"w{workers}"
        train(tiny(synth_rafdb, out, backbone="mobilenet_v2", pretrained="none", workers=workers))
        rows = read_metrics_csv(out / "metrics.csv")
        runs[workers] = ([{k: r[k] for k in METRIC_COLUMNS if k != "seconds"} for r in rows],
                         load_checkpoint(out / "last.pt")["model"])
    (rows0, weights0), (rows2, weights2) = runs[0], runs[2]
    assert len(rows0) == 2 and rows0 == rows2
    assert weights0.keys() == weights2.keys()
    for name, tensor in weights0.items():
        assert torch.equal(tensor, weights2[name]), name
