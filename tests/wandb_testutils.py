"""Read an offline W&B run back from its ``run-<id>.wandb`` file.

wandb ≥ 0.19 writes runs from its Go core and no longer ships a Python reader, so this decodes the file
format directly: a 7-byte header (``:W&B``, magic 0xBEE1, version 0) followed by LevelDB-log framed
records (32 KiB blocks; each chunk: CRC32 of type+data, uint16 length, uint8 type FULL/FIRST/MIDDLE/LAST),
each record being a ``wandb.proto.wandb_internal_pb2.Record`` protobuf — wandb's own message type, so
the fields read are exactly what ``wandb sync`` would upload.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: Path) -> list[Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    raw = Path(path).read_bytes()
    assert raw[:4] == b":W&B" and struct.unpack("<H", raw[4:6])[0] == 0xBEE1, "not a .wandb file"
    records, pending, pos = [], b"", HEADER
    while pos + 7 <= len(raw):
        left = BLOCK - pos % BLOCK
        if left < 7:  # block trailer padding
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", raw[pos:pos + 7])
        if length == 0 and kind == 0:  # zero padding at the end of a block
            pos += left
            continue
        data = raw[pos + 7:pos + 7 + length]
        assert zlib.crc32(bytes([kind]) + data) & 0xFFFFFFFF == crc, f"CRC mismatch at {pos}"
        pos += 7 + length
        if kind == FULL:
            chunk = data
        elif kind == FIRST:
            pending = data
            continue
        elif kind == MIDDLE:
            pending += data
            continue
        else:
            chunk, pending = pending + data, b""
        rec = pb.Record()
        rec.ParseFromString(chunk)
        records.append(rec)
    return records


@dataclass
class OfflineRun:
    """What one offline run file holds, decoded."""

    run_id: str = ""
    project: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    resumed: bool = False
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int | None = None


def _key(item: Any) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


def read_run(path: Path) -> OfflineRun:
    out = OfflineRun()
    for rec in read_records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            out.run_id, out.project, out.name, out.group = r.run_id, r.project, r.display_name, r.run_group
            out.job_type = r.job_type
            out.resumed = out.resumed or bool(r.resumed)
            for it in r.config.update:
                out.config[_key(it)] = json.loads(it.value_json)
        elif kind == "config":
            for it in rec.config.update:
                out.config[_key(it)] = json.loads(it.value_json)
        elif kind == "history":
            row: dict[str, Any] = {}
            for it in rec.history.item:
                keys = list(it.nested_key) or [it.key]
                d = row
                for k in keys[:-1]:
                    d = d.setdefault(k, {})
                d[keys[-1]] = json.loads(it.value_json)
            out.history.append(row)
        elif kind == "summary":
            for it in rec.summary.update:
                out.summary[_key(it)] = json.loads(it.value_json)
        elif kind == "files":
            out.files += [f.path for f in rec.files.files]
        elif kind == "artifact":
            a = rec.artifact
            out.artifacts.append({"name": a.name, "type": a.type, "files": [m.path for m in a.manifest.contents],
                                  "metadata": json.loads(a.metadata or "{}")})
        elif kind == "exit":
            out.exit_code = rec.exit.exit_code
    # config values come wrapped as {"value": ...} in run/config records written by the SDK
    out.config = {k: (v["value"] if isinstance(v, dict) and set(v) == {"value"} else v) for k, v in out.config.items()
                  if not k.startswith("_")}
    return out


def offline_runs(root: Path) -> list[Path]:
    """Every ``run-*.wandb`` file under ``root`` (offline-run-* folders), oldest first, once wandb has written them.

    wandb-core buffers a run's records and writes the file when it handles the run's finish request, which
    ``run.finish()`` sends without waiting for it (wandb 0.31). Read at once, the file can still be its 7-byte
    header: no run record, an empty run id (seen on a loaded machine, under two pytest-xdist workers). So this
    first calls ``wandb.teardown()``, which waits for this process's wandb service to close every run file and
    exit (the next ``wandb.init`` starts a new one).
    """
    import sys

    if "wandb" in sys.modules:
        sys.modules["wandb"].teardown()
    return sorted(Path(root).rglob("offline-run-*/run-*.wandb"), key=lambda p: p.parent.name)
