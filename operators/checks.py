"""Argument checks shared by the data terms (``operators.fidelity``) and the priors (``priors``).

It lives here because ``priors`` may import ``operators`` but never the other way round.
"""

from __future__ import annotations

import math
import numbers

from torch import Tensor

__all__ = ["check_tau"]


def check_tau(tau: float, *, allow_zero: bool = True) -> float:
    """``tau``, a prox step, as a finite float: ``>= 0`` (``allow_zero``) or ``> 0``; else a one-line error.

    A prior's prox at ``tau = 0`` is the identity, so priors accept it; a data term's prox
    divides by ``tau`` and asks for ``allow_zero=False``. A one-element tensor is accepted.

    Examples
    --------
    >>> check_tau(0.5)
    0.5
    >>> check_tau(0.0, allow_zero=False)
    Traceback (most recent call last):
        ...
    ValueError: tau must be finite and > 0, got 0.0
    """
    if isinstance(tau, Tensor):
        if tau.numel() != 1:
            raise ValueError("tau must be a scalar; pass a float step")
        tau = float(tau)
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real):
        raise TypeError(f"tau must be a float, got {type(tau).__name__}")
    t = float(tau)
    if not math.isfinite(t) or t < 0 or (t == 0 and not allow_zero):
        raise ValueError(f"tau must be finite and {'>=' if allow_zero else '>'} 0, got {tau!r}")
    return t
