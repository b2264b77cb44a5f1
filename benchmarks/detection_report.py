"""Detection report: faces found, false detections and time per image for every detector setting, side by
side, on the project's generated photo and clip fixtures (eacfer.infer.detect.scenes, made from the
public-domain NASA portrait); then how well each tracker holds identities on the same clips.

Run (one command; prints Markdown, also written to --out):
    PYTHONPATH=src .venv/bin/python benchmarks/detection_report.py --out /tmp/detection_report.md

* Photos: every scene through each detector; a detection counts as a found face when its centre lies in
  the true face's visible box and its size is within ×0.4 … ×2.5, otherwise as a false detection.
* Clips: every frame scanned by one model, against the video face finder (the default for videos).
* Trackers (when the optional ``trackers`` package is importable): the same per-frame detections (both
  BlazeFace models on every processed frame) given to eacfer's IoUTracker, ByteTrack and OC-SORT
  (``trackers``, Apache-2.0), next to the finder's own ids, at every frame and at every 3rd frame. "ids per
  person" is the number of distinct ids given to one true person (1 is perfect).
Times are wall-clock per call, after one warm-up call per setting; the settings run side by side on each
image and frame, so other work on the machine slows them alike; the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from eacfer.infer.detect import create_detector
from eacfer.infer.detect.base import box_iou
from eacfer.infer.detect.finder import make_video_finder

# the generated scenes are test data at the checkout root (testdata/), not part of the installed package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from testdata.scenes import Clip, all_clips, clip_gap, match_faces, photo_scenes  # noqa: E402


def _retinaface_available() -> bool:
    try:
        from eacfer.infer.detect.retinaface import weights_path

        weights_path()
        return True
    except ValueError:
        return False


def photo_settings() -> list[str]:
    names = ["mediapipe-full", "mediapipe-short", "mediapipe-both", "haar"]
    if _retinaface_available():
        names.insert(3, "retinaface")
    return names


def run_photos(lines: list[str], repeats: int) -> None:
    scenes = photo_scenes()
    settings = photo_settings()
    dets = {n: create_detector(n) for n in settings}
    table: dict[str, dict[str, tuple[int, int, float]]] = {}
    try:
        for d in dets.values():
            d.detect(scenes[0].image)  # warm-up
        for s in scenes:  # settings side by side on each image, so the machine's load hits them alike
            h, w = s.image.shape[:2]
            for name, det in dets.items():
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    found_dets = det.detect(s.image)
                    times.append((time.perf_counter() - t0) * 1000)
                found, false = match_faces([d.box for d in found_dets], s.faces, w, h)
                table.setdefault(s.name, {})[name] = (found, false, min(times))
    finally:
        for d in dets.values():
            d.close()
    lines += ["## Photos", "", "found/true (false detections) per scene; `mediapipe-both` is the photo default. "
              f"Time: the fastest of {repeats} calls per image (the least disturbed by other work), median "
              "over the images.", "",
              "| scene | faces | " + " | ".join(settings) + " |", "|---|---:|" + "---:|" * len(settings)]
    for s in scenes:
        row = [f"{table[s.name][n][0]}/{len(s.faces)}" + (f" ({table[s.name][n][1]})" if table[s.name][n][1] else "")
               for n in settings]
        lines.append(f"| {s.name} | {len(s.faces)} | " + " | ".join(row) + " |")
    true = sum(len(s.faces) for s in scenes)
    lines.append("| **faces found** | " + str(true) + " | "
                 + " | ".join(f"**{sum(table[s.name][n][0] for s in scenes)}**" for n in settings) + " |")
    lines.append("| **false detections** | | " + " | ".join(str(sum(table[s.name][n][1] for s in scenes))
                                                        for n in settings) + " |")
    lines.append("| **median ms / image** | | " + " | ".join(
        f"{statistics.median(table[s.name][n][2] for s in scenes):.1f}" for n in settings) + " |")
    lines.append("")


def _score_clip(clip: Clip, per_frame: list[list[Any]]) -> tuple[int, int, int]:
    found = false = 0
    for dets, truth in zip(per_frame, clip.faces, strict=True):
        h, w = clip.frames[0].shape[:2]
        a, b = match_faces([d.box for d in dets], list(truth.values()), w, h)
        found, false = found + a, false + b
    return found, false, sum(len(t) for t in clip.faces)


def run_clips(lines: list[str]) -> None:
    clips = all_clips()
    makers: dict[str, Callable[[], Any]] = {
        "every frame: short": lambda: create_detector("mediapipe-short"),
        "every frame: full": lambda: create_detector("mediapipe-full"),
        "every frame: both": lambda: create_detector("mediapipe-both"),
        "finder (default)": make_video_finder,
    }
    dets = {n: m() for n, m in makers.items()}
    res: dict[str, dict[str, tuple[int, int, int, float, int]]] = {}
    try:
        for clip in clips:
            for d in dets.values():
                if hasattr(d, "reset"):
                    d.reset()
            times: dict[str, list[float]] = {n: [] for n in dets}
            per_frame: dict[str, list[Any]] = {n: [] for n in dets}
            for f in clip.frames:  # every setting on the same frame, one after the other
                for name, d in dets.items():
                    t0 = time.perf_counter()
                    per_frame[name].append(d.detect(f))
                    times[name].append((time.perf_counter() - t0) * 1000)
            for name in dets:
                found, false, true = _score_clip(clip, per_frame[name])
                ids = len({x.track_id for p in per_frame[name] for x in p if x.track_id is not None})
                res.setdefault(clip.name, {})[name] = (found, false, true, statistics.median(times[name]), ids)
    finally:
        for d in dets.values():
            d.close()
    names = list(dets)
    lines += ["## Clips", "", "faces found/true (false), median ms per frame (the settings run one after the other "
              "on each frame); the finder also gives track ids.", "",
              "| clip | frames | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for clip in clips:
        cells = []
        for n in names:
            found, false, true, ms, ids = res[clip.name][n]
            extra = f", {ids} id{'s' if ids != 1 else ''}" if n.startswith("finder") else ""
            cells.append(f"{found}/{true}" + (f" ({false})" if false else "") + f", {ms:.1f} ms{extra}")
        lines.append(f"| {clip.name} | {len(clip.frames)} | " + " | ".join(cells) + " |")
    lines.append("")


# -- trackers -------------------------------------------------------------------------------------------
def _ids_per_person(clip: Clip, per_frame_ids: list[list[tuple[tuple[float, ...], int]]]) -> tuple[float, int]:
    """Mean number of ids per true person, and frames where a person got no id."""
    h, w = clip.frames[0].shape[:2]
    seen: dict[int, set[int]] = {}
    missed = 0
    for truth, pairs in zip(clip.faces, per_frame_ids, strict=True):
        for pid, tbox in truth.items():
            best = max(pairs, key=lambda p: box_iou(p[0], tbox), default=None)
            if best is None or match_faces([best[0]], [tbox], w, h)[0] == 0:
                missed += 1
                continue
            seen.setdefault(pid, set()).add(best[1])
    people = {pid for t in clip.faces for pid in t}
    return (statistics.mean(len(seen.get(p, set())) for p in people) if people else 0.0), missed


def run_trackers(lines: list[str]) -> None:
    try:
        import supervision as sv
        import trackers
    except ImportError as exc:
        lines += ["## Trackers", "", f"skipped: {exc} (pip install --target DIR --no-deps trackers supervision "
                  "scipy pyDeprecate defusedxml, then PYTHONPATH=DIR)", ""]
        return

    clips = [c for c in all_clips() if any(c.faces)] + [clip_gap(frames=60, gap=(20, 32), size=(640, 360))]
    clips[-1].name = "gap_of_12_frames"
    both = create_detector("mediapipe-both")
    finder = make_video_finder()
    rows = []
    try:
        for every in (1, 3):
            for clip in clips:
                idx = list(range(0, len(clip.frames), every))
                sub = Clip(clip.name, [clip.frames[i] for i in idx], [clip.faces[i] for i in idx])
                dets = [both.detect(f) for f in sub.frames]
                out: dict[str, list[list[tuple[tuple[float, ...], int]]]] = {}
                # eacfer IoUTracker (max_age 10 processed frames, IoU 0.3, as run_video uses it)
                from eacfer.infer.results import FaceResult
                from eacfer.infer.stream.tracking import IoUTracker

                tr = IoUTracker()
                names = ("a", "b")
                res = []
                for i, ds in enumerate(dets):
                    faces = [FaceResult(d.box, d.score, None, "a", 0, np.array([1.0, 0.0]), names) for d in ds]
                    tr.update(faces, i)
                    res.append([(f.box, int(f.track_id)) for f in faces])
                out["IoUTracker"] = res
                for tname, cls in (("ByteTrack", trackers.ByteTrackTracker), ("OC-SORT", trackers.OCSORTTracker)):
                    t = cls(frame_rate=25.0 / every)
                    res = []
                    for f, ds in zip(sub.frames, dets, strict=True):
                        xyxy = np.array([[d.box[0], d.box[1], d.box[0] + d.box[2], d.box[1] + d.box[3]] for d in ds],
                                        np.float32).reshape(-1, 4)
                        conf = np.array([d.score for d in ds], np.float32)
                        r = t.update(sv.Detections(xyxy=xyxy, confidence=conf, class_id=np.zeros(len(ds), int)),
                                     frame=f)
                        ids = r.tracker_id if r.tracker_id is not None else []
                        res.append([((float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])), int(i))
                                    for b, i in zip(r.xyxy, ids, strict=True) if i >= 0])
                    out[tname] = res
                finder.reset()
                out["finder"] = [[(d.box, int(d.track_id)) for d in finder.detect(f)] for f in sub.frames]
                cells = []
                for tname in ("IoUTracker", "ByteTrack", "OC-SORT", "finder"):
                    ipp, missed = _ids_per_person(sub, out[tname])
                    cells.append(f"{ipp:.2f} ({missed})")
                rows.append(f"| {clip.name} | {every} | " + " | ".join(cells) + " |")
    finally:
        both.close()
        finder.close()
    lines += ["## Trackers", "", "ids per true person (person-frames without an id); 1.00 (0) is perfect. "
              "IoUTracker, ByteTrack and OC-SORT get the same detections (both BlazeFace models on every "
              "processed frame); the finder detects for itself. `every` = analyse every N-th frame of a 25 fps clip.",
              "", "| clip | every | IoUTracker | ByteTrack | OC-SORT | finder |", "|---|---:|---:|---:|---:|---:|",
              *rows, ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    ap.add_argument("--skip-trackers", action="store_true")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per photo and setting (fastest kept)")
    args = ap.parse_args()
    import cv2
    import mediapipe

    lines = ["# Detection report", "",
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, python "
             f"{platform.python_version()}, mediapipe {mediapipe.__version__}, opencv {cv2.__version__}; "
             f"load average at start {os.getloadavg()[0]:.1f}", ""]
    run_photos(lines, max(1, args.repeats))
    run_clips(lines)
    if not args.skip_trackers:
        run_trackers(lines)
    lines.append(f"load average at end {os.getloadavg()[0]:.1f}")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
