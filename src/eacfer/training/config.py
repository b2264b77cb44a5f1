"""The configuration of a training run (:class:`TrainConfig`, defaults = the paper's recipe) and the
names a run folder uses. Apart from the trainer so that the data and fast-pipeline modules can take a
config without importing the trainer that imports them."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path
from typing import Any

from eacfer.constants import PAPER_RECIPE, TRAIN_WORKERS, TRAINING_METHODS

PIPELINES = ("auto", "reference", "fast")  # auto: fast on CUDA, reference on CPU
#: ``auto``: the pipeline follows the device (fast on CUDA); ``paper``: the official fp32 reference path with
#: deterministic cuDNN, for reproducing tables (see :func:`check_recipe`).
RECIPES = ("auto", "paper")
#: Backbones whose recipe starts from pretrained weights → what the paper's runs start from. Training one of
#: them needs an explicit ``--pretrained`` (a file, ``imagenet`` where offered, or ``none`` on purpose).
RECIPE_WEIGHTS = {
    "resnet50_msceleb": "resnet50_ft_weight.pkl (MS-Celeb-1M; `eacfer weights` says where to get it)",
    "mobilenet_v2": "imagenet (torchvision's ImageNet weights, or a state_dict file)",
}
NO_WEIGHTS = "none"  # --pretrained none: random initialisation, chosen on purpose
METRIC_COLUMNS = (
    "epoch", "train_loss", "train_ce", "train_consistency", "train_accuracy",
    "test_accuracy", "test_mean_class_accuracy", "lr", "seconds",
)
#: Files a run writes; ``--force`` removes exactly these (never anything else in RUN_DIR).
RUN_FILES = ("config.yaml", "metrics.csv", "last.pt", "model.pt", "summary.json", "train_labels_used.txt",
             "wandb_run.json")
#: Config keys that must match for ``--resume`` (else the checkpoint belongs to another experiment).
RESUME_KEYS = ("backbone", "method", "class_names", "data", "format", "label_file", "noise_rate", "noise_seed",
               "label_mode", "sampler", "val_fraction")
#: Options that may change on ``--resume`` but make the result differ from an uninterrupted run (warned).
SOFT_RESUME_KEYS = ("batch_size", "lr", "weight_decay", "gamma", "lam", "image_size", "seed", "flip_view", "gpu")
#: How the run computes: a change on ``--resume`` converts the optimizer state to the new pipeline / precision /
#: memory layout (:func:`eacfer.training.numerics.load_optimizer_state`) and is warned.
CONVERTED_ON_RESUME = ("pipeline", "amp_effective", "fast_settings_effective")
#: What a run folder written before a key existed meant by it (so older runs still resume).
RESUME_DEFAULTS = {"label_mode": "majority", "sampler": "shuffle", "val_fraction": 0.0}
LAST5 = 5  # EAC reports the mean test accuracy of the last 5 epochs
LABEL_MODES = ("majority", "probability")  # FERPlus: majority vote, or the vote distribution as soft targets
SAMPLERS = ("shuffle", "balanced")
VIEWS = ("split", "joint")
WANDB_MODES = ("online", "offline", "disabled")
#: Option groups of ``eacfer train --help`` (``None``: the command's own options).
NOISE_GROUP = "label noise"
DATASET_GROUP = "FERPlus / AffectNet"
FAST_GROUP = "fast pipeline (see also: torchrun --nproc_per_node N -m eacfer train ...)"
WANDB_GROUP = "Weights & Biases (pip install 'eacfer[wandb]')"


class _Default(enum.Enum):
    FIELD = "the field's default"


#: :attr:`Option.cli_default` when the parser's default is the field's.
FIELD_DEFAULT = _Default.FIELD


@dataclass(frozen=True)
class Option:
    """How a :class:`TrainConfig` field appears on the command line (``eacfer train`` builds its parser and
    maps the parsed arguments back from these; a field without one has no flag).

    ``flag`` defaults to ``--field-name``; a ``bool`` field is a switch that sets ``True``, or with a ``--no-``
    flag one that sets ``False``; ``cli_default`` is the parser's default where it differs from the field's
    (``parse`` turns the parsed text into the field's value); ``help`` may be a function when its text is
    computed from registries (imported only when the parser is built).
    """

    help: str | Callable[[], str]
    flag: str | None = None
    group: str | None = None
    choices: tuple[Any, ...] | None = None
    metavar: str | None = None
    required: bool = False
    cli_default: Any = FIELD_DEFAULT
    parse: Callable[[Any], Any] | None = None


def option(default: Any = MISSING, *, default_factory: Any = MISSING, **spec: Any) -> Any:
    """A dataclass field with its command-line :class:`Option` (one declaration for both).

    Example:
        >>> from dataclasses import dataclass, fields
        >>> @dataclass
        ... class C:
        ...     lr: float = option(0.1, help="learning rate")
        >>> C().lr, fields(C)[0].metadata["cli"].help
        (0.1, 'learning rate')
    """
    return field(default=default, default_factory=default_factory, metadata={"cli": Option(**spec)})


def parse_fast_settings(text: str) -> dict[str, Any]:
    """``--fast-settings amp=off,...`` → :class:`TrainConfig.fast_settings` (see ``FastSettings.parse``)."""
    from eacfer.training.fast.step import FastSettings

    return FastSettings.parse(text)


def eval_splits_text() -> str:
    """Which split each dataset format evaluates on, in words (for ``--format``'s help)."""
    from eacfer.data.formats import TEST_SPLITS_HELP

    return TEST_SPLITS_HELP


def pretrained_defaults_text() -> str:
    """What ``--pretrained`` means when omitted, for every backbone (for its help)."""
    from eacfer.models import list_backbones

    return "; ".join(f"{b}: {pretrained_default(b)}" for b in list_backbones()) + "; timm:*: random initialisation"



@dataclass
class TrainConfig:
    """Everything that defines a training run; defaults are the paper's recipe.

    Example:
        >>> cfg = TrainConfig(data="data/RAF-DB", out="runs/eac", backbone="resnet50_msceleb",
        ...                   pretrained="resnet50_ft_weight.pkl")
        >>> cfg.epochs, cfg.batch_size, cfg.lr
        (60, 32, 0.0001)
    """

    data: str = option(help="dataset folder (or a FER2013 / FERPlus CSV); required unless --backbone list")
    out: str = option(help="run folder (locked while training); required unless --backbone list")
    backbone: str = option("resnet50_msceleb", help="backbone name; `--backbone list` prints them", required=True)
    format: str | None = option(None, help=lambda: (
        "rafdb, rafdb-kaggle, folder, fer2013, ferplus, ferplus-folders, affectnet (default: auto-detect). Each "
        "epoch is evaluated on the test split: " + eval_splits_text()))
    # None: the backbone's default (an error for RECIPE_WEIGHTS backbones, random init otherwise);
    # "none": random initialisation on purpose (warned, recorded)
    pretrained: str | None = option(None, help=lambda: (
        "backbone weights: a file, 'imagenet' (torchvision backbones) or 'none' (random initialisation on purpose: "
        "warned, recorded in config.yaml and model.pt). Default when omitted: " + pretrained_defaults_text()))
    recipe: str = option("auto", choices=RECIPES, help=(
        "paper: pin the official fp32 reference pipeline with deterministic cuDNN and TF32 off, for reproducing "
        "tables; auto (default): the pipeline follows the device (the fast pipeline on CUDA, bf16 from compute "
        "capability 8.0, fp16 + GradScaler on 7.x, fp32 below). Reported accuracies are evaluated in fp32 either way"))
    method: str = option("eac", choices=TRAINING_METHODS, help="eac (default) or the ce baseline")
    label_file: str | None = option(None, group=NOISE_GROUP,
                                    help="train on another RAF-DB label file (e.g. noise03.txt)")
    noise_rate: float = option(0.0, group=NOISE_GROUP, help="inject symmetric label noise at this rate (0: none)")
    noise_seed: int = option(0, group=NOISE_GROUP, help="seed of the injected noise")
    # part of train held out per class (seeded with ``seed``) for `eacfer calibrate --split val`; 0 = none (the
    # paper's protocol, which trains on all of train)
    val_fraction: float = option(0.0, metavar="F", help=(
        "hold out this fraction of train per class (seeded by --seed) for `eacfer calibrate --split val`; for "
        "datasets without a validation split (RAF-DB). Default 0 (the paper's protocol; not allowed with --recipe "
        "paper)"))
    # datasets (eacfer.data.formats): FERPlus/AffectNet class count (7 drops contempt), FERPlus label mode
    # (majority or probability = soft vote targets), training sampler (shuffle or class-balanced), and
    # AffectNet's face-crop cache folder (default under ~/.cache/eacfer)
    classes: int | None = option(None, group=DATASET_GROUP, choices=(7, 8), help=(
        "8 (default, with contempt) or 7 (drops contempt: AffectNet-7, FERPlus without contempt)"))
    label_mode: str = option("majority", group=DATASET_GROUP, choices=LABEL_MODES, help=(
        "FERPlus training labels: majority vote (default) or the vote distribution as soft cross-entropy targets "
        "(validation/test always use majority)"))
    sampler: str = option("shuffle", group=DATASET_GROUP, choices=SAMPLERS, help=(
        "shuffle (default) or class-balanced sampling with replacement (AffectNet practice)"))
    crop_cache: str | None = option(None, group=DATASET_GROUP, help=(
        "folder for AffectNet's cached face crops (default: ~/.cache/eacfer/affectnet/...)"))
    # on the command line, no --epochs means the paper's, or with --resume the run's own (commands/train.py)
    epochs: int = option(int(PAPER_RECIPE["epochs"]), cli_default=None, help=(
        f"epochs to train (default: {int(PAPER_RECIPE['epochs'])}; with --resume: the run's own, and a higher value "
        "trains a finished run on to that epoch)"))
    batch_size: int = option(int(PAPER_RECIPE["batch_size"]), help="training batch size")
    lr: float = option(float(PAPER_RECIPE["lr"]), help="Adam learning rate")
    weight_decay: float = option(float(PAPER_RECIPE["weight_decay"]), help="Adam weight decay")
    gamma: float = option(float(PAPER_RECIPE["gamma"]), help="ExponentialLR factor per epoch")
    lam: float = option(float(PAPER_RECIPE["lam"]), help="weight λ of the consistency loss")
    image_size: int = option(int(PAPER_RECIPE["image_size"]), help="input size in pixels (square)")
    noise_p: float = float(PAPER_RECIPE["noise_p"])
    noise_var: float = float(PAPER_RECIPE["noise_var"])
    erasing_scale: tuple[float, float] = (float(PAPER_RECIPE["erasing_scale_min"]), float(PAPER_RECIPE["erasing_scale_max"]))
    flip_view: str = option("auto", choices=("auto", "mirrored", "independent"), help=(
        "how the flipped view is built (auto: independent when train labels are noisy)"))
    workers: int = option(TRAIN_WORKERS, help=(
        "DataLoader worker processes that load and augment images beside training; the results do not depend on it "
        "(same seed, same run), only the speed (0: load in this process)"))
    device: str = option("auto", help="auto, cpu or cuda")
    amp: bool = option(False, help="mixed precision (CUDA only)")
    seed: int = option(int(PAPER_RECIPE["seed"]), help="seed of every random number generator")
    strict: bool = option(False, help="stop at the first broken image or label line")
    pipeline: str = option("auto", choices=PIPELINES, help=(
        "fast: decoded-image cache + on-GPU augmentation + the GPU generation's autocast (default on CUDA); "
        "reference: the faithful per-image CPU pipeline (default on CPU)"))
    eval_batch_size: int | None = None
    # fast pipeline only (eacfer.training.fast): torch.compile, how the two views go through the network
    # ("split" = two passes as the reference, "joint" = one 2N pass), SyncBatchNorm under DDP, and a
    # folder for the memory-mapped decoded-image cache
    compile: bool = option(False, group=FAST_GROUP, help=(
        "torch.compile the model (ignored with a warning below compute capability 7.0)"))
    views: str = option("split", group=FAST_GROUP, choices=VIEWS, help=(
        "split: x and x' in two forward passes, per-view BatchNorm statistics as the reference (default); joint: "
        "one pass over the 2N batch (faster, BatchNorm differs)"))
    sync_bn: bool = option(False, group=FAST_GROUP, help="SyncBatchNorm across GPUs under torchrun")
    cache_dir: str | None = option(None, group=FAST_GROUP, help=(
        "keep the decoded uint8 images as memory-mapped .npy files here (keyed by content; decoded straight into the "
        "file). Without it a set larger than half the free RAM goes to ~/.cache/eacfer/decoded"))
    # overrides of the fast path's device defaults (eacfer.training.fast.step.FastSettings), e.g. {"amp": False}
    fast_settings: dict[str, bool | str] = option(
        default_factory=dict, group=FAST_GROUP, cli_default="", parse=parse_fast_settings,
        metavar="KEY=on|off,...", help=(
            "override the fast path's device defaults (set by the GPU generation on CUDA, off on CPU): amp "
            "(autocast), amp_dtype=bf16|fp16, fused_adam, channels_last, cudnn_benchmark; e.g. amp=off to debug "
            "numerics"))
    resume: bool = option(False, help=(
        "continue from RUN_DIR/last.pt; a finished run is left as it is unless --epochs is higher"))
    force: bool = option(False, help="overwrite an existing run (with --resume: ignore config differences)")
    progress: bool = True  # on the command line: off with -q
    tensorboard: bool = option(True, flag="--no-tensorboard", help="do not write TensorBoard events")
    # Weights & Biases (eacfer.training.wandb_log; optional extra eacfer[wandb]): off unless a project is named
    wandb: str | None = option(None, group=WANDB_GROUP, metavar="PROJECT", help=(
        "log the run to this W&B project: config, per-epoch metrics, confusion matrix, CAMs of test faces, summary"))
    wandb_entity: str | None = option(None, group=WANDB_GROUP, help="W&B team or user (default: your default entity)")
    wandb_name: str | None = option(None, group=WANDB_GROUP, help="W&B run name (default: the run folder's name)")
    wandb_group: str | None = option(None, group=WANDB_GROUP, help="W&B group")
    # None: W&B decides (WANDB_MODE, else online)
    wandb_mode: str | None = option(None, group=WANDB_GROUP, choices=WANDB_MODES, help=(
        "default: $WANDB_MODE, else online. offline: write the W&B run into RUN_DIR/wandb/ (upload later with `wandb "
        "sync`). Every WANDB_* variable applies (a flag given wins over it)"))
    wandb_media_every: int = option(5, group=WANDB_GROUP, metavar="N", help=(
        "log the confusion matrix and the CAM grid every N epochs (and at the last)"))
    wandb_log_model: bool = option(False, group=WANDB_GROUP, help="upload model.pt as a W&B artifact (large)")
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise ValueError/FileNotFoundError with a one-line message for an unusable config."""
        from eacfer.data.transforms import FLIP_VIEWS
        from eacfer.models import list_backbones

        if not self.data:
            raise ValueError("--data is required")
        if self.recipe not in RECIPES:
            raise ValueError(f"--recipe must be one of {', '.join(RECIPES)}, got {self.recipe!r}")
        if not 0.0 <= self.val_fraction < 1.0:  # also refuses nan
            raise ValueError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        data = Path(self.data)
        if not data.exists():
            raise FileNotFoundError(f"{data}: dataset folder not found")
        if not data.is_dir() and self.format not in (None, "fer2013", "ferplus"):
            raise NotADirectoryError(f"{data}: not a folder (only a FER2013 / FERPlus CSV may be a file)")
        if self.classes is not None and self.classes not in (7, 8):
            raise ValueError(f"--classes must be 7 or 8, got {self.classes}")
        if self.label_mode not in LABEL_MODES:
            raise ValueError(f"--label-mode must be majority or probability, got {self.label_mode!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"--sampler must be shuffle or balanced, got {self.sampler!r}")
        if self.label_mode == "probability" and self.noise_rate:
            raise ValueError("--noise-rate replaces labels, so it needs --label-mode majority")
        out = Path(self.out)
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(f"{out}: --out exists and is a file, expected a run folder")
        check_pretrained(self.backbone, self.pretrained)  # early: no image or label file has been read yet
        if self.epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.eval_batch_size is not None and self.eval_batch_size < 1:
            raise ValueError(f"eval batch size must be at least 1, got {self.eval_batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"--lr must be a positive number, got {self.lr}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ValueError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"--gamma must be in (0, 1], got {self.gamma}")
        if not (self.lam >= 0 and math.isfinite(self.lam)):
            raise ValueError(f"--lam must be >= 0, got {self.lam}")
        if self.image_size < 16:
            raise ValueError(f"--image-size must be at least 16, got {self.image_size}")
        if self.workers < 0:
            raise ValueError(f"--workers must be >= 0, got {self.workers}")
        if self.method not in TRAINING_METHODS:
            raise ValueError(f"--method must be one of {', '.join(TRAINING_METHODS)}, got {self.method!r}")
        if self.flip_view != "auto" and self.flip_view not in FLIP_VIEWS:
            raise ValueError(f"--flip-view must be auto, {' or '.join(FLIP_VIEWS)}, got {self.flip_view!r}")
        if self.pipeline not in PIPELINES:
            raise ValueError(f"--pipeline must be one of {', '.join(PIPELINES)}, got {self.pipeline!r}")
        if self.views not in VIEWS:
            raise ValueError(f"--views must be split or joint, got {self.views!r}")
        if self.fast_settings:
            from eacfer.training.fast.step import FastSettings

            FastSettings.check_overrides(self.fast_settings)
        if self.label_file and self.noise_rate:
            raise ValueError("use either --label-file or --noise-rate, not both")
        if not 0.0 <= self.noise_rate < 1.0:
            raise ValueError(f"--noise-rate must be in [0, 1), got {self.noise_rate}")
        if self.label_file and not (
            Path(self.label_file).is_file() or (data / "EmoLabel" / str(self.label_file)).is_file()
        ):
            # a bare name (noise03.txt) is looked up in DATA/EmoLabel/, as load_split does
            raise FileNotFoundError(f"{self.label_file}: label file not found (also looked in {data / 'EmoLabel'})")
        if self.device not in ("auto", "cpu") and not str(self.device).startswith("cuda"):
            raise ValueError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        known = list_backbones()
        if self.backbone not in known and not self.backbone.startswith("timm:"):
            raise ValueError(f"unknown backbone {self.backbone!r}; known backbones: {', '.join(known)}")
        check_recipe(self)
        if self.wandb is not None:
            from eacfer.training.wandb_log import check_available

            if self.wandb_mode is not None and self.wandb_mode not in WANDB_MODES:
                raise ValueError(f"--wandb-mode must be one of {', '.join(WANDB_MODES)}, got {self.wandb_mode!r}")
            if not str(self.wandb).strip() or "/" in str(self.wandb):
                raise ValueError(f"--wandb takes a project name (entity apart, --wandb-entity), got {self.wandb!r}")
            if self.wandb_media_every < 1:
                raise ValueError(f"--wandb-media-every must be at least 1, got {self.wandb_media_every}")
            check_available()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["erasing_scale"] = list(self.erasing_scale)
        return d


def pretrained_default(backbone: str) -> str:
    """What ``--pretrained`` means when omitted, in words (for ``--help`` and the docs).

    Example:
        >>> pretrained_default("resnet18")
        'random initialisation'
    """
    if backbone in RECIPE_WEIGHTS:
        first = RECIPE_WEIGHTS[backbone].split(" (")[0]
        return f"required ({first}{', or a state_dict file' if first == 'imagenet' else ''}; or none)"
    return "random initialisation"


def check_pretrained(backbone: str, pretrained: str | None) -> None:
    """Refuse to train a backbone whose recipe assumes pretrained weights without an explicit choice.

    Example:
        >>> check_pretrained("resnet50_msceleb", "none")  # on purpose: allowed (and warned by the trainer)
        >>> check_pretrained("resnet50_msceleb", None)
        Traceback (most recent call last):
        ...
        ValueError: --backbone resnet50_msceleb needs --pretrained: the recipe starts from resnet50_ft_weight.pkl (MS-Celeb-1M; `eacfer weights` says where to get it); pass --pretrained FILE, or --pretrained none to train from random initialisation on purpose
    """
    if pretrained is None and backbone in RECIPE_WEIGHTS:
        raise ValueError(f"--backbone {backbone} needs --pretrained: the recipe starts from {RECIPE_WEIGHTS[backbone]}; "
                         f"pass --pretrained {'FILE' if backbone == 'resnet50_msceleb' else 'imagenet|FILE'}, or "
                         f"--pretrained {NO_WEIGHTS} to train from random initialisation on purpose")


def check_recipe(cfg: TrainConfig) -> None:
    """``recipe="paper"`` pins the official fp32 reference path: refuse options that leave it (one line)."""
    if cfg.recipe != "paper":
        return
    clashes = [name for name, on in (
        (f"--pipeline {cfg.pipeline}", cfg.pipeline == "fast"), ("--amp", cfg.amp), ("--compile", cfg.compile),
        ("--views joint", cfg.views == "joint"), ("--sync-bn", cfg.sync_bn), ("--fast-settings", bool(cfg.fast_settings)),
        # the paper trains on all of train: holding a part out for calibration leaves its protocol
        (f"--val-fraction {cfg.val_fraction:g}", cfg.val_fraction > 0),
    ) if on]
    if clashes:
        raise ValueError(f"--recipe paper runs the official fp32 reference pipeline; drop {', '.join(clashes)}")


def recipe_deviations(cfg: TrainConfig) -> list[str]:
    """Recipe hyper-parameters of ``cfg`` that differ from the paper's (recorded in ``config.yaml``).

    Example:
        >>> recipe_deviations(TrainConfig(data="d", out="o", epochs=3))
        ['epochs']
    """
    mine = {"epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr, "weight_decay": cfg.weight_decay,
            "gamma": cfg.gamma, "lam": cfg.lam, "image_size": cfg.image_size, "noise_p": cfg.noise_p,
            "noise_var": cfg.noise_var, "seed": cfg.seed}
    return [k for k, v in mine.items() if k in PAPER_RECIPE and float(v) != float(PAPER_RECIPE[k])]
