"""Reading ``resnet50_ft_weight.pkl`` (models/resnet_caffe.py): the restricted unpickler and the weights loader.

Specification (module docstring, ``load_numpy_pickle`` / ``load_msceleb_weights`` docstrings, and the file itself):
the published pickle was written by Python 2 with numpy 1.x, so its array bytes are Python 2 ``str`` objects
(decoded as latin1) and its globals name ``numpy.core``; Python 3 protocol-2 pickles carry the bytes as
``_codecs.encode(text, "latin1")`` instead. Only numpy array reconstruction is allowed, ``_codecs.encode`` only
with the latin1 codec (any spelling Python accepts for it) and a ``str``; numpy >= 1.24 is supported, i.e. both
``numpy.core`` (1.x) and ``numpy._core`` (2.x, where ``numpy.core`` is a deprecated alias). The loader refuses a
state that is not a Caffe ResNet-50 (missing, unexpected or mis-shaped keys, up to 3 named per kind), drops the
8631-way identity ``fc`` and logs what it loaded. Tiny pickles except where a whole ResNet-50 state is needed.
"""

from __future__ import annotations

import codecs
import importlib
import io
import logging
import pickle
import struct
import warnings

import numpy as np
import pytest
import torch

from eacfer.models import resnet_caffe
from eacfer.models.resnet_caffe import (
    CaffeResNet50,
    UnsafePickleError,
    load_msceleb_weights,
    load_numpy_pickle,
)

pytestmark = pytest.mark.spec  # written from the paper or a specification (`pytest -m spec`)


class _Encode:
    """Pickles as a call of ``_codecs.encode(*args)`` (what protocol-2 pickles of bytes contain)."""

    def __init__(self, *args):
        self.args = args

    def __reduce__(self):
        return (codecs.encode, self.args)


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler, whose dispatch table can be changed
    """Writes ``bytes`` the way Python 2 wrote ``str``: SHORT_BINSTRING / BINSTRING (raw bytes, no codec)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        self.write((pickle.SHORT_BINSTRING + bytes([n])) if n < 256 else (pickle.BINSTRING + struct.pack("<i", n)))
        self.write(obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def _py2_numpy1_pickle(obj) -> bytes:
    """``obj`` as the Python 2 / numpy 1.x file would hold it: py2 strings and ``numpy.core`` globals."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    data = buf.getvalue()
    assert b"_codecs" not in data and b"numpy._core" in data
    return data.replace(b"numpy._core", b"numpy.core")  # GLOBAL opcodes are newline-terminated text


def _write(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# ------------------------------------------------------------------------------------ _codecs.encode


@pytest.mark.parametrize("spelling", ["latin1", "latin-1", "Latin_1", "ISO-8859-1", "iso_8859_1", "ISO8859-1"])
def test_every_spelling_of_latin1_is_admitted(tmp_path, spelling):
    codecs.lookup(spelling)  # a spelling Python itself accepts for the latin1 codec
    text = "\x00\x7f\x80\xe9\xff"
    out = load_numpy_pickle(_write(tmp_path, "p.pkl", pickle.dumps({"raw": _Encode(text, spelling)}, protocol=2)))
    assert out == {"raw": bytes([0, 0x7F, 0x80, 0xE9, 0xFF])}  # one byte per character, as latin1 maps them


@pytest.mark.parametrize("args, encoding", [(("abc", "rot13"), "rot13"), (("abc", "utf-8"), "utf-8"),
                                            (("abc", "hex"), "hex"), (("abc",), "utf-8")])
def test_other_codecs_are_refused_naming_the_codec(tmp_path, args, encoding):
    """A one-argument ``_codecs.encode(text)`` means UTF-8 (its real default), so it is refused too."""
    path = _write(tmp_path, "codec.pkl", pickle.dumps({"raw": _Encode(*args)}, protocol=2))
    with pytest.raises(UnsafePickleError) as e:
        load_numpy_pickle(path)
    assert str(e.value) == f"{path}: refusing _codecs.encode with encoding {encoding!r}"


def test_encoding_a_non_string_is_refused(tmp_path):
    path = _write(tmp_path, "bytes.pkl", pickle.dumps({"raw": _Encode(b"abc", "latin1")}, protocol=2))
    with pytest.raises(UnsafePickleError) as e:
        load_numpy_pickle(path)
    assert str(e.value) == f"{path}: refusing _codecs.encode of a non-string"


# ------------------------------------------------------------------------------------ the file's format


def test_python2_numpy1_pickle_loads(tmp_path):
    """The published file's format: py2 ``str`` array bytes (non-ASCII: decoded as latin1) and numpy.core names."""
    arrays = {"conv1.weight": np.array([[-1.5, 2.25], [0.1, -3e4]], np.float32), "n": np.arange(3, dtype=np.int64)}
    data = _py2_numpy1_pickle(arrays)
    assert b"numpy.core.multiarray\n_reconstruct" in data
    assert any(b > 127 for b in arrays["conv1.weight"].tobytes())  # not decodable as ASCII
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DeprecationWarning from the old numpy.core path either
        out = load_numpy_pickle(_write(tmp_path, "py2.pkl", data))
    assert set(out) == set(arrays)
    for k, v in arrays.items():
        assert out[k].dtype == v.dtype
        np.testing.assert_array_equal(out[k], v)


def _fake_numpy(monkeypatch, *, gone: tuple[str, ...] = (), deprecated: tuple[str, ...] = ()) -> list[str]:
    """Pretend to be another numpy: modules under ``gone`` do not exist; importing ``deprecated`` ones warns."""
    real = importlib.import_module
    asked: list[str] = []

    def fake(name, package=None):
        asked.append(name)
        if name.startswith(gone):
            raise ModuleNotFoundError(f"No module named {name!r}")
        if name.startswith(deprecated):
            warnings.warn(f"{name} is deprecated", DeprecationWarning, stacklevel=2)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", fake)
    return asked


def test_numpy2_pickle_loads_on_numpy1(tmp_path, monkeypatch):
    """numpy 1.x has no ``numpy._core``: a pickle written by numpy 2 resolves through ``numpy.core``."""
    arr = np.array([1.5, -2.0], np.float32)
    path = _write(tmp_path, "np2.pkl", pickle.dumps({"a": arr}, protocol=4))
    asked = _fake_numpy(monkeypatch, gone=("numpy._core",))
    out = load_numpy_pickle(path)
    np.testing.assert_array_equal(out["a"], arr)
    assert asked[:2] == ["numpy._core.multiarray", "numpy.core.multiarray"]


def test_numpy1_pickle_uses_numpy_core_on_numpy2(tmp_path, monkeypatch):
    """On numpy 2 the pickle's ``numpy.core`` is looked up as ``numpy._core`` first (no deprecated alias)."""
    arr = np.array([[0.5, -7.0]], np.float32)
    path = _write(tmp_path, "np1.pkl", _py2_numpy1_pickle({"a": arr}))
    asked = _fake_numpy(monkeypatch, deprecated=("numpy.core",))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        out = load_numpy_pickle(path)
    np.testing.assert_array_equal(out["a"], arr)
    assert "numpy._core.multiarray" in asked and not [n for n in asked if n.startswith("numpy.core")]
    # and a numpy without the old alias at all still reads it
    _fake_numpy(monkeypatch, gone=("numpy.core",))
    np.testing.assert_array_equal(load_numpy_pickle(path)["a"], arr)


def test_unresolvable_numpy_global_is_refused(tmp_path, monkeypatch):
    path = _write(tmp_path, "np2.pkl", pickle.dumps({"a": np.zeros(2, np.float32)}, protocol=4))
    _fake_numpy(monkeypatch, gone=("numpy._core", "numpy.core"))
    with pytest.raises(UnsafePickleError) as e:
        load_numpy_pickle(path)
    assert str(e.value) == f"{path}: cannot resolve numpy._core.multiarray._reconstruct in this numpy version"


def test_unreadable_files_are_named_with_the_reason(tmp_path):
    missing = tmp_path / "nope.pkl"
    with pytest.raises(FileNotFoundError) as e:
        load_numpy_pickle(missing)
    assert str(e.value) == f"{missing}: pretrained weights file not found"
    junk = _write(tmp_path, "junk.pkl", b"not a pickle at all")
    with pytest.raises(ValueError) as e:
        load_numpy_pickle(junk)
    assert str(e.value).startswith(f"{junk}: not a readable weights pickle (UnpicklingError: ")
    listed = _write(tmp_path, "list.pkl", pickle.dumps([np.zeros(1, np.float32)], protocol=4))
    with pytest.raises(ValueError) as e:
        load_numpy_pickle(listed)
    assert str(e.value) == f"{listed}: expected a dict of numpy arrays, found list"


# ------------------------------------------------------------------------------------ load_msceleb_weights


def test_wrong_shapes_name_the_first_three_in_state_order(tmp_path):
    keys = ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean"]  # CaffeResNet50's first four entries
    path = _write(tmp_path, "shapes.pkl", pickle.dumps({k: np.zeros(1, np.float32) for k in keys}, protocol=4))
    trunk = CaffeResNet50()
    assert list(trunk.state_dict())[:4] == keys
    with pytest.raises(ValueError) as e:
        load_msceleb_weights(trunk, path)
    assert str(e.value).endswith("; wrong shapes: conv1.weight (1,)≠(64, 3, 7, 7), bn1.weight (1,)≠(64,), "
                                 "bn1.bias (1,)≠(64,)")


def test_full_state_loads_converted_to_the_trunk_dtype_and_is_logged(tmp_path, caplog):
    """The weights land in the trunk (the 8631-way fc dropped), as float32, and one INFO line names the file."""
    trunk = CaffeResNet50()
    state = {k: v.numpy() + 1.5 for k, v in trunk.state_dict().items() if not k.endswith("num_batches_tracked")}
    state["conv1.weight"] = state["conv1.weight"].astype(np.float64) + 1e-9  # not representable in float32
    state["fc.weight"], state["fc.bias"] = np.zeros((8631, 1), np.float32), np.zeros(8631, np.float32)
    path = _write(tmp_path, "resnet50_ft_weight.pkl", pickle.dumps(state, protocol=4))
    with caplog.at_level(logging.INFO, logger=resnet_caffe.__name__):
        load_msceleb_weights(trunk, path)
    own = trunk.state_dict()
    assert own["conv1.weight"].dtype == torch.float32
    torch.testing.assert_close(own["conv1.weight"], torch.from_numpy(state["conv1.weight"]).float(), rtol=0, atol=0)
    np.testing.assert_array_equal(own["layer4.2.bn3.running_var"].numpy(), state["layer4.2.bn3.running_var"])
    assert int(own["bn1.num_batches_tracked"]) == 0  # absent from the file: kept
    lines = [r.getMessage() for r in caplog.records if r.name == resnet_caffe.__name__]
    assert lines == [f"loaded MS-Celeb/VGGFace2 ResNet-50 weights from {path}"]


# ------------------------------------------------------------------------------------ registry entry


def test_backbone_spec():
    """The registry caches ``specs()``; call it directly so its own values are checked."""
    (spec,) = resnet_caffe.specs()
    assert spec.name == "resnet50_msceleb"
    assert spec.builder is resnet_caffe._build
    assert "Caffe" in spec.description and "MS-Celeb-1M" in spec.description
    assert "resnet50_ft_weight.pkl" in spec.pretrained_help
