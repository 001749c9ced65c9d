"""Forward differences with Neumann boundary, the linear part ``D`` of total variation.

``(Dx)_h[i, j] = x[i, j+1] - x[i, j]`` for ``j < W-1`` and ``0`` on the last column, likewise
``(Dx)_v`` with the last row set to zero (deepinv's discretisation), channel by channel.  One
operator for the whole project: the TV prior and its prox (:mod:`priors.tv`,
:mod:`priors.tv_solvers`) and the primal-dual solvers (through :class:`TVSplit`) all use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from .base import check_image

__all__ = ["grad2d", "grad2d_adjoint", "FiniteDifference", "TVSplit", "tv_value"]


def grad2d(x: Tensor) -> tuple[Tensor, Tensor]:
    """Forward differences with Neumann boundary: returns ``((Dx)_h, (Dx)_v)``, each shaped like x."""
    gh = torch.zeros_like(x)
    gv = torch.zeros_like(x)
    torch.sub(x[..., :, 1:], x[..., :, :-1], out=gh[..., :, :-1])
    torch.sub(x[..., 1:, :], x[..., :-1, :], out=gv[..., :-1, :])
    return gh, gv


def grad2d_adjoint(ph: Tensor, pv: Tensor) -> Tensor:
    """Adjoint of :func:`grad2d` (minus the discrete divergence); entries of ``ph`` on the last
    column and of ``pv`` on the last row are ignored, as D never produces them."""
    out = torch.zeros_like(ph)
    out[..., :, :-1] -= ph[..., :, :-1]
    out[..., :, 1:] += ph[..., :, :-1]
    out[..., :-1, :] -= pv[..., :-1, :]
    out[..., 1:, :] += pv[..., :-1, :]
    return out


class FiniteDifference:
    """:func:`grad2d` as one linear map ``D``: (B, C, H, W) -> (B, C, 2, H, W), vertical then horizontal.

    The ``K`` of TV written as ``h(K x)`` for primal-dual solvers; its adjoint is
    :func:`grad2d_adjoint` and ``‖D‖² <= 8`` (Chambolle, J. Math. Imaging Vis. 20, 2004).

    Examples
    --------
    >>> D = FiniteDifference()
    >>> x, p = torch.randn(1, 1, 5, 6, dtype=torch.float64), torch.randn(1, 1, 2, 5, 6, dtype=torch.float64)
    >>> abs(float((D.forward(x) * p).sum() - (x * D.adjoint(p)).sum())) < 1e-12
    True
    """

    norm_sq: float = 8.0

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        gh, gv = grad2d(x)
        return torch.stack((gv, gh), dim=2)

    @staticmethod
    def adjoint(p: Tensor) -> Tensor:
        return grad2d_adjoint(p[:, :, 1], p[:, :, 0])

    def linear_part(self, *, weight: float, isotropic: bool = True) -> "TVSplit":
        """``weight * TV`` on top of this operator (see :class:`TVSplit`)."""
        return TVSplit(weight=float(weight), isotropic=bool(isotropic))


@dataclass(frozen=True)
class TVSplit:
    """``weight * TV(x) = h(D x)`` with ``D`` the :class:`FiniteDifference` operator: what PDHG asks of TV.

    ``h`` is ``weight`` times the l2,1 (isotropic) or l1 (anisotropic) norm, so ``h*`` is the
    indicator of the dual-norm ball of radius ``weight`` and ``prox_{σ h*}`` the projection onto
    that ball, whatever ``σ``: the primal-dual iteration needs no inner TV-prox solves.
    """

    weight: float
    isotropic: bool = True

    forward = staticmethod(FiniteDifference.forward)
    adjoint = staticmethod(FiniteDifference.adjoint)
    norm_sq: ClassVar[float] = FiniteDifference.norm_sq

    def prox_conj(self, p: Tensor, sigma: float) -> Tensor:
        if self.isotropic:
            mag = torch.linalg.vector_norm(p, dim=2, keepdim=True)
            return p / torch.clamp(mag / max(self.weight, 1e-300), min=1.0)
        return torch.clamp(p, -self.weight, self.weight)

    @property
    def description(self) -> str:
        kind = "isotropic" if self.isotropic else "anisotropic"
        return f"{kind} TV: K = forward differences (Neumann), ‖K‖² <= 8"


def tv_value(x: Tensor, *, isotropic: bool = True) -> Tensor:
    """Total variation of each batch element (channels summed), shape (B,)."""
    check_image(x, "x")
    gh, gv = grad2d(x)
    if isotropic:
        per_pixel = torch.sqrt(gh * gh + gv * gv)
    else:
        per_pixel = gh.abs() + gv.abs()
    return per_pixel.flatten(1).sum(1)
