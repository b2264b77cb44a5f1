"""Qt environment hygiene: make PySide6 importable and usable even after ``import cv2``.

opencv-contrib-python (the non-headless wheel that mediapipe pulls in) bundles its own Qt and, when
``cv2`` is imported, points ``QT_QPA_PLATFORM_PLUGIN_PATH`` / ``QT_QPA_FONTDIR`` at its private copies.
PySide6 would then try to load cv2's platform plugins, built against another Qt, and abort. We drop
exactly those variables when they point inside the cv2 package, before any QApplication exists.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, MutableMapping

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


def _painter_probe() -> None:
    """QPainter calls that PySide6 6.12.0 returns from without a reference to None."""
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QColor, QImage, QPainter

    img = QImage(4, 4, QImage.Format.Format_RGB32)
    p = QPainter(img)
    try:
        for _ in range(50):
            p.drawRoundedRect(QRectF(0, 0, 2, 2), 1, 1)
            p.setPen(QColor(0, 0, 0))
    finally:
        p.end()


def none_refcount_leaks(probe: Callable[[], None] | None = None) -> bool:
    """True when this PySide6 build loses references to ``None`` (PySide6 6.12.0 on Python < 3.12).

    Call it before starting threads (their own use of None would blur the count). On Python ≥ 3.12
    None is immortal and lost references are harmless.
    """
    if sys.version_info >= (3, 12):
        return False
    before = sys.getrefcount(None)
    (probe or _painter_probe)()
    return sys.getrefcount(None) < before - 25


def protect_none() -> None:
    """Give ``None`` a reference count so high that lost references can never free it.

    This is what Python 3.12 does by making None immortal; without it, PySide6 6.12.0 on Python 3.11
    aborts the app ("none_dealloc") after a few thousand painted frames.
    """
    import ctypes

    # ob_refcnt is the first field of every CPython object (Py_ssize_t); None is never freed anyway
    ctypes.c_ssize_t.from_address(id(None)).value += 1 << 40


def guard_pyside_none_bug() -> bool:
    """Detect the PySide6 None-reference bug and neutralise it; return True when it was found."""
    if not none_refcount_leaks():
        return False
    import PySide6

    log.warning(
        "PySide6 %s loses references to None on Python %d.%d (fixed by Python 3.12 or PySide6-Essentials<6.12: "
        "pip install 'PySide6-Essentials<6.12'); working around it", PySide6.__version__, *sys.version_info[:2])
    protect_none()
    return True
