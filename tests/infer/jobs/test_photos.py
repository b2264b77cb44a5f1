"""``eacfer predict`` as a resumable job (issue 17) and the output-folder rule (issue 19).

Specification: each finished file's rows are appended and flushed; rerunning the same job into the same
--out skips files already done (path + size + mtime) and never writes a file's rows twice; a changed file is
redone; a broken file is reported once, not retried unless asked; Ctrl-C leaves complete rows only; a
different job into a non-empty --out is refused unless --overwrite, and stale outputs never survive.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eacfer.commands.cli import main
from inference_testutils import FACE

pytest_plugins = ["inference_fixtures"]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _by_file(rows: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        out.setdefault(os.path.basename(r["file"]), []).append(r)
    return out


def _noise_photos(folder: Path, n: int, size: int = 48, seed: int = 0) -> list[Path]:
    """``n`` different small images (each gets its own probabilities with ``--detector none``)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        p = folder / f"img{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def aligned_predictor(model_pt):
    """Whole image = one face (no detector): fast, and every image gets its own values."""
    from eacfer.infer.predictor import Predictor

    with Predictor.from_checkpoint(model_pt, device="cpu", detector="none") as p:
        yield p


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "EACFER_CACHE_DIR": str(cache), "PYTHONIOENCODING": "utf-8"}


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eacfer", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_sigkill_half_way_then_resume_gives_the_clean_rows(model_pt, inference_cache, tmp_path):
    """A real SIGKILL half-way through, then a rerun: every file exactly once, values as a clean run's."""
    photos = tmp_path / "photos"
    files = _noise_photos(photos, 300)
    env = _env(inference_cache)
    args = ["predict", str(photos), "--checkpoint", str(model_pt), "--detector", "none", "--threads", "1"]
    out = tmp_path / "killed"
    p = subprocess.Popen([sys.executable, "-m", "eacfer", *args, "--out", str(out)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ledger = out / ".files.jsonl.partial"
    deadline = time.monotonic() + 240
    while not (ledger.is_file() and ledger.read_text(encoding="utf-8").count("\n") >= 60):
        assert p.poll() is None, "finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    done_before = ledger.read_text(encoding="utf-8").count("\n")
    assert done_before < len(files), "the kill came too late to test a resume"
    assert not (out / "predictions.csv").exists()  # never a half-written result under the final name
    r = _cli([*args, "--out", str(out)], env)
    assert r.returncode == 0, r.stderr
    assert "already done in an earlier run" in r.stdout
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["skipped"] >= done_before - 1 and summary["skipped"] + summary["processed"] == len(files)
    clean = tmp_path / "clean"
    r2 = _cli([*args, "--out", str(clean)], env)
    assert r2.returncode == 0, r2.stderr
    got, ref = _read_csv(out / "predictions.csv"), _read_csv(clean / "predictions.csv")
    assert Counter(r["file"] for r in got) == Counter(str(f) for f in files)  # each file exactly once
    assert sorted(got, key=lambda r: r["file"]) == sorted(ref, key=lambda r: r["file"])  # the same values
    jl = [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(jl) == len(files) and {d["file"] for d in jl} == {str(f) for f in files}
    full = json.loads((out / "predictions.json").read_text(encoding="utf-8"))
    assert len(full["predictions"]) == len(files) and full["summary"]["files"] == len(files)
    assert not [q for q in out.iterdir() if q.name.startswith(".")]  # no in-progress files left


def test_modified_file_redone_removed_file_dropped(aligned_predictor, tmp_path):
    from eacfer.infer.jobs.photos import predict_paths

    photos = tmp_path / "photos"
    files = _noise_photos(photos, 5)
    out = tmp_path / "out"
    s1 = predict_paths(aligned_predictor, [photos], out, save_images=True, progress=False)
    assert s1["processed"] == 5 and s1["skipped"] == 0
    before = _by_file(_read_csv(out / "predictions.csv"))
    # modify one file (new content, size and mtime), delete another, add a new one
    Image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(files[1])
    os.utime(files[1], ns=(time.time_ns(), time.time_ns() + 10**9))
    files[4].unlink()
    _noise_photos(tmp_path / "more", 1, seed=9)[0].rename(photos / "new.png")
    s2 = predict_paths(aligned_predictor, [photos], out, save_images=True, progress=False)
    assert s2["skipped"] == 3 and s2["processed"] == 2 and s2["files"] == 5
    after = _by_file(_read_csv(out / "predictions.csv"))
    assert set(after) == {"img0000.png", "img0001.png", "img0002.png", "img0003.png", "new.png"}
    assert all(len(v) == 1 for v in after.values())
    assert after["img0000.png"] == before["img0000.png"]  # untouched file: same row
    assert after["img0001.png"][0]["p_Happiness"] != before["img0001.png"][0]["p_Happiness"]  # redone
    annotated = sorted(p.name for p in (out / "annotated").iterdir())
    assert annotated == ["img0000.jpg", "img0001.jpg", "img0002.jpg", "img0003.jpg", "new.jpg"]  # no stale copy


def test_broken_file_reported_once_not_retried_unless_asked(aligned_predictor, tmp_path):
    from eacfer.infer.jobs.photos import predict_paths

    photos = tmp_path / "photos"
    _noise_photos(photos, 2)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "out"
    s1 = predict_paths(aligned_predictor, [photos], out, progress=False)
    assert s1["errors"] == 1 and s1["processed"] == 3
    s2 = predict_paths(aligned_predictor, [photos], out, progress=False)
    assert s2["errors"] == 1 and s2["processed"] == 0 and s2["skipped"] == 3  # not tried again
    rows = _by_file(_read_csv(out / "predictions.csv"))
    assert len(rows["broken.jpg"]) == 1 and rows["broken.jpg"][0]["error"]
    s3 = predict_paths(aligned_predictor, [photos], out, progress=False, retry_errors=True)
    assert s3["processed"] == 1 and s3["errors"] == 1  # asked: tried again (still broken)
    assert len(_by_file(_read_csv(out / "predictions.csv"))["broken.jpg"]) == 1
    _noise_photos(tmp_path / "fix", 1, seed=3)[0].replace(photos / "broken.jpg")  # fixed: a changed file
    s4 = predict_paths(aligned_predictor, [photos], out, progress=False)
    assert s4["processed"] == 1 and s4["errors"] == 0 and s4["images"] == 3


def test_ctrl_c_keeps_complete_rows_and_the_rerun_finishes(aligned_predictor, tmp_path, monkeypatch):
    """A real SIGINT while file 3's rows are written: 3 complete files; the rerun adds exactly the rest."""
    from eacfer.infer.jobs import photos as batch

    photos = tmp_path / "photos"
    files = _noise_photos(photos, 7)
    calls = []
    real_row = batch._row

    def row(file, *a, **kw):
        calls.append(file)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real_row(file, *a, **kw)

    monkeypatch.setattr(batch, "_row", row)
    out = tmp_path / "out"
    s = batch.predict_paths(aligned_predictor, [photos], out, progress=False)
    assert s["interrupted"] and s["files"] == 3
    rows = _read_csv(out / "predictions.csv")
    assert len(rows) == 3 and all(r["emotion"] and r["p_Neutral"] for r in rows)  # whole rows only
    assert json.loads((out / "job.json").read_text())["status"] == "interrupted"
    monkeypatch.setattr(batch, "_row", real_row)
    s2 = batch.predict_paths(aligned_predictor, [photos], out, progress=False)
    assert s2["skipped"] == 3 and s2["processed"] == 4 and not s2["interrupted"]
    assert Counter(r["file"] for r in _read_csv(out / "predictions.csv")) == Counter(str(f) for f in files)


def test_throughput_mode_gives_the_same_rows(predictor, face_rgb, tmp_path):
    """Worker processes + batched classification: the rows of the one-process path (MediaPipe faces)."""
    from eacfer.infer.jobs.photos import predict_paths
    from inference_testutils import compose_faces

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(face_rgb).save(photos / "one.jpg")
    Image.fromarray(compose_faces(face_rgb, 3)).save(photos / "three.jpg")
    Image.fromarray(np.full((80, 120, 3), 90, np.uint8)).save(photos / "none.png")
    (photos / "bad.jpg").write_text("not an image")
    a = predict_paths(predictor, [photos], tmp_path / "seq", progress=False)
    b = predict_paths(predictor, [photos], tmp_path / "pool", progress=False, workers=2, batch_size=4)
    for k in ("files", "images", "faces", "no_face", "errors"):
        assert a[k] == b[k], k
    assert b["faces"] == 4 and b["workers"] == 2 and b["images_per_s"] > 0
    assert {"decode", "detect", "align", "classify"} <= set(b["stage_ms"])
    ra, rb = _read_csv(tmp_path / "seq" / "predictions.csv"), _read_csv(tmp_path / "pool" / "predictions.csv")
    assert [(r["file"], r["face"], r["emotion"], r["x"], r["error"]) for r in ra] == \
        [(r["file"], r["face"], r["emotion"], r["x"], r["error"]) for r in rb]
    for x, y in zip(ra, rb, strict=True):
        for c in x:
            if c.startswith("p_") and x[c]:
                assert abs(float(x[c]) - float(y[c])) < 2e-4, (c, x[c], y[c])


# -- the output-folder rule ------------------------------------------------------------------------------
def test_other_job_refused_and_overwrite_replaces_the_whole_set(model_pt, tmp_path, capsys):
    photos_a, photos_b = tmp_path / "a", tmp_path / "b"
    _noise_photos(photos_a, 3)
    _noise_photos(photos_b, 1, seed=5)
    out = tmp_path / "out"
    base = ["--checkpoint", str(model_pt), "--detector", "none", "--out", str(out)]
    assert main(["predict", str(photos_a), *base, "--save-images"]) == 0
    capsys.readouterr()
    assert main(["predict", str(photos_b), *base]) == 2  # a different job: refused, nothing touched
    err = capsys.readouterr().err
    assert "--overwrite" in err and str(out) in err and "Traceback" not in err
    assert len(_read_csv(out / "predictions.csv")) == 3 and len(list((out / "annotated").iterdir())) == 3
    assert main(["predict", str(photos_b), *base, "--overwrite"]) == 0
    rows = _read_csv(out / "predictions.csv")
    assert [os.path.basename(r["file"]) for r in rows] == ["img0000.png"] and str(photos_b) in rows[0]["file"]
    assert not (out / "annotated").exists()  # the earlier job's annotated copies did not survive
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["files.jsonl", "job.json", "predictions.csv", "predictions.json", "predictions.jsonl", "summary.json"])
    assert main(["predict", str(photos_b), *base, "--resume"]) == 0  # the same job: resumes (nothing to do)
    assert "1 files already done" in capsys.readouterr().out
    (tmp_path / "stranger").mkdir()
    (tmp_path / "stranger" / "notes.txt").write_text("mine")
    assert main(["predict", str(photos_b), *base[:-1], str(tmp_path / "stranger")]) == 2  # unknown files
    assert "not empty" in capsys.readouterr().err
    assert main(["predict", str(photos_b), *base[:-1], str(tmp_path / "fresh"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_summary_records_the_model_and_detector(model_pt, tmp_path):
    from eacfer.commands.cli import main as cli
    from eacfer.utils.outdir import file_sha256

    out = tmp_path / "o"
    assert cli(["predict", str(FACE), "--checkpoint", str(model_pt), "--out", str(out),
                "--score-threshold", "0.55", "--small-face", "40"]) == 0
    for doc in (json.loads((out / "summary.json").read_text()),
                json.loads((out / "predictions.json").read_text())["summary"]):
        # the same model entry as video summaries (one builder: Predictor.model_record)
        assert doc["model"]["name"] == "model.pt" and doc["model"]["sha256"] == file_sha256(model_pt)
        assert doc["model"]["backbone"] == "mobilenet_v2" and doc["model"]["precision"] == "fp32"
        assert doc["backbone"] == "mobilenet_v2" and doc["classes"][0] == "Surprise" and len(doc["classes"]) == 7
        assert doc["detector"]["name"] == "mediapipe" and doc["detector"]["score_threshold"] == 0.55
        assert doc["detector"]["small_face"] == 40
        assert doc["files"] == 1 and doc["faces"] == 1 and doc["images_per_s"] > 0


def test_videos_are_pointed_to_eacfer_video_and_counted_in_folders(model_pt, tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    base = ["--checkpoint", str(model_pt), "--detector", "none"]
    assert main(["predict", str(clip), *base, "--out", str(tmp_path / "o1")]) == 2
    err = capsys.readouterr().err
    assert "clip.mp4" in err and "eacfer video" in err and "Traceback" not in err
    folder = tmp_path / "mixed"
    _noise_photos(folder, 1)
    (folder / "sub").mkdir()
    clip.rename(folder / "sub" / "talk.MOV")
    assert main(["predict", str(folder), *base, "--out", str(tmp_path / "o2")]) == 0
    out = capsys.readouterr().out
    assert "1 video files" in out and "talk.MOV" in out and "eacfer video" in out
    assert json.loads((tmp_path / "o2" / "summary.json").read_text())["videos_ignored"] == 1
