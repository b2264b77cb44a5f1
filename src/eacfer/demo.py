"""The demo (``eacfer demo`` / ``make demo``): synthesise a small RAF-DB-shaped set, train EAC briefly on CPU,
evaluate, and report where everything went.

The data are procedurally drawn faces (:mod:`eacfer.data.synth`), not real faces: the accuracy shows the
pipeline learns, not how well a model recognises human expressions. The steps are separate functions
so that later features (e.g. inference on a real face) can extend the demo.

A second demo in the same folder reuses the finished model trained with the same settings (and says so);
``retrain`` (``--retrain``) trains a new one. A model is never deleted before its replacement is finished:
the old run folder waits beside it as ``run.previous`` and comes back if training fails or is interrupted.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eacfer.training.trainer import TrainConfig

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

#: In the run folder: the :class:`DemoSettings` its model was trained with (written once it is finished).
MODEL_STAMP = "demo_settings.json"


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo; ``quick`` is a seconds-long smoke version (used by tests)."""

    n_train: int = 700
    n_test: int = 210
    synth_size: int = 48
    image_size: int = 48
    backbone: str = "resnet18"
    epochs: int = 8
    batch_size: int = 16  # from scratch, more updates per epoch matter more than larger batches
    lr: float = 1e-3  # random init (no pretrained weights offline): a larger step than the paper's 1e-4
    # Measured on the default demo set: with the paper's λ=5 a randomly initialised ResNet-18 kept predicting
    # the majority class for 6 epochs (the consistency term dominates CE while nothing is learned yet);
    # with λ=1 it learns (the paper's λ assumes a pretrained backbone). Real runs use --lam 5.
    lam: float = 1.0
    seed: int = 0

    @classmethod
    def quick(cls) -> DemoSettings:
        return cls(n_train=70, n_test=35, synth_size=40, image_size=32, epochs=1, batch_size=16)


@dataclass
class DemoResult:
    """Where the demo's outputs went and what it measured."""

    out: Path
    data_dir: Path
    run_dir: Path
    eval_dir: Path
    summary: dict[str, Any]
    eval_metrics: dict[str, Any]
    settings: DemoSettings
    seconds: dict[str, float] = field(default_factory=dict)
    inference: dict[str, Any] = field(default_factory=dict)  # run_inference_demo's report
    reused: bool = False  # the model of an earlier demo with the same settings (not trained this time)

    @property
    def chance(self) -> float:
        """Uniform guessing: 1/K."""
        return 1.0 / len(self.eval_metrics["class_names"])

    @property
    def majority(self) -> float:
        """Accuracy of always predicting the most frequent test class (synthetic classes follow RAF-DB's imbalance)."""
        rows = [sum(r) for r in self.eval_metrics["confusion"]]
        return max(rows) / max(1, sum(rows))


def make_demo_data(out: str | Path, settings: DemoSettings) -> Path:
    """Synthesise the demo dataset under ``out/data`` (reused when already complete for these settings).

    Example:
        >>> make_demo_data("runs/demo", DemoSettings.quick())  # doctest: +SKIP
        PosixPath('runs/demo/data')
    """
    import json

    from eacfer.data.synth import generate_rafdb
    from eacfer.utils.atomic import write_json

    data = Path(out) / "data"
    stamp = data / "demo_settings.json"
    want = {"n_train": settings.n_train, "n_test": settings.n_test, "size": settings.synth_size, "seed": settings.seed}
    if stamp.is_file():
        try:
            if json.loads(stamp.read_text(encoding="utf-8")) == want:
                log.info("reusing synthetic data in %s", data)
                return data
        except (OSError, ValueError):
            pass
    log.info("synthesising %d train + %d test faces (%d px) in %s", settings.n_train, settings.n_test,
             settings.synth_size, data)
    generate_rafdb(data, settings.n_train, settings.n_test, seed=settings.seed, size=settings.synth_size)
    write_json(stamp, want)
    return data


def demo_train_config(data_dir: Path, run_dir: Path, settings: DemoSettings, progress: bool = True) -> TrainConfig:
    """The EAC training config of the demo (CPU, small backbone, small input, fresh run each time)."""
    return TrainConfig(
        data=str(data_dir), out=str(run_dir), format="rafdb", backbone=settings.backbone, method="eac",
        epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr, lam=settings.lam,
        image_size=settings.image_size, pretrained="none",  # synthetic faces: random init on purpose
        workers=0, device="cpu", seed=settings.seed, force=True, progress=progress,
    )


def _settings_stamp(settings: DemoSettings) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(settings)


def finished_demo_model(run_dir: Path, settings: DemoSettings) -> dict[str, Any] | None:
    """The training summary of the finished demo model in ``run_dir`` when it was trained with ``settings``,
    else None (no model, unfinished, or other settings).

    Example:
        >>> finished_demo_model(Path("/nonexistent/run"), DemoSettings()) is None
        True
    """
    import json

    try:
        stamp = json.loads((run_dir / MODEL_STAMP).read_text(encoding="utf-8"))
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if stamp != _settings_stamp(settings) or not (run_dir / "model.pt").is_file() or not summary.get("finished"):
        return None
    return summary


def _previous(run_dir: Path) -> Path:
    return run_dir.with_name(run_dir.name + ".previous")


def _recover_interrupted_retrain(run_dir: Path) -> None:
    """After a demo killed while training a replacement: keep whichever model is finished.

    The replacement when it finished (only the old folder's removal was missed), else the previous model
    goes back in place of the partial run.
    """
    previous = _previous(run_dir)
    if not previous.is_dir():
        return
    if (run_dir / MODEL_STAMP).is_file() and (run_dir / "model.pt").is_file():
        shutil.rmtree(previous)
        return
    log.warning("%s: an earlier demo stopped while training a new model; restoring the previous one", run_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    previous.rename(run_dir)


def train_demo_model(data_dir: Path, run_dir: Path, settings: DemoSettings, progress: bool = True) -> dict[str, Any]:
    """Train the demo model into ``run_dir``; a run already there waits in ``run.previous`` until the new
    model is finished (then it is removed) and comes back if training fails or is interrupted.

    Example:
        >>> train_demo_model(Path("runs/demo/data"), Path("runs/demo/run"), DemoSettings.quick())  # doctest: +SKIP
    """
    from eacfer.training.trainer import train
    from eacfer.utils.atomic import write_json

    previous = _previous(run_dir)
    if run_dir.exists():
        run_dir.rename(previous)
    try:
        summary = train(demo_train_config(data_dir, run_dir, settings, progress))
        write_json(run_dir / MODEL_STAMP, _settings_stamp(settings))
    except BaseException:
        if previous.is_dir():
            shutil.rmtree(run_dir, ignore_errors=True)
            previous.rename(run_dir)
            log.warning("training stopped; the previous demo model is back in %s", run_dir)
        raise
    if previous.is_dir():
        shutil.rmtree(previous)
    return summary


def run_demo(out: str | Path = "runs/demo", epochs: int | None = None, quick: bool = False,
             progress: bool = True, retrain: bool = False) -> DemoResult:
    """Synthesise data, train EAC (or reuse the finished model of an earlier demo with the same settings,
    unless ``retrain``), evaluate the model on the test split; returns a :class:`DemoResult`.

    Example:
        >>> r = run_demo("runs/demo", quick=True)  # doctest: +SKIP
        >>> r.eval_metrics["accuracy"] > r.chance  # doctest: +SKIP
    """
    from dataclasses import replace

    settings = DemoSettings.quick() if quick else DemoSettings()
    if epochs is not None:
        if epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {epochs}")
        settings = replace(settings, epochs=epochs)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: --out exists and is a file, expected a folder")
    from eacfer.utils.runlock import RunLock

    with RunLock(out, what="demo"):  # one demo at a time per folder: run/ may be moved aside below
        return _run_demo(out, settings, quick, progress, retrain)


def _run_demo(out: Path, settings: DemoSettings, quick: bool, progress: bool, retrain: bool) -> DemoResult:
    from eacfer.training.evaluation import evaluate_checkpoint

    seconds: dict[str, float] = {}
    t = time.perf_counter()
    data_dir = make_demo_data(out, settings)
    seconds["synthesise"] = time.perf_counter() - t
    run_dir = out / "run"
    t = time.perf_counter()
    _recover_interrupted_retrain(run_dir)
    summary = None if retrain else finished_demo_model(run_dir, settings)
    reused = summary is not None
    if summary is not None:
        log.info("reusing the finished demo model %s (same settings; --retrain trains a new one)",
                 run_dir / "model.pt")
    else:
        if not retrain and (run_dir / "model.pt").is_file():
            log.warning("%s: trained with other demo settings (or by an older eacfer); training a new model, which "
                        "replaces it once finished (use another --out to keep both)", run_dir / "model.pt")
        summary = train_demo_model(data_dir, run_dir, settings, progress)
    seconds["train"] = time.perf_counter() - t
    t = time.perf_counter()
    eval_dir = out / "eval"
    metrics = evaluate_checkpoint(run_dir / "model.pt", data_dir, split="test", format="rafdb", out_dir=eval_dir,
                                  device="cpu", progress=progress)
    seconds["evaluate"] = time.perf_counter() - t
    t = time.perf_counter()
    inference = run_inference_demo(run_dir / "model.pt", out / "inference", frames=25 if quick else 75,
                                   progress=progress)
    inference["starter"] = starter_on_portrait()  # the same face with the bundled real-face model, for contrast
    seconds["inference"] = time.perf_counter() - t
    seconds["total"] = sum(seconds.values())
    return DemoResult(out=out, data_dir=data_dir, run_dir=run_dir, eval_dir=eval_dir, summary=summary,
                      eval_metrics=metrics, settings=settings, seconds=seconds, inference=inference, reused=reused)


def format_report(r: DemoResult) -> str:
    """A short human-readable report of a demo run."""
    s, m = r.settings, r.eval_metrics
    trained = (f"reused the model an earlier demo trained ({r.summary.get('seconds', 0):.0f} s; --retrain trains "
               "a new one)" if r.reused else f"{r.seconds.get('train', 0):.0f} s")
    lines = [
        "eacfer demo — EAC on SYNTHETIC faces (procedurally drawn, not real data)",
        f"  data      {s.n_train} train / {s.n_test} test images, {s.synth_size} px: {r.data_dir}",
        f"  training  {s.backbone} from scratch, {s.image_size} px, {s.epochs} epochs, EAC (λ={s.lam:g}), CPU: "
        f"{trained}",
        f"  accuracy  {m['accuracy']:.3f} on the test split (majority-class baseline {r.majority:.3f}); "
        f"mean-class accuracy {m['mean_class_accuracy']:.3f} (chance {r.chance:.3f})",
        "  per class " + ", ".join(f"{k} {'-' if v is None else f'{v:.2f}'}" for k, v in m["per_class"].items()),
        "outputs:",
        f"  model             {r.run_dir / 'model.pt'}",
        f"  training metrics  {r.run_dir / 'metrics.csv'}  (summary: {r.run_dir / 'summary.json'})",
        f"  run config        {r.run_dir / 'config.yaml'}",
        f"  test metrics      {r.eval_dir / 'metrics.json'}",
        f"  confusion matrix  {r.eval_dir / 'confusion.png'}",
        f"  predictions       {r.eval_dir / 'predictions.csv'}",
        f"total time {r.seconds.get('total', 0):.0f} s",
    ]
    if (r.run_dir / "tb").is_dir():
        lines.insert(-1, f"  TensorBoard       tensorboard --logdir {r.run_dir / 'tb'}")
    if r.inference:
        lines[-1:-1] = inference_report_lines(r.inference)
    return "\n".join(lines)


# --- inference on a real face (predict + video); added by the inference pipeline -------------------------
def run_inference_demo(model_path: str | Path, out_dir: str | Path, frames: int = 75,
                       progress: bool = True) -> dict[str, Any]:
    """Run ``predict`` on the bundled real face (NASA astronaut portrait, public domain) and ``video`` on a
    640×360 clip made from it (the face gliding across the frame); returns what was found and the FPS.

    The demo model is trained on synthetic faces, so its emotion for a real face means little: this step
    shows the detection → alignment → classification → tracking → video path end to end.

    Example:
        >>> d = run_inference_demo("runs/demo/run/model.pt", "runs/demo/inference")  # doctest: +SKIP
        >>> d["video"]["fps"] > 0                                                      # doctest: +SKIP
        True
    """
    from eacfer.data.imageio import load_image
    from eacfer.infer.jobs.photos import predict_paths
    from eacfer.infer.jobs.video import run_video
    from eacfer.infer.predictor import Predictor

    out = Path(out_dir)
    face = Path(__file__).parent / "assets" / "astronaut.jpg"
    with Predictor.from_checkpoint(model_path, device="cpu", cam=True) as predictor:
        pred = predict_paths(predictor, [face], out / "predict", save_images=True, cam=True, progress=False,
                             model_file=model_path, overwrite=True)
        r = predictor.predict(face)
        head = load_image(face)[10:270, 110:350]  # head and shoulders of the portrait
        clip = make_moving_face_clip(out / "astronaut_clip.mp4", head, frames=frames, size=(640, 360),
                                     face_height=220)
        vid = run_video(predictor, clip, out / "video", progress=progress)
    top = r.faces[0] if r.faces else None
    return {
        "backend": predictor.backend,
        "predict": {"image": str(face), "faces": pred["faces"], "emotion": top.emotion if top else None,
                    "probability": round(top.probability, 3) if top else None,
                    "csv": pred["outputs"]["csv"], "annotated": pred["outputs"]["annotated"]},
        "video": {"clip": str(clip), "frames": vid["frames"], "frames_with_faces": vid["frames_with_faces"],
                  "tracks": vid["tracks"], "fps": vid["fps"], "out": str(out / "video")},
    }


def starter_on_portrait() -> dict[str, Any]:
    """The bundled starter model (eacfer.infer.runtime.starter: FER2013 mini-Xception, not EAC) on the demo's real face.

    Example:
        >>> starter_on_portrait()["emotion"]  # doctest: +SKIP
        'Happiness'
    """
    from eacfer.infer.predictor import Predictor
    from eacfer.infer.runtime.starter import describe, starter_model_path

    with Predictor.from_checkpoint(starter_model_path(), device="cpu") as predictor:
        r = predictor.predict(Path(__file__).parent / "assets" / "astronaut.jpg")
        about = describe(predictor.classifier.info.provenance)
    top = r.faces[0] if r.faces else None
    return {"model": str(starter_model_path()), "about": about, "emotion": top.emotion if top else None,
            "probability": round(top.probability, 3) if top else None}


def inference_report_lines(d: dict[str, Any]) -> list[str]:
    """Report lines of :func:`run_inference_demo` (and of :func:`starter_on_portrait` when present)."""
    st = d.get("starter")
    starter = [
        "the same face with the bundled starter model (real faces; the default when no --checkpoint is given):",
        f"  starter model     {st['emotion']} ({st['probability']}) — {st['about']}; not an EAC model",
    ] if st else []
    if "predict" not in d:  # the EAC model's inference did not run (only the starter's line is reported)
        return starter
    p, v = d["predict"], d["video"]
    found = f"{p['faces']} face(s), top: {p['emotion']} ({p['probability']})" if p["faces"] else "no face found"
    return [
        "inference on a real face (NASA astronaut portrait, public domain; demo model, so labels are illustrative):",
        f"  predict           {found} -> {p['csv']}, annotated: {p['annotated']}",
        f"  video             {v['frames']} frames 640x360, {v['frames_with_faces']} with a face, {v['tracks']} track(s), "
        f"{v['fps']} FPS end-to-end ({d['backend']}) -> {v['out']}/annotated.mp4",
    ] + starter


def make_moving_face_clip(
    out: str | os.PathLike[str],
    face_rgb: np.ndarray,
    frames: int = 50,
    size: tuple[int, int] = (640, 360),
    fps: float = 25.0,
    second_face_from: int | None = None,
    face_height: int = 200,
) -> Path:
    """Write a synthetic MP4: ``face_rgb`` (a portrait, e.g. the bundled astronaut) gliding across a
    textured background; with ``second_face_from`` a mirrored copy appears from that frame on.

    The demo's clip (no video file needs to be shipped); tests and benchmarks reuse it. It lives with the
    demo, its product user, not in the inference package.

    Example:
        >>> make_moving_face_clip("clip.mp4", load_image(asset("astronaut.jpg")), frames=25)  # doctest: +SKIP
    """
    import cv2
    import numpy as np

    from eacfer.infer.jobs.writers import VideoWriter

    w, h = int(size[0]), int(size[1])
    scale = face_height / face_rgb.shape[0]
    face = cv2.resize(face_rgb, (max(1, int(face_rgb.shape[1] * scale)), face_height), interpolation=cv2.INTER_AREA)
    face = cv2.cvtColor(face, cv2.COLOR_RGB2BGR)
    fh, fw = face.shape[:2]
    if fh > h or fw > w:
        raise ValueError(f"face {fw}×{fh} does not fit a {w}×{h} clip; lower face_height")
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack([(xx * 200 // max(1, w)), (yy * 200 // max(1, h)), np.full_like(xx, 90)], -1).astype(np.uint8)
    with VideoWriter(out, fps, (w, h), codec="mp4v") as wr:
        for i in range(frames):
            frame = bg.copy()
            t = i / max(1, frames - 1)
            # glide left → right in the left half of the frame, gently up and down
            x = int((w // 2 - fw) * t) if second_face_from is not None else int((w - fw) * t)
            y = int((h - fh) * (0.5 + 0.3 * np.sin(2 * np.pi * t)))
            frame[y:y + fh, x:x + fw] = face
            if second_face_from is not None and i >= second_face_from:
                frame[(h - fh) // 2:(h - fh) // 2 + fh, w - fw - 10:w - 10] = face[:, ::-1]
            wr.write(frame)
    return Path(out)
