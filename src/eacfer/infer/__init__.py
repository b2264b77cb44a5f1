"""Inference: face detectors (:mod:`.detect`), RAF-DB-like crops (:mod:`.align`), torch/onnxruntime
classifiers (:mod:`.runtime.backends`), the streaming :class:`~eacfer.infer.predictor.Predictor` and its typed
results (:mod:`.results`), frame sources (:mod:`.stream.sources`), tracking (:mod:`.stream.tracking`), video and batch
jobs (:mod:`.jobs.video`, :mod:`.jobs.photos`) and drawing (:mod:`.viz`).

Nothing is imported here, so that ``import eacfer.infer.results`` stays free of cv2 and onnxruntime.

Example:
    >>> from eacfer.infer.predictor import Predictor  # doctest: +SKIP
    >>> with Predictor.from_checkpoint("model.pt") as p:  # doctest: +SKIP
    ...     faces = p.predict("group.jpg").faces
"""
