"""Skip Ctrl-C tests where SIGINT cannot be delivered: a process started with SIGINT ignored (``nohup``,
a background job of a non-interactive shell, some CI runners) inherits SIG_IGN, Python then installs no
KeyboardInterrupt handler, and eacfer rightly keeps ignoring it — the test would fail for the environment's
sake, not the code's."""

from __future__ import annotations

import functools
import signal
import subprocess
import sys

import pytest

REASON = ("SIGINT is ignored in this environment (inherited SIG_IGN, e.g. nohup or a background job), "
          "so a Ctrl-C cannot be delivered; run from an interactive shell or CI step to test it")


def sigint_ignored() -> bool:
    """SIGINT is ignored in this (the test) process."""
    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN


@functools.cache
def child_ignores_sigint() -> bool:
    """A child Python started like the CLI tests start ``eacfer`` would ignore SIGINT."""
    code = "import signal, sys; sys.exit(3 if signal.getsignal(signal.SIGINT) == signal.SIG_IGN else 0)"
    return subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 3


needs_sigint = pytest.mark.skipif(sigint_ignored(), reason=REASON)


def skip_if_child_ignores_sigint() -> None:
    if sigint_ignored() or child_ignores_sigint():
        pytest.skip(REASON)
