"""Self-describing model files and safe, atomic checkpoint I/O.

A model file (``model.pt``) is a plain dict of tensors, strings and numbers, loadable with
``torch.load(weights_only=True)`` — no pickled classes, so loading never executes code:

    format="eacfer-model", format_version, backbone, num_classes, class_names, input_size, mean, std,
    train_config, metrics, eacfer_version, state_dict, and optionally face_size, face_margin, face_shift, provenance,
    temperature, calibration

The predictor reads preprocessing and class names from here and never guesses.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from eacfer.utils.atomic import atomic_path

log = logging.getLogger(__name__)

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


def save_checkpoint(path: str | os.PathLike[str], obj: dict[str, Any]) -> None:
    """``torch.save`` atomically: a kill during the save leaves the previous file intact.

    A full disk (``ENOSPC``, or the ``RuntimeError`` torch's zip writer raises for it) becomes one
    ``OSError`` naming the folder, the free space and about how much is needed; the previous file stays and
    the half-written temporary is removed.

    Example:
        >>> save_checkpoint("runs/eac/last.pt", {"epoch": 3, "model": net.state_dict()})  # doctest: +SKIP
    """
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
    except (OSError, RuntimeError) as e:
        if not _is_disk_full(e):
            raise
        err = OSError(_disk_full_message(path, obj))
        err.errno = errno.ENOSPC
        raise err from None


def _is_disk_full(e: BaseException) -> bool:
    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EDQUOT)
    # torch's zip writer reports a short write as "unexpected pos …" or "file write failed", not as ENOSPC
    text = str(e)
    return any(k in text for k in ("unexpected pos", "file write failed", "No space left"))


def _disk_full_message(path: Path, obj: Any) -> str:
    """``FOLDER: no space left to save NAME (X MB free, about Y MB needed); the previous NAME is intact``."""
    def tensor_bytes(o: Any) -> int:
        if isinstance(o, torch.Tensor):
            return o.numel() * o.element_size()
        if isinstance(o, dict):
            return sum(tensor_bytes(v) for v in o.values())
        if isinstance(o, (list, tuple)):
            return sum(tensor_bytes(v) for v in o)
        return 0

    folder = path.parent
    need = tensor_bytes(obj) + (1 << 20)  # plus the zip container and the small entries
    try:
        free = f"{shutil.disk_usage(folder).free / 1e6:.0f} MB free"
    except OSError:
        free = "free space unknown"
    kept = f"the previous {path.name} is intact" if path.exists() else f"no {path.name} was written"
    return f"{folder}: no space left to save {path.name} ({free}, about {need / 1e6:.0f} MB needed); {kept}"


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict with ``weights_only=True``; hostile or broken files raise CheckpointError.

    Example:
        >>> state = load_checkpoint("runs/demo/last.pt")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: file not found")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, expected a checkpoint file{folder_hint(path)}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (truncated or still being written?)")
    head = _check_torch_zip(path)
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        msg = str(e)
        if not head.startswith((b"PK\x03\x04", b"\x80")):  # neither torch's zip nor a pickle: an image, a text…
            reason = f"not a model file: {describe_content(path, head)}"
        elif "weights_only" in msg or "Unsupported global" in msg or "Unsupported operand" in msg:
            reason = "refused: it contains pickled Python objects/code, not just tensors and plain data"
        else:
            reason = f"not a readable checkpoint (truncated or corrupted?): {type(e).__name__}: {first_sentence(msg)}"
        raise CheckpointError(f"{path}: {reason}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, found {type(obj).__name__}")
    _verify_zip_crc(path)
    return obj


def _verify_zip_crc(path: Path) -> None:
    from eacfer.utils.integrity import verify_torch_zip

    try:
        verify_torch_zip(path)
    except ValueError as e:
        raise CheckpointError(str(e)) from None


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


def _check_torch_zip(path: Path) -> bytes:
    """The file's first 8 bytes; a ``torch.save`` zip cut short (no end record) raises a plain message here,
    before torch reports it as an internal miniz error."""
    import zipfile

    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04") and not zipfile.is_zipfile(path):  # the central directory is at the end
        raise CheckpointError(f"{path}: truncated: the zip archive's end is missing (copy or save interrupted?)")
    return head


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


def _plain(obj: Any) -> Any:
    """Reduce configs/metrics to types that ``weights_only`` loading accepts."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return obj.item()
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def save_model(path: str | os.PathLike[str], model: torch.nn.Module, info: ModelInfo) -> None:
    """Write a self-describing model file (atomically).

    Example:
        >>> save_model("model.pt", net, ModelInfo("mobilenet_v2", list(RAFDB_CLASSES), 224,  # doctest: +SKIP
        ...            list(IMAGENET_MEAN), list(IMAGENET_STD)))
    """
    from eacfer import __version__

    if len(info.class_names) != getattr(model, "num_classes", len(info.class_names)):
        raise ValueError("class_names length does not match the model's number of classes")
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        **_plain({**info.to_dict(), "eacfer_version": info.eacfer_version or __version__}),
        "num_classes": info.num_classes,
        "state_dict": state,
    }
    save_checkpoint(path, payload)


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


def load_model(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, ModelInfo]:
    """Load a model file written by :func:`save_model` (or by ``eacfer train``) in eval mode.

    Example:
        >>> net, info = load_model("runs/demo/model.pt")  # doctest: +SKIP
        >>> info.class_names[:2]                          # doctest: +SKIP
        ['Surprise', 'Fear']
    """
    from eacfer.models import create_model

    payload = load_checkpoint(path)
    info = info_from_payload(payload, str(path))
    try:
        net = create_model(info.backbone, num_classes=info.num_classes)
    except KeyError as e:
        raise CheckpointError(f"{path}: {e}") from None
    try:
        net.load_state_dict(payload["state_dict"], strict=True)
    except (RuntimeError, KeyError, TypeError, AttributeError, ValueError) as e:
        raise CheckpointError(f"{path}: weights do not fit backbone {info.backbone!r}: {str(e).splitlines()[0]}") from None
    return net.to(device).eval(), info
