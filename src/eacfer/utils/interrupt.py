"""Ctrl-C that waits for the current item's outputs to be written, so counts and files always agree."""

from __future__ import annotations

from typing import Any


class HoldCtrlC:
    """Defer Ctrl-C (SIGINT) inside the block, then raise it when the block ends.

    A KeyboardInterrupt between writing one item's outputs (a frame's CSV rows, its video frame, its count)
    would leave them disagreeing by one item. Wrap only the output step: decoding and inference (where the
    time goes) stay interruptible at once, and an item interrupted there is dropped whole. Works in the main
    thread (where signal handlers live); elsewhere it does nothing. Reusable, not re-entrant.

    Example:
        >>> hold = HoldCtrlC()
        >>> with hold:
        ...     pass  # write one item's outputs here
    """

    def __init__(self) -> None:
        self.pending = False
        self._prev: Any = None

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.pending = True

    def __enter__(self) -> HoldCtrlC:
        import signal
        import threading

        self.pending, self._prev = False, None
        if threading.current_thread() is threading.main_thread():
            self._prev = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        if self._prev is None:
            return
        signal.signal(signal.SIGINT, self._prev)
        if self.pending:
            if self._prev is signal.default_int_handler:
                raise KeyboardInterrupt
            if callable(self._prev):
                self._prev(signal.SIGINT, None)  # someone else's handler: let it decide
