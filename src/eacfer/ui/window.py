"""The main window: sources, model, live display, side panel, snapshot and recording.

Threads: a capture thread per stream source and one inference thread (see :mod:`eacfer.ui.worker`);
they talk to this window only through queued Qt signals of :class:`Bridge`, so every widget is touched
from the UI thread alone. Opening sources, loading models and probing cameras all happen off the UI
thread, so the window never freezes.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from eacfer.infer.runtime.starter import is_starter, starter_notice, starter_runtime_path
from eacfer.infer.stream.reuse import DEFAULT_CLASSIFY_EVERY
from eacfer.ui import actions
from eacfer.ui.actions import NO_MODEL_HELP
from eacfer.ui.controls import ControlsMixin
from eacfer.ui.media import (
    PhotoList,
    SourceSpec,
)
from eacfer.ui.panel import SidePanel
from eacfer.ui.playback import PlaybackMixin
from eacfer.ui.recorder import Recorder
from eacfer.ui.render import RenderOptions, face_at, largest_face, render
from eacfer.ui.session import Analysis, ModelSession, face_label, face_probabilities, passthrough
from eacfer.ui.stats import LatencyWindow, RateMeter, StageTimes, TrackHistory
from eacfer.ui.widgets import FrameView, numpy_to_qimage
from eacfer.ui.worker import CaptureThread, FramePacket, InferenceThread, LatestSlot, merge_packets

log = logging.getLogger(__name__)



@dataclass
class WindowOptions:
    """Start-up choices (from the command line); anything left None comes from the saved settings."""

    checkpoint: str | None = None
    source: str | list[str] | None = None
    detector: str = "mediapipe"
    device: str = "auto"
    backend: str | None = None
    precision: str = "fp32"
    min_confidence: float = 0.0  # faces below it are labelled "uncertain" (Predictor.min_confidence)
    classify_every: int | str = DEFAULT_CLASSIFY_EVERY  # videos and cameras (eacfer.infer.stream.reuse)
    output_dir: str | None = None
    history_s: float = 10.0
    probe_cameras: bool = True
    cam: bool | None = None  # start with attention maps on/off (None: as last time)


class Bridge(QObject):
    """Signals emitted from worker threads, delivered in the UI thread (queued connections)."""

    result_ready = Signal()
    source_event = Signal(int, str, object)  # source id, kind, payload
    model_loaded = Signal(int, object)  # load generation, ModelSession
    model_failed = Signal(int, str)
    analysis_error = Signal(str)
    cameras_listed = Signal(list)


class MainWindow(PlaybackMixin, ControlsMixin, QMainWindow):
    """The ``eacfer ui`` window. ``ready`` fires once the first frame is shown and the model is settled."""

    ready = Signal()

    def __init__(self, settings: QSettings, options: WindowOptions | None = None):
        super().__init__()
        self.settings = settings
        self.options = options or WindowOptions()
        self.setWindowTitle("eacfer — live facial emotion recognition")
        self.setAcceptDrops(True)
        self.resize(1280, 760)
        self.bridge = Bridge(self)
        self.messages: deque[str] = deque(maxlen=200)  # the latest messages shown, for tests and the log
        self._notes: dict[str, tuple[str, str]] = {}
        self._seq = itertools.count(1)
        self._source_ids = itertools.count(1)
        self.source_id = 0
        self.source_spec: SourceSpec | None = None
        self.capture: CaptureThread | None = None
        self.photos: PhotoList | None = None
        self.session: ModelSession | None = None
        self._model_gen = 0
        self._retired: list[ModelSession] = []
        self.model_loading = False
        self.recorder: Recorder | None = None
        self.last_analysis: Analysis | None = None
        # the newest photo sent for analysis: only its result is shown, and a model change re-sends it
        # (the photo on screen may still be in flight when a model finishes loading)
        self.pending_still: FramePacket | None = None
        self.last_annotated: np.ndarray | None = None
        self.last_snapshot: tuple[Any, Any] | None = None
        self.selected_track: int | None = None
        self.selected_index: int | None = None  # face index for photos (no track ids)
        self.frames_displayed = 0
        self._source_fps = 0.0
        self._seekable = False
        self._ended = False
        self._ready_sent = False
        self._source_settled = False
        self.fps = RateMeter()
        self.stages = StageTimes()
        self.latency = LatencyWindow()
        self.history = TrackHistory(self.options.history_s)
        self.output_dir = self.options.output_dir or str(settings.value("output/dir", "") or default_output_dir())

        self.frame_slot: LatestSlot[FramePacket] = LatestSlot(merge=merge_packets)
        self.result_slot: LatestSlot[Analysis] = LatestSlot()
        self.inference = InferenceThread(self.frame_slot, self._post_result,
                                         lambda msg: self.emit_safely("analysis_error", msg), passthrough)

        import cv2  # noqa: F401 - imported now, so the first frame's "draw" time is drawing, not an import

        self._build_ui()
        self.bridge.result_ready.connect(self._on_result_ready)
        self.bridge.source_event.connect(self._on_source_event)
        self.bridge.model_loaded.connect(self._on_model_loaded)
        self.bridge.model_failed.connect(self._on_model_failed)
        self.bridge.analysis_error.connect(lambda msg: self.set_note("analysis", msg, "warning"))
        self.bridge.cameras_listed.connect(self._on_cameras_listed)
        self.inference.start()
        self._restore_and_start()

    # -- construction -------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        central = QWidget()
        outer = QHBoxLayout(central)
        left = QVBoxLayout()
        self.view = FrameView()
        self.view.clicked.connect(self.select_at)
        left.addWidget(self.view, 1)
        row = QHBoxLayout()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setEnabled(False)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slider.valueChanged.connect(self.seek)  # user moves only: playback updates it with signals blocked
        self.position_label = QLabel("")
        row.addWidget(self.slider, 1)
        row.addWidget(self.position_label)
        left.addLayout(row)
        outer.addLayout(left, 1)
        self.panel = SidePanel(self.options.history_s)
        outer.addWidget(self.panel)
        self.setCentralWidget(central)
        self.camera_combo = QComboBox()
        self.camera_combo.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.camera_combo.setMinimumContentsLength(14)
        self.camera_combo.activated.connect(self._on_camera_chosen)
        actions.build(self)
        self.panel.open_model_button.clicked.connect(self.choose_model)
        self._perf_timer = QTimer(self)
        self._perf_timer.timeout.connect(self._update_performance)
        self._perf_timer.start(250)

    def _restore_and_start(self) -> None:
        s = self.settings
        cam = self.options.cam
        self.act_cam.setChecked(_as_bool(s.value("view/cam", False)) if cam is None else cam)
        self.act_smoothed.setChecked(_as_bool(s.value("view/smoothed", True)))
        self.act_loop.setChecked(_as_bool(s.value("view/loop", True)))
        geometry = s.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if self.options.probe_cameras:
            self._set_camera_items(None)
            self.refresh_cameras()
        else:
            self.camera_combo.addItem("Cameras: press ⟳ (F5)", None)
        checkpoint = self.options.checkpoint or str(s.value("model/path", "") or "")
        if not (checkpoint and (self.options.checkpoint or os.path.isfile(checkpoint))):
            checkpoint = str(starter_runtime_path())  # no model of the user's own: the bundled starter model (ONNX)
        self.load_model(checkpoint)
        source = self.options.source if self.options.source is not None else (s.value("source/last", "") or None)
        if source is not None and str(source) != "":
            self.open_source(source, remembered=self.options.source is None)
        else:
            self._source_settled = True
            self.set_note("source", "Open a camera, a video or photos (File menu or toolbar), or drop files here.")
            self._check_ready()
        self._update_controls()

    def emit_safely(self, signal: str, *args: Any) -> None:
        """Emit a :class:`Bridge` signal from a worker thread; a window already destroyed is not an error."""
        try:
            getattr(self.bridge, signal).emit(*args)
        except RuntimeError:  # the C++ side is gone (window closed while a thread was finishing)
            log.debug("dropped %s: window closed", signal)

    # -- messages -----------------------------------------------------------------------------------
    def set_note(self, slot: str, text: str, level: str = "info") -> None:
        """Show (or clear, with empty ``text``) one of the banner messages: model / source / analysis."""
        if text:
            self._notes[slot] = (text, level)
            self.messages.append(text)
            log.log(logging.WARNING if level != "info" else logging.INFO, "%s", text.splitlines()[0])
            self.statusBar().showMessage(text.splitlines()[0], 10000)
        else:
            self._notes.pop(slot, None)
        order = {"info": 0, "warning": 1, "error": 2}
        notes = [self._notes[k] for k in ("model", "source", "analysis") if k in self._notes]
        level = max((lv for _, lv in notes), key=lambda lv: order.get(lv, 0), default="info")
        self.view.set_message("\n\n".join(t for t, _ in notes), level)

    def load_errors(self) -> list[str]:
        """The error messages now shown for the model and the source (empty when both loaded)."""
        return [t for slot, (t, level) in self._notes.items() if slot in ("model", "source") and level == "error"]

    def notify(self, text: str) -> None:
        """A transient status-bar message (saved files and the like)."""
        self.messages.append(text)
        log.info("%s", text)
        self.statusBar().showMessage(text, 8000)

    def banner_text(self) -> str:
        return self.view.message()

    # -- model --------------------------------------------------------------------------------------
    def load_model(self, path: str) -> None:
        """Load a model in the background; the current one keeps running until the new one is ready."""
        self._model_gen += 1
        gen = self._model_gen
        self.model_loading = True
        self.panel.set_model(None, loading=os.path.basename(path))
        if self.session is None:
            self.set_note("model", f"Loading the model {os.path.basename(path)} …")
        opts = self.options

        def work() -> None:
            try:
                session = ModelSession.load(path, device=opts.device, detector=opts.detector, backend=opts.backend,
                                            precision=opts.precision, classify_every=opts.classify_every,
                                            min_confidence=opts.min_confidence)
            except Exception as e:  # every failure is a message, the app keeps running
                msg = str(e) if str(e) else type(e).__name__
                self.emit_safely("model_failed", gen, msg if path in msg else f"{path}: {msg}")
            else:
                self.emit_safely("model_loaded", gen, session)

        threading.Thread(target=work, name="eacfer-model-loader", daemon=True).start()

    def _on_model_loaded(self, gen: int, session: ModelSession) -> None:
        if gen != self._model_gen:
            return  # a newer request superseded this one
        self.model_loading = False
        if self.session is not None:
            self._retired.append(self.session)  # the inference thread may still be using it this instant
        self.session = session
        self.inference.set_analyzer(session)
        self.panel.set_model(session.summary)
        self.settings.setValue("model/path", os.path.abspath(session.path))
        # the starter model says what it is (not EAC, not RAF-DB) for as long as it is the one in use
        self.set_note("model", starter_notice().replace("no --checkpoint: using", "Using") if is_starter(session.path)
                      else "")
        self.set_note("analysis", "")
        self.notify(f"Model loaded: {session.summary.backbone} ({session.summary.backend}, {session.summary.device})")
        if self.act_cam.isChecked() and not session.has_cams:
            self.set_note("analysis", "This model has no attention maps (export it with --with-cams).", "warning")
        self.history.clear()
        self.reanalyze()
        self._check_ready()

    def _on_model_failed(self, gen: int, message: str) -> None:
        if gen != self._model_gen:
            return
        self.model_loading = False
        self.panel.set_model(self.session.summary if self.session else None)
        text = f"Could not load the model: {message}"
        if self.session is None:
            text += "\n" + NO_MODEL_HELP
        else:
            text += f"\nStill using {os.path.basename(self.session.path)}."
        self.set_note("model", text, "error")
        self._check_ready()

    def reanalyze(self) -> None:
        """Analyse the frame on screen again (new model, attention maps toggled) when it will not move."""
        if self.pending_still is not None:
            self.send_still(self.pending_still)
            return
        a = self.last_analysis
        if a is not None and self.capture is not None and self.capture.paused:
            p = a.packet
            self.frame_slot.put(FramePacket(next(self._seq), p.index, p.time_s, p.image, p.source_id,
                                            reset=False, still=False, name=p.name, live=p.live))

    def send_still(self, p: FramePacket) -> None:
        """Send a photo for analysis under a new sequence number; results for older sends are ignored."""
        self.pending_still = FramePacket(next(self._seq), p.index, p.time_s, p.image, p.source_id,
                                         reset=True, still=True, name=p.name)
        self.frame_slot.put(self.pending_still)

    # -- results ------------------------------------------------------------------------------------
    def _post_result(self, analysis: Analysis) -> None:  # inference thread
        self.result_slot.put(analysis)
        self.emit_safely("result_ready")

    def _on_result_ready(self) -> None:
        analysis = self.result_slot.get()
        if analysis is None or analysis.packet.source_id != self.source_id:
            return
        if analysis.packet.still and (self.pending_still is None or analysis.packet.seq != self.pending_still.seq):
            return  # an older photo, or this one analysed before the model changed: its newer send is coming
        new_frame = self.last_analysis is None or analysis.packet.seq != self.last_analysis.packet.seq
        self.last_analysis = analysis
        for face in analysis.faces:
            if face.track_id is not None:
                self.history.add(face.track_id, analysis.packet.time_s, face_probabilities(face, True),
                                 raw=face_probabilities(face, False))
        self.redraw(timed=True)
        if self.recorder is not None and new_frame and self.last_annotated is not None:
            self.recorder.write(self.last_annotated, analysis)
        self.frames_displayed += 1
        self.fps.tick()
        self.stages.update({k: v for k, v in analysis.timings.items() if k in ("detect", "classify")})
        if analysis.timings and not analysis.packet.still:  # age of the frame when its labels were ready
            self.latency.add((analysis.finished_at - analysis.packet.captured_at) * 1000.0)
        if self._seekable and not self.slider.isSliderDown():
            self.slider.blockSignals(True)
            self.slider.setValue(analysis.packet.index)
            self.slider.blockSignals(False)
        if self._source_fps and not analysis.packet.still:
            self.position_label.setText(f"{analysis.packet.time_s:6.1f} s")
        self._source_settled = True
        self._check_ready()

    def selected_face_index(self) -> int | None:
        """The face shown in the side panel: the clicked one while it is visible, else the largest."""
        a = self.last_analysis
        if a is None or not a.faces:
            return None
        if self.selected_track is not None:
            for i, f in enumerate(a.faces):
                if f.track_id == self.selected_track:
                    return i
        if self.selected_index is not None and self.selected_index < len(a.faces):
            return self.selected_index
        return largest_face(a.faces)

    def select_at(self, x: float, y: float) -> None:
        a = self.last_analysis
        i = face_at(a.faces, x, y) if a is not None else None
        if i is None:
            return
        self.selected_track = a.faces[i].track_id  # type: ignore[union-attr]
        # photos have no track ids: remember the face by its position in the list instead
        self.selected_index = i if self.selected_track is None else None
        self.redraw()

    def redraw(self, timed: bool = False) -> None:
        """Render the last analysis with the current options and refresh the side panel."""
        a = self.last_analysis
        if a is None:
            return
        t0 = time.perf_counter()
        sel = self.selected_face_index()
        smoothed = self.act_smoothed.isChecked()
        annotated = render(a.packet.image, a.faces, RenderOptions(smoothed=smoothed, cam=self.act_cam.isChecked(),
                                                                  selected=sel))
        self.last_annotated = annotated
        self.view.set_image(numpy_to_qimage(annotated))
        if timed:
            self.stages.update({"draw": (time.perf_counter() - t0) * 1000.0})
        if sel is None:
            self.panel.set_face("No face in this frame" if self.session else "No model loaded",
                                a.class_names or (self.session.summary.class_names if self.session else ()), None)
            self.panel.set_history((), np.zeros(0), np.zeros((0, 0)))
            return
        face = a.faces[sel]
        name, conf = face_label(face, smoothed)
        track = f"#{face.track_id} · " if face.track_id is not None else ""
        kind = "smoothed" if smoothed and face.smoothed is not None else "raw"
        self.panel.set_face(f"{track}{name} {100 * conf:.0f}% ({kind}) · face {sel + 1} of {len(a.faces)}",
                            face.class_names, face_probabilities(face, smoothed))
        # the history shows the same face, and the same kind of value (smoothed or raw), as the panel above
        if face.track_id is not None:
            self.panel.set_history(face.class_names, *self.history.series(face.track_id, raw=kind == "raw"),
                                   face=f"#{face.track_id} ({kind})")
        else:
            self.panel.set_history((), np.zeros(0), np.zeros((0, 0)), face=f"face {sel + 1}",
                                   placeholder="no history for a photo")

    def _update_performance(self) -> None:
        a = self.last_analysis
        rec = f"recording {self.recorder.frames} frames → {os.path.basename(self.recorder.video_path)}" if self.recorder else ""
        self.panel.set_performance(self.fps.rate(), self.stages.values, self.dropped_frames,
                                   len(a.faces) if a else 0, rec, self.latency.percentiles())

    @property
    def dropped_frames(self) -> int:
        """Frames the analysis skipped to keep up: replaced before detection or before classification."""
        return self.frame_slot.dropped + self.inference.dropped

    @property
    def is_ready(self) -> bool:
        """Whether ``ready`` was already emitted (it can fire inside ``__init__``, e.g. for a bad source)."""
        return self._ready_sent

    def _check_ready(self) -> None:
        if not self._ready_sent and self._source_settled and not self.model_loading:
            self._ready_sent = True
            self.ready.emit()

    # -- toggles ------------------------------------------------------------------------------------
    def on_cam_toggled(self, on: bool) -> None:
        self.inference.want_cam = on
        self.settings.setValue("view/cam", on)
        if on and self.session is not None and not self.session.has_cams:
            self.set_note("analysis", "This model has no attention maps (export it with --with-cams).", "warning")
        self.reanalyze()
        self.redraw()

    def on_smoothed_toggled(self, on: bool) -> None:
        self.settings.setValue("view/smoothed", on)
        self.redraw()

    def on_loop_toggled(self, on: bool) -> None:
        self.settings.setValue("view/loop", on)
        if self.capture is not None:
            self.capture.loop = on

    def _update_controls(self) -> None:
        stream = self.capture is not None
        self.slider.setEnabled(stream and self._seekable)
        self.act_pause.setEnabled(stream)
        self.act_pause.setText("Play" if stream and self.capture.paused else "Pause")  # type: ignore[union-attr]
        self.act_prev.setEnabled(self.photos is not None or self._seekable)
        self.act_next.setEnabled(self.photos is not None or self._seekable)

    # -- shutdown -----------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop threads, finish a recording and save the settings (idempotent)."""
        self.stop_recording()
        capture = self.capture
        self.close_source()
        self.inference.stop()
        for thread in (capture, self.inference):
            if thread is not None and thread.is_alive():
                thread.join(timeout=3.0)
        if not self.inference.is_alive():
            # release the detectors' native resources now, not in finalisers at interpreter exit
            self.inference.set_analyzer(None)
            for session in [*self._retired, *([self.session] if self.session else [])]:
                session.close()
            self._retired.clear()
            self.session = None
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.sync()


def default_output_dir() -> str:
    """Where snapshots and recordings go unless chosen: ``~/Pictures/eacfer`` (or ``~/eacfer``)."""
    from PySide6.QtCore import QStandardPaths

    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation) or os.path.expanduser("~")
    return os.path.join(base, "eacfer")


def _as_bool(value: Any) -> bool:
    # QSettings' INI backend gives booleans back as the strings "true"/"false"
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")

