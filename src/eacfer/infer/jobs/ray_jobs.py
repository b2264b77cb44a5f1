"""``eacfer predict --ray`` / ``eacfer video --ray``: the same jobs on a Ray cluster (optional extra ``eacfer[ray]``).

The files still to do become a Ray Data dataset of blocks (``block_files`` files each); a pool of actors, each
holding one :class:`~eacfer.infer.predictor.Predictor` (the model is loaded once per actor; CPUs and GPUs per
actor are configurable), turns each block into rows with exactly the code of the one-machine path. The
driver receives the blocks in order and writes them through the same job object as ``eacfer predict``
(:class:`eacfer.infer.jobs.photos.PredictJob`), so the columns, the streamed ledger, resuming, the output-folder
rule and ``summary.json`` are the same; each block's rows are also kept as ``shards/part-<run>-<n>.csv``
(as received; ``predictions.csv`` is the merged file). Inputs must be readable at the same path from every
node (a shared filesystem); outputs are written by the driver (annotated copies by the actors, into
``--out``, which must then be shared too).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eacfer.infer.jobs.photos import ANNOTATED_DIR, PredictJob, rows_for, save_annotated
from eacfer.utils.atomic import write_text

log = logging.getLogger(__name__)

MISSING = "--ray needs Ray, an optional extra: pip install 'eacfer[ray]'"


def import_ray() -> Any:
    """``ray`` with Ray Data, or a one-line ``ValueError`` naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ValueError(MISSING) from None
    return ray


class PhotoActor:
    """A Ray actor: one Predictor, turning blocks of file names into ledger records (JSON strings)."""

    def __init__(self, model_file: str, predictor_options: dict[str, Any], cam: bool, out: str, save_images: bool):
        from eacfer.infer.predictor import Predictor

        self.p = Predictor.from_checkpoint(model_file, cam=cam, **predictor_options)
        self.names = list(self.p.class_names)
        self.cam, self.out, self.save_images = cam, Path(out), save_images

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        records = []
        for file, ann in zip(batch["file"], batch["annotated"], strict=True):
            file = str(file)
            try:
                r, failure = self.p.predict(file, cam=self.cam), None
            except Exception as e:  # one bad file never stops the run; it becomes an error row
                r, failure = None, e
            rows, status, err = rows_for(file, self.names, r, failure)
            name = None
            if self.save_images and r is not None and ann:
                try:
                    save_annotated(r, self.out / ANNOTATED_DIR / str(ann), self.cam)
                    name = str(ann)
                except Exception as e:  # the predictions are still valid
                    log.warning("%s: annotated copy not written: %s", file, e)
            stages = {} if r is None else {k: v for k, v in r.timings.items() if k != "total"}
            records.append(json.dumps({"rows": rows, "status": status, "error": err, "annotated": name,
                                       "stages": stages}))
        return {"file": [str(f) for f in batch["file"]], "record": records}


def _init_ray(address: str | None, init_kwargs: dict[str, Any] | None) -> bool:
    """Connect (or start a local instance); True when this call started Ray (and must shut it down)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    kw = {"include_dashboard": False, "log_to_driver": False, **(init_kwargs or {})}
    ray.init(address=address, **kw)
    return True


def _resources(ray: Any, actors: int | None, cpus: float, gpus: float) -> int:
    if actors is not None:
        return actors
    total = ray.cluster_resources()
    n = int(total.get("CPU", 1) // max(cpus, 1e-9))
    if gpus > 0:
        n = min(n, int(total.get("GPU", 0) // gpus))
    return max(1, n)


def predict_paths_ray(
    model_file: str | os.PathLike[str],
    paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    save_images: bool = False,
    cam: bool = False,
    progress: bool = True,
    *,
    resume: bool | None = None,
    overwrite: bool = False,
    retry_errors: bool = False,
    address: str | None = None,
    actors: int | None = None,
    cpus_per_actor: float = 1.0,
    gpus_per_actor: float = 0.0,
    block_files: int = 16,
    predictor_options: dict[str, Any] | None = None,
    ray_init: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`eacfer.infer.jobs.photos.predict_paths` on Ray: same outputs, same resume rules.

    Args:
        address: the cluster's address (``"auto"``, ``"ray://head:10001"``); ``None`` starts a local instance
            (or uses the one this process already started with ``ray.init``).
        actors: actors in the pool (default: as many as the cluster's CPUs/GPUs allow).
        cpus_per_actor, gpus_per_actor: resources each actor reserves (a GPU actor runs torch on CUDA).
        block_files: files per block handed to an actor.
        predictor_options: :meth:`Predictor.from_checkpoint` options (``detector``, ``device``, …).

    Example:
        >>> s = predict_paths_ray("model.pt", ["/shared/photos"], "/shared/out", address="auto")  # doctest: +SKIP
    """
    ray = import_ray()
    from eacfer.infer.predictor import Predictor

    opts = dict(predictor_options or {})
    # the driver's predictor gives the job its identity (model, classes, detector) and checks the model early
    with Predictor.from_checkpoint(model_file, cam=cam, **opts) as driver_p:
        job = PredictJob(driver_p, paths, out_dir, save_images=save_images, cam=cam, progress=progress,
                         resume=resume, overwrite=overwrite, retry_errors=retry_errors, model_file=model_file)
    with job:  # holds --out's lock until the job is finished
        if not job.todo:
            return job.finish({"ray": {"address": address, "actors": 0}})
        started = _init_ray(address, ray_init)
        try:
            n_actors = min(_resources(ray, actors, cpus_per_actor, gpus_per_actor),
                           max(1, -(-len(job.todo) // block_files)))
            ctx = ray.data.DataContext.get_current()
            order_was = ctx.execution_options.preserve_order
            ctx.execution_options.preserve_order = True  # blocks come back in input order: the same files as locally
            items = [{"file": str(f), "annotated": job.ann.get(str(f), "")} for f, _ in job.todo]
            ds = ray.data.from_items(items, override_num_blocks=max(1, -(-len(items) // block_files)))
            ds = ds.map_batches(PhotoActor, batch_size=block_files, concurrency=n_actors, num_cpus=cpus_per_actor,
                                num_gpus=gpus_per_actor or None,
                                fn_constructor_kwargs={"model_file": os.path.abspath(model_file),
                                                       "predictor_options": opts, "cam": cam,
                                                       "out": os.path.abspath(job.out), "save_images": save_images})
            shards = job.out / "shards"
            run_id = time.strftime("%Y%m%d-%H%M%S")

            def blocks() -> Iterator[tuple[str, str]]:
                for k, batch in enumerate(ds.iter_batches(batch_size=block_files, batch_format="numpy")):
                    recs = list(zip((str(f) for f in batch["file"]), (str(r) for r in batch["record"]), strict=True))
                    _write_shard(shards / f"part-{run_id}-{k:05d}.csv", job.ledger.columns, recs)
                    yield from recs

            def convert(item: tuple[str, str]) -> tuple:
                file, raw = item
                rec = json.loads(raw)
                if rec["error"]:
                    log.info("%s: %s", file, rec["error"])
                return file, rec["rows"], rec["status"], rec["error"], rec["annotated"], rec["stages"]

            try:
                job.run(blocks(), convert)
            finally:
                ctx.execution_options.preserve_order = order_was
            return job.finish({"ray": {"address": address, "actors": n_actors, "cpus_per_actor": cpus_per_actor,
                                       "gpus_per_actor": gpus_per_actor, "block_files": block_files}})
        finally:
            if started:
                ray.shutdown()


def _write_shard(path: Path, columns: list[str], recs: list[tuple[str, str]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for _file, raw in recs:
        for row in json.loads(raw)["rows"]:
            w.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    write_text(path, buf.getvalue())


def run_videos_ray(
    model_file: str | os.PathLike[str],
    sources: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    overwrite: bool = False,
    retry_errors: bool = False,
    progress: bool = True,
    video_kw: dict[str, Any] | None = None,
    *,
    address: str | None = None,
    actors: int | None = None,
    cpus_per_actor: float = 1.0,
    gpus_per_actor: float = 0.0,
    block_files: int = 1,
    predictor_options: dict[str, Any] | None = None,
    ray_init: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``eacfer video`` over many sources on Ray: one video per task, each actor running :func:`run_video`.

    The job layer (index.csv, one folder per video, skip finished ones, restart interrupted ones) is the one
    of :func:`eacfer.infer.jobs.videos.run_video_job`; ``--out`` must be on a filesystem every node shares.

    Example:
        >>> run_videos_ray("model.pt", ["/shared/talks"], "/shared/out/talks", address="auto")  # doctest: +SKIP
    """
    ray = import_ray()
    from eacfer.infer.jobs.videos import run_video_job
    from eacfer.infer.predictor import Predictor

    opts = dict(predictor_options or {})
    vkw = dict(video_kw or {})
    started = _init_ray(address, ray_init)
    try:
        n_actors = _resources(ray, actors, cpus_per_actor, gpus_per_actor)
        remote_opts = {"num_cpus": cpus_per_actor, "num_gpus": gpus_per_actor}
        actor_cls = ray.remote(**remote_opts)(VideoActor)
        pool = ray.util.ActorPool([actor_cls.remote(os.path.abspath(model_file), opts, bool(vkw.get("cam")))
                                   for _ in range(n_actors)])

        def run_many(todo: list[tuple[str, str]]) -> Iterator[tuple[str, Any]]:
            yield from pool.map(lambda a, item: a.run.remote(item[0], item[1], vkw), todo)

        with Predictor.from_checkpoint(model_file, cam=bool(vkw.get("cam")), **opts) as driver_p:
            s = run_video_job(driver_p, sources, out_dir, overwrite=overwrite, retry_errors=retry_errors,
                              model_file=model_file, progress=progress, executor=run_many, force_many=True, **vkw)
        return {**s, "ray": {"address": address, "actors": n_actors}}
    finally:
        if started:
            ray.shutdown()


class VideoActor:
    """A Ray actor holding one Predictor; runs :func:`run_video` for one source into one folder."""

    def __init__(self, model_file: str, predictor_options: dict[str, Any], cam: bool):
        from eacfer.infer.predictor import Predictor

        self.p = Predictor.from_checkpoint(model_file, cam=cam, **predictor_options)

    def run(self, source: str, folder: str, video_kw: dict[str, Any]) -> tuple[str, Any]:
        from eacfer.infer.jobs.video import run_video

        try:
            return source, run_video(self.p, source, folder, progress=False, **video_kw)
        except Exception as e:  # reported in the index by the driver
            return source, f"{e}"
