"""The output-folder rule: the results of one job never mix with another job's.

Every command that writes into an ``--out`` folder (``predict``, ``video``) records what it is doing in
``job.json`` there: the command, the *identity* of the job (inputs, model file and its sha256, detector and
output settings) and the names of the outputs it owns. When a command starts:

* the folder is missing or empty (hidden temporary files left by a killed run do not count) → a new job;
* ``job.json`` records the **same job** → the job resumes (what is already done is kept);
* anything else (another job's results, files of unknown origin) → refused with a one-line error, unless
  ``overwrite=True`` (``--overwrite``), which replaces exactly this command's output set (the names it
  writes, plus those the old ``job.json`` lists): files the new run always rewrites are replaced when it
  ends (a killed run leaves the earlier complete ones), the others (e.g. ``annotated/``) are deleted before
  it starts; other files in the folder are left alone.

So stale annotated images never sit beside a new ``predictions.csv``, and another clip's ``annotated.mp4``
never sits beside a new ``frames.csv``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eacfer.utils.atomic import write_json
from eacfer.utils.integrity import file_sha256  # noqa: F401  (re-exported: job records name their model)

log = logging.getLogger(__name__)

MANIFEST = "job.json"
FORMAT = "eacfer-job"


class OutputFolderError(ValueError):
    """``--out`` holds another job's results (a one-line, user-facing message)."""


@dataclass
class Claim:
    """What :func:`claim_output_dir` decided: ``mode`` is ``"new"`` or ``"resume"``."""

    out: Path
    mode: str
    previous: dict[str, Any] | None = None
    removed: list[str] = field(default_factory=list)


def read_manifest(out: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``job.json`` of ``out``, or ``None`` when there is none (or it is not one of ours)."""
    p = Path(out) / MANIFEST
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def write_manifest(out: str | os.PathLike[str], command: str, identity: dict[str, Any], outputs: Iterable[str],
                   status: str, **extra: Any) -> None:
    """Write ``job.json`` atomically (``status``: ``running``, ``interrupted`` or ``complete``)."""
    write_json(Path(out) / MANIFEST, {"format": FORMAT, "command": command, "status": status,
                                      "identity": identity, "outputs": sorted(set(outputs)), **extra})


def _visible(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if not p.name.startswith("."))


def _describe_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    if old.get("command") != new.get("command"):
        return f"it holds `eacfer {old.get('command')}` results"
    a, b = old.get("identity") or {}, new.get("identity") or {}
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return "it holds the results of a different job (" + ", ".join(keys[:4]) + " differ)" if keys else \
        "it holds the results of a different job"


def remove_outputs(out: Path, names: Iterable[str]) -> list[str]:
    """Delete the named files/folders of ``out`` (names only, never outside ``out``); returns what went."""
    gone = []
    for name in sorted(set(names)):
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            continue
        p = out / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
        else:
            continue
        gone.append(name)
    return gone


def remove_partials(out: Path) -> None:
    """Delete hidden in-progress files of a killed run (``.NAME.partial`` and atomic-write temporaries)."""
    for p in out.iterdir():
        if p.name.startswith(".") and (p.name.endswith(".partial") or p.name.endswith(".tmp")
                                       or ".tmp." in p.name):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def claim_output_dir(
    out: str | os.PathLike[str],
    command: str,
    identity: dict[str, Any],
    outputs: Iterable[str],
    overwrite: bool = False,
    replaced_at_end: Iterable[str] = (),
) -> Claim:
    """Apply the output-folder rule to ``out`` for this job; create the folder when missing.

    Args:
        out: the ``--out`` folder.
        command: ``"predict"``, ``"video"``, …
        identity: JSON-able description of the job; equal identities mean "the same job".
        outputs: names (files or folders directly in ``out``) this command writes.
        overwrite: replace another job's results instead of refusing.
        replaced_at_end: outputs this run always renames a complete new version onto when it ends: with
            ``overwrite`` they are left in place until then (so a killed run leaves the earlier complete
            file, never a half one); every other output of the set is deleted at once.

    Raises:
        OutputFolderError: ``out`` holds something else and ``overwrite`` is False.

    Example:
        >>> claim = claim_output_dir("out/pred", "predict", {"inputs": ["photos"]}, ["predictions.csv"])  # doctest: +SKIP
        >>> claim.mode                                                                                     # doctest: +SKIP
        'new'
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    prev = read_manifest(out)
    new = {"command": command, "identity": _plain(identity)}
    if prev is not None and prev.get("command") == command and prev.get("identity") == new["identity"]:
        return Claim(out, "resume", prev)
    visible = _visible(out)
    if not visible:
        remove_partials(out)
        return Claim(out, "new")
    if not overwrite:
        why = _describe_difference(prev, new) if prev is not None else \
            f"it is not empty ({', '.join(p.name for p in visible[:3])}{', …' if len(visible) > 3 else ''})"
        raise OutputFolderError(f"{out}: {why}; choose another --out, or add --overwrite to replace "
                                f"the earlier `eacfer {command}` results")
    names = (set(outputs) | {MANIFEST} | set((prev or {}).get("outputs") or [])) - set(replaced_at_end)
    removed = remove_outputs(out, names)
    remove_partials(out)
    if removed:
        log.info("--overwrite: removed the earlier results in %s: %s", out, ", ".join(removed))
    return Claim(out, "new", prev, removed)


def _plain(obj: Any) -> Any:
    """The JSON round trip of ``obj`` (so tuples and lists compare equal to what job.json holds)."""
    return json.loads(json.dumps(obj, default=str))
