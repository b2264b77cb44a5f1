"""Keep MediaPipe's native (C++) log lines off the console unless debug logging is on.

MediaPipe's LiteRT runtime writes ``INFO: Created TensorFlow Lite XNNPACK delegate``, ``WARNING: Logging
before InitGoogle() is written to STDERR``, ``inference_feedback_manager.cc … Disabling support for feedback
tensors`` and similar lines straight to file descriptor 2 when a task is created, first run and closed. No
Python logging setting reaches them, so :func:`native_stderr_to_log` points descriptor 2 at a temporary file
around those calls and logs what was written at DEBUG level (where nothing shows it). With debug logging on
(``eacfer -v``) nothing is redirected and the lines appear as MediaPipe writes them. Everything else keeps its stderr: only the few calls wrapped here
are redirected, for the milliseconds they take.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator

log = logging.getLogger("eacfer.infer.detect.native")


@contextlib.contextmanager
def native_stderr_to_log(logger: logging.Logger = log) -> Iterator[None]:
    """Redirect file descriptor 2 into ``logger.debug`` for the duration of the block.

    When ``logger`` is enabled for DEBUG the block runs untouched, so the lines appear as usual.

    Example:
        >>> with native_stderr_to_log():
        ...     pass
    """
    if logger.isEnabledFor(logging.DEBUG):
        yield
        return
    try:
        fd = sys.stderr.fileno() if hasattr(sys.stderr, "fileno") else 2
    except (OSError, ValueError):  # pytest's capture, an IDE console…: no descriptor to redirect
        fd = 2
    try:
        saved = os.dup(fd)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(sink.fileno(), fd)
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace").strip()
            if text:
                logger.debug("native output: %s", text)
