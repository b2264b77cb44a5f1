"""Generators of the hostile-input corpus used by ``tests/test_hardening_*.py`` (no binary blobs committed).

Everything here is built at test time from the real face in ``tests/fixtures/faces/astronaut.jpg``:

* :func:`write_image_corpus` — a folder of valid images in every awkward encoding plus broken files, with
  the expected outcome of each (``"face"``, ``"ok"`` or ``"error"``);
* :func:`write_bomb_png` — a genuine decompression bomb (a few hundred KB that would decode to gigabytes);
* :func:`write_hostile_pickle` / :func:`write_hostile_pt` — pickles whose loading would create a marker file;
* :func:`truncate_copy` / :func:`corrupt_copy` — damaged copies of any file;
* :func:`run_cli_cases` — run many ``eacfer`` command lines, each in its own forked process (see there).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np

FACE = Path(__file__).parent / "fixtures" / "faces" / "astronaut.jpg"


# ----------------------------------------------------------------------------------------------- images
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_bomb_png(path: Path, side: int = 60_000) -> Path:
    """A real 1-bit ``side``×``side`` PNG of zeros: ~``side**2/8/1000`` bytes on disk, ``3*side**2`` bytes as RGB.

    With the default side it is ~0.4 MB on disk and would need >10 GB to decode.
    """
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    parts = [comp.compress(row * 1000) for _ in range(side // 1000)]
    parts.append(comp.compress(row * (side % 1000)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1 bit, grayscale
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(parts)) + _png_chunk(b"IEND", b"")
    path.write_bytes(data)
    return path


def face_rgb() -> np.ndarray:
    from PIL import Image

    with Image.open(FACE) as im:
        return np.asarray(im.convert("RGB"))


def write_big_jpeg(path: Path, size: tuple[int, int] = (9000, 7000)) -> Path:
    """A ``size`` (w, h) JPEG: flat background with the face enlarged ×8 in the middle (cheap to encode)."""
    from PIL import Image

    im = Image.new("RGB", size, (120, 130, 140))
    face = Image.fromarray(face_rgb()).resize((4096, 4096), Image.Resampling.NEAREST)
    im.paste(face, ((size[0] - 4096) // 2, (size[1] - 4096) // 2))
    im.save(path, quality=80)
    return path


def _exif(orientation: int):
    from PIL import Image

    ex = Image.Exif()
    ex[0x0112] = orientation
    return ex


# What an upright image must undergo to be stored with each EXIF orientation (the inverse of exif_transpose).
_STORE_FOR_ORIENTATION = {
    3: lambda a: np.rot90(a, 2),
    6: lambda a: np.rot90(a, 1),   # stored rotated 90° counter-clockwise; viewer turns it clockwise
    8: lambda a: np.rot90(a, -1),
}


def write_image_corpus(root: Path) -> dict[str, str]:
    """Write the hostile image folder under ``root``; returns ``{relative path: expected}``.

    ``expected`` is ``"face"`` (a readable image that shows the astronaut upright), ``"ok"`` (readable, no
    face expected), ``"error:<words>"`` (must be reported, the reason mentioning one of the ``|``-separated
    words) or ``"ignored"`` (not an image by name: must not appear at all).
    """
    from PIL import Image

    rgb = face_rgb()
    im = Image.fromarray(rgb)
    expected: dict[str, str] = {}

    def put(rel: str, what: str) -> Path:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        expected[rel] = what
        return p

    im.save(put("plain.jpg", "face"), quality=92)
    im.save(put("nested/deeper still/visage été ü 表情.jpg", "face"), quality=92)
    im.convert("L").save(put("gray.png", "face"))
    im.convert("LA").save(put("gray_alpha.png", "face"))
    im.convert("RGBA").save(put("rgba.png", "face"))
    im.convert("P", palette=Image.Palette.ADAPTIVE).save(put("palette.gif", "face"))
    Image.fromarray((rgb.mean(2) * 257).astype(np.uint16)).save(put("sixteen bit.png", "face"))
    im.convert("CMYK").save(put("cmyk.jpg", "face"), quality=92)
    im.save(put("photo.webp", "face"), quality=90)
    for o, store in _STORE_FOR_ORIENTATION.items():
        Image.fromarray(np.ascontiguousarray(store(rgb))).save(put(f"exif_{o}.jpg", "face"), exif=_exif(o), quality=92)
    Image.new("RGB", (1, 1), (200, 10, 10)).save(put("one_pixel.png", "ok"))
    Image.new("L", (1, 1), 7).save(put("one_pixel_gray.jpg", "ok"))
    Image.new("RGB", (320, 200), (40, 120, 200)).save(put("UPPER CASE.JPG", "ok"))
    write_big_jpeg(put("big_9000x7000.jpg", "face"))

    full_jpg = (root / "plain.jpg").read_bytes()
    put("zero.jpg", "error:empty").write_bytes(b"")
    put("truncated.jpg", "error:truncat|corrupt").write_bytes(full_jpg[: len(full_jpg) // 3])
    put("header_only.jpg", "error:truncat|corrupt").write_bytes(full_jpg[:200])
    png = (root / "rgba.png").read_bytes()
    put("truncated.png", "error:truncat|corrupt").write_bytes(png[: len(png) // 2])
    put("text.jpg", "error:text|not an image").write_text("this is a note, not a photo\n", encoding="utf-8")
    put("random.png", "error:not an image|unrecognised").write_bytes(np.random.default_rng(0).bytes(3000))
    write_bomb_png(put("bomb.png", "error:bomb|pixels"))
    os.mkfifo(put("a pipe.jpg", "error:regular file|empty"))  # reading it would block forever
    put("dangling.png", "error:not found").symlink_to(root / "no such target.png")
    put("folder.jpg/inside.png", "face").parent.mkdir(parents=True, exist_ok=True)
    im.save(root / "folder.jpg/inside.png")
    put("readme.txt", "ignored").write_text("a stray non-image file")
    put("data.json", "ignored").write_text("{}")
    put(".hidden.jpg", "ignored").write_bytes(full_jpg)
    return expected


# ----------------------------------------------------------------------------------------------- pickles
class HostilePayload:
    """Unpickling this runs ``exec`` that writes ``marker`` — the payload is live (see the tests' probes)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        code = f"open({self.marker!r}, 'w').write('pwned')"
        return (exec, (code,))


def write_hostile_pickle(path: Path, marker: Path, protocol: int = 2) -> Path:
    """A ``.pkl`` shaped like the MS-Celeb weights (dict of arrays) with one hostile value."""
    obj = {"conv1.weight": np.zeros((2, 2), np.float32), "bn1.weight": HostilePayload(str(marker))}
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def write_hostile_pt(path: Path, marker: Path, template: dict | None = None) -> Path:
    """A torch.save file: ``template`` (e.g. a real model/last.pt dict) plus one hostile value."""
    import torch

    obj = dict(template or {"format": "eacfer-model"})
    obj["evil"] = HostilePayload(str(marker))
    torch.save(obj, path)
    return path


# ----------------------------------------------------------------------------------------------- damage
def truncate_copy(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: max(1, int(len(data) * fraction))])
    return dst


def corrupt_copy(src: Path, dst: Path, start: float = 0.3, length: int = 4096, seed: int = 0) -> Path:
    """Same size as ``src`` but ``length`` bytes overwritten with random ones at ``start`` (fraction)."""
    data = bytearray(src.read_bytes())
    i = int(len(data) * start)
    n = min(length, len(data) - i)
    data[i:i + n] = np.random.default_rng(seed).bytes(n)
    dst.write_bytes(bytes(data))
    return dst


# ----------------------------------------------------------------------------------------------- CLI driver
_DRIVER = r"""
import json, os, runpy, sys, time, traceback, signal
cases = json.loads(sys.stdin.read())
OUTDIR = os.environ["EACFER_TEST_CLI_OUTDIR"]
import eacfer.commands.cli  # noqa: F401  (pre-import the heavy modules once; each case forks from here)
for mod in ("torch", "torchvision", "eacfer.training.trainer", "eacfer.checkpoint", "eacfer.models", "eacfer.data.datasets",
            "eacfer.export", "eacfer.infer.runtime.backends", "eacfer.training.evaluation", "PIL.Image", "cv2"):
    try:
        __import__(mod)
    except Exception:
        pass
JOBS = int(os.environ.get("EACFER_TEST_CLI_JOBS", "2"))


def start(i, argv):
    out_path, err_path = f"{OUTDIR}/{i}.out", f"{OUTDIR}/{i}.err"
    pid = os.fork()
    if pid:
        return pid
    fo, fe = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fo, 1); os.dup2(fe, 2)
    sys.argv = ["eacfer", *argv]
    code = 0
    try:
        runpy.run_module("eacfer", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code
        else:
            print(e.code, file=sys.stderr); code = 1
    except BaseException:
        traceback.print_exc(); code = 1   # exactly what the interpreter would print
    try:
        sys.stdout.flush(); sys.stderr.flush()
    finally:
        os._exit(code)


results = [None] * len(cases)
pending = list(enumerate(cases))
running = {}  # pid -> (index, started, timeout)
while pending or running:
    while pending and len(running) < JOBS:
        i, (argv, timeout) = pending.pop(0)
        running[start(i, argv)] = (i, time.monotonic(), timeout)
    for pid, (i, t0, timeout) in list(running.items()):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            results[i] = os.waitstatus_to_exitcode(status)
            del running[pid]
        elif time.monotonic() - t0 > timeout:
            os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)
            results[i] = "timeout"
            del running[pid]
    time.sleep(0.02)
print(json.dumps(results))
"""


def run_cli_cases(
    cases: list[list[str]], workdir: Path, env: dict[str, str] | None = None, timeout: float = 120.0,
    jobs: int = 2,
) -> list[tuple[object, str, str]]:
    """Run each ``eacfer ARGV`` in its own process; returns ``(exit code, stdout, stderr)`` per case.

    One real ``python`` subprocess imports eacfer (and torch) once, then forks a child per case that runs
    ``runpy.run_module("eacfer")`` — the same code path as ``python -m eacfer`` (an uncaught exception prints
    the interpreter's traceback) — at a fraction of the cost of starting the interpreter and torch each time.
    Up to ``jobs`` cases run at once (use 1 when a case needs the outputs of an earlier one).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    outdir = workdir / "cli_outputs"
    outdir.mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONIOENCODING": "utf-8", **(env or {}),
           "EACFER_TEST_CLI_OUTDIR": str(outdir), "EACFER_TEST_CLI_JOBS": str(jobs)}
    payload = json.dumps([[list(map(str, c)), timeout] for c in cases])
    p = subprocess.run([sys.executable, "-c", _DRIVER], input=payload, capture_output=True, text=True, env=env,
                       cwd=workdir, timeout=timeout * len(cases) + 120)
    if p.returncode != 0:
        raise RuntimeError(f"CLI driver failed: {p.stderr[-3000:]}")
    codes = json.loads(p.stdout.strip().splitlines()[-1])
    res = []
    for i, rc in enumerate(codes):
        out = (outdir / f"{i}.out").read_text(encoding="utf-8", errors="replace")
        err = (outdir / f"{i}.err").read_text(encoding="utf-8", errors="replace")
        res.append((rc, out, err))
    return res


def png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------------------- names, links, jobs
#: file names (bytes: some are not UTF-8) that once wrote outside ``--out``, clashed or crashed a job:
#: ``...mp4`` → folder ``..``, ``..mp4`` → ``.``, a leading ``-``, a control character, undecodable bytes,
#: characters Windows refuses, a backslash (a separator there), and two names that differ only in case.
HOSTILE_NAMES: tuple[bytes, ...] = (
    b"...", b"..", b"-rf", b"tab\tname", b"bad\xff\xfebytes", b'a:b*c?"d', b"back\\slash", b"Clip", b"clip",
    b" spaced ",
)


def hostile_file_names(ext: str) -> list[bytes]:
    """:data:`HOSTILE_NAMES` with ``ext`` (``".mp4"``) appended."""
    return [n + ext.encode() for n in HOSTILE_NAMES]


def tree_state(root: Path, skip: Path | None = None) -> dict[str, tuple[int, bytes]]:
    """``{relative path: (mode, content or link target)}`` of everything under ``root`` except ``skip``:
    compare two of them to prove that nothing outside an output folder was created, changed or deleted."""
    state: dict[str, tuple[int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root)):
        if skip is not None:
            dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) != os.fsencode(skip)]
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.fsdecode(os.path.relpath(p, os.fsencode(root)))
            st = os.lstat(p)
            if os.path.islink(p):
                state[rel] = (st.st_mode, os.readlink(p))
            elif os.path.isfile(p):
                with open(p, "rb") as fh:
                    state[rel] = (st.st_mode, fh.read())
            else:
                state[rel] = (st.st_mode, b"")
    return state


_HOLDER = """
import sys, time
from eacfer.utils.runlock import RunLock
with RunLock(sys.argv[1], what=sys.argv[2]):
    print("locked", flush=True)
    time.sleep(600)
"""


def hold_run_lock(folder: Path, what: str = "predict job") -> subprocess.Popen:
    """Another process holding ``folder``'s run lock (as a running job does) until it is killed."""
    import eacfer

    src = str(Path(eacfer.__file__).resolve().parents[1])  # the eacfer this test imports, installed or not
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    p = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder), what], stdout=subprocess.PIPE, text=True,
                         env=env)
    assert p.stdout is not None and p.stdout.readline().strip() == "locked"
    return p
