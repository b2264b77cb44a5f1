"""The face recipe: how an image and its detections become model inputs, and model outputs become faces.

One recipe for every caller — :class:`~eacfer.infer.predictor.Predictor` (photos, videos, the app, the
server), the worker processes of ``eacfer predict --workers`` (:mod:`eacfer.infer.jobs.pool`) and the int8
calibration crops (:mod:`eacfer.infer.runtime.calibration`) — so a face is cropped, resized and labelled the same
way everywhere, as the model was trained (a crop that differs between them is an accuracy bug).

* :meth:`FaceRecipe.inputs`: image + detections → N×S×S×3 uint8 model inputs (align, crop at the model's
  ``face_size``, resize to its ``input_size``: :func:`eacfer.infer.align.model_inputs`); the classifier
  backends normalise them with the model file's mean/std.
* :func:`face_results`: detections + probabilities (+ CAMs) → :class:`~eacfer.infer.results.FaceResult`.

A :class:`FaceRecipe` is a small frozen dataclass (picklable: worker processes get it as it is) made from the
model file's metadata by :meth:`FaceRecipe.for_model`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from eacfer.infer.align import DEFAULT_MARGIN, model_inputs
from eacfer.infer.labelling import top_label
from eacfer.infer.results import FaceResult


@dataclass(frozen=True)
class FaceRecipe:
    """The face geometry of a model: crop side, training face size, margin, shift, framing.

    Example:
        >>> from eacfer.infer.detect import Detection
        >>> r = FaceRecipe(input_size=64)
        >>> r.inputs(np.zeros((120, 160, 3), np.uint8), [Detection((40.0, 30.0, 50.0, 60.0), 0.9)]).shape
        (1, 64, 64, 3)
    """

    input_size: int
    #: side of the face images the model was trained on (RAF-DB: 100); None: crop at input_size directly
    face_size: int | None = None
    #: margin around the detector's box, a fraction of the box on each side
    margin: float = DEFAULT_MARGIN
    #: crop centre moved up by this fraction of the box side
    shift: float = 0.0
    #: the whole image is the face (``--detector none``: already-aligned crops)
    whole_image: bool = False
    #: ``box`` (detector box, eyes levelled) or ``landmarks`` (eyes and mouth onto RAF-DB's template)
    align: str = "box"

    @classmethod
    def for_model(cls, info: Any, whole_image: bool = False, align: str = "box") -> FaceRecipe:
        """The recipe a model file asks for (its :class:`~eacfer.modelinfo.ModelInfo`: input and face size,
        ``face_margin`` — eacfer's default 0.1 when absent — and ``face_shift``).

        Example:
            >>> from eacfer.modelinfo import ModelInfo
            >>> FaceRecipe.for_model(ModelInfo("b", ["a", "b"], 64, [0.5] * 3, [0.5] * 3, face_size=100)).margin
            0.1
        """
        margin = DEFAULT_MARGIN if info.face_margin is None else float(info.face_margin)
        return cls(int(info.input_size), info.face_size, margin, float(info.face_shift or 0.0), bool(whole_image),
                   align)

    def inputs(self, rgb: np.ndarray, dets: Sequence[Any]) -> np.ndarray:
        """N×input_size×input_size×3 uint8 model inputs of ``dets`` in ``rgb``, made the way the training
        images were (:func:`eacfer.infer.align.model_inputs`).

        Example:
            >>> FaceRecipe(32, whole_image=True).inputs(np.zeros((50, 40, 3), np.uint8), []).shape
            (1, 32, 32, 3)
        """
        return model_inputs(rgb, list(dets), self.input_size, self.face_size, self.margin,
                            whole_image=self.whole_image, shift=self.shift, align=self.align)

    def crop_affine(self, det: Any, width: int, height: int) -> np.ndarray:
        """Image pixels → crop pixels for ``det`` in a ``width``×``height`` image (maps a CAM back onto it).

        Example:
            >>> float(FaceRecipe(10, whole_image=True).crop_affine(None, 20, 10)[0, 0])
            0.5
        """
        size = self.input_size
        if self.whole_image:
            return np.array([[size / width, 0, 0], [0, size / height, 0]], np.float64)
        from eacfer.infer.align import crop_transform

        # the same square at any crop side: the map into the input_size crop is all the CAMs need
        return crop_transform(det, size, self.margin, self.shift)


def face_results(dets: Sequence[Any], probs: np.ndarray, cams: np.ndarray | None, recipe: FaceRecipe,
                 class_names: Sequence[str], min_confidence: float, image_size: tuple[int, int]
                 ) -> list[FaceResult]:
    """One :class:`FaceResult` per detection: top class (``uncertain`` below ``min_confidence``, see
    :func:`eacfer.infer.labelling.top_label`), probabilities and, when ``cams`` were computed, the CAM of
    the top class and the image→crop map that places it on the image (``image_size`` = width, height).

    Example:
        >>> faces = face_results(dets, probs, None, recipe, names, 0.0, (640, 480))  # doctest: +SKIP
    """
    names = tuple(class_names)
    w, h = image_size
    out: list[FaceResult] = []
    for i, d in enumerate(dets):
        k, emotion = top_label(probs[i], names, min_confidence)
        out.append(FaceResult(
            box=tuple(float(v) for v in d.box), score=float(d.score),  # type: ignore[arg-type]
            keypoints=None if d.keypoints is None else np.asarray(d.keypoints, np.float32),
            emotion=emotion, class_index=k, probabilities=probs[i], class_names=names,
            track_id=getattr(d, "track_id", None),
            cam=None if cams is None else cams[i, k],
            crop_affine=None if cams is None else recipe.crop_affine(d, w, h), crop_size=recipe.input_size,
        ))
    return out
