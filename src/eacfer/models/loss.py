"""The EAC loss: cross-entropy on the first view + λ · attention consistency with the flipped view.

    L = CE(logits(x), y) + λ · MSE(CAM(x), flip(CAM(x′)))

where x′ is the horizontal flip of x (mirrored or independently augmented, see
:mod:`eacfer.data.transforms`). Flipping the CAMs of x′ back puts both maps in x's frame; the official code
does it with ``grid_sample`` on a mirrored grid (``align_corners=True``), which at integer grid points is
exactly an index reversal along the width — ``torch.flip`` here (tests check the two agree).

Labels are class indices (N) or probability targets (N×K float, e.g. FERPlus vote distributions): then the
CE term is the cross-entropy against the distribution, ``-Σ_k p_k log softmax(z)_k`` averaged over the batch
(``F.cross_entropy`` with probability targets); the consistency term does not use labels and is unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def flip_cams(cams: torch.Tensor) -> torch.Tensor:
    """Mirror N×K×h×w attention maps along the width.

    Example:
        >>> flip_cams(torch.tensor([[[[1., 2., 3.]]]])).tolist()
        [[[[3.0, 2.0, 1.0]]]]
    """
    return torch.flip(cams, dims=(-1,))


def eac_loss(
    logits: torch.Tensor,
    cams: torch.Tensor,
    cams_of_flipped: torch.Tensor,
    labels: torch.Tensor,
    lam: float = 5.0,
) -> dict[str, torch.Tensor]:
    """EAC loss terms for a batch.

    Args:
        logits: N×K logits of the first view x (only x gets the CE term).
        cams: N×K×h×w CAMs of x.
        cams_of_flipped: N×K×h×w CAMs of the flipped view x′ (in x′'s frame; flipped back here).
        labels: N class indices, or N×K probability targets (soft labels).
        lam: λ, weight of the consistency term (paper: 5).

    Returns:
        ``{"loss": ce + lam * consistency, "ce": ..., "consistency": ...}`` (scalars).

    Example:
        >>> n, k = 2, 7
        >>> out = eac_loss(torch.zeros(n, k), torch.zeros(n, k, 7, 7), torch.zeros(n, k, 7, 7), torch.tensor([0, 3]))
        >>> round(out["ce"].item(), 4)
        1.9459
    """
    if cams.shape != cams_of_flipped.shape:
        raise ValueError(f"CAM shapes differ: {tuple(cams.shape)} vs {tuple(cams_of_flipped.shape)}")
    ce = _cross_entropy(logits, labels)
    consistency = F.mse_loss(cams, flip_cams(cams_of_flipped))
    return {"loss": ce + lam * consistency, "ce": ce, "consistency": consistency}


def ce_loss(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """The cross-entropy baseline in the same dict shape as :func:`eac_loss` (consistency = 0).

    ``labels``: N class indices or N×K probability targets.

    Example:
        >>> round(ce_loss(torch.zeros(1, 4), torch.tensor([[0.5, 0.5, 0.0, 0.0]]))["ce"].item(), 4)  # log 4
        1.3863
    """
    ce = _cross_entropy(logits, labels)
    return {"loss": ce, "ce": ce, "consistency": torch.zeros((), device=ce.device, dtype=ce.dtype)}


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean CE against class indices (N, integer) or probability targets (N×K, floating)."""
    if labels.is_floating_point():
        if labels.shape != logits.shape:
            raise ValueError(f"soft targets of shape {tuple(labels.shape)} do not match logits {tuple(logits.shape)}")
        return F.cross_entropy(logits, labels.to(logits.dtype))
    return F.cross_entropy(logits, labels)
