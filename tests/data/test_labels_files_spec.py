"""Label files (data/labels.py): the exact problem messages the docs promise ("FILE:LINE: reason"), the
limits of names and arguments, and the parsed label array. Complements test_labels.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eacfer.data.labels import (
    LabelFile,
    inject_symmetric_noise,
    name_problem,
    parse_label_file,
    write_label_file,
)

pytestmark = pytest.mark.spec  # written from the paper or a specification (`pytest -m spec`)


def _write(tmp_path: Path, data: bytes, name: str = "labels.txt") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_problem_messages_name_file_line_and_reason(tmp_path):
    long_label = "x" * 30
    long_line = "a.jpg 1 " + "z" * 100
    p = _write(tmp_path, f"ok.jpg 1\nbad.jpg {long_label}\n{long_line}\nc.jpg \xff\n".encode("latin-1"))
    lf = parse_label_file(p)
    assert [e.name for e in lf.entries] == ["ok.jpg"]
    assert lf.problems[0] == f"{p}:2: label is not an integer: {'x' * 20!r}"  # the label cut at 20 characters
    assert lf.problems[1] == f"{p}:3: expected 'NAME LABEL' (2 columns), got 3: {long_line[:80]!r}"
    assert lf.problems[2] == f"{p}:4: not valid UTF-8"
    assert len(lf.problems) == 3


def test_bom_is_removed_even_when_a_later_line_is_not_utf8(tmp_path):
    p = _write(tmp_path, b"\xef\xbb\xbftrain_00001.jpg 5\ntrain_00002.jpg \xfe\n")
    lf = parse_label_file(p)
    assert [(e.name, e.label) for e in lf.entries] == [("train_00001.jpg", 4)]
    assert lf.problems == [f"{p}:2: not valid UTF-8"]


def test_read_text_reports_whether_the_file_was_utf8(tmp_path):
    from eacfer.data.labels import _read_text

    assert _read_text(_write(tmp_path, b"\xef\xbb\xbfa.jpg 1\n", "good.txt")) == ("a.jpg 1\n", True)
    text, ok = _read_text(_write(tmp_path, b"a.jpg \xff\n", "bad.txt"))
    assert text == "a.jpg \ufffd\n" and ok is False


def test_name_rules():
    assert name_problem("") == "empty name"
    assert name_problem(".") == "name escapes the folder: '.'"
    assert name_problem("..") == "name escapes the folder: '..'"
    assert name_problem("a\x7fb.jpg") is not None  # DEL is a control character
    assert name_problem("a\x1fb.jpg") is not None
    assert name_problem("C:x.jpg") == "name has a drive prefix: 'C:x.jpg'"
    assert name_problem("a\\b.jpg") is not None
    assert name_problem("visage_é~!.jpg") is None  # non-ASCII and punctuation are fine
    assert name_problem(".hidden.jpg") is None


def test_parse_arguments(tmp_path):
    one = _write(tmp_path, b"a.jpg 1\nb.jpg 2\n")
    lf = parse_label_file(one, num_classes=1)  # a single class is allowed; 2 is then out of range
    assert [e.name for e in lf.entries] == ["a.jpg"] and lf.problems == [f"{one}:2: label 2 out of range 1..1"]
    with pytest.raises(ValueError, match=r"num_classes must be >= 1, got 0"):
        parse_label_file(one, num_classes=0)
    with pytest.raises(IsADirectoryError, match="is a directory, expected a label file"):
        parse_label_file(tmp_path)


def test_labels_array_is_int64_in_file_order(tmp_path):
    lf = parse_label_file(_write(tmp_path, b"b.jpg 7\na.jpg 1\nc.jpg 3\n"))
    arr = lf.labels()
    assert arr.dtype == np.int64 and arr.tolist() == [6, 0, 2]
    assert lf.names() == ["b.jpg", "a.jpg", "c.jpg"]
    assert LabelFile().labels().tolist() == []


def test_write_errors_name_the_file_and_the_entry(tmp_path):
    out = tmp_path / "used.txt"
    with pytest.raises(ValueError, match=r"used.txt: cannot write label for 'a b.jpg': name contains whitespace"):
        write_label_file(out, [("a b.jpg", 1)])
    with pytest.raises(ValueError, match=r"used.txt: negative label -1 for 'a.jpg'"):
        write_label_file(out, [("a.jpg", -1)])
    assert not out.exists()
    write_label_file(out, [("visage_é.jpg", 0), ("b.jpg", 6)])
    assert out.read_bytes() == "visage_é.jpg 1\nb.jpg 7\n".encode()


def test_noise_argument_messages():
    with pytest.raises(ValueError, match=r"noise rate must be in \[0, 1\], got 1.01"):
        inject_symmetric_noise(np.zeros(5, np.int64), 1.01, 7, 0)
    with pytest.raises(ValueError, match="symmetric noise needs at least 2 classes, got 1"):
        inject_symmetric_noise(np.zeros(5, np.int64), 0.1, 1, 0)
    with pytest.raises(ValueError, match=r"labels must be in 0\.\.6$"):
        inject_symmetric_noise(np.array([0, 7]), 0.1, 7, 0)
