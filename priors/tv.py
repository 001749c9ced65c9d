"""Total variation: the prior ``weight * TV(x)``.

Discretisation (the same as deepinv's ``TVDenoiser``): forward differences with Neumann
boundary, i.e. ``(Dx)_h[i, j] = x[i, j+1] - x[i, j]`` for ``j < W-1`` and ``0`` on the last
column, likewise ``(Dx)_v`` with the last row set to zero. TV acts on each channel separately:

* isotropic   ``TV(x) = sum_{c,i,j} sqrt((Dx)_h^2 + (Dx)_v^2)``
* anisotropic ``TV(x) = sum_{c,i,j} |(Dx)_h| + |(Dx)_v|``

The differences and the value live in :mod:`priors.finite_differences`, the prox (dual FISTA then
over-relaxed primal-dual, with a certified duality-gap bound) in :mod:`priors.tv_solvers`; their
public names are re-exported here, where they have always been importable from.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from .base import Prior, ProxAccuracy
from .finite_differences import FiniteDifference, TVSplit, grad2d, grad2d_adjoint, tv_value
from .tv_solvers import TVProxInfo, tv_prox

__all__ = ["TV", "TVProxInfo", "TVSplit", "FiniteDifference", "tv_prox", "tv_value", "grad2d", "grad2d_adjoint"]


class TV(Prior):
    """Total variation prior ``weight * TV(x)`` (isotropic or anisotropic), channel by channel.

    Boundary: Neumann (forward differences, zero on the last row/column), as in deepinv.
    The prox is computed by dual FISTA (Beck & Teboulle 2009) followed by an over-relaxed
    Chambolle-Pock phase, and stops when the relative change of the iterate is below ``tol``
    (measured true error 0.04-1.2 ``tol`` for the default; see :func:`tv_prox`); ``last_info``
    holds the diagnostics of the latest call, including a certified gap bound.
    ``exact_prox`` is False; :meth:`prox_accuracy` returns the certified bound
    ``‖x − prox(v)‖ ≤ sqrt(2 gap)`` and solves to a requested bound (outer solvers drive it along
    a summable schedule, :mod:`pnp.inexact`); those calls always warm-start from the previous
    dual of the same shape and keep working in float64 once float32 could not certify a bound.

    Parameters
    ----------
    isotropic : bool
        l2 (isotropic, default) or l1 (anisotropic) coupling of the two differences.
    tol : float
        Relative-change tolerance of the inner solver (default 1e-4).
    max_iter : int
        Iteration cap of the inner solver (a RuntimeWarning is emitted when it stops there).
    warm_start : bool
        Reuse the previous dual solution as the starting point of the next call (useful in
        proximal-gradient loops; the result does not depend on it beyond ``tol``).
    weight : float
        Scaling of the functional (``0.1 * TV()`` is the same as ``TV(weight=0.1)``).

    Examples
    --------
    >>> prior = 0.1 * TV()
    >>> x = prior.prox(torch.rand(1, 1, 16, 16), tau=1.0)
    >>> tuple(x.shape)
    (1, 1, 16, 16)
    """

    convex = True
    has_value = True
    exact_prox = False
    reports_accuracy = True

    def __init__(
        self,
        *,
        isotropic: bool = True,
        tol: float = 1e-4,
        max_iter: int = 2000,
        warm_start: bool = False,
        weight: float = 1.0,
    ) -> None:
        super().__init__(weight=weight)
        if not isinstance(isotropic, bool):
            raise TypeError(f"isotropic must be a bool, got {type(isotropic).__name__}")
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (0 < tol < 1):
            raise ValueError(f"tol must be a float in (0, 1), got {tol!r}")
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(f"max_iter must be an int >= 1, got {max_iter!r}")
        self.isotropic = isotropic
        self.tol = float(tol)
        self.max_iter = max_iter
        self.warm_start = bool(warm_start)
        self.name = "tv" if isotropic else "tv-anisotropic"
        self.last_info: TVProxInfo | None = None
        self.last_accuracy: ProxAccuracy | None = None
        self._dual: Tensor | None = None
        self._work: tuple[tuple[int, ...], torch.dtype] | None = None  # (shape, dtype) after a float64 move

    def linear_part(self) -> TVSplit:
        """This prior as ``h(D x)`` (:class:`TVSplit`), the capability primal-dual solvers look for."""
        return TVSplit(weight=float(self.weight), isotropic=self.isotropic)

    def _value(self, x: Tensor) -> Tensor:
        return tv_value(x, isotropic=self.isotropic)

    def _prox(self, v: Tensor, t: float) -> Tensor:
        return self._solve(v, t, None, warn=True)[0]

    def _prox_accuracy(self, v: Tensor, t: float, target: float | None) -> tuple[Tensor, ProxAccuracy]:
        # a caller asking for a bound reads the accuracy itself: no warning from here
        return self._solve(v, t, target, warn=target is None)

    def _solve(self, v: Tensor, t: float, target: float | None, *, warn: bool) -> tuple[Tensor, ProxAccuracy]:
        outer = target is not None
        dual = self._dual if (self.warm_start or outer) else None
        work = self._work[1] if (outer and self._work is not None and self._work[0] == tuple(v.shape)) else None
        x, p, info = tv_prox(v, t, isotropic=self.isotropic, tol=self.tol, max_iter=self.max_iter, dual=dual,
                             error_tol=target, work_dtype=work)
        self.last_info = info
        if self.warm_start or outer:
            self._dual = p
        if outer and info.method == "iterative (float64)" and v.dtype != torch.float64:
            self._work = (tuple(v.shape), torch.float64)
        acc = ProxAccuracy(
            error_bound=info.error_abs, iterations=info.iterations, capped=info.capped, target=target,
            gap=info.gap, method=f"TV duality gap, ½‖x − x*‖² ≤ gap ({info.method})",
        )
        self.last_accuracy = acc
        if warn and info.capped:
            warnings.warn(
                f"TV prox reached max_iter={self.max_iter} before the relative change fell below "
                f"tol={self.tol:g}; raise max_iter or tol",
                RuntimeWarning,
                stacklevel=4,
            )
        return x, acc

    def __mul__(self, c: float) -> "TV":
        new = super().__mul__(c)
        if new is not NotImplemented:
            new._dual = None  # never share a warm-start buffer between copies
            new._work = None
        return new

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return (
            f"TV(isotropic={self.isotropic}, tol={self.tol:g}, max_iter={self.max_iter}, "
            f"weight={self.weight:g})"
        )
