"""Mutation fuzzing (hypothesis) of every label source through ``load_split``: valid files damaged byte by
byte (insertions, deletions, NULs, quotes, CR/LF, huge fields, path tricks). Strict mode raises nothing but
a ValueError naming the file; lenient mode never raises except a ValueError naming the file when nothing
usable is left or the CSV cannot be resynchronised, and whatever it returns is valid."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eacfer.data.formats import load_split

TOKENS = [b"\x00", b'"', b",", b"\r", b"\n", b"\r\n", b" ", b"\t", b"../", b"..\\", b"/etc/passwd", b"C:",
          b"\xff\xfe", b"\xef\xbb\xbf", b"\xc3", b"9", b"0", b"-1", b"99999999999", b"x" * 300, b"\x1b[2J",
          b"train_00001.jpg 1\n", b"image,label\n"]

mutation = st.one_of(
    st.tuples(st.just("insert"), st.floats(0, 1), st.sampled_from(TOKENS)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 20)),
    st.tuples(st.just("dupline"), st.floats(0, 1), st.just(b"")),
)


def mutate(data: bytes, muts: list) -> bytes:
    b = bytearray(data)
    for kind, where, arg in muts:
        i = int(where * len(b))
        if kind == "insert":
            b[i:i] = arg
        elif kind == "delete":
            del b[i:i + arg]
        else:  # duplicate the line around i
            s = b.rfind(b"\n", 0, i) + 1
            e = b.find(b"\n", i)
            e = len(b) if e < 0 else e + 1
            b[e:e] = b[s:e]
    return bytes(b)


def _jpg(path: Path, value: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (value, value, value)).save(path)


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz_roots")
    raf = d / "raf"
    lines = []
    for i in range(1, 5):
        _jpg(raf / "Image" / "aligned" / f"train_{i:05d}_aligned.jpg", 10 * i)
        _jpg(raf / "Image" / "aligned" / f"test_{i:04d}_aligned.jpg", 10 * i)
        lines += [f"train_{i:05d}.jpg {i}", f"test_{i:04d}.jpg {i + 1}"]
    (raf / "EmoLabel").mkdir()
    raf_labels = "\n".join(lines).encode()
    kag = d / "kaggle"
    rows = ["image,label"]
    for i in range(1, 5):
        _jpg(kag / "DATASET" / "train" / str(i) / f"train_{i:05d}_aligned.jpg", 10 * i)
        rows.append(f"train_{i:05d}_aligned.jpg,{i}")
    kag_csv = "\n".join(rows).encode()
    rng = np.random.default_rng(0)
    fer_rows = ["emotion,pixels,Usage"]
    for i in range(4):
        px = " ".join(map(str, rng.integers(0, 256, 48 * 48)))
        fer_rows.append(f'{i},"{px}",{"Training" if i < 3 else "PublicTest"}')
    fer = "\n".join(fer_rows).encode()
    return {"raf": (raf, raf / "EmoLabel" / "list_patition_label.txt", raf_labels),
            "kaggle": (kag, kag / "train_labels.csv", kag_csv),
            "fer2013": (d / "fer", d / "fer" / "fer2013.csv", fer)}


def _check(root: Path, fmt: str, split: str, label_path: Path, strict: bool) -> None:
    try:
        data = load_split(root, split, format=fmt, strict=strict)
    except ValueError as e:
        msg = str(e)
        assert str(label_path) in msg or str(root) in msg, msg
        if strict:
            return
        # lenient: only "nothing usable" or an unrecoverable CSV
        assert "no usable" in msg or "malformed CSV" in msg or "not a FER2013 CSV" in msg or "Usage" in msg, msg
        return
    if strict:
        assert data.problems == []
    names = [s.name for s in data.samples]
    assert len(names) == len(set(names))
    k = len(data.class_names)
    for s in data.samples:
        assert 0 <= s.label < k
        if s.path is not None:
            assert Path(os.path.realpath(s.path)).is_relative_to(os.path.realpath(root)), s.path
            assert s.path.is_file()
        else:
            assert s.pixels is not None and s.pixels.shape == (48, 48, 3) and s.pixels.dtype == np.uint8


@pytest.mark.parametrize("kind", ["raf", "kaggle", "fer2013"])
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(muts=st.lists(mutation, min_size=1, max_size=6), strict=st.booleans())
def test_fuzz_label_sources(roots, kind, muts, strict):
    root, label_path, valid = roots[kind]
    label_path.parent.mkdir(parents=True, exist_ok=True)
    label_path.write_bytes(mutate(valid, muts))
    fmt = {"raf": "rafdb", "kaggle": "rafdb-kaggle", "fer2013": "fer2013"}[kind]
    for split in ("train", "test") if kind != "kaggle" else ("train",):
        _check(root, fmt, split, label_path, strict)


@pytest.mark.parametrize("kind", ["raf", "kaggle", "fer2013"])
def test_unmutated_sources_are_clean(roots, kind):
    root, label_path, valid = roots[kind]
    label_path.parent.mkdir(parents=True, exist_ok=True)
    label_path.write_bytes(valid)
    fmt = {"raf": "rafdb", "kaggle": "rafdb-kaggle", "fer2013": "fer2013"}[kind]
    data = load_split(root, "train", format=fmt, strict=True)
    assert len(data.samples) in (3, 4) and data.problems == []
