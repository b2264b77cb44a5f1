#!/usr/bin/env python3
"""One-off migration of issue #27 ("tests you can find"), kept in the repository for history and replay.

Run after ``tools/relayout.py`` (it uses the new module names). Unit tests move to ``tests/<package>/
test_<module>.py`` (mirroring ``src/eacfer``), end-to-end behaviour (CLI, hardening, docs, demo, regressions,
benchmark scripts) to ``tests/e2e/``; the former ``test_spec_*.py`` files become ``test_<module>_spec.py`` next
to their module's tests and carry ``pytestmark = pytest.mark.spec`` (``pytest -m spec`` runs them). The helper
modules (conftest.py, ``*_testutils.py``, hostile.py, dataset_makers.py, inference_fixtures.py, fixtures/ …)
stay in ``tests/`` and stay importable as top-level modules: pytest's ``pythonpath`` gains ``tests`` and the
import mode becomes ``importlib`` (test files in different folders may share a base name).

One run: ``git mv`` s the files of :data:`TEST_MOVES` (commit "move only"), then rewrites paths to them in the
repository (pyproject's mutation map, Makefile, docs), ``Path(__file__)`` parents in the moved files, adds the
spec marker, the pytest settings, and commits that separately. Idempotent (a second run changes nothing);
a listed file that is missing is skipped with a warning; a ``tests/test_*.py`` file not in the mapping is
listed for a person to place.

Usage::

    python tools/relayout_tests.py --dry-run
    python tools/relayout_tests.py
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

# --- the mapping: tests/<old>.py -> tests/<new>.py ---------------------------------------------------------
_U = {  # unit tests, mirroring src/eacfer
    "test_spec_atomic": "utils/test_atomic_spec",
    "test_progress": "utils/test_progress",
    "test_run_folder": "utils/test_outdir",
    "test_affectnet": "data/formats/test_affectnet",
    "test_ferplus": "data/formats/test_ferplus",
    "test_datasets": "data/test_datasets",
    "test_imageio": "data/test_imageio",
    "test_labels": "data/test_labels",
    "test_spec_labels_files": "data/test_labels_files_spec",
    "test_spec_labels_noise": "data/test_labels_noise_spec",
    "test_resample": "data/test_resample",
    "test_synth": "data/test_synth",
    "test_spec_transforms": "data/test_transforms_spec",
    "test_cross_dataset": "data/test_classes",
    "test_loss": "models/test_loss",
    "test_spec_loss": "models/test_loss_spec",
    "test_soft_labels": "models/test_loss_soft_labels",
    "test_model": "models/test_backbones",
    "test_spec_eac": "models/test_eac_spec",
    "test_spec_resnet_caffe": "models/test_resnet_caffe_spec",
    "test_spec_caffe_weights": "models/test_caffe_weights_spec",
    "test_engine": "training/test_engine",
    "test_trainer": "training/test_trainer",
    "test_spec_summary": "training/test_summary_spec",
    "test_confidence": "training/test_confidence",
    "test_eval": "training/test_evaluation",
    "test_recipe": "training/test_config",
    "test_val_fraction": "training/test_calibrate",
    "test_wandb": "training/test_wandb_log",
    "test_fast_augment": "training/fast/test_gpu_augment",
    "test_fast_cache": "training/fast/test_cache",
    "test_fast_pipeline": "training/fast/test_loader",
    "test_fast_step": "training/fast/test_step",
    "test_fast_distributed": "training/fast/test_distributed",
    "test_fast_trainer": "training/fast/test_runner",
    "test_fast_cuda_settings": "training/fast/test_cuda_settings",
    "test_align": "infer/test_align",
    "test_landmark_align": "infer/test_align_landmarks",
    "test_face_framing": "infer/test_align_framing",
    "test_predictor": "infer/test_predictor",
    "test_viz": "infer/test_viz",
    "test_cropcheck": "infer/test_cropcheck",
    "test_uncertain_tta": "infer/test_labelling",
    "test_detect": "infer/detect/test_detectors",
    "test_detect_litert": "infer/detect/test_litert_backend",
    "test_finder": "infer/detect/test_finder",
    "test_tiles": "infer/detect/test_tiles",
    "test_backends": "infer/runtime/test_backends",
    "test_quantize": "infer/runtime/test_quantize",
    "test_starter_model": "infer/runtime/test_starter",
    "test_pipeline": "infer/stream/test_pipeline",
    "test_reuse": "infer/stream/test_reuse",
    "test_tracking": "infer/stream/test_tracking",
    "test_spec_tracking": "infer/stream/test_tracking_spec",
    "test_live_session": "infer/stream/test_live",
    "test_predict_jobs": "infer/jobs/test_photos",
    "test_video": "infer/jobs/test_video",
    "test_spec_video_memory": "infer/jobs/test_video_memory_spec",
    "test_video_jobs": "infer/jobs/test_videos",
    "test_ray_jobs": "infer/jobs/test_ray_jobs",
    "test_through_detector": "infer/jobs/test_wild_eval",
    "test_spec_export_parity": "test_export_parity_spec",
    "test_official_import": "official/test_importer",
    "test_weights_import": "official/test_mapping",
    "test_serve": "serve/test_app",
    "test_serve_docs": "serve/test_docs",
    "test_ui": "ui/test_app",
    "test_ui_core": "ui/test_core",
    "test_ui_details": "ui/test_details",
    "test_bench_compare": "bench/test_baseline",
    "test_bench_efficiency": "bench/test_efficiency",
    "test_bench_noisy": "bench/test_noisy",
    "test_bench_report": "bench/test_report",
    "test_face_recipe": "infer/test_recipe",
    "test_frames_csv": "infer/test_results",
    "test_seams": "infer/test_protocols",
    "test_training_seams": "training/test_pipelines",
    "test_spec_runtime_no_torch": "e2e/test_runtime_no_torch_spec",
}
_E = [  # end-to-end behaviour: through the CLI, the docs, the demo, whole runs, benchmark scripts
    "test_cli_help", "test_cli_predict", "test_cli_train", "test_cli_video", "test_demo", "test_doctests",
    "test_notebook", "test_readme_snippets", "test_regressions", "test_resume", "test_readable_results",
    "test_layout", "test_ddp", "test_gpu_ready", "test_gpu_probe", "test_fast_benchmark",
    "test_serve_browser", "test_serve_load", "test_hardening_cli", "test_hardening_dataset_links",
    "test_hardening_datasets", "test_hardening_fuzz", "test_hardening_inputs", "test_hardening_jobs",
    "test_hardening_kill", "test_hardening_models", "test_hardening_video",
    "test_cli_train_parser", "test_one_rule", "test_runtime_fixture", "test_torch_free_runtime",
]
TEST_MOVES: dict[str, str] = {f"tests/{k}.py": f"tests/{v}.py" for k, v in _U.items()}
TEST_MOVES.update({f"tests/{k}.py": f"tests/e2e/{k}.py" for k in _E})

#: Already where the layout puts them (tests/test_export.py mirrors src/eacfer/export.py).
STAY = {"test_export.py"}

#: Where paths to test files are rewritten.
REWRITE = ["pyproject.toml", "Makefile", "docs", "README.md", "tests", "tools", "benchmarks", ".github"]
SKIP_FILES = {"tools/relayout.py", "tools/relayout_tests.py"}
PYTEST_MARK = 'markers = ["slow: slower end-to-end tests (still run in CI)"]'
PYTEST_NEW = ('markers = ["slow: slower end-to-end tests (still run in CI)",\n'
              '           "spec: checks written from the paper or a specification (the mutation targets)"]\n'
              '# tests/<package>/ mirrors src/eacfer; helpers stay in tests/ and import as top-level modules;\n'
              '# importlib mode: test files in different folders may share a base name\n'
              'pythonpath = [".", "tests"]')
PYTHONPATH_OLD = 'pythonpath = ["."]\n'


def say(msg: str) -> None:
    print(f"relayout_tests: {msg}")


def warn(msg: str) -> None:
    print(f"relayout_tests: warning: {msg}", file=sys.stderr)


def git(root: Path, *args: str) -> str:
    r = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"relayout_tests: git {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


def fix_file_parents(text: str, depth: int) -> str:
    """``Path(__file__).parent`` in tests/x.py -> ``.parents[depth]`` once the file is ``depth`` folders deeper."""

    def repl(m: re.Match[str]) -> str:
        tail = m.group(2)
        level = 1 if tail == ".parent.parent" else 0 if tail == ".parent" else int(m.group(3))
        return f"__file__){m.group(1) or ''}.parents[{level + depth}]"

    return re.sub(r"__file__\)(\.resolve\(\))?(\.parent\.parent|\.parents\[(\d+)\]|\.parent)(?![\w\[])", repl, text)


def add_spec_mark(text: str) -> str:
    """``pytestmark = pytest.mark.spec`` after the module's top-level imports (``import pytest`` added if needed)."""
    if "pytest.mark.spec" in text:
        return text
    tree = ast.parse(text)
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    has_pytest = any(isinstance(n, ast.Import) and any(a.name == "pytest" for a in n.names) for n in imports)
    lines = text.split("\n")
    at = imports[-1].end_lineno if imports else (tree.body[0].end_lineno if tree.body else 0)
    add = ([] if has_pytest else ["import pytest"]) + [
        "", "pytestmark = pytest.mark.spec  # written from the paper or a specification (`pytest -m spec`)"]
    lines[at:at] = add
    return "\n".join(lines)


def prune_mutation_map(root: Path, dry: bool) -> bool:
    """Drop a mutation module's ``tests = [...]`` where the layout gives the same files (run_mutation.py then
    derives them: ``layout_tests``); lists that differ from the layout stay, as chosen by hand."""
    import importlib.util

    runner = root / "tests" / "mutation" / "run_mutation.py"
    spec = importlib.util.spec_from_file_location("_run_mutation", runner)
    if spec is None or spec.loader is None or not runner.is_file():
        return False
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if not hasattr(mod, "layout_tests"):
        warn("tests/mutation/run_mutation.py has no layout_tests: mutation map left as it is")
        return False
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    entry = re.compile(r'^(\[tool\.eacfer-mutation\.modules\.\w+\]\nfile = "([^"]+)"\n)(tests = (\[[^\]]*\])\n)', re.M)

    def repl(m: re.Match[str]) -> str:
        listed = json.loads(m.group(4))
        derived = mod.layout_tests(m.group(2), root)
        return m.group(1) if derived and sorted(listed) == sorted(derived) else m.group(0)

    new = entry.sub(repl, text)
    new = new.replace("with only the test files listed here", "with only its test files (listed here, or by the "
                      "layout: tests/<package>/test_<module>[_*].py)", 1)
    if new != text and not dry:
        pyproject.write_text(new, encoding="utf-8")
    return new != text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--no-commit", action="store_true")
    args = ap.parse_args(argv)
    root = Path(git(Path.cwd(), "rev-parse", "--show-toplevel").strip())
    dry, commit = args.dry_run, not (args.dry_run or args.no_commit)
    assert not set(TEST_MOVES.values()) & set(TEST_MOVES), "a new name is also an old one"

    moved: list[tuple[str, str]] = []
    for old, new in TEST_MOVES.items():
        if (root / old).exists() and not (root / new).exists():
            moved.append((old, new))
        elif not (root / new).exists():
            warn(f"{old} is missing: skipped")
    for old, new in moved:
        say(f"move {old} -> {new}")
        if not dry:
            (root / new).parent.mkdir(parents=True, exist_ok=True)
            git(root, "mv", old, new)
    if commit and moved:
        git(root, "commit", "-q", "-m", "relayout tests (#27): move only — tests/<package>/ mirrors src/eacfer, "
            "tests/e2e/ end-to-end (tools/relayout_tests.py)")
        say("committed the moves")
    for p in sorted((root / "tests").glob("test_*.py")):
        if p.name not in STAY and f"tests/{p.name}" not in TEST_MOVES.values():
            warn(f"tests/{p.name} is not in the mapping: place it (TEST_MOVES)")

    changed: set[Path] = set()
    # Path(__file__) in the files moved by this run (a second run moves nothing, so changes nothing here)
    for old, new in moved:
        f = root / new
        depth = len(Path(new).parts) - 2
        text = f.read_text(encoding="utf-8") if not dry else (root / old).read_text(encoding="utf-8")
        fixed = fix_file_parents(text, depth)
        if fixed != text:
            changed.add(f)
            if not dry:
                f.write_text(fixed, encoding="utf-8")
    # the spec marker on the former test_spec_* files
    for old, new in TEST_MOVES.items():
        f = root / new
        if "test_spec_" in old and f.exists():
            text = f.read_text(encoding="utf-8")
            marked = add_spec_mark(text)
            if marked != text:
                changed.add(f)
                if not dry:
                    f.write_text(marked, encoding="utf-8")
    # paths to the moved test files everywhere else
    alts = "|".join(re.escape(o) for o in sorted(TEST_MOVES, key=len, reverse=True))
    pat = re.compile(rf"(?<![\w/.])({alts})(?![\w])")
    bare = re.compile(r"(?<![\w/.\-])(" + "|".join(re.escape(o[len("tests/"):]) for o in
                      sorted(TEST_MOVES, key=len, reverse=True)) + r")(?![\w])")
    # a test module that imports another (`from test_ui import qapp`): tests/ is on sys.path, so the moved
    # module is reached through its folders (namespace packages), e.g. `from ui.test_app import qapp`
    dotted = {Path(o).stem: ".".join(Path(n).with_suffix("").parts[1:]) for o, n in TEST_MOVES.items()}
    mods = re.compile(r"^([ \t]*from )(" + "|".join(sorted(dotted, key=len, reverse=True)) + r")(?= import )", re.M)
    for r in REWRITE:
        p = root / r
        for f in ([p] if p.is_file() else sorted(p.rglob("*")) if p.is_dir() else []):
            rel = f.relative_to(root).as_posix()
            if not f.is_file() or rel in SKIP_FILES or f.suffix not in {".py", ".md", ".toml", ".yml", ""}:
                continue
            if "__pycache__" in f.parts or "fixtures" in f.parts:
                continue
            text = f.read_text(encoding="utf-8", errors="surrogateescape")
            new = pat.sub(lambda m: TEST_MOVES[m.group(1)], text)
            if f.suffix == ".md":  # docs name test files bare: `test_spec_loss.py` -> `models/test_loss_spec.py`
                new = bare.sub(lambda m: TEST_MOVES["tests/" + m.group(1)][len("tests/"):], new)
            if f.suffix == ".py" and "tests" in f.relative_to(root).parts[:1]:
                new = mods.sub(lambda m: m.group(1) + dotted[m.group(2)], new)
            if new != text:
                changed.add(f)
                if not dry:
                    f.write_text(new, encoding="utf-8", errors="surrogateescape")
    # pytest settings: the spec marker, tests/ on sys.path, importlib mode
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    new = text
    if '"spec:' not in new:
        new = new.replace(PYTEST_MARK, PYTEST_NEW, 1).replace(PYTHONPATH_OLD, "", 1)
    if "--import-mode=importlib" not in new:
        new = new.replace('addopts = "-ra"', 'addopts = "-ra --import-mode=importlib"', 1)
    if new != text:
        changed.add(pyproject)
        if not dry:
            pyproject.write_text(new, encoding="utf-8")
    if prune_mutation_map(root, dry):
        changed.add(pyproject)
    for f in sorted(changed):
        say(f"rewrite {f.relative_to(root)}")
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    py = [str(f) for f in changed if f.suffix == ".py"]
    if py and not dry and ruff:  # an added `import pytest` or a rewritten import may sort elsewhere
        subprocess.run([ruff, "check", "--fix", "--select", "I", "--quiet", *py], cwd=root)
    if commit and changed:
        git(root, "add", "-u")
        git(root, "commit", "-q", "-m", "relayout tests (#27): paths to the moved tests, Path(__file__) parents, "
            "spec marker, pytest pythonpath/importlib mode (tools/relayout_tests.py)")
        say("committed the rewrite")
    if not (moved or changed):
        say("nothing to do: the tests are already laid out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
