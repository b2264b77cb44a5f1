"""Weights & Biases logging of a training run (optional extra ``eacfer[wandb]``).

:func:`open_tracker` gives the trainer a :class:`WandbTracker` when ``TrainConfig.wandb`` names a project
(else a :class:`NullTracker` that does nothing). What is logged: the run config (exactly ``config.yaml``),
one history row per epoch (train/test accuracy, mean-class accuracy, losses incl. the consistency term,
learning rate, images/s), the test confusion matrix, a grid of test faces with their class-activation
maps every ``wandb_media_every`` epochs and at the end, the final summary, and ``model.pt`` as an artifact
when ``wandb_log_model`` is set.

W&B's environment variables (``WANDB_MODE``, ``WANDB_NAME``, ``WANDB_RUN_ID``, ``WANDB_DIR``, ...) work as W&B
documents them: a ``--wandb-*`` flag that is given wins (as ``wandb.init`` arguments do), and where eacfer
would fill in a value of its own (the run name, the id, the job type, ``RUN_DIR`` as the folder...) a set
variable wins over it (:data:`ENV_OVERRIDES`); ``--wandb-mode`` is passed only when given.

The W&B run id is stored in ``RUN_DIR/wandb_run.json``, so ``--resume`` continues the same W&B run. Only
the trainer's main process (rank 0 under torchrun) opens a tracker. Logging never stops training: any
W&B failure (no network, bad key, quota) is logged once as a warning and the tracker turns itself off;
CSV and TensorBoard logging go on.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eacfer.utils.atomic import write_json

log = logging.getLogger(__name__)

ID_FILE = "wandb_run.json"
EXTRA_HINT = "W&B logging needs the optional extra: pip install 'eacfer[wandb]'"
N_FACES = 8  # test faces in the CAM grid
#: ``wandb.init`` arguments eacfer fills in itself, each with the W&B environment variable that sets the same
#: thing (W&B's settings read ``WANDB_<SETTING>``): when that variable is set, eacfer's own value is not passed.
ENV_OVERRIDES = {"name": "WANDB_NAME", "job_type": "WANDB_JOB_TYPE", "dir": "WANDB_DIR", "reinit": "WANDB_REINIT",
                 "resume": "WANDB_RESUME"}


def check_available() -> None:
    """Raise a one-line error (ValueError: the CLI's exit 2) naming the extra when ``wandb`` is not installed.

    Nothing is imported: ``find_spec`` only looks.

    Example:
        >>> check_available()  # doctest: +SKIP
    """
    if importlib.util.find_spec("wandb") is None:
        raise ValueError(f"--wandb: the wandb package is not installed. {EXTRA_HINT}")


class NullTracker:
    """The tracker of a run without W&B: every call does nothing."""

    def epoch(self, row: dict[str, Any], extra: dict[str, Any], ev: dict[str, Any], model: Any) -> None:
        """Log one epoch (nothing here)."""

    def finish(self, summary: dict[str, Any], model_path: Path | None, ok: bool = True) -> None:
        """Close the run (nothing here)."""


class WandbTracker(NullTracker):
    """One W&B run mirroring one eacfer run folder (see the module docstring).

    Example:
        >>> t = WandbTracker(run_dir, config, project="eac", mode="offline", class_names=names,  # doctest: +SKIP
        ...                  faces=faces, resume=False)
        >>> t.epoch(row, {"images_per_s": 310.0}, ev, model)                                    # doctest: +SKIP
        >>> t.finish(summary, run_dir / "model.pt")                                             # doctest: +SKIP
    """

    def __init__(
        self,
        run_dir: Path,
        config: dict[str, Any],
        *,
        project: str,
        class_names: Sequence[str],
        faces: Callable[[], tuple[torch.Tensor, np.ndarray, np.ndarray]] | None = None,
        entity: str | None = None,
        name: str | None = None,
        group: str | None = None,
        mode: str | None = None,
        resume: bool = False,
        media_every: int = 5,
        log_model: bool = False,
        epochs: int = 0,
    ):
        self.run: Any = None
        self.class_names = list(class_names)
        self.faces, self.media_every, self.log_model, self.epochs = faces, max(1, int(media_every)), log_model, epochs
        self._warned = False
        self._guard("start", lambda: self._start(Path(run_dir), config, project, entity, name, group, mode, resume))

    # ------------------------------------------------------------ the failure rule

    def _guard(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one W&B call; a failure becomes one warning and switches W&B off for the rest of the run."""
        if what != "start" and self.run is None:
            return None
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 — whatever W&B raises (network, auth, quota), training goes on
            if not self._warned:
                log.warning("W&B logging failed (%s: %s: %s); training continues without it (metrics.csv and "
                            "TensorBoard are unaffected)", what, type(e).__name__, str(e).splitlines()[0] if str(e) else "")
                self._warned = True
            run, self.run = self.run, None
            if run is not None:
                try:
                    run.finish(exit_code=1)
                except Exception:  # noqa: BLE001 — already failing; nothing more to report
                    pass
            return None

    def _start(self, run_dir: Path, config: dict[str, Any], project: str, entity: str | None, name: str | None,
               group: str | None, mode: str | None, resume: bool) -> None:
        import os

        import wandb

        id_file = run_dir / ID_FILE
        saved = _read_id(id_file) if resume else None
        # WANDB_RUN_ID names the run when set (sweeps, launchers); the file records the id W&B really uses
        run_id = os.environ.get("WANDB_RUN_ID") or saved or uuid.uuid4().hex[:12]
        if run_id != saved:
            write_json(id_file, {"id": run_id, "project": project, "entity": entity})
        kw = init_arguments(run_dir, run_id, config, project=project, entity=entity, name=name, group=group,
                            mode=mode, resumed=saved is not None)
        self.run = wandb.init(**kw)
        if saved:
            self.run.config.update(config, allow_val_change=True)
        self.run.define_metric("epoch")
        self.run.define_metric("*", step_metric="epoch")
        log.info("W&B run %s (%s, project %s%s)", self.run.id, getattr(self.run.settings, "mode", mode), project,
                 ", resumed" if saved else "")

    # ------------------------------------------------------------ what is logged

    def epoch(self, row: dict[str, Any], extra: dict[str, Any], ev: dict[str, Any], model: Any) -> None:
        """Log epoch ``row["epoch"]``: metrics always, confusion matrix and CAM grid every ``media_every`` epochs."""
        epoch = int(row["epoch"])
        media = epoch % self.media_every == 0 or epoch == self.epochs

        def do() -> None:
            data: dict[str, Any] = {"epoch": epoch, **epoch_metrics(row, extra)}
            if media:
                data.update(self._media(ev, model))
            self.run.log(data, step=epoch)

        self._guard(f"epoch {epoch}", do)

    def _media(self, ev: dict[str, Any], model: Any) -> dict[str, Any]:
        import wandb

        out: dict[str, Any] = {}
        if ev.get("confusion") is not None:
            conf = np.asarray(ev["confusion"], dtype=np.int64)
            out["test/confusion"] = wandb.Table(columns=["truth", *self.class_names],
                                                data=[[c, *map(int, r)] for c, r in zip(self.class_names, conf, strict=True)])
        if self.faces is not None and model is not None:
            grid, captions = cam_grid(model, *self.faces(), self.class_names)
            out["test/cams"] = wandb.Image(grid, caption="; ".join(captions))
        return out

    def finish(self, summary: dict[str, Any], model_path: Path | None, ok: bool = True) -> None:
        """Write the final summary (and the model artifact when asked) and close the W&B run."""

        def do() -> None:
            import wandb

            for k, v in summary.items():
                if isinstance(v, (int, float, str, bool)) or v is None:
                    self.run.summary[k] = v
            if ok and self.log_model and model_path is not None and Path(model_path).is_file():
                art = wandb.Artifact(f"model-{self.run.id}", type="model",
                                     metadata={k: summary.get(k) for k in ("final_accuracy", "last5_mean_accuracy",
                                                                          "best_accuracy", "recipe", "pipeline")})
                art.add_file(str(model_path), name="model.pt")
                self.run.log_artifact(art)
            self.run.finish(exit_code=0 if ok else 1)
            self.run = None

        self._guard("finish", do)


def init_arguments(run_dir: Path, run_id: str, config: dict[str, Any], *, project: str, entity: str | None = None,
                   name: str | None = None, group: str | None = None, mode: str | None = None,
                   resumed: bool = False, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The ``wandb.init`` keywords of one run: what the user gave, plus eacfer's own values for what W&B's
    environment (``environ``, default ``os.environ``) does not set (:data:`ENV_OVERRIDES`).

    Example:
        >>> kw = init_arguments(Path("runs/a"), "abc", {}, project="p", environ={"WANDB_MODE": "offline"})
        >>> "mode" in kw, kw["name"], kw["job_type"], kw["dir"]
        (False, 'a', 'train', 'runs/a')
        >>> kw = init_arguments(Path("runs/a"), "abc", {}, project="p", mode="online",
        ...                     environ={"WANDB_NAME": "mine", "WANDB_JOB_TYPE": "eval"})
        >>> kw["mode"], "name" in kw, "job_type" in kw, kw["id"]
        ('online', False, False, 'abc')
    """
    import os

    env = os.environ if environ is None else environ
    kw: dict[str, Any] = {"project": project, "entity": entity, "name": name, "group": group, "mode": mode,
                          "id": run_id, "config": config}
    own = {"name": run_dir.name, "job_type": "train",
           "dir": str(run_dir),  # offline runs land in RUN_DIR/wandb/ (wandb sync RUN_DIR/wandb/offline-run-*)
           "reinit": "create_new",  # always a run of our own: never hand back (or log into) another active run
           "resume": "allow" if resumed else None}
    for key, value in own.items():
        if kw.get(key) is None and not env.get(ENV_OVERRIDES[key]):
            kw[key] = value
    return {k: v for k, v in kw.items() if v is not None}


def epoch_metrics(row: dict[str, Any], extra: dict[str, Any]) -> dict[str, float]:
    """An epoch's scalars under W&B names (``train/…``, ``test/…``, ``lr``, ``images_per_s``).

    Example:
        >>> epoch_metrics({"epoch": 1, "train_loss": 2.0, "test_accuracy": 0.5, "lr": 1e-4}, {"images_per_s": 9.0})
        {'train/loss': 2.0, 'test/accuracy': 0.5, 'lr': 0.0001, 'images_per_s': 9.0}
    """
    out: dict[str, float] = {}
    for k, v in row.items():
        if k == "epoch" or v is None:
            continue
        split, _, rest = k.partition("_")
        out[f"{split}/{rest}" if split in ("train", "test") else k] = float(v)
    out.update({k: float(v) for k, v in extra.items() if v is not None})
    return out


@torch.no_grad()
def cam_grid(model: torch.nn.Module, x: torch.Tensor, images: np.ndarray, labels: np.ndarray,
             class_names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """A row of test faces over their CAM overlays (predicted class), as one H×W×3 uint8 image.

    ``x`` is the normalised network input (N×3×S×S), ``images`` the same faces as N×S×S×3 uint8.
    Evaluated in fp32, in eval mode; the model's train/eval mode is restored afterwards.
    """
    from matplotlib import colormaps

    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        logits, cams = model.forward_with_cams(x.to(device=device, dtype=torch.float32))
    finally:
        model.train(was_training)
    pred = logits.argmax(1)
    cam = cams[torch.arange(len(pred)), pred].float()[:, None]
    cam = torch.nn.functional.interpolate(cam, size=images.shape[1:3], mode="bilinear", align_corners=False)[:, 0]
    lo = cam.flatten(1).min(1).values[:, None, None]
    hi = cam.flatten(1).max(1).values[:, None, None]
    cam = ((cam - lo) / (hi - lo).clamp_min(1e-8)).cpu().numpy()
    heat = (colormaps["jet"](cam)[..., :3] * 255).astype(np.float32)
    overlay = (0.55 * images.astype(np.float32) + 0.45 * heat).astype(np.uint8)
    grid = np.concatenate([np.concatenate(list(images), axis=1), np.concatenate(list(overlay), axis=1)], axis=0)
    pairs = zip(labels.tolist(), pred.tolist(), strict=True)
    captions = [f"{i}: {class_names[int(t)]}→{class_names[int(p)]}" for i, (t, p) in enumerate(pairs)]
    return grid, captions


def face_sampler(test_ds: Any, image_size: int, mean: Sequence[float], std: Sequence[float],
                 n: int = N_FACES) -> Callable[[], tuple[torch.Tensor, np.ndarray, np.ndarray]]:
    """The fixed test faces of the CAM grid (spread over the test set; decoded once, on first use)."""
    cache: list[tuple[torch.Tensor, np.ndarray, np.ndarray]] = []

    def get() -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        if not cache:
            from eacfer.data.resample import resize_uint8
            from eacfer.data.transforms import EvalTransform

            idx = np.linspace(0, len(test_ds) - 1, num=min(n, len(test_ds))).round().astype(int)
            tf = EvalTransform(image_size, mean, std)
            raw = [test_ds.image(int(i)) for i in idx]
            x = torch.stack([tf(im) for im in raw])
            shown = np.stack([resize_uint8(torch.from_numpy(np.array(im)).permute(2, 0, 1), image_size)
                              .permute(1, 2, 0).numpy() for im in raw])
            cache.append((x, shown, test_ds.labels()[idx]))
        return cache[0]

    return get


def _read_id(path: Path) -> str | None:
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))["id"]) or None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def open_tracker(cfg: Any, run_dir: Path, config: dict[str, Any], *, class_names: Sequence[str], test_ds: Any,
                 mean: Sequence[float], std: Sequence[float], resume: bool) -> NullTracker:
    """The run's tracker: a :class:`WandbTracker` when ``cfg.wandb`` names a project, else a :class:`NullTracker`."""
    if not getattr(cfg, "wandb", None):
        return NullTracker()
    faces = face_sampler(test_ds, cfg.image_size, mean, std) if test_ds is not None and len(test_ds) else None
    return WandbTracker(run_dir, config, project=cfg.wandb, class_names=class_names, faces=faces,
                        entity=cfg.wandb_entity, name=cfg.wandb_name, group=cfg.wandb_group, mode=cfg.wandb_mode,
                        resume=resume, media_every=cfg.wandb_media_every, log_model=cfg.wandb_log_model,
                        epochs=cfg.epochs)


__all__ = ["ID_FILE", "ENV_OVERRIDES", "NullTracker", "WandbTracker", "check_available", "open_tracker",
           "init_arguments", "epoch_metrics", "cam_grid"]
