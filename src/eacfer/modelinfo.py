"""What a model file says about itself, read and validated without torch.

:class:`ModelInfo` is the metadata that travels with the weights (classes, input size, mean/std, face
geometry, temperature …); :func:`info_from_payload` validates it as a ``.pt`` model file holds it and
:func:`read_onnx_metadata` as an exported ``.onnx`` holds it (JSON ``metadata_props``). The helpers below
name what a file that is not a model seems to be, for one-line error messages.

Why a module of its own: everything that *runs* a model (the predictor, ``eacfer predict``/``video``/``ui``
with an ``.onnx``) needs this metadata, and none of it needs torch; :mod:`eacfer.checkpoint` (``torch.save``
/``torch.load`` of ``.pt`` files) imports torch at its top. Keeping the metadata here lets inference run
where torch is not installed (the import-linter contract "The inference runtime never imports torch").
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MODEL_FORMAT = "eacfer-model"
MODEL_FORMAT_VERSION = 1
#: Largest input side a model file may ask for (the paper uses 224); bigger would only serve to exhaust memory.
MAX_INPUT_SIZE = 1024


class CheckpointError(ValueError):
    """A model or checkpoint file that cannot be used; the message names the file and the problem."""


@dataclass
class ModelInfo:
    """Metadata that travels with the weights."""

    backbone: str
    class_names: list[str]
    input_size: int
    mean: list[float]
    std: list[float]
    train_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    eacfer_version: str = ""
    # side of the square face images the model was trained on (RAF-DB's aligned faces: 100), which
    # training resized to input_size; the predictor crops faces at this size and resizes them the same
    # way, so a face looks as it did in training. None: crop at input_size directly.
    face_size: int | None = None
    # margin added around the detector's face box on each side, as a fraction of the box (the square crop's
    # side is max(w, h)·(1 + 2·margin)); None: eacfer's default (eacfer.infer.align.DEFAULT_MARGIN, 0.1).
    face_margin: float | None = None
    # the square crop's centre moved towards the top of the face by this fraction of the box side, for models
    # trained on faces framed higher than eacfer's detector frames them (the starter model: OpenCV Haar boxes);
    # None: 0 (eacfer.infer.align.crop_transform).
    face_shift: float | None = None
    # where the weights come from, for models eacfer did not train (e.g. the bundled starter model): name,
    # trained_on, licence, credit, published accuracy and its source. Empty for models trained by eacfer.
    provenance: dict[str, Any] = field(default_factory=dict)
    # softmax temperature fitted by `eacfer calibrate` on a calibration split (never the test split): every
    # runtime turns logits z into probabilities softmax(z / temperature); 1.0 = uncalibrated (the raw softmax)
    temperature: float = 1.0
    # how the temperature was fitted (data, split, n, NLL before/after); empty when uncalibrated
    calibration: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _face_size(value: Any, source: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 8 <= value <= MAX_INPUT_SIZE:
        raise CheckpointError(f"{source}: model metadata 'face_size' must be an integer in 8..{MAX_INPUT_SIZE} "
                              f"or null, got {value!r}")
    return value


def _fraction(value: Any, key: str, low: float, source: str) -> float | None:
    """A face-geometry fraction of the metadata (``face_margin`` in 0..1, ``face_shift`` in -1..1) or None."""
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= float(value) <= 1.0:
        raise CheckpointError(f"{source}: model metadata {key!r} must be a number in {low:g}..1 or null, got {value!r}")
    return float(value)


#: temperatures a model file may carry: beyond these the probabilities are one-hot or uniform, not calibrated
TEMPERATURE_RANGE = (0.01, 100.0)


def _temperature(value: Any, source: str) -> float:
    if value is None:
        return 1.0
    lo, hi = TEMPERATURE_RANGE
    if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(float(value))
            or not lo <= float(value) <= hi):
        raise CheckpointError(f"{source}: model metadata 'temperature' must be a number in {lo:g}..{hi:g}, got {value!r}")
    return float(value)


def info_from_payload(payload: dict[str, Any], source: str) -> ModelInfo:
    """Validate a model file's metadata and return it as :class:`ModelInfo`."""
    if payload.get("format") != MODEL_FORMAT:
        hint = " (this looks like a training checkpoint; use RUN_DIR/model.pt)" if "optimizer" in payload else ""
        raise CheckpointError(f"{source}: not an eacfer model file{hint}")
    version = payload.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{source}: malformed format_version {version!r}")
    if version > MODEL_FORMAT_VERSION:
        raise CheckpointError(f"{source}: made by a newer eacfer (format {version}); upgrade eacfer")
    for key in ("class_names", "mean", "std"):
        if not isinstance(payload.get(key), (list, tuple)):
            raise CheckpointError(f"{source}: model metadata {key!r} must be a list, got {type(payload.get(key)).__name__}")
    if not isinstance(payload.get("input_size"), int) or isinstance(payload.get("input_size"), bool):
        raise CheckpointError(f"{source}: model metadata 'input_size' must be an integer, got {payload.get('input_size')!r}")
    try:
        info = ModelInfo(
            backbone=str(payload["backbone"]),
            class_names=[str(c) for c in payload["class_names"]],
            input_size=int(payload["input_size"]),
            mean=[float(v) for v in payload["mean"]],
            std=[float(v) for v in payload["std"]],
            train_config=dict(payload.get("train_config") or {}),
            metrics=dict(payload.get("metrics") or {}),
            eacfer_version=str(payload.get("eacfer_version", "")),
            face_size=_face_size(payload.get("face_size"), source),
            face_margin=_fraction(payload.get("face_margin"), "face_margin", 0.0, source),
            face_shift=_fraction(payload.get("face_shift"), "face_shift", -1.0, source),
            provenance=dict(payload.get("provenance") or {}),
            temperature=_temperature(payload.get("temperature"), source),
            calibration=dict(payload.get("calibration") or {}),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: model metadata incomplete or malformed ({type(e).__name__}: {e})") from None
    if len(info.mean) != 3 or len(info.std) != 3 or info.input_size < 8 or info.num_classes < 2:
        raise CheckpointError(f"{source}: model metadata out of range (mean/std/input_size/classes)")
    # A stranger's file must not be able to make inference allocate gigabytes or return NaN.
    if info.input_size > MAX_INPUT_SIZE:
        raise CheckpointError(f"{source}: input_size {info.input_size} is larger than {MAX_INPUT_SIZE}")
    if not all(math.isfinite(v) for v in info.mean) or not all(math.isfinite(v) and v > 0 for v in info.std):
        raise CheckpointError(f"{source}: mean/std must be finite and std > 0, got {info.mean} / {info.std}")
    names = info.class_names
    if any(not n.strip() or len(n) > 100 for n in names) or len(set(names)) != len(names):
        # they become CSV columns (p_<class>) and labels: empty or repeated names would collide
        raise CheckpointError(f"{source}: class names must be unique, non-empty and short, got {names[:10]!r}")
    return info


#: the single input of every exported model (N×3×S×S float32, normalised)
INPUT_NAME = "input"


def read_onnx_metadata(meta: dict[str, str], source: str) -> tuple[ModelInfo, dict[str, Any]]:
    """Validate eacfer ``metadata_props`` (as onnxruntime returns them) → (:class:`ModelInfo`, export info).

    Example:
        >>> read_onnx_metadata({}, "m.onnx")
        Traceback (most recent call last):
        ...
        eacfer.modelinfo.CheckpointError: m.onnx: ONNX file without eacfer metadata (export it with `eacfer export`)
    """
    if "format" not in meta:
        raise CheckpointError(f"{source}: ONNX file without eacfer metadata (export it with `eacfer export`)")
    try:
        payload = {k: json.loads(v) for k, v in meta.items()}
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{source}: malformed eacfer metadata in ONNX file ({e})") from None
    info = info_from_payload(payload, source)
    export_info = payload.get("export") if isinstance(payload.get("export"), dict) else {}
    return info, export_info


def folder_hint(path: Path) -> str:
    """For a folder given as a model file: "; did you mean FOLDER/model.pt?" (or the model files it holds).

    Example:
        >>> folder_hint(Path("/nonexistent-run"))
        '; it holds no model file (.pt or .onnx)'
    """
    if (path / "model.pt").is_file():  # a training run's folder (training/config.py RUN_FILES)
        return f"; did you mean {path / 'model.pt'}?"
    try:
        models = sorted(p.name for p in path.iterdir() if p.suffix.lower() in (".pt", ".pth", ".onnx"))
    except OSError:
        models = []
    if not models:
        return "; it holds no model file (.pt or .onnx)"
    return f"; did you mean {path / models[0]}?" + (f" (it holds {', '.join(models[:4])})" if len(models) > 1 else "")


def first_sentence(msg: str, limit: int = 200) -> str:
    """The first sentence of a library's error message (one line, at most ``limit`` characters, cut at a word).

    Example:
        >>> first_sentence("failed finding central directory. This is an internal miniz error. If you")
        'failed finding central directory.'
    """
    line = msg.strip().splitlines()[0] if msg.strip() else ""
    m = re.match(r"(.+?[.!?])(\s|$)", line)
    text = m.group(1) if m else line
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def describe_content(path: Path, head: bytes) -> str:
    """What a file that is not a model seems to be, for error messages ("it is a JPEG image", ...).

    Example:
        >>> describe_content(Path("notes.pt"), b"hello wo")
        "neither a PyTorch checkpoint (zip) nor a pickle; it starts with b'hello wo'"
    """
    return image_kind(path) or f"neither a PyTorch checkpoint (zip) nor a pickle; it starts with {head!r}"


def image_kind(path: Path) -> str | None:
    """"it is a JPEG image (W×H), renamed .pt?" when Pillow recognises ``path`` as an image, else ``None``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:  # reads the header only
            return f"it is a {im.format} image ({im.width}×{im.height}), renamed {path.suffix or 'without a suffix'}?"
    except (UnidentifiedImageError, OSError, ValueError):
        return None
