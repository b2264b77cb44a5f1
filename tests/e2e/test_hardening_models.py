"""Model files from strangers: hostile pickles never run, damaged files give a clear error naming the file,
ONNX files are checked, ``--resume`` refuses another experiment, and a kill during a save loses nothing.

Every loader is exercised through the real command line (``eacfer train/eval/predict/video/export/weights``,
one process per command line, see ``hostile.run_cli_cases``) and through the Python API.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import hostile
from eacfer.checkpoint import load_checkpoint, load_model
from eacfer.modelinfo import CheckpointError

TRAIN = ["-q", "train", "--backbone", "mobilenet_v2", "--epochs", "1", "--batch-size", "16", "--image-size", "32",
         "--workers", "0", "--device", "cpu", "--no-tensorboard", "--pretrained", "none"]


@pytest.fixture(scope="module")
def run_dir(synth_rafdb, tmp_path_factory) -> Path:
    """A finished 1-epoch run (real ``python -m eacfer train``): last.pt, model.pt, config.yaml…"""
    out = tmp_path_factory.mktemp("hardening_run") / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "eacfer", *TRAIN, "--data", str(synth_rafdb), "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=400)
    assert p.returncode == 0, p.stderr[-3000:]
    assert (out / "last.pt").is_file() and (out / "model.pt").is_file()
    return out


@pytest.fixture(scope="module")
def onnx_file(run_dir, tmp_path_factory) -> Path:
    from eacfer.export import export_onnx

    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(run_dir / "model.pt", out)
    return out


@pytest.fixture(scope="module")
def files(run_dir, onnx_file, synth_rafdb, tmp_path_factory) -> dict[str, Path]:
    """Hostile, truncated and corrupted copies of every model format, plus run folders built from them."""
    d = tmp_path_factory.mktemp("model_files")
    f: dict[str, Path] = {"marker": d / "PWNED", "data": synth_rafdb, "tmp": d, "model": run_dir / "model.pt",
                          "onnx": onnx_file, "face": hostile.FACE}
    good_model = torch.load(run_dir / "model.pt", weights_only=True)
    good_last = torch.load(run_dir / "last.pt", weights_only=True)
    f["evil_model"] = hostile.write_hostile_pt(d / "evil_model.pt", f["marker"], good_model)
    # `eacfer video` refuses a photo before it opens the model (#30): its model cases need a real clip
    from eacfer.data.imageio import load_image
    from inference_testutils import make_clip

    f["clip"] = make_clip(d / "clip.mp4", load_image(hostile.FACE), frames=3, size=(160, 120))
    f["evil_pkl"] = hostile.write_hostile_pickle(d / "evil.pkl", f["marker"])
    f["evil_pkl_p0"] = hostile.write_hostile_pickle(d / "evil_p0.pkl", f["marker"], protocol=0)
    f["evil_state"] = hostile.write_hostile_pt(d / "evil_state.pth", f["marker"], {"conv.weight": torch.zeros(1)})
    f["cut_model"] = hostile.truncate_copy(run_dir / "model.pt", d / "cut_model.pt", 0.6)
    f["bad_model"] = hostile.corrupt_copy(run_dir / "model.pt", d / "corrupt_model.pt", 0.5)
    f["cut_onnx"] = hostile.truncate_copy(onnx_file, d / "cut.onnx", 0.6)
    f["bad_onnx"] = hostile.corrupt_copy(onnx_file, d / "corrupt.onnx", 0.02, length=512)
    pkl = d / "good.pkl"
    import pickle

    import numpy as np

    pkl.write_bytes(pickle.dumps({f"k{i}": np.zeros((64, 64), np.float32) for i in range(8)}, protocol=2))
    f["cut_pkl"] = hostile.truncate_copy(pkl, d / "cut.pkl", 0.5)
    import torchvision

    torch.save(torchvision.models.mobilenet_v2().state_dict(), d / "mnv2.pth")
    f["bad_state"] = hostile.corrupt_copy(d / "mnv2.pth", d / "corrupt_mnv2.pth", 0.5)
    # run folders for --resume: hostile / truncated / corrupted last.pt next to a copy of the run
    for name, make in {
        "evil_run": lambda p: hostile.write_hostile_pt(p, f["marker"], good_last),
        "cut_run": lambda p: hostile.truncate_copy(run_dir / "last.pt", p, 0.6),
        "junk_run": lambda p: torch.save({"epoch": "one", "config": 5, "history": 7}, p),
    }.items():
        r = d / name
        shutil.copytree(run_dir, r)
        make(r / "last.pt")
        (r / "model.pt").unlink()  # an unfinished run: what --resume is for
        f[name] = r
    return f


# (argv template, words one of which the error line must contain)
CASES: list[tuple[list[str], str]] = [
    (["eval", "--data", "{data}", "--checkpoint", "{evil_model}", "--out", "{tmp}/e1"], "refused"),
    (["predict", "{face}", "--checkpoint", "{evil_model}", "--out", "{tmp}/p1", "--detector", "none"], "refused"),
    (["predict", "{face}", "--checkpoint", "{evil_model}", "--out", "{tmp}/p1b", "--backend", "torch"], "refused"),
    (["video", "{clip}", "--checkpoint", "{evil_model}", "--out", "{tmp}/v1"], "refused"),
    (["export", "--checkpoint", "{evil_model}", "--out", "{tmp}/x1.onnx"], "refused"),
    ([*TRAIN, "--data", "{data}", "--out", "{evil_run}", "--resume"], "refused"),
    ([*TRAIN, "--data", "{data}", "--out", "{tmp}/t1", "--backbone", "resnet50_msceleb", "--pretrained", "{evil_pkl}"],
     "refus"),
    ([*TRAIN, "--data", "{data}", "--out", "{tmp}/t2", "--backbone", "resnet50_msceleb", "--pretrained",
      "{evil_pkl_p0}"], "refus"),
    ([*TRAIN, "--data", "{data}", "--out", "{tmp}/t3", "--pretrained", "{evil_state}"], "weights_only|refus|unsupported"),
    (["weights", "verify", "{evil_pkl}"], "refus"),
    # truncated / corrupted files of each format: a clear error naming the file
    (["eval", "--data", "{data}", "--checkpoint", "{cut_model}", "--out", "{tmp}/e2"], "truncated|corrupt"),
    (["eval", "--data", "{data}", "--checkpoint", "{bad_model}", "--out", "{tmp}/e3"], "truncated|corrupt"),
    (["predict", "{face}", "--checkpoint", "{cut_model}", "--out", "{tmp}/p2", "--detector", "none"], "truncated|corrupt"),
    (["predict", "{face}", "--checkpoint", "{cut_onnx}", "--out", "{tmp}/p3", "--detector", "none"], "truncated|corrupt"),
    (["predict", "{face}", "--checkpoint", "{bad_onnx}", "--out", "{tmp}/p4", "--detector", "none"], "truncated|corrupt"),
    ([*TRAIN, "--data", "{data}", "--out", "{cut_run}", "--resume"], "truncated|corrupt"),
    ([*TRAIN, "--data", "{data}", "--out", "{junk_run}", "--resume"], "cannot resume"),
    ([*TRAIN, "--data", "{data}", "--out", "{tmp}/t4", "--backbone", "resnet50_msceleb", "--pretrained", "{cut_pkl}"],
     "not a readable|truncat"),
    (["weights", "verify", "{cut_pkl}"], "not a readable|truncat"),
    ([*TRAIN, "--data", "{data}", "--out", "{tmp}/t5", "--pretrained", "{bad_state}"], "corrupt"),
    (["export", "--checkpoint", "{cut_model}", "--out", "{tmp}/x2.onnx"], "truncated|corrupt"),
]


@pytest.fixture(scope="module")
def cli_results(files):
    subs = {f"{{{k}}}": str(v) for k, v in files.items()}

    def fill(a: str) -> str:
        for k, v in subs.items():
            a = a.replace(k, v)
        return a

    argvs = [[fill(a) for a in argv] for argv, _ in CASES]
    env = {"EACFER_CACHE_DIR": str(files["tmp"] / "cache")}
    res = hostile.run_cli_cases(argvs, files["tmp"] / "work", env=env, timeout=120)
    return [(argvs[i], *res[i]) for i in range(len(CASES))]


def test_hostile_payload_is_live(files, tmp_path):
    """The probes are real: unrestricted unpickling of the same files does create the marker."""
    import pickle

    probe = tmp_path / "probe"
    torch.load(hostile.write_hostile_pt(tmp_path / "p.pt", probe), weights_only=False)
    assert probe.exists()
    probe.unlink()
    pickle.loads(hostile.write_hostile_pickle(tmp_path / "p.pkl", probe).read_bytes())
    assert probe.exists()


@pytest.mark.parametrize("i", range(len(CASES)), ids=[f"{a[0] if a[0] != '-q' else 'train'}#{n}"
                                                      for n, (a, _) in enumerate(CASES)])
def test_model_file_refused_by_cli(cli_results, files, i):
    argv, rc, out, err = cli_results[i]
    assert "Traceback" not in err + out, f"{argv}\n{err[-3000:]}"
    assert rc == 2, f"{argv}: exit {rc}\n{out[-500:]}\n{err[-1500:]}"
    last = [ln for ln in err.splitlines() if ln.strip()][-1]
    assert last.startswith("eacfer") and "error:" in last, last
    # the message names the damaged file…
    named = [a for a in argv if Path(a).name.startswith(("evil", "cut", "corrupt", "junk")) or "_run" in a]
    assert named and any(Path(n).name in last for n in named), last
    assert any(w.lower() in last.lower() for w in CASES[i][1].split("|")), last
    # …and no payload ever ran
    assert not files["marker"].exists()


def test_python_api_refuses_hostile_files(files):
    from eacfer.infer.predictor import Predictor
    from eacfer.models.resnet_caffe import UnsafePickleError, load_numpy_pickle

    with pytest.raises(CheckpointError, match="evil_model.pt: refused"):
        load_model(files["evil_model"])
    with pytest.raises(CheckpointError, match="last.pt: refused"):
        load_checkpoint(files["evil_run"] / "last.pt")
    with pytest.raises(CheckpointError, match="refused"):
        Predictor.from_checkpoint(files["evil_model"], device="cpu", detector="none")
    with pytest.raises(UnsafePickleError):
        load_numpy_pickle(files["evil_pkl"])
    assert not files["marker"].exists()


def test_corrupted_model_never_loads_silently(files):
    """Same size, damaged bytes in the middle of the weights: refused, not garbage weights."""
    with pytest.raises(CheckpointError, match="corrupt_model.pt"):
        load_model(files["bad_model"])


def test_onnx_metadata_and_shape_checked_by_cli(files, onnx_file, tmp_path):
    import onnx

    from eacfer.commands.cli import main

    m = onnx.load(str(onnx_file))
    meta = {p.key: p.value for p in m.metadata_props}
    del m.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(m.SerializeToString())
    for k, v in {**meta, "input_size": json.dumps(48)}.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    lying = tmp_path / "lying.onnx"
    lying.write_bytes(m.SerializeToString())
    for path, words in ((bare, "without eacfer metadata"), (lying, "does not match")):
        with pytest.raises(CheckpointError, match=words):
            from eacfer.infer.runtime.backends import load_classifier

            load_classifier(path, device="cpu")
        rc = main(["predict", str(hostile.FACE), "--checkpoint", str(path), "--out", str(tmp_path / "o"),
                   "--detector", "none"])
        assert rc == 2


HOSTILE_METADATA = {
    "huge_input": {"input_size": 100_000},       # would make every crop 30 GB
    "std0": {"std": [0.0, 0.0, 0.0]},            # NaN probabilities
    "nan_mean": {"mean": [float("nan")] * 3},
    "dup_classes": {"class_names": ["a"] * 7},   # colliding p_<class> columns
    "empty_class": {"class_names": [""] * 7},
    "classes_str": {"class_names": "abcdefg"},   # a string is not a list of 7 names
    "state_not_dict": {"state_dict": 5},
    "version_str": {"format_version": "x"},
    "float_input": {"input_size": 64.7},
    "mean_str": {"mean": "abc"},
    "huge_face": {"face_size": 10**9},           # would make every face crop gigabytes
    "face_str": {"face_size": "100"},
    "face_bool": {"face_size": True},
}


@pytest.mark.parametrize("name", list(HOSTILE_METADATA))
def test_hostile_metadata_refused(run_dir, tmp_path, name):
    """A loadable file whose metadata would exhaust memory, give NaN or collide in the outputs: refused."""
    good = torch.load(run_dir / "model.pt", weights_only=True)
    path = tmp_path / f"{name}.pt"
    torch.save({**good, **HOSTILE_METADATA[name]}, path)
    with pytest.raises(CheckpointError, match=f"{name}.pt: "):
        load_model(path)


def test_hostile_onnx_metadata_refused(onnx_file, tmp_path):
    import onnx

    from eacfer.infer.runtime.backends import load_classifier

    m = onnx.load(str(onnx_file))
    for p in m.metadata_props:
        if p.key == "std":
            p.value = json.dumps([0.0, 0.0, 0.0])
    bad = tmp_path / "std0.onnx"
    bad.write_bytes(m.SerializeToString())
    with pytest.raises(CheckpointError, match="std0.onnx: .*std"):
        load_classifier(bad, device="cpu")


RESUME_CASES = {
    "backbone": ["--backbone", "resnet18"],
    "noise": ["--noise-rate", "0.25"],
    "method": ["--method", "ce"],
}


def test_resume_refuses_another_configuration(run_dir, synth_rafdb, tmp_path):
    """Other backbone / labels / method / dataset: refused unless --force (which then resumes)."""
    other_data = tmp_path / "other data"
    shutil.copytree(synth_rafdb, other_data)
    cases = []
    for name, extra in RESUME_CASES.items():
        r = tmp_path / f"run_{name}"
        shutil.copytree(run_dir, r)
        cases.append([*TRAIN, "--data", str(synth_rafdb), "--out", str(r), "--resume", *extra])
    r = tmp_path / "run_data"
    shutil.copytree(run_dir, r)
    cases.append([*TRAIN, "--data", str(other_data), "--out", str(r), "--resume"])
    # --force: resumes the other-dataset run for one more epoch
    r2 = tmp_path / "run_forced"
    shutil.copytree(run_dir, r2)
    cases.append([*TRAIN, "--data", str(other_data), "--out", str(r2), "--resume", "--force", "--epochs", "2"])
    res = hostile.run_cli_cases(cases, tmp_path / "work", timeout=300)
    for argv, (rc, _out, err) in zip(cases[:-1], res[:-1], strict=True):
        assert "Traceback" not in err and rc == 2, (argv, rc, err[-2000:])
        assert "different run" in err and "--force" in err and "last.pt" in err, err
    rc, out, err = res[-1]
    assert rc == 0, err[-2000:]
    metrics = (r2 / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 3  # header + epoch 1 (from the checkpoint) + epoch 2


# ------------------------------------------------------------------------------------ kill during save
SAVER = r"""
import sys, torch
from eacfer.checkpoint import save_checkpoint
from eacfer.utils.atomic import write_json
path, jpath = sys.argv[1], sys.argv[2]
i = int(sys.argv[3])
print("ready", flush=True)
while True:
    i += 1
    save_checkpoint(path, {"version": i, "blob": torch.full((1_500_000,), float(i))})
    write_json(jpath, {"version": i, "values": list(range(i % 500 + 2000))})
"""


def test_kill_during_save_leaves_a_complete_previous_version(tmp_path):
    """A process saving last.pt (6 MB) and a JSON in a loop is SIGKILLed at random moments, 4 times:
    afterwards both files always load and hold one complete version."""
    path, jpath = tmp_path / "last.pt", tmp_path / "summary.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rng = random.Random(0)
    last_version = 0
    versions_seen = []
    for _ in range(4):
        p = subprocess.Popen([sys.executable, "-c", SAVER, str(path), str(jpath), str(last_version)],
                             stdout=subprocess.PIPE, env=env, text=True)
        assert p.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline:  # at least one complete save first
            time.sleep(0.01)
        time.sleep(rng.uniform(0.05, 0.6))
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        ck = load_checkpoint(path)
        v = int(ck["version"])
        assert torch.equal(ck["blob"], torch.full((1_500_000,), float(v))), v
        j = json.loads(jpath.read_text())
        assert j["values"] == list(range(j["version"] % 500 + 2000))
        assert v >= last_version
        last_version = v
        versions_seen.append(v)
    assert versions_seen[-1] > versions_seen[0]  # it really was saving over and over


#: writes that are not finished outputs, each with the reason it needs no temporary-file + rename
NOT_OUTPUTS = {
    # the prediction job's streamed rows: hidden `.partial` files appended and flushed per finished file, renamed
    # into place at the end; a kill keeps every complete row and resume rebuilds them from the ledger (issue #17)
    "infer/jobs/ledger.py": ('open(self._p(name), "a"', "streamed .partial files"),
    # the int8 converter's scratch copy of the fp32 graph, inside a private TemporaryDirectory
    "infer/runtime/quantize.py": ("raw.write_bytes(fp32)", "scratch file in a TemporaryDirectory"),
}


def test_every_output_writer_is_atomic():
    """Static check of src/ (by syntax tree, so docstrings and help texts do not count): each call that
    writes a file writes to a temporary path from eacfer.utils.atomic (or is the atomic module itself)."""
    import ast

    src = Path(__file__).resolve().parents[2] / "src" / "eacfer"
    writer_attrs = {"imwrite", "savefig", "write_bytes", "write_text", "copy", "copy2", "copyfile", "tofile"}
    offenders = []
    for f in sorted(src.rglob("*.py")):
        if f.name == "atomic.py":
            continue
        text = f.read_text(encoding="utf-8")
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
            owner = ast.unparse(fn.value) if isinstance(fn, ast.Attribute) else ""
            writes = (
                (isinstance(fn, ast.Attribute) and name in writer_attrs)
                or (name == "save" and owner in ("torch", "np", "numpy"))
                or (name == "VideoWriter" and owner == "cv2")
                or (name == "open" and isinstance(fn, ast.Name) and len(node.args) > 1
                    and isinstance(node.args[1], ast.Constant) and set(str(node.args[1].value)) & set("wax"))
            )
            if not writes or (not node.args and name not in ("write_bytes", "write_text")):
                continue
            if name in ("write_bytes", "write_text"):
                target = owner  # Path.write_bytes: the receiver is the path
            elif name in ("copy", "copy2", "copyfile") or (name == "save" and owner == "torch"):
                target = ast.unparse(node.args[-1])  # shutil.copy(src, DST), torch.save(obj, F)
            else:
                target = ast.unparse(node.args[0])
            prev = lines[node.lineno - 2] if node.lineno > 1 else ""
            # e.g. `with atomic_path(p) as tmp:` … `torch.save(obj, tmp)`; `open(tmp, "wb") as fh` … `np.save(fh, a)`
            if "tmp" in target or (target == "fh" and "tmp" in prev):
                continue
            if any(f.as_posix().endswith(k) and v[0] in lines[node.lineno - 1] for k, v in NOT_OUTPUTS.items()):
                continue
            offenders.append(f"{f.relative_to(src)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not offenders, "non-atomic writes:\n" + "\n".join(offenders)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    from eacfer.utils.atomic import atomic_open, write_json

    target = tmp_path / "x.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write('{"half": ')
        raise RuntimeError("disk full")
    assert json.loads(target.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]
