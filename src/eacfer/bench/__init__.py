"""Benchmarks: the noisy-label grid, efficiency measurements, the results report, published numbers.

Measured figures (made here, with their command, commit, machine and date) and published figures
(copied from papers and repositories, with their source) are always kept apart.

Example:
    >>> from eacfer.bench.published import load_published
    >>> load_published().source_of("POSTER++")["venue"]  # doctest: +SKIP
    'arXiv (accuracy, FLOPs and parameters from the abstract)'
"""
