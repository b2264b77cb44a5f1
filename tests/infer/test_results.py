"""``frames.csv``: one row format (``eacfer.infer.results``) for ``eacfer video`` and the app's recordings and
snapshots; the app's rows fill ``label_frame`` like the command's (issue 27: the app's column stayed empty)."""

from __future__ import annotations

import csv

import numpy as np

from eacfer.infer.results import FaceResult, FrameResult, frame_csv_rows, frames_csv_columns

NAMES = ("happy", "sad", "neutral")


def _face(track: int | None = 1, label_frame: int | None = None, smoothed: bool = True) -> FaceResult:
    p = np.array([0.7, 0.2, 0.1], np.float32)
    return FaceResult(box=(10.0, 20.0, 30.5, 40.25), score=0.91234, keypoints=None, emotion="happy", class_index=0,
                      probabilities=p, class_names=NAMES, track_id=track,
                      smoothed=np.array([0.6, 0.3, 0.1]) if smoothed else None, label_frame=label_frame)


def _read(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_row_format_follows_the_columns():
    cols = frames_csv_columns(NAMES)
    assert cols[:9] == ["frame", "time_s", "track", "x", "y", "w", "h", "score", "emotion"]
    assert cols[-1] == "label_frame" and len(cols) == 2 * len(NAMES) + 11
    (row,) = frame_csv_rows(12, 0.48, [_face()], len(NAMES))
    assert len(row) == len(cols)
    rec = dict(zip(cols, row, strict=True))
    assert rec["frame"] == 12 and rec["time_s"] == "0.4800" and rec["track"] == 1
    assert (rec["x"], rec["y"], rec["w"], rec["h"]) == ("10.0", "20.0", "30.5", "40.2")
    assert rec["score"] == "0.9123" and rec["emotion"] == "happy" and rec["p_sad"] == "0.20000"
    assert rec["smoothed_emotion"] == "happy" and rec["s_sad"] == "0.30000"
    assert rec["label_frame"] == 12  # classified on this frame
    (carried,) = frame_csv_rows(14, 0.56, [_face(label_frame=12)], len(NAMES))
    assert carried[-1] == 12  # labels carried over from frame 12
    (empty,) = frame_csv_rows(3, 0.12, [], len(NAMES))
    assert empty[:2] == [3, "0.1200"] and empty[2:] == [""] * (len(cols) - 2)
    unsmoothed = frame_csv_rows(1, 0.0, [_face(track=None, smoothed=False)], len(NAMES))[0]
    assert unsmoothed[2] is None and unsmoothed[cols.index("s_happy")] == ""
    assert FrameResult(faces=[_face()], image_size=(64, 64), index=12, time_s=0.48).csv_rows(3) == [row]


def _analysis(index: int, faces: list[FaceResult]):
    from eacfer.ui.session import Analysis
    from eacfer.ui.worker import FramePacket

    pkt = FramePacket(seq=index, index=index, time_s=index / 25, image=np.zeros((32, 48, 3), np.uint8),
                      source_id=1, name="frame.png")
    return Analysis(packet=pkt, faces=faces, class_names=NAMES)


def test_app_recording_writes_the_rows_of_eacfer_video(tmp_path):
    """The app's recording CSV has the columns and rows ``eacfer video`` writes, ``label_frame`` filled."""
    from eacfer.ui.recorder import Recorder

    rec = Recorder(tmp_path, NAMES, fps=25.0, size=(48, 32))
    frames = [(5, [_face()]), (6, [_face(label_frame=5)]), (7, [])]
    for index, faces in frames:
        rec.write(np.zeros((32, 48, 3), np.uint8), _analysis(index, faces))
    _video, table = rec.close()
    rows = _read(table)
    assert rows[0] == frames_csv_columns(NAMES)
    expected = [[str(v) if v is not None else "" for v in r]
                for index, faces in frames for r in frame_csv_rows(index, index / 25, faces, len(NAMES))]
    assert rows[1:] == expected
    label = rows[0].index("label_frame")
    assert [r[label] for r in rows[1:]] == ["5", "5", ""]


def test_app_snapshot_rows(tmp_path):
    from eacfer.ui.recorder import save_snapshot

    _png, table = save_snapshot(tmp_path, np.zeros((32, 48, 3), np.uint8), _analysis(9, [_face()]))
    rows = _read(table)
    assert rows[0] == ["source", *frames_csv_columns(NAMES)]
    assert rows[1][0] == "frame.png" and rows[1][1] == "9" and rows[1][-1] == "9"


def test_csv_sink_writes_analysed_frames_and_only_finished_files(tmp_path):
    """``run_video``'s frames.csv sink: rows of analysed frames only (frames skipped by ``every`` have none),
    the file appears when closed, and not at all when the driver fails with an error it does not report."""
    import pytest

    from eacfer.infer.jobs.video import CsvSink

    path = tmp_path / "frames.csv"
    sink = CsvSink(path, list(NAMES))
    sink.write(FrameResult(faces=[_face()], image_size=(64, 64), index=0, time_s=0.0))
    sink.write(FrameResult(faces=[], image_size=(64, 64), index=1, time_s=0.04, processed=False))
    sink.write(FrameResult(faces=[], image_size=(64, 64), index=2, time_s=0.08))
    assert not path.exists()  # still a temporary file
    sink.close()
    rows = _read(path)
    assert rows[0] == frames_csv_columns(NAMES) and [r[0] for r in rows[1:]] == ["0", "2"]

    other = tmp_path / "other.csv"
    with pytest.raises(SystemExit), CsvSink(other, list(NAMES)) as s:
        s.write(FrameResult(faces=[_face()], image_size=(64, 64), index=0, time_s=0.0))
        raise SystemExit(1)
    assert not other.exists() and [p.name for p in tmp_path.iterdir()] == ["frames.csv"]
