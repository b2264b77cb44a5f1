"""Mutation testing of eacfer's core modules with mutmut 3 (``make mutation``; not part of ``make test``).

Why mutmut 3 (not cosmic-ray): it forks each mutant's test run from a process that has already imported
torch and collected the tests, and runs only the tests that cover the mutated function, so a mutant costs
well under a second instead of a fresh interpreter with a torch import (~3–5 s on a shared 2-core machine);
it is actively maintained (3.x, 2026) and configured from pyproject.toml.

Each module in ``[tool.eacfer-mutation.modules]`` (pyproject.toml) runs on its own, in a scratch copy of the
repository (``build/mutation/<module>``) whose pyproject carries a ``[tool.mutmut]`` section for that module
only: the file to mutate, the few test files that specify it (listed, or by the layout of tests/:
:func:`layout_tests`), and optionally the functions to mutate (e.g.
only ``summarize`` of sinks.py). Runs are niced, one child at a time and time-boxed. The score per module
and every surviving mutant (with its diff) are written to ``build/mutation/report.json`` / ``report.md``.

Usage:
    python tests/mutation/run_mutation.py                 # every module
    python tests/mutation/run_mutation.py loss tracking   # some modules (keys of the table)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
STATUS_RE = re.compile(r"^\s*(\S+__mutmut_\d+):\s*(.+?)\s*$")


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def layout_tests(file: str, root: Path = ROOT) -> list[str]:
    """The tests of ``src/eacfer/<package>/<module>.py`` by the layout of tests/ (docs/TESTING.md):
    ``tests/<package>/test_<module>.py`` and ``tests/<package>/test_<module>_*.py`` (e.g. ``…_spec.py``).

    Example:
        >>> layout_tests("src/eacfer/models/loss.py")  # doctest: +SKIP
        ['tests/models/test_loss.py', 'tests/models/test_loss_spec.py']
    """
    rel = Path(file).relative_to("src/eacfer")
    folder = root / "tests" / rel.parent
    found = [folder / f"test_{rel.stem}.py", *sorted(folder.glob(f"test_{rel.stem}_*.py"))]
    return [p.relative_to(root).as_posix() for p in found if p.is_file()]


def prepare(workdir: Path, spec: dict, pytest_cfg: dict) -> None:
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    shutil.copytree(ROOT / "src", workdir / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(ROOT / "tests", workdir / "tests", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if (ROOT / "testdata").is_dir():  # generated scenes some tests import (pytest's pythonpath holds ".")
        shutil.copytree(ROOT / "testdata", workdir / "testdata", ignore=shutil.ignore_patterns("__pycache__"))
    markers = pytest_cfg.get("markers", [])
    # the suite's own import settings (helpers in tests/ as top-level modules, import mode), else the copies
    # of tests in subfolders of tests/ could not import them
    pythonpath = pytest_cfg.get("pythonpath", [])
    mode = [a for a in str(pytest_cfg.get("addopts", "")).split() if a.startswith("--import-mode")]
    (workdir / "pyproject.toml").write_text(
        "[tool.mutmut]\n"
        'source_paths = ["src"]\n'
        f"only_mutate = {_toml_list([spec['file']])}\n"
        f"pytest_add_cli_args_test_selection = {_toml_list(spec['tests'])}\n"
        f'pytest_add_cli_args = {_toml_list(["-p", "no:cacheprovider", "-q", "-p", "no:randomly", *mode])}\n'
        'process_isolation = "fork"\n'
        "use_git_change_detection = false\n"
        "\n[tool.pytest.ini_options]\n"
        'testpaths = ["tests"]\n'
        f"markers = {_toml_list(markers)}\n"
        f"pythonpath = {_toml_list(pythonpath)}\n"
    )


def parse_results(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        m = STATUS_RE.match(line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def run_module(key: str, spec: dict, pytest_cfg: dict, timeout: int, base: Path) -> dict:
    workdir = base / key
    prepare(workdir, spec, pytest_cfg)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "QT_QPA_PLATFORM": "offscreen"}
    # mutmut puts mutants/src first on sys.path itself (a PYTHONPATH to it breaks its coverage stats), so
    # tests that start `python -m eacfer` in a child would import another tree: leave those out of the lists
    env.pop("PYTHONPATH", None)
    mutmut = [sys.executable, "-m", "mutmut"]
    names = spec.get("functions", [])
    t0 = time.monotonic()
    try:
        r = subprocess.run(["nice", "-n", "15", *mutmut, "run", "--max-children", "1", *names], cwd=workdir,
                           env=env, timeout=timeout, capture_output=True, text=True)
        log = r.stdout[-4000:] + r.stderr[-4000:]
        timed_out = False
    except subprocess.TimeoutExpired as e:
        log = f"timed out after {timeout} s\n" + (e.stdout or b"")[-4000:].decode(errors="replace")
        timed_out = True
    seconds = time.monotonic() - t0
    res = subprocess.run([*mutmut, "results", "--all", "true"], cwd=workdir, env=env, capture_output=True, text=True)
    statuses = parse_results(res.stdout)
    if names:  # keep only the mutants of the selected functions
        pats = [re.compile(re.escape(n).replace(r"\*", ".*")) for n in names]
        statuses = {k: v for k, v in statuses.items() if any(p.fullmatch(k) for p in pats)}
    counts: dict[str, int] = {}
    for v in statuses.values():
        counts[v] = counts.get(v, 0) + 1
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    # "no tests" mutants are counted as survivors: code that no listed test reaches is untested code
    survivors = sorted(k for k, v in statuses.items() if v in ("survived", "no tests", "suspicious"))
    judged = killed + len(survivors)
    diffs = {}
    for name in survivors:
        show = subprocess.run([*mutmut, "show", name], cwd=workdir, env=env, capture_output=True, text=True)
        diffs[name] = show.stdout.strip()
    return {"module": key, "file": spec["file"], "tests": spec["tests"], "counts": counts, "killed": killed,
            "judged": judged, "score": round(100.0 * killed / judged, 1) if judged else None,
            "survivors": diffs, "seconds": round(seconds), "timed_out": timed_out, "log_tail": log[-2000:]}


def write_reports(results: list[dict], base: Path) -> None:
    (base / "report.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["| module | file | killed / mutants | score | seconds |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['module']} | `{r['file']}` | {r['killed']} / {r['judged']} | {r['score']} % | "
                     f"{r['seconds']}{' (timed out)' if r['timed_out'] else ''} |")
    for r in results:
        if r["survivors"]:
            lines += ["", f"## {r['module']}: surviving mutants", ""]
            for name, diff in r["survivors"].items():
                lines += [f"### {name}", "```diff", diff, "```"]
    (base / "report.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mcfg = cfg["tool"]["eacfer-mutation"]
    modules: dict[str, dict] = mcfg["modules"]
    for spec in modules.values():  # a module without `tests` is paired with its tests by the layout
        spec.setdefault("tests", layout_tests(spec["file"]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="*", choices=[[], *modules], help="module keys (default: all, in order)")
    ap.add_argument("--timeout", type=int, default=int(mcfg.get("timeout_s", 1800)), help="seconds per module")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "mutation")
    args = ap.parse_args(argv)
    keys = args.modules or list(modules)
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    report = args.out / "report.json"
    previous = {r["module"]: r for r in json.loads(report.read_text())} if report.exists() else {}
    for key in keys:
        print(f"[mutation] {key}: {modules[key]['file']} …", flush=True)
        r = run_module(key, modules[key], cfg["tool"]["pytest"]["ini_options"], args.timeout, args.out)
        print(f"[mutation] {key}: {r['killed']}/{r['judged']} killed ({r['score']} %), {r['seconds']} s"
              f"{', TIMED OUT' if r['timed_out'] else ''}; counts {r['counts']}", flush=True)
        previous[key] = r
        results = [previous[k] for k in modules if k in previous]
        write_reports(results, args.out)
    target = float(mcfg.get("target_percent", 90))
    low = [r["module"] for r in results if r["module"] in keys and (r["score"] or 0) < target]
    print(f"[mutation] report: {args.out / 'report.md'}; below {target:g} %: {low or 'none'}")
    return 1 if low else 0


if __name__ == "__main__":
    raise SystemExit(main())
