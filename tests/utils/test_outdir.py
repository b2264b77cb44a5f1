"""``utils/outdir.py``: output names and the output-folder rule, unit by unit.

Written from the module's docstrings: :func:`safe_name` makes one safe path component (unsafe characters → ``_``,
leading dots and dashes → ``_`` each, trailing dots and spaces dropped, at most 120 UTF-8 bytes, ``default`` when
empty); :func:`unique_name` adds ``_1``, ``_2`` … compared case-blind and records the name; :func:`child` joins only a
name :func:`safe_name` leaves as it is; :func:`claim_output_dir` starts a new job in a missing or empty folder
(hidden temporaries do not count), resumes the same job, refuses anything else with a one-line error unless
``overwrite``, which removes exactly this command's output set (never a user's file, only the owned files of an
output folder; ``replaced_at_end`` stays until the run replaces it). The attack cases (hostile names, whole trees
compared) are in ``e2e/test_hardening_jobs.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eacfer.utils.outdir import (
    MANIFEST,
    OutputFolderError,
    child,
    claim_output_dir,
    read_manifest,
    remove_partials,
    safe_name,
    unique_name,
    write_manifest,
)

ID = {"inputs": ["photos"], "model": "m.pt", "size": (64, 64)}
OUTPUTS = ["predictions.csv", "summary.json", "annotated"]


# -- names ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, want", [
    ("clip", "clip"),
    ("a/b\\c", "a_b_c"),
    ('w:i*n?d"o<w>s|', "w_i_n_d_o_w_s_"),
    ("tab\there\nnl\x7f", "tab_here_nl_"),
    ("..", "__"),
    ("...x", "___x"),
    ("-rf", "_rf"),
    ("-.-name", "___name"),
    ("name. . ", "name"),  # trailing dots and spaces go (Windows drops them)
    ("  padded  ", "padded"),
    ("a.b.c", "a.b.c"),  # inner dots stay
    ("été", "été"),  # UTF-8 is kept
    ("bad\udcffname", "bad_name"),  # a byte that is not UTF-8 (os.fsdecode's surrogate)
])
def test_safe_name(text, want):
    assert safe_name(text) == want


def test_safe_name_defaults_and_length():
    assert safe_name("") == "item" and safe_name("   ", default="video") == "video"
    assert safe_name("x" * 300) == "x" * 120
    cut = safe_name("é" * 100)  # 2 bytes each: cut at a character, at most 120 bytes
    assert cut == "é" * 60 and len(cut.encode("utf-8")) == 120


def test_unique_name_is_case_blind_and_records_the_name():
    used = {"Clip"}
    assert unique_name("clip", used) == "clip_1"
    assert unique_name("CLIP", used) == "CLIP_2"
    assert unique_name("other", used) == "other"
    assert used == {"Clip", "clip_1", "CLIP_2", "other"}
    assert unique_name("clip_1", set()) == "clip_1"


def test_child_joins_only_one_safe_component(tmp_path):
    assert child(tmp_path, "clip") == tmp_path / "clip"
    assert child("out", "a.b") == Path("out") / "a.b"
    for bad in ["", ".", "..", "../x", "a/b", "-x", ".hidden", "x.", "a\x00b"]:
        with pytest.raises(ValueError, match="not a single safe file name inside the output folder"):
            child(tmp_path, bad)


# -- job.json -------------------------------------------------------------------------------------------------------
def test_manifest_round_trip_and_foreign_files_ignored(tmp_path):
    write_manifest(tmp_path, "predict", ID, ["b", "a", "a"], "running", extra=1)
    m = read_manifest(tmp_path)
    assert m["command"] == "predict" and m["status"] == "running" and m["outputs"] == ["a", "b"] and m["extra"] == 1
    (tmp_path / MANIFEST).write_text(json.dumps({"format": "something-else"}))
    assert read_manifest(tmp_path) is None
    (tmp_path / MANIFEST).write_text("{torn")
    assert read_manifest(tmp_path) is None and read_manifest(tmp_path / "missing") is None


# -- claim_output_dir -----------------------------------------------------------------------------------------------
def test_a_missing_folder_is_created_for_a_new_job(tmp_path):
    out = tmp_path / "a" / "b"
    claim = claim_output_dir(out, "predict", ID, OUTPUTS)
    assert (claim.mode, claim.out, claim.previous, claim.removed) == ("new", out, None, [])
    assert out.is_dir()


def test_an_empty_folder_with_a_killed_runs_temporaries_is_new_and_cleaned(tmp_path):
    (tmp_path / ".predictions.csv.partial").write_text("half a row")
    claim = claim_output_dir(tmp_path, "predict", ID, OUTPUTS)
    assert claim.mode == "new" and not (tmp_path / ".predictions.csv.partial").exists()


def test_the_same_job_resumes_and_keeps_everything(tmp_path):
    write_manifest(tmp_path, "predict", ID, OUTPUTS, "interrupted")
    (tmp_path / "predictions.csv").write_text("rows")
    (tmp_path / ".files.jsonl.partial").write_text("ledger")
    claim = claim_output_dir(tmp_path, "predict", ID, OUTPUTS)  # ID's tuple is a list in job.json
    assert claim.mode == "resume" and claim.previous["status"] == "interrupted"
    assert (tmp_path / "predictions.csv").read_text() == "rows" and (tmp_path / ".files.jsonl.partial").exists()


def test_another_job_is_refused_naming_what_differs(tmp_path):
    write_manifest(tmp_path, "predict", ID, OUTPUTS, "complete")
    (tmp_path / "predictions.csv").write_text("rows")
    with pytest.raises(OutputFolderError) as e:
        claim_output_dir(tmp_path, "predict", {**ID, "model": "other.pt"}, OUTPUTS)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{tmp_path}: ") and "model" in msg and "--overwrite" in msg
    with pytest.raises(OutputFolderError, match="`eacfer predict` results"):
        claim_output_dir(tmp_path, "video", ID, OUTPUTS)
    assert (tmp_path / "predictions.csv").read_text() == "rows"  # nothing touched


def test_files_of_unknown_origin_are_refused_naming_them(tmp_path):
    for name in ["a.txt", "b.txt", "c.txt", "d.txt"]:
        (tmp_path / name).write_text("mine")
    with pytest.raises(OutputFolderError, match=r"not empty \(a\.txt, b\.txt, c\.txt, …\)"):
        claim_output_dir(tmp_path, "predict", ID, OUTPUTS)


def test_a_file_as_out_is_refused(tmp_path):
    f = tmp_path / "out"
    f.write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        claim_output_dir(f, "predict", ID, OUTPUTS)


def test_overwrite_removes_exactly_the_output_set(tmp_path):
    write_manifest(tmp_path, "predict", {"inputs": ["old"]}, [*OUTPUTS, "old_only.csv"], "complete",
                   owned={"annotated": ["a.jpg", "sub/*.jpg"]})
    for name in ["predictions.csv", "summary.json", "old_only.csv", "users_notes.txt"]:
        (tmp_path / name).write_text(name)
    ann = tmp_path / "annotated"
    (ann / "sub").mkdir(parents=True)
    for name in ["a.jpg", "sub/b.jpg", "users_photo.jpg", ".a.jpg.partial"]:
        (ann / name).write_text(name)
    (tmp_path / ".predictions.jsonl.partial").write_text("half")
    claim = claim_output_dir(tmp_path, "predict", ID, OUTPUTS, overwrite=True, replaced_at_end=["predictions.csv"])
    assert claim.mode == "new" and claim.previous["identity"] == {"inputs": ["old"]}
    assert sorted(claim.removed) == [MANIFEST, "old_only.csv", "summary.json"]  # the old job's list counts too
    assert (tmp_path / "predictions.csv").read_text() == "predictions.csv"  # replaced only when the run ends
    assert (tmp_path / "users_notes.txt").exists()  # never a user's file
    # the output folder: only the old job's own files and our temporaries go; the user's photo keeps it
    assert sorted(p.relative_to(ann).as_posix() for p in ann.rglob("*")) == ["users_photo.jpg"]
    assert not (tmp_path / ".predictions.jsonl.partial").exists()


def test_overwrite_removes_an_output_folder_once_it_is_empty(tmp_path):
    write_manifest(tmp_path, "video", ID, ["clip"], "complete", owned={"clip": ["frames.csv"]})
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "frames.csv").write_text("rows")
    claim = claim_output_dir(tmp_path, "video", {"other": 1}, ["clip"], overwrite=True)
    assert "clip" in claim.removed and not (tmp_path / "clip").exists()


def test_remove_partials_leaves_other_hidden_files(tmp_path):
    (tmp_path / ".x.partial").write_text("ours")
    (tmp_path / ".dir.partial").mkdir()
    (tmp_path / ".config").write_text("the user's")
    (tmp_path / "x.partial").write_text("visible: not a temporary of ours")
    remove_partials(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".config", "x.partial"]
