"""``eacfer train``: train EAC (or the CE baseline) on a dataset; defaults are the paper's recipe."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from eacfer.commands import cli
from eacfer.constants import PAPER_RECIPE, TRAIN_WORKERS


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
    p.add_argument("--data", help="dataset folder (or a FER2013 / FERPlus CSV); required unless --backbone list")
    p.add_argument("--format", default=None, help="rafdb, rafdb-kaggle, folder, fer2013, ferplus, ferplus-folders, "
                   "affectnet (default: auto-detect). Each epoch is evaluated on the test split: " + _test_splits())
    p.add_argument("--backbone", required=True, help="backbone name; `--backbone list` prints them")
    pretrained = p.add_argument(
        "--pretrained", default=None,
        help="backbone weights: a file, 'imagenet' (torchvision backbones) or 'none' (random initialisation "
        "on purpose: warned, recorded in config.yaml and model.pt). Default when omitted: %(pretrained_defaults)s")
    # argparse fills %(name)s from the action's attributes when it prints the help: the backbone registry
    # (torch) is then read only by `eacfer train --help`, not by every `eacfer` command's parser
    pretrained.pretrained_defaults = _Deferred(_pretrained_defaults)  # type: ignore[attr-defined]
    p.add_argument("--recipe", choices=("auto", "paper"), default="auto",
                   help="paper: pin the official fp32 reference pipeline with deterministic cuDNN and TF32 off, for "
                   "reproducing tables; auto (default): the pipeline follows the device (the fast pipeline on CUDA, "
                   "bf16 from compute capability 8.0, fp16 + GradScaler on 7.x, fp32 below). "
                   "Reported accuracies are evaluated in fp32 either way")
    p.add_argument("--method", choices=("eac", "ce"), default="eac", help="eac (default) or the ce baseline")
    noise = p.add_argument_group("label noise")
    noise.add_argument("--label-file", default=None, help="train on another RAF-DB label file (e.g. noise03.txt)")
    noise.add_argument("--noise-rate", type=float, default=0.0,
                       help="inject symmetric label noise at this rate (0: none)")
    noise.add_argument("--noise-seed", type=int, default=0, help="seed of the injected noise")
    p.add_argument("--val-fraction", type=float, default=0.0, metavar="F",
                   help="hold out this fraction of train per class (seeded by --seed) for `eacfer calibrate --split "
                   "val`; for datasets without a validation split (RAF-DB). Default 0 (the paper's protocol; not "
                   "allowed with --recipe paper)")
    ds = p.add_argument_group("FERPlus / AffectNet")
    ds.add_argument("--classes", type=int, choices=(7, 8), default=None,
                    help="8 (default, with contempt) or 7 (drops contempt: AffectNet-7, FERPlus without contempt)")
    ds.add_argument("--label-mode", choices=("majority", "probability"), default="majority",
                    help="FERPlus training labels: majority vote (default) or the vote distribution as soft "
                    "cross-entropy targets (validation/test always use majority)")
    ds.add_argument("--sampler", choices=("shuffle", "balanced"), default="shuffle",
                    help="shuffle (default) or class-balanced sampling with replacement (AffectNet practice)")
    ds.add_argument("--crop-cache", default=None,
                    help="folder for AffectNet's cached face crops (default: ~/.cache/eacfer/affectnet/...)")
    r = PAPER_RECIPE
    p.add_argument("--epochs", type=int, default=None,
                   help=f"epochs to train (default: {int(r['epochs'])}; with --resume: the run's own, and a "
                   "higher value trains a finished run on to that epoch)")
    p.add_argument("--batch-size", type=int, default=int(r["batch_size"]), help="training batch size")
    p.add_argument("--lr", type=float, default=float(r["lr"]), help="Adam learning rate")
    p.add_argument("--weight-decay", type=float, default=float(r["weight_decay"]), help="Adam weight decay")
    p.add_argument("--gamma", type=float, default=float(r["gamma"]), help="ExponentialLR factor per epoch")
    p.add_argument("--lam", type=float, default=float(r["lam"]), help="weight λ of the consistency loss")
    p.add_argument("--image-size", type=int, default=int(r["image_size"]), help="input size in pixels (square)")
    p.add_argument("--flip-view", choices=("auto", "mirrored", "independent"), default="auto",
                   help="how the flipped view is built (auto: independent when train labels are noisy)")
    p.add_argument("--workers", type=int, default=TRAIN_WORKERS,
                   help="DataLoader worker processes that load and augment images beside training; the results do "
                        "not depend on it (same seed, same run), only the speed (0: load in this process)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    p.add_argument("--seed", type=int, default=int(r["seed"]), help="seed of every random number generator")
    p.add_argument("--strict", action="store_true", help="stop at the first broken image or label line")
    p.add_argument("--pipeline", choices=("auto", "reference", "fast"), default="auto",
                   help="fast: decoded-image cache + on-GPU augmentation + the GPU generation's autocast (default on CUDA); "
                   "reference: the faithful per-image CPU pipeline (default on CPU)")
    fast = p.add_argument_group("fast pipeline (see also: torchrun --nproc_per_node N -m eacfer train ...)")
    fast.add_argument("--compile", action="store_true",
                      help="torch.compile the model (ignored with a warning below compute capability 7.0)")
    fast.add_argument("--views", choices=("split", "joint"), default="split",
                      help="split: x and x' in two forward passes, per-view BatchNorm statistics as the "
                      "reference (default); joint: one pass over the 2N batch (faster, BatchNorm differs)")
    fast.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across GPUs under torchrun")
    fast.add_argument("--cache-dir", default=None,
                      help="keep the decoded uint8 images as memory-mapped .npy files here (keyed by content; decoded "
                      "straight into the file). Without it a set larger than half the free RAM goes to "
                      "~/.cache/eacfer/decoded")
    fast.add_argument("--fast-settings", default="", metavar="KEY=on|off,...",
                      help="override the fast path's device defaults (set by the GPU generation on CUDA, off on CPU): "
                      "amp (autocast), amp_dtype=bf16|fp16, fused_adam, channels_last, cudnn_benchmark; e.g. amp=off "
                      "to debug numerics")
    p.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard events")
    add_wandb_arguments(p)
    p.add_argument("--out", help="run folder (locked while training); required unless --backbone list")
    p.add_argument("--resume", action="store_true",
                   help="continue from RUN_DIR/last.pt; a finished run is left as it is unless --epochs is higher")
    p.add_argument("--force", action="store_true", help="overwrite an existing run (with --resume: ignore config differences)")
    p.set_defaults(func=run)
    return p


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


def _test_splits() -> str:
    from eacfer.data.formats import TEST_SPLITS_HELP

    return TEST_SPLITS_HELP.replace("%", "%%")


def add_wandb_arguments(p: argparse.ArgumentParser, grid: bool = False) -> None:
    """``--wandb PROJECT`` and its companions (shared by ``train`` and ``bench noisy``)."""
    w = p.add_argument_group("Weights & Biases (pip install 'eacfer[wandb]')")
    w.add_argument("--wandb", default=None, metavar="PROJECT",
                   help="log the run to this W&B project: config, per-epoch metrics, confusion matrix, CAMs of test "
                   "faces, summary" + ("; one W&B run per grid cell, grouped by the grid" if grid else ""))
    w.add_argument("--wandb-entity", default=None, help="W&B team or user (default: your default entity)")
    if not grid:
        w.add_argument("--wandb-name", default=None, help="W&B run name (default: the run folder's name)")
    w.add_argument("--wandb-group", default=None,
                   help="W&B group" + (" (default: the --out folder's name)" if grid else ""))
    w.add_argument("--wandb-mode", choices=("online", "offline", "disabled"), default=None,
                   help="default: $WANDB_MODE, else online. offline: write the W&B run into RUN_DIR/wandb/ (upload "
                   "later with `wandb sync`). Every WANDB_* variable applies (a flag given wins over it)")
    w.add_argument("--wandb-media-every", type=int, default=5, metavar="N",
                   help="log the confusion matrix and the CAM grid every N epochs (and at the last)")
    w.add_argument("--wandb-log-model", action="store_true", help="upload model.pt as a W&B artifact (large)")


def wandb_options(args: argparse.Namespace) -> dict:
    """The TrainConfig fields of the W&B arguments."""
    return {"wandb": args.wandb, "wandb_entity": args.wandb_entity, "wandb_name": getattr(args, "wandb_name", None),
            "wandb_group": args.wandb_group, "wandb_mode": args.wandb_mode, "wandb_media_every": args.wandb_media_every,
            "wandb_log_model": args.wandb_log_model}


class _Deferred:
    """Help text computed when it is printed (``str()``), not when the parser is built."""

    def __init__(self, make: Callable[[], str]):
        self._make = make

    def __str__(self) -> str:
        try:
            return self._make()
        except ImportError:  # a runtime-only install (no torch): the backbones cannot be listed
            return "see `eacfer train --backbone list` (training needs torch: pip install 'eacfer[train]')"


def _pretrained_defaults() -> str:
    try:
        from eacfer.models import list_backbones
        from eacfer.training.config import pretrained_default
    except ImportError as e:  # a runtime-only install: `eacfer --help` must still work without torch
        if not cli.needs_training_extra(e):
            raise
        return "listed once the training extra is installed (pip install 'eacfer[train]')"
    return "; ".join(f"{b}: {pretrained_default(b)}" for b in list_backbones()) + "; timm:*: random initialisation"


def config_from_args(args: argparse.Namespace):
    """The :class:`eacfer.training.trainer.TrainConfig` for parsed arguments."""
    from eacfer.training.fast.step import FastSettings
    from eacfer.training.trainer import TrainConfig

    return TrainConfig(
        data=args.data, out=args.out, backbone=args.backbone, format=args.format, pretrained=args.pretrained,
        recipe=args.recipe,
        method=args.method, label_file=args.label_file, noise_rate=args.noise_rate, noise_seed=args.noise_seed,
        val_fraction=args.val_fraction,
        classes=args.classes, label_mode=args.label_mode, sampler=args.sampler, crop_cache=args.crop_cache,
        epochs=args.epochs if args.epochs is not None else planned_epochs(args.out, args.resume),
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        gamma=args.gamma, lam=args.lam, image_size=args.image_size, flip_view=args.flip_view, workers=args.workers,
        device=args.device, amp=args.amp, seed=args.seed, strict=args.strict, pipeline=args.pipeline,
        compile=args.compile, views=args.views, sync_bn=args.sync_bn, cache_dir=args.cache_dir,
        fast_settings=FastSettings.parse(args.fast_settings), resume=args.resume, force=args.force,
        progress=not getattr(args, "quiet", False),
        tensorboard=not args.no_tensorboard,
        **wandb_options(args),
    )


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
