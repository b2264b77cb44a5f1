"""``eacfer eval``: evaluate a model file on a dataset split."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a model on a dataset split",
        description="Accuracy, mean-class accuracy, per-class accuracy, confusion matrix, predictions, and how far "
        "the probabilities can be trusted: ECE (15 bins), NLL and Brier score before and after calibration, "
        "with a reliability diagram (reliability.png).",
        epilog="example: eacfer eval --data data/RAF-DB --checkpoint runs/eac/model.pt --out runs/eac/eval",
    )
    from eacfer.data.formats import TEST_SPLITS_HELP

    p.add_argument("--data", required=True, help="dataset folder (or a FER2013 / FERPlus CSV)")
    p.add_argument("--checkpoint", required=True, help="model file (RUN_DIR/model.pt)")
    p.add_argument("--split", default="test",
                   help="split to evaluate: test, train, or validation (FERPlus, AffectNet) / test-private "
                   "(FER2013). The test split per dataset: " + TEST_SPLITS_HELP.replace("%", "%%"))
    p.add_argument("--format", default=None, help="dataset format (default: auto-detect)")
    p.add_argument("--classes", type=int, choices=(7, 8), default=None,
                   help="FERPlus / AffectNet class count (default 8; 7 drops contempt). A model's classes are "
                   "matched to the set's by name, so this is rarely needed")
    p.add_argument("--crop-cache", default=None, help="AffectNet face-crop cache folder")
    p.add_argument("--out", required=True, help="folder for metrics.json, confusion.png, predictions.csv")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--batch-size", type=int, default=64, help="images per evaluation batch")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (0: load in this process)")
    p.add_argument("--strict", action="store_true", help="stop at the first broken image")
    p.add_argument("--no-crop-check", action="store_true",
                   help="skip the check that the images are face crops (a face detector on 8 of them)")
    from eacfer.infer.labelling import TTA_MODES

    p.add_argument("--tta", choices=list(TTA_MODES), default="none",
                   help="test-time augmentation: flip averages the probabilities of each image and its mirror")
    wild = p.add_argument_group("through the detector (uncropped photos; docs/CONFIDENCE.md)")
    wild.add_argument("--through-detector", action="store_true",
                      help="run eacfer's detector and alignment on RAF-DB's original photos (Image/original, "
                      "Annotation/boundingbox) or a folder tree of uncropped photos, and compare with the aligned crops")
    wild.add_argument("--detector", default="mediapipe", help="face detector for --through-detector")
    wild.add_argument("--min-iou", type=float, default=0.5, help="IoU with the annotated box for a face to count as found")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    if args.through_detector:
        return _run_through_detector(args)
    from eacfer.infer.cropcheck import face_crop_check
    from eacfer.training.evaluation import evaluate_checkpoint

    m = evaluate_checkpoint(args.checkpoint, args.data, split=args.split, format=args.format, out_dir=args.out,
                            device=args.device, batch_size=args.batch_size, workers=args.workers,
                            strict=args.strict, progress=not getattr(args, "quiet", False), classes=args.classes,
                            crop_cache=args.crop_cache, image_check=None if args.no_crop_check else face_crop_check,
                            tta=args.tta)
    print(f"{m['format']} {m['split']} split: accuracy {m['accuracy']:.4f}  "
          f"mean-class accuracy {m['mean_class_accuracy']:.4f}  n={m['n']}")
    cm = m["class_mapping"]
    if cm["model_only_excluded_from_argmax"] or cm["dataset_only_skipped"]:
        print(f"cross-dataset: model classes not in the set (excluded): {cm['model_only_excluded_from_argmax']}; "
              f"set classes the model lacks (skipped): {cm['dataset_only_skipped']}")
    c = m["confidence"]
    for when in ("before", "after"):
        if c[when] is not None:
            label = "raw softmax" if when == "before" else f"calibrated (T={c['temperature']:.3f})"
            print(f"confidence, {label}: ECE {c[when]['ece']:.4f}  NLL {c[when]['nll']:.4f}  "
                  f"Brier {c[when]['brier']:.4f}")
    if not c["calibrated"]:
        print("the model is not calibrated (temperature 1): `eacfer calibrate` fits one on a validation split")
    if m["tta"]:
        print(f"flip TTA: accuracy {m['tta']['accuracy_with_tta']:.4f} (without: {m['tta']['accuracy_without_tta']:.4f})")
    for name, acc in m["per_class"].items():
        print(f"  {name:<12} {'-' if acc is None else f'{acc:.4f}'}")
    for what, path in m["outputs"].items():
        print(f"{what}: {path}")
    return 0


def _run_through_detector(args: argparse.Namespace) -> int:
    from eacfer.infer.jobs.wild_eval import evaluate_through_detector

    r = evaluate_through_detector(args.checkpoint, args.data, split=args.split, out_dir=args.out, format=args.format,
                                  detector=args.detector, device=args.device, min_iou=args.min_iou,
                                  progress=not getattr(args, "quiet", False))

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.4f}"

    print(f"{r['format']} {r['split']} through the detector: faces found {r['faces_found']} of {r['originals']} photos"
          + (f" ({r['problems']} without an original photo or box)" if r["problems"] else ""))
    print(f"  accuracy on eacfer's own crops:      {pct(r['accuracy_own_crops'])}")
    if r["accuracy_aligned_crops"] is not None:
        print(f"  accuracy on the aligned crops:       {pct(r['accuracy_aligned_crops'])} (same images)")
        print(f"  gap (aligned - own):                 {pct(r['gap'])}")
    print(f"  end to end (missed faces are errors): {pct(r['accuracy_end_to_end'])}")
    for what, path in r["outputs"].items():
        print(f"{what}: {path}")
    return 0
