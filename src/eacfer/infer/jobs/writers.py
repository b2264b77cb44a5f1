"""MP4 writers for annotated videos: H.264 through PyAV (plays in web browsers), OpenCV's MPEG-4 as fallback.

``VideoWriter(path, fps, size)`` picks the codec (``codec="auto"``):

* ``"h264"`` — libx264 through PyAV (``pip install 'eacfer[video]'``), ``yuv420p`` with ``+faststart``, so
  the file plays in every web browser and starts before it is fully downloaded. Settings: preset
  ``ultrafast``, CRF 20, one thread (``benchmarks/cpu_inference.py --only pipeline`` prints the cost per
  frame and the PSNR against the source for both codecs; the encoder runs on its own pipeline thread).
* ``"mp4v"`` — OpenCV's MPEG-4 Part 2 writer (what eacfer wrote before): always available, but browsers do
  not play it (desktop players do).

``"auto"`` uses H.264 when PyAV is installed and MPEG-4 otherwise (logged once). Every writer only makes
``path`` appear once the video is complete (temporary file + rename). :class:`BackgroundWriter` draws and
encodes on its own thread behind a bounded queue (the last stage of the ``eacfer video`` pipeline).
"""

from __future__ import annotations

import logging
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CODECS = ("auto", "h264", "mp4v")
#: libx264 settings: ``ultrafast`` keeps encoding a small share of a frame's time, CRF 20 keeps quality
H264_OPTIONS = {"preset": "ultrafast", "crf": "20", "threads": "1"}


def pyav_available() -> bool:
    """Whether PyAV with an H.264 encoder (libx264) is importable.

    Example:
        >>> isinstance(pyav_available(), bool)
        True
    """
    try:
        import av
    except ImportError:
        return False
    return "libx264" in getattr(av, "codecs_available", ())


def resolve_codec(codec: str = "auto") -> str:
    """``"h264"`` or ``"mp4v"`` for a ``codec`` setting; ``"h264"`` without PyAV raises ``ValueError``.

    Example:
        >>> resolve_codec("mp4v")
        'mp4v'
    """
    if codec not in CODECS:
        raise ValueError(f"unknown video codec {codec!r}; choose from {', '.join(CODECS)}")
    if codec == "mp4v":
        return codec
    if pyav_available():
        return "h264"
    if codec == "h264":
        raise ValueError("H.264 output needs PyAV with libx264: pip install 'eacfer[video]' (or use --codec mp4v)")
    log.info("PyAV is not installed: writing MPEG-4 (mp4v), which browsers do not play; "
             "pip install 'eacfer[video]' for H.264")
    return "mp4v"


class _OpenCVBackend:
    def __init__(self, tmp: Path, fps: float, size: tuple[int, int], fourcc: str):
        import cv2

        self._w = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*fourcc), float(fps), size)
        if not self._w.isOpened():
            raise OSError(f"cannot open an MP4 writer (codec {fourcc!r}, {size[0]}×{size[1]})")

    def write(self, frame_bgr: np.ndarray, time_s: float | None = None) -> None:
        self._w.write(frame_bgr)  # constant frame rate: OpenCV's writer takes no timestamps

    def close(self) -> None:
        self._w.release()


class _PyAVBackend:
    def __init__(self, tmp: Path, fps: float, size: tuple[int, int]):
        from fractions import Fraction

        import av

        self._av = av
        self._c = av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"})
        try:
            rate = Fraction(float(fps)).limit_denominator(1001)
            self._s = self._c.add_stream("libx264", rate=rate)
            # yuv420p (what browsers decode) needs even sides: odd frames get one replicated pixel row/column
            self._pad = (size[1] % 2, size[0] % 2)
            self._s.width, self._s.height = size[0] + self._pad[1], size[1] + self._pad[0]
            self._s.pix_fmt = "yuv420p"
            self._s.options = dict(H264_OPTIONS)
            # millisecond timestamps: frames given a time_s (live sources that drop frames) keep real time
            self._s.codec_context.time_base = Fraction(1, 1000)
            self._frame_ms = 1000.0 / float(fps)
            self._n = 0
            self._last_pts = -1
        except Exception:
            self._c.close()
            raise

    def write(self, frame_bgr: np.ndarray, time_s: float | None = None) -> None:
        from fractions import Fraction

        if any(self._pad):
            frame_bgr = np.pad(frame_bgr, ((0, self._pad[0]), (0, self._pad[1]), (0, 0)), mode="edge")
        import cv2

        # OpenCV's BGR → I420 is ~3 ms a frame cheaper than PyAV's swscale here, and closer to the source
        # (PSNR 43 vs 40.5 dB on the benchmark clip)
        yuv = cv2.cvtColor(np.ascontiguousarray(frame_bgr), cv2.COLOR_BGR2YUV_I420)
        frame = self._av.VideoFrame.from_ndarray(np.asarray(yuv, np.uint8), format="yuv420p")  # no copy: uint8
        pts = round(time_s * 1000.0) if time_s is not None else round(self._n * self._frame_ms)
        self._last_pts = pts = max(int(pts), self._last_pts + 1)  # strictly increasing
        frame.pts, frame.time_base = pts, Fraction(1, 1000)
        self._n += 1
        for packet in self._s.encode(frame):
            self._c.mux(packet)

    def close(self) -> None:
        try:
            for packet in self._s.encode():  # flush the encoder's look-ahead
                self._c.mux(packet)
        finally:
            self._c.close()


class VideoWriter:
    """MP4 writer that only makes ``path`` appear once the video is complete (temp file + rename).

    Args:
        codec: ``"auto"`` (H.264 when PyAV is installed, else MPEG-4), ``"h264"`` or ``"mp4v"``.
        fourcc: an explicit OpenCV FourCC (implies OpenCV's writer), e.g. ``"MJPG"``.

    Example:
        >>> with VideoWriter("out/annotated.mp4", fps=25, size=(640, 360)) as w:  # doctest: +SKIP
        ...     w.write(frame_bgr)
        >>> w.codec                                                                # doctest: +SKIP
        'h264'
    """

    def __init__(self, path: str | os.PathLike[str], fps: float, size: tuple[int, int], fourcc: str | None = None,
                 codec: str = "auto"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.size = (int(size[0]), int(size[1]))
        self.codec = "mp4v" if fourcc is not None else resolve_codec(codec)
        # the temporary name keeps the .mp4 suffix: OpenCV picks the container from the extension
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".tmp.mp4", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        self.frames = 0
        self._w: Any
        try:
            if self.codec == "h264":
                self._w = _PyAVBackend(self.tmp, fps, self.size)
            else:
                self._w = _OpenCVBackend(self.tmp, fps, self.size, fourcc or "mp4v")
        except Exception as e:
            self.tmp.unlink(missing_ok=True)
            raise OSError(f"{self.path}: {e}") from None

    @property
    def description(self) -> str:
        """The codec in words, for summaries."""
        return "H.264 (libx264 via PyAV)" if self.codec == "h264" else "MPEG-4 Part 2 (OpenCV mp4v)"

    def write(self, frame_bgr: np.ndarray, time_s: float | None = None) -> None:
        """Append one BGR frame (resized if a source changes resolution mid-stream).

        ``time_s``: the frame's time from the start (H.264 only; live sources that drop frames pass it so
        the video keeps real time). Without it, frames follow each other at the writer's fps.
        """
        if (frame_bgr.shape[1], frame_bgr.shape[0]) != self.size:
            import cv2

            frame_bgr = cv2.resize(frame_bgr, self.size, interpolation=cv2.INTER_AREA)
        if time_s is None:
            self._w.write(frame_bgr)
        else:
            self._w.write(frame_bgr, time_s)
        self.frames += 1

    def close(self) -> Path | None:
        """Finalise the MP4 and rename it into place; returns the path, or ``None`` when no frame was written."""
        if self._w is None:
            return self.path if self.path.exists() else None
        w, self._w = self._w, None
        if self.frames == 0:
            try:
                w.close()
            except Exception:  # an encoder that never got a frame may refuse to finalise; nothing to keep
                log.debug("closing an empty writer failed", exc_info=True)
            self.tmp.unlink(missing_ok=True)
            return None
        try:
            w.close()
            with open(self.tmp, "rb") as fh:
                os.fsync(fh.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.tmp, 0o666 & ~umask)  # mkstemp made it private (0600); give it normal permissions
            os.replace(self.tmp, self.path)
        except BaseException:  # e.g. disk full while finalising: no half-written hidden file stays behind
            self.tmp.unlink(missing_ok=True)
            raise
        return self.path

    def abort(self) -> None:
        """Drop the partial video."""
        if self._w is not None:
            try:
                self._w.close()
            except Exception:
                log.debug("closing an aborted writer failed", exc_info=True)
            self._w = None
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        self.close()


_END = object()


def write_frame(writer: VideoWriter, bgr: np.ndarray, time_s: float | None) -> None:
    """``writer.write(bgr)``, with the timestamp only when there is one."""
    if time_s is None:
        writer.write(bgr)
    else:
        writer.write(bgr, time_s=time_s)


class BackgroundWriter:
    """Draw and encode frames on a thread of their own, behind a bounded queue (``maxsize`` frames).

    ``submit(item)`` blocks while the queue is full (so memory stays bounded and nothing is dropped);
    ``render(item) -> BGR frame`` runs on the writer thread. ``close()`` writes every submitted frame and
    finalises the file. An error on the writer thread is raised by the next ``submit`` or by ``close``.

    Example:
        >>> bw = BackgroundWriter(VideoWriter("a.mp4", 25, (640, 360)), render=lambda bgr: bgr)  # doctest: +SKIP
        >>> bw.submit(frame_bgr); bw.close()                                                      # doctest: +SKIP
    """

    def __init__(self, writer: VideoWriter, render: Callable[[Any], np.ndarray], maxsize: int = 4,
                 timestamp: Callable[[Any], float | None] | None = None):
        self.writer = writer
        self.render = render
        self.timestamp = timestamp
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self.busy = {"draw": 0.0, "write": 0.0}  # seconds spent per step (written by the thread only)
        self.max_queued = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="eacfer-encode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is _END:
                return
            if self._error is not None:
                continue  # keep draining so submit never blocks forever
            try:
                t0 = time.perf_counter()
                bgr = self.render(item)
                t1 = time.perf_counter()
                write_frame(self.writer, bgr, None if self.timestamp is None else self.timestamp(item))
                self.busy["draw"] += t1 - t0
                self.busy["write"] += time.perf_counter() - t1
            except BaseException as e:  # reported to the producer
                self._error = e

    def submit(self, item: Any) -> None:
        """Queue one frame for drawing and encoding (blocks while ``maxsize`` frames are waiting)."""
        if self._error is not None:
            raise self._error
        self.queue.put(item)
        self.max_queued = max(self.max_queued, self.queue.qsize())

    def close(self) -> Path | None:
        """Write what was submitted, then finalise the video (see :meth:`VideoWriter.close`)."""
        if self._thread.is_alive():
            self.queue.put(_END)
            self._thread.join()
        path = self.writer.close()
        if self._error is not None:
            raise self._error
        return path
