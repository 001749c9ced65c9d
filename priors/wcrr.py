"""Weakly convex ridge regularizer (WCRR): the ridge regularizer of :mod:`priors.ridge` with spline
slopes allowed below zero, and its prox denoiser.

The model (after Goujon, Neumayer, Unser, "Learning weakly convex regularizers for convergent
image-reconstruction algorithms", arXiv 2308.10542) is

.. math:: R_\\mu(x) = \\frac{1}{\\mu^2} \\sum_{c} \\sum_{p} \\psi_c\\big(\\mu (W x)_{c,p}\\big),
          \\qquad \\psi_c'' \\in [-s^-_c, s^+_c] \\subset [-\\nu, 1],

with ``psi_c' = sigma_c`` a linear spline whose slopes lie in ``[-nu, 1]`` (``nu`` =
``negative_slope``).  Since ``psi_c`` is C^1 and piecewise quadratic,

.. math:: -W^T S^- W \\preceq \\nabla^2 R_\\mu(x) = W^T \\Lambda(x) W \\preceq W^T S^+ W

almost everywhere, so ``R_mu`` is ``rho_R``-weakly convex (``R_mu + rho_R/2 ||.||^2`` is convex) with
``rho_R = ||(S^-)^{1/2} W||^2``, and ``grad R_mu`` is ``L``-Lipschitz with ``L = ||S_abs^{1/2} W||^2``
(``S_abs`` the largest absolute slopes).  Both are bounded rigorously from the symbol of one
convolution (:func:`priors.spectral.conv_norm_bound`), at every image size; neither depends on ``mu``.

The denoiser is the prox ``D(y, sigma) = argmin_x 1/2 ||x - y||^2 + lam(sigma) R_mu(sigma)(x)``, with
``lam(sigma) = min(exp(l0 + l1 log(sigma / sigma_ref)), cap / rho_R)``, so ``lam rho_R <= cap < 1``:
the prox objective is ``(1 - lam rho_R)``-strongly convex (a unique minimiser, found by accelerated
gradient to a certified tolerance), and from its optimality condition
``<x1 - x2, y1 - y2> >= (1 - lam rho_R) ||x1 - x2||^2``, so ``D`` is ``1 / (1 - lam rho_R)``-Lipschitz —
**not** 1-Lipschitz and not averaged once ``rho_R > 0``.  Its certificate says so.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .base import Certificate
from .ridge import RidgeConfig, RidgePrior, RidgeRegularizer
from .spectral import conv_norm_bound
from .splines import LinearSpline

__all__ = ["WCRRConfig", "WeaklyConvexRidge", "WCRRPrior", "smooth_prior"]


@dataclass(frozen=True)
class WCRRConfig(RidgeConfig):
    """Architecture of :class:`WeaklyConvexRidge` (a :class:`RidgeConfig` with a prox denoiser)."""

    denoiser: str = "prox"
    negative_slope: float = 1.0  # spline slopes in [-negative_slope, 1]
    convexity_cap: float = 0.9  # lam(sigma) rho_R <= cap: the prox problem is (1 - cap)-strongly convex

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.denoiser != "prox":
            raise ValueError("a weakly convex ridge model has denoiser: prox (its one-step map is not averaged)")
        if not (math.isfinite(self.negative_slope) and 0 <= self.negative_slope <= 10):
            raise ValueError(f"negative_slope must lie in [0, 10], got {self.negative_slope}")
        if not 0 < self.convexity_cap < 1:
            raise ValueError(f"convexity_cap must lie in (0, 1), got {self.convexity_cap}")


class WeaklyConvexRidge(RidgeRegularizer):
    """Weakly convex ridge regularizer ``R_mu`` and its prox denoiser ``D(y, sigma)``.

    Examples
    --------
    >>> import torch
    >>> net = WeaklyConvexRidge(hidden=2, channels=4, kernel_size=3, knots=5).eval()
    >>> with torch.no_grad():
    ...     _ = net.spline.raw.copy_(torch.tensor([0.5, -0.5, -0.5, 0.5]).repeat(4, 1))
    >>> rho = net.weak_convexity()
    >>> rho > 0 and net.certificate().alpha is None
    True
    >>> net(torch.rand(1, 1, 16, 16), 25 / 255).shape
    torch.Size([1, 1, 16, 16])
    """

    def __init__(self, config: WCRRConfig | None = None, **overrides: Any) -> None:
        cfg = WCRRConfig.resolve(config, overrides)
        super().__init__(cfg)
        spline = LinearSpline(cfg.channels, knots=cfg.knots, knot_range=cfg.knot_range,
                              min_slope=-cfg.negative_slope)
        spline.raw.data.copy_(self.spline.raw.data)
        self.spline = spline
        self.register_buffer("rho_vector", torch.randn(1, cfg.in_channels, 24, 24))

    def lam_free(self, sigma: Tensor) -> Tensor:
        """The learned log-linear weight ``exp(l0 + l1 log(sigma / sigma_ref))`` before the cap."""
        s = torch.as_tensor(sigma, dtype=self.lam_raw.dtype)
        return torch.exp(self.lam_raw[0] + self.lam_raw[1] * self._log_ratio(s))

    def lam(self, sigma: float | Tensor | None = None) -> Tensor:
        """``lam(sigma) = min(lam_free(sigma), cap / rho_R)`` with the rigorous ``rho_R``."""
        s = torch.as_tensor(self.config.sigma_ref if sigma is None else sigma, dtype=self.lam_raw.dtype)
        return self._capped(self.lam_free(s), self.weak_convexity())

    def _capped(self, free: Tensor, rho: float | Tensor) -> Tensor:
        rho = torch.as_tensor(rho, dtype=free.dtype)
        if float(rho.detach()) <= 0:
            return free
        return torch.minimum(free, self.config.convexity_cap / rho)

    def weak_convexity(self) -> float:
        """Rigorous ``rho_R >= ||(S^-)^{1/2} W||^2``: ``R_mu + rho_R/2 ||.||^2`` is convex (cached)."""
        return float(self.certificate().details["rho"])

    def _prox_weight(self, s: Tensor, dtype: torch.dtype) -> tuple[Tensor, float]:
        if not self.training:
            return self.lam(s).to(dtype), self.weak_convexity()
        # training: a differentiable warm-started power estimate of rho (the rigorous bound is used at
        # inference; it is at most a fraction of a percent larger for a converged power vector)
        neg = self.spline.negative_slopes()
        if float(neg.max()) <= 0:
            return self.lam_free(s).to(dtype), 0.0
        rho = self._power(iterations=3, slopes=neg, differentiable=True, vector="rho_vector")
        lam = self._capped(self.lam_free(s), rho)
        return lam.to(dtype), float(rho.detach()) * 1.02

    @torch.no_grad()
    def _certificate(self) -> Certificate:
        t0 = time.perf_counter()
        kern = self.kernel().detach().double()
        m = kern.shape[-1] // 2
        grid = max(32, 2 ** math.ceil(math.log2(math.sqrt(2) * math.pi * 2 * m + 1)))

        def bound(slopes: Tensor) -> tuple[float, float]:
            b = conv_norm_bound(kern * slopes.detach().double().sqrt().view(-1, 1, 1, 1), grid=grid, rel_tol=1e-3)
            return b.upper ** 2, b.lower ** 2

        lip, lip_lower = bound(self.spline.abs_slopes())
        neg = self.spline.negative_slopes()
        rho, rho_lower = bound(neg) if float(neg.max()) > 0 else (0.0, 0.0)
        lo, hi = self.config.sigma_range
        # lam_free is log-linear in sigma (monotone), so lam rho is largest at an end of the range
        lam_rho = max(float(self._capped(self.lam_free(torch.tensor(v)), rho)) * rho for v in (lo, hi))
        # 1/(1 - lam rho) moves by lam rho / (1 - lam rho) times rho's relative change, i.e. twice a norm's:
        # counted as that many norm factors in the load-time tolerance (priors.pretrained.certificate_rtol)
        sensitivity = 2 * lam_rho / (1 - lam_rho) if lam_rho < self.config.convexity_cap * (1 - 1e-12) else 0.0
        details = {"norm_factors": max(1, math.ceil(sensitivity)), "grad_lipschitz": lip, "norm_lower": lip_lower, "rho": rho, "rho_lower": rho_lower,
                   "lam_rho_max": lam_rho, "max_slopes": self.spline.max_slopes().tolist(),
                   "negative_slopes": neg.tolist(), "kernel_size": int(kern.shape[-1]),
                   "prox_tol": self.config.prox_tol}
        if rho == 0:
            return Certificate(
                lipschitz=1.0, alpha=0.5, seconds=time.perf_counter() - t0, details=details,
                method=("prox of lam(sigma) R_mu(sigma) with every spline slope >= 0: a convex ridge regularizer, "
                        "firmly nonexpansive (Bauschke-Combettes Prop. 12.28), computed to a certified tolerance"))
        return Certificate(
            lipschitz=1.0 / (1.0 - lam_rho), alpha=None, seconds=time.perf_counter() - t0, details=details,
            method=(f"prox of lam(sigma) R_mu(sigma), R_mu rho_R-weakly convex with rho_R = ||(S^-)^(1/2) W||^2 = "
                    f"{rho:.4g} from the symbol (Sedghi et al. 2019); lam rho_R <= {lam_rho:.4g} < 1, so the prox "
                    f"problem is (1 - lam rho_R)-strongly convex and D is 1/(1 - lam rho_R)-Lipschitz; not averaged"))


class WCRRPrior(RidgePrior):
    """``lam * R_mu`` for a weakly convex ridge model: a smooth, ``lam rho_R``-weakly convex prior.

    Its value, gradient and prox (defined while ``t lam rho_R < 1``) come from the model; it is
    **not** convex (``convex = False``), and :attr:`weak_convexity` is the certified modulus of the
    weighted prior, for the theory layer.

    Examples
    --------
    >>> import torch
    >>> net = WeaklyConvexRidge(channels=4, knots=5).eval()
    >>> _ = net.spline.raw.data.uniform_(-1.0, 1.0)
    >>> p = smooth_prior(net, weight=0.01)
    >>> type(p).__name__, p.convex, p.weak_convexity > 0
    ('WCRRPrior', False, True)
    """

    name = "wcrr"
    convex = False
    semialgebraic = True  # piecewise-quadratic psi composed with a linear W: a piecewise polynomial

    @property
    def weak_convexity(self) -> float:
        """Certified modulus ``weight * rho_R``: ``g + weak_convexity/2 ||.||^2`` is convex."""
        return self.weight * self.model.weak_convexity()

    def __repr__(self) -> str:
        return f"WCRRPrior(weight={self.weight:g}, mu={self.mu:g})"


def smooth_prior(model: RidgeRegularizer, *, weight: float, mu: float | None = None) -> RidgePrior:
    """The variational prior ``weight * R_mu`` of a ridge model: :class:`WCRRPrior` for a weakly convex
    model (``convex = False``, certified modulus), :class:`RidgePrior` for a convex one."""
    cls = WCRRPrior if isinstance(model, WeaklyConvexRidge) else RidgePrior
    return cls(model, weight=weight, mu=mu)
