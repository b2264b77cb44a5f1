"""The state of an ``eacfer predict`` job on disk: what is done, streamed row by row, resumable after a kill.

While a job runs, each finished file adds one line to the *ledger* (``.files.jsonl.partial``: the file's path,
size, modification time, status and rows) and its rows to ``.predictions.csv.partial`` and
``.predictions.jsonl.partial``; all three are flushed after every file, so a kill loses at most the files in
flight. When the run ends (or is interrupted with Ctrl-C) they become ``files.jsonl``, ``predictions.csv``
and ``predictions.jsonl``, and ``predictions.json`` is assembled from them.

The ledger is the source of truth. A resumed run reads it (the partial one after a kill, the final one
after a finished or interrupted run), keeps the records of files that are still inputs with the same size
and modification time, and rewrites the CSV and JSON Lines from those records, so a half-written row of a
killed run never survives and no file's rows appear twice.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from eacfer.utils.atomic import atomic_open, to_json

log = logging.getLogger(__name__)

LEDGER, CSV_NAME, JSONL_NAME, JSON_NAME = "files.jsonl", "predictions.csv", "predictions.jsonl", "predictions.json"
STREAMED = (LEDGER, CSV_NAME, JSONL_NAME)


def partial_name(name: str) -> str:
    """The hidden in-progress name of a streamed output (``.predictions.csv.partial``)."""
    return f".{name}.partial"


@dataclass(frozen=True)
class FileKey:
    """A file as the job saw it: its path (as given), size and modification time (ns)."""

    file: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> FileKey:
        """Stat ``path`` (missing files get size -1)."""
        try:
            st = os.stat(path)
        except OSError:
            return cls(str(path), -1, 0)
        return cls(str(path), int(st.st_size), int(st.st_mtime_ns))


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """Complete ledger records of ``path``; a torn last line (a kill mid-write) is skipped."""
    if not path.is_file():
        return
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # the line being written when the run was killed
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("file"), str) and isinstance(rec.get("rows"), list):
                yield rec


class Ledger:
    """Append-only record of finished files plus the streamed CSV and JSON Lines.

    Example:
        >>> led = Ledger(Path("out"), columns)              # doctest: +SKIP
        >>> done = led.start(current_keys, resume=True)     # doctest: +SKIP
        >>> led.add(FileKey.of("a.jpg"), rows, "ok")        # doctest: +SKIP
        >>> led.finish()                                    # doctest: +SKIP
    """

    def __init__(self, out: Path, columns: Sequence[str]):
        self.out = Path(out)
        self.columns = list(columns)
        self._fh: dict[str, IO[str]] = {}
        self._csv: Any = None

    def _p(self, name: str) -> Path:
        return self.out / partial_name(name)

    # -- start / resume --------------------------------------------------------------------------
    def start(self, keys: dict[str, FileKey], resume: bool, retry_errors: bool = False) -> dict[str, dict[str, Any]]:
        """Open the streams; with ``resume``, keep earlier records that still match ``keys``.

        Returns the kept records by file (rows excluded) — the files this run skips as already done.
        A record is dropped (its file redone or forgotten) when the file is no longer an input, its size or
        modification time changed, or it is an error and ``retry_errors`` is set.
        """
        src = self._p(LEDGER) if self._p(LEDGER).is_file() else self.out / LEDGER
        # pass 1: which line of the ledger stands for each file (only small metadata is held in memory)
        kept: dict[str, tuple[int, dict[str, Any]]] = {}
        if resume:
            for i, rec in enumerate(read_records(src)):
                k = keys.get(rec["file"])
                stale = k is None or (rec.get("size"), rec.get("mtime_ns")) != (k.size, k.mtime_ns)
                if stale or (retry_errors and rec.get("status") == "error"):
                    kept.pop(rec["file"], None)
                    continue
                kept[rec["file"]] = (i, {k2: v for k2, v in rec.items() if k2 != "rows"})
        # pass 2: rewrite the three streams from the kept records (fresh copies, renamed into place together)
        with contextlib.ExitStack() as stack:
            fhs = {name: stack.enter_context(atomic_open(self._p(name), encoding="utf-8",
                                                         newline="" if name == CSV_NAME else None))
                   for name in STREAMED}
            w = csv.DictWriter(fhs[CSV_NAME], fieldnames=self.columns)
            w.writeheader()
            if kept:
                want = {i for i, _ in kept.values()}
                for i, rec in enumerate(read_records(src)):
                    if i in want:
                        fhs[LEDGER].write(to_json(rec) + "\n")
                        for row in rec["rows"]:
                            self._write_row(fhs[CSV_NAME], CSV_NAME, row, w)
                            self._write_row(fhs[JSONL_NAME], JSONL_NAME, row, None)
        for name in STREAMED:
            self._fh[name] = open(self._p(name), "a", encoding="utf-8", errors="surrogateescape",
                                  newline="" if name == CSV_NAME else None)
        self._csv = csv.DictWriter(self._fh[CSV_NAME], fieldnames=self.columns)
        return {f: meta for f, (_i, meta) in kept.items()}

    def _write_row(self, fh: IO[str], name: str, row: dict[str, Any], writer: Any) -> None:
        if name == CSV_NAME:
            writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in self.columns})
        else:
            fh.write(to_json({k: row.get(k) for k in self.columns}) + "\n")

    # -- per file --------------------------------------------------------------------------------
    def add(self, key: FileKey, rows: list[dict[str, Any]], status: str, annotated: str | None = None,
            error: str | None = None) -> None:
        """Append one finished file (its rows, then its ledger line last) and flush."""
        for row in rows:
            self._write_row(self._fh[CSV_NAME], CSV_NAME, row, self._csv)
            self._write_row(self._fh[JSONL_NAME], JSONL_NAME, row, None)
        rec = {"file": key.file, "size": key.size, "mtime_ns": key.mtime_ns, "status": status,
               "faces": sum(r.get("face") is not None for r in rows), "error": error, "annotated": annotated,
               "rows": rows}
        self._fh[CSV_NAME].flush()
        self._fh[JSONL_NAME].flush()
        # the ledger line goes last: a file is done only once its rows are out
        self._fh[LEDGER].write(to_json(rec) + "\n")
        self._fh[LEDGER].flush()

    # -- end -------------------------------------------------------------------------------------
    def close(self) -> None:
        for fh in self._fh.values():
            fh.close()
        self._fh.clear()

    def finish(self, summary: dict[str, Any]) -> dict[str, Any]:
        """Close the streams, rename them to their final names, assemble ``predictions.json``.

        Returns the job totals (counted from the ledger) merged into ``summary``.
        """
        for fh in self._fh.values():
            fh.flush()
            os.fsync(fh.fileno())
        self.close()
        totals = ledger_totals(self._p(LEDGER), uncertain="min_confidence" in summary)
        for name in STREAMED:
            os.replace(self._p(name), self.out / name)
        full = {**summary, **totals}
        with atomic_open(self.out / JSON_NAME, encoding="utf-8") as fh:
            fh.write('{\n"columns": ' + json.dumps(self.columns) + ',\n"predictions": [\n')
            first = True
            with open(self.out / JSONL_NAME, encoding="utf-8") as rows:
                for line in rows:
                    fh.write(("" if first else ",\n") + line.rstrip("\n"))
                    first = False
            fh.write('\n],\n"summary": ' + to_json(full) + "\n}\n")
        return full


def ledger_totals(path: Path, max_errors: int = 50, uncertain: bool = False) -> dict[str, Any]:
    """Job totals of a ledger: files, images (readable), faces, no_face, errors, first error messages, faces the
    fallback detector found; with ``uncertain`` (a ``--min-confidence`` job) also how many faces were labelled
    ``uncertain``."""
    t: dict[str, Any] = {"files": 0, "images": 0, "faces": 0, "no_face": 0, "errors": 0, "found_by_fallback": 0}
    if uncertain:
        t["uncertain"] = 0
    msgs: list[str] = []
    for rec in read_records(path):
        t["files"] += 1
        if rec.get("status") == "error":
            t["errors"] += 1
            if len(msgs) < max_errors:
                msgs.append(f"{rec['file']}: {rec.get('error')}")
            continue
        t["images"] += 1
        t["faces"] += int(rec.get("faces") or 0)
        t["no_face"] += not rec.get("faces")
        t["found_by_fallback"] += any(str(r.get("note") or "").startswith("found by") for r in rec.get("rows") or [])
        if not rec.get("faces") and "no_face_note" not in t:
            t["no_face_note"] = next((r.get("note") for r in rec.get("rows") or [] if r.get("note")), None)
        if uncertain:
            t["uncertain"] += sum(r.get("emotion") == "uncertain" for r in rec.get("rows") or [])
    return {**t, "error_messages": msgs}


def annotated_names(records: dict[str, dict[str, Any]]) -> set[str]:
    """Names of the annotated copies the kept records own."""
    return {r["annotated"] for r in records.values() if r.get("annotated")}


def error_text(file: str | os.PathLike[str], e: BaseException) -> str:
    """The ``error`` column of an unreadable file (the message without the leading ``"<file>: "``)."""
    from eacfer.data.imageio import ImageLoadError

    reason = str(e) if isinstance(e, (ImageLoadError, OSError, ValueError)) else f"{type(e).__name__}: {e}"
    prefix = f"{file}: "
    return reason[len(prefix):] if reason.startswith(prefix) else reason
