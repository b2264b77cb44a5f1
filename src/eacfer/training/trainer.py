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
import io
import logging
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from eacfer.training import engine
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
from eacfer.training.run_data import TrainData, build_datasets, make_loaders, write_used_labels
from eacfer.training.wandb_log import NullTracker, open_tracker
from eacfer.utils.atomic import write_json, write_text
from eacfer.utils.seed import capture_rng_state, restore_rng_state, seed_everything

log = logging.getLogger(__name__)


def weights_arg(pretrained: str | None) -> str | None:
    """``--pretrained`` as :func:`eacfer.create_model` takes it (``"none"`` → ``None``, random init).

    Example:
        >>> weights_arg("none"), weights_arg("imagenet")
        (None, 'imagenet')
    """
    return None if pretrained in (None, NO_WEIGHTS) else pretrained


def step_function(pipeline: str) -> engine.StepFn:
    """The per-batch step of a pipeline (looked up at call time so it can be swapped or wrapped)."""
    if pipeline == "reference":
        return engine.train_step
    raise ValueError(f"unknown pipeline {pipeline!r}; known: {', '.join(PIPELINES)}")


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


def _write_metrics_csv(path: Path, history: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(METRIC_COLUMNS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})  # repr: round-trip exact
    write_text(path, buf.getvalue())


def summarize(history: list[dict[str, Any]], skipped: int, epochs: int, finished: bool) -> dict[str, Any]:
    """The run summary from the per-epoch history.

    Example:
        >>> summarize([{"epoch": 1, "test_accuracy": 0.5, "test_mean_class_accuracy": 0.4, "seconds": 2.0}], 0, 1, True)["best_epoch"]
        1
    """
    if not history:
        return {"best_accuracy": None, "best_epoch": None, "last5_mean_accuracy": None, "last5_mean_epochs": 0,
                "final_accuracy": None,
                "final_mean_class_accuracy": None, "skipped_images": skipped, "epochs": 0,
                "epochs_planned": epochs, "seconds": 0.0, "finished": finished}
    accs = [float(r["test_accuracy"]) for r in history]
    best = max(range(len(accs)), key=lambda i: (accs[i], -i))  # first epoch reaching the best accuracy
    tail = accs[-LAST5:]
    return {
        "best_accuracy": accs[best],
        "best_epoch": int(history[best]["epoch"]),
        "last5_mean_accuracy": sum(tail) / len(tail),
        "last5_mean_epochs": len(tail),  # < 5 when fewer epochs ran: the mean is over these last epochs
        "final_accuracy": accs[-1],
        "final_mean_class_accuracy": float(history[-1]["test_mean_class_accuracy"]),
        "skipped_images": skipped,
        "epochs": int(history[-1]["epoch"]),
        "epochs_planned": epochs,
        "seconds": float(sum(float(r["seconds"]) for r in history)),
        "finished": finished,
    }


def ran_as(config: dict[str, Any]) -> dict[str, Any]:
    """What ``summary.json`` says about how the run was made (recipe, pipeline, precision, weights)."""
    return {"recipe": config.get("recipe"), "pipeline": config.get("pipeline"),
            "amp_effective": config.get("amp_effective"), "eval_dtype": config.get("eval_dtype"),
            "pretrained": config.get("pretrained")}


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


def _tensorboard(run: Path, enabled: bool, purge_step: int) -> Any:
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is an optional extra
        log.info("tensorboard not installed: no TensorBoard events (pip install 'eacfer[tensorboard]')")
        return None
    return SummaryWriter(log_dir=str(run / "tb"), purge_step=purge_step)


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
    import yaml

    from eacfer.checkpoint import load_checkpoint, save_checkpoint, save_model
    from eacfer.modelinfo import CheckpointError, ModelInfo
    from eacfer.models import create_model, get_backbone_spec
    from eacfer.training import numerics, runstate
    from eacfer.training.fast import distributed as fd

    main = dist_info.is_main
    run = prepare_run_dir(cfg, write=main)
    fd.barrier(dist_info)
    device = dist_info.device
    # the fast pipeline's autocast follows the GPU generation (FastSettings); the reference uses --amp (fp16)
    amp = bool(device.type == "cuda" and (cfg.amp or cfg.pipeline == "fast"))
    if cfg.amp and not amp:
        log.warning("--amp needs a CUDA device; training in float32 on %s", device)
    if cfg.fast_settings and cfg.pipeline != "fast":
        log.warning("--fast-settings only applies to --pipeline fast; ignored by the %s pipeline", cfg.pipeline)
    configure_cudnn(cfg.recipe, device)
    if cfg.pretrained == NO_WEIGHTS and main:
        log.warning("--pretrained none: %s trains from random initialisation, unlike the recipe%s", cfg.backbone,
                    f" (which starts from {RECIPE_WEIGHTS[cfg.backbone]})" if cfg.backbone in RECIPE_WEIGHTS else "")

    seed_everything(cfg.seed)
    data = build_datasets(cfg)
    spec = get_backbone_spec(cfg.backbone)
    model = create_model(cfg.backbone, num_classes=len(data.class_names),
                         pretrained=weights_arg(cfg.pretrained)).to(device)
    fast = None
    if cfg.pipeline == "fast":
        from eacfer.training.fast.runner import FastPipeline
        from eacfer.training.fast.step import FastSettings

        fast = FastPipeline(model, data.train, data.test, image_size=cfg.image_size, batch_size=cfg.batch_size,
                            eval_batch_size=cfg.eval_batch_size, flip_view=data.flip_view, noise_p=cfg.noise_p,
                            noise_var=cfg.noise_var, erasing_scale=cfg.erasing_scale, seed=cfg.seed,
                            dist_info=dist_info, mean=spec.mean, std=spec.std, views=cfg.views,
                            compile=cfg.compile, sync_bn=cfg.sync_bn, cache_dir=cfg.cache_dir,
                            settings=FastSettings.for_device(device, **cfg.fast_settings))
        optimizer = fast.make_optimizer(model.parameters(), cfg.lr, cfg.weight_decay)  # fused Adam on CUDA
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.gamma)
    if fast is not None:  # autocast as the device's policy (FastSettings) says; fp16 keeps a GradScaler
        amp = fast.settings.amp
    scaler = torch.amp.GradScaler("cuda", enabled=amp) if fast is None else fast.make_scaler()
    generator = torch.Generator().manual_seed(cfg.seed)
    if fast is None:
        train_loader, test_loader = make_loaders(cfg, data, generator, pin_memory=device.type == "cuda",
                                                 mean=spec.mean, std=spec.std)
    config = resolved_config(cfg, data, device, amp)
    config.update(world_size=dist_info.world_size)
    config.update(numerics.precision_record(device, fast.settings if fast is not None else None,
                                            fast is not None and fast.compiled, amp))
    if fast is not None:  # what the fast path actually runs with (device defaults + --fast-settings)
        config.update(fast_settings_effective=asdict(fast.settings))
    if main:
        log.info("precision: %s (%s)", {True: "fp16"}.get(config["amp_effective"], config["amp_effective"]) or "fp32",
                 config["precision_reason"])
    config["segments"] = runstate.new_segments(cfg.epochs)

    history: list[dict[str, Any]] = []
    start_epoch = 1
    last_path = run / "last.pt"
    if cfg.resume and last_path.exists():
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
        config = runstate.record_resume(state["config"], config, start_epoch)  # what really runs from here
    elif cfg.resume:
        log.info("--resume: no %s yet, starting a new run", last_path)

    if main:  # under DDP only rank 0 writes files
        write_text(run / "config.yaml", yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        write_used_labels(run / "train_labels_used.txt", data.used_labels())
    skipped = len(data.train.skipped) + len(data.test.skipped)
    skipped_entries = len(data.problems)  # label lines / entries refused before any decoding
    tb = _tensorboard(run, cfg.tensorboard and main, start_epoch)
    tracker = open_tracker(cfg, run, config, class_names=data.class_names, test_ds=data.test, mean=spec.mean,
                           std=spec.std, resume=cfg.resume) if main else NullTracker()  # W&B: rank 0 only
    completed = False
    step_fn = step_function(cfg.pipeline) if fast is None else None
    log.info("training %s (%s) on %d images (%s, flip view %s), testing on %d, device %s, epochs %d..%d",
             cfg.backbone, cfg.method, len(data.train), data.format, data.flip_view, len(data.test), device,
             start_epoch, cfg.epochs)
    epoch, saved = start_epoch, start_epoch - 1
    try:
        for epoch in range(start_epoch, cfg.epochs + 1):
            t0 = time.perf_counter()
            lr = float(optimizer.param_groups[0]["lr"])
            if fast is not None:
                tr = fast.train_epoch(optimizer, epoch=epoch, method=cfg.method, lam=cfg.lam, progress=cfg.progress,
                                      scaler=scaler)
            else:
                tr = engine.train_one_epoch(model, train_loader, optimizer, method=cfg.method, lam=cfg.lam,
                                            device=device, epoch=epoch, scaler=scaler, amp=amp, step_fn=step_fn,
                                            progress=cfg.progress)
            scheduler.step()  # ExponentialLR is stepped once per epoch, as in the paper
            if fast is not None:
                ev = fast.evaluate(data.class_names)  # global: every rank's shard
            else:  # reported numbers are evaluated in fp32 on every pipeline (autocast only trains)
                ev = engine.evaluate(model, test_loader, data.class_names, device=device, amp=False,
                                     progress=cfg.progress)
            row = {"epoch": epoch, **{k: tr[k] for k in ("train_loss", "train_ce", "train_consistency", "train_accuracy")},
                   "test_accuracy": ev["accuracy"], "test_mean_class_accuracy": ev["mean_class_accuracy"], "lr": lr,
                   "seconds": time.perf_counter() - t0}
            history.append(row)
            if not main:  # every rank has the global figures; one line per epoch is enough
                continue
            log.info("epoch %d/%d  loss %.4f (ce %.4f, cons %.5f)  train acc %.4f  test acc %.4f  mean-class %.4f  "
                     "%.0f img/s  %.1fs", epoch, cfg.epochs, row["train_loss"], row["train_ce"], row["train_consistency"],
                     row["train_accuracy"], row["test_accuracy"], row["test_mean_class_accuracy"], tr["images_per_s"],
                     row["seconds"])
            _write_metrics_csv(run / "metrics.csv", history)
            write_json(run / "summary.json", {**summarize(history, skipped, cfg.epochs, finished=False),
                                              "skipped_entries": skipped_entries, **ran_as(config)})
            # RNG states captured after evaluation: exactly the state the next epoch starts from.
            save_checkpoint(last_path, {
                "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if amp else {},
                "rng": capture_rng_state({"train_loader": generator}), "history": history, "config": config,
            })
            saved = epoch
            if tb is not None:
                for k in METRIC_COLUMNS[1:]:
                    tb.add_scalar(k.replace("_", "/", 1), float(row[k]), epoch)
                tb.flush()
            tracker.epoch(row, {"images_per_s": tr["images_per_s"]}, ev, model)
        completed = True
    except KeyboardInterrupt:  # say where it stopped and what can be resumed (the CLI prints it)
        raise runstate.TrainingInterrupted(run, epoch, cfg.epochs, saved,
                                           last_path if saved and last_path.exists() else None) from None
    finally:
        if tb is not None:
            tb.close()
        if not completed:  # interrupted or failed: close the W&B run (--resume continues it)
            tracker.finish(summarize(history, skipped, cfg.epochs, finished=False), None, ok=False)

    summary = summarize(history, skipped, cfg.epochs, finished=True)
    summary.update(skipped_entries=skipped_entries, **ran_as(config))
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


def read_metrics_csv(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """Read ``metrics.csv`` back as floats (``epoch`` as int).

    Example:
        >>> rows = read_metrics_csv("runs/demo/metrics.csv")  # doctest: +SKIP
    """
    with open(path, encoding="utf-8", newline="") as fh:
        return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()} for row in csv.DictReader(fh)]
