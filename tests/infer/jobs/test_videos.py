"""``eacfer video`` over several sources as a resumable job (issue 17) and its output-folder rule (issue 19).

Specification: files, folders of videos and text files listing them; one output folder per video plus an
index CSV; finished videos skipped on rerun; an interrupted video restarts cleanly (its partial outputs
replaced, not appended to); a different job into a non-empty --out is refused unless --overwrite, and another
clip's annotated.mp4 never survives beside a new frames.csv.
"""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path

import pytest

from eacfer.commands.cli import main
from inference_testutils import count_frames, make_clip

pytest_plugins = ["inference_fixtures"]


@pytest.fixture(scope="module")
def clips(face_rgb, tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    (d / "talks" / "day2").mkdir(parents=True)
    a = make_clip(d / "talks" / "a.mp4", face_rgb, frames=6, size=(160, 120))
    b = make_clip(d / "talks" / "day2" / "b.mp4", face_rgb, frames=9, size=(160, 120))
    c = make_clip(d / "c.mp4", face_rgb, frames=7, size=(160, 120))
    (d / "talks" / "notes.txt").write_text("not a video")  # not listed: only video extensions count
    return {"a": a, "b": b, "c": c, "root": d}


@pytest.fixture(scope="module")
def aligned_predictor(model_pt):
    from eacfer.infer.predictor import Predictor

    with Predictor.from_checkpoint(model_pt, device="cpu", detector="none") as p:
        yield p


def _index(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "index.csv", newline="", encoding="utf-8") as fh:
        return {Path(r["source"]).name: r for r in csv.DictReader(fh)}


def _csv_frames(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [r["frame"] for r in csv.DictReader(fh)]


def test_folder_and_list_make_one_folder_per_video_and_an_index(aligned_predictor, clips, tmp_path):
    from eacfer.infer.jobs.videos import run_video_job

    listing = tmp_path / "more.txt"
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(os.urandom(3000))
    listing.write_text(f"# extra clips\n{clips['c']}\n\nbroken.mp4\n")  # relative paths: to the list's folder
    out = tmp_path / "out"
    s = run_video_job(aligned_predictor, [clips["root"] / "talks", listing], out, progress=False,
                      model_file=None, write_video=True)
    assert (s["videos"], s["done"], s["failed"], s["skipped"]) == (4, 3, 1, 0)
    idx = _index(out)
    assert set(idx) == {"a.mp4", "b.mp4", "c.mp4", "broken.mp4"}
    assert idx["broken.mp4"]["status"] == "failed" and "broken.mp4" in idx["broken.mp4"]["error"]
    for name, n in (("a.mp4", 6), ("b.mp4", 9), ("c.mp4", 7)):
        row = idx[name]
        assert row["status"] == "done" and int(row["frames"]) == n
        folder = out / row["folder"]
        assert count_frames(folder / "annotated.mp4") == n and len(_csv_frames(folder / "frames.csv")) == n
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["frames"] == n and summary["backbone"] == "mobilenet_v2" and len(summary["classes"]) == 7
    assert len({r["folder"] for r in idx.values()}) == 4  # one folder each
    # rerun: everything finished is skipped, the broken file is not retried
    s2 = run_video_job(aligned_predictor, [clips["root"] / "talks", listing], out, progress=False, write_video=True)
    assert (s2["skipped"], s2["frames_this_run"], s2["failed"]) == (4, 0, 1)
    s3 = run_video_job(aligned_predictor, [clips["root"] / "talks", listing], out, progress=False, write_video=True,
                       retry_errors=True)
    assert s3["skipped"] == 3 and s3["failed"] == 1
    # a changed video is redone, into the same folder
    os.utime(clips["c"], ns=(1, 10**18))
    s4 = run_video_job(aligned_predictor, [clips["root"] / "talks", listing], out, progress=False, write_video=True)
    assert s4["skipped"] == 3 and s4["frames_this_run"] == 7 and _index(out)["c.mp4"]["folder"] == idx["c.mp4"]["folder"]


def test_interrupted_video_restarts_cleanly(aligned_predictor, clips, tmp_path, monkeypatch):
    """A real SIGINT during the second video stops the job; the rerun skips the first and redoes the second
    from frame 0 (no rows appended to the partial ones)."""
    from eacfer.infer.jobs import video
    from eacfer.infer.jobs import videos as videojob

    real = video.run_video
    calls = []

    def run_video(predictor, source, out_dir, **kw):
        calls.append(source)
        if len(calls) == 2:
            frames = []

            def on_frame(r):
                frames.append(r)
                kw["on_frame"] and kw["on_frame"](r)
                if len(frames) == 4:
                    os.kill(os.getpid(), signal.SIGINT)

            return real(predictor, source, out_dir, **{**kw, "on_frame": on_frame})
        return real(predictor, source, out_dir, **kw)

    monkeypatch.setattr(video, "run_video", run_video)
    out = tmp_path / "out"
    srcs = [clips["a"], clips["b"], clips["c"]]
    s = videojob.run_video_job(aligned_predictor, srcs, out, progress=False, write_video=False)
    assert s["interrupted"] and s["done"] == 1 and s["pending"] == 2
    idx = _index(out)
    assert idx["b.mp4"]["status"] == "interrupted" and 0 < int(idx["b.mp4"]["frames"]) < 9
    assert idx["c.mp4"]["status"] == "pending"
    assert json.loads((out / "job.json").read_text())["status"] == "interrupted"
    monkeypatch.setattr(video, "run_video", real)
    s2 = videojob.run_video_job(aligned_predictor, srcs, out, progress=False, write_video=False)
    assert (s2["skipped"], s2["done"], s2["frames_this_run"]) == (1, 3, 9 + 7)
    b = out / _index(out)["b.mp4"]["folder"]
    assert _csv_frames(b / "frames.csv") == [str(i) for i in range(9)]  # restarted, not appended to
    assert not [p for p in b.iterdir() if p.name.startswith(".")]


def test_single_video_rule(model_pt, clips, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["--checkpoint", str(model_pt), "--detector", "none", "--out", str(out)]
    assert main(["video", str(clips["a"]), *base]) == 0
    assert count_frames(out / "annotated.mp4") == 6
    capsys.readouterr()
    assert main(["video", str(clips["a"]), *base]) == 0  # the same finished job: nothing to do
    assert "already done" in capsys.readouterr().out
    assert main(["video", str(clips["c"]), *base, "--no-video"]) == 2  # another clip: refused
    err = capsys.readouterr().err
    assert "--overwrite" in err and "Traceback" not in err
    assert main(["video", str(clips["c"]), *base, "--no-video", "--overwrite"]) == 0
    assert not (out / "annotated.mp4").exists()  # the other clip's video did not survive beside the new CSV
    assert len(_csv_frames(out / "frames.csv")) == 7
    assert json.loads((out / "summary.json").read_text())["source"].endswith("c.mp4")
    assert json.loads((out / "job.json").read_text())["status"] == "complete"


def test_many_videos_cli(model_pt, clips, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["video", str(clips["a"]), str(clips["c"]), "--checkpoint", str(model_pt), "--detector", "none",
                 "--out", str(out), "--no-video"]) == 0
    text = capsys.readouterr().out
    assert "2 videos: 2 done" in text and "index.csv" in text
    assert sorted(p.name for p in out.iterdir()) == ["a", "c", "index.csv", "job.json", "summary.json"]
