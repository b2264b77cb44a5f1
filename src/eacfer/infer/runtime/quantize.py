"""int8 static quantisation of the classifier, shipped only behind a measured check against fp32.

:func:`quantize_onnx` quantises an exported fp32 ONNX model with ``onnxruntime.quantization``
(static, QDQ format, per-channel int8 weights, uint8 activations, MinMax ranges calibrated on face
crops). :func:`quantize_checked` then runs fp32 and int8 side by side on other face crops (see
:mod:`eacfer.infer.runtime.calibration`) and keeps the int8 model only when the top-1 class agrees on at least
``min_agreement`` (99 %) of the crops of *every* check set; otherwise it raises
:class:`QuantizationError` with a one-line reason. The check's result (agreement, largest probability
difference, calibration set, date) is stored in the int8 model's metadata under ``"quantization"``.

The CAM output (``cams``, an Einsum of the last feature map with the classifier weights) is not
quantised; its inputs are dequantised, so ``--with-cams`` models keep their attention maps.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eacfer.infer.runtime.onnx_session import create_session, normaliser, preprocess, softmax

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "int8")
MIN_AGREEMENT = 0.99
METADATA_KEY = "quantization"


class QuantizationError(ValueError):
    """The int8 model disagrees with fp32 too often (or cannot be built); nothing is written."""


@dataclass(frozen=True)
class Agreement:
    """Top-1 agreement of a candidate against reference probabilities on one set of crops."""

    n: int
    agree: int
    agreement: float  # agree / n
    max_prob_diff: float  # largest |p_ref − p| over all crops and classes

    def describe(self) -> str:
        return f"top-1 agreement {100 * self.agreement:.1f}% ({self.agree}/{self.n}), max |Δp| {self.max_prob_diff:.3f}"


def agreement(reference: np.ndarray, candidate: np.ndarray) -> Agreement:
    """Compare two N×K probability arrays: top-1 agreement and the largest absolute probability difference.

    Example:
        >>> agreement(np.array([[0.9, 0.1], [0.4, 0.6]]), np.array([[0.8, 0.2], [0.6, 0.4]]))
        Agreement(n=2, agree=1, agreement=0.5, max_prob_diff=0.2)
    """
    ref = np.asarray(reference, np.float64)
    cand = np.asarray(candidate, np.float64)
    if ref.shape != cand.shape or ref.ndim != 2 or ref.shape[0] == 0:
        raise ValueError(f"need two non-empty N×K arrays of the same shape, got {ref.shape} and {cand.shape}")
    agree = int((ref.argmax(1) == cand.argmax(1)).sum())
    diff = np.abs(ref - cand).max()
    return Agreement(n=int(ref.shape[0]), agree=agree, agreement=round(agree / ref.shape[0], 6),
                     max_prob_diff=round(float(diff) if np.isfinite(diff) else float("inf"), 6))


def _meta(model_bytes: bytes) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load_from_string(model_bytes).metadata_props}


def _with_metadata(model_bytes: bytes, meta: dict[str, str]) -> bytes:
    import onnx

    model = onnx.load_from_string(model_bytes)
    del model.metadata_props[:]
    for key, value in meta.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    return model.SerializeToString()


def read_quantization(meta: dict[str, str]) -> dict[str, Any] | None:
    """The ``"quantization"`` record of an int8 model's metadata (``None`` for an fp32 model).

    Example:
        >>> read_quantization({"quantization": '{"precision": "int8"}'})
        {'precision': 'int8'}
    """
    raw = meta.get(METADATA_KEY)
    if raw is None:
        return None
    try:
        rec = json.loads(raw)
    except json.JSONDecodeError:
        return {"precision": "int8", "error": "unreadable quantization record"}
    return rec if isinstance(rec, dict) else {"precision": "int8"}


class _Runner:
    """fp32 or int8 ONNX model → probabilities (and CAMs) for uint8 crops, in batches."""

    def __init__(self, model: bytes, mean: Any, std: Any, threads: int | None = None, batch: int = 32):
        self.session = create_session(model, threads)
        self.scale, self.shift = normaliser(mean, std)
        self.names = [o.name for o in self.session.get_outputs()]
        fixed = self.session.get_inputs()[0].shape[0]
        self.batch = fixed if isinstance(fixed, int) else batch

    def __call__(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        probs, cams = [], []
        for i in range(0, len(crops), self.batch):
            outs = self.session.run(self.names, {"input": preprocess(crops[i:i + self.batch], self.scale, self.shift)})
            probs.append(softmax(outs[0]))
            if "cams" in self.names:
                cams.append(outs[self.names.index("cams")])
        return np.concatenate(probs), (np.concatenate(cams) if cams else None)


class _Reader:
    """``CalibrationDataReader`` over normalised crops, in batches (a subclass is built lazily: ORT import)."""

    def __init__(self, crops: np.ndarray, mean: Any, std: Any, batch: int):
        self.scale, self.shift = normaliser(mean, std)
        self.crops, self.batch, self.i = crops, batch, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= len(self.crops):
            return None
        x = preprocess(self.crops[self.i:self.i + self.batch], self.scale, self.shift)
        self.i += self.batch
        return {"input": x}

    def rewind(self) -> None:
        self.i = 0


#: op types quantised by default: convolutions with their activations, residual adds, pooling. The classifier
#: (Gemm, 7 outputs: no time to gain) stays fp32: quantising it doubled the largest probability difference
#: (0.02 -> 0.03 on a demo ResNet-18, synthetic test faces) and lowered top-1 agreement (99.7% -> 97.7%).
DEFAULT_OP_TYPES = ("Conv", "Add", "Relu", "Clip", "MaxPool")


def quantize_onnx(fp32: bytes, calibration: np.ndarray, mean: Any, std: Any, per_channel: bool = True,
                  quant_format: str = "qdq", op_types: tuple[str, ...] = DEFAULT_OP_TYPES,
                  method: str = "minmax") -> bytes:
    """Static int8 quantisation of an fp32 ONNX classifier, calibrated on uint8 face crops (N×S×S×3).

    Keeps the fp32 model's metadata; adds no check (see :func:`quantize_checked`).

    Example:
        >>> int8 = quantize_onnx(fp32_bytes, crops, info.mean, info.std)  # doctest: +SKIP
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration) == 0:
        raise QuantizationError("no calibration crops")
    fixed = create_session(fp32, 1).get_inputs()[0].shape[0]
    batch = fixed if isinstance(fixed, int) else 16
    reader_cls = type("FaceCropReader", (_Reader, CalibrationDataReader), {})
    reader = reader_cls(calibration, mean, std, batch)
    with tempfile.TemporaryDirectory(prefix="eacfer-int8-") as tmp:
        raw, src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        raw.write_bytes(fp32)
        # shape inference + ORT's basic graph optimisation first, as onnxruntime recommends for quantisation
        quant_pre_process(str(raw), str(src), skip_symbolic_shape=False)
        quantize_static(
            str(src), str(dst), reader,
            quant_format=QuantFormat.QDQ if quant_format == "qdq" else QuantFormat.QOperator,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            # the CAM Einsum and the global average pool stay fp32
            op_types_to_quantize=list(op_types),
            calibrate_method={"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                              "entropy": CalibrationMethod.Entropy}[method],
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
        data = dst.read_bytes()
    return _with_metadata(data, _meta(fp32))


def check_int8(fp32: bytes, int8: bytes, checks: dict[str, np.ndarray], mean: Any, std: Any,
               threads: int | None = None) -> dict[str, dict[str, Any]]:
    """Run both models on each named set of crops → ``{name: Agreement fields (+ cams_rel_diff)}``.

    Example:
        >>> check_int8(fp32, int8, {"portrait": crops}, info.mean, info.std)["portrait"]["agreement"]  # doctest: +SKIP
        1.0
    """
    ref, cand = _Runner(fp32, mean, std, threads), _Runner(int8, mean, std, threads)
    out: dict[str, dict[str, Any]] = {}
    for name, crops in checks.items():
        if len(crops) == 0:
            continue
        p_ref, c_ref = ref(crops)
        p_new, c_new = cand(crops)
        rec: dict[str, Any] = asdict(agreement(p_ref, p_new))
        if c_ref is not None and c_new is not None:
            rec["cams_rel_diff"] = round(float(np.abs(c_ref - c_new).max() / max(1e-6, np.abs(c_ref).max())), 6)
        out[name] = rec
    return out


def quantize_checked(fp32: bytes, source: str, calibration: np.ndarray, checks: dict[str, np.ndarray],
                     description: dict[str, str] | None = None, min_agreement: float = MIN_AGREEMENT,
                     threads: int | None = None) -> tuple[bytes, dict[str, Any]]:
    """Quantise, check against fp32 on every check set, record the result in the metadata.

    Returns ``(int8 model bytes, the record)``; raises :class:`QuantizationError` (one line, naming the set
    and the figures) when the agreement on any check set is below ``min_agreement``.

    Example:
        >>> data, rec = quantize_checked(fp32, "model.pt", sets.calibration, sets.checks)  # doctest: +SKIP
        >>> rec["checks"]["portrait"]["agreement"] >= 0.99                                    # doctest: +SKIP
        True
    """
    import onnxruntime as ort

    meta = _meta(fp32)
    if METADATA_KEY in meta:
        raise QuantizationError(f"{source}: already an int8 model")
    mean, std = json.loads(meta["mean"]), json.loads(meta["std"])
    if not checks or not any(len(c) for c in checks.values()):
        raise QuantizationError(f"{source}: no crops to check the int8 model against fp32")
    int8 = quantize_onnx(fp32, calibration, mean, std)
    results = check_int8(fp32, int8, checks, mean, std, threads)
    record = {
        "precision": "int8",
        "method": "onnxruntime.quantization static, QDQ, per-channel int8 weights, uint8 activations, MinMax; "
                  "classifier layer, global pooling and CAMs in fp32",
        "onnxruntime": ort.__version__,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "min_agreement": min_agreement,
        "calibration": (description or {}).get("calibration", f"{len(calibration)} face crops"),
        "checks": {name: {**res, "crops": (description or {}).get(name, f"{res['n']} face crops")}
                   for name, res in results.items()},
    }
    for name, res in results.items():
        log.info("int8 vs fp32 on %s: %s", name, Agreement(res["n"], res["agree"], res["agreement"],
                                                           res["max_prob_diff"]).describe())
    # exact counts, not the rounded share; a NaN/inf output fails whatever its top-1
    failed = [(n, r) for n, r in results.items()
              if r["agree"] < min_agreement * r["n"] - 1e-9 or not np.isfinite(r["max_prob_diff"])]
    if failed:
        name, r = failed[0]
        raise QuantizationError(
            f"{source}: int8 refused: top-1 agreement with fp32 on {name} crops is {100 * r['agreement']:.1f}% "
            f"({r['agree']}/{r['n']}) < {100 * min_agreement:g}% (max |Δp| {r['max_prob_diff']:.3f}); use fp32")
    meta[METADATA_KEY] = json.dumps(record)
    return _with_metadata(int8, meta), record
