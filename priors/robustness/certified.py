"""Certified robust accuracy from a global l2 Lipschitz bound (Tsuzuku, Sato, Sugiyama, NeurIPS 2018).

If ``x -> f(x) in R^K`` is L-Lipschitz in l2, each difference ``f_y - f_j`` is ``sqrt(2) L``-Lipschitz
(``||e_y - e_j|| = sqrt(2)``), so the prediction ``y`` cannot change within radius ``eps`` when the
margin ``f_y(x) - max_{j != y} f_j(x)`` exceeds ``sqrt(2) L eps``.  A sample is *certified* at eps
when it is correctly classified and that inequality holds.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

__all__ = ["margins", "certified_radius", "certified_accuracy", "certified_curve", "lmt_logits"]


def _check(logits: torch.Tensor, labels: torch.Tensor, num_classes: int | None) -> None:
    if logits.dim() != 2 or labels.dim() != 1 or logits.shape[0] != labels.shape[0]:
        raise ValueError(f"logits must be (N, K) and labels (N,), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    if num_classes is not None and logits.shape[1] != num_classes:
        raise ValueError(f"logits have {logits.shape[1]} classes but num_classes={num_classes}; pass the right num_classes")
    if logits.shape[1] < 2:
        raise ValueError("certification needs at least 2 classes")


def margins(logits: torch.Tensor, labels: torch.Tensor, *, num_classes: int | None = None) -> torch.Tensor:
    """``f_y(x) - max_{j != y} f_j(x)`` per sample (negative when misclassified).

    Examples
    --------
    >>> margins(torch.tensor([[2.0, 0.5, 1.0]]), torch.tensor([0])).tolist()
    [1.0]
    """
    _check(logits, labels, num_classes)
    true = logits.gather(1, labels[:, None])[:, 0]
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return true - others.max(dim=1).values


def certified_radius(logits: torch.Tensor, labels: torch.Tensor, *, lipschitz: float,
                     num_classes: int | None = None) -> torch.Tensor:
    """Certified l2 radius ``margin / (sqrt(2) L)`` (0 for misclassified samples)."""
    if not lipschitz > 0 or not math.isfinite(lipschitz):
        raise ValueError(f"lipschitz must be a finite float > 0, got {lipschitz!r}")
    return (margins(logits, labels, num_classes=num_classes) / (math.sqrt(2) * lipschitz)).clamp_min(0.0)


def certified_accuracy(logits: torch.Tensor, labels: torch.Tensor, *, lipschitz: float, eps: float,
                       num_classes: int | None = None) -> float:
    """Fraction of samples with margin ``> sqrt(2) L eps`` (``eps = 0``: plain accuracy).

    Examples
    --------
    >>> z = torch.tensor([[3.0, 0.0], [0.0, 0.1], [1.0, 0.0]])
    >>> certified_accuracy(z, torch.tensor([0, 1, 0]), lipschitz=1.0, eps=1.0, num_classes=2)
    0.3333333333333333
    """
    m = margins(logits, labels, num_classes=num_classes)
    return float((m > math.sqrt(2) * lipschitz * eps).double().mean())


def certified_curve(logits: torch.Tensor, labels: torch.Tensor, *, lipschitz: float, eps: Sequence[float],
                    num_classes: int | None = None) -> list[float]:
    """Certified accuracy at each radius in ``eps``."""
    return [certified_accuracy(logits, labels, lipschitz=lipschitz, eps=e, num_classes=num_classes) for e in eps]


def lmt_logits(logits: torch.Tensor, labels: torch.Tensor, *, lipschitz: float, eps: float) -> torch.Tensor:
    """Lipschitz-margin training (Tsuzuku et al.): add ``sqrt(2) L eps`` to every logit but the true one."""
    offset = math.sqrt(2) * lipschitz * eps
    return logits + offset * (1.0 - torch.nn.functional.one_hot(labels, logits.shape[1]).to(logits.dtype))
