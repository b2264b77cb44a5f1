"""The page of ``eacfer serve`` in a real browser (issue #26): headless Chromium (Debian's ``chromium``,
installed by ``make install``) driven by Playwright, its fake camera fed a generated face clip (y4m). The page
must draw a box and a label for the face from the WebSocket stream, and for an uploaded photo.

No skip when Chromium or Playwright is missing: then this test fails (``make install`` provides both).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from serve_testutils import FACE, Server, chromium, face_rgb


def write_y4m(path: Path, frames: int = 10, size: tuple[int, int] = (640, 480)) -> Path:
    """A YUV4MPEG2 clip (Chromium's fake-camera format): the astronaut's head, close up as in a webcam,
    drifting over a gradient."""
    import cv2

    w, h = size
    head = face_rgb()[10:250, 110:350]  # the head and shoulders of the 512 px portrait
    face = cv2.cvtColor(cv2.resize(head, (320, 320), interpolation=cv2.INTER_CUBIC), cv2.COLOR_RGB2BGR)
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack([xx * 200 // w, yy * 200 // h, np.full_like(xx, 90)], -1).astype(np.uint8)
    with open(path, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            frame = bg.copy()
            x, y = 100 + 4 * i, 80
            frame[y:y + 320, x:x + 320] = face
            fh.write(b"FRAME\n")
            fh.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def test_page_streams_the_camera_and_labels_the_face(tmp_path):
    from playwright.sync_api import sync_playwright

    clip = write_y4m(tmp_path / "clip.y4m")
    server = Server([])
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium(), args=[
                "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={clip}"])
            try:
                page = browser.new_page()
                page.goto(server.url + "/")
                page.click("#start")
                # the canvas says how many faces it drew and their labels (set by app.js after drawing)
                page.wait_for_function("document.getElementById('view').dataset.faces >= 1", timeout=90_000)
                labels = page.eval_on_selector("#view", "c => c.dataset.labels")
                status = page.inner_text("#status")
                # the box is drawn in green (#3f3) on the canvas: look for its pixels
                green = page.evaluate("""() => { const c = document.getElementById('view');
                    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
                    for (let i = 0; i < d.length; i += 4) if (d[i] === 51 && d[i+1] === 255 && d[i+2] === 51) n++;
                    return n; }""")
                page.screenshot(path=str(tmp_path / "stream.png"))
                page.click("#stop")

                page.set_input_files("#photo", str(FACE))
                page.wait_for_function("document.getElementById('status').textContent.includes('face(s)')",
                                       timeout=60_000)
                photo_status = page.inner_text("#status")
                photo_labels = page.eval_on_selector("#view", "c => c.dataset.labels")
                page.screenshot(path=str(tmp_path / "photo.png"))
            finally:
                browser.close()
    finally:
        assert server.stop() == 0
    from eacfer.infer.runtime.starter import starter_model_path  # noqa: F401 - the classes of the model served

    classes = {"Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Neutral"}
    assert labels and set(labels.split(",")) <= classes, labels
    assert status.startswith("frame ") and "1 face(s)" in status, status
    assert green > 200, "no box drawn"
    assert (tmp_path / "stream.png").stat().st_size > 10_000
    assert photo_status == "astronaut.jpg: 1 face(s)" and photo_labels in classes
