"""One progress-bar helper for every long loop: a live tqdm bar on a terminal, periodic plain lines
otherwise (a log file or CI console gets ``epoch 1 train:  40%|...| 4/10`` every 30 s instead of
thousands of carriage-return updates)."""

from __future__ import annotations

import sys
from typing import IO, Any

#: Seconds between two plain progress lines when the output is not a terminal.
PLAIN_INTERVAL_S = 30.0


class _PlainLines:
    """A file-like wrapper that turns tqdm's carriage-return redraws into whole lines."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._last = ""

    def write(self, text: str) -> int:
        for part in text.replace("\r", "\n").split("\n"):
            part = part.strip()
            if part and part != self._last:  # tqdm's final clearing writes only spaces
                self.stream.write(part + "\n")
                self._last = part
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress_bar(iterable: Any = None, *, disable: bool | None = False, file: IO[str] | None = None,
                 interval: float = PLAIN_INTERVAL_S, **kwargs: Any) -> Any:
    """``tqdm(iterable, **kwargs)`` on a terminal; on anything else the same bar as a plain line at most
    every ``interval`` seconds (plus the first and the last). ``disable=True`` shows nothing.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> for _ in progress_bar(range(3), desc="work", file=out):
        ...     pass
        >>> "\\r" in out.getvalue(), out.getvalue().splitlines()[-1].startswith("work: 100%")
        (False, True)
    """
    import warnings

    from tqdm.std import TqdmExperimentalWarning

    # tqdm.autonotebook, not tqdm.auto: tqdm.auto mixes in tqdm.asyncio, whose __init__ calls iter(iterable)
    # and whose __iter__ then calls it again. For a DataLoader that is a second, wasted iterator per loop: with
    # workers it starts a second set of worker processes and prefetches batches nobody reads, and it draws
    # the shuffling of the discarded iterator from the loader's generator, so --workers 0 and 2 trained on
    # different orders. (The warning silenced is the one tqdm.auto silences too.)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=TqdmExperimentalWarning)
        from tqdm.autonotebook import tqdm

    stream = file if file is not None else sys.stderr
    if disable is None:  # tqdm's "off when not a terminal": here such output gets plain lines instead
        disable = False
    in_notebook = any(c.__module__ == "tqdm.notebook" for c in tqdm.__mro__)  # tqdm.auto picked the widget
    if disable or in_notebook or _is_terminal(stream):
        return tqdm(iterable, disable=disable, file=stream, **kwargs)
    kwargs.pop("leave", None)  # plain lines stay: a log keeps the last state of each bar

    class _PlainBar(tqdm):  # type: ignore[misc, valid-type]
        """tqdm whose postfix and description changes wait for the next periodic line: tqdm's own
        ``set_postfix()`` redraws at once by default, so a loop setting it per batch printed a line per batch."""

        def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kw: Any) -> None:
            super().set_postfix(ordered_dict, refresh=False, **kw)

        def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
            super().set_postfix_str(s, refresh=False)

        def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
            super().set_description(desc, refresh=False)

        def set_description_str(self, desc: str | None = None, refresh: bool = True) -> None:
            super().set_description_str(desc, refresh=False)

    return _PlainBar(iterable, file=_PlainLines(stream), mininterval=interval, maxinterval=interval, leave=True,
                     ascii=True, dynamic_ncols=False, ncols=100, **kwargs)
