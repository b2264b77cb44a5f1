"""``eacfer train``: train EAC (or the CE baseline) on a dataset; defaults are the paper's recipe.

The options are :class:`eacfer.training.config.TrainConfig`'s fields: each field declares its flag, help,
choices and default once (:class:`eacfer.training.config.Option`); this module only lays them out."""

from __future__ import annotations

import argparse
import json
import sys
import typing
from dataclasses import MISSING, Field, fields
from typing import TYPE_CHECKING, Any

from eacfer.commands import cli
from eacfer.constants import PAPER_RECIPE

if TYPE_CHECKING:  # the config module imports torch: only when the command runs
    from eacfer.training.config import TrainConfig

#: The order of ``eacfer train``'s options (their groups come from the fields).
TRAIN_OPTIONS = (
    "data", "format", "backbone", "pretrained", "recipe", "method", "label_file", "noise_rate", "noise_seed",
    "val_fraction", "classes", "label_mode", "sampler", "crop_cache", "epochs", "batch_size", "lr", "weight_decay",
    "gamma", "lam", "image_size", "flip_view", "workers", "device", "amp", "seed", "strict", "pipeline", "compile",
    "views", "sync_bn", "cache_dir", "fast_settings", "tensorboard", "wandb", "wandb_entity", "wandb_name",
    "wandb_group", "wandb_mode", "wandb_media_every", "wandb_log_model", "out", "resume", "force",
)
#: What a grid of runs (``bench noisy``) adds to a W&B option's help; it has no ``--wandb-name``.
_GRID_HELP = {"wandb": "; one W&B run per grid cell, grouped by the grid",
              "wandb_group": " (default: the --out folder's name)"}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train",
        help="train a model (EAC or CE baseline)",
        description="Train EAC on RAF-DB (or another FER dataset). Defaults reproduce the paper's recipe.",
        epilog="examples: eacfer train --data data/RAF-DB --backbone resnet50_msceleb "
        "--pretrained resnet50_ft_weight.pkl --out runs/eac\n"
        "          eacfer train --data data/RAF-DB --backbone resnet50_msceleb "
        "--pretrained resnet50_ft_weight.pkl --out runs/eac --resume --epochs 80   # train a finished run longer\n"
        "          eacfer train --backbone list",
    )
    add_config_arguments(p, TRAIN_OPTIONS)
    p.set_defaults(func=run)
    return p


def _config_fields() -> dict[str, Field]:
    from eacfer.training.config import TrainConfig

    return {f.name: f for f in fields(TrainConfig) if "cli" in f.metadata}


def _value_type(field: Field) -> type | None:
    """``int`` or ``float`` for a number field (``int | None`` too); ``None`` for text and switches."""
    from eacfer.training.config import TrainConfig

    hint = typing.get_type_hints(TrainConfig)[field.name]
    kinds = [t for t in typing.get_args(hint) or (hint,) if t is not type(None)]
    return kinds[0] if len(kinds) == 1 and kinds[0] in (int, float) else None


def _flag(field: Field) -> str:
    return field.metadata["cli"].flag or "--" + field.name.replace("_", "-")


def add_config_arguments(p: argparse.ArgumentParser, names: typing.Iterable[str],
                         help_suffix: dict[str, str] | None = None) -> None:
    """Add the command-line options of these :class:`TrainConfig` fields to ``p``, in this order, each in its group
    (created at its first option); ``help_suffix`` extends a field's help (by field name)."""
    from eacfer.training.config import FIELD_DEFAULT

    by_name = _config_fields()
    groups: dict[str | None, Any] = {None: p}
    for name in names:
        field = by_name[name]
        opt = field.metadata["cli"]
        if opt.group not in groups:
            groups[opt.group] = p.add_argument_group(opt.group)
        suffix = (help_suffix or {}).get(name, "").replace("%", "%%")
        if callable(opt.help):
            # argparse fills %(name)s from the action's attributes only when it prints the help: a text that
            # needs the backbone registry (torch) is then computed by `eacfer train --help` alone, not by the
            # parser every `eacfer` command builds (a runtime-only install has no torch)
            kw: dict[str, Any] = {"help": "%(deferred_help)s" + suffix}
        else:
            kw = {"help": opt.help.replace("%", "%%") + suffix}
        if field.type in ("bool", bool):  # a switch: --flag sets True, --no-flag sets False
            kw["action"] = "store_true"
        else:
            default = field.default if opt.cli_default is FIELD_DEFAULT else opt.cli_default
            default = None if default is MISSING else default  # --data, --out: checked by run()
            kw.update(type=_value_type(field), default=None if opt.required else default, choices=opt.choices,
                      metavar=opt.metavar, required=opt.required)
        action = groups[opt.group].add_argument(_flag(field), **{k: v for k, v in kw.items() if v is not None})
        if callable(opt.help):
            action.deferred_help = _Deferred(opt.help)  # type: ignore[attr-defined]


class _Deferred:
    """Help text computed when it is printed (``str()``), not when the parser is built."""

    def __init__(self, make: typing.Callable[[], str]):
        self._make = make

    def __str__(self) -> str:
        try:
            return self._make()
        except ImportError as e:  # a runtime-only install: `eacfer train --help` must still print
            if not cli.needs_training_extra(e):
                raise
            return "listed once the training extra is installed (pip install 'eacfer[train]')"


def planned_epochs(out: str | None, resume: bool) -> int:
    """Epochs when --epochs is not given: with --resume, those the run in ``out`` planned (its
    config.yaml); otherwise the paper's 60.

    Example:
        >>> planned_epochs("/nonexistent", resume=True)
        60
    """
    from pathlib import Path

    default = int(PAPER_RECIPE["epochs"])
    if not (resume and out):
        return default
    try:
        import yaml

        saved = yaml.safe_load((Path(out) / "config.yaml").read_text(encoding="utf-8"))
        return int(saved["epochs"])
    except (OSError, ValueError, TypeError, KeyError, yaml.YAMLError):
        return default


def add_wandb_arguments(p: argparse.ArgumentParser, grid: bool = False) -> None:
    """``--wandb PROJECT`` and its companions (shared by ``train`` and ``bench noisy``, whose grid has no
    ``--wandb-name``)."""
    from eacfer.training.config import WANDB_GROUP

    names = [n for n, f in _config_fields().items() if f.metadata["cli"].group == WANDB_GROUP]
    add_config_arguments(p, [n for n in names if not (grid and n == "wandb_name")], _GRID_HELP if grid else None)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`eacfer.training.config.TrainConfig` for parsed ``eacfer train`` arguments.

    Example:
        >>> from eacfer.commands.cli import build_parser
        >>> cfg = config_from_args(build_parser().parse_args(["train", "--data", "d", "--out", "o",
        ...                                                   "--backbone", "resnet18", "--no-tensorboard"]))
        >>> cfg.tensorboard, cfg.epochs, cfg.fast_settings
        (False, 60, {})
    """
    from eacfer.training.config import TrainConfig

    kw: dict[str, Any] = {}
    for name, field in _config_fields().items():
        opt, flag = field.metadata["cli"], _flag(field)
        value = getattr(args, flag[2:].replace("-", "_"))
        if flag.startswith("--no-"):  # the switch turns the field off
            value = not value
        kw[name] = opt.parse(value) if opt.parse is not None else value
    if kw["epochs"] is None:
        kw["epochs"] = planned_epochs(args.out, args.resume)
    return TrainConfig(**kw, progress=not getattr(args, "quiet", False))


def run(args: argparse.Namespace) -> int:
    if args.backbone == "list":
        from eacfer.models import list_backbones

        print("\n".join(list_backbones()))
        return 0
    import logging
    import os

    from eacfer.training.runstate import TrainingInterrupted
    from eacfer.training.trainer import train

    missing = [flag for flag, value in (("--data", args.data), ("--out", args.out)) if not value]
    if missing:
        raise ValueError(f"the following arguments are required: {', '.join(missing)}")
    rank = int(os.environ.get("RANK", "0") or 0)  # under torchrun only rank 0 logs progress and reports
    if rank:
        logging.getLogger().setLevel(logging.WARNING)
    try:
        summary = train(config_from_args(args))
    except TrainingInterrupted as e:
        if not rank:
            print(e.describe(), file=sys.stderr)
            if e.checkpoint is not None:
                print(f"resume with: {resume_command(getattr(args, 'argv', None))}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # while the data and model were being prepared, before the epoch loop
        if not rank:
            from pathlib import Path

            last = Path(args.out) / "last.pt"
            print("training interrupted before its first epoch started"
                  + (f"; resumable checkpoint {last}" if last.exists() else "; no checkpoint yet"), file=sys.stderr)
            if last.exists():
                print(f"resume with: {resume_command(getattr(args, 'argv', None))}", file=sys.stderr)
        return 130
    if rank:
        return 0
    if summary.get("nothing_to_do"):
        print(summary["message"])
        return 0
    shown = {k: summary[k] for k in ("final_accuracy", "final_mean_class_accuracy", "best_accuracy", "best_epoch",
                                     "last5_mean_accuracy", "skipped_images", "skipped_entries") if k in summary}
    n = summary.get("last5_mean_epochs")
    if n is not None and n < 5 and "last5_mean_accuracy" in shown:  # say what was averaged
        shown[f"mean_accuracy_last_{n}_epochs (fewer than 5 ran)"] = shown.pop("last5_mean_accuracy")
    print(json.dumps(shown, indent=2))
    print(f"run folder: {summary['run_dir']}  (model: {summary['model']})")
    return 0


def resume_command(argv: list[str] | None) -> str:
    """The command line that resumes an interrupted ``eacfer train`` (its own arguments + ``--resume``).

    Example:
        >>> resume_command(["-q", "train", "--data", "d", "--out", "runs/my run"])
        "eacfer -q train --data d --out 'runs/my run' --resume"
    """
    import shlex

    args = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--force"]  # --force would start over
    if "--resume" not in args:
        args.append("--resume")
    return shlex.join(["eacfer", *args])
