"""Training: the run folder and resume (:mod:`.trainer`), one epoch of training or evaluation
(:mod:`.engine`), datasets and loaders of a run (:mod:`.run_data`), metrics (:mod:`.metrics`),
evaluating a model file (:mod:`.evaluation`) and the GPU-side fast pipeline (:mod:`.fast`).

The folder is ``training``, not ``train``: ``eacfer.train`` is the public training function, and a
package of that name would shadow it. Nothing is imported here, so that ``import
eacfer.training.metrics`` does not pull in the trainer.

Example:
    >>> from eacfer.training.trainer import TrainConfig, train  # doctest: +SKIP
    >>> summary = train(TrainConfig(data="data/synth", out="runs/m", backbone="mobilenet_v2"))  # doctest: +SKIP
"""
