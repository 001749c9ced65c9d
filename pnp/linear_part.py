"""A prior written as ``g = h ∘ K`` for PDHG: the :class:`LinearPart` it asks the prior for.

Re-exported by :mod:`pnp.algorithms` (and ``pnp``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

__all__ = ["LinearPart", "linear_part_of"]


@dataclass(frozen=True)
class LinearPart:
    """A prior written as ``g(x) = h(K x)`` for PDHG.

    Parameters
    ----------
    forward : callable
        ``K``: image (B, C, H, W) → dual variable.
    adjoint : callable
        ``Kᵀ``.
    norm_sq : float
        Upper bound of ``‖K‖²``.
    prox_conj : callable
        ``prox_conj(p, sigma) = prox_{σ h*}(p)`` (``h`` includes the prior's weight).
    description : str
        One line for reports.

    Examples
    --------
    >>> from priors.classical import TV
    >>> lp = linear_part_of(0.1 * TV())
    >>> lp.norm_sq, lp.description
    (8.0, 'isotropic TV: K = forward differences (Neumann), ‖K‖² <= 8')
    """

    forward: Callable[[Tensor], Tensor]
    adjoint: Callable[[Tensor], Tensor]
    norm_sq: float
    prox_conj: Callable[[Tensor, float], Tensor]
    description: str = ""
    identity: bool = False  # K = I with the conjugate's prox from Moreau's identity (any prior with a prox)


def _identity_linear_part(prior: Any) -> LinearPart:
    def prox_conj(p: Tensor, sigma: float) -> Tensor:
        # Moreau decomposition: prox_{σ g*}(p) = p − σ prox_{g/σ}(p/σ)
        with torch.no_grad():
            return p - sigma * prior.prox(p / sigma, 1.0 / sigma)

    return LinearPart(lambda x: x, lambda p: p, 1.0, prox_conj, "K = I, prox of g* by Moreau's identity", True)


def linear_part_of(prior: Any) -> LinearPart:
    """Return ``g = h ∘ K`` for PDHG.

    The prior is asked, never recognised by its type: its own ``linear_part()`` gives a
    :class:`LinearPart`, an object with the same attributes (``priors.tv.TV`` returns a
    ``TVSplit``: the finite differences of ``priors.tv.grad2d`` and a dual-ball projection), or a
    ``(K, prox_conj)`` pair with ``K`` a ``LinearOperator`` exposing ``forward``/``adjoint``/``norm()``.
    A prior without ``linear_part`` gets ``K = I`` with the conjugate's prox from Moreau's
    identity (any prior with a prox).
    """
    fn = getattr(prior, "linear_part", None)
    if callable(fn):
        lp = fn()
        if isinstance(lp, LinearPart):
            return lp
        if isinstance(lp, tuple) and len(lp) == 2:
            K, prox_conj = lp
            return LinearPart(K.forward, K.adjoint, float(K.norm()) ** 2, prox_conj, f"K = {K!r} (from the prior)")
        if all(hasattr(lp, a) for a in ("forward", "adjoint", "norm_sq", "prox_conj")):
            return LinearPart(lp.forward, lp.adjoint, float(lp.norm_sq), lp.prox_conj,
                              str(getattr(lp, "description", "")))
        raise TypeError(f"prior.linear_part() must return a pnp.LinearPart or (K, prox_conj), got {type(lp).__name__}")
    return _identity_linear_part(prior)
