"""Fast training path: decoded uint8 cache, batched on-device augmentation, no per-batch host sync, DDP.

Selected with ``eacfer train --pipeline fast`` (the default on CUDA); ``--pipeline reference`` keeps the
faithful per-image CPU pipeline. Modules: :mod:`.cache` (decoded-image cache keyed by dataset content),
:mod:`.gpu_augment` (batched EAC augmentation with the reference's distributions), :mod:`.loader`
(device-side loader), :mod:`.step` (train step, epoch and evaluation loops), :mod:`.distributed`
(torchrun / DDP helpers) and :mod:`.runner` (what :func:`eacfer.training.trainer.train` plugs in).
"""
