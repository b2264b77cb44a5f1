"""Progress bars fall back to periodic plain lines when the output is not a terminal (#19)."""

from __future__ import annotations

import io

import pytest

from eacfer.utils.progress import progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    for _ in progress_bar(range(50), desc="work", unit="it", file=out, leave=False):
        pass
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text  # no redraws, no escape codes
    lines = text.splitlines()
    assert 1 <= len(lines) <= 3  # not one line per item: at most every 30 s, plus first and last
    assert lines[-1].startswith("work: 100%") and "50/50" in lines[-1]


def test_plain_lines_are_periodic():
    import time

    out = io.StringIO()
    for _ in progress_bar(range(6), desc="slow", file=out, interval=0.05):
        time.sleep(0.03)
    lines = out.getvalue().splitlines()
    assert 3 <= len(lines) <= 7 and all(ln.startswith("slow:") for ln in lines)
    assert lines[-1].startswith("slow: 100%")


def test_live_bar_on_a_terminal():
    out = _Terminal()
    for _ in progress_bar(range(5), desc="tty", file=out):
        pass
    assert "\r" in out.getvalue()  # tqdm's redraw in place


@pytest.mark.parametrize("disable", [True])
def test_disabled_writes_nothing(disable):
    out = io.StringIO()
    for _ in progress_bar(range(5), desc="off", file=out, disable=disable):
        pass
    assert out.getvalue() == ""


def test_training_progress_uses_it(capsys):
    """The evaluation loop's bar (like every bar in eacfer) goes through the helper: plain lines on stderr."""
    import torch

    from eacfer.training import engine

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    loader = [(torch.rand(2, 3, 2, 2), torch.tensor([0, 1])) for _ in range(4)]
    engine.predict(model, loader, progress=True, desc="evalbar")
    err = capsys.readouterr().err
    assert "\r" not in err and "evalbar: 100%" in err and "4/4" in err
