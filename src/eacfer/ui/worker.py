"""Background threads: a capture thread paced like the source, an inference pipeline of two threads
(detection, then classification + tracking), and one-slot queues between them that always keep the
newest frame (stale frames are dropped and counted), so the view never falls behind the camera and the
two stages overlap on two cores (the same design as ``eacfer video``'s pipeline, :mod:`eacfer.infer.stream.pipeline`).

No Qt here: results are handed over through callbacks; the window turns them into queued Qt
signals. Each result carries the very frame it was computed on, so the picture on screen and its
boxes always belong together, whatever the latency.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from eacfer.ui.media import CaptureReader, SourceError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class FramePacket:
    """One frame on its way from a source to the screen."""

    seq: int  # capture order, unique within the app
    index: int  # frame index in the source (photo index for photo lists)
    time_s: float  # position in the source in seconds (wall clock for live sources)
    image: np.ndarray  # H×W×3 uint8 RGB
    source_id: int  # generation of the source; results from an older source are discarded
    reset: bool = False  # restart tracking at this frame (seek, new photo, loop)
    still: bool = False  # a photo rather than a stream
    live: bool = False  # from a camera or stream URL (not a file)
    name: str = ""  # file name for photos
    captured_at: float = field(default_factory=time.monotonic)


class LatestSlot(Generic[T]):
    """A bounded queue of size one: ``put`` replaces an unconsumed item (counted as dropped).

    Example:
        >>> slot = LatestSlot()
        >>> slot.put(1), slot.put(2), slot.get(0), slot.dropped
        (False, True, 2, 1)
    """

    def __init__(self, merge: Callable[[T, T], T] | None = None):
        self._item: T | None = None
        self._cond = threading.Condition()
        self._merge = merge
        self.dropped = 0

    def put(self, item: T) -> bool:
        """Store ``item``; return True when an older, unconsumed item was dropped."""
        with self._cond:
            replaced = self._item is not None
            if replaced:
                self.dropped += 1
                if self._merge is not None:
                    item = self._merge(self._item, item)  # type: ignore[arg-type]
            self._item = item
            self._cond.notify()
            return replaced

    def get(self, timeout: float | None = None) -> T | None:
        """Take the item, waiting up to ``timeout`` seconds; None if nothing came."""
        with self._cond:
            if self._item is None and timeout:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def clear(self) -> None:
        with self._cond:
            self._item = None


def merge_packets(old: FramePacket, new: FramePacket) -> FramePacket:
    """Dropping a frame must not lose a tracking reset it carried."""
    if old.reset and not new.reset and old.source_id == new.source_id:
        new.reset = True
    return new


class Analyzer(Protocol):
    """What the inference thread needs from the model side (see :mod:`eacfer.ui.session`).

    An analyzer that also has ``detect(packet) -> found`` and ``finish(packet, found, want_cam) -> result``
    is run as two pipelined stages (detection on the inference thread, the rest on a second thread).
    """

    def analyze(self, packet: FramePacket, want_cam: bool) -> Any: ...


class CaptureThread(threading.Thread):
    """Reads a camera / video file / stream into a :class:`LatestSlot`.

    Files are paced at their own frame rate (so playback is real time and frames the model cannot
    keep up with are dropped, not queued); cameras are read as fast as they deliver.
    ``on_event(kind, payload)`` reports ``"ended"``, ``"disconnected"`` and ``"error"``.
    """

    def __init__(
        self,
        opener: Callable[[], CaptureReader],
        slot: LatestSlot[FramePacket],
        source_id: int,
        on_event: Callable[[str, Any], None],
        seq_counter: Callable[[], int],
        loop: bool = True,
    ):
        super().__init__(name=f"eacfer-capture-{source_id}", daemon=True)
        self.opener = opener
        self.reader: CaptureReader | None = None
        self.slot = slot
        self.source_id = source_id
        self.on_event = on_event
        self._next_seq = seq_counter
        self.loop = loop
        self.frames_read = 0
        self._cond = threading.Condition()
        self._halt = False
        self._paused = False
        self._seek_to: int | None = None
        self._t0 = time.monotonic()

    # -- control (any thread) -------------------------------------------------------------------
    def stop(self) -> None:
        with self._cond:
            self._halt = True
            self._cond.notify_all()

    def set_paused(self, paused: bool) -> None:
        with self._cond:
            self._paused = bool(paused)
            self._cond.notify_all()

    @property
    def paused(self) -> bool:
        return self._paused

    def seek(self, index: int) -> None:
        """Jump to frame ``index``; when paused, the frame there is shown once."""
        with self._cond:
            self._seek_to = int(index)
            self._cond.notify_all()

    # -- thread body ----------------------------------------------------------------------------
    def run(self) -> None:
        # opening happens here, not in the UI thread: a camera or a stream URL can take seconds
        try:
            self.reader = self.opener()
        except SourceError as e:
            self.on_event("error", str(e))
            return
        except Exception as e:  # an unexpected opener failure is still just a message
            log.exception("opening the source failed")
            self.on_event("error", f"cannot open the source: {type(e).__name__}: {e}")
            return
        self.on_event("opened", self.reader)
        try:
            self._run(self.reader)
        except Exception as e:  # a reader crash must never take the app down
            log.exception("capture thread failed")
            self.on_event("error", f"{self.reader.spec.label}: reading failed ({type(e).__name__}: {e})")
        finally:
            self.reader.close()

    def _run(self, reader: CaptureReader) -> None:
        period = 1.0 / reader.fps
        due = time.monotonic()
        reset = True
        while True:
            with self._cond:
                while self._paused and not self._halt and self._seek_to is None:
                    self._cond.wait(0.2)
                if self._halt:
                    return
                seek_to, self._seek_to = self._seek_to, None
            if seek_to is not None:
                reader.seek(seek_to)
                reset = True
                due = time.monotonic()
            item = reader.read()
            if item is None:
                if reader.live:
                    reason = reader.stop_reason or f"{reader.spec.label}: stopped delivering frames"
                    self.on_event("disconnected", f"{reason}. Reconnect it and pick it again in the camera list.")
                    return
                if self.loop and reader.seekable and self.frames_read > 0:
                    reader.seek(0)
                    reset = True
                    continue
                self.set_paused(True)
                reason = reader.stop_reason
                self.on_event("ended", "" if reason in (None, "end of file") else reason)
                continue
            index, image = item
            self.frames_read += 1
            time_s = index / reader.fps if not reader.live else time.monotonic() - self._t0
            packet = FramePacket(
                seq=self._next_seq(), index=index, time_s=time_s, image=image, source_id=self.source_id, reset=reset,
                name=reader.spec.label if reader.live else reader.spec.target, live=reader.live,
            )
            reset = False
            if not reader.live:
                # real-time pacing; after a long stall (pause, slow disk) restart the clock
                due += period
                delay = due - time.monotonic()
                if delay > 0:
                    with self._cond:
                        self._cond.wait(delay)
                elif delay < -1.0:
                    due = time.monotonic()
            self.slot.put(packet)


class InferenceThread(threading.Thread):
    """Takes the newest frame, runs the analyzer (detect + classify + track), hands the result on.

    With a two-stage analyzer (``detect``/``finish``) detection runs here and the rest on a second thread
    (:class:`_FinishThread`) behind a one-slot queue, so frame *n + 1* is detected while frame *n* is
    classified; a detected frame the second stage had no time for is replaced by the newer one (counted
    in ``dropped``). Results come out in capture order.

    The analyzer can be swapped at run time (model switching) with :meth:`set_analyzer`; ``None``
    passes frames through unannotated (no model loaded).
    """

    def __init__(
        self,
        slot: LatestSlot[FramePacket],
        on_result: Callable[[Any], None],
        on_error: Callable[[str], None],
        passthrough: Callable[[FramePacket], Any],
    ):
        super().__init__(name="eacfer-inference", daemon=True)
        self.slot = slot
        self.on_result = on_result
        self.on_error = on_error
        self.passthrough = passthrough
        self._analyzer: Analyzer | None = None
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self.want_cam = False
        self.processed = 0
        self._last_error = ""
        self.detected: LatestSlot[tuple[Any, FramePacket, Any]] = LatestSlot()
        self._finisher = _FinishThread(self)

    @property
    def dropped(self) -> int:
        """Frames detected but replaced by a newer one before the second stage took them."""
        return self.detected.dropped

    def set_analyzer(self, analyzer: Analyzer | None) -> None:
        with self._lock:
            self._analyzer = analyzer

    def stop(self) -> None:
        self._halt.set()

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self._finisher.is_alive():
            self._finisher.join(timeout)

    def is_alive(self) -> bool:
        return super().is_alive() or self._finisher.is_alive()

    def report(self, packet: FramePacket, e: Exception) -> Any:
        """One bad frame must not stop the stream; say it once. Returns the frame unannotated."""
        msg = f"analysis failed on frame {packet.index}: {type(e).__name__}: {e}"
        if msg != self._last_error:
            log.exception("analysis failed")
            self.on_error(msg)
            self._last_error = msg
        return self.passthrough(packet)

    def deliver(self, result: Any) -> None:
        self.processed += 1
        self.on_result(result)

    def run(self) -> None:
        self._finisher.start()
        while not self._halt.is_set():
            packet = self.slot.get(timeout=0.1)
            if packet is None:
                continue
            with self._lock:
                analyzer = self._analyzer
            if analyzer is None:
                self.detected.put((None, packet, None))
                continue
            try:
                if hasattr(analyzer, "detect") and hasattr(analyzer, "finish"):
                    # the second stage finishes with the analyzer that detected (a model switch in between)
                    self.detected.put((analyzer, packet, analyzer.detect(packet)))
                    continue
                result = analyzer.analyze(packet, self.want_cam)
            except Exception as e:
                result = self.report(packet, e)
            self.detected.put((None, packet, _Done(result)))


class _Done:
    """A result computed entirely by the first stage (single-stage analyzers, errors)."""

    def __init__(self, result: Any):
        self.result = result


class _FinishThread(threading.Thread):
    """The second stage: classification and tracking of detected frames, in capture order."""

    def __init__(self, owner: InferenceThread):
        super().__init__(name="eacfer-classify", daemon=True)
        self.owner = owner

    def run(self) -> None:
        o = self.owner
        while not o._halt.is_set():
            item = o.detected.get(timeout=0.1)
            if item is None:
                continue
            analyzer, packet, found = item
            if isinstance(found, _Done):
                result = found.result
            elif analyzer is None:
                result = o.passthrough(packet)
            else:
                try:
                    result = analyzer.finish(packet, found, o.want_cam)
                except Exception as e:
                    result = o.report(packet, e)
            o.deliver(result)
