"""Annotated photos (#19): probability panels never cover another face or its label (placed in free
space, shrunk, or left out when crowded), and each box carries the face's index from predictions.csv.
Checked on rendered images."""

from __future__ import annotations

import numpy as np
import pytest

from eacfer.constants import RAFDB_CLASSES
from eacfer.infer.results import FaceResult
from eacfer.infer.viz import annotate, face_label, label_rect, layout_panels

BG, FACE = 200, 120  # background and face-patch grey levels; a panel darkens v to (v >> 2) + 16


def _face(x, y, w, h, k=3):
    p = np.full(7, 0.05, np.float32)
    p[k] = 0.7
    return FaceResult(box=(float(x), float(y), float(w), float(h)), score=0.9, keypoints=None,
                      emotion=RAFDB_CLASSES[k], class_index=k, probabilities=p, class_names=tuple(RAFDB_CLASSES))


def _scene(shape, faces):
    img = np.full((*shape, 3), BG, np.uint8)
    for f in faces:
        x, y, w, h = (int(v) for v in f.box)
        img[y:y + h, x:x + w] = FACE
    return img


def _rects(mask):
    """Bounding rectangles (x0, y0, x1, y1) of the connected regions of ``mask``."""
    import cv2

    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [(x, y, x + w, y + h) for x, y, w, h, _ in stats[1:]]


def _overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _panels_in(rendered):
    """Panels as drawn: the darkened background ((BG >> 2) + 16) and darkened face pixels."""
    dark = np.all(rendered == (BG >> 2) + 16, axis=2) | np.all(rendered == (FACE >> 2) + 16, axis=2)
    return [r for r in _rects(dark) if (r[2] - r[0]) * (r[3] - r[1]) > 50]


def _check_faces_untouched(img, rendered, faces, margin=4):
    for f in faces:
        x, y, w, h = (int(v) for v in f.box)
        inner = (slice(y + margin, y + h - margin), slice(x + margin, x + w - margin))
        assert np.array_equal(rendered[inner], img[inner]), f"something was drawn over the face at {f.box}"


# a row of faces with gaps narrower than a panel: a panel beside a box would cover the neighbour
ROW = [_face(40 + 150 * i, 170, 120, 120, k=i) for i in range(4)]


def test_panels_avoid_neighbouring_faces_and_labels():
    img = _scene((480, 640), ROW)
    out = annotate(img, ROW)
    _check_faces_untouched(img, out, ROW)
    drawn = _panels_in(out)
    assert len(drawn) == len(ROW)  # there is room above and below: every face keeps its panel
    boxes = [(int(f.box[0]), int(f.box[1]), int(f.box[0] + f.box[2]), int(f.box[1] + f.box[3])) for f in ROW]
    labels = [label_rect(img.shape, f, face_label(f, i)) for i, f in enumerate(ROW)]
    for p in drawn:
        assert not any(_overlap(p, b) for b in boxes), (p, boxes)
        assert not any(_overlap(p, lb) for lb in labels), (p, labels)
    for a in range(len(drawn)):
        for b in range(a + 1, len(drawn)):
            assert not _overlap(drawn[a], drawn[b])


def test_single_face_panel_sits_beside_it():
    faces = [_face(100, 100, 150, 150)]
    img = _scene((400, 600), faces)
    out = annotate(img, faces)
    (p,) = _panels_in(out)
    assert p[0] >= 250 and p[1] >= 100  # right of the box, top-aligned with it
    _check_faces_untouched(img, out, faces)


def test_crowded_image_drops_or_shrinks_panels_but_never_covers_a_face():
    # a 4×3 grid of faces filling a small photo: nowhere for full-size panels
    faces = [_face(8 + 78 * c, 20 + 78 * r, 66, 52) for r in range(3) for c in range(4)]
    img = _scene((260, 320), faces)
    out = annotate(img, faces)
    _check_faces_untouched(img, out, faces, margin=2)
    layout = layout_panels(img.shape, faces, [face_label(f, i) for i, f in enumerate(faces)])
    assert any(p is None for p in layout)  # some panels left out
    boxes = [(int(f.box[0]), int(f.box[1]), int(f.box[0] + f.box[2]), int(f.box[1] + f.box[3])) for f in faces]
    for p in _panels_in(out):
        assert not any(_overlap(p, b) for b in boxes)


def test_panel_shrinks_before_it_is_dropped():
    # one face almost filling the width: a full-size panel fits nowhere, a smaller one fits below
    faces = [_face(5, 5, 290, 200)]
    img = _scene((300, 300), faces)
    full = layout_panels((3000, 3000, 3), [_face(5, 5, 290, 200)], ["x"])[0]
    got = layout_panels(img.shape, faces, [face_label(faces[0], 0)])[0]
    assert got is not None and full is not None
    (x0, y0, x1, y1), scale = got
    assert y0 >= 205 and y1 <= 300  # below the box, inside the image


def test_face_index_of_the_csv_is_drawn_on_each_box(monkeypatch):
    import cv2

    texts = []
    real = cv2.putText

    def spy(img, text, *a, **k):
        texts.append(text)
        return real(img, text, *a, **k)

    monkeypatch.setattr(cv2, "putText", spy)
    annotate(_scene((480, 640), ROW), ROW, bars=False)
    # eacfer.infer.jobs.photos writes the i-th face of r.faces with face = i: the same index is drawn
    assert texts == [f"{i}: {RAFDB_CLASSES[i]} 0.70" for i in range(len(ROW))]


def test_tracked_faces_keep_their_track_id():
    f = _face(10, 10, 50, 50)
    f.track_id = 7
    assert face_label(f, 0) == f"#7 {RAFDB_CLASSES[3]} 0.70"


@pytest.mark.parametrize("color_order", ["rgb", "bgr"])
def test_no_faces_no_change(color_order):
    img = _scene((100, 100), [])
    assert np.array_equal(annotate(img, [], color_order=color_order), img)
