"""``train(cfg)``: a full EAC (or CE-baseline) run with its run directory, resume and summary.

RUN_DIR holds ``config.yaml`` (resolved config), ``metrics.csv`` (one row per epoch), ``last.pt``
(everything needed to resume, atomic every epoch), ``model.pt`` (self-describing inference model),
``summary.json``, ``train_labels_used.txt`` (official label format) and ``tb/`` (TensorBoard events
when tensorboard is installed). Defaults are the paper's recipe (:data:`eacfer.constants.PAPER_RECIPE`).

Determinism: every RNG is seeded, the training DataLoader draws its shuffling and worker seeds from an
explicit ``torch.Generator``, and ``last.pt`` stores all RNG states *after* the epoch's evaluation, so
a run killed at any point and resumed ends with exactly the metrics and weights of an uninterrupted
run (on CPU, same seed).
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from eacfer.training.config import (  # noqa: F401  (re-exported: the trainer's public names)
    CONVERTED_ON_RESUME,
    LAST5,
    METRIC_COLUMNS,
    NO_WEIGHTS,
    PIPELINES,
    RECIPE_WEIGHTS,
    RESUME_DEFAULTS,
    RESUME_KEYS,
    RUN_FILES,
    SOFT_RESUME_KEYS,
    TrainConfig,
    recipe_deviations,
)
from eacfer.training.run_data import TrainData, build_datasets, write_used_labels
from eacfer.training.sinks import (
    EpochLog,
    EpochSink,
    LastCheckpoint,
    RunFiles,
    TensorBoard,
    WandbRun,
    ran_as,
    summarize,
)
from eacfer.training.wandb_log import NullTracker, open_tracker
from eacfer.utils.atomic import write_json, write_text
from eacfer.utils.seed import restore_rng_state, seed_everything

log = logging.getLogger(__name__)


def weights_arg(pretrained: str | None) -> str | None:
    """``--pretrained`` as :func:`eacfer.create_model` takes it (``"none"`` → ``None``, random init).

    Example:
        >>> weights_arg("none"), weights_arg("imagenet")
        (None, 'imagenet')
    """
    return None if pretrained in (None, NO_WEIGHTS) else pretrained


# ---------------------------------------------------------------- run directory


def prepare_run_dir(cfg: TrainConfig, write: bool = True) -> Path:
    """Create RUN_DIR, refusing to clobber an existing run unless ``resume`` or ``force``.

    ``write=False`` (DDP ranks other than 0) makes the same checks without creating or deleting anything.
    """
    run = Path(cfg.out)
    if run.exists() and not run.is_dir():
        raise NotADirectoryError(f"{run}: --out exists and is a file, expected a run folder")
    if write:
        run.mkdir(parents=True, exist_ok=True)
    finished = (run / "model.pt").exists()
    unfinished = (run / "last.pt").exists() and not finished
    if cfg.force and not cfg.resume:
        for name in RUN_FILES if write else ():
            (run / name).unlink(missing_ok=True)
        if write:
            shutil.rmtree(run / "tb", ignore_errors=True)
    elif not cfg.resume and finished:
        raise FileExistsError(f"{run}: holds a finished run (model.pt); use --force to overwrite or another --out")
    elif not cfg.resume and unfinished:
        raise FileExistsError(f"{run}: holds an unfinished run (last.pt); use --resume to continue or --force to start over")
    return run


def _check_resumable(saved: dict[str, Any], current: dict[str, Any], path: Path, force: bool) -> None:
    # a key missing on either side (a config from before the option existed) means its default
    diffs = [f"{k}: {saved.get(k, RESUME_DEFAULTS.get(k))!r} -> {current.get(k, RESUME_DEFAULTS.get(k))!r}"
             for k in RESUME_KEYS if saved.get(k, RESUME_DEFAULTS.get(k)) != current.get(k, RESUME_DEFAULTS.get(k))]
    if diffs and not force:
        raise ValueError(f"{path}: checkpoint is from a different run ({'; '.join(diffs)}); use --force to resume anyway")
    if diffs:
        log.warning("resuming despite config differences (--force): %s", "; ".join(diffs))
    soft = [k for k in SOFT_RESUME_KEYS if k in current and k in saved and saved[k] != current[k]]
    if soft:
        log.warning("resuming with changed %s: the result will not match an uninterrupted run", ", ".join(soft))
    was = dict(saved)
    if isinstance(was.get("fast_settings_effective"), dict):  # recorded before amp_dtype existed: bf16 was the only one
        was["fast_settings_effective"] = {"amp_dtype": "bfloat16", **was["fast_settings_effective"]}
    converted = [f"{k} {was[k]!r} -> {current[k]!r}" for k in CONVERTED_ON_RESUME
                 if k in current and k in was and was[k] != current[k]]
    if converted:  # the optimizer state is converted (numerics.load_optimizer_state); the numerics change
        log.warning("resuming with another %s: optimizer state converted; results will differ from an "
                    "uninterrupted run", "; ".join(converted))


def resolved_config(cfg: TrainConfig, data: TrainData, device: torch.device, amp: bool) -> dict[str, Any]:
    """The full config as written to ``config.yaml`` (and stored in checkpoints)."""
    from eacfer import __version__

    d = cfg.to_dict()
    d.pop("resume"), d.pop("force"), d.pop("progress")  # how this invocation ran, not what the run is
    d.update(
        data=str(Path(cfg.data).resolve()),
        label_file=str(Path(cfg.label_file).resolve()) if cfg.label_file else None,
        pretrained=str(cfg.pretrained) if cfg.pretrained else NO_WEIGHTS,  # never silently random
        recipe_deviations=recipe_deviations(cfg),
        cudnn_deterministic=cfg.recipe == "paper",  # applies on CUDA
        eval_dtype="float32",
        format=data.format,
        flip_view=data.flip_view,
        flip_view_requested=cfg.flip_view,
        noisy_labels=data.noisy,
        class_names=list(data.class_names),
        num_classes=len(data.class_names),
        train_images=len(data.train),
        test_images=len(data.test),
        skipped_train_images=len(data.train.skipped),
        skipped_test_images=len(data.test.skipped),
        label_problems=len(data.problems),
        dropped_rows=data.dropped,
        labels_changed_by_noise=data.labels_changed,
        device=str(device),
        amp_effective=amp,
        eacfer_version=__version__,
        torch_version=str(torch.__version__),
    )
    return d


# ---------------------------------------------------------------- the run


def resolve_pipeline(cfg: TrainConfig, device: torch.device) -> TrainConfig:
    """``auto`` → ``fast`` on CUDA, ``reference`` on CPU; multi-process (torchrun) runs need ``fast``.

    Example:
        >>> resolve_pipeline(TrainConfig(data="d", out="o"), torch.device("cpu")).pipeline
        'reference'
    """
    from dataclasses import replace

    from eacfer.training.fast.distributed import env_world

    if cfg.recipe == "paper":  # the official fp32 reference path, whatever the device
        pipeline = "reference"
    else:
        pipeline = cfg.pipeline if cfg.pipeline != "auto" else ("fast" if device.type == "cuda" else "reference")
    # soft (vote) targets and the class-balanced sampler exist in the reference pipeline only
    needs_reference = [o for o, on in (("--label-mode probability", cfg.label_mode != "majority"),
                                        ("--sampler balanced", cfg.sampler != "shuffle")) if on]
    if needs_reference and pipeline == "fast":
        if cfg.pipeline == "fast":
            raise ValueError(f"{' and '.join(needs_reference)} need --pipeline reference")
        pipeline = "reference"
    if env_world()[2] > 1 and pipeline != "fast":
        raise ValueError("multi-process training (torchrun, WORLD_SIZE > 1) needs --pipeline fast"
                         + (" (not --recipe paper)" if cfg.recipe == "paper" else ""))
    return replace(cfg, pipeline=pipeline)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train, evaluate every epoch, write RUN_DIR; returns the summary dict (also in ``summary.json``).

    Under ``torchrun`` (fast pipeline) every process calls this; only rank 0 writes files.

    Example:
        >>> summary = train(TrainConfig(data="data/RAF-DB", out="runs/eac"))  # doctest: +SKIP
        >>> summary["last5_mean_accuracy"]                                     # doctest: +SKIP
    """
    import contextlib

    from eacfer.training import runstate
    from eacfer.training.fast import distributed as fd
    from eacfer.training.numerics import exact_fp32
    from eacfer.utils.device import resolve_device
    from eacfer.utils.runlock import RunLock

    cfg.validate()
    cfg = resolve_pipeline(cfg, resolve_device(cfg.device))
    dist_info = fd.setup(cfg.device) if cfg.pipeline == "fast" else fd.DistInfo(device=resolve_device(cfg.device))
    try:  # one process at a time writes a run folder; a finished run resumed is left untouched
        with RunLock(cfg.out, what="training run") if dist_info.is_main else contextlib.nullcontext():
            done = runstate.finished_summary(Path(cfg.out), cfg.epochs) if cfg.resume else None
            if done is not None:
                _check_finished_is_this_run(Path(cfg.out), cfg)
                log.info("%s", done["message"])
                return done
            with exact_fp32(cfg.recipe == "paper"):  # the paper's fp32: no TF32 on A100/H100 either
                return _train(cfg, dist_info)
    finally:
        fd.teardown(dist_info)


def _check_finished_is_this_run(run: Path, cfg: TrainConfig) -> None:
    """A finished run resumed with another experiment's identity (backbone, data, labels, method…) is the
    same mistake as resuming its checkpoint with them: refused unless ``--force``, even though nothing
    would be trained (otherwise the user believes the other experiment is done)."""
    import yaml

    try:
        saved = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return
    current = cfg.to_dict()
    current["data"] = str(Path(cfg.data).resolve())
    if cfg.label_file:  # a bare name (noise03.txt) means DATA/EmoLabel/noise03.txt, as load_split reads it
        lf = Path(cfg.label_file)
        current["label_file"] = str((lf if lf.is_file() else Path(cfg.data) / "EmoLabel" / lf).resolve())
    # flip_view is recorded resolved (the data's view, e.g. "horizontal") and as asked ("flip_view_requested"):
    # the option compares with what was asked
    current["flip_view"] = saved.get("flip_view") if cfg.flip_view == saved.get("flip_view_requested", cfg.flip_view) \
        else cfg.flip_view
    keys = [k for k in RESUME_KEYS if k not in ("class_names", "format")]  # known only after reading the data
    _check_resumable(saved, {k: current.get(k) for k in keys} | {k: current[k] for k in SOFT_RESUME_KEYS if k in current}
                     | {k: saved.get(k) for k in ("class_names", "format")}, run / "last.pt", cfg.force)


def configure_cudnn(recipe: str, device: torch.device) -> None:
    """No cuDNN autotuning (reproducible kernel choice); deterministic kernels under ``recipe="paper"``.

    (The fast pipeline may turn autotuning back on through its settings.)
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = recipe == "paper"


def _train(cfg: TrainConfig, dist_info: Any) -> dict[str, Any]:
    """The run itself (see :func:`train`); ``dist_info`` is this process's place in a DDP job."""
    from eacfer.checkpoint import save_model
    from eacfer.modelinfo import ModelInfo
    from eacfer.models import create_model, get_backbone_spec
    from eacfer.training import runstate
    from eacfer.training.fast import distributed as fd
    from eacfer.training.pipelines import make_pipeline

    main = dist_info.is_main
    run = prepare_run_dir(cfg, write=main)
    fd.barrier(dist_info)
    device = dist_info.device
    _warn_unused_options(cfg, device, main)
    configure_cudnn(cfg.recipe, device)
    seed_everything(cfg.seed)
    data = build_datasets(cfg)
    spec = get_backbone_spec(cfg.backbone)
    model = create_model(cfg.backbone, num_classes=len(data.class_names),
                         pretrained=weights_arg(cfg.pretrained)).to(device)
    generator = torch.Generator().manual_seed(cfg.seed)  # the training order; its state is in last.pt
    pipeline = make_pipeline(cfg, model, data, spec, dist_info, generator)
    optimizer = pipeline.make_optimizer(model.parameters(), cfg.lr, cfg.weight_decay)  # fused Adam on CUDA (fast)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.gamma)
    scaler = pipeline.make_scaler()  # fp16 autocast keeps a GradScaler
    config = resolved_config(cfg, data, device, pipeline.amp)
    config.update(world_size=dist_info.world_size)
    config.update(pipeline.record())
    if main:
        log.info("precision: %s (%s)", {True: "fp16"}.get(config["amp_effective"], config["amp_effective"]) or "fp32",
                 config["precision_reason"])
    config["segments"] = runstate.new_segments(cfg.epochs)
    history, start_epoch, config = _resume_state(cfg, run, config, model, optimizer, scheduler, scaler, generator)
    skipped = len(data.train.skipped) + len(data.test.skipped)
    sinks: list[EpochSink] = []  # under DDP only rank 0 writes files and logs epochs
    checkpoint, tracker = None, NullTracker()
    if main:
        sinks, checkpoint, tracker = _open_sinks(cfg, run, config, data, spec, model, optimizer, scheduler, scaler,
                                                 generator, pipeline.amp, skipped, start_epoch)
    log.info("training %s (%s) on %d images (%s, flip view %s), testing on %d, device %s, epochs %d..%d",
             cfg.backbone, cfg.method, len(data.train), data.format, data.flip_view, len(data.test), device,
             start_epoch, cfg.epochs)
    epoch, completed = start_epoch, False
    try:
        for epoch in range(start_epoch, cfg.epochs + 1):
            t0 = time.perf_counter()
            lr = float(optimizer.param_groups[0]["lr"])
            tr = pipeline.train_epoch(optimizer, epoch=epoch, method=cfg.method, lam=cfg.lam, progress=cfg.progress,
                                      scaler=scaler)
            scheduler.step()  # ExponentialLR is stepped once per epoch, as in the paper
            ev = pipeline.evaluate(data.class_names)  # fp32; the fast pipeline's is global over every rank's shard
            row = {"epoch": epoch, **{k: tr[k] for k in ("train_loss", "train_ce", "train_consistency", "train_accuracy")},
                   "test_accuracy": ev["accuracy"], "test_mean_class_accuracy": ev["mean_class_accuracy"], "lr": lr,
                   "seconds": time.perf_counter() - t0}
            history.append(row)
            for sink in sinks:  # rank 0 only: log line, metrics.csv + summary.json, last.pt, TensorBoard, W&B
                sink.epoch(row, history, tr, ev)
        completed = True
    except KeyboardInterrupt:  # say where it stopped and what can be resumed (the CLI prints it)
        saved = checkpoint.saved if checkpoint is not None else start_epoch - 1
        last = run / "last.pt"
        raise runstate.TrainingInterrupted(run, epoch, cfg.epochs, saved, last if saved and last.exists() else None) from None
    finally:
        for sink in sinks:
            sink.close(history, completed)

    summary = summarize(history, skipped, cfg.epochs, finished=True)
    summary.update(skipped_entries=len(data.problems), **ran_as(config))
    final = {k: summary[k] for k in ("final_accuracy", "final_mean_class_accuracy", "best_accuracy", "best_epoch",
                                     "last5_mean_accuracy", "last5_mean_epochs")}
    info = ModelInfo(backbone=cfg.backbone, class_names=list(data.class_names), input_size=cfg.image_size,
                     mean=list(spec.mean), std=list(spec.std), train_config=config, metrics=final,
                     face_size=data.train.face_size)
    summary.update(run_dir=str(run), model=str(run / "model.pt"))
    if main:
        save_model(run / "model.pt", model, info)
        write_json(run / "summary.json", summary)
    tracker.finish(summary, run / "model.pt")
    fd.barrier(dist_info)  # every rank returns once the run folder is complete
    n = summary["last5_mean_epochs"]
    tail = "last-5 mean" if n >= LAST5 else f"mean of the last {n} epoch(s), fewer than 5 ran"
    log.info("done: final test accuracy %.4f (best %.4f at epoch %s, %s %.4f); model %s",
             summary["final_accuracy"], summary["best_accuracy"], summary["best_epoch"], tail,
             summary["last5_mean_accuracy"], run / "model.pt")
    return summary


def _warn_unused_options(cfg: TrainConfig, device: torch.device, main: bool) -> None:
    if cfg.amp and device.type != "cuda":
        log.warning("--amp needs a CUDA device; training in float32 on %s", device)
    if cfg.fast_settings and cfg.pipeline != "fast":
        log.warning("--fast-settings only applies to --pipeline fast; ignored by the %s pipeline", cfg.pipeline)
    if cfg.pretrained == NO_WEIGHTS and main:
        log.warning("--pretrained none: %s trains from random initialisation, unlike the recipe%s", cfg.backbone,
                    f" (which starts from {RECIPE_WEIGHTS[cfg.backbone]})" if cfg.backbone in RECIPE_WEIGHTS else "")


def _resume_state(cfg: TrainConfig, run: Path, config: dict[str, Any], model: torch.nn.Module,
                  optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any,
                  generator: torch.Generator) -> tuple[list[dict[str, Any]], int, dict[str, Any]]:
    """With ``--resume`` and a ``last.pt``: load it into the model, optimizer, scheduler, scaler and RNGs;
    returns the history so far, the first epoch to run and the config as it runs from here."""
    from eacfer.checkpoint import CheckpointError, load_checkpoint
    from eacfer.training import numerics, runstate

    last_path = run / "last.pt"
    if not (cfg.resume and last_path.exists()):
        if cfg.resume:
            log.info("--resume: no %s yet, starting a new run", last_path)
        return [], 1, config
    state = load_checkpoint(last_path, map_location="cpu")
    if not isinstance(state.get("config"), dict):
        raise CheckpointError(f"{last_path}: not an eacfer training checkpoint (no run config); cannot resume")
    _check_resumable(state["config"], config, last_path, cfg.force)
    try:
        model.load_state_dict(state["model"])
        # converted to this run's optimizer (fused or not) and parameter layout (channels_last or not)
        numerics.load_optimizer_state(optimizer, state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history = [dict(r) for r in state["history"]]
        start_epoch = int(state["epoch"]) + 1
        restore_rng_state(state["rng"], {"train_loader": generator})
    except (KeyError, RuntimeError, TypeError, AttributeError, IndexError, ValueError) as e:
        # a damaged or foreign last.pt: one clear line naming the file, never a traceback
        raise CheckpointError(f"{last_path}: cannot resume from it ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    log.info("resuming %s after epoch %d", run, start_epoch - 1)
    return history, start_epoch, runstate.record_resume(state["config"], config, start_epoch)  # what really runs


def _open_sinks(cfg: TrainConfig, run: Path, config: dict[str, Any], data: TrainData, spec: Any,
                model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any,
                generator: torch.Generator, amp: bool, skipped: int,
                start_epoch: int) -> tuple[list[EpochSink], LastCheckpoint, Any]:
    """Rank 0: write ``config.yaml`` and the labels used, and open where the epochs go; also returns the
    ``last.pt`` sink (the epoch it holds) and the W&B tracker (closed by the trainer once ``model.pt`` exists)."""
    import yaml

    write_text(run / "config.yaml", yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    write_used_labels(run / "train_labels_used.txt", data.used_labels())
    checkpoint = LastCheckpoint(run / "last.pt", start_epoch - 1, model=model, optimizer=optimizer,
                                scheduler=scheduler, scaler=scaler, amp=amp, generator=generator, config=config)
    tb = TensorBoard.open(run, start_epoch) if cfg.tensorboard else None
    tracker = open_tracker(cfg, run, config, class_names=data.class_names, test_ds=data.test, mean=spec.mean,
                           std=spec.std, resume=cfg.resume)
    sinks: list[EpochSink] = [EpochLog(cfg.epochs, log), RunFiles(run, cfg.epochs, skipped, len(data.problems), config),
                              checkpoint, *([tb] if tb is not None else []), WandbRun(tracker, model, skipped, cfg.epochs)]
    return sinks, checkpoint, tracker


def read_metrics_csv(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """Read ``metrics.csv`` back as floats (``epoch`` as int).

    Example:
        >>> rows = read_metrics_csv("runs/demo/metrics.csv")  # doctest: +SKIP
    """
    with open(path, encoding="utf-8", newline="") as fh:
        return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()} for row in csv.DictReader(fh)]
