"""The noisy-label grid's value types: a cell (backbone × method × noise level) and a run's result.

Kept apart from :mod:`eacfer.bench.noisy` (which runs the grid) so that the tables and plots can use them
without importing the runner.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class GridCell:
    """One run of the grid: ``backbone`` × ``method`` × one noise level.

    ``noise_rate`` is the injected noise (or the rate a label file is known to carry, ``None`` when
    unknown); ``label_file`` is set for official noise files.
    """

    backbone: str
    method: str
    tag: str
    noise_rate: float | None
    label_file: str | None = None

    @property
    def name(self) -> str:
        return safe_name(f"{self.backbone}_{self.method}_{self.tag}")

    @property
    def column(self) -> str:
        """Column header in the tables."""
        return noise_column(self.tag, self.noise_rate, self.label_file)


def safe_name(text: str) -> str:
    """A folder-safe version of ``text`` (``timm:vit_tiny`` → ``timm-vit_tiny``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "run"


def noise_tag(rate: float) -> str:
    """``0.0`` → ``clean``, ``0.1`` → ``noise10`` (percent of flipped training labels)."""
    pct = round(rate * 100, 6)
    if pct == 0:
        return "clean"
    return f"noise{int(pct):02d}" if float(pct).is_integer() else f"noise{pct:g}".replace(".", "p")


def noise_column(tag: str, rate: float | None, label_file: str | None) -> str:
    """Header for a noise level: ``clean`` / ``10%`` / ``noise01.txt (10%)``."""
    pct = "" if rate is None else ("clean" if rate == 0 else f"{rate * 100:g}%")
    if label_file:
        return f"{Path(label_file).name} ({pct})" if pct else Path(label_file).name
    return pct or tag


@dataclass
class RunResult:
    """A grid cell with what its run directory holds."""

    cell: GridCell
    run_dir: Path
    status: str  # "done" | "partial" | "missing" | "failed"
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    action: str = ""  # what this invocation did: "skipped" | "resumed" | "trained" | "restarted" | "failed: ..."

    def metric(self, key: str) -> float | None:
        """A summary metric in percent (None when the run has no value)."""
        v = self.summary.get(key)
        return None if v is None else 100.0 * float(v)
