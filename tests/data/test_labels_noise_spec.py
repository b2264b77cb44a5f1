"""Symmetric label noise (data/labels.py) against its specification.

"Flip exactly round(rate·N) labels, each to a uniformly chosen *different* class", the flipped samples
chosen uniformly at random among all N (symmetric noise as in the EAC paper's noisy-label experiments).
"""

from __future__ import annotations

import numpy as np
import pytest

from eacfer.data.labels import inject_symmetric_noise

pytestmark = pytest.mark.spec  # written from the paper or a specification (`pytest -m spec`)


@pytest.mark.parametrize(("n", "rate"), [(19, 0.3), (7, 0.5), (13, 0.1), (33, 0.2), (3, 0.5)])
def test_flip_count_is_round_not_int(n, rate):
    """n chosen where int(rate·n) and round(rate·n) differ (5.7, 3.5, 1.3→1 … see the expected values)."""
    expected = {(19, 0.3): 6, (7, 0.5): 4, (13, 0.1): 1, (33, 0.2): 7, (3, 0.5): 2}[(n, rate)]
    clean = np.arange(n) % 7
    for seed in range(3):
        noisy = inject_symmetric_noise(clean, rate, 7, seed=seed)
        assert int((noisy != clean).sum()) == expected


def test_int_and_round_really_differ_for_the_chosen_sizes():
    # guards the test above: at least some of its cases must separate int() from round()
    assert int(0.3 * 19) == 5 and round(0.3 * 19) == 6
    assert int(0.2 * 33) == 6 and round(0.2 * 33) == 7


def test_flipped_indices_are_spread_over_the_whole_set():
    """Fixed seeds, N=2000, 10 % noise: the flipped positions look uniform over 0..N-1 (not the first k)."""
    n, rate = 2000, 0.1
    clean = np.zeros(n, np.int64)
    k = round(rate * n)
    for seed in (0, 1, 2):
        flipped = np.flatnonzero(inject_symmetric_noise(clean, rate, 7, seed=seed) != clean)
        assert flipped.size == k
        assert flipped.max() > 0.9 * n and flipped.min() < 0.1 * n
        assert not np.array_equal(flipped, np.arange(k))
        # 10 equal bins of the index range: each should hold ~k/10 = 20; chi-square with 9 d.o.f.
        counts = np.bincount(flipped * 10 // n, minlength=10)
        chi2 = float(((counts - k / 10) ** 2 / (k / 10)).sum())
        assert chi2 < 30.0, f"flipped indices not spread (bins {counts.tolist()}, chi2 {chi2:.1f})"  # p ≈ 4e-4
        # mean position near the middle: sd of the mean of k uniform positions ≈ n/sqrt(12k)
        assert abs(flipped.mean() - (n - 1) / 2) < 5 * n / np.sqrt(12 * k)


def test_different_seeds_flip_different_samples():
    clean = np.zeros(500, np.int64)
    a = np.flatnonzero(inject_symmetric_noise(clean, 0.2, 7, seed=0))
    b = np.flatnonzero(inject_symmetric_noise(clean, 0.2, 7, seed=1))
    assert len(set(a) & set(b)) < 0.5 * len(a)  # independent draws overlap ~20 %


def test_every_flip_goes_to_another_class_and_all_others_are_reached():
    clean = np.arange(7000) % 7
    noisy = inject_symmetric_noise(clean, 0.6, 7, seed=4)
    changed = noisy != clean
    assert int(changed.sum()) == 4200
    for c in range(7):
        targets = set(noisy[changed & (clean == c)].tolist())
        assert targets == set(range(7)) - {c}
    assert noisy.min() >= 0 and noisy.max() <= 6


def test_extremes_and_dtype():
    clean = (np.arange(50) % 3).astype(np.int32)
    assert np.array_equal(inject_symmetric_noise(clean, 0.0, 3, seed=0), clean)
    full = inject_symmetric_noise(clean, 1.0, 3, seed=0)
    assert full.dtype == np.int32 and bool((full != clean).all())
    two = inject_symmetric_noise(np.zeros(10, np.int64), 1.0, 2, seed=0)
    assert two.tolist() == [1] * 10  # with two classes the only other class is forced
    assert inject_symmetric_noise(np.zeros(0, np.int64), 0.5, 7, seed=0).size == 0
    with pytest.raises(ValueError, match="1-D"):
        inject_symmetric_noise(np.zeros((2, 2), np.int64), 0.1, 7, seed=0)
    with pytest.raises(ValueError, match="rate"):
        inject_symmetric_noise(clean, -0.1, 3, seed=0)
    with pytest.raises(ValueError, match="labels must be in"):
        inject_symmetric_noise(np.array([-1, 0]), 0.1, 3, seed=0)
