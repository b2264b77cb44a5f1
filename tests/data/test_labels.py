"""Label files (real excerpts and edge cases) and symmetric noise injection."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eacfer.data.labels import (
    LabelEntry,
    inject_symmetric_noise,
    name_problem,
    parse_label_file,
    write_label_file,
)

EXCERPT = Path(__file__).parents[1] / "fixtures" / "rafdb_labels" / "list_patition_label_excerpt.txt"
NOISE_EXCERPT = Path(__file__).parents[1] / "fixtures" / "rafdb_labels" / "noise01_excerpt.txt"


def _write(tmp_path: Path, data: bytes | str, name: str = "labels.txt") -> Path:
    p = tmp_path / name
    p.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return p


# ------------------------------------------------------------------------------- real excerpts
def test_real_excerpt_parses_without_problems():
    assert not EXCERPT.read_bytes().endswith(b"\n")  # shipped without a final newline
    lf = parse_label_file(EXCERPT)
    assert lf.problems == []
    assert len(lf.entries) == 39
    first, last = lf.entries[0], lf.entries[-1]
    assert first == LabelEntry("train_00001.jpg", 4, 1)  # "train_00001.jpg 5" -> Sadness (0-based 4)
    assert (last.name, last.label, last.line) == ("test_3068.jpg", 6, 39)
    names = [e.name for e in lf.entries]
    assert sum(n.startswith("train_") for n in names) == 23
    assert sum(n.startswith("test_") for n in names) == 16
    assert names.index("test_0001.jpg") == names.index("train_12271.jpg") + 1
    assert all(0 <= e.label < 7 for e in lf.entries)


def test_real_noise_excerpt_differs_on_flipped_lines():
    clean = {e.name: e.label for e in parse_label_file(EXCERPT).entries}
    noisy = parse_label_file(NOISE_EXCERPT)
    assert noisy.problems == [] and len(noisy.entries) == 23
    changed = sorted(e.name for e in noisy.entries if e.name in clean and clean[e.name] != e.label)
    assert changed == ["train_00007.jpg", "train_00014.jpg"]
    assert noisy.entries[6].label == 0  # "train_00007.jpg 1"


# ------------------------------------------------------------------------------- edge cases
def test_crlf_blank_lines_bom_whitespace_and_no_final_newline(tmp_path):
    text = "\ufefftrain_00001.jpg 5\r\n\r\n   train_00002.jpg\t\t3  \r\n\n\ntest_0001.jpg 7"
    lf = parse_label_file(_write(tmp_path, text))
    assert lf.problems == []
    assert [(e.name, e.label, e.line) for e in lf.entries] == [
        ("train_00001.jpg", 4, 1),
        ("train_00002.jpg", 2, 3),
        ("test_0001.jpg", 6, 6),
    ]


def test_lone_cr_line_ends(tmp_path):
    lf = parse_label_file(_write(tmp_path, "a.jpg 1\rb.jpg 2\r"))
    assert [e.name for e in lf.entries] == ["a.jpg", "b.jpg"]


BAD_LINES = [
    ("train_00003.jpg", "2 columns"),
    ("train_00003.jpg 5 1", "2 columns"),
    ("train_00003.jpg five", "not an integer"),
    ("train_00003.jpg +5", "not an integer"),
    ("train_00003.jpg 0", "out of range"),
    ("train_00003.jpg 8", "out of range"),
    ("train_00003.jpg -1", "not an integer"),
    ("train_00001.jpg 3", "duplicate name"),
    ("../../etc/passwd 1", "path separator"),
    ("..\\secret.jpg 1", "path separator"),
    (".. 1", "escapes"),
    ("C:evil.jpg 1", "drive prefix"),
]


@pytest.mark.parametrize("bad,reason", BAD_LINES)
def test_malformed_line_skipped_or_strict_error(tmp_path, bad, reason):
    path = _write(tmp_path, f"train_00001.jpg 5\n{bad}\ntrain_00002.jpg 1\n")
    lf = parse_label_file(path)
    assert [e.name for e in lf.entries] == ["train_00001.jpg", "train_00002.jpg"]
    assert len(lf.problems) == 1
    assert lf.problems[0].startswith(f"{path}:2: ") and reason in lf.problems[0]
    with pytest.raises(ValueError, match=rf"labels\.txt:2: .*{reason}"):
        parse_label_file(path, strict=True)


def test_skip_counts_with_many_problems(tmp_path):
    lines = ["train_00001.jpg 5", "oops", "train_00001.jpg 4", "train_00002.jpg 9", "", "train_00003.jpg 7"]
    path = _write(tmp_path, "\n".join(lines))
    lf = parse_label_file(path)
    assert len(lf.entries) == 2 and len(lf.problems) == 3
    assert [p.split(": ", 1)[0] for p in lf.problems] == [f"{path}:2", f"{path}:3", f"{path}:4"]
    assert "first on line 1" in lf.problems[1]


def test_num_classes_bounds_labels(tmp_path):
    path = _write(tmp_path, "a.jpg 8\nb.jpg 3\n")
    assert len(parse_label_file(path, num_classes=8).entries) == 2
    assert len(parse_label_file(path, num_classes=7).entries) == 1


def test_invalid_utf8_is_a_problem_not_a_crash(tmp_path):
    path = _write(tmp_path, b"a.jpg 1\n\xff\xfe.jpg 2\nb.jpg 3")
    lf = parse_label_file(path)
    assert [e.name for e in lf.entries] == ["a.jpg", "b.jpg"] and "UTF-8" in lf.problems[0]


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        parse_label_file(tmp_path / "nope.txt")
    with pytest.raises(IsADirectoryError):
        parse_label_file(tmp_path)


def test_write_roundtrip_is_atomic_and_one_based(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    write_label_file(path, [("train_00001.jpg", 4), LabelEntry("train_00002.jpg", 0)])
    assert path.read_bytes() == b"train_00001.jpg 5\ntrain_00002.jpg 1\n"
    assert [(e.name, e.label) for e in parse_label_file(path).entries] == [
        ("train_00001.jpg", 4),
        ("train_00002.jpg", 0),
    ]
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


@pytest.mark.parametrize("entries", [[("a b.jpg", 1)], [("x/../y.jpg", 1)], [("a.jpg", -1)], [("", 0)]])
def test_write_refuses_what_cannot_be_read_back(tmp_path, entries):
    path = tmp_path / "out.txt"
    path.write_text("previous\n")
    with pytest.raises(ValueError):
        write_label_file(path, entries)
    assert path.read_text() == "previous\n"  # nothing half-written


def test_name_problem():
    assert name_problem("train_00001.jpg") is None
    assert name_problem("..hidden.jpg") is None  # a legal file name, not an escape
    assert name_problem("a\x00b") is not None


# ------------------------------------------------------------------------------- fuzzing
_line = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda n, y, sep: f"{n}{sep}{y}",
        st.text(min_size=1, max_size=20),
        st.integers(-3, 12),
        st.sampled_from([" ", "\t", "  ", " , "]),
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(_line, max_size=12),
    eol=st.sampled_from(["\n", "\r\n", "\r"]),
    bom=st.booleans(),
    raw=st.binary(max_size=40),
)
def test_fuzz_parse_label_file(tmp_path, lines, eol, bom, raw):
    path = tmp_path / "fuzz.txt"
    data = (("\ufeff" if bom else "") + eol.join(lines)).encode("utf-8", errors="surrogatepass") + raw
    try:
        path.write_bytes(data)
    except UnicodeEncodeError:
        return
    lenient = parse_label_file(path)  # must never raise
    n_lines = len(
        data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    )
    names = [e.name for e in lenient.entries]
    assert len(names) == len(set(names))
    for e in lenient.entries:
        assert 0 <= e.label < 7 and name_problem(e.name) is None and 1 <= e.line <= n_lines
    for p in lenient.problems:
        assert p.startswith(f"{path}:")
    try:
        strict = parse_label_file(path, strict=True)
    except ValueError as err:
        assert lenient.problems and str(err) == lenient.problems[0]
    else:
        assert lenient.problems == [] and strict.entries == lenient.entries


# ------------------------------------------------------------------------------- noise
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.2, 0.3, 0.45, 1.0])
def test_noise_exact_rate_and_every_flip_changes_class(rate):
    clean = np.random.default_rng(1).integers(0, 7, size=1001)
    noisy = inject_symmetric_noise(clean, rate, 7, seed=3)
    assert noisy.shape == clean.shape and noisy.dtype == clean.dtype
    assert int((noisy != clean).sum()) == round(rate * 1001)
    assert noisy.min() >= 0 and noisy.max() < 7


def test_noise_deterministic_and_input_untouched():
    clean = np.arange(700) % 7
    copy = clean.copy()
    a, b = inject_symmetric_noise(clean, 0.3, 7, seed=5), inject_symmetric_noise(clean, 0.3, 7, seed=5)
    c = inject_symmetric_noise(clean, 0.3, 7, seed=6)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(clean, copy)


def test_noise_targets_roughly_uniform():
    clean = np.zeros(60000, dtype=np.int64)
    noisy = inject_symmetric_noise(clean, 0.5, 7, seed=0)
    counts = Counter(noisy[noisy != 0].tolist())
    assert sorted(counts) == [1, 2, 3, 4, 5, 6]
    expected = 30000 / 6
    assert all(abs(n - expected) < 0.06 * expected for n in counts.values())  # ~8 sigma margin


def test_noise_bad_arguments():
    with pytest.raises(ValueError):
        inject_symmetric_noise(np.zeros(5, int), 1.5, 7, 0)
    with pytest.raises(ValueError):
        inject_symmetric_noise(np.zeros(5, int), 0.1, 1, 0)
    with pytest.raises(ValueError):
        inject_symmetric_noise(np.array([0, 7]), 0.1, 7, 0)
