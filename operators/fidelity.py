"""Data-fidelity functionals ``f(x)`` measuring the misfit between ``A x`` and the data ``y``.

All values are per batch element: :meth:`DataFidelity.value` returns a tensor of shape ``(B,)``
(the sum over channels and pixels of each image).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import LinearOperator, ScaledOperator
from .identity import Identity
from .checks import check_tau
from .sampling import Inpainting

__all__ = ["DataFidelity", "L2Fidelity", "PoissonNLL", "PenalizedFidelity"]


def _per_image(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1).sum(dim=1)


class DataFidelity:
    """Base class of data-fidelity terms ``f(x) = F(A x; y)``.

    Attributes
    ----------
    operator : LinearOperator
        The forward operator ``A``.
    y : Tensor
        The observation.
    has_prox : bool
        True when :meth:`prox` is available.
    smooth : bool
        True when ``f`` is differentiable everywhere with a globally Lipschitz gradient
        (then :meth:`lipschitz_grad` returns its constant).
    convex : bool
        True only when ``f`` is known to be convex; a subclass that does not declare it gets no
        convergence theorem that needs it.
    """

    has_prox: bool = False
    smooth: bool = False
    convex: bool = False
    #: True when :meth:`data_prox` (the prox in ``z = A x``) is available: splittings with ``z = A x``
    has_data_prox: bool = False

    def __init__(self, operator: LinearOperator, y: Tensor) -> None:
        if not isinstance(operator, LinearOperator):
            raise TypeError(f"operator must be a LinearOperator, got {type(operator).__name__}")
        if not isinstance(y, Tensor):
            raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
        if not torch.isfinite(y).all():
            raise ValueError("y contains NaN or Inf values: the observation must be finite")
        self.operator = operator
        self.y = y

    def value(self, x: Tensor) -> Tensor:
        """``f(x)`` per batch element, shape ``(B,)``."""
        raise NotImplementedError

    def grad(self, x: Tensor) -> Tensor:
        """Gradient ``nabla f(x)``, shape of ``x``."""
        raise NotImplementedError

    def prox(self, v: Tensor, tau: float) -> Tensor:
        """``argmin_x 1/2 ||x - v||^2 + tau f(x)``."""
        raise NotImplementedError(f"{type(self).__name__} has no prox (has_prox is False)")

    def lipschitz_grad(self) -> float | None:
        """Lipschitz constant of ``nabla f``, or None when it is not globally Lipschitz."""
        return None

    def data_prox(self, u: Tensor, tau: float) -> Tensor:
        """``argmin_z 1/2 ||z - u||^2 + tau F(z)``: the prox of the data term as a function of ``z = A x``.

        ``f(x) = F(A x)``; splitting algorithms that introduce ``z = A x`` (ADMM, DRS and PDHG in
        :mod:`pnp.algorithms`) need only this prox, whatever ``A`` is."""
        raise NotImplementedError(f"{type(self).__name__} has no data_prox (has_data_prox is False)")

    def data_prox_conj(self, p: Tensor, sigma: float) -> Tensor:
        """``prox_{sigma F*}(p)`` by Moreau's identity ``p - sigma prox_{F/sigma}(p / sigma)``
        (Bauschke & Combettes 2017, Thm 14.3): the dual step of a primal-dual method on ``F(A x)``."""
        sigma = check_tau(sigma, allow_zero=False)
        return p - sigma * self.data_prox(p / sigma, 1.0 / sigma)

    def data_curvature(self) -> float | None:
        """A typical second derivative of ``F`` near the data (None when unknown).

        Sets the scale of the default penalty / dual steps of the splittings with ``z = A x``
        (the counterpart of ``1/L`` for a data term without a Lipschitz gradient)."""
        return None

    def _x_shape(self) -> tuple[int, ...]:
        if self.operator.in_shape is not None:
            return (self.y.shape[0], *self.operator.in_shape[1:])
        return tuple(self.operator.adjoint(self.y).shape)

    def __call__(self, x: Tensor) -> Tensor:
        return self.value(x)


class L2Fidelity(DataFidelity):
    """Least-squares fidelity ``f(x) = 1/2 ||A x - y||^2`` (Gaussian noise, up to ``1/sigma^2``).

    The prox solves ``(I + tau A^T A) x = v + tau A^T y`` through ``operator.solve_normal``:
    closed form for circular blur (FFT), masks and identity; conjugate gradient (tolerance
    ``cg_tol``, warm-started from the previous prox) otherwise.

    Parameters
    ----------
    operator : LinearOperator
        Forward operator ``A``.
    y : Tensor
        Observation.
    cg_tol : float
        Relative residual tolerance of conjugate gradient in :meth:`prox`.
    cg_max_iter : int
        Maximum conjugate gradient iterations in :meth:`prox`.

    Examples
    --------
    >>> import torch
    >>> from operators import Blur, L2Fidelity, gaussian
    >>> A = Blur(gaussian(1.0))
    >>> y = A(torch.rand(1, 1, 16, 16))
    >>> f = L2Fidelity(A, y)
    >>> x = f.prox(y, 2.0)  # optimality: x - y + 2 grad f(x) = 0
    >>> bool(torch.allclose(x - y + 2.0 * f.grad(x), torch.zeros_like(x), atol=1e-5))
    True
    >>> round(f.lipschitz_grad(), 6)
    1.0
    """

    has_prox = True
    smooth = True
    convex = True
    has_data_prox = True

    def __init__(self, operator: LinearOperator, y: Tensor, *, cg_tol: float = 1e-6, cg_max_iter: int = 500) -> None:
        super().__init__(operator, y)
        self.cg_tol = float(cg_tol)
        self.cg_max_iter = int(cg_max_iter)
        self._aty: Tensor | None = None
        self._warm: Tensor | None = None

    @property
    def aty(self) -> Tensor:
        """``A^T y`` (cached)."""
        if self._aty is None:
            self._aty = self.operator.adjoint(self.y)
        return self._aty

    def value(self, x: Tensor) -> Tensor:
        r = self.operator(x) - self.y
        return 0.5 * _per_image(r * r)

    def strong_convexity(self) -> float:
        """A verified lower bound of ``sigma_min(A)^2``, the strong-convexity modulus (0 when unknown).

        Known exactly for the identity (1) and its positive multiples; other operators report 0,
        which is always a valid lower bound."""
        op, scale = self.operator, 1.0
        while isinstance(op, ScaledOperator):
            scale, op = scale * float(op.scale), op.op
        return scale * scale if isinstance(op, Identity) else 0.0

    def grad(self, x: Tensor) -> Tensor:
        return self.operator.adjoint(self.operator(x) - self.y)

    def prox(self, v: Tensor, tau: float) -> Tensor:
        tau = check_tau(tau, allow_zero=False)  # the data-term prox divides by tau
        rhs = (v + tau * self.aty.to(v.dtype)) / tau
        x0 = self._warm if self._warm is not None and self._warm.shape == v.shape else None
        x = self.operator.solve_normal(rhs, 1.0 / tau, x0=x0, tol=self.cg_tol, max_iter=self.cg_max_iter)
        if not self.operator.has_closed_form_normal:
            self._warm = x.detach()
        return x

    def lipschitz_grad(self) -> float:
        """``||A||^2`` (the norm being exact or a power-iteration upper estimate)."""
        return self.operator.norm(self._x_shape()) ** 2

    def data_prox(self, u: Tensor, tau: float) -> Tensor:
        """``(u + tau y) / (1 + tau)``, the prox of ``F(z) = 1/2 ||z - y||^2``."""
        tau = check_tau(tau, allow_zero=False)
        return (u + tau * self.y.to(u.dtype)) / (1.0 + tau)

    def data_curvature(self) -> float:
        """1: ``F(z) = 1/2 ||z - y||^2`` has the identity as Hessian."""
        return 1.0


def _diagonal(op: LinearOperator):
    """``(scale, mask)`` when ``op`` is ``c * Identity`` or ``c * Inpainting``, else None."""
    scale = 1.0
    if isinstance(op, ScaledOperator):
        scale, op = op.scale, op.op
    if isinstance(op, Identity):
        return scale, None
    if isinstance(op, Inpainting):
        return scale, op
    return None


def _positive_root(b: Tensor, c: Tensor) -> Tensor:
    """The root ``u >= 0`` of ``u^2 - b u - c = 0`` for ``c >= 0``, without cancellation.

    ``(b + sqrt(b^2 + 4c)) / 2`` where ``b >= 0``; the equal ``2c / (sqrt(b^2 + 4c) - b)`` where
    ``b < 0`` (the first form loses every digit when ``|b|`` dwarfs ``c``). ``c = 0`` gives
    ``max(b, 0)``."""
    s = torch.sqrt(b * b + 4.0 * c)
    neg = b < 0
    den = torch.where(neg, s - b, torch.ones_like(s))  # s - b >= 2|b| > 0 where b < 0
    return torch.where(neg, 2.0 * c / den, 0.5 * (b + s))


class PoissonNLL(DataFidelity):
    """Poisson negative log-likelihood, as a generalised Kullback-Leibler divergence.

    Model: ``y = gain * n`` with counts ``n ~ Poisson((A x + offset) / gain)``. Dropping terms
    that do not depend on ``x`` and adding ones that make the minimum zero::

        f(x) = (1 / gain) * sum( (A x + offset) - y + y * log(y / (A x + offset)) )

    with ``0 log 0 = 0``; ``f = +inf`` where ``A x + offset <= 0`` (outside the domain).

    ``offset`` (default 1e-6, in intensity units) is a small background that keeps the
    logarithm finite where ``A x`` vanishes; for :class:`~operators.noise.PoissonGaussian` it is
    the shift ``sigma^2 / gain`` of the shifted-Poisson approximation.

    The gradient ``(1 / gain) A^T (1 - y / (A x + offset))`` is not globally Lipschitz
    (``smooth = False``, ``lipschitz_grad() = None``). The prox is exact, in closed form, when
    ``A`` is diagonal (identity or an inpainting mask, possibly scaled): per pixel it is the
    positive root of a quadratic. For other operators ``has_prox`` is False, and the splittings
    with ``z = A x`` (ADMM, DRS, PDHG in :mod:`pnp.algorithms`) use :meth:`data_prox`, the same
    closed form for ``F(z) = (1 / gain) sum(z + offset - y log(z + offset))``, and, for PDHG, its
    conjugate's prox by Moreau's identity (:meth:`data_prox_conj`).

    Pixels with ``y = 0`` have ``F(z) = (z + offset) / gain`` on ``z >= -offset``: their prox is
    ``max(u - tau / gain, -offset)``, the root formula with a zero constant term.

    Parameters
    ----------
    operator : LinearOperator
        Forward operator ``A``.
    y : Tensor
        Observation (nonnegative).
    gain : float
        Intensity of one count (> 0): the noise variance is ``gain * A x``.
    offset : float
        Nonnegative background added to ``A x``.

    Examples
    --------
    >>> import torch
    >>> from operators import Identity, PoissonNLL
    >>> y = torch.full((1, 1, 4, 4), 0.5)
    >>> f = PoissonNLL(Identity(), y, gain=0.01)
    >>> f.value(y - 1e-6).abs().max().item() < 1e-9
    True
    >>> f.has_prox, f.smooth
    (True, False)
    >>> z = f.data_prox(torch.zeros_like(y), 0.02)  # optimality: z - 0 + (0.02 / gain) (1 - y / (z + offset)) = 0
    >>> bool(torch.allclose(z + 2.0 * (1 - y / (z + f.offset)), torch.zeros_like(z), atol=1e-5))
    True
    """

    smooth = False
    convex = True  # -y log(Ax + b) + (Ax + b): convex in x for y >= 0
    has_data_prox = True

    def __init__(self, operator: LinearOperator, y: Tensor, *, gain: float, offset: float = 1e-6) -> None:
        super().__init__(operator, y)
        gain, offset = float(gain), float(offset)
        if not (math.isfinite(gain) and gain > 0):
            raise ValueError(f"gain must be a finite positive number, got {gain}")
        if not (math.isfinite(offset) and offset >= 0):
            raise ValueError(f"offset must be a finite nonnegative number, got {offset}")
        if (y < 0).any():
            raise ValueError("y has negative values: Poisson data must be nonnegative (clip it or use PoissonGaussian)")
        self.gain, self.offset = gain, offset
        self._diag = _diagonal(operator)
        self.has_prox = self._diag is not None

    def value(self, x: Tensor) -> Tensor:
        z = self.operator(x) + self.offset
        y = self.y.to(z.dtype)
        inside = z > 0
        zs = torch.where(inside, z, torch.ones_like(z))
        ylog = torch.where(y > 0, y * torch.log(torch.where(y > 0, y, torch.ones_like(y)) / zs), torch.zeros_like(y))
        # outside the domain: z <= 0 with y > 0, or z < 0 (a negative Poisson rate)
        outside = torch.where((y > 0) | (z < 0), torch.full_like(z, math.inf), torch.zeros_like(z))
        terms = torch.where(inside, zs - y + ylog, outside)
        return _per_image(terms) / self.gain

    def grad(self, x: Tensor) -> Tensor:
        z = self.operator(x) + self.offset
        return self.operator.adjoint(1.0 - self.y.to(z.dtype) / z) / self.gain

    def prox(self, v: Tensor, tau: float) -> Tensor:
        if not self.has_prox:
            raise NotImplementedError(
                "PoissonNLL.prox needs a diagonal operator (Identity / Inpainting): split z = A x (ADMM, PDHG)"
            )
        tau = check_tau(tau, allow_zero=False)
        scale, mask = self._diag
        m = scale * (mask._m(v) if mask is not None else torch.ones((), dtype=v.dtype, device=v.device))
        y = self.y.to(v.dtype)
        t = tau / self.gain
        # per pixel, u = m x + offset solves u^2 - (offset + m v - t m^2) u - t m^2 y = 0
        u = _positive_root(self.offset + m * v - t * m * m, t * m * m * y)
        safe_m = torch.where(m != 0, m, torch.ones_like(m))
        x = torch.where(m != 0, (u - self.offset) / safe_m, v)
        return x

    def data_prox(self, u: Tensor, tau: float) -> Tensor:
        """``argmin_z 1/2 ||z - u||^2 + (tau / gain) sum(z + offset - y log(z + offset))``, per pixel in
        closed form: ``w = z + offset`` is the positive root of ``w^2 - (u + offset - t) w - t y = 0``
        with ``t = tau / gain`` (the optimality condition ``z - u + t (1 - y / w) = 0`` times ``w``)."""
        tau = check_tau(tau, allow_zero=False)
        t = tau / self.gain
        y = self.y.to(u.dtype)
        return _positive_root(u + self.offset - t, t * y) - self.offset

    def data_curvature(self) -> float:
        """``1 / (gain * mean(y))``: ``F''(z) = y / (gain (z + offset)^2)`` at ``z + offset = y``, for the
        mean intensity (at least one count, ``gain``, so that empty data keep a finite scale)."""
        mean = float(self.y.double().mean())
        return 1.0 / (self.gain * max(mean, self.gain))


class PenalizedFidelity(DataFidelity):
    """A smooth data term plus a smooth convex penalty: ``f(x) + r(x)``, itself a smooth data term.

    Lets the gradient algorithms (PGD, FISTA) minimise ``1/2 ||A x - y||^2 + lam R(x)`` for a
    smooth learned regulariser ``R`` (e.g. :class:`priors.ridge.RidgePrior`) with the prox part left
    to a simple convex constraint: the step bound then uses ``Lip(grad f) + Lip(grad r)`` and the
    objective is the true objective.

    Parameters
    ----------
    fidelity : DataFidelity
        Smooth data term (``smooth`` True, with ``lipschitz_grad()``).
    penalty : object
        ``value(x)`` (per batch element), ``grad(x)`` and ``lipschitz_grad()`` of a convex smooth
        function (duck-typed, so operators never imports priors).

    Examples
    --------
    >>> import torch
    >>> from operators import Blur, L2Fidelity, gaussian
    >>> class Quad:  # r(x) = ||x||^2 / 2
    ...     def value(self, x): return 0.5 * (x * x).flatten(1).sum(1)
    ...     def grad(self, x): return x
    ...     def lipschitz_grad(self): return 1.0
    >>> A = Blur(gaussian(1.0))
    >>> f = PenalizedFidelity(L2Fidelity(A, A(torch.rand(1, 1, 16, 16))), Quad())
    >>> round(f.lipschitz_grad(), 6)
    2.0
    """

    has_prox = False
    smooth = True

    def __init__(self, fidelity: DataFidelity, penalty) -> None:
        if not getattr(fidelity, "smooth", False):
            raise ValueError(f"PenalizedFidelity needs a smooth data term, got {type(fidelity).__name__}; "
                             "use a proximal algorithm (ADMM/DRS) with the prior's prox instead")
        for name in ("value", "grad", "lipschitz_grad"):
            if not callable(getattr(penalty, name, None)):
                raise TypeError(f"penalty must have {name}() (a smooth prior such as priors.ridge.RidgePrior), "
                                f"got {type(penalty).__name__}")
        super().__init__(fidelity.operator, fidelity.y)
        self.fidelity, self.penalty = fidelity, penalty
        self.name = f"{type(fidelity).__name__} + {getattr(penalty, 'name', type(penalty).__name__)}"
        # Convexity is established, never assumed: both terms declare convex=True, or the penalty is
        # weakly convex with a certified modulus covered by the data term's strong convexity
        # (f + r = (f - w/2 ||.||^2) + (r + w/2 ||.||^2), both convex).
        inner_convex = bool(getattr(fidelity, "convex", False))
        weak = getattr(penalty, "weak_convexity", None)
        strong = fidelity.strong_convexity() if callable(getattr(fidelity, "strong_convexity", None)) else 0.0
        if bool(getattr(penalty, "convex", False)):
            self.nonconvexity: float | None = 0.0 if inner_convex else None
        elif weak is not None and math.isfinite(float(weak)) and inner_convex:
            self.nonconvexity = max(0.0, float(weak) - float(strong))
        else:
            self.nonconvexity = None  # unknown: no convexity claim of any kind
        self.convex = self.nonconvexity == 0.0
        #: least squares plus a piecewise-polynomial penalty: semi-algebraic, so Kurdyka-Lojasiewicz holds
        self.semialgebraic = isinstance(fidelity, L2Fidelity) and bool(getattr(penalty, "semialgebraic", False))

    def value(self, x: Tensor) -> Tensor:
        return self.fidelity.value(x) + self.penalty.value(x)

    def grad(self, x: Tensor) -> Tensor:
        return self.fidelity.grad(x) + self.penalty.grad(x)

    def lipschitz_grad(self) -> float:
        return float(self.fidelity.lipschitz_grad()) + float(self.penalty.lipschitz_grad())
