"""Nonsense arguments for every command: one-line error on stderr, exit code 2, never a traceback.

Each command line runs in its own process (``hostile.run_cli_cases``: one interpreter imports eacfer and
torch once, then forks a child per case running ``python -m eacfer``'s code path), so a crash anywhere —
argument parsing, validation, loading — shows up as the interpreter's own traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import hostile

# (argv template, words the error must contain — one of the |-separated alternatives, case-insensitive)
# {data}: tiny synthetic RAF-DB, {model}: a valid model.pt, {file}: a plain file, {tmp}: scratch folder,
# {evil_pt}/{evil_pkl}: hostile pickles, {clip}: a valid tiny video
TRAIN = ["train", "--data", "{data}", "--backbone", "mobilenet_v2", "--epochs", "1", "--workers", "0",
         "--image-size", "32", "--out", "{tmp}/run", "--pretrained", "none"]
EVAL = ["eval", "--data", "{data}", "--checkpoint", "{model}", "--out", "{tmp}/ev"]
PREDICT = ["predict", "{face}", "--checkpoint", "{model}", "--out", "{tmp}/pr"]
VIDEO = ["video", "{clip}", "--checkpoint", "{model}", "--out", "{tmp}/vi"]
EXPORT = ["export", "--checkpoint", "{model}", "--out", "{tmp}/m.onnx"]


def _with(base: list[str], flag: str, value: str | None = None) -> list[str]:
    """``base`` with ``flag`` set to ``value`` (replacing it if present; appended otherwise)."""
    out = list(base)
    if flag in out and value is not None:
        out[out.index(flag) + 1] = value
        return out
    return out + ([flag] if value is None else [flag, value])


CASES: list[tuple[list[str], str]] = [
    # --- train
    (_with(TRAIN, "--epochs", "-3"), "--epochs"),
    (_with(TRAIN, "--epochs", "0"), "--epochs"),
    (_with(TRAIN, "--epochs", "many"), "invalid int"),
    (_with(TRAIN, "--batch-size", "0"), "--batch-size"),
    (_with(TRAIN, "--backbone", "vgg99"), "unknown backbone|vgg99"),
    (_with(TRAIN, "--data", "{tmp}/missing"), "missing"),
    (_with(TRAIN, "--data", "{file}"), "afile"),
    (_with(TRAIN, "--out", "{file}"), "afile"),
    (_with(TRAIN, "--lr", "-1"), "--lr"),
    (_with(TRAIN, "--lr", "nan"), "--lr"),
    (_with(TRAIN, "--gamma", "0"), "--gamma"),
    (_with(TRAIN, "--lam", "-1"), "--lam"),
    (_with(TRAIN, "--weight-decay", "inf"), "--weight-decay"),
    (_with(TRAIN, "--noise-rate", "1.5"), "--noise-rate"),
    (_with(TRAIN, "--noise-rate", "nan"), "--noise-rate"),
    (_with(TRAIN, "--image-size", "0"), "--image-size"),
    (_with(TRAIN, "--workers", "-1"), "--workers"),
    (_with(TRAIN, "--device", "tpu"), "--device"),
    (_with(TRAIN, "--format", "imagenet"), "format"),
    (_with(TRAIN, "--method", "magic"), "invalid choice"),
    (_with(TRAIN, "--pipeline", "warp"), "pipeline"),
    (_with(TRAIN, "--pretrained", "{tmp}/missing.pth"), "missing.pth"),
    (_with(TRAIN, "--pretrained", "{file}"), "afile"),
    (_with(TRAIN, "--label-file", "{tmp}/missing.txt"), "missing.txt"),
    (_with(_with(TRAIN, "--backbone", "resnet50_msceleb"), "--pretrained", "{file}"), "afile"),
    (["train", "--data", "{data}"], "required"),
    # --- eval
    (_with(EVAL, "--checkpoint", "{tmp}/missing.pt"), "missing.pt"),
    (_with(EVAL, "--checkpoint", "{tmp}"), "folder|directory"),
    (_with(EVAL, "--checkpoint", "{file}"), "afile"),
    (_with(EVAL, "--batch-size", "0"), "--batch-size|batch"),
    (_with(EVAL, "--workers", "-2"), "--workers|workers"),
    (_with(EVAL, "--data", "{tmp}/missing"), "missing"),
    (_with(EVAL, "--out", "{file}"), "afile"),
    (_with(EVAL, "--split", "validation"), "invalid choice"),
    (_with(EVAL, "--device", "tpu"), "device"),
    (_with(EVAL, "--format", "imagenet"), "format"),
    # --- synth
    (["synth", "{tmp}/s", "--train", "-5"], "--train|>= 0"),
    (["synth", "{tmp}/s", "--size", "0"], "--size|size"),
    (["synth", "{tmp}/s", "--size", "-20"], "--size|size"),
    (["synth", "{file}", "--train", "2", "--test", "1"], "afile"),
    # --- demo
    (["demo", "--epochs", "-1", "--out", "{tmp}/d"], "--epochs|epochs"),
    (["demo", "--out", "{file}"], "afile"),
    # --- predict
    (_with(PREDICT, "--checkpoint", "{tmp}/missing.pt"), "missing.pt"),
    (_with(PREDICT, "--checkpoint", "{file}"), "afile"),
    (["predict", "{tmp}/nothing_here", "--checkpoint", "{model}", "--out", "{tmp}/pr"], "nothing_here"),
    (_with(PREDICT, "--out", "{file}"), "afile"),
    (_with(PREDICT, "--score-threshold", "2"), "--score-threshold"),
    (_with(PREDICT, "--threads", "0"), "--threads"),
    (_with(PREDICT, "--detector", "hal9000"), "hal9000"),
    (_with(PREDICT, "--device", "tpu"), "device|tpu"),
    (_with(PREDICT, "--backend", "tensorrt"), "invalid choice"),
    # --- video
    (_with(VIDEO, "--every", "0"), "--every"),
    (_with(VIDEO, "--every", "-2"), "--every"),
    (_with(VIDEO, "--max-frames", "-1"), "--max-frames"),
    (_with(VIDEO, "--smooth", "2"), "--smooth"),
    (_with(VIDEO, "--iou", "-1"), "--iou"),
    (_with(VIDEO, "--max-age", "-1"), "--max-age"),
    (_with(VIDEO, "--out", "{file}"), "afile"),
    (_with(VIDEO, "--checkpoint", "{tmp}/missing.pt"), "missing.pt"),
    (["video", "{tmp}/missing.mp4", "--checkpoint", "{model}", "--out", "{tmp}/vi"], "missing.mp4"),
    # a folder is a many-video source (issue 17); one without videos is the error
    (["video", "{data}", "--checkpoint", "{model}", "--out", "{tmp}/vi"], "folder|directory"),
    (["video", "{file}", "--checkpoint", "{model}", "--out", "{tmp}/vi"], "afile"),
    (["video", "97", "--checkpoint", "{model}", "--out", "{tmp}/vi"], "camera 97"),  # no such camera
    # --- export
    (_with(EXPORT, "--opset", "3"), "opset"),
    (_with(EXPORT, "--opset", "999"), "opset"),
    (_with(EXPORT, "--out", "{tmp}/m.txt"), ".onnx"),
    (_with(EXPORT, "--out", "{tmp}"), "folder|.onnx"),
    (_with(EXPORT, "--checkpoint", "{tmp}/missing.pt"), "missing.pt"),
    (_with(EXPORT, "--checkpoint", "{file}"), "afile"),
    # --- weights
    (["weights", "verify", "{tmp}/missing.pkl"], "missing.pkl"),
    (["weights", "verify", "{file}"], "afile"),
    (["weights", "verify"], "file"),
    # --- bench
    (["bench", "noisy", "--data", "{tmp}/missing", "--out", "{tmp}/b"], "missing"),
    (["bench", "efficiency", "--batch", "0", "--out", "{tmp}/b", "--no-onnx", "--video-frames", "0"], "--batch|batch"),
    (["bench", "efficiency", "--iters", "0", "--out", "{tmp}/b", "--no-onnx", "--video-frames", "0"], "--iters|iters"),
    (["bench", "efficiency", "--image-size", "0", "--out", "{tmp}/b", "--no-onnx", "--video-frames", "0"], "size"),
    (["bench", "efficiency", "--backbones", "vgg99", "--out", "{tmp}/b", "--no-onnx", "--video-frames", "0"], "vgg99"),
    (["bench", "report", "--inputs", "{tmp}/missing", "--out", "{tmp}/r"], "missing"),
    # --- ui (checked before any window opens)
    (["ui", "--size", "big"], "--size"),
    (["ui", "--quit-after", "-5"], "--quit-after"),
    (["ui", "--classify-every", "0"], "--classify-every"),
    # --- top level
    (["fly"], "invalid choice"),
    ([], "required|command"),
]


@pytest.fixture(scope="module")
def cli_results(synth_rafdb, tmp_path_factory):
    from inference_testutils import FACE, save_random_model

    tmp = tmp_path_factory.mktemp("cli_hostile")
    (tmp / "afile").write_text("I am a file, not a folder or a model\n")
    model = save_random_model(tmp / "model.pt")
    clip = tmp / "clip.avi"
    _write_clip(clip)
    subs = {"{data}": str(synth_rafdb), "{model}": str(model), "{file}": str(tmp / "afile"), "{tmp}": str(tmp),
            "{face}": str(FACE), "{clip}": str(clip)}

    def fill(arg: str) -> str:
        for k, v in subs.items():
            arg = arg.replace(k, v)
        return arg

    # each case its own output folder: cases run two at a time, and an output folder (train, predict, video, ...)
    # is locked while a job uses it — two cases sharing one would see each other's lock, not their own error
    def own_out(argv: list[str], i: int) -> list[str]:
        return [a + f"_{i}" if n and argv[n - 1] == "--out" and a.startswith("{tmp}/") and "." not in a else a
                for n, a in enumerate(argv)]

    argvs = [[fill(a) for a in own_out(argv, i)] for i, (argv, _) in enumerate(CASES)]
    env = {"EACFER_CACHE_DIR": str(tmp / "cache"), "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp / "home")}
    results = hostile.run_cli_cases(argvs, tmp / "work", env=env, timeout=90)
    return {i: (argvs[i], *results[i]) for i in range(len(CASES))}


def _write_clip(path: Path) -> None:
    import cv2
    import numpy as np

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(3):
        w.write(np.full((48, 64, 3), 40 * i, np.uint8))
    w.release()


@pytest.mark.parametrize("i", range(len(CASES)), ids=[" ".join(a[:3]) + f"#{n}" for n, (a, _) in enumerate(CASES)])
def test_bad_argument(cli_results, i):
    argv, rc, out, err = cli_results[i]
    words = CASES[i][1]
    assert "Traceback" not in err + out, f"{argv}\n{err[-3000:]}"
    assert rc == 2, f"{argv}: exit {rc}\nstdout: {out[-800:]}\nstderr: {err[-1500:]}"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines, argv
    last = lines[-1]
    assert last.startswith("eacfer") and "error:" in last, f"{argv}: last stderr line {last!r}"
    # exactly one error line (argparse prints its usage above it; logging must not add a second error)
    assert sum("error:" in ln for ln in lines) == 1, err
    assert any(w.lower() in last.lower() for w in words.split("|")), f"{argv}: {last!r} lacks {words!r}"
