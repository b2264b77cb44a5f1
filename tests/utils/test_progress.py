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


def test_postfix_waits_for_the_next_plain_line():
    """``set_postfix()`` on every item (as the training loop does) must not print a line per item (#30)."""
    out = io.StringIO()
    bar = progress_bar(range(40), desc="post", file=out, interval=30.0)
    for i in bar:
        bar.set_postfix(loss=f"{1.0 / (i + 1):.4f}")
        bar.set_description("post")
    lines = out.getvalue().splitlines()
    assert 1 <= len(lines) <= 3, lines  # the first, the last: not 40
    assert lines[-1].startswith("post: 100%") and "40/40" in lines[-1] and "loss=0.0250" in lines[-1]


def test_postfix_still_redraws_on_a_terminal():
    out = _Terminal()
    bar = progress_bar(range(3), desc="tty", file=out)
    for _ in bar:
        bar.set_postfix(loss="0.5")
    assert "loss=0.5" in out.getvalue()


def test_training_epoch_prints_few_plain_lines(capsys):
    """One training epoch of 20 batches with progress on, not on a terminal: at most a few lines (#30)."""
    import torch

    from eacfer.training import engine

    def step(model, batch, optimizer, **kw):
        x, y = batch
        loss = model(x).sum() * 0.0
        return {"n": len(y), "loss": loss, "ce": loss, "consistency": loss, "correct": 1}

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    loader = [(torch.rand(2, 3, 2, 2), torch.tensor([0, 1])) for _ in range(20)]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    stats = engine.train_one_epoch(model, loader, opt, step_fn=step, epoch=1, progress=True)
    assert stats["n"] == 40
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("epoch 1 train")]
    assert 1 <= len(lines) <= 3, lines
    assert "20/20" in lines[-1] and "acc=0.500" in lines[-1]


class _CountsIterators:
    """An iterable that counts how many iterators were made from it (a DataLoader starts workers per iterator)."""

    def __init__(self, n: int) -> None:
        self.n, self.iterators = n, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        self.iterators += 1
        return iter(range(self.n))


@pytest.mark.parametrize("stream, disable", [(io.StringIO, False), (_Terminal, False), (io.StringIO, True)])
def test_one_iterator_per_loop(stream, disable):
    """A loop over the bar makes exactly one iterator of what it wraps: tqdm.auto's asyncio mixin made a second
    one in its constructor, which for a DataLoader with workers meant a second set of worker processes and a
    shuffle drawn from the loader's generator and thrown away (--workers 0 and 2 then trained differently)."""
    data = _CountsIterators(4)
    assert list(progress_bar(data, desc="once", file=stream(), disable=disable)) == [0, 1, 2, 3]
    assert data.iterators == 1
