"""Synthetic RAF-DB generator: layout, class shape, determinism, expression differences, CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eacfer.commands.cli import main as cli_main
from eacfer.constants import RAFDB_CLASSES
from eacfer.data.labels import parse_label_file
from eacfer.data.synth import RAFDB_TEST_COUNTS, RAFDB_TRAIN_COUNTS, class_counts, generate_rafdb, render_face

SURPRISE, FEAR, DISGUST, HAPPINESS, SADNESS, ANGER, NEUTRAL = range(7)


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def test_layout_counts_and_readme(synth_rafdb):
    lf = parse_label_file(synth_rafdb / "EmoLabel" / "list_patition_label.txt")
    assert lf.problems == []
    train = [e for e in lf.entries if e.name.startswith("train_")]
    test = [e for e in lf.entries if e.name.startswith("test_")]
    assert len(train) == 56 and len(test) == 28
    assert train[0].name == "train_00001.jpg" and train[-1].name == "train_00056.jpg"
    assert test[0].name == "test_0001.jpg" and test[-1].name == "test_0028.jpg"
    assert (
        np.bincount([e.label for e in train], minlength=7).tolist()
        == class_counts(56, RAFDB_TRAIN_COUNTS).tolist()
    )
    assert (
        np.bincount([e.label for e in test], minlength=7).tolist()
        == class_counts(28, RAFDB_TEST_COUNTS).tolist()
    )
    images = sorted((synth_rafdb / "Image" / "aligned").iterdir())
    assert len(images) == 84
    for e in lf.entries[:5]:
        with Image.open(synth_rafdb / "Image" / "aligned" / e.name.replace(".jpg", "_aligned.jpg")) as im:
            assert im.format == "JPEG" and im.size == (48, 48) and im.mode == "RGB"
    readme = (synth_rafdb / "README.txt").read_text()
    assert "SYNTHETIC" in readme and "NOT RAF-DB" in readme


def test_class_counts_shape():
    assert class_counts(12271, RAFDB_TRAIN_COUNTS).tolist() == list(RAFDB_TRAIN_COUNTS)
    assert class_counts(3068, RAFDB_TEST_COUNTS).tolist() == list(RAFDB_TEST_COUNTS)
    c = class_counts(7, RAFDB_TRAIN_COUNTS)
    assert c.tolist() == [1] * 7
    c = class_counts(500, RAFDB_TRAIN_COUNTS)
    assert c.sum() == 500 and c.argmax() == HAPPINESS and c.argmin() == FEAR
    assert class_counts(3, RAFDB_TRAIN_COUNTS).sum() == 3
    assert class_counts(0, RAFDB_TRAIN_COUNTS).sum() == 0


def test_deterministic_by_seed(tmp_path):
    a = generate_rafdb(tmp_path / "a", 14, 7, seed=3, size=32)
    b = generate_rafdb(tmp_path / "b", 14, 7, seed=3, size=32)
    c = generate_rafdb(tmp_path / "c", 14, 7, seed=4, size=32)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)
    # Regenerating a smaller set in place removes the images it no longer lists.
    generate_rafdb(a, 7, 0, seed=3, size=32)
    assert len(list((a / "Image" / "aligned").iterdir())) == 7


def test_noise_files(tmp_path):
    out = generate_rafdb(tmp_path / "n", 40, 10, seed=1, size=32, label_noise_files=True)
    clean = {e.name: e.label for e in parse_label_file(out / "EmoLabel" / "list_patition_label.txt").entries}
    for k, rate in ((1, 0.1), (2, 0.2), (3, 0.3)):
        noisy = parse_label_file(out / "EmoLabel" / f"noise0{k}.txt").entries
        assert len(noisy) == 40 and all(e.name.startswith("train_") for e in noisy)
        assert sum(clean[e.name] != e.label for e in noisy) == round(rate * 40)


def test_refuses_to_overwrite_real_dataset(tmp_path):
    real = tmp_path / "RAF-DB"
    (real / "EmoLabel").mkdir(parents=True)
    (real / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg 1\n")
    with pytest.raises(ValueError, match="not synthetic"):
        generate_rafdb(real, 7, 7, size=32)
    assert (real / "EmoLabel" / "list_patition_label.txt").read_text() == "train_00001.jpg 1\n"
    with pytest.raises(ValueError):
        generate_rafdb(tmp_path / "x", 0, 0)
    with pytest.raises(ValueError):
        generate_rafdb(tmp_path / "x", 7, 0, size=8)


def _diff(label: int, seed: int, size: int = 64) -> np.ndarray:
    """|face with ``label`` - the same person, photo and pose with a neutral face|, grey levels."""
    a = render_face(label, np.random.default_rng(seed), size).astype(np.float32).mean(2)
    b = render_face(NEUTRAL, np.random.default_rng(seed), size).astype(np.float32).mean(2)
    return np.abs(a - b)


def test_expressions_change_the_face_where_real_ones_do():
    # Same identity/pose/background/lighting, only the expression differs: the change must lie inside the
    # face (nothing in the image corners), and each expression must move the parts it moves in real faces.
    lower, upper = {}, {}
    for label in (SURPRISE, HAPPINESS, ANGER, SADNESS):
        lo, up = [], []
        for seed in range(40):
            d = _diff(label, seed)
            assert d[:8, :8].max() < 1e-3 and d[:8, -8:].max() < 1e-3  # corners untouched
            lo.append(d[42:58, 16:48].mean())  # mouth area
            up.append(d[14:36, 10:54].mean())  # brows, eyes and forehead
        lower[label], upper[label] = float(np.mean(lo)), float(np.mean(up))
    assert lower[HAPPINESS] > 1.2 * upper[HAPPINESS]  # a smile is mostly the mouth (plus raised cheeks)
    assert upper[ANGER] > 2 * lower[ANGER]  # anger is mostly lowered, drawn-together brows
    assert lower[SURPRISE] > 3 and upper[SURPRISE] > 6  # open mouth, raised brows and wide eyes
    assert lower[SURPRISE] > 1.5 * lower[SADNESS]  # an O mouth moves more than a frown
    assert upper[SADNESS] > 2 and lower[SADNESS] > 1  # inner brows up, mouth corners down


def test_same_label_faces_vary():
    faces = [render_face(HAPPINESS, np.random.default_rng(s), 48).astype(np.float32) for s in range(6)]
    diffs = [np.abs(faces[i] - faces[j]).mean() for i in range(6) for j in range(i + 1, 6)]
    assert min(diffs) > 10  # identity, pose, background and lighting change a lot between samples


def test_cli_synth(tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli_main(["synth", str(out), "--train", "14", "--test", "7", "--size", "32", "--noise-files"]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "14 train + 7 test" in printed
    assert (out / "EmoLabel" / "noise03.txt").is_file()
    assert len(list((out / "Image" / "aligned").glob("*_aligned.jpg"))) == 21
    file_out = tmp_path / "file"
    file_out.write_text("x")
    assert cli_main(["synth", str(file_out), "--train", "7", "--test", "0"]) == 2
    assert "error" in capsys.readouterr().err
    with pytest.raises(SystemExit) as ei:
        cli_main(["synth", str(out), "--train", "-3"])
    assert ei.value.code == 2
    assert RAFDB_CLASSES[0] == "Surprise"
