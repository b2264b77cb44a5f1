"""Menus, toolbar and keyboard shortcuts of the main window (kept apart so window.py stays readable)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMessageBox, QToolBar, QWidget

# The window is typed as its Qt base: window.py imports this module, not the other way round.
MainWindow = QMainWindow

NO_MODEL_HELP = (
    "No model loaded. Open one with File → Open model… (Ctrl+M) or drop a .pt / .onnx file on this window.\n"
    "No model yet? `eacfer demo` trains a small demo model on the CPU (runs/demo/run/model.pt; about 8 min on 2 "
    "idle cores, `eacfer demo --quick` under a minute); "
    "`eacfer train --data DATASET --backbone mobilenet_v2 --pretrained imagenet --out RUN` trains on your own data "
    "(RUN/model.pt); "
    "`eacfer export --with-cams` turns it into a faster .onnx with attention maps."
)


def _action(win: MainWindow, text: str, slot, shortcut: str | QKeySequence.StandardKey | None = None,  # noqa: ANN001
            checkable: bool = False, tip: str = "") -> QAction:
    act = QAction(text, win)
    if shortcut is not None:
        act.setShortcut(QKeySequence(shortcut))
        # shortcuts work wherever the focus is inside the window (the frame view, the panel, …)
        act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    act.setCheckable(checkable)
    if tip:
        act.setToolTip(tip)
        act.setStatusTip(tip)
    (act.toggled if checkable else act.triggered).connect(slot)
    win.addAction(act)
    return act


def build(win: MainWindow) -> None:
    """Create every action on ``win`` (as ``win.act_*``), the menus and the toolbar."""
    win.act_open_model = _action(win, "Open &model…", win.choose_model, "Ctrl+M", tip="Load a .pt or .onnx model")
    win.act_open_video = _action(win, "Open &video…", win.choose_video, "Ctrl+O")
    win.act_open_photos = _action(win, "Open &photos…", win.choose_photos, "Ctrl+P")
    win.act_open_folder = _action(win, "Open &folder of photos…", win.choose_folder, "Ctrl+F")
    win.act_output = _action(win, "Save snapshots and recordings in…", win.choose_output_dir)
    win.act_quit = _action(win, "&Quit", win.close, QKeySequence.StandardKey.Quit)
    win.act_pause = _action(win, "Pause", win.toggle_pause, "Space", tip="Pause / play (Space)")
    win.act_prev = _action(win, "◀ Previous", lambda: win.next_item(-1), "Left",
                           tip="Previous photo, or 5 s back (←)")
    win.act_next = _action(win, "Next ▶", lambda: win.next_item(1), "Right", tip="Next photo, or 5 s ahead (→)")
    win.act_snapshot = _action(win, "Snapshot", win.snapshot, "S", tip="Save the annotated frame as PNG + CSV (S)")
    win.act_record = _action(win, "● Record", lambda _=False: win.toggle_recording(), "R",
                             tip="Record the annotated stream to MP4 + CSV (R)")
    # checkable only for its look: the window sets the state, since starting a recording may fail
    win.act_record.setCheckable(True)
    win.act_cam = _action(win, "Attention map", win.on_cam_toggled, "C", checkable=True,
                          tip="Overlay the EAC attention map of the predicted class (C)")
    win.act_smoothed = _action(win, "Smoothed labels", win.on_smoothed_toggled, "T", checkable=True,
                               tip="Labels from the track's smoothed probabilities instead of this frame's (T)")
    win.act_loop = _action(win, "Loop videos", win.on_loop_toggled, "L", checkable=True)
    win.act_refresh = _action(win, "Refresh cameras", win.refresh_cameras, "F5", tip="Look for cameras again (F5)")
    win.act_help = _action(win, "How to get a model", lambda: _show_model_help(win), "F1")

    bar = win.menuBar()
    m = bar.addMenu("&File")
    for a in (win.act_open_model, None, win.act_open_video, win.act_open_photos, win.act_open_folder, None,
              win.act_snapshot, win.act_record, win.act_output, None, win.act_quit):
        m.addSeparator() if a is None else m.addAction(a)
    m = bar.addMenu("&Playback")
    for a in (win.act_pause, win.act_prev, win.act_next, win.act_loop, None, win.act_refresh):
        m.addSeparator() if a is None else m.addAction(a)
    m = bar.addMenu("&View")
    m.addAction(win.act_cam)
    m.addAction(win.act_smoothed)
    m = bar.addMenu("&Help")
    m.addAction(win.act_help)

    tb = QToolBar("Main")
    tb.setObjectName("main-toolbar")
    tb.setMovable(False)
    tb.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    tb.addWidget(win.camera_combo)
    for a in (win.act_refresh, win.act_open_video, win.act_open_photos, win.act_open_folder, None,
              win.act_prev, win.act_pause, win.act_next, None, win.act_snapshot, win.act_record, None,
              win.act_cam, win.act_smoothed, None, win.act_open_model):
        tb.addSeparator() if a is None else tb.addAction(a)
    win.act_refresh.setText("⟳")
    win.act_open_video.setIconText("Video…")
    win.act_open_photos.setIconText("Photos…")
    win.act_open_folder.setIconText("Folder…")
    win.act_open_model.setIconText("Model…")
    for w in tb.findChildren(QWidget):  # toolbar buttons must not swallow Space/arrows meant for shortcuts
        w.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    win.addToolBar(tb)
    win.toolbar = tb


def _show_model_help(win: MainWindow) -> None:
    QMessageBox.information(win, "Getting a model", NO_MODEL_HELP.replace("No model loaded. ", ""))
