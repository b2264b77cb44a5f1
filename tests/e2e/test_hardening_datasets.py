"""A half-broken RAF-DB copy through ``eacfer train``: skipped with counts by default, stopped with an error
naming file and line under ``--strict``; entries escaping the dataset folder are always refused."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import hostile

TRAIN = ["train", "--backbone", "mobilenet_v2", "--epochs", "1", "--batch-size", "16", "--image-size", "32",
         "--workers", "0", "--device", "cpu", "--no-tensorboard", "--pretrained", "none"]
LABELS = "EmoLabel/list_patition_label.txt"


def _break_dataset(src: Path, dst: Path, secret: Path) -> dict[str, str]:
    """Copy ``src`` to ``dst`` and damage it; returns {what: the label-file line or image name}."""
    shutil.copytree(src, dst)
    img = dst / "Image" / "aligned"
    lines = (dst / LABELS).read_text().splitlines()
    names = [ln.split()[0] for ln in lines]
    train = [n for n in names if n.startswith("train_")]
    (img / train[0].replace(".jpg", "_aligned.jpg")).write_text("not a jpeg\n")   # unreadable
    (img / train[1].replace(".jpg", "_aligned.jpg")).write_bytes(b"")             # zero bytes
    (img / train[2].replace(".jpg", "_aligned.jpg")).unlink()                     # missing
    esc = img / train[3].replace(".jpg", "_aligned.jpg")                          # symlink out of the dataset
    esc.unlink()
    esc.symlink_to(secret)
    bad = {
        "columns": "train_90001.jpg 3 extra",
        "range": "train_90002.jpg 9",
        "zero": "train_90003.jpg 0",
        "duplicate": f"{train[5]} 2",
        "escape": "../../etc/passwd 1",
        "escape2": "..\\..\\secret.jpg 1",
        "notint": "train_90004.jpg happy",
    }
    # CRLF line ends and no final newline, like a label file edited on Windows
    (dst / LABELS).write_bytes("\r\n".join(lines[:10] + list(bad.values()) + lines[10:]).encode())
    return {"unreadable": train[0], "empty": train[1], "missing": train[2], "symlink": train[3], **bad}


@pytest.fixture(scope="module")
def broken(synth_rafdb, tmp_path_factory):
    d = tmp_path_factory.mktemp("broken_ds")
    secret = d / "outside" / "secret.jpg"
    secret.parent.mkdir()
    shutil.copy(hostile.FACE, secret)
    what = _break_dataset(synth_rafdb, d / "data set", secret)
    runs = d / "runs"
    cases = [
        [*TRAIN, "--data", str(d / "data set"), "--out", str(runs / "lenient")],
        [*TRAIN, "--data", str(d / "data set"), "--out", str(runs / "strict"), "--strict"],
    ]
    # strict with only an escaping symlink left: still refused, naming it
    only_escape = d / "escape only"
    shutil.copytree(synth_rafdb, only_escape)
    name = what["symlink"].replace(".jpg", "_aligned.jpg")
    (only_escape / "Image" / "aligned" / name).unlink()
    (only_escape / "Image" / "aligned" / name).symlink_to(secret)
    cases.append([*TRAIN, "--data", str(only_escape), "--out", str(runs / "escape_strict"), "--strict"])
    cases.append([*TRAIN, "--data", str(only_escape), "--out", str(runs / "escape_lenient")])
    model = runs / "lenient" / "model.pt"  # written by the first case, used by the eval cases
    cases.append(["eval", "--data", str(d / "data set"), "--checkpoint", str(model), "--out", str(runs / "ev")])
    cases.append(["eval", "--data", str(d / "data set"), "--checkpoint", str(model), "--out", str(runs / "ev2"),
                  "--strict"])
    res = hostile.run_cli_cases(cases, d / "work", timeout=300, jobs=1)  # the evals use the first run's model
    return what, runs, res, d


def test_eval_lenient_and_strict(broken, synth_rafdb):
    _, runs, res, _ = broken
    rc, out, err = res[4]
    assert rc == 0 and "Traceback" not in err, err[-3000:]
    n_test = sum(1 for ln in (synth_rafdb / LABELS).read_text().splitlines() if ln.startswith("test_"))
    assert json.loads((runs / "ev" / "metrics.json").read_text())["n"] == n_test
    rc, out, err = res[5]
    assert rc == 2 and "Traceback" not in err, err[-3000:]
    assert "list_patition_label.txt:11:" in err.strip().splitlines()[-1]


def test_lenient_run_skips_with_counts(broken):
    what, runs, res, _ = broken
    rc, out, err = res[0]
    assert rc == 0 and "Traceback" not in err, err[-3000:]
    summary = json.loads((runs / "lenient" / "summary.json").read_text())
    # unreadable + empty images are counted, and so are the entries without a usable image
    assert summary["skipped_images"] >= 2
    assert summary.get("skipped_entries", 0) + summary["skipped_images"] >= 2 + 2 + 7, summary
    # each problem was named in the log with its file and line
    for words in ("2 columns", "out of range", "label 0 out of range", "duplicate name", "path separator",
                  "not an integer"):
        assert words in err, words
    assert what["unreadable"].replace(".jpg", "") in err and what["empty"].replace(".jpg", "") in err
    assert "outside the dataset" in err
    used = (runs / "lenient" / "train_labels_used.txt").read_text().split("\n")
    used_names = {ln.split()[0] for ln in used if ln.strip()}
    for key in ("unreadable", "empty", "missing", "symlink"):
        assert what[key] not in used_names, key
    assert not any(".." in n or "/" in n or "\\" in n for n in used_names)


def test_strict_stops_naming_file_and_line(broken):
    what, runs, res, _ = broken
    rc, out, err = res[1]
    assert rc == 2 and "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    # the first problem in file order is the wrong column count on line 11
    assert last.startswith("eacfer train: error:") and "list_patition_label.txt:11:" in last, last
    assert not (runs / "strict" / "model.pt").exists()


def test_escaping_symlink_refused_strict_and_lenient(broken):
    what, runs, res, _ = broken
    rc, out, err = res[2]
    assert rc == 2 and "Traceback" not in err, err[-3000:]
    assert "outside the dataset folder" in err.strip().splitlines()[-1]
    rc, out, err = res[3]
    assert rc == 0, err[-3000:]
    used = (runs / "escape_lenient" / "train_labels_used.txt").read_text()
    assert what["symlink"] not in used


def test_no_file_outside_the_dataset_was_read(broken):
    """The escaping symlink's target is a valid face: had it been read, it would be among the used labels."""
    _, runs, _, d = broken
    assert os.path.islink(d / "escape only" / "Image" / "aligned" / next(
        p.name for p in (d / "escape only" / "Image" / "aligned").iterdir() if p.is_symlink()))
