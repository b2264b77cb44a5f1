"""Attack cases on ``eacfer predict`` / ``eacfer video`` jobs (issue 29, item 3 of issue 30).

Specification (the attack run's findings): nothing is written outside ``--out`` whatever the input names
(``...mp4`` once wrote into the parent folder); ``--overwrite`` never deletes a file the job did not write;
two jobs into one ``--out`` never run at once (the second is refused in one line naming the holder); the
same file given twice is one input; names that are not UTF-8 are written losslessly and never crash
OpenCV; a ``.txt`` that is not a list of sources is refused before anything is written; hidden temporaries
of a killed or failed run do not survive the next run.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import hostile
from eacfer.commands.cli import main
from eacfer.utils.outdir import child, safe_name, unique_name
from eacfer.utils.runlock import RunFolderLocked
from inference_testutils import make_clip

pytest_plugins = ["inference_fixtures"]

FACE = hostile.FACE


@pytest.fixture(scope="module")
def aligned_predictor(model_pt):
    from eacfer.infer.predictor import Predictor

    with Predictor.from_checkpoint(model_pt, device="cpu", detector="none") as p:
        yield p


@pytest.fixture(scope="module")
def clip(face_rgb, tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", face_rgb, frames=3, size=(96, 72))


def _copy(src: Path, folder: Path, name: bytes) -> str:
    """Copy ``src`` to ``folder/name`` (``name`` as bytes: it may not be UTF-8); returns the path as str."""
    folder.mkdir(parents=True, exist_ok=True)
    dst = os.path.join(os.fsencode(folder), name)
    shutil.copyfile(src, dst)
    return os.fsdecode(dst)


def _index(out: Path) -> list[dict[str, str]]:
    with open(out / "index.csv", newline="", encoding="utf-8", errors="surrogateescape") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------------------------------ names
def test_safe_name_is_one_harmless_component():
    for raw in hostile.HOSTILE_NAMES + (b".", b"a/b", b"a\\b", b"\x00x", b"x" * 400, b"", b".hidden", b"con."):
        s = safe_name(os.fsdecode(raw))
        assert s and s not in (".", "..") and "/" not in s and "\\" not in s, (raw, s)
        assert not s.startswith((".", "-")) and s.isprintable() and len(s.encode()) <= 120, (raw, s)
        s.encode("utf-8")  # no undecodable bytes left
        assert child("out", s) == Path("out") / s
    for bad in ("..", ".", "a/b", "", "-x", "../x"):
        with pytest.raises(ValueError, match="not a single safe file name"):
            child("out", bad)
    used = {"clip"}
    assert [unique_name("clip", used), unique_name("CLIP", used), unique_name("clip", used)] == \
        ["clip_1", "CLIP_2", "clip_3"]


def test_hostile_video_names_never_leave_out(aligned_predictor, clip, tmp_path):
    """``...mp4`` gave the folder ``..`` (deleted the user's annotated.mp4 beside --out, overwrote its
    summary.json, created frames.csv there); ``..mp4`` gave ``.`` (overwrote the job's own summary)."""
    from eacfer.infer.jobs.videos import run_video_job

    vids = tmp_path / "vids"
    paths = [_copy(clip, vids, n) for n in hostile.hostile_file_names(".mp4")]
    base = tmp_path / "base"
    base.mkdir()
    (base / "annotated.mp4").write_bytes(b"the user's own video")
    (base / "summary.json").write_text('{"user": true}')
    out = base / "out"
    listing = vids / "list.txt"
    listing.write_bytes(b"\n".join(os.path.basename(os.fsencode(p)) for p in paths[:3]) + b"\n")
    before = hostile.tree_state(tmp_path, skip=out)
    s = run_video_job(aligned_predictor, [*paths[3:], listing], out, progress=False, write_video=True)
    assert hostile.tree_state(tmp_path, skip=out) == before  # nothing outside --out changed
    assert (s["videos"], s["done"], s["failed"]) == (len(paths), len(paths), 0), s["failures"]
    rows = _index(out)
    folders = [r["folder"] for r in rows]
    assert len(set(f.lower() for f in folders)) == len(paths)  # unique, even on a case-blind file system
    for r in rows:
        assert safe_name(r["folder"]) == r["folder"] and (out / r["folder"] / "frames.csv").is_file(), r
        assert os.path.realpath(out / r["folder"]).startswith(os.path.realpath(out) + os.sep)
    # every source is in the index by its own name (list entries are relative to the list: the same paths)
    assert sorted(os.fsencode(r["source"]) for r in rows) == sorted(os.fsencode(p) for p in paths)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["videos"] == len(paths)  # the job's own summary, not one video's
    # the rerun finds every video done under the same names (index.csv read back byte-exact)
    s2 = run_video_job(aligned_predictor, [*paths[3:], listing], out, progress=False, write_video=True)
    assert (s2["skipped"], s2["frames_this_run"]) == (len(paths), 0)
    assert [r["folder"] for r in _index(out)] == folders


def test_predict_annotated_names_stay_inside(aligned_predictor, tmp_path):
    from eacfer.infer.jobs.photos import predict_paths

    imgs = tmp_path / "imgs"
    files = [_copy(FACE, imgs, n) for n in hostile.hostile_file_names(".jpg")]
    out = tmp_path / "base" / "out"
    out.parent.mkdir()
    (out.parent / "a.jpg").write_bytes(b"the user's own photo beside --out")
    before = hostile.tree_state(tmp_path, skip=out)
    s = predict_paths(aligned_predictor, files, out, save_images=True, progress=False)
    assert hostile.tree_state(tmp_path, skip=out) == before
    assert s["files"] == len(files) and s["errors"] == 0
    written = [p for p in (out / "annotated").rglob("*") if p.is_file()]
    assert len(written) == len(files)
    assert all(safe_name(p.name) == p.name for p in written)


# --------------------------------------------------------------------------------------- --overwrite
def test_overwrite_never_deletes_a_users_file(aligned_predictor, clip, tmp_path):
    """A user's file inside a video's folder survives another job's --overwrite (it was rmtree'd)."""
    from eacfer.infer.jobs.videos import run_video_job

    vids = tmp_path / "vids"
    _copy(clip, vids, b"clip.mp4")
    _copy(clip, vids, b"other.mp4")
    out = tmp_path / "out"
    run_video_job(aligned_predictor, [vids], out, progress=False, write_video=False)
    (out / "clip" / "precious.txt").write_text("mine")
    (out / "notes").mkdir()
    (out / "notes" / "frames.csv").write_text("mine too")  # our output's name, but not in our folder
    s = run_video_job(aligned_predictor, [vids, vids / "clip.mp4"], out, progress=False, write_video=False,
                      overwrite=True, every=2)  # another job (settings differ)
    assert s["done"] == 2
    assert (out / "clip" / "precious.txt").read_text() == "mine"
    assert (out / "notes" / "frames.csv").read_text() == "mine too"
    # the earlier job's outputs in that folder went; the new job did not mix its own into the user's folder
    assert not (out / "clip" / "frames.csv").exists()
    assert {r["folder"] for r in _index(out)} == {"clip_1", "other"}


def test_overwrite_keeps_a_users_file_in_annotated(aligned_predictor, tmp_path):
    from eacfer.infer.jobs.photos import predict_paths

    imgs = tmp_path / "imgs"
    _copy(FACE, imgs, b"a.jpg")
    _copy(FACE, imgs, b"b.jpg")
    out = tmp_path / "out"
    predict_paths(aligned_predictor, [imgs], out, save_images=True, progress=False)
    (out / "annotated" / "precious.jpg").write_bytes(b"mine")
    # the same job resumed (a file gone from the inputs drops its copy), then another job over it
    predict_paths(aligned_predictor, [imgs / "a.jpg"], out, save_images=True, progress=False, overwrite=True)
    assert (out / "annotated" / "precious.jpg").read_bytes() == b"mine"
    assert not (out / "annotated" / "b.jpg").exists() and (out / "annotated" / "a.jpg").is_file()
    predict_paths(aligned_predictor, [imgs], out, save_images=False, progress=False, overwrite=True)
    assert (out / "annotated" / "precious.jpg").read_bytes() == b"mine"
    assert not (out / "annotated" / "a.jpg").exists()


# ------------------------------------------------------------------------------------------- the lock
def test_second_predict_job_refused_while_the_first_runs(aligned_predictor, tmp_path, monkeypatch):
    """Two predict jobs into one --out corrupted each other; the second is now refused at once."""
    from eacfer.infer.jobs import photos as batch

    imgs = tmp_path / "imgs"
    for i in range(4):
        _copy(FACE, imgs, f"f{i}.jpg".encode())
    out = tmp_path / "out"
    real = batch._sequential
    refused: list[str] = []

    def sequential_with_a_second_job(predictor, todo, cam):
        for k, item in enumerate(real(predictor, todo, cam)):
            if k == 1:  # the first job is half-way: a second one starts into the same folder
                with pytest.raises(RunFolderLocked) as e:
                    batch.predict_paths(aligned_predictor, [imgs], out, progress=False)
                refused.append(str(e.value))
            yield item

    monkeypatch.setattr(batch, "_sequential", sequential_with_a_second_job)
    s = batch.predict_paths(aligned_predictor, [imgs], out, progress=False)
    assert refused and f"process {os.getpid()}" in refused[0] and "predict job" in refused[0]
    assert "\n" not in refused[0]
    assert (s["files"], s["processed"]) == (4, 4)
    with open(out / "predictions.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 4
    assert len(json.loads((out / "predictions.json").read_text())["predictions"]) == 4
    assert not (out / ".eacfer.lock").exists()  # released at the end


@pytest.mark.parametrize("many", [False, True])
def test_second_video_job_refused_while_the_first_runs(aligned_predictor, clip, tmp_path, monkeypatch, many):
    from eacfer.infer.jobs import video
    from eacfer.infer.jobs import videos as videojob

    vids = tmp_path / "vids"
    src = [_copy(clip, vids, b"a.mp4")] + ([_copy(clip, vids, b"b.mp4")] if many else [])
    out = tmp_path / "out"
    real = video.run_video
    refused: list[str] = []

    def run_video_with_a_second_job(*a, **k):
        if not refused:
            with pytest.raises(RunFolderLocked) as e:
                videojob.run_video_job(aligned_predictor, src, out, progress=False, write_video=False)
            refused.append(str(e.value))
        return real(*a, **k)

    monkeypatch.setattr(video, "run_video", run_video_with_a_second_job)
    s = videojob.run_video_job(aligned_predictor, src, out, progress=False, write_video=False)
    assert refused and "video job" in refused[0] and str(os.getpid()) in refused[0]
    assert (s["done"] == 2) if many else (s["frames"] == 3)
    assert not (out / ".eacfer.lock").exists()


@pytest.mark.parametrize("command", ["predict", "video"])
def test_cli_refuses_a_locked_out_in_one_line(model_pt, clip, tmp_path, capsys, command):
    out = tmp_path / "out"
    holder = hostile.hold_run_lock(out, what=f"{command} job")
    try:
        src = str(FACE) if command == "predict" else str(clip)
        rc = main([command, src, "--checkpoint", str(model_pt), "--out", str(out), "--detector", "none", "-q"])
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert f"process {holder.pid}" in err[0] and "in use by another eacfer" in err[0]
    assert sorted(p.name for p in out.iterdir()) == [".eacfer.lock"]  # nothing of the job was written


# ----------------------------------------------------------------------------------- inputs and edges
def test_same_file_twice_is_one_input(aligned_predictor, clip, tmp_path):
    from eacfer.infer.jobs.photos import predict_paths
    from eacfer.infer.jobs.videos import expand_sources

    imgs = tmp_path / "d"
    for i in range(3):
        _copy(FACE, imgs, f"f{i}.jpg".encode())
    os.symlink(imgs / "f0.jpg", tmp_path / "link.jpg")
    s = predict_paths(aligned_predictor, [imgs, imgs / "f1.jpg", imgs, tmp_path / "link.jpg"], tmp_path / "out",
                      progress=False)
    assert (s["files"], s["processed"]) == (3, 3)
    with open(tmp_path / "out" / "predictions.csv", newline="") as fh:
        assert sorted(Path(r["file"]).name for r in csv.DictReader(fh)) == ["f0.jpg", "f1.jpg", "f2.jpg"]
    vids = tmp_path / "v"
    a = _copy(clip, vids, b"a.mp4")
    (vids / "list.txt").write_text("a.mp4\n")
    videos, many = expand_sources([vids, a, vids / "list.txt", "0", "0"])
    assert videos == [a, "0"] and many  # first mention's order


def test_names_that_are_not_utf8_are_written_losslessly(aligned_predictor, tmp_path):
    """A name with bytes 0xff 0xfe stopped every run (predictions.csv was never produced)."""
    from eacfer.infer.jobs.photos import predict_paths

    imgs = tmp_path / "imgs"
    bad = _copy(FACE, imgs, b"bad\xff\xfebytes.jpg")
    for i in range(5):
        _copy(FACE, imgs, f"f{i}.jpg".encode())
    out = tmp_path / "out"
    s = predict_paths(aligned_predictor, [imgs], out, progress=False, save_images=True)
    assert (s["files"], s["errors"]) == (6, 0)
    raw = (out / "predictions.csv").read_bytes()
    assert os.fsencode(bad) in raw  # the CSV holds the name's own bytes
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert os.fsencode(bad) in {os.fsencode(r["file"]) for r in rows}  # JSON: \udcXX escapes, valid UTF-8
    json.loads((out / "predictions.json").read_text(encoding="utf-8"))
    s2 = predict_paths(aligned_predictor, [imgs], out, progress=False, save_images=True)  # resume reads it back
    assert (s2["skipped"], s2["processed"]) == (6, 0)


def test_video_with_a_name_that_is_not_utf8(model_pt, clip, tmp_path):
    """``eacfer video`` on such a name died with a segmentation fault inside cv2.VideoCapture."""
    src = _copy(clip, tmp_path, b"bad\xff\xfeclip.mp4")
    other = _copy(clip, tmp_path, b"fine.mp4")
    res = hostile.run_cli_cases([
        ["video", src, "--checkpoint", str(model_pt), "--out", str(tmp_path / "one"), "--detector", "none", "-q"],
        ["video", src, other, "--checkpoint", str(model_pt), "--out", str(tmp_path / "many"), "--detector", "none",
         "-q"],
        ["video", src, "--checkpoint", str(model_pt), "--out", str(tmp_path / "one"), "--detector", "none", "-q"],
    ], tmp_path / "work", timeout=200, jobs=1)
    for rc, _out, err in res:
        assert rc == 0, err[-2000:]
    assert "already done" in res[2][1]  # the message naming the file is printed (its bytes), not a crash
    assert json.loads((tmp_path / "one" / "summary.json").read_text())["frames"] == 3
    rows = _index(tmp_path / "many")
    assert {r["status"] for r in rows} == {"done"} and os.fsencode(src) in {os.fsencode(r["source"]) for r in rows}


def test_text_file_that_is_not_a_list_is_refused_writing_nothing(aligned_predictor, clip, tmp_path, capsys,
                                                                 model_pt):
    notes = tmp_path / "notes.txt"
    notes.write_text("Meeting notes\n\n" + "a very long line of prose " * 40 + "\n")
    out = tmp_path / "out"
    rc = main(["video", str(notes), "--checkpoint", str(model_pt), "--out", str(out), "--detector", "none", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and f"{notes}:1:" in err[0] and "not a video file" in err[0], err
    assert not out.exists()
    # a good list next to it still works: existing files (relative to the list), URLs, camera indices
    shutil.copy(clip, tmp_path / "c.mp4")
    (tmp_path / "ok.txt").write_text("# clips\nc.mp4\n\n")
    from eacfer.infer.jobs.videos import expand_sources

    assert expand_sources([tmp_path / "ok.txt"]) == ([str(tmp_path / "c.mp4")], True)


def test_stale_temporaries_are_removed(aligned_predictor, tmp_path):
    """``.predictions.json.*.tmp`` survived a resume; any of the tool's temporaries go when a job starts."""
    from eacfer.infer.jobs.photos import predict_paths

    imgs = tmp_path / "imgs"
    _copy(FACE, imgs, b"a.jpg")
    out = tmp_path / "out"
    predict_paths(aligned_predictor, [imgs], out, progress=False)
    stale = [".predictions.json.k2j3ab_d.json.tmp", ".annotated.x1y2z3w4.tmp.mp4", ".frames.csv.q9r8s7t6.csv.tmp"]
    for name in stale:
        (out / name).write_bytes(b"left by a killed run")
    for name in (".my-dotfile", ".notes.tmp", ".draft.tmp.txt"):  # hidden files that are not ours stay
        (out / name).write_text("not ours")
    predict_paths(aligned_predictor, [imgs], out, progress=False)
    left = sorted(p.name for p in out.iterdir() if p.name.startswith("."))
    assert left == [".draft.tmp.txt", ".my-dotfile", ".notes.tmp"], left


def test_failed_video_leaves_no_temporary(aligned_predictor, clip, tmp_path, monkeypatch):
    """A disk-full error while writing annotated.mp4 left ``.annotated.*.tmp.mp4`` behind."""
    import errno

    from eacfer.infer.jobs import writers
    from eacfer.infer.jobs.videos import run_video_job

    def disk_full(self, *a, **k):  # the disk fills up while the MP4 is finalised
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writers._OpenCVBackend, "close", disk_full)
    monkeypatch.setattr(writers._PyAVBackend, "close", disk_full)
    out = tmp_path / "out"
    with pytest.raises(OSError):
        run_video_job(aligned_predictor, [clip], out, progress=False, pipeline="sequential")
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    s = run_video_job(aligned_predictor, [clip, clip.parent / "clip.mp4", str(clip)], out / "many",
                      progress=False, force_many=True, pipeline="sequential")
    assert s["failed"] == 1 and "No space left" in s["failures"][0]
    assert not [p for p in (out / "many").rglob(".*") if p.name != ".eacfer.lock"]


def test_disk_full_during_checkpoint_save_is_one_line_and_keeps_the_previous(tmp_path, monkeypatch):
    import errno

    import torch

    from eacfer import checkpoint

    last = tmp_path / "run" / "last.pt"
    checkpoint.save_checkpoint(last, {"epoch": 1, "w": torch.zeros(1000)})
    good = last.read_bytes()
    real_save = torch.save

    for failure in (RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4288 vs 4224"),
                    OSError(errno.ENOSPC, "No space left on device")):
        def full_disk(obj, f, *a, _failure=failure, **k):
            real_save(obj, f, *a, **k)
            with open(f, "r+b") as fh:  # half the file reached the disk
                fh.truncate(os.path.getsize(f) // 2)
            raise _failure

        monkeypatch.setattr(torch, "save", full_disk)
        with pytest.raises(OSError) as e:
            checkpoint.save_checkpoint(last, {"epoch": 2, "w": torch.zeros(3_000_000)})
        msg = str(e.value)
        assert e.value.errno == errno.ENOSPC and "\n" not in msg
        assert msg.startswith(f"{last.parent}: no space left to save last.pt") and "MB needed" in msg, msg
        assert "12 MB needed" in msg or "13 MB needed" in msg, msg  # 3M float32 + the container
        assert "previous last.pt is intact" in msg
        assert last.read_bytes() == good
        assert sorted(p.name for p in last.parent.iterdir()) == ["last.pt"]
    monkeypatch.setattr(torch, "save", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("other failure")))
    with pytest.raises(RuntimeError, match="other failure"):  # not a full disk: not disguised as one
        checkpoint.save_checkpoint(last, {"epoch": 3})


def test_killed_save_temporary_removed_when_the_run_folder_is_locked_again(tmp_path):
    """``.last.pt.*.pt.tmp`` (13.6 MB) survived ``--resume``: taking the run folder's lock clears it."""
    from eacfer.utils.runlock import RunLock

    run = tmp_path / "run"
    run.mkdir()
    (run / ".last.pt.ab12cd34.pt.tmp").write_bytes(b"\0" * 1000)
    (run / "last.pt").write_bytes(b"kept")
    with RunLock(run, what="training run"):
        pass
    assert sorted(p.name for p in run.iterdir()) == ["last.pt"]


def test_lock_holder_in_another_process_is_named(tmp_path):
    out = tmp_path / "out"
    holder = hostile.hold_run_lock(out, what="video job")
    try:
        code = ("import sys; from eacfer.utils.runlock import RunLock\n"
                "try:\n    RunLock(sys.argv[1]).acquire()\nexcept Exception as e:\n    print(e)")
        r = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    finally:
        holder.kill()
        holder.wait()
    assert f"process {holder.pid}" in r.stdout and "video job" in r.stdout, r.stdout + r.stderr


def test_train_on_a_full_disk_is_one_line_and_keeps_last_pt(synth_rafdb, tmp_path, monkeypatch, capsys):
    """``eacfer train`` ended in a torch traceback (``unexpected pos``) when the disk filled during a save."""
    import torch

    real_save = torch.save

    def save(obj, f, *a, **k):
        if isinstance(obj, dict) and obj.get("epoch") == 2:  # epoch 2's last.pt does not fit any more
            real_save(obj, f, *a, **k)
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4288 vs 4224")
        real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save)
    run = tmp_path / "run"
    rc = main(["train", "--data", str(synth_rafdb), "--out", str(run), "--backbone", "mobilenet_v2", "--epochs",
               "2", "--batch-size", "16", "--image-size", "32", "--workers", "0", "--device", "cpu",
               "--no-tensorboard", "--pretrained", "none", "-q"])
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.startswith("eacfer")]
    assert rc == 2 and len(err) == 1, err
    assert f"{run}: no space left to save last.pt" in err[0] and "MB needed" in err[0], err
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 1  # the previous one, intact
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]
