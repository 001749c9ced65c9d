"""Base classes for priors: a regularisation functional ``weight * g`` and its certificate.

A :class:`Prior` is a functional ``weight * g`` on images of shape (B, C, H, W). It exposes
``value`` (one number per batch element), ``prox`` and a set of declared properties that the
algorithms in :mod:`pnp` read before running (convexity, whether the value is available,
whether the prox is exact) together with a :class:`Certificate` of the prox map.

The prox convention used throughout the package is

.. math:: \\operatorname{prox}_{\\tau w g}(v) = \\arg\\min_x \\tfrac12\\|x - v\\|^2 + \\tau\\, w\\, g(x),

where ``w`` is :attr:`Prior.weight`. For a proper convex lower semicontinuous ``g`` this map is
firmly nonexpansive, i.e. 1/2-averaged and 1-Lipschitz (Bauschke & Combettes, *Convex Analysis
and Monotone Operator Theory*, 2nd ed., Prop. 12.28), which is what :meth:`Prior.certificate`
reports by default for convex priors with an exact prox.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

# one tau check for every prox (data terms and priors); priors may import operators, not the reverse
from operators.checks import check_tau

__all__ = ["Certificate", "Prior", "ProxAccuracy", "check_image", "check_tau", "firmly_nonexpansive_certificate"]


@dataclass(frozen=True)
class Certificate:
    """Certified properties of a (denoising or proximal) map ``D``.

    Parameters
    ----------
    lipschitz : float
        Certified upper bound of the l2 Lipschitz constant of ``D`` in ``x``.
    alpha : float or None
        Averagedness constant in (0, 1]: ``D = (1 - alpha) I + alpha N`` with ``N``
        nonexpansive. ``1.0`` means merely nonexpansive, ``0.5`` firmly nonexpansive,
        ``None`` means not averaged or unknown.
    method : str
        One line saying how the certificate was obtained.
    empirical : float or None
        Adversarial (lower) estimate of ``Lip(D)``, when computed.
    seconds : float
        Time spent producing the certificate.
    details : Mapping[str, Any]
        Free-form extra information (tolerances, sizes, ...).

    Examples
    --------
    >>> c = Certificate(lipschitz=1.0, alpha=0.5, method="prox of a convex function")
    >>> c.to_dict()["alpha"]
    0.5
    """

    lipschitz: float
    alpha: float | None
    method: str
    empirical: float | None = None
    seconds: float = 0.0
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lip = float(self.lipschitz)
        if math.isnan(lip) or lip < 0:
            raise ValueError(f"Certificate.lipschitz must be a float >= 0, got {self.lipschitz!r}")
        object.__setattr__(self, "lipschitz", lip)
        if self.alpha is not None:
            alpha = float(self.alpha)
            if not 0.0 < alpha <= 1.0:
                raise ValueError(f"Certificate.alpha must lie in (0, 1] or be None, got {self.alpha!r}")
            object.__setattr__(self, "alpha", alpha)
        if self.empirical is not None:
            object.__setattr__(self, "empirical", float(self.empirical))

    def to_dict(self) -> dict:
        """Return a plain (JSON-serialisable when ``details`` is) dictionary."""
        d = asdict(self)
        d["details"] = dict(self.details)
        return d


def firmly_nonexpansive_certificate(method: str, **details: Any) -> Certificate:
    """Certificate of the prox of a proper convex lsc function: 1-Lipschitz and 1/2-averaged.

    Source: Bauschke & Combettes (2nd ed.), Prop. 12.28 (proximity operators are firmly
    nonexpansive).
    """
    return Certificate(lipschitz=1.0, alpha=0.5, method=method, details=dict(details))


@dataclass(frozen=True)
class ProxAccuracy:
    """How accurately one call of a prox solved ``argmin_x ½‖x − v‖² + t g(x)``.

    Forward–backward and Douglas–Rachford keep their convergence theorems with an inexact prox
    when the errors ``‖x_k − prox(v_k)‖`` are summable over the iterations (Combettes & Wajs
    2005, Thm 3.4; Eckstein & Bertsekas 1992, Thm 8). An iterative prox reports a *certified*
    bound on that error so that the outer algorithm can check the schedule it asked for.

    Parameters
    ----------
    error_bound : float
        Certified upper bound of ``‖x − prox(v)‖`` (l2 over the whole batch); 0 for a closed
        form, ``inf`` when the prior cannot bound its error.
    iterations : int
        Inner iterations spent.
    capped : bool
        The inner solver stopped at its iteration cap before its stopping test held.
    target : float or None
        The bound the caller asked for (None: the prior's own tolerance).
    gap : float or None
        Duality gap behind the bound, when there is one (``½‖x − prox(v)‖² ≤ gap`` for a
        1-strongly convex subproblem).
    method : str
        One line: how the bound was obtained.

    Examples
    --------
    >>> a = ProxAccuracy(error_bound=1e-6, iterations=20, target=1e-5)
    >>> a.met
    True
    """

    error_bound: float
    iterations: int = 0
    capped: bool = False
    target: float | None = None
    gap: float | None = None
    method: str = ""

    @property
    def met(self) -> bool:
        """The solve stopped by its own test and its bound is within ``target`` (when one was asked)."""
        if self.capped or not self.error_bound <= math.inf:  # NaN bound: nothing is certified
            return False
        return self.target is None or self.error_bound <= self.target

    def to_dict(self) -> dict:
        """Plain dictionary (JSON-friendly once non-finite floats are replaced)."""
        return asdict(self)


class Prior:
    """A regularisation functional ``weight * g``.

    Subclasses implement :meth:`_value` (``g`` per batch element, without the weight) and
    :meth:`_prox` (``argmin_x ½‖x − v‖² + t g(x)`` for a scalar ``t``); the public
    :meth:`value` and :meth:`prox` apply :attr:`weight`. Multiplying by a nonnegative scalar
    returns a copy with the weight scaled, so ``0.1 * TV()`` is the functional ``0.1 TV``.

    Attributes
    ----------
    name : str
        Short identifier (used by the CLI and in reports).
    convex : bool
        ``g`` is proper, convex and lower semicontinuous.
    has_value : bool
        :meth:`value` is available.
    exact_prox : bool
        :meth:`prox` is computed in closed form (``False`` for iterative proxes that stop at
        a tolerance).
    weight : float
        Nonnegative scaling of ``g``.

    Examples
    --------
    >>> from priors.classical import NonNegative
    >>> p = 2.0 * NonNegative()
    >>> p.weight
    2.0
    """

    name: str = "prior"
    convex: bool = True
    has_value: bool = True
    exact_prox: bool = True
    #: an inexact prox that certifies its error and honours a requested bound (:meth:`prox_accuracy`)
    reports_accuracy: bool = False

    def __init__(self, *, weight: float = 1.0) -> None:
        self.weight = _check_weight(weight)

    # ------------------------------------------------------------------ algebra
    def __mul__(self, c: float) -> "Prior":
        if isinstance(c, bool) or not isinstance(c, (int, float)):
            return NotImplemented
        new = copy.copy(self)
        new.weight = _check_weight(self.weight * float(c))
        return new

    __rmul__ = __mul__

    # ------------------------------------------------------------------ public API
    def value(self, x: Tensor) -> Tensor:
        """Return ``weight * g(x)`` per batch element, shape (B,).

        Raises
        ------
        NotImplementedError
            When the prior has no value (``has_value`` is False).
        """
        if not self.has_value:
            raise NotImplementedError(f"{type(self).__name__} has no value (has_value=False); use prox only")
        check_image(x, "x")
        g = self._value(x)
        if self.weight == 1.0:
            return g
        # keep inf (indicators) as inf even when weight is 0: 0 * inf would be nan
        return torch.where(torch.isinf(g), g, self.weight * g)

    def prox(self, v: Tensor, tau: float) -> Tensor:
        """Return ``argmin_x ½‖x − v‖² + tau * weight * g(x)``.

        Parameters
        ----------
        v : Tensor
            Point of shape (B, C, H, W).
        tau : float
            Nonnegative step.
        """
        return self._prox(v, self._prox_weight(v, tau))

    def _prox_weight(self, v: Tensor, tau: float) -> float:
        """``tau * weight``, the weight the prox of ``g`` is taken at, once ``v`` and ``tau`` are checked."""
        check_image(v, "v")
        return check_tau(tau) * self.weight

    def prox_accuracy(self, v: Tensor, tau: float, *, target: float | None = None) -> tuple[Tensor, ProxAccuracy]:
        """The prox and a certified bound on its error, solving to ``target`` when one is given.

        ``prox(v, tau)`` is the same map with the prior's own tolerance. A closed-form prox
        reports the bound 0; an iterative prior that cannot bound its error reports ``inf``
        (``reports_accuracy`` False), so a schedule asked of it is never taken as met.

        Parameters
        ----------
        v : Tensor
            Point of shape (B, C, H, W).
        tau : float
            Nonnegative step.
        target : float, optional
            Requested bound on ``‖x − prox(v)‖`` (absolute, l2 over the batch).

        Returns
        -------
        x : Tensor
            The (approximate) prox.
        accuracy : ProxAccuracy
            Certified error bound, inner iterations, whether the solver hit its cap.

        Examples
        --------
        >>> from priors.classical import NonNegative
        >>> x, acc = NonNegative().prox_accuracy(torch.randn(1, 1, 4, 4), 1.0, target=1e-9)
        >>> acc.error_bound, acc.met
        (0.0, True)
        """
        t = self._prox_weight(v, tau)
        if target is not None and not (isinstance(target, (int, float)) and not isinstance(target, bool)
                                       and target >= 0):
            raise ValueError(f"target must be a float >= 0 or None, got {target!r}")
        return self._prox_accuracy(v, t, None if target is None else float(target))

    def certificate(self) -> Certificate | None:
        """Certificate of the prox map ``v -> prox(v, tau)`` (any ``tau``).

        Convex priors with a prox get the firm-nonexpansiveness certificate
        (Lipschitz 1, alpha 1/2); iterative proxes say in ``method`` that the map is
        computed to a tolerance. Nonconvex priors return None.
        """
        if not self.convex:
            return None
        if self.exact_prox:
            return firmly_nonexpansive_certificate(
                f"prox of the convex function {self.name} (closed form): firmly nonexpansive, "
                "Bauschke-Combettes Prop. 12.28"
            )
        tol = getattr(self, "tol", None)
        return firmly_nonexpansive_certificate(
            f"prox of the convex function {self.name}, computed iteratively to tolerance tol={tol:g}: "
            "the exact prox is firmly nonexpansive (Bauschke-Combettes Prop. 12.28), the computed map up to tol",
            tol=tol,
        )

    # ------------------------------------------------------------------ to override
    def _value(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _prox(self, v: Tensor, t: float) -> Tensor:
        raise NotImplementedError

    def _prox_accuracy(self, v: Tensor, t: float, target: float | None) -> tuple[Tensor, ProxAccuracy]:
        # iterative priors that certify their error override this; the rest are exact, report a
        # certified bound of their last solve in `last_prox_error` (without honouring a target), or nothing
        x = self._prox(v, t)
        if self.exact_prox:
            return x, ProxAccuracy(0.0, target=target, gap=0.0, method="closed form")
        err = getattr(self, "last_prox_error", None)
        if isinstance(err, (int, float)) and not isinstance(err, bool) and err >= 0:
            return x, ProxAccuracy(float(err), iterations=int(getattr(self, "last_prox_iterations", 0) or 0),
                                   target=target, method=f"{type(self).__name__}.last_prox_error (certified)")
        return x, ProxAccuracy(math.inf, target=target,
                               method=f"{type(self).__name__} reports no certified error bound")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(weight={self.weight:g})"


# ---------------------------------------------------------------------- helpers
def _check_weight(weight: float) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise TypeError(f"weight must be a float, got {type(weight).__name__}")
    w = float(weight)
    if not math.isfinite(w) or w < 0:
        raise ValueError(f"weight must be finite and >= 0, got {weight!r}")
    return w


def check_image(x: Tensor, name: str) -> None:
    """Refuse anything but a (B, C, H, W) tensor, naming the argument ``name`` in the error."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}")


# the former private names, still imported by priors/tv.py
_check_tau = check_tau
_check_image = check_image


def cached_certificate(module: torch.nn.Module, compute: Callable[[], Certificate]) -> Certificate:
    """Return ``compute()`` cached on ``module`` until any of its parameters or buffers changes.

    Solvers ask for a denoiser's certificate before every run; the rigorous computation takes
    seconds, so it is redone only when the weights change (tracked by tensor version counters).
    """
    key = _weights_key(module)
    cached = getattr(module, "_certificate_cache", None)
    if cached is None or cached[0] != key:
        check_finite_weights(module)
        cached = (key, compute())
        object.__setattr__(module, "_certificate_cache", cached)
        try:
            _probe(module)
        except ValueError:
            object.__setattr__(module, "_certificate_cache", None)
            raise
    return cached[1]


def _weights_key(module: torch.nn.Module) -> tuple:
    """Version counters and storage of every weight, plus a checksum of the values (a write through
    ``.data`` keeps the version counter; a NaN never compares equal, so it always recomputes)."""
    tensors = [*module.parameters(), *module.buffers()]
    return (tuple((t._version, t.data_ptr()) for t in tensors),
            tuple(float(t.detach().double().sum()) for t in tensors if t.is_floating_point()))


def check_finite_weights(module: torch.nn.Module) -> None:
    """Refuse a model with a NaN or infinite parameter or buffer (a certificate of it would be void)."""
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"the model's {name} is not finite (NaN or Inf): no certificate; retrain or reload it")


@torch.no_grad()
def _probe(module: torch.nn.Module) -> None:
    """The certified map must give finite outputs: run it on a small seeded image at both ends of its range."""
    cfg = getattr(module, "config", None)
    rng, channels = getattr(cfg, "sigma_range", None), getattr(cfg, "in_channels", None)
    if rng is None or not isinstance(channels, int):
        return
    x = torch.rand(1, channels, 16, 16, generator=torch.Generator().manual_seed(0))
    p = next(iter(module.parameters()), None)
    if p is not None:
        x = x.to(dtype=p.dtype, device=p.device)
    was = module.training
    module.eval()
    try:
        for s in {float(rng[0]), float(rng[1])} - {0.0}:
            if not bool(torch.isfinite(module(x, s)).all()):
                raise ValueError(f"the model's output is not finite on a probe image at sigma {s:.4g}: no certificate")
    finally:
        module.train(was)


def seed_certificate_cache(module: torch.nn.Module, certificate: Certificate) -> None:
    """Make :func:`cached_certificate` return ``certificate`` for ``module`` until its weights change.

    Used when the certificate of exactly these weights was computed before (the on-disk cache of
    :mod:`priors.certificate_cache`, keyed by the hash of the model file).
    """
    object.__setattr__(module, "_certificate_cache", (_weights_key(module), certificate))
