"""``eacfer.infer.stream.live.LiveSession`` (the WebSocket stream of ``eacfer serve``): frames pushed one at a time get
the live face finder's tracks, ``--classify-every`` label carry-over and the IoU tracker's smoothing, as
``eacfer video`` on a camera (issue #26)."""

from __future__ import annotations

import numpy as np
import pytest

from serve_testutils import face_rgb


@pytest.fixture(scope="module")
def predictor():
    from eacfer.infer.predictor import Predictor
    from eacfer.infer.runtime.starter import starter_model_path

    with Predictor.from_checkpoint(starter_model_path()) as p:
        yield p


def _frames(n: int) -> list[np.ndarray]:
    """The astronaut's head, close up (as a webcam sees it), shifting 3 px a frame on a grey 640×480 frame."""
    import cv2

    head = cv2.resize(face_rgb()[10:250, 110:350], (300, 300), interpolation=cv2.INTER_CUBIC)
    out = []
    for i in range(n):
        f = np.full((480, 640, 3), 120, np.uint8)
        f[90:390, 100 + 3 * i:400 + 3 * i] = head
        out.append(f)
    return out


@pytest.mark.parametrize("every", [1, 2, 3])
def test_labels_are_carried_over_between_classifications(predictor, every):
    from eacfer.infer.stream.live import LiveSession

    with LiveSession(predictor, classify_every=every) as s:
        results = [s.process(f) for f in _frames(7)]
        stats = s.stats()
    assert all(len(r.faces) == 1 for r in results)
    assert len({r.faces[0].track_id for r in results}) == 1 and results[0].faces[0].track_id is not None
    label_frames = [r.faces[0].label_frame for r in results]
    classified = [i for i, lf in enumerate(label_frames) if lf == i]
    assert classified[0] == 0  # a new face is classified at once
    # never carried over longer than every - 1 frames; with every = 1 every frame is classified
    assert all(i - lf <= every - 1 for i, lf in enumerate(label_frames))
    assert stats["labels"]["faces_classified"] == len(classified)
    assert stats["labels"]["faces_carried"] == 7 - len(classified)
    if every > 1:
        assert len(classified) < 7
        carried = [i for i in range(7) if label_frames[i] != i]
        for i in carried:  # the carried probabilities are those of the frame that gave them
            assert np.array_equal(results[i].faces[0].probabilities, results[label_frames[i]].faces[0].probabilities)
    assert [r.index for r in results] == list(range(7))
    assert all(r.faces[0].smoothed is not None for r in results)  # the tracker smoothed them


def test_sessions_keep_their_own_tracks_and_max_faces(predictor):
    from eacfer.infer.stream.live import LiveSession

    frames = _frames(3)
    a, b = LiveSession(predictor, classify_every=1), LiveSession(predictor, classify_every=1)
    try:
        ra = [a.process(f) for f in frames]
        rb = b.process(frames[0])
        none = a.process(frames[0], max_faces=0)
    finally:
        a.close()
        b.close()
    assert rb.faces[0].track_id == ra[0].faces[0].track_id  # b's ids start afresh, not after a's
    assert none.faces == []
    assert a.stats()["frames"] == 4 and b.stats()["frames"] == 1
