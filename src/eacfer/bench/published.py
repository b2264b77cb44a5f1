"""Published figures shipped with eacfer (``published.json``) and their sources.

Every number in the file names a source key; :func:`load_published` refuses a file where one does not
resolve to a source with a title and a URL or venue/year, so the report can always cite.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Published:
    """The parsed data file: ``sources`` (key → dict), ``noisy``, ``other_datasets`` and ``sota`` entries."""

    sources: dict[str, dict[str, Any]]
    noisy: list[dict[str, Any]]
    other_datasets: list[dict[str, Any]]
    sota: list[dict[str, Any]]
    note: str

    def cite(self, key: str) -> str:
        """One-line citation of source ``key``: title, venue year, URL."""
        s = self.sources[key]
        parts = [s["title"]]
        if s.get("venue") or s.get("year"):
            parts.append(" ".join(str(x) for x in (s.get("venue"), s.get("year")) if x))
        if s.get("url"):
            parts.append(s["url"])
        return "; ".join(parts)

    def noisy_reference(self, backbone: str, method: str) -> dict[str, Any] | None:
        """The published EAC-repository row matching an eacfer ``backbone``/``method``, or None.

        Example:
            >>> load_published().noisy_reference("resnet50_msceleb", "eac")["values"]["0.1"]
            88.62
        """
        for e in self.noisy:
            if e.get("eacfer_backbone") == backbone and e.get("method") == method:
                return e
        return None

    def source_of(self, model: str) -> dict[str, Any]:
        """Source dict of the state-of-the-art entry called ``model``."""
        for e in self.sota:
            if e["model"] == model:
                return self.sources[e["source"]]
        raise KeyError(f"no published entry for {model!r}")


def _numbers(entry: dict[str, Any]) -> list[float]:
    nums: list[float] = []
    for k, v in entry.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            nums.append(float(v))
        elif k == "values" and isinstance(v, dict):
            nums.extend(float(x) for x in v.values())
    return nums


def validate(data: dict[str, Any], origin: str) -> Published:
    """Check that every entry with a number cites a known, complete source; return :class:`Published`."""
    sources = data.get("sources")
    if not isinstance(sources, dict) or not sources:
        raise ValueError(f"{origin}: no 'sources' table")
    for key, s in sources.items():
        if not s.get("title") or not (s.get("url") or (s.get("venue") and s.get("year"))):
            raise ValueError(f"{origin}: source {key!r} needs a title and a URL or venue and year")
    groups = {g: data.get(g, []) for g in ("noisy", "other_datasets", "sota")}
    for group, entries in groups.items():
        for i, e in enumerate(entries):
            if not _numbers(e):
                raise ValueError(f"{origin}: {group}[{i}] ({e.get('model')}) has no number")
            if e.get("source") not in sources:
                raise ValueError(f"{origin}: {group}[{i}] ({e.get('model')}) cites unknown source {e.get('source')!r}")
    return Published(sources=sources, note=str(data.get("note", "")), **groups)


def load_published(path: str | os.PathLike[str] | None = None) -> Published:
    """Load the shipped ``published.json`` (or another file with the same layout).

    Example:
        >>> pub = load_published()
        >>> pub.cite(pub.sota[0]["source"]).startswith("Representation Learning")
        True
    """
    if path is None:
        text = resources.files("eacfer.bench").joinpath("published.json").read_text(encoding="utf-8")
        origin = "eacfer/bench/published.json"
    else:
        text = Path(path).read_text(encoding="utf-8")
        origin = str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{origin}: not valid JSON ({e})") from None
    return validate(data, origin)
