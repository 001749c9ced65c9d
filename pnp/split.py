"""The split ``z = A x`` of a data term whose prox is known only in ``z`` (Poisson behind a blur):
the helpers ADMM, DRS and PDHG share (see :mod:`pnp.algorithms`)."""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor


def _has_prox(f: Any) -> bool:
    return callable(getattr(f, "prox", None)) and bool(getattr(f, "has_prox", True))


def _has_data_prox(f: Any) -> bool:
    return (bool(getattr(f, "has_data_prox", False)) and callable(getattr(f, "data_prox", None))
            and getattr(f, "operator", None) is not None)


def split_form(fidelity: Any, algorithm: str) -> bool:
    """Whether ``algorithm`` ("ADMM", "DRS", "PDHG") runs ``fidelity`` through the split ``z = A x``.

    ADMM and DRS split a data term without a prox that has one in ``z = A x`` (``data_prox``).
    PDHG also splits every data term without a Lipschitz gradient (``smooth`` False, e.g. Poisson
    with a diagonal ``A``), so that the prior keeps its own block (its gradient, its dual or its
    prox) rather than the Moreau form ``K = I``.

    Examples
    --------
    >>> import torch
    >>> from operators import Blur, Identity, PoissonNLL, gaussian
    >>> y = torch.rand(1, 1, 8, 8)
    >>> split_form(PoissonNLL(Blur(gaussian(1.0)), y, gain=0.01), "ADMM")
    True
    >>> diagonal = PoissonNLL(Identity(), y, gain=0.01)  # has its own prox
    >>> split_form(diagonal, "ADMM"), split_form(diagonal, "PDHG")
    (False, True)
    """
    if not _has_data_prox(fidelity):
        return False
    if not _has_prox(fidelity):
        return True
    return str(algorithm).upper() == "PDHG" and not bool(getattr(fidelity, "smooth", False))


def _operator_norm_sq(f: Any) -> float:
    """``‖A‖²`` of the data term's operator at the data's shape (exact or a power-iteration bound)."""
    op = f.operator
    shape = f._x_shape() if callable(getattr(f, "_x_shape", None)) else None
    return float(op.norm(shape)) ** 2


def _curvature(f: Any) -> float | None:
    fn = getattr(f, "data_curvature", None)
    c = fn() if callable(fn) else None
    return float(c) if c is not None and math.isfinite(float(c)) and float(c) > 0 else None


class _SplitLS:
    """The ``x``-step of the ADMM/DRS split: ``(AᵀA + I) x = rhs``, closed form or warm-started CG."""

    cg_tol: float = 1e-7
    cg_max_iter: int = 500

    def __init__(self, fidelity: Any) -> None:
        self.A = fidelity.operator
        self.closed_form = bool(getattr(self.A, "has_closed_form_normal", False))

    def solve(self, rhs: Tensor, warm: Tensor | None) -> Tensor:
        x0 = warm if warm is not None and warm.shape == rhs.shape else None
        return self.A.solve_normal(rhs, 1.0, x0=x0, tol=self.cg_tol, max_iter=self.cg_max_iter)

    def describe(self) -> str:
        if self.closed_form:
            return f"(AᵀA + I) x = b solved in closed form ({type(self.A).__name__})"
        return (f"(AᵀA + I) x = b solved by conjugate gradient to relative residual {self.cg_tol:g}, warm-started "
                f"({type(self.A).__name__})")


def _split_description(alg: Any) -> str:
    f = alg.fidelity
    return (f"data term {type(f).__name__} through z = A x: its prox in z in closed form; "
            f"{alg._ls.describe()}")
