"""``infer/jobs/pool.py``: the worker pool of ``eacfer predict --workers``, unit by unit.

Written from the module's docstring: workers decode, detect and crop with the predictor's own detector policy and
face recipe, the main process classifies the crops of several images (up to ``batch_size`` faces) in one call, and
the results are the one-process predictor's (``Predictor.predict``) up to the last digit of a probability; results
come back in input order as ``(result, failure, stage_ms)``; an unreadable file is a ``WorkerError`` carrying the
row's ``error`` text; ``close()`` stops the workers. The whole ``predict`` job in throughput mode (CSV rows) is
checked in ``test_photos.py``; these tests call :func:`pooled` directly on ``tests/fixtures/faces``.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import pytest

from eacfer.infer.jobs.ledger import error_text
from eacfer.infer.jobs.pool import WorkerError, pooled

pytest_plugins = ["inference_fixtures"]  # predictor (MediaPipe + onnxruntime, random weights)

FACES = Path(__file__).resolve().parents[2] / "fixtures" / "faces"


class _Counting:
    """The predictor, with a record of the batches the main process classifies."""

    def __init__(self, predictor):
        self._p = predictor
        self.batches: list[int] = []

    def probabilities(self, crops, cam):
        self.batches.append(len(crops))
        return self._p.probabilities(crops, cam)

    def __getattr__(self, name):
        return getattr(self._p, name)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[Path]:
    """Two one-face photos twice (4 faces, so batches of 2 fill twice), an unreadable file, a faceless image."""
    from PIL import Image

    d = tmp_path_factory.mktemp("pool_inputs")
    (d / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    Image.fromarray(np.full((90, 120, 3), 128, np.uint8)).save(d / "grey.png")
    faces = [FACES / "astronaut.jpg", FACES / "grace_hopper.jpg"]
    return [*faces, d / "broken.jpg", *faces, d / "grey.png"]


@pytest.fixture(scope="module")
def pooled_run(predictor, inputs):
    """One pool run over ``inputs`` (2 workers, batches of 2 faces, images kept)."""
    counting = _Counting(predictor)
    run = pooled(counting, [(f, f.parent) for f in inputs], workers=2, batch_size=2, keep_images=True)
    try:
        results = list(run)
    finally:
        run.close()
    return results, counting.batches, run


def test_results_are_the_one_process_predictors_in_input_order(predictor, inputs, pooled_run):
    results, _, _ = pooled_run
    assert len(results) == len(inputs)
    for path, (r, failure, _ms) in zip(inputs, results, strict=True):
        if path.name == "broken.jpg":
            continue
        assert failure is None, (path, failure)
        one = predictor.predict(path, cam=False)
        assert r.source == str(path) and r.image_size == one.image_size and r.note == one.note
        assert len(r.faces) == len(one.faces), path
        for a, b in zip(one.faces, r.faces, strict=True):
            assert b.box == a.box and b.emotion == a.emotion and b.class_index == a.class_index
            np.testing.assert_allclose(b.probabilities, a.probabilities, atol=1e-5)
            assert (a.crop_affine is None) == (b.crop_affine is None)
    assert [len(r.faces) for r, _, _ in results if r is not None] == [1, 1, 1, 1, 0]


def test_an_unreadable_file_is_a_worker_error_with_the_rows_error_text(predictor, inputs, pooled_run):
    results, _, _ = pooled_run
    r, failure, ms = results[2]  # broken.jpg
    assert r is None and ms == {} and isinstance(failure, WorkerError)
    with pytest.raises(Exception) as one:  # what the one-process path raises for it
        predictor.predict(inputs[2])
    assert str(failure) == error_text(inputs[2], one.value) != ""


def test_faces_of_several_images_are_classified_in_one_call(pooled_run):
    _, batches, _ = pooled_run
    # 4 one-face images: every face classified once, at most 2 a call, the first two images' faces in one call;
    # the broken and the faceless files add no crops
    assert sum(batches) == 4 and max(batches) <= 2 and batches[0] == 2 and len(batches) < 4


def test_stage_times_images_and_startup(pooled_run):
    results, _, run = pooled_run
    for r, _failure, ms in results:
        if r is None:
            continue
        assert {"decode", "detect", "align", "classify"} <= set(ms) and all(v >= 0 for v in ms.values())
        assert r.image is not None and r.image.shape[:2] == r.image_size[::-1]  # kept, H×W×3 RGB
    assert run.startup_s is not None and run.startup_s > 0


def test_images_are_not_sent_back_unless_asked_and_close_stops_the_workers(predictor):
    before = set(mp.active_children())
    run = pooled(predictor, [(FACES / "astronaut.jpg", FACES)] * 3, workers=1, batch_size=8)
    r, failure, _ = next(run)
    assert failure is None and r.image is None and len(r.faces) == 1
    run.close()  # mid-job: the rest is never delivered, the worker is gone
    deadline = time.monotonic() + 60
    while set(mp.active_children()) - before:
        assert time.monotonic() < deadline, "the pool's worker outlived close()"
        time.sleep(0.05)
    with pytest.raises(StopIteration):
        next(run)
