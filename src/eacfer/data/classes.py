"""Emotion class names across datasets: one synonym table, and the mapping between two class lists.

Every dataset spells the same emotions differently (RAF-DB ``Happiness``, FER2013 ``Happy``, folder exports
``happy``, AffectNet ``Happy``). :data:`SYNONYMS` maps every known spelling (lower case) to one canonical name
— RAF-DB's names plus ``Contempt``:

============  ==========================================================
canonical     also accepted (case-insensitive)
============  ==========================================================
Surprise      surprised, surprize
Fear          fearful, scared, afraid
Disgust       disgusted
Happiness     happy, joy, happiness
Sadness       sad, sadness
Anger         angry, anger, mad
Neutral       neutral, calm
Contempt      contemptuous
============  ==========================================================

:func:`match_classes` pairs a model's classes with a dataset's by canonical name (used by cross-dataset
evaluation, see :mod:`eacfer.training.evaluation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eacfer.constants import RAFDB_CLASSES

CANONICAL_CLASSES: tuple[str, ...] = (*RAFDB_CLASSES, "Contempt")

SYNONYMS: dict[str, str] = {
    **{c.lower(): c for c in CANONICAL_CLASSES},
    "surprised": "Surprise", "surprize": "Surprise",
    "fearful": "Fear", "scared": "Fear", "afraid": "Fear",
    "disgusted": "Disgust",
    "happy": "Happiness", "joy": "Happiness",
    "sad": "Sadness",
    "angry": "Anger", "mad": "Anger",
    "calm": "Neutral",
    "contemptuous": "Contempt",
}  # fmt: skip


def canonical_class(name: str) -> str | None:
    """The canonical name of a class spelling, or ``None`` when the table does not know it.

    Example:
        >>> canonical_class("happy"), canonical_class("ANGER"), canonical_class("boredom")
        ('Happiness', 'Anger', None)
    """
    return SYNONYMS.get(str(name).strip().lower())


@dataclass(frozen=True)
class ClassMapping:
    """How a model's classes line up with a dataset's (indices are positions in each list).

    ``shared`` holds ``(dataset index, model index)`` pairs in the dataset's class order; ``model_only``
    are model classes the dataset lacks (left out of the argmax); ``dataset_only`` are dataset classes the
    model cannot predict (their samples are skipped).
    """

    model_classes: tuple[str, ...]
    dataset_classes: tuple[str, ...]
    shared: tuple[tuple[int, int], ...]
    model_only: tuple[str, ...]
    dataset_only: tuple[str, ...]

    @property
    def identical(self) -> bool:
        """Same classes, same order: no mapping needed."""
        return list(self.model_classes) == list(self.dataset_classes)

    @property
    def shared_names(self) -> list[str]:
        """The dataset's names of the shared classes, in the dataset's order."""
        return [self.dataset_classes[d] for d, _ in self.shared]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (what ``metrics.json`` stores under ``class_mapping``)."""
        return {
            "model_classes": list(self.model_classes),
            "dataset_classes": list(self.dataset_classes),
            "matched": {self.dataset_classes[d]: self.model_classes[m] for d, m in self.shared},
            "model_only_excluded_from_argmax": list(self.model_only),
            "dataset_only_skipped": list(self.dataset_only),
        }


def match_classes(model_classes: Sequence[str], dataset_classes: Sequence[str]) -> ClassMapping:
    """Pair classes by exact name first, then by canonical name through :data:`SYNONYMS`.

    Raises ``ValueError`` when no class is shared.

    Example:
        >>> m = match_classes(RAFDB_CLASSES, ["Angry", "Happy", "Contempt"])
        >>> m.to_dict()["matched"], m.dataset_only, len(m.model_only)
        ({'Angry': 'Anger', 'Happy': 'Happiness'}, ('Contempt',), 5)
    """
    model, data = [str(c) for c in model_classes], [str(c) for c in dataset_classes]

    def key(name: str) -> str:
        return canonical_class(name) or name.strip().lower()

    model_index: dict[str, int] = {}
    for i, name in enumerate(model):
        model_index.setdefault(key(name), i)
    shared, dataset_only = [], []
    for d, name in enumerate(data):
        m = model.index(name) if name in model else model_index.get(key(name))
        if m is None:
            dataset_only.append(name)
        else:
            shared.append((d, m))
    used = {m for _, m in shared}
    if not shared:
        raise ValueError(f"dataset classes {data} do not match the model's {model}: no class in common "
                         "(names are matched through the synonym table in eacfer.data.classes)")
    model_only = [name for i, name in enumerate(model) if i not in used]
    return ClassMapping(tuple(model), tuple(data), tuple(shared), tuple(model_only), tuple(dataset_only))
