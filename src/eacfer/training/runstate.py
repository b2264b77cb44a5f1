"""Run-folder bookkeeping around ``--resume``: a finished run is left alone, a longer run is recorded
segment by segment, and an interrupted run says where it stopped.

``config.yaml`` keeps the options the run was started with; its ``segments`` list records each
invocation that trained (``first_epoch``, ``until_epoch``), the options that took effect from that
epoch on when they differ (``changed``), and those that were asked for but could not take effect
because ``last.pt`` restores them (``ignored``: the optimizer's learning rate and weight decay, the
scheduler's γ, the RNG states).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Restored from last.pt on resume (optimizer, scheduler, RNG states): a new value cannot take effect.
IGNORED_ON_RESUME = ("lr", "weight_decay", "gamma", "seed")
#: Keys of the resolved config that describe a segment, not the run's options.
_NOT_OPTIONS = ("epochs", "segments")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, with where it landed (a KeyboardInterrupt, so it still stops everything).

    ``epoch``: the epoch that was running (None: before the first one started); ``completed``: epochs in
    ``checkpoint`` (0 and None when there is none yet).
    """

    def __init__(self, run_dir: Path, epoch: int | None, epochs: int, completed: int,
                 checkpoint: Path | None) -> None:
        super().__init__(f"interrupted in epoch {epoch}")
        self.run_dir, self.epoch, self.epochs = run_dir, epoch, epochs
        self.completed, self.checkpoint = completed, checkpoint

    def describe(self) -> str:
        """One or two lines for the console.

        Example:
            >>> TrainingInterrupted(Path("r"), 3, 5, 2, Path("r/last.pt")).describe()
            'training interrupted during epoch 3/5; resumable checkpoint r/last.pt holds epochs 1-2'
        """
        where = f"during epoch {self.epoch}/{self.epochs}" if self.epoch else "before the first epoch started"
        if self.checkpoint is not None:
            span = "epoch 1" if self.completed == 1 else f"epochs 1-{self.completed}"
            return f"training interrupted {where}; resumable checkpoint {self.checkpoint} holds {span}"
        return f"training interrupted {where}; no checkpoint yet (nothing to resume, --resume starts over)"


def epochs_done(run: Path) -> tuple[int, int] | None:
    """``(epochs trained, epochs planned)`` of the run in ``run`` from ``last.pt`` (else ``summary.json``).

    Example:
        >>> epochs_done(Path("/nonexistent")) is None
        True
    """
    from eacfer.checkpoint import load_checkpoint

    last = run / "last.pt"
    if last.exists():
        state = load_checkpoint(last, map_location="cpu")
        done = int(state.get("epoch", 0))
        cfg = state.get("config") if isinstance(state.get("config"), dict) else {}
        return done, int(cfg.get("epochs", done))
    summary = _read_summary(run)
    if "epochs" in summary:
        return int(summary["epochs"]), int(summary.get("epochs_planned", summary["epochs"]))
    return None


def _read_summary(run: Path) -> dict[str, Any]:
    try:
        data = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def finished_summary(run: Path, epochs: int) -> dict[str, Any] | None:
    """For ``--resume``: the saved summary (marked ``nothing_to_do``) when the finished run in ``run``
    already has ``epochs`` epochs, else None (there is something to train).

    Raises ValueError when the run is finished, more epochs are asked for, but ``last.pt`` is gone.

    Example:
        >>> finished_summary(Path("/nonexistent"), 5) is None
        True
    """
    if not (run / "model.pt").exists():
        return None
    done = epochs_done(run)
    if done is None:
        return None
    trained, planned = done
    if trained < epochs:
        if not (run / "last.pt").exists():
            raise ValueError(f"{run}: finished run without last.pt; cannot train it longer (--epochs {epochs})")
        log.info("%s: finished after %d epochs; training on to epoch %d (--epochs %d)", run, trained, epochs, epochs)
        return None
    summary = _read_summary(run)
    message = f"{run}: already finished ({trained}/{planned} epochs), nothing to do"
    if epochs < trained:
        message += f" (--epochs {epochs} asks for no more)"
    message += "; to train longer, pass a higher --epochs with --resume"
    summary.update(run_dir=str(run), model=str(run / "model.pt"), nothing_to_do=True, message=message)
    return summary


def new_segments(epochs: int) -> list[dict[str, Any]]:
    """The ``segments`` of a run started now.

    Example:
        >>> new_segments(60)
        [{'first_epoch': 1, 'until_epoch': 60}]
    """
    return [{"first_epoch": 1, "until_epoch": epochs}]


def record_resume(saved: dict[str, Any], current: dict[str, Any], start_epoch: int) -> dict[str, Any]:
    """The config of a resumed run: the run's own options, ``epochs`` now planned, and a new segment.

    Options that differ from the run's and take effect are listed under the segment's ``changed``;
    those last.pt restores (:data:`IGNORED_ON_RESUME`) under ``ignored``, with a warning.

    Example:
        >>> saved = {"lr": 0.1, "batch_size": 32, "epochs": 2, "segments": new_segments(2)}
        >>> cfg = record_resume(saved, {"lr": 0.01, "batch_size": 16, "epochs": 4}, 3)
        >>> cfg["epochs"], cfg["lr"], cfg["segments"][-1]
        (4, 0.1, {'first_epoch': 3, 'until_epoch': 4, 'changed': {'batch_size': 16}, 'ignored': {'lr': 0.01}})
    """
    out = dict(saved)
    segments = [dict(s) for s in saved.get("segments") or new_segments(int(saved.get("epochs", start_epoch - 1)))]
    changed = {k: v for k, v in current.items() if k not in _NOT_OPTIONS and saved.get(k) != v}
    ignored = {k: changed.pop(k) for k in IGNORED_ON_RESUME if k in changed}
    if ignored:
        log.warning("--resume restores %s from last.pt; the new value(s) are not used",
                    ", ".join(f"{k} ({saved.get(k)!r}, not {v!r})" for k, v in ignored.items()))
    segment: dict[str, Any] = {"first_epoch": start_epoch, "until_epoch": int(current["epochs"])}
    if changed:
        segment["changed"] = changed
    if ignored:
        segment["ignored"] = ignored
    out.update(epochs=int(current["epochs"]), segments=[*segments, segment])
    return out
