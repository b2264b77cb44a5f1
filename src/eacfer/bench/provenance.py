"""Where a measured figure comes from: command, git commit, machine and date (``bench_meta.json``)."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

META_NAME = "bench_meta.json"


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux, ``platform`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    """CPU cores this process may run on (affinity-aware where the OS says)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def git_commit(cwd: str | os.PathLike[str] | None = None) -> str:
    """``HEAD`` commit (short) of the checkout eacfer runs from, ``+dirty`` when it has local changes."""
    where = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=where, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return head + ("+dirty" if dirty else "")


def machine_info() -> dict[str, Any]:
    """CPU model, usable cores, torch/onnxruntime versions, GPU name when CUDA is present.

    Example:
        >>> machine_info()["cores"] >= 1
        True
    """
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "torch_threads": torch.get_num_threads(),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:  # pragma: no cover - a dependency, but the report should not die without it
        info["onnxruntime"] = None
    info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    try:  # other work on a shared machine skews latencies: record how busy it was
        info["load_avg_1m"] = round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        info["load_avg_1m"] = None
    return info


def describe_machine(m: dict[str, Any]) -> str:
    """One line: ``Intel(R) Xeon(R), 2 cores, torch 2.x, onnxruntime 1.x[, GPU …]``."""
    parts = [f"{m.get('cpu', '?')}", f"{m.get('cores', '?')} cores", f"torch {m.get('torch', '?')}"]
    if m.get("onnxruntime"):
        parts.append(f"onnxruntime {m['onnxruntime']}")
    if m.get("gpu"):
        parts.append(f"GPU {m['gpu']}")
    load = m.get("load_avg_1m")
    if load is not None:
        busy = isinstance(m.get("cores"), int) and load > m["cores"]
        parts.append(f"load average {load} at start" + (" (busy machine: latencies are pessimistic)" if busy else ""))
    return ", ".join(parts)


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed (``eacfer bench …``), shell-quoted."""
    argv = list(sys.argv if argv is None else argv)
    if argv and Path(argv[0]).name in ("eacfer", "__main__.py", "cli.py"):
        argv[0] = "eacfer"
    return shlex.join(argv)


def provenance(kind: str, command: str | None = None) -> dict[str, Any]:
    """The ``bench_meta.json`` record for a bench of ``kind`` (``noisy`` / ``efficiency``)."""
    return {
        "kind": kind,
        "command": command or command_line(),
        "commit": git_commit(),
        "machine": machine_info(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
