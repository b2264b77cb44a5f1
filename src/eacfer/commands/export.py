"""``eacfer export``: model.pt → ONNX with metadata, checked against torch (and, for int8, against fp32)."""

from __future__ import annotations

import argparse

from eacfer.commands._inference_args import add_precision_arg


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export",
        help="export a model to ONNX (checked against torch)",
        description="Write an ONNX model carrying the model file's metadata (classes, input size, mean/std, "
        "backbone), then compare onnxruntime with torch on random inputs; fails (and writes nothing) when the "
        "max difference exceeds 1e-4. Uses torch's TorchScript-based exporter (dynamo=False; no onnxscript needed). "
        "With --precision int8 the checked fp32 graph is quantised (static int8, calibrated on face crops) and "
        "written only when its top-1 class agrees with fp32 on >= 99% of the check faces (synthetic test faces "
        "and the bundled portrait's variants); the check's figures go into the model's metadata.",
        epilog="example: eacfer export --checkpoint runs/demo/run/model.pt --out model.onnx --dynamic-batch --with-cams",
    )
    p.add_argument("--checkpoint", required=True, metavar="FILE", help="model.pt written by training")
    p.add_argument("--out", required=True, help="output .onnx file")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--dynamic-batch", action="store_true", help="variable batch size (default: batch 1)")
    p.add_argument("--with-cams", action="store_true", help="also output the class attention maps ('cams')")
    add_precision_arg(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    if getattr(args, "precision", "fp32") == "int8":
        return _run_int8(args)
    from eacfer.export import export_onnx

    r = export_onnx(args.checkpoint, args.out, opset=args.opset, dynamic_batch=args.dynamic_batch,
                    with_cams=args.with_cams)
    print(f"wrote {r['path']} ({r['bytes'] / 1e6:.1f} MB, {r['backbone']}, {r['input_size']} px, opset {r['opset']}, "
          f"batch {'dynamic' if r['dynamic_batch'] else 1}, outputs logits{' + cams' if r['with_cams'] else ''})")
    d = r["diffs"]
    cams = f"; cams max |diff| {d['cams']:.2e} ({d['cams_scaled']:.2e} relative to their scale)" if "cams" in d else ""
    print(f"onnxruntime vs torch on random inputs: logits max |diff| = {d['logits']:.2e}{cams} (limit 1e-4) OK")
    return 0


def _run_int8(args: argparse.Namespace) -> int:
    from eacfer.infer.runtime.torch_backend import export_int8

    if not 7 <= int(args.opset) <= 23:
        raise ValueError(f"opset {args.opset} out of the supported range 7..23")
    r = export_int8(args.checkpoint, args.out, opset=args.opset, dynamic_batch=args.dynamic_batch,
                    with_cams=args.with_cams)
    print(f"wrote {r['path']} (int8, {r['bytes'] / 1e6:.1f} MB vs fp32 {r['fp32_bytes'] / 1e6:.1f} MB, "
          f"{r['backbone']}, {r['input_size']} px, batch {'dynamic' if r['dynamic_batch'] else 1}, "
          f"outputs logits{' + cams' if r['with_cams'] else ''})")
    q = r["quantization"]
    for name, c in q["checks"].items():
        print(f"int8 vs fp32 on {name} ({c['crops']}): top-1 agreement {100 * c['agreement']:.1f}% "
              f"({c['agree']}/{c['n']}), max |diff p| {c['max_prob_diff']:.3f} (limit >= {100 * q['min_agreement']:g}%) OK")
    return 0
