"""Frame sources for the desktop app: cameras, video files (seekable) and photo lists.

No Qt here: these are plain readers used from the capture thread. Every reader returns RGB uint8
frames and reports problems as :class:`SourceError` with a message meant for the user.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from eacfer.data.imageio import IMAGE_EXTENSIONS, is_image_name
from eacfer.data.imageio import list_images as _list_images
from eacfer.infer.stream.sources import source_kind

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """A source that cannot be opened or read; the message is shown to the user as is."""


@dataclass(frozen=True)
class SourceSpec:
    """What the user asked to open.

    Example:
        >>> parse_source("0")
        SourceSpec(kind='camera', target='0', paths=())
    """

    kind: str  # "camera" | "video" | "photos"
    target: str  # camera index, video path/URL, or the folder/first photo
    paths: tuple[str, ...] = ()  # photos only

    @property
    def label(self) -> str:
        if self.kind == "camera":
            return f"camera {self.target}"
        if self.kind == "photos":
            return f"{len(self.paths)} photo(s) from {self.target}"
        return os.path.basename(self.target) or self.target


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """True for a photo's name (:func:`eacfer.data.imageio.is_image_name`, the rule ``eacfer predict`` uses).

    Example:
        >>> is_image_path("a/face.JPG"), is_image_path("clip.mp4")
        (True, False)
    """
    return is_image_name(path)


def list_images(folder: str | os.PathLike[str]) -> list[str]:
    """Photos of a folder (not recursive), sorted by name: :func:`eacfer.data.imageio.list_images`, so the app
    browses the same files ``eacfer predict`` reads (no hidden ``._x.jpg`` AppleDouble files).

    Example:
        >>> list_images("photos/")  # doctest: +SKIP
        ['photos/a.jpg', 'photos/b.png']
    """
    return [str(p) for p in _list_images(folder, recursive=False)]


def parse_source(text: str | int | list[str]) -> SourceSpec:
    """Turn ``--source`` (camera index, video, URL, photo(s) or a folder of photos) into a spec.

    Raises :class:`SourceError` for paths that do not exist or folders without images.
    """
    if isinstance(text, (list, tuple)):
        paths = [str(p) for p in text]
        if len(paths) == 1:
            return parse_source(paths[0])
        missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            raise SourceError(f"{missing[0]}: file not found")
        return SourceSpec("photos", paths[0], tuple(paths))
    s = str(text).strip()
    kind = source_kind(s)  # the rule every command uses (eacfer.infer.stream.sources)
    if kind == "camera":
        return SourceSpec("camera", s)
    if kind == "url":
        return SourceSpec("video", s)
    if not os.path.exists(s):
        raise SourceError(f"{s}: file not found")
    if kind == "folder":
        images = list_images(s)
        if not images:
            raise SourceError(f"{s}: no images in this folder ({', '.join(IMAGE_EXTENSIONS)})")
        return SourceSpec("photos", s, tuple(images))
    if is_image_path(s):
        # a single photo: browse its folder with next/previous, starting at it
        folder = os.path.dirname(os.path.abspath(s))
        images = list_images(folder)
        absolute = os.path.abspath(s)
        images = [os.path.abspath(p) for p in images]
        if absolute not in images:
            images.insert(0, absolute)
        return SourceSpec("photos", absolute, tuple(images))
    return SourceSpec("video", s)


def list_cameras(max_index: int = 8) -> list[int]:
    """Indices of cameras that open and deliver a frame.

    On Linux only the existing ``/dev/video*`` nodes are probed (probing absent indices is slow and
    noisy); elsewhere indices ``0..max_index-1`` are tried.
    """
    import cv2

    if sys.platform.startswith("linux"):
        candidates = sorted(
            int(p[len("/dev/video") :]) for p in glob.glob("/dev/video*") if p[len("/dev/video") :].isdigit()
        )
        candidates = [i for i in candidates if i < max_index * 4]
    else:
        candidates = list(range(max_index))
    found = []
    for index in candidates:
        cap = cv2.VideoCapture(index)
        try:
            if cap.isOpened() and cap.read()[0]:
                found.append(index)
        finally:
            cap.release()
    return found


def _bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return np.ascontiguousarray(np.repeat(frame[:, :, None], 3, axis=2))
    if frame.shape[2] == 4:
        frame = frame[:, :, :3]
    return np.ascontiguousarray(frame[:, :, ::-1])


class CaptureReader:
    """A camera, video file or stream, opened with :func:`eacfer.infer.stream.sources.open_source`, plus seeking.

    ``live`` sources (cameras, URLs) cannot seek; files report ``frame_count`` and ``fps``.
    """

    def __init__(self, spec: SourceSpec, live: bool | None = None):
        from eacfer.infer.stream.sources import open_source

        self.spec = spec
        target: Any = int(spec.target) if spec.kind == "camera" else spec.target
        try:
            # live=True makes a file behave like a camera (used to simulate a camera that disconnects)
            self._src = open_source(target, live=live)
        except (ValueError, OSError) as e:
            if spec.kind == "camera":
                raise SourceError(
                    f"No camera at index {spec.target}: it is missing, unplugged or used by another program. "
                    "Pick another camera in the list, or open a video or photos."
                ) from None
            raise SourceError(f"Cannot play {spec.target}: {_strip_prefix(str(e), spec.target)}") from None
        self.live = bool(self._src.live)
        self.fps = float(self._src.fps)
        self.frame_count = int(self._src.frame_count or 0)
        self.size = self._src.size
        self._frames = iter(self._src)
        # take the frame open_source already decoded now, so a seek can never replay it later
        self._first: np.ndarray | None = next(self._frames)[2]
        self.position = 0  # index of the next frame

    @property
    def seekable(self) -> bool:
        return not self.live and self.frame_count > 0

    @property
    def stop_reason(self) -> str | None:
        return self._src.stop_reason

    def read(self) -> tuple[int, np.ndarray] | None:
        """Next frame as ``(index, rgb)``, or ``None`` at the end / when the source stopped."""
        if self._first is not None:
            frame, self._first = self._first, None
        else:
            try:
                _, _, frame = next(self._frames)
            except StopIteration:
                return None
        index = self.position
        self.position += 1
        return index, _bgr_to_rgb(frame)

    def seek(self, index: int) -> None:
        """Jump to frame ``index`` (files only)."""
        import cv2

        if not self.seekable or self._src.cap is None:
            return
        index = max(0, min(int(index), max(self.frame_count - 1, 0)))
        self._src.cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        # the iterator may have stopped at the end of the file: start a fresh one at the new position
        self._src.stop_reason = None
        self._first = None
        self._frames = iter(self._src)
        self.position = index

    def close(self) -> None:
        self._src.close()


def _strip_prefix(message: str, target: str) -> str:
    """``"clip.mp4: no frames"`` -> ``"no frames"`` (the caller names the file itself)."""
    return message[len(target) + 2 :] if message.startswith(f"{target}: ") else message


def load_photo(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode a photo to RGB uint8 (EXIF orientation applied); :class:`SourceError` if it can't be."""
    try:
        from eacfer.data.imageio import load_image  # the project's robust decoder, when present
    except ImportError:
        load_image = None
    try:
        if load_image is not None:
            return np.ascontiguousarray(load_image(path))
        from PIL import Image, ImageOps

        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            return np.ascontiguousarray(np.asarray(im.convert("RGB")))
    except Exception as e:  # any decoder failure becomes a user message; the app keeps going
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        if str(path) in reason:
            raise SourceError(f"cannot decode: {reason}") from None
        raise SourceError(f"{path}: cannot decode this image ({reason})") from None


class PhotoList:
    """A list of photos browsed with next/previous.

    Example:
        >>> photos = PhotoList(["a.jpg", "b.jpg"])
        >>> photos.next(), photos.index
        ('b.jpg', 1)
    """

    def __init__(self, paths: list[str] | tuple[str, ...], start: int = 0):
        if not paths:
            raise SourceError("no photos to show")
        self.paths = list(paths)
        self.index = max(0, min(start, len(self.paths) - 1))

    @property
    def current(self) -> str:
        return self.paths[self.index]

    def next(self) -> str:
        self.index = (self.index + 1) % len(self.paths)
        return self.current

    def previous(self) -> str:
        self.index = (self.index - 1) % len(self.paths)
        return self.current
