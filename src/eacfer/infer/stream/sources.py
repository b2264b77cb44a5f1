"""Frame sources: video files, cameras and stream URLs behind one iterator of BGR frames.

``open_source("clip.mp4")``, ``open_source(0)`` (camera index, also ``"0"``) or ``open_source("rtsp://…")``
return a :class:`FrameSource` yielding ``(index, time_s, frame_bgr)``. Problems are reported, not raised
mid-stream: when a file ends early (truncated/corrupt) or a camera stops delivering frames, iteration
stops and :attr:`FrameSource.stop_reason` says why, so callers can finalise their outputs.

* Timestamps of files come from the decoder (``CAP_PROP_POS_MSEC``), so variable-frame-rate videos get
  their real times; live sources use the wall clock.
* Rotated phone videos: OpenCV's FFmpeg backend applies the rotation metadata
  (``CAP_PROP_ORIENTATION_AUTO``, switched on explicitly here); the frame size is taken from the first
  decoded frame, i.e. after rotation.
* Cameras deliver an occasional failed read; only ``max_failures`` consecutive failures end the stream.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_FPS = 30.0
#: what counts as a video file (by name): ``eacfer predict`` points these to ``eacfer video``, video jobs
#: collect them from folders
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")
#: the kinds :func:`source_kind` tells apart
SOURCE_KINDS = ("camera", "url", "folder", "list", "file")


def is_video_file(path: str | os.PathLike[str]) -> bool:
    """True for names with a video extension (``clip.mp4``), whatever their case.

    Example:
        >>> is_video_file("talk.MKV"), is_video_file("face.jpg")
        (True, False)
    """
    return os.path.splitext(os.fspath(path))[1].lower() in VIDEO_EXTENSIONS


def source_kind(source: str | int | os.PathLike[str]) -> str:
    """The one rule for what a SOURCE argument names: ``camera`` (an index: ``0``, ``"0"``), ``url`` (any
    ``scheme://…``, streams and ``file://`` alike), ``folder`` (an existing directory), ``list`` (an existing
    ``.txt`` file naming one source a line) or ``file`` (anything else: a path, existing or not).

    Used by :func:`open_source`, the video jobs (:mod:`eacfer.infer.jobs.videos`) and the desktop app's
    ``--source`` (:mod:`eacfer.ui.media`).

    Example:
        >>> [source_kind(s) for s in (0, "1", "rtsp://cam/stream", "clip.mp4")]
        ['camera', 'camera', 'url', 'file']
    """
    if isinstance(source, int):
        return "camera"
    s = os.fspath(source)
    if s.isdigit():
        return "camera"
    if "://" in s:
        return "url"
    try:
        if os.path.isdir(s):
            return "folder"
        if s.lower().endswith(".txt") and os.path.isfile(s):
            return "list"
    except (OSError, ValueError):  # a NUL byte, a name too long for the file system: a file that is not there
        pass
    return "file"


def is_path_source(source: str | int | os.PathLike[str]) -> bool:
    """True when ``source`` names something on disk (a file, folder or list), False for cameras and URLs.

    Example:
        >>> is_path_source("clip.mp4"), is_path_source("2"), is_path_source("http://host/live.m3u8")
        (True, False, False)
    """
    return source_kind(source) not in ("camera", "url")


class FrameSource:
    """An opened video file, camera or stream.

    Attributes:
        description: what was opened (path, ``camera 0``, URL).
        live: camera/stream (no known length, wall-clock timestamps) vs file.
        fps: frames per second reported by the source (``DEFAULT_FPS`` when it reports nonsense).
        frame_count: number of frames announced by a file's header (an estimate), ``None`` when live.
        size: ``(width, height)`` of the decoded frames.
        frames_read: how many frames were delivered so far.
        stop_reason: ``None`` while running; afterwards ``"end of file"`` or what went wrong.

    Example:
        >>> with open_source("clip.mp4") as src:  # doctest: +SKIP
        ...     for index, time_s, frame_bgr in src:
        ...         pass
    """

    def __init__(self, cap: Any, description: str, live: bool, max_failures: int = 10):
        import cv2

        self._cv2 = cv2
        self.cap = cap
        self.description = description
        self.live = live
        self.max_failures = int(max_failures)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps_reported = fps
        if not (math.isfinite(fps) and 0.5 <= fps <= 1000):
            log.warning("%s: frame rate %r is not usable; assuming %.0f fps", description, fps, DEFAULT_FPS)
            fps = DEFAULT_FPS
        self.fps = fps
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if not live else 0
        self.frame_count: int | None = n if n > 0 else None
        self.frames_read = 0
        self.stop_reason: str | None = None
        self._failures = 0
        self._t0: float | None = None
        self._last_t = -1.0
        ok, first = self._read_raw()
        if not ok or first is None:
            self.close()
            what = "camera/stream delivered no frames" if live else "no frames could be decoded (empty, corrupt or unsupported video)"
            raise ValueError(f"{description}: {what}")
        self._pending: np.ndarray | None = first
        self.size = (int(first.shape[1]), int(first.shape[0]))

    def _read_raw(self) -> tuple[bool, np.ndarray | None]:
        tries = self.max_failures if self.live else 1
        for attempt in range(max(1, tries)):
            try:
                ok, frame = self.cap.read()
            except Exception as e:  # some backends raise on a vanished device instead of returning False
                log.debug("%s: read failed: %s", self.description, e)
                ok, frame = False, None
            if ok and frame is not None and frame.size:
                return True, _as_bgr(frame)
            if self.live and attempt + 1 < tries:
                time.sleep(0.02)
        return False, None

    def _timestamp(self, index: int) -> float:
        if self.live:
            now = time.perf_counter()
            if self._t0 is None:
                self._t0 = now
            return now - self._t0
        t = float(self.cap.get(self._cv2.CAP_PROP_POS_MSEC) or 0.0) / 1000.0
        # a decoder without timestamps (0 or going backwards) falls back to index / fps
        if not math.isfinite(t) or (index > 0 and t <= self._last_t):
            t = index / self.fps
        self._last_t = t
        return t

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        while True:
            if self._pending is not None:
                frame, self._pending = self._pending, None
            else:
                ok, read = self._read_raw()
                if not ok or read is None:
                    self._set_stop_reason()
                    return
                frame = read
            index = self.frames_read
            self.frames_read += 1
            yield index, self._timestamp(index), frame

    def _set_stop_reason(self) -> None:
        n = self.frames_read
        if self.live:
            self.stop_reason = f"{self.description}: stopped delivering frames after {n} frames (camera lost?)"
        elif self.frame_count and n < self.frame_count - max(2, self.frame_count // 100):
            # headers are estimates, so only a clear shortfall counts as damage
            self.stop_reason = (f"{self.description}: stream ended after {n} of {self.frame_count} announced frames "
                                "(truncated or corrupt file?)")
        else:
            self.stop_reason = "end of file"

    @property
    def ended_cleanly(self) -> bool:
        """True when a file was read to its end (not for cameras, whose streams only end by failing)."""
        return self.stop_reason == "end of file"

    def close(self) -> None:
        """Release the capture (idempotent)."""
        if self.cap is not None:
            try:
                self.cap.release()
            finally:
                self.cap = None

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_bgr(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return np.repeat(frame[:, :, None], 3, axis=2)
    if frame.shape[2] == 4:
        return np.ascontiguousarray(frame[:, :, :3])
    return frame


_TEXT_STREAM_SUFFIXES = (".m3u8", ".m3u", ".sdp")


def _not_a_video(path: Path) -> str | None:
    """Refuse files that FFmpeg would happily "play" but that are no video: FFmpeg renders text files as
    ANSI-art frames (``.ans``/``.txt``-like input), and zero-filled files as black frames."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError as e:
        return f"cannot read ({e.strerror or e})"
    if not head.strip(b"\x00"):
        return "only zero bytes, not a video"
    if path.suffix.lower() in _TEXT_STREAM_SUFFIXES:
        return None  # playlists / session descriptions are text by design and FFmpeg plays them
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as e:
            if e.start < len(head) - 4:  # a multi-byte character cut by the 4 KB window is still text
                return None
        return "looks like a text file, not a video"
    return None


def _open_camera_quietly(cv2: Any, index: int) -> Any:
    """``cv2.VideoCapture(index)`` without OpenCV's own log lines for each backend it probes.

    A missing camera otherwise prints several multi-line "[ERROR] ... raised OpenCV exception" blocks
    before our one-line "cannot open camera" message; ``eacfer -v`` keeps them for debugging.
    """
    logging_api = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging_api is None or log.isEnabledFor(logging.DEBUG):
        return cv2.VideoCapture(index)
    old = logging_api.getLogLevel()
    logging_api.setLogLevel(logging_api.LOG_LEVEL_SILENT)
    try:
        return cv2.VideoCapture(index)
    finally:
        logging_api.setLogLevel(old)


def open_file_capture(path: str | os.PathLike[str]) -> Any:
    """``cv2.VideoCapture`` (FFmpeg) of a video file, whatever bytes its name holds.

    OpenCV crashes (segmentation fault) on a file name that is not valid UTF-8; such a file is opened
    through a link with a plain name in a new private temporary folder, removed as soon as FFmpeg has
    opened the file (it keeps its own handle).

    Example:
        >>> cap = open_file_capture("clip.mp4")  # doctest: +SKIP
        >>> cap.isOpened()                      # doctest: +SKIP
        True
    """
    import shutil
    import tempfile

    import cv2

    name = os.fspath(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        return cv2.VideoCapture(name, cv2.CAP_FFMPEG)
    suffix = Path(name).suffix
    suffix = suffix if suffix.isascii() and suffix[1:].isalnum() else ""
    tmp = tempfile.mkdtemp(prefix="eacfer-video-")
    try:
        link = os.path.join(tmp, "video" + suffix)
        os.symlink(os.path.abspath(name), link)
        return cv2.VideoCapture(link, cv2.CAP_FFMPEG)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def parse_source(source: str | int | os.PathLike[str]) -> tuple[str, Any, bool]:
    """``(kind, target, live)`` for a SOURCE argument: ``camera`` (int), ``url`` (str) or ``file`` (Path).

    Example:
        >>> parse_source("0")
        ('camera', 0, True)
    """
    if isinstance(source, int):
        return "camera", source, True
    kind, s = source_kind(source), os.fspath(source)
    if kind == "camera":
        return "camera", int(s), True
    if kind == "url":
        return "url", s, not s.lower().startswith("file://")
    return "file", Path(s), False  # a folder or list given here is refused by open_source with its own message


def open_source(
    source: str | int | os.PathLike[str],
    live: bool | None = None,
    capture_factory: Callable[[Any], Any] | None = None,
    max_failures: int = 10,
) -> FrameSource:
    """Open a video file, camera index or stream URL.

    Args:
        source: path, camera index (``0`` / ``"0"``) or URL.
        live: override live/file semantics (e.g. to treat a file like a camera in tests).
        capture_factory: builds the ``cv2.VideoCapture``-like object from the target (tests inject one).

    Raises:
        FileNotFoundError: a file that does not exist.
        ValueError: a source that cannot be opened or yields no frame (the message names it).

    Example:
        >>> src = open_source("clip.mp4")  # doctest: +SKIP
        >>> src.fps, src.size              # doctest: +SKIP
        (25.0, (640, 360))
    """
    import cv2

    kind, target, is_live = parse_source(source)
    desc = f"camera {target}" if kind == "camera" else str(target)
    if kind == "file":
        if not target.exists():
            raise FileNotFoundError(f"{target}: no such video file")
        if target.is_dir():
            raise ValueError(f"{target}: is a folder, expected a video file, camera index or URL")
        if target.stat().st_size == 0:
            raise ValueError(f"{target}: empty file")
        problem = _not_a_video(target)
        if problem:
            raise ValueError(f"{target}: {problem}")
    if capture_factory is not None:
        cap = capture_factory(target)
    elif kind == "camera":
        cap = _open_camera_quietly(cv2, int(target))
    elif kind == "file":
        cap = open_file_capture(target)
    else:
        cap = cv2.VideoCapture(str(target), cv2.CAP_FFMPEG)
    if cap is None or not cap.isOpened():
        if cap is not None:
            cap.release()
        what = "cannot open camera" if kind == "camera" else "cannot open as a video (corrupt or unsupported format?)"
        raise ValueError(f"{desc}: {what}")
    try:
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    except Exception:  # not every backend knows the property; frames are then used as decoded
        pass
    return FrameSource(cap, desc, is_live if live is None else bool(live), max_failures=max_failures)
