#!/usr/bin/env python3
"""One-off migration of issue #27 ("infer/ in rooms", "names"), kept in the repository for history and replay.

It moves the flat ``eacfer/infer/*.py`` modules into rooms (``runtime/``, ``stream/``, ``jobs/``), renames the
modules whose names meant two things, and rewrites every reference. It was written while other branches were
still changing the same files, so it is a *script* replayed on the merged tree rather than a branch of moves.

What one run does (``python tools/relayout.py`` from anywhere inside the checkout; stdlib only):

1. creates the new packages (``__init__.py`` with a one-line docstring);
2. ``git mv`` s each module of :data:`MOVES` whose old file exists, and commits that alone ("move only", so
   ``git log --follow`` keeps each file's history);
3. rewrites references in :data:`REWRITE_ROOTS`: dotted paths (imports, ``mock.patch("eacfer.x.y")`` strings,
   mutmut globs, docs), ``from eacfer.infer import batch`` imports, file paths (``src/eacfer/infer/batch.py``,
   ``infer/batch.py``), ``:mod:`.leaf``` references in the old parent package's ``__init__``, and
   ``Path(__file__).parents[N] / "x"`` that no longer reach ``x``; appends the import-linter contracts of
   ``tools/relayout_contracts.toml`` to pyproject.toml; sorts the touched imports with ruff when it is on
   PATH; commits that separately.

It is idempotent (a second run finds nothing to move or rewrite and commits nothing) and tolerant: a module
of :data:`MOVES` that exists neither at its old nor at its new place is skipped with a warning, and a module
in ``eacfer/infer/`` that :data:`MOVES` does not place is listed, for a person to decide.

Usage::

    python tools/relayout.py --dry-run   # print the plan, change nothing
    python tools/relayout.py             # move + commit, rewrite + commit (needs a clean work tree)
    python tools/relayout.py --no-commit # leave both steps staged/unstaged for review
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

# --- the mapping (old module -> new module) -------------------------------------------------------------------
MOVES: dict[str, str] = {
    # infer/runtime/: running the classifier (backends, onnxruntime sessions and their cache, int8, the starter model)
    "eacfer.infer.backends": "eacfer.infer.runtime.backends",
    "eacfer.infer.onnx_session": "eacfer.infer.runtime.onnx_session",
    "eacfer.infer.quantize": "eacfer.infer.runtime.quantize",
    "eacfer.infer.calibration": "eacfer.infer.runtime.calibration",
    "eacfer.infer.starter": "eacfer.infer.runtime.starter",
    "eacfer.infer.torch_backend": "eacfer.infer.runtime.torch_backend",  # the .pt side, reached only lazily
    # infer/stream/: frames in order (sources, the threaded/sequential pipeline, label carry-over, tracking, live)
    "eacfer.infer.sources": "eacfer.infer.stream.sources",
    "eacfer.infer.pipeline": "eacfer.infer.stream.pipeline",
    "eacfer.infer.reuse": "eacfer.infer.stream.reuse",
    "eacfer.infer.tracking": "eacfer.infer.stream.tracking",
    "eacfer.infer.live": "eacfer.infer.stream.live",
    # infer/jobs/: resumable jobs that write files (photo folders, their ledger and worker pool, Ray, videos)
    "eacfer.infer.batch": "eacfer.infer.jobs.photos",  # "batch" did no batching: a job over photos
    "eacfer.infer.batch_ledger": "eacfer.infer.jobs.ledger",
    "eacfer.infer.batch_pool": "eacfer.infer.jobs.pool",
    "eacfer.infer.batch_ray": "eacfer.infer.jobs.ray_jobs",  # not jobs/ray.py: reads like the ray package
    "eacfer.infer.video": "eacfer.infer.jobs.video",  # one video -> annotated.mp4, frames.csv, summary.json
    "eacfer.infer.videojob": "eacfer.infer.jobs.videos",  # one or many videos as a resumable job
    "eacfer.infer.writers": "eacfer.infer.jobs.writers",
    "eacfer.infer.wild_eval": "eacfer.infer.jobs.wild_eval",
    # names: "detect" is face detection only, "pipeline" is threaded/sequential frames only
    "eacfer.data.formats.detect": "eacfer.data.formats.sniff",  # which layout a dataset folder uses
    "eacfer.training.fast.pipeline": "eacfer.training.fast.loader",  # FastLoader: batches from the uint8 cache
}

#: Modules that stay at ``eacfer/infer/`` on purpose (anything else found there is reported as unmapped).
#: ``onnx_cache`` belongs in runtime/, but RetinaFace (detect/) reads its cache root: moved there, it would make
#: a circle detect <-> runtime. Add ``"eacfer.infer.onnx_cache": "eacfer.infer.runtime.onnx_cache"`` to MOVES
#: and replay once RetinaFace takes its folder from the shared cache module (#27 "one cache module").
STAY_IN_INFER = {"__init__", "predictor", "results", "align", "labelling", "viz", "rgb", "cropcheck", "onnx_cache",
                 "recipe", "protocols", "detection_stage"}

#: One-line docstrings of the packages the moves create.
NEW_PACKAGES: dict[str, str] = {
    "eacfer.infer.runtime": "Running the face classifier: torch/onnxruntime backends, ONNX sessions and their "
                            "cache, int8 quantisation, the starter model.",
    "eacfer.infer.stream": "Frames in order: sources, the threaded/sequential pipeline, label carry-over, "
                           "tracking, live streams.",
    "eacfer.infer.jobs": "Jobs that write files: photo folders (ledger, worker pool, Ray) and videos.",
}

#: Where references are rewritten (relative to the checkout root); files, or folders searched recursively.
REWRITE_ROOTS = ["src", "tests", "benchmarks", "notebooks", "docs", "testdata", "tools", "README.md",
                 "pyproject.toml", "Makefile", ".github"]
REWRITE_SUFFIXES = {".py", ".md", ".toml", ".ipynb", ".txt", ".cfg", ".ini", ".yml", ".yaml", ".rst", ""}
#: Never rewritten: this migration's own records of the old names.
SKIP_FILES = {"tools/relayout.py", "tools/relayout_tests.py"}
CONTRACTS_FILE = "tools/relayout_contracts.toml"
CONTRACTS_MARK = "# --- rooms of eacfer.infer (issue #27, tools/relayout.py) ---"


def warn(msg: str) -> None:
    print(f"relayout: warning: {msg}", file=sys.stderr)


def say(msg: str) -> None:
    print(f"relayout: {msg}")


def git(root: Path, *args: str, check: bool = True) -> str:
    r = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"relayout: git {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


def module_file(root: Path, module: str) -> Path:
    """``eacfer.infer.batch`` -> ``<root>/src/eacfer/infer/batch.py`` (packages: ``.../__init__.py``)."""
    p = root / "src" / Path(*module.split("."))
    return p / "__init__.py" if p.is_dir() else p.with_suffix(".py")


def check_mapping(moves: dict[str, str]) -> None:
    """A new name that is also an old name would make a second run rewrite again: refuse such a mapping."""
    clash = set(moves.values()) & set(moves)
    if clash:
        raise SystemExit(f"relayout: new names that are also old names: {sorted(clash)}")
    for old, new in moves.items():
        if new.startswith(old + "."):
            raise SystemExit(f"relayout: {new} lies inside {old}; a second run would rewrite it again")


# --- step 1+2: packages and moves ------------------------------------------------------------------------------
def plan_moves(root: Path, moves: dict[str, str]) -> list[tuple[str, str]]:
    todo = []
    for old, new in moves.items():
        src, dst = module_file(root, old), module_file(root, new)
        if src.exists() and dst.exists():
            warn(f"both {src.relative_to(root)} and {dst.relative_to(root)} exist: {old} not moved, merge by hand")
        elif src.exists():
            todo.append((old, new))
        elif not dst.exists():
            warn(f"{old} is missing (neither {src.relative_to(root)} nor {dst.relative_to(root)}): skipped")
    return todo


def make_packages(root: Path, dry: bool) -> list[Path]:
    made = []
    for pkg, doc in NEW_PACKAGES.items():
        init = root / "src" / Path(*pkg.split(".")) / "__init__.py"
        if not init.exists():
            made.append(init)
            if not dry:
                init.parent.mkdir(parents=True, exist_ok=True)
                init.write_text(f'"""{doc}"""\n', encoding="utf-8")
    return made


def do_moves(root: Path, todo: list[tuple[str, str]], dry: bool) -> None:
    for old, new in todo:
        src, dst = module_file(root, old), module_file(root, new)
        say(f"move {src.relative_to(root)} -> {dst.relative_to(root)}")
        if not dry:
            dst.parent.mkdir(parents=True, exist_ok=True)
            git(root, "mv", str(src.relative_to(root)), str(dst.relative_to(root)))


def unmapped_in_infer(root: Path, moves: dict[str, str]) -> list[str]:
    """Modules directly in eacfer/infer/ that are neither moved by MOVES nor meant to stay there."""
    infer = root / "src" / "eacfer" / "infer"
    moved = {m.rsplit(".", 1)[1] for m in moves if m.startswith("eacfer.infer.") and m.count(".") == 2}
    return sorted(p.stem for p in infer.glob("*.py") if p.stem not in STAY_IN_INFER | moved)


# --- step 3: rewrite references ---------------------------------------------------------------------------------
def dotted_pattern(moves: dict[str, str]) -> re.Pattern[str]:
    alts = "|".join(re.escape(m) for m in sorted(moves, key=len, reverse=True))
    # not part of a longer dotted name on the left; a whole name on the right (batch is not batch_ledger)
    return re.compile(rf"(?<![\w.])({alts})(?![\w])")


def path_pattern(moves: dict[str, str]) -> tuple[re.Pattern[str], dict[str, str]]:
    """Old file paths relative to src/eacfer (``infer/batch.py``), with or without ``src/eacfer/`` in front."""
    paths = {"/".join(o.split(".")[1:]) + ".py": "/".join(n.split(".")[1:]) + ".py" for o, n in moves.items()}
    alts = "|".join(re.escape(p) for p in sorted(paths, key=len, reverse=True))
    return re.compile(rf"(?<![\w.\-])({alts})(?![\w])"), paths


def from_import_pattern(moves: dict[str, str]) -> re.Pattern[str]:
    parents = sorted({o.rsplit(".", 1)[0] for o in moves}, key=len, reverse=True)
    alts = "|".join(re.escape(p) for p in parents)
    # single line (`from a.b import x, y as z  # comment`) or parenthesised over several lines
    return re.compile(rf"^(?P<ind>[ \t]*)from (?P<pkg>{alts}) import "
                      rf"(?:\((?P<paren>[^)]*)\)|(?P<line>[^\n(]*?))(?P<tail>[ \t]*#[^\n]*)?$", re.M)


def rewrite_from_imports(text: str, moves: dict[str, str], pat: re.Pattern[str]) -> str:
    """``from eacfer.infer import batch, video as v`` -> one import per moved module, local names kept."""

    def repl(m: re.Match[str]) -> str:
        pkg, ind = m.group("pkg"), m.group("ind")
        body = m.group("paren") if m.group("paren") is not None else m.group("line")
        items = [i.strip() for i in re.sub(r"#[^\n]*", "", body).replace("\n", " ").split(",") if i.strip()]
        keep, new_lines = [], []
        for item in items:
            name, _, alias = (p.strip() for p in item.partition(" as "))
            target = moves.get(f"{pkg}.{name}")
            if target is None:
                keep.append(item)
                continue
            new_pkg, new_name = target.rsplit(".", 1)
            local = alias or name
            new_lines.append(f"{ind}from {new_pkg} import {new_name}" + ("" if local == new_name else f" as {local}"))
        if not new_lines:
            return m.group(0)
        tail = m.group("tail") or ""
        if keep:
            new_lines.insert(0, f"{ind}from {pkg} import {', '.join(keep)}{tail}")
        elif tail:
            new_lines[0] += tail
        return "\n".join(new_lines)

    return pat.sub(repl, text)


def rewrite_relative_mod_refs(text: str, parent_pkg: str, moves: dict[str, str]) -> str:
    """In a package's ``__init__``: ``:mod:`.batch``` -> ``:mod:`.jobs.photos``` (or the absolute name)."""
    for old, new in moves.items():
        pkg, leaf = old.rsplit(".", 1)
        if pkg != parent_pkg:
            continue
        rel = "." + new[len(pkg) + 1:] if new.startswith(pkg + ".") else new
        text = re.sub(rf":mod:`\.{re.escape(leaf)}`", f":mod:`{rel}`", text)
    return text


def fix_file_relative_paths(text: str, path: Path) -> str:
    """``Path(__file__).resolve().parents[N] / "assets"`` that no longer reaches ``assets`` after a move."""

    def repl(m: re.Match[str]) -> str:
        n, first = int(m.group(2)), m.group(3)
        parents = path.resolve().parents
        if n < len(parents) and (parents[n] / first).exists():
            return m.group(0)
        for k in range(len(parents)):
            if (parents[k] / first).exists():
                return f"{m.group(1)}[{k}] / \"{first}\""
        return m.group(0)

    return re.sub(r'(Path\(__file__\)\.resolve\(\)\.parents)\[(\d+)\] / "([\w.\-]+)"', repl, text)


def files_to_rewrite(root: Path) -> list[Path]:
    out = []
    for r in REWRITE_ROOTS:
        p = root / r
        cands = [p] if p.is_file() else (sorted(p.rglob("*")) if p.is_dir() else [])
        for f in cands:
            rel = f.relative_to(root).as_posix()
            if (f.is_file() and f.suffix in REWRITE_SUFFIXES and rel not in SKIP_FILES
                    and not any(part.startswith(".") and part != ".github" for part in f.relative_to(root).parts)
                    and "__pycache__" not in f.parts):
                out.append(f)
    return out


def rewrite_text(text: str, f: Path, root: Path, moves: dict[str, str], moved: set[Path]) -> str:
    dotted = dotted_pattern(moves)
    paths_re, paths = path_pattern(moves)
    if f.suffix == ".py":
        text = rewrite_from_imports(text, moves, from_import_pattern(moves))
        if f in moved:
            text = fix_file_relative_paths(text, f)
        if f.name == "__init__.py" and (root / "src") in f.parents:
            pkg = ".".join(f.parent.relative_to(root / "src").parts)
            text = rewrite_relative_mod_refs(text, pkg, moves)
    text = dotted.sub(lambda m: moves[m.group(1)], text)
    text = paths_re.sub(lambda m: paths[m.group(1)], text)
    return text


def leftover_mentions(files: list[Path], root: Path, moves: dict[str, str]) -> list[str]:
    """Bare old file names (``batch_pool.py``) and notebook from-imports a person should look at."""
    # only names that changed and are not still used by another module (stream/pipeline.py, infer/detect/)
    names = {o.rsplit(".", 1)[1] + ".py" for o, n in moves.items()
             if o.rsplit(".", 1)[1] != n.rsplit(".", 1)[1] and o.rsplit(".", 1)[1] not in {"detect", "pipeline"}}
    pat = re.compile(r"(?<![\w/.])(" + "|".join(map(re.escape, sorted(names))) + r")\b")
    notes = []
    for f in files:
        text = f.read_text(encoding="utf-8", errors="replace")
        for i, line in enumerate(text.splitlines(), 1):
            if pat.search(line):
                notes.append(f"{f.relative_to(root)}:{i}: {line.strip()[:120]}")
    return notes


def append_contracts(root: Path, dry: bool) -> bool:
    pyproject, contracts = root / "pyproject.toml", root / CONTRACTS_FILE
    if not contracts.exists():
        warn(f"{CONTRACTS_FILE} missing: no room contracts added")
        return False
    text = pyproject.read_text(encoding="utf-8")
    if CONTRACTS_MARK in text:
        return False
    body = contracts.read_text(encoding="utf-8")
    body = body[body.index(CONTRACTS_MARK):] if CONTRACTS_MARK in body else body
    anchor = "\n# Mutation testing"  # keep the contracts together with the other import-linter tables
    block = body.rstrip() + "\n"
    text = text.replace(anchor, "\n" + block + anchor, 1) if anchor in text else text.rstrip() + "\n\n" + block
    if not dry:
        pyproject.write_text(text, encoding="utf-8")
    say(f"pyproject.toml: import-linter contracts of {CONTRACTS_FILE} added")
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="print what would change; change nothing")
    ap.add_argument("--no-commit", action="store_true", help="do not commit (the moves stay staged)")
    ap.add_argument("--allow-dirty", action="store_true", help="run on a work tree with uncommitted changes")
    args = ap.parse_args(argv)
    root = Path(git(Path.cwd(), "rev-parse", "--show-toplevel").strip())
    check_mapping(MOVES)
    dry, commit = args.dry_run, not (args.dry_run or args.no_commit)
    if not dry and not args.allow_dirty and git(root, "status", "--porcelain", "--untracked-files=no").strip():
        raise SystemExit("relayout: the work tree has uncommitted changes; commit them or pass --allow-dirty")

    # 1+2: packages and moves, in a commit of their own
    todo = plan_moves(root, MOVES)
    made = make_packages(root, dry) if todo else []
    for init in made:
        say(f"new package {init.parent.relative_to(root)}")
        if not dry:
            git(root, "add", str(init.relative_to(root)))
    do_moves(root, todo, dry)
    if commit and (todo or made):
        git(root, "commit", "-q", "-m", "relayout (#27): move only — infer/ into runtime/, stream/, jobs/; "
            "data/formats/detect.py -> sniff.py, training/fast/pipeline.py -> loader.py (tools/relayout.py)")
        say("committed the moves")
    for name in unmapped_in_infer(root, MOVES):
        warn(f"eacfer/infer/{name}.py is not in the mapping: decide its room (MOVES / STAY_IN_INFER)")

    # 3: references, in a second commit
    files = files_to_rewrite(root)
    moved = {module_file(root, new) for new in MOVES.values()}
    changed = []
    for f in files:
        text = f.read_text(encoding="utf-8", errors="surrogateescape")
        new = rewrite_text(text, f, root, MOVES, moved)
        if f.suffix == ".ipynb" and new != text:
            json.loads(new)  # still a notebook
        if new != text:
            changed.append(f)
            say(f"rewrite {f.relative_to(root)}")
            if not dry:
                f.write_text(new, encoding="utf-8", errors="surrogateescape")
    added = append_contracts(root, dry)
    py = [str(f) for f in changed if f.suffix == ".py"]
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    if py and not dry and ruff:  # a rewritten import may now sort elsewhere
        subprocess.run([ruff, "check", "--fix", "--select", "I", "--quiet", *py], cwd=root)
    for note in leftover_mentions(files, root, MOVES):
        warn(f"bare old file name, check by hand: {note}")
    if commit and (changed or added):
        git(root, "add", "-u")
        git(root, "commit", "-q", "-m", "relayout (#27): rewrite imports, patch targets, paths and docs for the "
            "new module names; import-linter contracts of the rooms (tools/relayout.py)")
        say("committed the rewrite")
    if not (todo or made or changed or added):
        say("nothing to do: the tree is already laid out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
