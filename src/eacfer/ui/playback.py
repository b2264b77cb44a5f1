"""Sources of the main window: opening cameras, videos and photos, playback, seeking and photo browsing
(a mixin of :class:`eacfer.ui.window.MainWindow`, split off for size)."""

from __future__ import annotations

import logging
import os
from typing import Any

from eacfer.ui.media import CaptureReader, PhotoList, SourceError, load_photo, parse_source
from eacfer.ui.worker import CaptureThread, FramePacket

log = logging.getLogger(__name__)


class PlaybackMixin:
    """Needs the attributes and methods of MainWindow (``self`` is the window)."""

    # -- sources ------------------------------------------------------------------------------------
    def open_source(self, source: str | int | list[str], remembered: bool = False) -> bool:
        """Open a camera index, video file/URL, photo(s) or folder; problems become messages."""
        try:
            spec = parse_source(source if not isinstance(source, int) else str(source))
        except SourceError as e:
            prefix = "The last source is no longer available: " if remembered else ""
            self.set_note("source", prefix + str(e), "error")
            self._source_settled = True
            self._check_ready()
            return False
        self.close_source()
        self.source_id = next(self._source_ids)
        self.source_spec = spec
        self._ended = False
        self.clear_display()
        self.history.clear()
        self.selected_track = self.selected_index = None
        self.set_note("source", "")
        self.set_note("analysis", "")
        if spec.kind == "photos":
            start = spec.paths.index(spec.target) if spec.target in spec.paths else 0
            self.photos = PhotoList(spec.paths, start)
            self.show_photo()
        else:
            if spec.kind == "camera":
                self.set_note("source", f"Opening camera {spec.target} …")
            sid = self.source_id
            self.capture = CaptureThread(
                lambda: CaptureReader(spec), self.frame_slot, sid,
                lambda kind, payload: self.emit_safely("source_event", sid, kind, payload),
                lambda: next(self._seq), loop=self.act_loop.isChecked(),
            )
            self.capture.start()
        self._update_controls()
        return True

    def clear_display(self) -> None:
        """Forget the frame on screen (a new source starts from a blank view)."""
        self.last_analysis = None
        self.last_annotated = None
        self.view.set_image(None)
        self.panel.set_face("No face", (), None)
        self.panel.set_history((), [], [])

    def close_source(self) -> None:
        self.stop_recording()
        if self.capture is not None:
            self.capture.stop()
            self.capture = None
        self.photos = None
        self.pending_still = None
        self._seekable = False
        self.position_label.setText("")
        self.frame_slot.clear()

    def _on_source_event(self, source_id: int, kind: str, payload: Any) -> None:
        if source_id != self.source_id:
            return  # an event from a source that was replaced meanwhile
        if kind == "opened":
            reader = payload
            self._source_fps = reader.fps
            self._seekable = reader.seekable
            self.slider.blockSignals(True)
            self.slider.setRange(0, max(reader.frame_count - 1, 0))
            self.slider.blockSignals(False)
            self.set_note("source", "")
            self._remember_source()
        elif kind == "ended":
            self._ended = True
            self.notify("End of the video" + (f" ({payload})" if payload else "") + ". Press Space to replay.")
        elif kind in ("error", "disconnected"):
            self.set_note("source", str(payload), "error")
            self._source_settled = True
            self._check_ready()
        self._update_controls()

    def show_photo(self) -> None:
        """Decode the current photo and send it for analysis."""
        if self.photos is None:
            return
        path = self.photos.current
        self.selected_index = None
        where = f"{os.path.basename(path)} — {self.photos.index + 1} of {len(self.photos.paths)}"
        self.setWindowTitle(f"eacfer — {where}")
        self.position_label.setText(where)  # under the photo: visible in screenshots too
        try:
            image = load_photo(path)
        except SourceError as e:
            self.clear_display()  # never leave the previous photo on screen under this one's name
            self.pending_still = None  # nor show its result when it arrives
            self.set_note("source", f"{e} — use ←/→ for the other photos.", "error")
            self._source_settled = True
            self._check_ready()
            return
        self.set_note("source", "")
        self._remember_source()
        self.send_still(FramePacket(seq=0, index=self.photos.index, time_s=0.0, image=image,
                                    source_id=self.source_id, reset=True, still=True, name=path))

    def next_item(self, step: int = 1) -> None:
        """→ / ←: next/previous photo, or seek ±5 s in a video."""
        if self.photos is not None:
            self.photos.next() if step > 0 else self.photos.previous()
            self.show_photo()
        elif self.capture is not None and self._seekable and self.last_analysis is not None:
            self.seek(self.last_analysis.packet.index + int(step * 5 * (self._source_fps or 25)))

    def seek(self, index: int) -> None:
        if self.capture is not None and self._seekable:
            self._ended = False
            self.capture.seek(index)

    def toggle_pause(self) -> None:
        if self.capture is None:
            return
        paused = not self.capture.paused
        if not paused and self._ended:
            self._ended = False
            self.capture.seek(0)
        self.capture.set_paused(paused)
        self._update_controls()

    def _remember_source(self) -> None:
        spec = self.source_spec
        if spec is not None:
            value = spec.target if spec.kind != "photos" or self.photos is None else self.photos.current
            self.settings.setValue("source/last", value)
