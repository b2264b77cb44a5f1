"""Start the desktop app: QApplication, settings, the main window and the scripted screenshot mode."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from eacfer.infer.stream.reuse import DEFAULT_CLASSIFY_EVERY
from eacfer.ui.qtenv import guard_pyside_none_bug, require_pyside, sanitize_qt_environment
from eacfer.ui.recorder import shareable
from eacfer.utils.atomic import atomic_path

log = logging.getLogger(__name__)

ORGANIZATION = "eacfer"
APPLICATION = "eacfer-ui"
#: extra seconds ``--quit-after`` waits for the first frame / the model before shooting anyway
READY_GRACE_S = 120.0


def open_settings(path: str | os.PathLike[str] | None = None):  # noqa: ANN201 - QSettings, imported lazily
    """The app's QSettings: an INI file at ``path`` (tests, portable set-ups) or the user's default store.

    ``$EACFER_UI_SETTINGS`` names the file when ``path`` is not given.
    """
    from PySide6.QtCore import QSettings

    path = path or os.environ.get("EACFER_UI_SETTINGS")
    if path:
        return QSettings(str(path), QSettings.Format.IniFormat)
    return QSettings(ORGANIZATION, APPLICATION)


def save_screenshot(widget, path: str | os.PathLike[str]) -> Path:  # noqa: ANN001 - a QWidget
    """Grab the whole window (title bar excluded) into a PNG, atomically."""
    path = Path(path)
    pixmap = widget.grab()
    with atomic_path(path, suffix=".png") as tmp:
        if not pixmap.save(str(tmp), "PNG"):
            raise OSError(f"{path}: could not write the screenshot")
        shareable(tmp)
    return path


def run_app(
    checkpoint: str | None = None,
    source: str | list[str] | None = None,
    detector: str = "mediapipe",
    device: str = "auto",
    backend: str | None = None,
    precision: str = "fp32",
    min_confidence: float = 0.0,
    classify_every: int | str = DEFAULT_CLASSIFY_EVERY,
    output_dir: str | None = None,
    screenshot: str | None = None,
    quit_after: float | None = None,
    settings_path: str | None = None,
    size: tuple[int, int] | None = None,
    cam: bool | None = None,
    argv: list[str] | None = None,
) -> int:
    """Open the window and run the Qt event loop; returns the exit status.

    With ``quit_after`` the app plays the source for that many seconds (counted from the first frame on
    screen with the model loaded), saves ``screenshot`` if given, and exits 0 — for tests and demos — or 1
    when the model or the source failed to load (the messages are logged as errors).

    Example:
        >>> run_app("runs/demo/run/model.pt", "clip.mp4", screenshot="ui.png", quit_after=3)  # doctest: +SKIP
        0
    """
    require_pyside()
    sanitize_qt_environment()  # before Qt reads the environment (cv2 may already have been imported)
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from eacfer.ui.window import MainWindow, WindowOptions

    app = QApplication.instance() or QApplication(argv if argv is not None else [sys.argv[0]])
    guard_pyside_none_bug()  # before any thread starts
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    settings = open_settings(settings_path)
    options = WindowOptions(checkpoint=checkpoint, source=source, detector=detector, device=device, backend=backend,
                            precision=precision, min_confidence=min_confidence, classify_every=classify_every, output_dir=output_dir, probe_cameras=quit_after is None, cam=cam)
    window = MainWindow(settings, options)
    if size is not None:
        window.resize(*size)
    window.show()
    status = {"code": 0}

    if quit_after is not None:
        def finish() -> None:
            if getattr(finish, "done", False):
                return
            finish.done = True  # type: ignore[attr-defined]
            failed = window.load_errors()
            for message in failed:
                log.error("%s", message.replace("\n", " "))
            if failed:
                status["code"] = 1
            if screenshot:
                try:
                    save_screenshot(window, screenshot)
                    log.info("screenshot saved to %s", screenshot)
                except OSError as e:
                    log.error("%s", e)
                    status["code"] = 2
            window.close()
            app.quit()

        def on_ready() -> None:
            QTimer.singleShot(int(max(quit_after, 0.0) * 1000), finish)

        window.ready.connect(on_ready)
        if window.is_ready:  # settled during construction (a bad --source): the signal has already fired
            on_ready()
        QTimer.singleShot(int((max(quit_after, 0.0) + READY_GRACE_S) * 1000), finish)
    app.exec()
    window.shutdown()
    return status["code"]
