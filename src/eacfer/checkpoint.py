"""Self-describing model files and safe, atomic checkpoint I/O.

A model file (``model.pt``) is a plain dict of tensors, strings and numbers, loadable with
``torch.load(weights_only=True)`` — no pickled classes, so loading never executes code:

    format="eacfer-model", format_version, backbone, num_classes, class_names, input_size, mean, std,
    train_config, metrics, eacfer_version, state_dict, and optionally face_size, face_margin, face_shift, provenance,
    temperature, calibration

The metadata itself (:class:`~eacfer.modelinfo.ModelInfo`, its validation) lives in :mod:`eacfer.modelinfo`,
which imports no torch; this module reads and writes the ``.pt`` files and needs torch.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from eacfer.modelinfo import (
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    CheckpointError,
    ModelInfo,
    describe_content,
    first_sentence,
    folder_hint,
    info_from_payload,
)
from eacfer.utils.atomic import atomic_path

log = logging.getLogger(__name__)


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


def _check_torch_zip(path: Path) -> bytes:
    """The file's first 8 bytes; a ``torch.save`` zip cut short (no end record) raises a plain message here,
    before torch reports it as an internal miniz error."""
    import zipfile

    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04") and not zipfile.is_zipfile(path):  # the central directory is at the end
        raise CheckpointError(f"{path}: truncated: the zip archive's end is missing (copy or save interrupted?)")
    return head


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
