"""AffectNet as distributed: 11 expression codes (AffectNet-7/-8, dropped rows counted), face crops from the box
with the inference margin convention, the crop cache and its resume, and bad rows as counted skips."""

from __future__ import annotations

import numpy as np
import pytest

from dataset_makers import AFFECTNET_HEADER, make_affectnet, write_csv
from eacfer.data import facecrops
from eacfer.data.facecrops import CropJob, cache_crops, crop_face
from eacfer.data.formats import detect_format, load_split

BOX = (20, 10, 40, 50)
TRAIN = [
    ("0/neutral.jpg", *BOX, 0),
    ("1/happy.png", *BOX, 1),
    ("2/sad.jpg", *BOX, 2),
    ("7/contempt.jpg", *BOX, 7),
    ("8/none.jpg", *BOX, 8),
    ("9/uncertain.jpg", *BOX, 9),
    ("10/noface.jpg", *BOX, 10),
    ("3/missing.jpg", *BOX, 3),             # image not on disk
    ("4/outside.jpg", 500, 500, 30, 30, 4),  # box entirely outside the 100x80 image
    ("../../escape.jpg", *BOX, 5),          # leaves the dataset folder
    ("5/badbox.jpg", "x", 1, 2, 3, 5),      # malformed box
    ("6/badcode.jpg", *BOX, 11),            # no such expression code
]
VAL = [("6/anger.jpg", *BOX, 6), ("1/happy2.jpg", *BOX, 1), ("9/uncertain2.jpg", *BOX, 9)]
ON_DISK = ["0/neutral.jpg", "1/happy.png", "2/sad.jpg", "7/contempt.jpg", "8/none.jpg", "9/uncertain.jpg",
           "10/noface.jpg", "4/outside.jpg", "5/badbox.jpg", "6/badcode.jpg", "6/anger.jpg", "1/happy2.jpg",
           "9/uncertain2.jpg"]


@pytest.fixture()
def affectnet(tmp_path):
    root = make_affectnet(tmp_path / "AffectNet", TRAIN, VAL, images={p: (100, 80) for p in ON_DISK})
    (tmp_path / "escape.jpg").write_bytes((root / "Manually_Annotated_Images" / "0" / "neutral.jpg").read_bytes())
    return root


def test_codes_classes_drops_and_problems(affectnet, tmp_path):
    assert detect_format(affectnet) == "affectnet"
    train = load_split(affectnet, "train", cache_dir=tmp_path / "cache")
    assert train.class_names == ["Neutral", "Happiness", "Sadness", "Surprise", "Fear", "Disgust", "Anger", "Contempt"]
    assert [s.name for s in train.samples] == ["0/neutral.jpg", "1/happy.png", "2/sad.jpg", "7/contempt.jpg"]
    assert train.labels().tolist() == [0, 1, 2, 7]
    assert train.stats["dropped"] == {"No-Face": 1, "None": 1, "Uncertain": 1}
    problems = "\n".join(train.problems)
    assert len(train.problems) == 5, problems
    for words in ("image not found", "lies outside the 100x80 image", "outside the dataset folder",
                  "face box is not four numbers", "expression must be 0..10"):
        assert words in problems, words
    assert all("training.csv:" in p for p in train.problems)
    # every kept sample reads its crop from the cache, never the full image
    assert all(s.path.is_relative_to(tmp_path / "cache") and s.path.is_file() for s in train.samples)
    seven = load_split(affectnet, "train", classes=7, cache_dir=tmp_path / "cache")
    assert seven.labels().tolist() == [0, 1, 2] and seven.stats["dropped"]["Contempt"] == 1
    assert len(seven.class_names) == 7


def test_validation_csv_is_the_test_split(affectnet, tmp_path):
    test = load_split(affectnet, "test", cache_dir=tmp_path / "c")
    assert [s.name for s in test.samples] == ["6/anger.jpg", "1/happy2.jpg"] and test.labels().tolist() == [6, 1]
    assert test.stats["dropped"] == {"Uncertain": 1}
    assert [s.name for s in load_split(affectnet, "validation", cache_dir=tmp_path / "c").samples] == \
        [s.name for s in test.samples]


def test_crop_is_the_box_with_ten_percent_margin(affectnet, tmp_path):
    split = load_split(affectnet, "train", cache_dir=tmp_path / "cache")
    from eacfer.data.imageio import load_image

    crop = load_image(split.samples[0].path).astype(int)
    assert crop.shape == (224, 224, 3)
    # box 40x50 → square side 50 * 1.2 = 60 centred on the box: the box spans 40/60 of the width, 50/60 of
    # the height, so the centre is box colour and the corners are background
    np.testing.assert_allclose(crop[112, 112], (200, 120, 40), atol=12)
    np.testing.assert_allclose(crop[3, 3], (30, 30, 30), atol=12)
    inner_w = int(224 * 40 / 60)
    assert abs(crop[112, 112 - inner_w // 2 + 6, 0] - 200) < 15 and abs(crop[112, 112 - inner_w // 2 - 8, 0] - 30) < 15


def test_crop_matches_the_inference_convention():
    from eacfer.infer.align import DEFAULT_MARGIN, align_face
    from eacfer.infer.detect.base import Detection

    assert facecrops.DEFAULT_MARGIN == DEFAULT_MARGIN
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(128, 40, (30, 40, 3)), 0, 255).astype(np.uint8)
    import cv2

    img = cv2.resize(img, (400, 300), interpolation=cv2.INTER_CUBIC)  # smooth content: sampling details agree
    for box in ((100, 60, 120, 150), (-30, 200, 120, 120)):  # inside, and half outside (padded black, as inference pads)
        ours = crop_face(img, box, size=112).astype(float)
        ref = align_face(img, Detection(box, 1.0), size=112).astype(float)
        assert np.abs(ours - ref).mean() < 4.0, box


def test_crop_face_errors():
    img = np.zeros((50, 60, 3), np.uint8)
    with pytest.raises(ValueError, match="outside the 60x50 image"):
        crop_face(img, (70, 0, 10, 10), 32)
    with pytest.raises(ValueError, match="empty face box"):
        crop_face(img, (1, 1, 0, 5), 32)


def _jobs(root, tmp, n=8):
    from PIL import Image

    jobs = []
    for i in range(n):
        src = root / f"img{i}.png"
        Image.fromarray(np.full((40, 50, 3), (10 * i) % 256, np.uint8)).save(src)
        jobs.append(CropJob(src, (5.0, 5.0, 20.0, 25.0), tmp / f"sub/img{i}.jpg"))
    return jobs


def test_cache_resumes_after_an_interrupted_pass(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    jobs = _jobs(src, tmp_path / "cache")
    calls = []

    def dying_writer(job, size, margin):
        if len(calls) == 3:
            raise KeyboardInterrupt  # the pass is killed after 3 crops
        calls.append(job.source.name)
        return facecrops._write_crop(job, size, margin)

    with pytest.raises(KeyboardInterrupt):
        cache_crops(jobs, size=32, progress=False, workers=1, write=dying_writer)
    done = sorted(p.name for p in (tmp_path / "cache" / "sub").iterdir())
    assert done == ["img0.jpg", "img1.jpg", "img2.jpg"]
    # a partial file of a killed writer never counts as a crop
    (tmp_path / "cache" / "sub" / ".img3.jpg.999.tmp").write_bytes(b"\xff\xd8 half")
    calls.clear()

    def counting_writer(job, size, margin):
        calls.append(job.source.name)
        return facecrops._write_crop(job, size, margin)

    assert cache_crops(jobs, size=32, progress=False, workers=1, write=counting_writer) == {}
    assert calls == [f"img{i}.png" for i in range(3, 8)]  # only the missing ones
    # identical to an uninterrupted pass
    fresh = [CropJob(j.source, j.box, tmp_path / "fresh" / j.target.name) for j in jobs]
    cache_crops(fresh, size=32, progress=False, workers=1)
    for a, b in zip(jobs, fresh, strict=True):
        assert a.target.read_bytes() == b.target.read_bytes()
    calls.clear()
    cache_crops(jobs, size=32, progress=False, write=counting_writer)
    assert calls == []  # a complete cache is not touched


def test_second_load_reads_only_the_cache(affectnet, tmp_path, monkeypatch):
    first = load_split(affectnet, "train", cache_dir=tmp_path / "cache")

    def no_cropping(*a, **k):
        raise AssertionError("cropped again")

    # the failed rows (box outside the image) are the only ones retried
    monkeypatch.setattr(facecrops, "_write_crop", lambda job, s, m: "still outside" if "outside" in str(job.source)
                        else no_cropping())
    again = load_split(affectnet, "train", cache_dir=tmp_path / "cache")
    assert [s.path for s in again.samples] == [s.path for s in first.samples]


def test_missing_column_is_one_line_error(tmp_path):
    root = make_affectnet(tmp_path / "A", [("0/a.jpg", *BOX, 0)], [])
    write_csv(root / "Manually_Annotated_file_lists" / "training.csv",
              [c for c in AFFECTNET_HEADER if c != "face_width"], [["0/a.jpg", 1, 1, 1, "", 0, 0, 0]])
    with pytest.raises(ValueError, match=r"training.csv: missing column\(s\) face_width") as e:
        load_split(root, "train", cache_dir=tmp_path / "c")
    assert "\n" not in str(e.value)


def test_cache_survives_a_real_kill(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    src = tmp_path / "src"
    src.mkdir()
    jobs = _jobs(src, tmp_path / "cache", n=120)
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from eacfer.data import facecrops
        jobs = [facecrops.CropJob(Path({str(src)!r}) / f"img{{i}}.png", (5.0, 5.0, 20.0, 25.0),
                                  Path({str(tmp_path / "cache")!r}) / f"sub/img{{i}}.jpg") for i in range(120)]
        def slow(job, size, margin):
            time.sleep(0.05)
            return facecrops._write_crop(job, size, margin)
        facecrops.cache_crops(jobs, size=32, progress=False, workers=1, write=slow)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy())
    sub = tmp_path / "cache" / "sub"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not sub.is_dir() or len(list(sub.glob("*.jpg"))) < 5):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done = sorted(sub.glob("*.jpg"))
    assert 5 <= len(done) < 120, len(done)
    from eacfer.data.imageio import load_image

    assert all(load_image(p).shape == (32, 32, 3) for p in done)  # every visible crop is whole
    calls = []

    def counting(job, size, margin):
        calls.append(job)
        return facecrops._write_crop(job, size, margin)

    assert cache_crops(jobs, size=32, progress=False, workers=1, write=counting) == {}
    assert len(calls) == 120 - len(done) and all(j.target.is_file() for j in jobs)
