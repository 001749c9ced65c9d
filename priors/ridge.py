"""Convex ridge regularizer with learned monotone spline profiles, and its certified denoiser.

The regulariser (a convex ridge regularizer, Goujon, Neumayer, Bohra, Unser, arXiv 2211.12461) is

.. math:: R_\\mu(x) = \\frac{1}{\\mu^2} \\sum_{c} \\sum_{p} \\psi_c\\big(\\mu (W x)_{c,p}\\big),
          \\qquad \\nabla R_\\mu(x) = \\frac1\\mu W^T \\sigma(\\mu W x),

with ``W`` a convolution 1 -> C channels whose kernel is a composition of small zero-mean kernels
(7x7 o 7x7 = 13x13 by default; the factors only parametrise the kernel, the map applies the
composed kernel once, with zero padding), and ``sigma_c = psi_c'`` a per-channel *linear spline*:
``sigma_c(0) = 0``, slopes in [0, 1] on a uniform knot grid over ``[-r, r]``, constant outside.
So every ``psi_c`` is convex with a 1-Lipschitz derivative, ``R_mu`` is convex and smooth, and

.. math:: 0 \\preceq \\nabla^2 R_\\mu(x) = W^T \\Lambda(x) W \\preceq W^T S W, \\qquad
          \\operatorname{Lip}(\\nabla R_\\mu) \\le L := \\|S^{1/2} W\\|^2,

where ``S`` holds each channel's *largest trained slope* (never an assumed 1).  ``L`` does not
depend on ``mu``.  It is bounded rigorously from the symbol of ``S^{1/2} W`` (a single 13x13
convolution, so :func:`priors.spectral.conv_norm_bound` applies at every image size).

The denoiser used in PnP is one gradient step, ``D(y, sigma) = y - tau(sigma) grad R_mu(sigma)(y)``
with ``tau = 2 c(sigma) / L_used``: a gradient step on a convex function with ``L``-Lipschitz
gradient is ``tau L / 2``-averaged for ``tau < 2/L`` (Bauschke & Combettes, Cor. 18.17 with
Prop. 4.39), so ``D`` is ``c L / L_used``-averaged; at inference ``L_used`` is the rigorous bound,
so ``alpha = max_sigma c(sigma) <= safety < 1``.  During training ``L_used`` is a differentiable
power-iteration estimate (as in the authors' recipe), refreshed every step.

The same regulariser is exposed as a smooth convex prior (:class:`RidgePrior`) for variational
solves ``min 1/2 ||A x - y||^2 + lam R_mu(x)`` with accelerated gradient, and its prox (an
inner strongly convex problem) is computed with a certified error bound ``||x - x*|| <= ||grad F(x)||``
(1-strong convexity).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import deepinv
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._config import ModelConfigMixin, warn_outside_range
from .base import Certificate, Prior
from .certify import cached_with_search
from .spectral import conv_norm_bound
from .splines import LinearSpline

__all__ = ["RidgeConfig", "LinearSpline", "RidgeRegularizer", "RidgePrior", "RIDGE_WEIGHTS", "ridge_weights",
           "ridge_mu_for_lam", "transfer_state"]


#: Iteration cap of the prox denoiser at inference (the config's solve_iterations caps training only)
INFERENCE_ITERATIONS = 5000


@dataclass(frozen=True)
class RidgeConfig(ModelConfigMixin):
    """Architecture of :class:`RidgeRegularizer` (stored in every checkpoint)."""

    in_channels: int = 1
    hidden: int = 8  # channels between the two kernel factors
    channels: int = 32  # number of ridges (output channels of W)
    kernel_size: int = 7  # size of each factor; the composed kernel is 2 k - 1
    factors: int = 2
    knots: int = 21
    knot_range: float = 0.1
    safety: float = 0.95  # c in tau = 2 c / L: alpha <= safety
    sigma_ref: float = 25 / 255
    sigma_range: tuple[float, float] = (25 / 255, 25 / 255)
    # "onestep": D = one averaged gradient step; "prox": D = prox of lam(sigma) R_mu(sigma), computed to a
    # certified tolerance (firmly nonexpansive), trained by solving to solve_tol and back-propagating
    # through the last backprop_steps gradient steps from the solution (truncated implicit gradient)
    denoiser: str = "onestep"
    prox_tol: float = 1e-4  # inference: ||x - prox(y)|| <= prox_tol ||y||, certified by strong convexity
    solve_tol: float = 2e-3  # training: relative accuracy of the forward solve
    solve_iterations: int = 200  # cap of the inner solver (training and inference)
    backprop_steps: int = 3
    # ablation switches (scripts/ablate_ridge.py); a model with any of them off has no certificate
    tied: bool = True  # the adjoint uses W's own kernel (a gradient of R); False: a separate kernel
    monotone: bool = True  # spline slopes clamped to [0, 1]; False: any real slopes
    step_cap: bool = True  # step fraction c(sigma) <= safety; False: c(sigma) unbounded (log-linear)
    spline_lr_factor: float = 5.0  # learning rate of the splines / of the scalars, relative to the kernels'
    scalar_lr_factor: float = 50.0

    @property
    def certified(self) -> bool:
        return self.tied and self.monotone and self.step_cap

    def __post_init__(self) -> None:
        if self.in_channels < 1 or self.hidden < 1 or self.channels < 1 or self.factors < 1:
            raise ValueError("in_channels, hidden, channels and factors must be >= 1")
        if self.kernel_size % 2 == 0 or self.kernel_size < 1:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        if self.knots < 3 or self.knots % 2 == 0:
            raise ValueError(f"knots must be odd and >= 3 (a knot at 0), got {self.knots}")
        if not self.knot_range > 0:
            raise ValueError(f"knot_range must be > 0, got {self.knot_range}")
        if not 0 < self.safety < 1:
            raise ValueError(f"safety must lie in (0, 1), got {self.safety}")
        lo, hi = self.sigma_range
        if not 0 < lo <= hi:
            raise ValueError(f"sigma_range must be (lo, hi) with 0 < lo <= hi, got {self.sigma_range}")
        if self.denoiser not in ("onestep", "prox"):
            raise ValueError(f"denoiser must be 'onestep' or 'prox', got {self.denoiser!r}")
        if not (0 < self.prox_tol < 1 and 0 < self.solve_tol < 1):
            raise ValueError("prox_tol and solve_tol must lie in (0, 1)")
        if self.solve_iterations < 1 or self.backprop_steps < 1:
            raise ValueError("solve_iterations and backprop_steps must be >= 1")
        if self.denoiser == "prox" and not self.certified:
            raise ValueError("the ablation switches tied / monotone / step_cap apply to denoiser: onestep only")

    @property
    def composed_size(self) -> int:
        return self.factors * (self.kernel_size - 1) + 1


class RidgeRegularizer(deepinv.models.Denoiser):
    """Convex ridge regularizer ``R_mu`` and its averaged one-step denoiser ``D(y, sigma)``.

    Parameters
    ----------
    config : RidgeConfig, optional
        Architecture; keyword overrides are accepted for convenience.

    Examples
    --------
    >>> import torch
    >>> net = RidgeRegularizer(hidden=2, channels=4, kernel_size=3, knots=5)
    >>> net(torch.rand(1, 1, 16, 16), 25 / 255).shape
    torch.Size([1, 1, 16, 16])
    >>> net.certificate().alpha <= net.config.safety
    True
    """

    def __init__(self, config: RidgeConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        cfg = RidgeConfig.resolve(config, overrides)
        self.config = cfg
        k = cfg.kernel_size
        sizes = [cfg.in_channels] + [cfg.hidden] * (cfg.factors - 1) + [cfg.channels]
        self.factors = nn.ParameterList()
        for a, b in zip(sizes[:-1], sizes[1:]):
            w = torch.empty(b, a, k, k)
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))
            self.factors.append(nn.Parameter(w))
        self.spline = LinearSpline(cfg.channels, knots=cfg.knots, knot_range=cfg.knot_range, monotone=cfg.monotone)
        # log mu(sigma) = m0 + m1 log(sigma / sigma_ref); c(sigma) = safety * sigmoid(c0 + c1 log(sigma / sigma_ref))
        self.mu_raw = nn.Parameter(torch.tensor([0.0, 0.0]))
        if cfg.denoiser == "prox":
            # log lam(sigma) = l0 + l1 log(sigma / sigma_ref); starts at the MAP-like lam ~ sigma^2
            self.lam_raw = nn.Parameter(torch.tensor([0.0, 2.0]))
        else:
            self.step_raw = nn.Parameter(torch.tensor([4.0, 0.0]))
        self.last_prox_error: float | None = None
        self.last_prox_iterations = 0
        self.register_buffer("power_vector", torch.randn(1, cfg.in_channels, 24, 24))
        self.register_buffer("lip_estimate", torch.tensor(0.0))
        with torch.no_grad():  # scale the factors so that ||W|| = 1 at initialisation
            n = self._power(iterations=30, slopes=torch.ones(cfg.channels))
            for w in self.factors:
                w.div_(max(n, 1e-12) ** (0.5 / len(self.factors)))
        if not cfg.tied:  # ablation: the adjoint's kernel starts equal to W's and is learned apart
            self.factors_t = nn.ParameterList([nn.Parameter(w.detach().clone()) for w in self.factors])
        self._warned_range = False

    # -- the linear map --------------------------------------------------------------------------
    def kernel(self, factors: nn.ParameterList | None = None) -> Tensor:
        """The composed, zero-mean kernel of ``W`` (channels, in_channels, 2k-1, 2k-1)."""
        ws = [w - w.mean(dim=(1, 2, 3), keepdim=True) for w in (self.factors if factors is None else factors)]
        kern = ws[0]
        for w in ws[1:]:
            # (w o kern)[o, i] = sum_m w[o, m] * kern[m, i] (full 2-D convolution of the kernels)
            p = w.shape[-1] - 1
            kern = F.conv2d(kern.transpose(0, 1), w.flip(-1, -2), padding=p).transpose(0, 1)
        return kern

    def W(self, x: Tensor, kern: Tensor | None = None) -> Tensor:
        kern = self.kernel() if kern is None else kern
        return F.conv2d(x, kern.to(x.dtype), padding=kern.shape[-1] // 2)

    def Wt(self, z: Tensor, kern: Tensor | None = None) -> Tensor:
        kern = self.kernel() if kern is None else kern
        kern = kern.to(z.dtype)
        if kern.shape[1] == 1:
            # grey: sum over ridges of depthwise correlations with the flipped kernels, the exact
            # adjoint of the zero-padded "same" correlation, ~4x faster on CPU than conv_transpose2d
            # with one output channel
            out = F.conv2d(z, kern.flip(-1, -2), padding=kern.shape[-1] // 2, groups=kern.shape[0])
            return out.sum(dim=1, keepdim=True)
        return F.conv_transpose2d(z, kern, padding=kern.shape[-1] // 2)

    def _power(self, *, iterations: int, slopes: Tensor, differentiable: bool = False,
               vector: str = "power_vector") -> Tensor:
        """Warm-started power iteration for ``||S^{1/2} W||^2`` (an estimate, not a bound); the start
        vector is the buffer named ``vector`` (one per estimated quantity)."""
        kern = self.kernel()
        scale = slopes.to(kern.dtype).view(1, -1, 1, 1)
        buf = getattr(self, vector)
        u = buf.to(kern.dtype)
        with torch.no_grad():
            for _ in range(iterations):
                u = u / u.norm().clamp_min(1e-30)
                u = self.Wt(scale * self.W(u, kern), kern)
        buf.copy_((u / u.norm().clamp_min(1e-30)).detach())
        if not differentiable:
            return u.norm().detach()
        v = buf
        return (scale * self.W(v, kern).pow(2)).sum()  # Rayleigh quotient of W^T S W at v, differentiable

    # -- the regulariser ------------------------------------------------------------------------
    def _log_ratio(self, sigma: Tensor) -> Tensor:
        return torch.log(sigma / self.config.sigma_ref)

    def mu(self, sigma: float | Tensor | None = None) -> Tensor:
        """Scaling ``mu(sigma)`` (at ``sigma_ref`` when None)."""
        if sigma is None:
            return torch.exp(self.mu_raw[0])
        s = torch.as_tensor(sigma, dtype=self.mu_raw.dtype)
        return torch.exp(self.mu_raw[0] + self.mu_raw[1] * self._log_ratio(s))

    def lam(self, sigma: float | Tensor | None = None) -> Tensor:
        """Weight ``lam(sigma)`` of the prox denoiser (``denoiser: prox`` models only)."""
        if self.config.denoiser != "prox":
            raise ValueError("lam(sigma) exists only for models with denoiser: prox")
        if sigma is None:
            return torch.exp(self.lam_raw[0])
        s = torch.as_tensor(sigma, dtype=self.lam_raw.dtype)
        return torch.exp(self.lam_raw[0] + self.lam_raw[1] * self._log_ratio(s))

    def grad(self, x: Tensor, mu: float | Tensor = 1.0, kern: Tensor | None = None) -> Tensor:
        """``grad R_mu(x) = W^T sigma(mu W x) / mu``."""
        mu = torch.as_tensor(mu, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
        kern = self.kernel() if kern is None else kern
        kern_t = kern if self.config.tied else self.kernel(self.factors_t)
        return self.Wt(self.spline(mu * self.W(x, kern)), kern_t) / mu

    def cost(self, x: Tensor, mu: float | Tensor = 1.0) -> Tensor:
        """``R_mu(x)`` per batch element, shape (B,)."""
        mu = torch.as_tensor(mu, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
        return (self.spline.integral(mu * self.W(x)) / mu**2).flatten(1).sum(1)

    def grad_lipschitz(self) -> float:
        """Rigorous bound ``L >= ||S^{1/2} W||^2 >= Lip(grad R_mu)`` for every mu and image size (cached)."""
        return float(self.certificate().details["grad_lipschitz"])

    # -- the denoiser ---------------------------------------------------------------------------
    def _sigma(self, sigma: float | Tensor, batch: int, ref: Tensor) -> Tensor:
        s = torch.as_tensor(sigma, dtype=ref.dtype, device=ref.device).reshape(-1)
        if s.numel() == 1:
            s = s.expand(batch)
        if s.numel() != batch:
            raise ValueError(f"sigma must be a scalar or have one value per batch element ({batch}), got {s.numel()}")
        if not torch.isfinite(s).all() or (s <= 0).any():
            raise ValueError("sigma must be finite and > 0")
        warn_outside_range(self, s, "it runs at the nearest trained level (the certificate holds over that range)")
        lo, hi = self.config.sigma_range
        return s.clamp(lo, hi)

    def step_fraction(self, sigma: Tensor) -> Tensor:
        t = self.step_raw[0] + self.step_raw[1] * self._log_ratio(sigma)
        if not self.config.step_cap:  # ablation: same parametrisation at init (c = safety sigmoid(4)), no cap
            return self.config.safety * torch.sigmoid(self.step_raw.new_tensor(4.0)) * torch.exp(t - 4.0)
        return self.config.safety * torch.sigmoid(t)

    def solve_prox(self, y: Tensor, lam: Tensor, mu: Tensor, lip: float, *, tol: float,
                   max_iter: int, rho: float = 0.0) -> tuple[Tensor, Tensor, int]:
        """``argmin_x 1/2 ||x - y||^2 + lam R_mu(x)`` per batch element (``lam``, ``mu`` of shape (B,)).

        ``R_mu`` is ``rho``-weakly convex (``rho = 0`` for a convex regularizer) and ``lam rho < 1``,
        so the objective is ``m = (1 - lam rho)``-strongly convex and ``(1 + lam lip)``-smooth.
        Accelerated gradient (linear rate ``1 - 1/sqrt(kappa)``), started at ``y``; stops when every
        element's certified error ``||x - x*|| <= ||grad F(x)|| / m`` is below ``tol ||y||``.
        Returns ``(x, errors, iterations)``.
        Runs under the caller's grad mode: with gradients on, ``x`` is differentiable in ``y`` through
        the iterations (used by the adversarial search of the certificate; the weights are detached).
        """
        lam = lam.to(y.dtype).reshape(-1, 1, 1, 1)
        mu = mu.to(y.dtype).reshape(-1, 1, 1, 1)
        kern = self.kernel().detach()
        smooth = 1 + lam * lip
        strong = 1 - lam * rho
        if not bool((strong > 0).all()):
            raise ValueError(f"prox of lam R with lam rho >= 1 (rho = {rho:g}): the problem is not strongly convex")
        rq = (strong / smooth).sqrt()
        beta = (1 - rq) / (1 + rq)
        target = tol * y.flatten(1).norm(dim=1) + 1e-12
        x = z = y
        for k in range(max_iter + 1):
            g = (z - y) + lam * self.grad(z, mu, kern)
            # the gradient at the extrapolated point certifies it: ||z - x*|| <= ||grad F(z)|| / m
            err = g.detach().flatten(1).norm(dim=1) / strong.detach().reshape(-1)
            if bool((err <= target).all()) or k == max_iter:
                return z, err, k
            x_new = z - g / smooth
            z = x_new + beta * (x_new - x)
            x = x_new
        raise AssertionError("unreachable")

    def weak_convexity(self) -> float:
        """Rigorous weak-convexity modulus of ``R_mu`` (0: this regularizer is convex)."""
        return 0.0

    def _prox_weight(self, s: Tensor, dtype: torch.dtype) -> tuple[Tensor, float]:
        """``lam(sigma)`` of the prox denoiser and the weak-convexity modulus it was capped with."""
        return self.lam(s.to(self.lam_raw.dtype)).to(dtype), 0.0

    def _prox_forward(self, x: Tensor, s: Tensor) -> Tensor:
        cfg = self.config
        lam, rho = self._prox_weight(s, x.dtype)
        mu = self.mu(s.to(self.mu_raw.dtype)).to(x.dtype)
        if not self.training:
            # inference solves to the certified tolerance; the training cap only bounds the training cost
            cap = max(cfg.solve_iterations, INFERENCE_ITERATIONS)
            out, err, k = self.solve_prox(x, lam, mu, self.grad_lipschitz(), tol=cfg.prox_tol, max_iter=cap, rho=rho)
            self.last_prox_error, self.last_prox_iterations = float(err.max()), k
            reached = err <= cfg.prox_tol * x.flatten(1).norm(dim=1) + 1e-12
            if not bool(reached.all()):
                warnings.warn(f"the prox denoiser stopped at its cap of {cap} iterations with a certified error "
                              f"{float(err.max()):.3g}, above prox_tol x ||y||; its firm-nonexpansiveness / "
                              "Lipschitz certificate holds only up to that error", stacklevel=3)
            return out
        # training: the forward solve is not differentiated; the gradient flows through the last
        # backprop_steps gradient steps taken from the solution (a truncated Neumann series of
        # the implicit gradient, a positive-definite preconditioning of it)
        with torch.no_grad():
            lip = 1.2 * float(self._power(iterations=3, slopes=self.spline.abs_slopes()))
            self.lip_estimate.fill_(lip / 1.2)
            sol, _, _ = self.solve_prox(x, lam.detach(), mu.detach(), lip, tol=cfg.solve_tol,
                                        max_iter=cfg.solve_iterations, rho=rho)
        smooth = (1 + lam.detach() * lip).view(-1, 1, 1, 1)
        lam4, mu4 = lam.view(-1, 1, 1, 1), mu.view(-1, 1, 1, 1)
        kern = self.kernel()
        out = sol
        for _ in range(cfg.backprop_steps):
            out = out - ((out - x) + lam4 * self.grad(out, mu4, kern)) / smooth
        return out

    def forward(self, x: Tensor, sigma: float | Tensor = 25 / 255, *args: Any, **kwargs: Any) -> Tensor:
        """One averaged gradient step ``x - (2 c(sigma) / L) grad R_mu(sigma)(x)`` (``denoiser: onestep``)
        or the prox of ``lam(sigma) R_mu(sigma)`` at ``x`` to a certified tolerance (``denoiser: prox``)."""
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"input must have shape (B, {self.config.in_channels}, H, W), got {tuple(x.shape)}")
        s = self._sigma(sigma, x.shape[0], x)
        if self.config.denoiser == "prox":
            return self._prox_forward(x, s)
        if self.training:
            lip = self._power(iterations=2, slopes=self.spline.abs_slopes(), differentiable=True)
            lip = lip.clamp_min(0.1)  # a floor while the splines grow from zero (authors: 0.1)
            self.lip_estimate.copy_(lip.detach())
        else:
            # all-zero splines give L = 0 and a zero gradient: any finite step is the identity map
            lip = torch.as_tensor(max(self.grad_lipschitz(), 1e-12), dtype=x.dtype, device=x.device)
        mu = self.mu(s.to(self.mu_raw.dtype)).to(x.dtype)
        tau = 2 * self.step_fraction(s.to(self.step_raw.dtype)).to(x.dtype) / lip
        return x - tau.view(-1, 1, 1, 1) * self.grad(x, mu)

    # -- certificate ----------------------------------------------------------------------------
    def certificate(self, *, adversarial: bool = False, **kwargs: Any) -> Certificate:
        """Certificate of ``x -> D(x, sigma)`` over the trained sigma range (rigorous part cached)."""
        return cached_with_search(self, self._certificate, adversarial=adversarial, **kwargs)

    @torch.no_grad()
    def _certificate(self) -> Certificate:
        t0 = time.perf_counter()
        slopes = self.spline.abs_slopes().detach().double()
        kern = self.kernel().detach().double() * slopes.sqrt().view(-1, 1, 1, 1)
        m = kern.shape[-1] // 2
        grid = max(32, 2 ** math.ceil(math.log2(math.sqrt(2) * math.pi * 2 * m + 1)))
        bound = conv_norm_bound(kern, grid=grid, rel_tol=1e-3)
        lip = bound.upper ** 2  # ||S^{1/2} W||^2 >= Lip(grad R)
        details = {"grad_lipschitz": lip, "norm_lower": bound.lower ** 2, "max_slopes": slopes.tolist(),
                   "kernel_size": int(kern.shape[-1])}
        if not self.config.certified:
            return self._ablation_certificate(t0, details)
        if self.config.denoiser == "prox":
            tol = self.config.prox_tol
            return Certificate(
                lipschitz=1.0, alpha=0.5,
                method=(f"prox of lam(sigma) R_mu(sigma), a convex ridge regularizer (splines with slopes in [0, 1]): "
                        f"firmly nonexpansive (Bauschke-Combettes Prop. 12.28); computed by accelerated gradient to a "
                        f"certified error <= {tol:g} ||y|| (1-strong convexity), L = ||S^(1/2) W||^2 from the symbol"),
                seconds=time.perf_counter() - t0, details={**details, "prox_tol": tol})
        lo, hi = self.config.sigma_range
        c_max = max(float(self.step_fraction(torch.tensor(v, dtype=self.step_raw.dtype))) for v in (lo, hi))
        # at inference tau = 2 c / lip, so D is (tau * Lip(grad R) / 2) <= c averaged
        alpha = c_max if lip > 0 else None
        return Certificate(
            lipschitz=1.0,
            alpha=alpha if alpha is not None and alpha > 0 else None,
            method=("one gradient step x - (2c/L) grad R on a convex ridge regularizer (splines with slopes in "
                    "[0, 1], composed kernel); L = ||S^(1/2) W||^2 bounded from the symbol (Sedghi et al. 2019) at "
                    "every image size; (tau L / 2)-averaged gradient step (Bauschke-Combettes Cor. 18.17)"),
            seconds=time.perf_counter() - t0,
            details={**details, "step_fraction_max": c_max},
        )

    def _ablation_certificate(self, t0: float, details: dict) -> Certificate:
        """A model with a constraint switched off: only a Lipschitz bound, no averagedness.

        ``Lip(D) <= 1 + tau_max ||W_t|| max|slope| ||W||`` with ``tau = 2 c / L_used`` (both norms from
        the symbol); ``L_used`` is the rigorous ``||S^(1/2) W||^2`` computed like the certified case."""
        slope = float(self.spline.slopes().detach().abs().max())
        k, kt = self.kernel().detach().double(), self.kernel(getattr(self, "factors_t", None)).detach().double()
        norms = [conv_norm_bound(x, grid=64, rel_tol=1e-3).upper for x in (k, kt)]
        lo, hi = self.config.sigma_range
        c_max = max(float(self.step_fraction(torch.tensor(v, dtype=self.step_raw.dtype))) for v in (lo, hi))
        lip_used = max(details["grad_lipschitz"], 1e-12)
        return Certificate(lipschitz=1.0 + 2 * c_max / lip_used * norms[0] * norms[1] * slope, alpha=None,
                           method="ablation model (tied/monotone/step_cap off): triangle-inequality bound only",
                           seconds=time.perf_counter() - t0, details={**details, "step_fraction_max": c_max})

    def param_groups(self, lr: float) -> list[dict]:
        """Optimiser groups of the authors' recipe: kernels at ``lr``, splines at ``5 lr``, scalars at ``50 lr``."""
        return [
            {"params": list(self.factors) + (list(self.factors_t) if not self.config.tied else []), "lr": lr},
            {"params": [self.spline.raw], "lr": self.config.spline_lr_factor * lr},
            {"params": [self.mu_raw, self.lam_raw if self.config.denoiser == "prox" else self.step_raw],
             "lr": self.config.scalar_lr_factor * lr},
        ]


class RidgePrior(Prior):
    """``lam * R_mu`` as a smooth convex prior: value, gradient, Lipschitz constant and prox.

    Parameters
    ----------
    model : RidgeRegularizer
        Trained regulariser (eval mode).
    weight : float
        ``lam``.
    mu : float, optional
        Scaling ``mu`` (default: the model's trained ``mu(sigma_ref)``).
    tol : float
        Target accuracy of the prox: stop when the certified distance to the exact prox,
        ``||grad F(x)||`` for the 1-strongly convex inner objective ``F``, falls below ``tol``
        times ``||v||`` (relative).
    max_iter : int
        Cap of the inner accelerated gradient loop.

    Examples
    --------
    >>> import torch
    >>> net = RidgeRegularizer(hidden=2, channels=4, kernel_size=3, knots=5).eval()
    >>> with torch.no_grad():
    ...     _ = net.spline.raw.fill_(0.5)
    >>> p = 0.1 * RidgePrior(net)
    >>> x = torch.rand(1, 1, 8, 8)
    >>> bool(p.value(x) >= 0), p.grad(x).shape == x.shape
    (True, True)
    """

    name = "ridge"
    convex = True
    has_value = True
    exact_prox = False
    smooth = True

    def __init__(self, model: RidgeRegularizer, *, weight: float = 1.0, mu: float | None = None,
                 tol: float = 1e-4, max_iter: int = 500) -> None:
        super().__init__(weight=weight)
        self.model = model.eval()
        self.mu = float(model.mu().detach()) if mu is None else float(mu)
        if not (math.isfinite(self.mu) and self.mu > 0):
            raise ValueError(f"mu must be a finite number > 0, got {mu!r}")
        self.tol, self.max_iter = float(tol), int(max_iter)
        self.last_prox_error: float | None = None
        self.last_prox_iterations: int = 0

    def _fold(self, x: Tensor) -> Tensor:
        """Channels beyond the model's own are folded into the batch: ``R(x) = sum_c R(x_c)``
        for a grey model on colour images (same gradient Lipschitz bound, channels decouple)."""
        k = self.model.config.in_channels
        if x.shape[1] == k:
            return x
        if k != 1:
            raise ValueError(f"the ridge model has {k} channels, the image {x.shape[1]}; use a matching model")
        return x.reshape(-1, 1, *x.shape[-2:])

    def _value(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.model.cost(self._fold(x), self.mu).reshape(x.shape[0], -1).sum(1)

    def grad(self, x: Tensor) -> Tensor:
        """``weight * grad R_mu(x)``."""
        with torch.no_grad():
            return self.weight * self.model.grad(self._fold(x), self.mu).reshape(x.shape)

    def lipschitz_grad(self) -> float:
        """Rigorous Lipschitz constant of :meth:`grad` (``weight * L``)."""
        return self.weight * self.model.grad_lipschitz()

    def _prox(self, v: Tensor, t: float) -> Tensor:
        """``argmin_x 1/2 ||x - v||^2 + t R_mu(x)`` by the model's accelerated solver
        (:meth:`RidgeRegularizer.solve_prox`, each image and channel to ``tol`` times its norm); the
        error bound ``||x - x*|| <= ||grad F(x)|| / (1 - t rho_R)`` over the batch is recorded in
        :attr:`last_prox_error`.  For a weakly convex model (``rho_R > 0``) it exists while ``t rho_R < 1``."""
        rho = self.model.weak_convexity()
        if t * rho >= 1:
            raise ValueError(f"prox of the weakly convex prior with step x weight {t:g} >= 1 / rho_R = {1 / rho:g}: "
                             "the prox problem is not convex; use a smaller step")
        if t == 0:
            self.last_prox_error, self.last_prox_iterations = 0.0, 0
            return v
        u = self._fold(v)
        with torch.no_grad():
            x, err, k = self.model.solve_prox(u, u.new_full((u.shape[0],), float(t)), u.new_full((u.shape[0],), self.mu),
                                              self.model.grad_lipschitz(), tol=self.tol, max_iter=self.max_iter,
                                              rho=rho)
        self.last_prox_error, self.last_prox_iterations = float(err.norm()), k
        return x.reshape(v.shape)

    def __repr__(self) -> str:
        return f"RidgePrior(weight={self.weight:g}, mu={self.mu:g})"


#: Default weights of the shipped convex ridge regularizers in ``1/2 ||Ax - y||^2 + lam R_mu(x)``:
#: ``log lam = a + b log(noise / reference)`` and the same for ``mu``, fitted by
#: ``python scripts/tune_ridge.py --model priors/weights/ridge_gray.pt --task deblur`` on the held-out
#: image (gaussian:1.6 blur, noise 0.01 / 0.03 / 0.05, PGD with safeguarded Anderson; motorcycle
#: 128², one run: PSNR 24.92 / 23.32 / 22.45 dB at lam 0.0342 / 0.154 / 0.214 and mu 22.5 / 15.0 /
#: 9.0; record in priors/results/ridge_tune_deblur.json).
RIDGE_WEIGHTS: dict[str, dict] = {
    "ridge_gray": {"reference": 0.01, "lam": (-3.3235, 1.1753), "mu": (3.1588, -0.5375)},
}


def ridge_weights(model: RidgeRegularizer, noise: float, name: str = "") -> tuple[float, float, str]:
    """Default ``(lam, mu)`` for noise level ``noise``, and where they come from.

    A shipped model uses the log-linear rule of :data:`RIDGE_WEIGHTS`; another one starts from its
    own one-step values (``lam = 2c/L`` at the training level scaled like the MAP weight
    ``noise^2``, ``mu`` inversely proportional to the noise).

    >>> net = RidgeRegularizer(hidden=2, channels=4, kernel_size=3, knots=5)
    >>> lam, mu, _ = ridge_weights(net, 0.01, "ridge_gray")
    >>> round(lam, 4), round(mu, 2)
    (0.036, 23.54)
    """
    level = max(float(noise), 1e-3)
    rule = RIDGE_WEIGHTS.get(name)
    if rule is not None:
        t = math.log(level / rule["reference"])
        return (math.exp(rule["lam"][0] + rule["lam"][1] * t), math.exp(rule["mu"][0] + rule["mu"][1] * t),
                f"rule fitted on the held-out image for noise {noise:g} (scripts/tune_ridge.py)")
    if model.config.denoiser == "prox":
        # the trained denoiser is prox_{lam(s) R_mu(s)}: the MAP weights for Gaussian noise of level s
        with torch.no_grad():
            lam, mu = float(model.lam(level)), float(model.mu(level))
        return lam, mu, f"the model's trained lam(sigma), mu(sigma) at noise {noise:g}"
    sref = float(model.config.sigma_ref)
    with torch.no_grad():
        c = float(model.step_fraction(torch.tensor(sref)))
        mu = float(model.mu()) * sref / level
    lam = 2 * c / model.grad_lipschitz() * (level / sref) ** 2
    return lam, mu, f"model's one-step values scaled to noise {noise:g} (untuned)"


def ridge_mu_for_lam(model: RidgeRegularizer, lam: float, name: str = "") -> float:
    """The ``mu`` that goes with ``lam`` along the default rule (one parameter for tuners).

    >>> net = RidgeRegularizer(hidden=2, channels=4, kernel_size=3, knots=5)
    >>> lam, mu, _ = ridge_weights(net, 0.03, "ridge_gray")
    >>> abs(ridge_mu_for_lam(net, lam, "ridge_gray") - mu) < 1e-9 * mu
    True
    """
    rule = RIDGE_WEIGHTS.get(name)
    if rule is not None:
        t = (math.log(lam) - rule["lam"][0]) / rule["lam"][1]
        return math.exp(rule["mu"][0] + rule["mu"][1] * t)
    if model.config.denoiser == "prox":  # invert the monotone lam(sigma), read mu there
        with torch.no_grad():
            l0, l1 = (float(v) for v in model.lam_raw)
            level = model.config.sigma_ref * math.exp((math.log(lam) - l0) / l1) if l1 else model.config.sigma_ref
            return float(model.mu(level))
    sref = float(model.config.sigma_ref)
    with torch.no_grad():
        c = float(model.step_fraction(torch.tensor(sref)))
        mu_ref = float(model.mu())
    level = sref * math.sqrt(lam * model.grad_lipschitz() / (2 * c))  # invert lam(noise) above
    return mu_ref * sref / max(level, 1e-3)


def transfer_state(src: RidgeRegularizer, dst: RidgeRegularizer) -> dict:
    """``dst``'s state dict carrying ``src``'s kernels, splines, ``mu(sigma)`` and buffers.

    The denoiser-specific scalars (``step_raw`` of a one-step model, ``lam_raw`` of a prox model)
    stay ``dst``'s own, so a trained one-step model warm-starts a prox one (``init_from``)."""
    own = ("lam_raw", "step_raw")
    mine = dst.state_dict()
    state = {k: v for k, v in src.state_dict().items() if k not in own and k in mine}
    state.update({k: v for k, v in mine.items() if k in own or k not in state})  # and dst's extra buffers
    return state
