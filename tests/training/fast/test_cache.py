"""Decoded-image cache: content keys, memory-mapped reuse, stale or broken cache files rebuilt."""

from __future__ import annotations

import os

import numpy as np
import pytest

from eacfer.training.fast.cache import cache_file, content_key, load_or_build


def _files(tmp_path, n=3):
    paths = []
    for i in range(n):
        p = tmp_path / f"train_{i:05d}_aligned.jpg"
        p.write_bytes(bytes([i]) * (100 + i))
        paths.append(p)
    return paths


def test_key_tracks_names_sizes_mtimes_and_extra(tmp_path):
    paths = _files(tmp_path)
    k = content_key(paths, extra="size=100")
    assert k == content_key(paths, extra="size=100")
    assert k != content_key(paths, extra="size=64")
    assert k != content_key(paths[:2], extra="size=100")
    assert k != content_key(list(reversed(paths)), extra="size=100")  # order = row order of the stack
    st = paths[0].stat()
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert content_key(paths, extra="size=100") != k
    hashed = content_key(paths, hash_files=True)
    paths[1].write_bytes(b"\x07" * 101)  # same size, new bytes
    os.utime(paths[1], ns=(st.st_atime_ns, st.st_mtime_ns))
    assert content_key(paths, hash_files=True) != hashed


def test_key_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        content_key([tmp_path / "nope.jpg"])


def test_memmap_cache_built_once_then_reused(tmp_path):
    stack = np.random.default_rng(0).integers(0, 256, (5, 12, 12, 3), dtype=np.uint8)
    calls = []

    def build(_allocate):  # returns its own array (the allocator is optional)
        calls.append(1)
        return stack

    a = load_or_build(build, key="k1", cache_dir=tmp_path, expected_len=5)
    b = load_or_build(build, key="k1", cache_dir=tmp_path, expected_len=5)
    assert len(calls) == 1
    assert isinstance(b, np.memmap) and np.array_equal(a, stack) and np.array_equal(b, stack)
    assert cache_file(tmp_path, "k1").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_wrong_length_or_corrupt_cache_is_rebuilt(tmp_path):
    stack = np.zeros((4, 8, 8, 3), np.uint8)
    load_or_build(lambda _: stack[:3], key="k", cache_dir=tmp_path)
    out = load_or_build(lambda _: stack, key="k", cache_dir=tmp_path, expected_len=4)
    assert out.shape[0] == 4
    cache_file(tmp_path, "k").write_bytes(b"garbage")
    out = load_or_build(lambda _: stack, key="k", cache_dir=tmp_path, expected_len=4)
    assert out.shape == (4, 8, 8, 3)


def test_in_memory_and_bad_stack(tmp_path):
    out = load_or_build(lambda _: np.ones((2, 4, 4, 3), np.uint8), key="x")
    assert not isinstance(out, np.memmap) and out.shape == (2, 4, 4, 3)
    with pytest.raises(ValueError, match="uint8"):
        load_or_build(lambda _: np.ones((2, 4, 4, 3), np.float32), key="x")
    with pytest.raises(ValueError, match="expected 3"):
        load_or_build(lambda _: np.ones((2, 4, 4, 3), np.uint8), key="y", cache_dir=tmp_path, expected_len=3)
