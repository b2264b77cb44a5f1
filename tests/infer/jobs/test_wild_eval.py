"""Evaluation through the detector on generated RAF-DB originals (#28): the generator writes RAF-DB's formats,
the report finds every placed face, pairs it with its annotated box and label, and compares with the aligned crops."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from eacfer.data.formats.rafdb import original_files, read_boundingbox, read_manual_landmarks


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    from eacfer.data.synth import generate_rafdb

    return generate_rafdb(tmp_path_factory.mktemp("orig") / "RAF", n_train=7, n_test=14, seed=1, size=64,
                          originals=True)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from inference_testutils import save_random_model

    return save_random_model(tmp_path_factory.mktemp("m") / "m.pt", size=32)


def test_generated_originals_use_rafdb_formats_and_keep_the_aligned_images(originals, tmp_path):
    from eacfer.data.synth import generate_rafdb

    box_file = originals / "Annotation" / "boundingbox" / "test_0001_boundingbox.txt"
    manual = originals / "Annotation" / "manual" / "test_0001_manu_attri.txt"
    assert len(box_file.read_text().split()) == 4
    lines = manual.read_text().splitlines()
    assert len(lines) == 8 and all(len(ln.split("\t")) == 2 for ln in lines[:5])
    assert all(ln.isdigit() for ln in lines[5:])  # gender, race, age codes
    x1, y1, x2, y2 = read_boundingbox(box_file)
    lm = read_manual_landmarks(manual)
    assert ((lm[:, 0] > x1) & (lm[:, 0] < x2) & (lm[:, 1] > y1) & (lm[:, 1] < y2)).all()
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0] and lm[2, 1] > lm[0, 1]  # eyes, nose, mouth in order
    plain = generate_rafdb(tmp_path / "plain", n_train=7, n_test=14, seed=1, size=64)
    for p in (plain / "Image" / "aligned").iterdir():
        assert p.read_bytes() == (originals / "Image" / "aligned" / p.name).read_bytes()
    assert not (plain / "Image" / "original").exists()


def test_through_detector_finds_every_placed_face_and_pairs_it_with_its_label(originals, model, tmp_path):
    from eacfer.data.datasets import load_split
    from eacfer.infer.jobs.wild_eval import evaluate_through_detector
    from eacfer.infer.predictor import Predictor

    r = evaluate_through_detector(model, originals, out_dir=tmp_path / "w", backend="torch", progress=False)
    assert r["originals"] == r["photos"] == 14 and r["faces_found"] == 14 and r["problems"] == 0
    with open(tmp_path / "w" / "through_detector.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    test = load_split(originals, "test")
    truth = {s.name: test.class_names[s.label] for s in test.samples}
    assert {r_["file"]: r_["truth"] for r_ in rows} == truth
    assert all(float(r_["best_iou"]) >= 0.5 for r_ in rows)
    # the aligned column is the classifier on the official aligned crop, the own column on eacfer's crop
    p = Predictor.from_checkpoint(model, detector="none", backend="torch")
    s = test.samples[0]
    assert rows[0]["aligned_prediction"] == p.predict(s.path).faces[0].emotion
    own = sum(r_["own_prediction"] == r_["truth"] for r_ in rows) / 14
    aligned = sum(r_["aligned_prediction"] == r_["truth"] for r_ in rows) / 14
    assert r["accuracy_own_crops"] == pytest.approx(own, abs=1e-4)
    assert r["gap"] == pytest.approx(aligned - own, abs=1e-4)
    assert json.loads((tmp_path / "w" / "through_detector.json").read_text())["faces_found"] == 14
    # both framings measured on the same detections; the predictor's own (box) is one of them
    assert all(r_["own_prediction"] == r_["prediction_box"] for r_ in rows)
    f = r["framing"]
    assert f["box"]["pixel_error"] == pytest.approx(np.mean([float(r_["pixel_error_box"]) for r_ in rows]), abs=1e-2)
    # eyes and mouth onto the template that made the aligned crops: closer to them than the box framing
    assert f["landmarks"]["pixel_error"] < f["box"]["pixel_error"]


def test_through_detector_with_landmark_alignment(originals, model, tmp_path):
    from eacfer.infer.jobs.wild_eval import evaluate_through_detector

    r = evaluate_through_detector(model, originals, out_dir=tmp_path / "w", backend="torch", progress=False,
                                  align="landmarks")
    rows = list(csv.DictReader(open(tmp_path / "w" / "through_detector.csv", newline="")))
    assert r["faces_found"] == 14 and all(r_["own_prediction"] == r_["prediction_landmarks"] for r_ in rows)


def test_a_face_away_from_its_annotated_box_is_not_found(originals, model, tmp_path):
    from eacfer.infer.jobs.wild_eval import evaluate_through_detector

    data = tmp_path / "RAF"
    shutil.copytree(originals, data)
    _, box_file, _ = original_files(data, "test_0003.jpg")
    x1, y1, x2, y2 = read_boundingbox(box_file)
    box_file.write_text(f"{x1 + 3 * (x2 - x1):.2f} {y1:.2f} {x2 + 3 * (x2 - x1):.2f} {y2:.2f}\n")  # far off
    (data / "Image" / "original" / "test_0005.jpg").unlink()
    r = evaluate_through_detector(model, data, out_dir=tmp_path / "w", backend="torch", progress=False)
    assert r["problems"] == 1 and r["originals"] == 13 and r["faces_found"] == 12
    rows = {r_["file"]: r_ for r_ in csv.DictReader(open(tmp_path / "w" / "through_detector.csv", newline=""))}
    assert rows["test_0003.jpg"]["found"] == "False" and "no original" in rows["test_0005.jpg"]["problem"]


def test_a_folder_tree_of_uncropped_photos(originals, model, tmp_path):
    from eacfer.data.datasets import load_split
    from eacfer.infer.jobs.wild_eval import evaluate_through_detector

    test = load_split(originals, "test")
    for split in ("train", "test"):
        for s in test.samples[:6]:
            d = tmp_path / "photos" / split / test.class_names[s.label]
            d.mkdir(parents=True, exist_ok=True)
            shutil.copy(original_files(originals, s.name)[0], d / s.name)
    r = evaluate_through_detector(model, tmp_path / "photos", backend="torch", progress=False)
    assert r["faces_found"] == r["originals"] == 6
    assert r["accuracy_aligned_crops"] is None and r["accuracy_end_to_end"] == r["accuracy_own_crops"]


def test_bad_box_file_is_one_line_naming_it(tmp_path):
    p = tmp_path / "x_boundingbox.txt"
    p.write_text("1 2 three 4\n")
    with pytest.raises(ValueError, match="x_boundingbox.txt: expected a face box"):
        read_boundingbox(p)
    (tmp_path / "m.txt").write_text("1\t2\n3\t4\n")
    with pytest.raises(ValueError, match="m.txt: expected five landmark lines"):
        read_manual_landmarks(tmp_path / "m.txt")
    assert np.isfinite(read_boundingbox(_write(tmp_path / "ok.txt", "1 2 30 40\n"))).all()


def _write(p, text):
    p.write_text(text)
    return p
