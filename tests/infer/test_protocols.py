"""The typed seams of the inference package (issue 27): what the pipeline needs of a face analyser is declared
once (``eacfer.infer.protocols``), the detection stage belongs to the analyser, and stream settings are checked
once, by every entry point, before anything is opened or written."""

from __future__ import annotations

import inspect

import pytest

from eacfer.infer.protocols import FaceAnalyser, FrameDetector

pytest_plugins = ["inference_fixtures"]  # shared fixtures: model_pt, predictor, face_rgb, …


def test_predictor_is_a_face_analyser(predictor):
    """Every member the seam declares exists on the real predictor (a renamed or removed one fails here; the
    signatures are checked by ``mypy`` in ``make test``)."""
    assert isinstance(predictor, FaceAnalyser)
    stage = predictor.frame_detector("video")
    assert isinstance(stage, FrameDetector)
    assert type(stage).__module__ == "eacfer.infer.detection_stage"


def test_no_untyped_predictor_parameters():
    """No ``predictor: Any`` left where the seam is used (issue 27 counted 22)."""
    from eacfer.infer import labelling
    from eacfer.infer.jobs import photos as batch
    from eacfer.infer.jobs import pool as batch_pool
    from eacfer.infer.jobs import video
    from eacfer.infer.jobs import videos as videojob
    from eacfer.infer.stream import live, pipeline, reuse

    for mod in (batch, batch_pool, labelling, live, pipeline, reuse, video, videojob):
        assert "predictor: Any" not in inspect.getsource(mod), mod.__name__


def test_the_pipeline_does_not_import_the_predictor_side():
    """The pipeline sees the analyser only through the protocol; the predictor's stage is not the pipeline's."""
    from eacfer.infer.stream import pipeline

    src = inspect.getsource(pipeline)
    assert "class DetectionStage" not in src and "from eacfer.infer.predictor" not in src


class _NoCalls:
    """A stand-in analyser that fails if anything is asked of it: settings must be refused first."""

    def __getattr__(self, name):
        raise AssertionError(f"the analyser was used ({name}) before the settings were checked")


@pytest.mark.parametrize("kw, message", [
    ({"every": 0}, "every must be >= 1"),
    ({"max_frames": 0}, "max_frames must be >= 1"),
    ({"pipeline": "parallel"}, "unknown pipeline 'parallel'"),
])
def test_run_video_checks_settings_before_opening_anything(tmp_path, kw, message):
    from eacfer.infer.jobs.video import run_video

    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        run_video(_NoCalls(), tmp_path / "missing.mp4", out, progress=False, **kw)
    assert not out.exists()


@pytest.mark.parametrize("kw, message", [
    ({"every": 0}, "every must be >= 1"),
    ({"max_frames": -1}, "max_frames must be >= 1"),
    ({"pipeline": "parallel"}, "unknown pipeline 'parallel'"),
])
def test_video_job_checks_settings_before_touching_out(tmp_path, kw, message):
    from eacfer.infer.jobs.videos import run_video_job

    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        run_video_job(_NoCalls(), [str(tmp_path / "missing.mp4")], out, progress=False, **kw)
    assert not out.exists()


def test_open_frames_checks_the_pipeline_name():
    from eacfer.infer.stream.pipeline import open_frames

    with pytest.raises(ValueError, match="unknown pipeline 'fast'"):
        open_frames(_NoCalls(), object(), "fast")
