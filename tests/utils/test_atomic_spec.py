"""Atomic writes (utils/atomic.py): temporary file next to the target, fsync, rename; a written file gets the
mode a plain ``open()`` would give it (0666 & ~umask), not mkstemp's 0600."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from eacfer.utils.atomic import atomic_open, atomic_path, write_json, write_text

pytestmark = pytest.mark.spec  # written from the paper or a specification (`pytest -m spec`)


@pytest.fixture
def umask():
    """Set a umask for one test and restore the previous one."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda m: os.umask(m)
    os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002, 0o027, 0o000])
def test_written_files_get_the_mode_the_umask_gives(tmp_path, umask, mask):
    umask(mask)
    plain = tmp_path / "plain.txt"
    with open(plain, "w") as fh:
        fh.write("x")
    expected = 0o666 & ~mask
    assert _mode(plain) == expected  # what a plain open() gives under this umask
    write_text(tmp_path / "a.txt", "x")
    write_json(tmp_path / "b.json", {"x": 1})
    with atomic_open(tmp_path / "c.bin", "wb") as fh:
        fh.write(b"x")
    with atomic_path(tmp_path / "d.mp4") as tmp:
        tmp.write_bytes(b"x")
    for name in ("a.txt", "b.json", "c.bin", "d.mp4"):
        assert _mode(tmp_path / name) == expected, f"{name}: {oct(_mode(tmp_path / name))} != {oct(expected)}"


def test_temporary_file_lives_next_to_the_target_and_target_appears_only_at_the_end(tmp_path):
    target = tmp_path / "sub" / "deeper" / "out.json"  # missing folders are created
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent
        assert tmp.name.startswith(".out.json.") and tmp.name.endswith(".json.tmp")
        assert tmp.is_file() and not target.exists()
        tmp.write_text("done")
    assert target.read_text() == "done"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]
    with atomic_path(tmp_path / "v.mp4", suffix=".mp4") as tmp:
        assert tmp.name.startswith(".v.mp4.") and tmp.name.endswith(".mp4") and not tmp.name.endswith(".tmp")
        tmp.write_bytes(b"1")


def test_failure_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "keep.txt"
    write_text(target, "old")
    with pytest.raises(OSError), atomic_path(target) as tmp:
        tmp.write_text("new, half")
        raise OSError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    # the writer may also remove the temporary itself: no error on cleanup
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.unlink()
        raise RuntimeError("stop")
    assert target.read_text() == "old"


def test_data_is_fsynced_before_the_rename(tmp_path, monkeypatch):
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    write_text(tmp_path / "f.txt", "abc")
    assert events == ["fsync", "replace"]
    assert (tmp_path / "f.txt").read_text() == "abc"


def test_overwrite_replaces_content(tmp_path):
    p = tmp_path / "x.txt"
    write_text(p, "first, longer content")
    write_text(p, "2nd")
    assert p.read_text() == "2nd"


def test_write_json_format_and_types(tmp_path):
    p = tmp_path / "s.json"
    write_json(p, {"b": np.float32(0.5), "a": np.arange(3), "path": Path("x/y"), "n": np.int64(4)})
    text = p.read_text(encoding="utf-8")
    assert text.endswith("}\n") and text.startswith('{\n  "b"')  # indent 2, key order kept, final newline
    assert json.loads(text) == {"b": 0.5, "a": [0, 1, 2], "path": os.fspath(Path("x/y")), "n": 4}
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        write_json(tmp_path / "bad.json", {"x": object()})
    assert not (tmp_path / "bad.json").exists()
    assert sorted(q.name for q in tmp_path.iterdir()) == ["s.json"]


def test_text_is_utf8_and_binary_mode_works(tmp_path):
    write_text(tmp_path / "u.txt", "Überraschung – 驚き\n")
    assert (tmp_path / "u.txt").read_bytes() == "Überraschung – 驚き\n".encode()
    with atomic_open(tmp_path / "b.bin", "wb") as fh:
        fh.write(b"\x00\xff")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"
    with atomic_open(tmp_path / "n.txt", "w", newline="") as fh:
        fh.write("a\r\nb\n")
    assert (tmp_path / "n.txt").read_bytes() == b"a\r\nb\n"


def test_text_is_utf8_also_when_newline_is_given(tmp_path):
    # csv files are opened with newline="": they must still be UTF-8 whatever the locale says. A child in the
    # C locale with UTF-8 mode and locale coercion off has ASCII as its default encoding.
    import os
    import subprocess
    import sys

    code = ("import sys\nfrom eacfer.utils.atomic import atomic_open\n"
            "with atomic_open(sys.argv[1], newline='') as fh:\n"
            "    fh.write(chr(233) + 'motion,' + chr(252) + chr(10))\n")
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.csv")], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-1000:]
    assert (tmp_path / "x.csv").read_bytes().decode("utf-8") == chr(233) + "motion," + chr(252) + "\n"
