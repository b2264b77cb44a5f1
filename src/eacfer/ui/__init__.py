"""Live desktop app (``eacfer ui``): camera, video and photos with faces, emotions and attention maps.

Needs the optional extra ``ui`` (``pip install 'eacfer[ui]'``, PySide6). Nothing here imports Qt at
import time, so the rest of eacfer works without it.

Example:
    >>> from eacfer.ui.app import run_app                                  # doctest: +SKIP
    >>> run_app(checkpoint="runs/demo/run/model.pt", source="0")               # doctest: +SKIP
"""

from __future__ import annotations

__all__ = ["run_app"]


def run_app(*args, **kwargs) -> int:  # noqa: ANN002, ANN003 - thin lazy forwarder
    """Start the desktop app; see :func:`eacfer.ui.app.run_app`."""
    from eacfer.ui.app import run_app as _run_app

    return _run_app(*args, **kwargs)
