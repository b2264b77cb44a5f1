"""``infer/jobs/ledger.py``: the per-file ledger of an ``eacfer predict`` job, unit by unit.

Written from the module's docstrings: every finished file adds its rows to ``.predictions.csv.partial`` and
``.predictions.jsonl.partial`` and then its ledger line to ``.files.jsonl.partial``, flushed after every file; a
resumed run keeps the records of files that are still inputs with the same size and modification time (not an
error when ``retry_errors``), rewrites the CSV and JSON Lines from them (so rows of a file that never got its
ledger line are gone and no file's rows appear twice), and skips a torn last line; ``finish`` renames the
three streams to their final names and assembles ``predictions.json`` with the totals counted from the ledger.
The job-level behaviour (real kills, Ctrl-C, the CLI) is in ``test_photos.py``.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from eacfer.data.imageio import ImageLoadError
from eacfer.infer.jobs.ledger import (
    CSV_NAME,
    JSON_NAME,
    JSONL_NAME,
    LEDGER,
    FileKey,
    Ledger,
    annotated_names,
    error_text,
    ledger_totals,
    partial_name,
    read_records,
)

COLUMNS = ["file", "face", "emotion", "p_a", "note", "error"]


def _row(file: str, face: int | None, emotion: str | None = "a", p: float | None = 0.5, note: str | None = None,
         error: str | None = None) -> dict:
    return {"file": file, "face": face, "emotion": emotion, "p_a": p, "note": note, "error": error}


def _photos(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        f = folder / f"img{i}.jpg"
        f.write_bytes(b"x" * (10 + i))
        files.append(f)
    return files


def _keys(files: list[Path]) -> dict[str, FileKey]:
    return {str(f): FileKey.of(f) for f in files}


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _run(out: Path, files: list[Path], resume: bool = True, retry_errors: bool = False, kill: bool = False,
         **statuses: str) -> dict:
    """One job over ``files`` (each gets one row, status ``ok`` unless named); returns what it skipped.
    ``kill``: stop without ``finish`` (the streams stay ``.partial``), as a SIGKILL would."""
    out.mkdir(exist_ok=True)
    led = Ledger(out, COLUMNS)
    done = led.start(_keys(files), resume=resume, retry_errors=retry_errors)
    for f in files:
        if str(f) in done:
            continue
        status = statuses.get(f.stem, "ok")
        if status == "error":
            led.add(FileKey.of(f), [_row(str(f), None, None, None, error="unreadable")], "error", error="unreadable")
        else:
            led.add(FileKey.of(f), [_row(str(f), 0, p=0.25 + f.stat().st_size / 1000)], status)
    if kill:
        led.close()
    else:
        led.finish({"job": "test"})
    return done


# -- small pieces ---------------------------------------------------------------------------------------------------
def test_partial_name_is_hidden():
    assert partial_name("predictions.csv") == ".predictions.csv.partial"


def test_file_key_is_path_size_and_mtime(tmp_path):
    f = tmp_path / "a.jpg"
    f.write_bytes(b"12345")
    os.utime(f, ns=(1_000_000_000, 2_000_000_123))
    assert FileKey.of(f) == FileKey(str(f), 5, 2_000_000_123)
    assert FileKey.of(tmp_path / "gone.jpg").size == -1


def test_read_records_skips_a_torn_last_line_and_lines_that_are_not_records(tmp_path):
    p = tmp_path / "files.jsonl"
    good = {"file": "a.jpg", "rows": [], "status": "ok"}
    p.write_text(json.dumps(good) + "\n"
                 + "{not json\n"
                 + json.dumps({"file": "b.jpg"}) + "\n"  # no rows: not a record
                 + json.dumps(["a", "list"]) + "\n"
                 + json.dumps({**good, "file": "c.jpg"}) + "\n"
                 + json.dumps({**good, "file": "torn.jpg"})[:-3],  # the line a kill cut short (no newline)
                 encoding="utf-8")
    assert [r["file"] for r in read_records(p)] == ["a.jpg", "c.jpg"]
    # a last line without its newline is torn even when what was written parses
    p.write_text(json.dumps(good) + "\n" + json.dumps({**good, "file": "last.jpg"}), encoding="utf-8")
    assert [r["file"] for r in read_records(p)] == ["a.jpg"]
    assert list(read_records(tmp_path / "missing.jsonl")) == []


def test_error_text_drops_the_leading_file_name():
    assert error_text("x/a.jpg", ImageLoadError("x/a.jpg", "not an image")) == "not an image"
    assert error_text("a.jpg", OSError("disk on fire")) == "disk on fire"
    assert error_text("a.jpg", RuntimeError("boom")) == "RuntimeError: boom"  # unexpected: named by its type


def test_annotated_names_are_those_of_the_records():
    recs = {"a": {"annotated": "a.jpg"}, "b": {"annotated": None}, "c": {}}
    assert annotated_names(recs) == {"a.jpg"}


# -- streaming ------------------------------------------------------------------------------------------------------
def test_each_file_is_on_disk_as_soon_as_it_is_added(tmp_path):
    led = Ledger(tmp_path, COLUMNS)
    assert led.start({}, resume=False) == {}
    key = FileKey("a.jpg", 3, 7)
    led.add(key, [_row("a.jpg", 0, p=0.9), _row("a.jpg", 1, note=None, p=None)], "ok", annotated="a.jpg")
    try:
        # read while the streams are still open: flushed, under the hidden names, nothing final yet
        assert [r["face"] for r in _csv(tmp_path / partial_name(CSV_NAME))] == ["0", "1"]
        assert _csv(tmp_path / partial_name(CSV_NAME))[1]["p_a"] == ""  # None is an empty CSV cell
        assert [r["p_a"] for r in _jsonl(tmp_path / partial_name(JSONL_NAME))] == [0.9, None]
        (rec,) = _jsonl(tmp_path / partial_name(LEDGER))
        assert (rec["file"], rec["size"], rec["mtime_ns"], rec["status"], rec["faces"], rec["annotated"]) == \
            ("a.jpg", 3, 7, "ok", 2, "a.jpg")
        assert len(rec["rows"]) == 2
        assert not any((tmp_path / n).exists() for n in (LEDGER, CSV_NAME, JSONL_NAME, JSON_NAME))
    finally:
        led.close()


def test_jsonl_rows_hold_exactly_the_columns(tmp_path):
    led = Ledger(tmp_path, ["file", "face"])
    led.start({}, resume=False)
    led.add(FileKey("a.jpg", 1, 1), [{"file": "a.jpg", "face": 0, "extra": "dropped"}], "ok")
    led.finish({})
    assert _jsonl(tmp_path / JSONL_NAME) == [{"file": "a.jpg", "face": 0}]
    assert _csv(tmp_path / CSV_NAME) == [{"file": "a.jpg", "face": "0"}]


def test_finish_renames_the_streams_and_assembles_predictions_json(tmp_path):
    files = _photos(tmp_path / "photos", 3)
    out = tmp_path / "out"
    _run(out, files, img2="error")
    assert sorted(p.name for p in out.iterdir()) == sorted([LEDGER, CSV_NAME, JSONL_NAME, JSON_NAME])  # no partials
    full = json.loads((out / JSON_NAME).read_text(encoding="utf-8"))
    assert full["columns"] == COLUMNS
    assert full["predictions"] == _jsonl(out / JSONL_NAME)
    assert [r["file"] for r in full["predictions"]] == [str(f) for f in files]
    s = full["summary"]
    assert s["job"] == "test"  # the caller's summary, merged with the totals counted from the ledger
    assert (s["files"], s["images"], s["faces"], s["errors"]) == (3, 2, 2, 1)
    assert s["error_messages"] == [f"{files[2]}: unreadable"]


# -- resume ---------------------------------------------------------------------------------------------------------
def test_a_finished_file_is_skipped_and_its_rows_survive_the_reopen(tmp_path):
    files = _photos(tmp_path / "photos", 3)
    out = tmp_path / "out"
    assert _run(out, files) == {}
    first = _csv(out / CSV_NAME)
    done = _run(out, files)
    assert set(done) == {str(f) for f in files}
    assert all("rows" not in meta for meta in done.values()) and done[str(files[0])]["status"] == "ok"
    assert _csv(out / CSV_NAME) == first  # the same rows, each once
    assert len(_jsonl(out / JSONL_NAME)) == 3 and len(list(read_records(out / LEDGER))) == 3


def test_a_file_changed_since_is_redone_and_a_file_no_longer_given_is_dropped(tmp_path):
    files = _photos(tmp_path / "photos", 3)
    out = tmp_path / "out"
    _run(out, files)
    files[0].write_bytes(b"bigger now" * 10)  # size changed
    st = files[1].stat()
    os.utime(files[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # only the modification time changed
    done = _run(out, files[:2])  # files[2] is no longer an input
    assert done == {}
    rows = _csv(out / CSV_NAME)
    assert [r["file"] for r in rows] == [str(files[0]), str(files[1])]  # redone once each, files[2] forgotten
    assert float(rows[0]["p_a"]) == pytest.approx(0.25 + 100 / 1000)  # the new row, not the old one
    assert {r["file"] for r in read_records(out / LEDGER)} == {str(files[0]), str(files[1])}


def test_without_resume_everything_is_redone(tmp_path):
    files = _photos(tmp_path / "photos", 2)
    out = tmp_path / "out"
    _run(out, files)
    assert _run(out, files, resume=False) == {}
    assert [r["file"] for r in _csv(out / CSV_NAME)] == [str(f) for f in files]  # once each, not appended


def test_errors_are_kept_unless_retried(tmp_path):
    files = _photos(tmp_path / "photos", 2)
    out = tmp_path / "out"
    _run(out, files, img1="error")
    assert set(_run(out, files, img1="error")) == {str(f) for f in files}  # not tried again
    done = _run(out, files, retry_errors=True)  # asked: tried again, and now it reads
    assert set(done) == {str(files[0])}
    recs = {r["file"]: r for r in read_records(out / LEDGER)}
    assert recs[str(files[1])]["status"] == "ok" and len(recs) == 2
    assert [r["error"] for r in _csv(out / CSV_NAME)] == ["", ""]


def test_resume_after_a_kill_keeps_only_files_with_their_ledger_line(tmp_path):
    """The rows of a file whose ledger line never made it (killed between the two), and a torn ledger line,
    are gone after the resume; the file is redone exactly once."""
    files = _photos(tmp_path / "photos", 4)
    out = tmp_path / "out"
    _run(out, files[:2], kill=True)  # killed after two files: the streams are still .partial
    with open(out / partial_name(CSV_NAME), "a", encoding="utf-8", newline="") as fh:
        fh.write(f"{files[2]},0,a,0.9")  # the half-written row of the file in flight
    with open(out / partial_name(JSONL_NAME), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(_row(str(files[2]), 0)) + "\n")
    with open(out / partial_name(LEDGER), "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"file": str(files[2]), "size": 12, "mtime_ns": 0, "rows": []})[:20])  # torn
    done = _run(out, files)
    assert set(done) == {str(files[0]), str(files[1])}
    got = [r["file"] for r in _csv(out / CSV_NAME)]
    assert sorted(got) == sorted(str(f) for f in files) and len(got) == 4  # every file exactly once
    assert sorted(r["file"] for r in _jsonl(out / JSONL_NAME)) == sorted(got)
    assert all(r["p_a"] for r in _csv(out / CSV_NAME))  # whole rows only


def test_the_partial_ledger_wins_over_the_final_one(tmp_path):
    """After a finished run was resumed and killed, the newer (partial) ledger is the one read."""
    files = _photos(tmp_path / "photos", 3)
    out = tmp_path / "out"
    _run(out, files[:1])  # finished: files.jsonl holds files[0]
    _run(out, files[:2], kill=True)  # resumed, files[1] added, killed: .files.jsonl.partial holds both
    assert set(_run(out, files)) == {str(files[0]), str(files[1])}
    assert [r["file"] for r in _csv(out / CSV_NAME)] == [str(f) for f in files]


# -- totals ---------------------------------------------------------------------------------------------------------
def test_ledger_totals_count_from_the_records(tmp_path):
    p = tmp_path / "files.jsonl"
    recs = [
        {"file": "two.jpg", "status": "ok", "faces": 2,
         "rows": [_row("two.jpg", 0, "uncertain"), _row("two.jpg", 1, note="found by the fallback detector")]},
        {"file": "none.jpg", "status": "ok", "faces": 0, "rows": [_row("none.jpg", None, None, None, note="no face")]},
        {"file": "bad.jpg", "status": "error", "faces": 0, "error": "not an image", "rows": []},
        {"file": "bad2.jpg", "status": "error", "faces": 0, "error": "truncated", "rows": []},
    ]
    p.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    t = ledger_totals(p, max_errors=1, uncertain=True)
    assert (t["files"], t["images"], t["faces"], t["no_face"], t["errors"]) == (4, 2, 2, 1, 2)
    assert t["found_by_fallback"] == 1 and t["uncertain"] == 1
    assert t["no_face_note"] == "no face"
    assert t["error_messages"] == ["bad.jpg: not an image"]  # at most max_errors messages
    assert "uncertain" not in ledger_totals(p)
