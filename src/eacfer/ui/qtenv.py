"""Qt environment hygiene: make PySide6 importable and usable even after ``import cv2``.

opencv-contrib-python (the non-headless wheel that mediapipe pulls in) bundles its own Qt and, when
``cv2`` is imported, points ``QT_QPA_PLATFORM_PLUGIN_PATH`` / ``QT_QPA_FONTDIR`` at its private copies.
PySide6 would then try to load cv2's platform plugins, built against another Qt, and abort. We drop
exactly those variables when they point inside the cv2 package, before any QApplication exists.
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping

log = logging.getLogger(__name__)

#: variables that cv2's Qt build sets on import
CV2_QT_VARIABLES = ("QT_QPA_PLATFORM_PLUGIN_PATH", "QT_QPA_FONTDIR")

UI_EXTRA_HINT = "the desktop app needs PySide6: pip install 'eacfer[ui]'"


def _points_into_cv2(value: str) -> bool:
    parts = os.path.normpath(value).split(os.sep)
    return "cv2" in parts


def sanitize_qt_environment(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Remove Qt variables that cv2 injected; return the names removed.

    Variables a user set deliberately (pointing elsewhere) are kept.

    Example:
        >>> env = {"QT_QPA_FONTDIR": "/x/site-packages/cv2/qt/fonts", "QT_QPA_PLATFORM": "offscreen"}
        >>> sanitize_qt_environment(env), sorted(env)
        (['QT_QPA_FONTDIR'], ['QT_QPA_PLATFORM'])
    """
    env = os.environ if environ is None else environ
    removed = []
    for name in CV2_QT_VARIABLES:
        value = env.get(name)
        if value and _points_into_cv2(value):
            del env[name]
            removed.append(name)
    if removed:
        log.debug("dropped cv2's Qt variables %s", removed)
    return removed


def require_pyside() -> None:
    """Raise a clear ``ModuleNotFoundError`` naming the extra when PySide6 is missing."""
    try:
        import PySide6  # noqa: F401
    except ImportError as e:
        raise ModuleNotFoundError(UI_EXTRA_HINT, name="PySide6") from e
