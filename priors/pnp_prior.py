"""A Plug-and-Play prior: any denoiser ``D(x, sigma)`` used in place of a proximal step.

Relation between step, weight and denoiser strength. For a prior density ``∝ exp(−g)`` and
Gaussian noise of standard deviation ``σ``, the MAP denoiser is
``argmin_x ‖x − y‖² / (2σ²) + g(x) = prox_{σ² g}(y)``. A proximal algorithm asks for
``prox_{τ λ g}(v)`` (step ``τ``, weight ``λ``), so the denoiser is called at

    σ = sqrt(τ λ)        (equivalently  λ = σ² / τ).

With a learned or classical denoiser ``g`` is implicit (and need not exist); the relation
only fixes how the step size and the regularisation weight set the denoising strength.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from torch import Tensor

from .base import Certificate, Prior, check_image, check_tau

__all__ = ["DenoiserPrior", "denoiser_at_level", "relaxed_level", "trained_sigma_range"]


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return v


class DenoiserPrior(Prior):
    """Prior whose prox is a denoiser: ``prox(v, tau) = D(v, σ_eff)``.

    Exactly one of ``sigma`` and ``lam`` is given:

    * ``lam``: the denoiser strength follows the step, ``σ_eff = sqrt(tau · weight · lam)``.
    * ``sigma``: the denoiser runs at the fixed level ``σ_eff = sqrt(weight) · sigma``; the
      implied regularisation weight ``weight · sigma² / tau`` is reported by
      :meth:`implied_lam`.

    ``weight`` (set by ``c * prior``) scales the implicit functional, hence ``σ²``. The prior
    is treated as nonconvex, without a value and without an exact prox; its guarantee is the
    denoiser's :class:`~priors.base.Certificate` when it has one, otherwise none.

    ``strength`` s in (0, 1] relaxes the denoiser to ``(1 - s) I + s D``: a weaker denoiser than
    ``D`` at its lowest trained level (learned denoisers are trained down to some sigma only, and
    PnP at low noise often wants less).  If D is alpha-averaged with Lipschitz bound L, the relaxed
    map is (s alpha)-averaged with bound ``1 - s + s L`` -- the certificate is rescaled accordingly.

    Parameters
    ----------
    denoiser : callable
        A :class:`deepinv.models.Denoiser` (or any module) called as ``denoiser(x, sigma)``;
        may provide ``certificate() -> Certificate | None``.
    sigma : float, optional
        Fixed noise level (> 0) on the [0, 1] intensity scale.
    lam : float, optional
        Regularisation weight (> 0) of the implicit functional.
    strength : float
        Relaxation s in (0, 1] of the denoiser (default 1: D itself).

    Examples
    --------
    >>> from priors.denoisers import TVDenoiser
    >>> prior = DenoiserPrior(TVDenoiser(), lam=0.01)
    >>> prior.sigma_eff(1.0)
    0.1
    """

    convex = False
    has_value = False
    exact_prox = False

    def __init__(
        self, denoiser: Any, *, sigma: float | None = None, lam: float | None = None, strength: float = 1.0
    ) -> None:
        super().__init__()
        if not callable(denoiser):
            raise TypeError(f"denoiser must be callable as denoiser(x, sigma), got {type(denoiser).__name__}")
        if (sigma is None) == (lam is None):
            raise ValueError("give exactly one of sigma (fixed noise level) or lam (weight, sigma = sqrt(tau*lam))")
        self.denoiser = denoiser
        self.sigma = None if sigma is None else _positive("sigma", sigma)
        self.lam = None if lam is None else _positive("lam", lam)
        self.strength = _positive("strength", strength)
        if self.strength > 1.0:
            raise ValueError(f"strength must be in (0, 1] (a relaxation (1 - s) I + s D), got {strength!r}")
        self.name = f"pnp-{type(denoiser).__name__}"

    def sigma_eff(self, tau: float) -> float:
        """Noise level handed to the denoiser for step ``tau``."""
        tau = check_tau(tau)
        if self.lam is not None:
            return math.sqrt(tau * self.weight * self.lam)
        return math.sqrt(self.weight) * self.sigma

    def implied_lam(self, tau: float) -> float:
        """Regularisation weight implied by ``λ = s σ_eff² / tau`` for step ``tau`` (> 0).

        With strength s < 1 the relaxed step ``v + s (D(v) - v)`` moves s times as far along the
        denoiser residual, which (Tweedie: ``D(v) - v ≈ -σ² ∇g(v)``) is the weight times s.
        """
        tau = _positive("tau", tau)
        if self.lam is not None:
            return self.strength * self.weight * self.lam
        return self.strength * self.weight * (self.sigma * self.sigma) / tau  # inf, not OverflowError, for huge sigma

    def prox(self, v: Tensor, tau: float) -> Tensor:
        """Denoise ``v`` at ``σ_eff(tau)``: the PnP replacement of ``prox_{tau·λ·g}``."""
        check_image(v, "v")
        d = self.denoiser(v, self.sigma_eff(tau))
        if self.strength == 1.0:
            return d
        return v + self.strength * (d - v)

    def value(self, x: Tensor) -> Tensor:
        raise NotImplementedError(f"{self.name} has no value (a denoiser defines no explicit functional)")

    def certificate(self) -> Certificate | None:
        """The denoiser's certificate when it provides one, else None (no guarantee)."""
        cert_fn = getattr(self.denoiser, "certificate", None)
        if cert_fn is None or not callable(cert_fn):
            return None
        cert = cert_fn()
        if cert is None or self.strength == 1.0:
            return cert
        s = self.strength
        return dataclasses.replace(
            cert,
            lipschitz=1 - s + s * cert.lipschitz,
            alpha=None if cert.alpha is None else s * cert.alpha,
            method=f"{cert.method}; relaxed (1 - s) I + s D with s = {s:.4g}",
            empirical=None,
        )

    def __repr__(self) -> str:
        mode = f"lam={self.lam:g}" if self.lam is not None else f"sigma={self.sigma:g}"
        relax = "" if self.strength == 1.0 else f", strength={self.strength:g}"
        return f"DenoiserPrior({type(self.denoiser).__name__}, {mode}{relax}, weight={self.weight:g})"


def trained_sigma_range(denoiser: Any) -> tuple[float, float] | None:
    """The noise range a learned denoiser was trained on (``denoiser.config.sigma_range``), if any."""
    rng = getattr(getattr(denoiser, "config", None), "sigma_range", None)
    if isinstance(rng, (tuple, list)) and len(rng) == 2:
        return float(rng[0]), float(rng[1])
    return None


def relaxed_level(sigma: float, sigma_range: tuple[float, float] | None = None) -> tuple[float, float]:
    """``(sigma_run, strength)`` of level ``sigma``: below the trained floor ``lo`` the denoiser
    runs at ``lo`` with strength ``sigma / lo``; levels above the trained range are refused."""
    sigma = _positive("sigma", sigma)
    if sigma_range is None:
        return sigma, 1.0
    lo, hi = float(sigma_range[0]), float(sigma_range[1])
    if sigma > hi * (1 + 1e-9):
        raise ValueError(f"sigma {sigma:.4g} is above the denoiser's trained range [{lo:.4g}, {hi:.4g}]; use sigma <= {hi:.4g}")
    return (sigma, 1.0) if sigma >= lo else (lo, sigma / lo)


def denoiser_at_level(denoiser: Any, sigma: float, sigma_range: tuple[float, float] | None = None) -> DenoiserPrior:
    """PnP prior running ``denoiser`` at level ``sigma``, continued below its trained range.

    For ``sigma`` below the lowest trained level ``lo``, the denoiser runs at ``lo`` relaxed with
    strength ``sigma / lo``: ``(1 - s) I + s D(., lo)`` (:func:`relaxed_level`).  Strength is
    continuous at ``lo`` and falls to the identity as ``sigma -> 0``, so one parameter sweeps from
    "no prior" to the strongest trained level.  Levels above the trained range are refused.
    """
    run, strength = relaxed_level(sigma, sigma_range)
    return DenoiserPrior(denoiser, sigma=run, strength=strength)
