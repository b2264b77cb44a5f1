"""``eacfer serve`` against a real uvicorn on 127.0.0.1 (issue #26): every endpoint, every limit, the API key,
CORS, metrics and the WebSocket stream (tracking, stale frames dropped, frame-rate limit).

One server per module (the bundled starter model); all traffic goes to 127.0.0.1; loops are bounded.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time

import httpx  # the serve extra (make install); missing, these tests fail rather than skip
import numpy as np
import pytest

from serve_testutils import FACE, Server, face_rgb, jpeg_bytes, png_bytes, two_faces_rgb

KEY = "s3cret-key"
H = {"X-API-Key": KEY}
ORIGIN = "http://allowed.example"


@pytest.fixture(scope="module")
def server():
    s = Server(["--api-key", KEY, "--max-body-mb", "1", "--max-pixels", "4000000", "--max-images", "3",
                "--max-ws-fps", "15", "--cors", ORIGIN, "--queue", "64"])
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60.0) as c:
        yield c


# -- health, model card, key ---------------------------------------------------------------------------

def test_health_and_ready_need_no_key(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready"


def test_api_key_is_required_and_checked(client):
    for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"X-API-Key": KEY[:-1]}):
        r = client.get("/v1/model", headers=headers)
        assert r.status_code == 401, headers
        assert "API key" in r.json()["error"] and r.json()["status"] == 401
    assert client.get("/v1/model", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert client.get("/metrics").status_code == 401
    r = client.post("/v1/predict", content=jpeg_bytes(face_rgb()))
    assert r.status_code == 401


def test_model_card_describes_the_loaded_model(client):
    from eacfer.infer.runtime.starter import starter_runtime_path

    card = client.get("/v1/model", headers=H).json()
    assert card["sha256"] == hashlib.sha256(starter_runtime_path().read_bytes()).hexdigest()
    assert card["classes"] == ["Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Neutral"]
    assert card["input_size"] == 64 and card["precision"] == "fp32" and card["backbone"] == "mini_xception"
    assert card["starter_model"] is True and "training" in card


def test_openapi_documents_the_versioned_api(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/predict", "/v1/predict/batch", "/v1/model", "/healthz", "/readyz", "/metrics"} <= set(paths)
    params = {p["name"] for p in paths["/v1/predict"]["post"]["parameters"]}
    assert {"cam", "max_faces", "detector"} <= params


# -- predict ---------------------------------------------------------------------------------------------

def test_predict_gives_the_same_numbers_as_eacfer_predict(client, tmp_path):
    from eacfer.commands.cli import main

    assert main(["predict", str(FACE), "--out", str(tmp_path / "out"), "-q"]) == 0
    rows = _cli_faces(tmp_path / "out")
    assert rows, "the CLI found the astronaut's face"
    for r in (client.post("/v1/predict", files={"file": ("a.jpg", FACE.read_bytes(), "image/jpeg")}, headers=H),
              client.post("/v1/predict", content=FACE.read_bytes(), headers={**H, "content-type": "image/jpeg"})):
        assert r.status_code == 200, r.text
        faces = r.json()["faces"]
        assert len(faces) == len(rows)
        for f, row in zip(faces, rows, strict=True):
            assert np.allclose(f["box"], row["box"], atol=0.06)  # the CSV rounds to 0.1 px
            assert f["emotion"] == row["emotion"]
            assert f["probabilities"].keys() == row["probabilities"].keys()
            assert np.allclose(list(f["probabilities"].values()), list(row["probabilities"].values()), atol=1e-4)
            assert abs(f["score"] - row["score"]) < 1e-3
        assert "track" not in faces[0]  # single images are track-free


def _cli_faces(out):
    """Faces of predictions.jsonl (one row per face) as box / score / emotion / probabilities."""
    faces = []
    for line in (out / "predictions.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("emotion"):
            faces.append({"box": [row["x"], row["y"], row["w"], row["h"]], "score": row["score"],
                          "emotion": row["emotion"],
                          "probabilities": {k[2:]: v for k, v in row.items() if k.startswith("p_")}})
    return faces


def test_cam_is_a_png_over_the_face(client):
    r = client.post("/v1/predict?cam=true", content=FACE.read_bytes(), headers=H)
    assert r.status_code == 200
    from PIL import Image

    body = r.json()
    face = body["faces"][0]
    cam = np.asarray(Image.open(io.BytesIO(base64.b64decode(face["cam_png"]))))
    assert cam.shape == (body["image_size"][1], body["image_size"][0])
    x, y, w, h = (int(v) for v in face["box"])
    assert cam[y:y + h, x:x + w].max() > 100  # the map is on the face
    assert cam[:, :50].max() == 0 and cam[-40:, :].max() == 0  # and nothing far from it
    assert "cam_png" not in client.post("/v1/predict", content=FACE.read_bytes(), headers=H).json()["faces"][0]


def test_max_faces_and_detector_mode(client):
    two = png_bytes(two_faces_rgb())
    assert len(client.post("/v1/predict", content=two, headers=H).json()["faces"]) == 2
    assert len(client.post("/v1/predict?max_faces=1", content=two, headers=H).json()["faces"]) == 1
    for mode in ("short", "full", "both"):
        r = client.post(f"/v1/predict?detector={mode}", content=FACE.read_bytes(), headers=H)
        assert r.status_code == 200 and len(r.json()["faces"]) == 1, mode
    for bad in ("detector=sideways", "max_faces=0", "max_faces=many", "cam=perhaps"):
        r = client.post(f"/v1/predict?{bad}", content=two, headers=H)
        assert r.status_code == 422 and r.json()["error"].startswith("invalid request"), bad


def test_batch_gives_one_result_per_image_in_order(client):
    blank = png_bytes(np.full((120, 160, 3), 200, np.uint8))
    files = [("files", ("face.jpg", FACE.read_bytes(), "image/jpeg")), ("files", ("blank.png", blank, "image/png")),
             ("files", ("two.png", png_bytes(two_faces_rgb()), "image/png"))]
    r = client.post("/v1/predict/batch", files=files, headers=H)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [len(x["faces"]) for x in results] == [1, 0, 2]
    assert results[1]["image_size"] == [160, 120]
    single = client.post("/v1/predict", content=FACE.read_bytes(), headers=H).json()["faces"][0]
    assert np.allclose(list(results[0]["faces"][0]["probabilities"].values()),
                       list(single["probabilities"].values()), atol=1e-4)
    r = client.post("/v1/predict/batch", files=files + [("files", ("4.png", blank, "image/png"))], headers=H)
    assert r.status_code == 413 and "too many images" in r.json()["error"]


# -- limits ------------------------------------------------------------------------------------------------

def test_body_size_limit(client):
    big = b"\xff\xd8" + b"\0" * (1024 * 1024 + 10)
    r = client.post("/v1/predict", content=big, headers=H)
    assert r.status_code == 413 and "larger than" in r.json()["error"]

    def chunks():  # no Content-Length: counted while it arrives
        for _ in range(40):
            yield b"\0" * 65536

    r = client.post("/v1/predict", content=chunks(), headers=H)
    assert r.status_code == 413


def test_pixel_limit_refuses_bombs_from_the_header(client):
    bomb = png_bytes(np.zeros((2100, 2100, 3), np.uint8))  # 4.4 M pixels > 4 M, a few kB
    assert len(bomb) < 100_000
    r = client.post("/v1/predict", content=bomb, headers=H)
    assert r.status_code == 413 and "pixels" in r.json()["error"]


@pytest.mark.parametrize("data, status, words", [
    (b"", 400, "empty"),
    (b"just some text, not an image", 415, "not an image"),
    (b"\xff\xd8\xff\xe0" + b"\x00" * 40, 400, "body"),  # a JPEG header, then nothing
])
def test_broken_and_unsupported_images(client, data, status, words):
    r = client.post("/v1/predict", content=data, headers=H)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_truncated_jpeg_is_a_clear_400(client):
    r = client.post("/v1/predict", content=FACE.read_bytes()[:600], headers=H)
    assert r.status_code == 400 and r.json()["error"].startswith("body:")


def test_no_file_path_is_ever_taken_from_a_client(client):
    # a path where an image should be is just bytes that are not an image; a form without a file has no image
    r = client.post("/v1/predict", content=str(FACE).encode(), headers=H)
    assert r.status_code == 415
    r = client.post("/v1/predict", data={"file": str(FACE), "path": str(FACE)}, files={"x": ("", b"", "")},
                    headers=H)
    assert r.status_code in (400, 415) and "astronaut" not in r.text.replace(str(FACE), "")
    r = client.post("/v1/predict/batch", data={"path": str(FACE)}, headers=H)
    assert r.status_code == 415 and "multipart" in r.json()["error"]


def test_cors_only_for_the_given_origin(client):
    pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key"}
    ok = client.options("/v1/predict", headers={"Origin": ORIGIN, **pre})
    assert ok.headers.get("access-control-allow-origin") == ORIGIN
    other = client.options("/v1/predict", headers={"Origin": "http://evil.example", **pre})
    assert other.headers.get("access-control-allow-origin") is None


def test_page_and_script_ship_with_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "http" not in page.text.split("<body>")[0].replace("http-equiv", "")  # nothing from a CDN
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "/v1/stream" in js.text and "/v1/predict" in js.text
    assert "https://" not in js.text and "http://" not in js.text


def test_metrics_count_requests_faces_and_rejections(client):
    client.post("/v1/predict", content=FACE.read_bytes(), headers=H)
    client.post("/v1/predict", content=b"\0" * (2 * 1024 * 1024), headers=H)
    assert client.post("/v1/predict", content=FACE.read_bytes()).status_code == 401  # no key: its own rejection
    text = client.get("/metrics", headers=H).text
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    assert values['eacfer_requests_total{endpoint="/v1/predict",status="200"}'] >= 1
    assert values["eacfer_faces_total"] >= 1
    assert values['eacfer_rejected_requests_total{reason="body_too_large"}'] >= 1
    assert values['eacfer_rejected_requests_total{reason="api_key"}'] >= 1
    assert values['eacfer_request_latency_seconds_count{endpoint="/v1/predict"}'] >= 1


# -- WebSocket ----------------------------------------------------------------------------------------------

def _connect(server, key=KEY):
    from websockets.sync.client import connect

    return connect(f"{server.ws_url}/v1/stream" + (f"?api_key={key}" if key else ""), open_timeout=30,
                   close_timeout=10, max_size=None)


def test_stream_needs_the_key(server):
    from websockets.exceptions import InvalidStatus

    for key in (None, "wrong"):
        with pytest.raises(InvalidStatus):
            with _connect(server, key):
                pass


def test_stream_tracks_the_face_across_frames(server):
    frame = jpeg_bytes(face_rgb())
    with _connect(server) as ws:
        replies = []
        for _ in range(4):  # one at a time: nothing is dropped
            ws.send(frame)
            replies.append(json.loads(ws.recv(timeout=30)))
    assert [r["frame"] for r in replies] == [1, 2, 3, 4]
    assert all(r["dropped"] == 0 and len(r["faces"]) == 1 for r in replies)
    tracks = {r["faces"][0]["track"] for r in replies}
    assert len(tracks) == 1  # the same face keeps its track id
    assert all("smoothed_emotion" in r["faces"][0] for r in replies)


def test_stream_drops_stale_frames_instead_of_queueing(server):
    frame = jpeg_bytes(face_rgb())
    sent = 12  # under the 15 frames/s limit, but far faster than one classification each
    with _connect(server) as ws:
        for _ in range(sent):
            ws.send(frame)
        replies = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = json.loads(ws.recv(timeout=30))
            replies.append(r)
            if r["frame"] == sent:
                break
    last = replies[-1]
    assert last["frame"] == sent and last["received"] == sent  # the newest frame is always analysed
    assert last["dropped"] >= 1
    assert len(replies) + last["dropped"] == sent  # every frame is either answered or counted as dropped
    assert [r["frame"] for r in replies] == sorted(r["frame"] for r in replies)


def test_stream_frame_rate_limit_closes_with_an_error(server):
    from websockets.exceptions import ConnectionClosed

    frame = jpeg_bytes(np.full((48, 64, 3), 128, np.uint8))
    errors, code = [], None
    with _connect(server) as ws:
        try:
            for _ in range(40):
                ws.send(frame)
            for _ in range(45):
                r = json.loads(ws.recv(timeout=30))
                if "error" in r:
                    errors.append(r)
        except ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd else None
    assert errors and errors[-1]["status"] == 429 and "too many frames" in errors[-1]["error"]
    assert code == 1008


def test_stream_bad_frame_gets_an_error_and_the_stream_goes_on(server):
    with _connect(server) as ws:
        ws.send(b"not a jpeg")
        bad = json.loads(ws.recv(timeout=30))
        ws.send(jpeg_bytes(face_rgb()))
        good = json.loads(ws.recv(timeout=30))
    assert bad["frame"] == 1 and bad["status"] == 415
    assert good["frame"] == 2 and len(good["faces"]) == 1


# -- command line -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["--checkpoint", "no-such-model.onnx"], "no-such-model.onnx: model file not found"),
    (["--queue", "0"], "--queue must be >= 1"),
    (["--max-batch", "0"], "--max-batch must be >= 1"),
    (["--max-body-mb", "0"], "--max-body-mb must be > 0"),
    (["--host", "203.0.113.7", "--port", "0"], "cannot listen on 203.0.113.7:0"),  # not an address of this machine
])
def test_bad_options_are_one_line_errors(args, words, capsys):
    from eacfer.commands.cli import main

    assert main(["serve", "-q", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("eacfer serve: error: ") and words in err and err.count("\n") == 1


def test_min_confidence_labels_unsure_faces_uncertain():
    """#28 on serve: ``--min-confidence P`` labels a face ``uncertain`` exactly when its top probability is below
    P, and still returns its probabilities (the same option as predict/video)."""
    s = Server(["--min-confidence", "0.999999"])
    try:
        with httpx.Client(base_url=s.url, timeout=60.0) as c:
            faces = []
            for img in (jpeg_bytes(face_rgb()), jpeg_bytes(two_faces_rgb())):
                r = c.post("/v1/predict", content=img)
                assert r.status_code == 200, r.text
                faces += r.json()["faces"]
    finally:
        assert s.stop() == 0
    assert faces
    for f in faces:
        top_name, top = max(f["probabilities"].items(), key=lambda kv: kv[1])
        assert (f["emotion"] == "uncertain") == (top < 0.999999), f
        assert sum(f["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert any(f["emotion"] == "uncertain" for f in faces)  # a 64-px FER model is rarely that sure
