"""``eacfer serve`` under load (issue #26): request batching in the worker pool, a full queue answered with 503 +
Retry-After, graceful shutdown on SIGTERM. Servers on 127.0.0.1 only; every loop bounded.
"""

from __future__ import annotations

import concurrent.futures
import threading

import httpx  # the serve extra (make install); missing, these tests fail rather than skip
import numpy as np
import pytest

from serve_testutils import Server, face_rgb, png_bytes, two_faces_rgb, wait_for


@pytest.fixture(scope="module")
def starter_predictor():
    from eacfer.infer.predictor import Predictor
    from eacfer.infer.runtime.starter import starter_model_path

    with Predictor.from_checkpoint(starter_model_path()) as p:
        yield p


class _Gated:
    """A predictor whose first detection waits for ``release`` (so jobs pile up in the queue), and which
    records the number of images of every classifier run."""

    def __init__(self, predictor):
        self.p, self.entered, self.release, self.runs = predictor, threading.Event(), threading.Event(), []

    def detect_faces(self, rgb, kind="image", mode=None):
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(30)
        return self.p.detect_faces(rgb, kind, mode)

    def classify_many(self, items, cam, timings):
        self.runs.append(len(items))
        return self.p.classify_many(items, cam, timings)

    def close(self):
        pass


@pytest.mark.parametrize("max_batch, runs", [(8, [1, 4]), (1, [1, 1, 1, 1, 1])])
def test_waiting_requests_are_classified_in_one_run(starter_predictor, max_batch, runs):
    from eacfer.serve.engine import InferencePool, Job

    gated = _Gated(starter_predictor)
    pool = InferencePool(lambda: gated, workers=1, queue_size=8, max_batch=max_batch)
    try:
        images = [face_rgb(), two_faces_rgb(), np.full((64, 80, 3), 90, np.uint8), face_rgb()[:, ::-1].copy(),
                  two_faces_rgb()]
        first = pool.submit(Job(images[0]))
        assert gated.entered.wait(30)
        rest = [pool.submit(Job(im)) for im in images[1:]]  # all waiting while the worker is held
        gated.release.set()
        results = [f.result(60) for f in [first, *rest]]
    finally:
        pool.close()
    assert gated.runs == runs
    for im, r in zip(images, results, strict=True):  # batched or not: the numbers of a single prediction
        alone = starter_predictor.predict(im)
        assert [f.emotion for f in r.faces] == [f.emotion for f in alone.faces]
        for a, b in zip(r.faces, alone.faces, strict=True):
            assert np.allclose(a.box, b.box) and np.allclose(a.probabilities, b.probabilities, atol=1e-5)
    assert [len(r.faces) for r in results] == [1, 2, 0, 1, 2]


def test_a_full_queue_is_refused_with_503_and_retry_after():
    # also: the API key from the environment, and no CORS without --cors
    s = Server(["--queue", "1", "--max-batch", "1", "--workers", "1"], env={"EACFER_API_KEY": "from-env"})
    try:
        body = png_bytes(two_faces_rgb())
        with httpx.Client(base_url=s.url, timeout=120.0, headers={"X-API-Key": "from-env"}) as c, \
                concurrent.futures.ThreadPoolExecutor(10) as ex:
            assert httpx.get(f"{s.url}/v1/model", timeout=30).status_code == 401
            pre = c.options("/v1/predict", headers={"Origin": "http://any.example",
                                                    "Access-Control-Request-Method": "POST"})
            assert "access-control-allow-origin" not in pre.headers
            responses = list(ex.map(lambda _: c.post("/v1/predict", content=body), range(10)))
            metrics = c.get("/metrics").text
        codes = [r.status_code for r in responses]
        assert set(codes) <= {200, 503} and 503 in codes and 200 in codes, codes
        busy = [r for r in responses if r.status_code == 503]
        assert all(r.headers["retry-after"] == "1" and "busy" in r.json()["error"] for r in busy)
        assert all(len(r.json()["faces"]) == 2 for r in responses if r.status_code == 200)
        assert f'eacfer_rejected_requests_total{{reason="queue_full"}} {float(len(busy))}' in metrics
    finally:
        assert s.stop() == 0


def test_sigterm_finishes_the_requests_in_flight_and_exits_0():
    s = Server([])
    big = png_bytes(np.ascontiguousarray(np.tile(two_faces_rgb(), (3, 2, 1))))  # 2048×1536: tiles, slow
    files = [("files", (f"{i}.png", big, "image/png")) for i in range(4)]
    box: dict = {}

    def post():
        with httpx.Client(base_url=s.url, timeout=120.0) as c:
            box["r"] = c.post("/v1/predict/batch", files=files)

    t = threading.Thread(target=post)
    try:
        with httpx.Client(base_url=s.url, timeout=30.0) as c:
            t.start()

            def in_flight() -> bool:  # the batch request, besides this /metrics request
                line = [x for x in c.get("/metrics").text.splitlines() if x.startswith("eacfer_requests_in_flight")]
                return float(line[0].split()[-1]) >= 2

            assert wait_for(in_flight, 60)
        code = s.stop(120)
        t.join(120)
    finally:
        s.stop()
    assert code == 0
    r = box["r"]
    counts = [len(x["faces"]) for x in r.json()["results"]]
    assert r.status_code == 200 and len(counts) == 4 and min(counts) >= 2 and len(set(counts)) == 1
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{s.url}/healthz", timeout=5)
