"""User actions of the main window that reach outside it: cameras, file dialogs, drag and drop,
snapshots and recordings (a mixin of :class:`eacfer.ui.window.MainWindow`, split off for size)."""

from __future__ import annotations

import logging
import os
import threading

from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QFileDialog

from eacfer.data.imageio import IMAGE_EXTENSIONS
from eacfer.ui.media import list_cameras
from eacfer.ui.recorder import Recorder, save_snapshot

log = logging.getLogger(__name__)

MODEL_FILTER = "eacfer models (*.pt *.pth *.onnx);;All files (*)"


class ControlsMixin:
    """Needs the attributes and methods of MainWindow (``self`` is the window)."""

    # -- cameras ------------------------------------------------------------------------------------
    def refresh_cameras(self) -> None:
        """Probe cameras in the background (the one in use is listed without being re-opened)."""
        busy = int(self.source_spec.target) if self.source_spec and self.source_spec.kind == "camera" else None

        def probe() -> None:
            try:
                found = list_cameras()
            except Exception:  # probing is best effort; an empty list says "no camera found"
                log.debug("camera probe failed", exc_info=True)
                found = []
            if busy is not None and busy not in found:
                found = sorted([*found, busy])
            self.emit_safely("cameras_listed", found)

        threading.Thread(target=probe, name="eacfer-camera-probe", daemon=True).start()

    def _on_cameras_listed(self, found: list[int]) -> None:
        self._set_camera_items(found)

    def _set_camera_items(self, found: list[int] | None) -> None:
        combo = self.camera_combo
        combo.clear()
        if found is None:
            combo.addItem("Looking for cameras…", None)
        elif not found:
            combo.addItem("No camera found", None)
        else:
            combo.addItem("Choose a camera…", None)
            for i in found:
                combo.addItem(f"Camera {i}", i)

    def _on_camera_chosen(self, row: int) -> None:
        index = self.camera_combo.itemData(row)
        if index is None:
            if self.camera_combo.itemText(row) == "No camera found":
                self.set_note("source", "No camera found. Plug one in and press Refresh, or open a video or photos.",
                              "warning")
            return
        self.open_source(str(index))

    # -- snapshot / record ------------------------------------------------------------------------------
    def snapshot(self) -> None:
        if self.last_analysis is None or self.last_annotated is None:
            self.notify("Nothing to save yet: no frame on screen.")
            return
        try:
            self.last_snapshot = save_snapshot(self.output_dir, self.last_annotated, self.last_analysis)
        except OSError as e:
            self.set_note("analysis", f"Snapshot failed: {e}", "error")
            return
        png, table = self.last_snapshot
        self.notify(f"Snapshot saved: {png} (+ {os.path.basename(table)})")

    def toggle_recording(self) -> None:
        if self.recorder is not None:
            self.stop_recording()
            return
        if self.last_analysis is None or self.last_annotated is None or self.photos is not None:
            self.notify("Recording needs a camera or video on screen.")
            self.act_record.setChecked(False)
            return
        h, w = self.last_annotated.shape[:2]
        names = self.last_analysis.class_names or (self.session.summary.class_names if self.session else ())
        fps = self._source_fps if self.source_spec and self.source_spec.kind == "video" else self.fps.rate()
        try:
            self.recorder = Recorder(self.output_dir, tuple(names), fps or 15.0, (w, h))
        except OSError as e:
            self.set_note("analysis", f"Recording failed: {e}", "error")
            self.act_record.setChecked(False)
            return
        self.act_record.setChecked(True)
        self.notify(f"Recording to {self.recorder.video_path} … press R to stop")

    def stop_recording(self) -> None:
        if self.recorder is None:
            return
        rec, self.recorder = self.recorder, None
        self.act_record.setChecked(False)
        try:
            video, table = rec.close()
        except OSError as e:
            self.set_note("analysis", f"Recording failed: {e}", "error")
            return
        self.notify(f"Recording saved: {video} ({rec.frames} frames, + {os.path.basename(table)})")

    # -- files: dialogs and drag and drop ------------------------------------------------------------
    def choose_model(self) -> None:
        start = os.path.dirname(str(self.settings.value("model/path", "") or "")) or os.getcwd()
        path, _ = QFileDialog.getOpenFileName(self, "Open an eacfer model", start, MODEL_FILTER)
        if path:
            self.load_model(path)

    def choose_video(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a video", os.getcwd(),
                                              "Videos (*.mp4 *.avi *.mov *.mkv *.webm *.m4v);;All files (*)")
        if path:
            self.open_source(path)

    def choose_photos(self) -> None:
        patterns = " ".join(f"*{e}" for e in IMAGE_EXTENSIONS)
        paths, _ = QFileDialog.getOpenFileNames(self, "Open photos", os.getcwd(), f"Images ({patterns});;All files (*)")
        if paths:
            self.open_source(paths if len(paths) > 1 else paths[0])

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a folder of photos", os.getcwd())
        if path:
            self.open_source(path)

    def choose_output_dir(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Save snapshots and recordings in", self.output_dir)
        if path:
            self.output_dir = path
            self.settings.setValue("output/dir", path)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt API
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_paths(paths)
            event.acceptProposedAction()

    def open_paths(self, paths: list[str]) -> None:
        """What a drop does: a model file loads the model; anything else opens as a source."""
        models = [p for p in paths if p.lower().endswith((".pt", ".pth", ".onnx"))]
        if models:
            self.load_model(models[0])
        others = [p for p in paths if p not in models]
        if others:
            self.open_source(others if len(others) > 1 else others[0])
