"""The averaged gradient-step residual network (Sherry et al., Physica D 2024, arXiv 2306.17332).

Each block integrates the gradient flow ``x' = -F(x)``, ``F(x) = W^T sigma(W x + b)``, of the convex
potential ``f(x) = sum psi(W x + b)`` (``psi' = sigma``, slope of sigma in [0, L_sigma]).  ``grad f``
is ``L_sigma ||W||^2``-Lipschitz, so

* one explicit Euler step ``x - h F(x)`` is ``(h L_sigma ||W||^2 / 2)``-averaged when
  ``h L_sigma ||W||^2 < 2`` (gradient step on a convex function, Bauschke & Combettes Prop. 4.39
  / Cor. 18.17), and nonexpansive at equality;
* an explicit Runge--Kutta step with circle-contractivity radius r is nonexpansive when
  ``h L_sigma ||W||^2 <= 2 r`` (Sherry et al., Sec. 3; r = 1 for Euler, Heun and RK4).

The block integrates over a learnable time ``T``: ``n = ceil(T L ||W||^2 / (2 r c))`` sub-steps of
size ``h = T / n`` with a safety factor ``c < 1``, so the step condition holds strictly whatever the
weights (the authors' adaptive rule).  ``||W||`` comes from a warm-started power iteration, one
iteration per training step; :func:`priors.certify.certify` later bounds every ``||W||``
rigorously and recomputes the constants from the steps actually used.

The denoiser is ``D(x, sigma) = (1 - theta) x + theta N_sigma(x)`` with
``N_sigma(x) = E^T B_K o ... o B_1 (E s x) / s``: ``E`` zero-pads the image channels to ``C``
channels (an isometry, ``E^T E = I``), ``s = s(sigma) > 0`` is a scalar input gain.  If the blocks
are ``a_k``-averaged, ``N_sigma`` is averaged with the composed constant (Combettes & Yamada 2015),
``E^T (.) E`` and the gain keep that constant, and ``D`` is ``theta * alpha_N``-averaged.

The noise level enters only through the biases ``b_k(sigma)``, the gain ``s(sigma)`` and the
weight ``theta(sigma) in (0, 1)``; for each fixed sigma the map ``x -> D(x, sigma)`` is still a
composition of gradient steps on convex potentials, so the certificate in ``x`` holds uniformly
over sigma.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import deepinv
import torch
import torch.nn.functional as F
from torch import nn

from ._config import ModelConfigMixin, warn_outside_range
from .splines import LinearSpline
from .base import cached_certificate
from .certify import certify
from .integrators import INTEGRATORS, composed_alpha  # re-exported: they were defined here

__all__ = [
    "INTEGRATORS",
    "AveragedResNetConfig",
    "GradientStepBlock",
    "AveragedResNet",
    "composed_alpha",
    "untie_substeps",
]

#: Admissible activations and their Lipschitz constant: monotone, slope in [0, 1] (so each is the
#: derivative of a convex potential psi).  The ReLU family makes psi grow quadratically, so the flow
#: shrinks *large* responses W x (edges) hardest; the saturating ones (tanh: psi = log cosh, hardtanh:
#: psi = Huber) grow linearly, the TV-like behaviour that preserves edges and flattens small
#: (noise) responses.
#: "spline": a learned per-channel linear spline with slopes in [0, 1] (priors.splines.LinearSpline,
#: the activation of the convex ridge regularizer), 21 knots on [-1, 1], constant outside.
_ACTIVATIONS = {"relu": 1.0, "leaky_relu": 1.0, "tanh": 1.0, "hardtanh": 1.0, "spline": 1.0}


@dataclass(frozen=True)
class AveragedResNetConfig(ModelConfigMixin):
    """Architecture of :class:`AveragedResNet` (stored in every checkpoint)."""

    in_channels: int = 1
    width: int = 32
    depth: int = 8
    kernel_size: int = 3
    integrator: str = "euler"
    activation: str = "leaky_relu"
    negative_slope: float = 0.05
    boundary: str = "zero"  # "zero" or "circular"
    safety: float = 0.95  # c in h L ||W||^2 <= 2 r c
    max_substeps: int = 4
    constrained: bool = True
    log_gain_init: float = 0.0  # initial log s(sigma): sets where saturating activations saturate
    differentiable_norm: bool = False  # training only: gradient of the step bound w.r.t. W (see schedule)
    sigma_ref: float = 25 / 255  # sigma is fed to the conditioning as sigma / sigma_ref
    sigma_range: tuple[float, float] = (5 / 255, 55 / 255)

    def __post_init__(self) -> None:
        if self.integrator not in INTEGRATORS:
            raise ValueError(f"integrator {self.integrator!r} unknown; valid: {', '.join(INTEGRATORS)}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r} unknown; valid: {', '.join(_ACTIVATIONS)}")
        if self.boundary not in ("zero", "circular"):
            raise ValueError(f"boundary {self.boundary!r} unknown; valid: zero, circular")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        if not 0 < self.safety < 1:
            raise ValueError(f"safety must lie in (0, 1), got {self.safety}")
        if not 0 <= self.negative_slope <= 1:
            raise ValueError(f"negative_slope must lie in [0, 1] (slope-restricted activation), got {self.negative_slope}")
        if self.width < self.in_channels:
            raise ValueError(f"width ({self.width}) must be >= in_channels ({self.in_channels}) for the zero-padding lift")
        lo, hi = self.sigma_range
        if not 0 <= lo <= hi or hi <= 0:  # lo == hi: a model trained at one noise level
            raise ValueError(f"sigma_range must be (lo, hi) with 0 <= lo <= hi and hi > 0, got {self.sigma_range}")


class GradientStepBlock(nn.Module):
    """One block: integrate ``x' = -W^T sigma(W x + b(sigma))`` over a learnable time T.

    ``W^T`` is the exact adjoint of ``W`` (``conv_transpose2d`` with the same weights for zero
    padding; correlation with the flipped, transposed kernel for circular padding), so the
    vector field is the gradient of a convex potential and the step rule above applies.

    Parameters
    ----------
    width : int
        Number of channels.
    kernel_size : int
        Odd convolution size.
    integrator, activation, negative_slope, boundary, safety, max_substeps, constrained
        See :class:`AveragedResNetConfig`.
    power_size : int
        Spatial size of the warm-started power-iteration vector used to track ``||W||``.
    """

    def __init__(
        self,
        *,
        width: int,
        kernel_size: int = 3,
        integrator: str = "euler",
        activation: str = "leaky_relu",
        negative_slope: float = 0.05,
        boundary: str = "zero",
        safety: float = 0.95,
        max_substeps: int = 4,
        constrained: bool = True,
        differentiable_norm: bool = False,
        power_size: int = 32,
    ) -> None:
        super().__init__()
        self.width, self.kernel_size, self.boundary = width, kernel_size, boundary
        self.integrator, self.safety, self.max_substeps = integrator, safety, max_substeps
        self.constrained = constrained
        self.differentiable_norm = differentiable_norm
        self.activation = activation
        self.negative_slope = negative_slope if activation == "leaky_relu" else 0.0
        if activation == "spline":  # learned, monotone, slopes in [0, 1]: Lipschitz 1 like the others
            self._act = LinearSpline(width, knots=21, knot_range=1.0)
        else:
            self._act = {"tanh": torch.tanh, "hardtanh": F.hardtanh}.get(
                activation, functools.partial(F.leaky_relu, negative_slope=self.negative_slope))
        self.lip_activation = _ACTIVATIONS[activation]
        self.radius = INTEGRATORS[integrator]["radius"]
        self.weight = nn.Parameter(torch.empty(width, width, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(width))
        self.bias_sigma = nn.Parameter(torch.zeros(width))  # b(sigma) = bias + (sigma/sigma_ref) bias_sigma
        # T = softplus(time_raw); with the constraint off this is the raw step h itself.
        self.time_raw = nn.Parameter(torch.tensor(0.0))
        u = torch.randn(1, width, power_size, power_size)
        self.register_buffer("power_vector", u / u.norm())
        self.register_buffer("norm_estimate", torch.tensor(0.0))
        self.refresh_norm(iterations=50)

    # -- the linear map W and its exact adjoint ------------------------------------------------
    def conv(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        w = self.weight if weight is None else weight
        p = self.kernel_size // 2
        if self.boundary == "circular":
            return F.conv2d(F.pad(x, (p, p, p, p), mode="circular"), w)
        return F.conv2d(x, w, padding=p)

    def conv_adjoint(self, y: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        w = self.weight if weight is None else weight
        p = self.kernel_size // 2
        # The adjoint of a stride-1 convolution is the correlation with the flipped, transposed
        # kernel: for zero padding this equals conv_transpose2d(y, w, padding=p) but conv2d is
        # several times faster on CPU; for circular padding the same holds with circular padding.
        wt = w.transpose(0, 1).flip(-1, -2)
        if self.boundary == "circular":
            return F.conv2d(F.pad(y, (p, p, p, p), mode="circular"), wt)
        return F.conv2d(y, wt, padding=p)

    @torch.no_grad()
    def refresh_norm(self, iterations: int = 1) -> float:
        """Warm-started power iteration on ``W^T W``; updates and returns the ``||W||`` estimate."""
        w = self.weight.detach()
        u = self.power_vector.to(w.dtype)
        est = 0.0
        for _ in range(iterations):
            v = self.conv_adjoint(self.conv(u, w), w)
            est = float(v.norm())  # ||W^T W u|| <= ||W||^2 for a unit u
            u = v / max(est, 1e-30)
        self.power_vector.copy_(u.to(self.power_vector.dtype))
        self.norm_estimate.fill_(math.sqrt(max(est, 0.0)))
        return math.sqrt(max(est, 0.0))

    # -- step rule ---------------------------------------------------------------------------------
    def integration_time(self) -> torch.Tensor:
        return F.softplus(self.time_raw)

    def schedule(self, norm: float | None = None) -> tuple[torch.Tensor, int]:
        """Sub-step size h and count n for the given ``||W||`` (default: the stored estimate).

        Constrained: ``n = ceil(T L ||W||^2 / (2 r c))`` capped at ``max_substeps`` and
        ``h = min(T / n, 2 r c / (L ||W||^2))`` so that ``h L ||W||^2 <= 2 r c < 2 r`` always.
        Unconstrained: one step with ``h = T``.
        """
        t = self.integration_time()
        if not self.constrained:
            return t, 1
        if norm is None and self.training and self.differentiable_norm:
            # ||W|| ~ ||W u|| with the (detached) power vector u, differentiable in W as in spectral
            # normalisation: the optimiser then sees that scaling W up shrinks the allowed step.
            nu2 = self.conv(self.power_vector.to(self.weight.dtype)).pow(2).sum()
            # straight-through: the value is the stored estimate (the step used at inference),
            # the gradient is that of ||W u||^2
            nu2 = nu2 + (self.norm_estimate.to(nu2.dtype) ** 2 - nu2).detach()
            curv = self.lip_activation * torch.clamp(nu2, min=1e-30)
        else:
            norm = float(self.norm_estimate) if norm is None else norm
            curv = max(self.lip_activation * norm**2, 1e-30)
        h_max = 2 * self.radius * self.safety / curv
        h_val = float(h_max.detach()) if isinstance(h_max, torch.Tensor) else float(h_max)
        n = int(min(self.max_substeps, max(1, math.ceil(float(t.detach()) / h_val))))
        return torch.clamp(t / n, max=h_max), n

    # -- forward ----------------------------------------------------------------------------------
    def field(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.conv_adjoint(self._act(self.conv(x) + bias))

    def forward(self, x: torch.Tensor, sigma_feature: torch.Tensor) -> torch.Tensor:
        if self.training and self.constrained:
            self.refresh_norm(iterations=1)
        bias = (self.bias[None, :] + sigma_feature[:, None] * self.bias_sigma[None, :])[..., None, None]
        h, n = self.schedule()
        tab = INTEGRATORS[self.integrator]
        for _ in range(n):
            stages: list[torch.Tensor] = []
            for i in range(len(tab["b"])):
                xi = x
                if i > 0:
                    for j, a in enumerate(tab["a"][i - 1]):
                        if a:
                            xi = xi - (h * a) * stages[j]
                stages.append(self.field(xi, bias))
            x = x - h * sum(b * k for b, k in zip(tab["b"], stages))
        return x


class AveragedResNet(deepinv.models.Denoiser):
    """Averaged gradient-step residual network denoiser ``D(x, sigma)``.

    ``D(x, sigma) = (1 - theta(sigma)) x + theta(sigma) N_sigma(x)``, see the module docstring for
    the mathematics and :func:`priors.certify.certify` for the certificate.  A
    ``deepinv.models.Denoiser``, so it drops into deepinv's PnP as well as ours.

    Parameters
    ----------
    config : AveragedResNetConfig, optional
        Architecture; keyword overrides are accepted for convenience.

    Examples
    --------
    >>> import torch
    >>> from priors.averaged import AveragedResNet
    >>> net = AveragedResNet(width=8, depth=2)
    >>> net(torch.rand(1, 1, 16, 16), 0.1).shape
    torch.Size([1, 1, 16, 16])
    """

    def __init__(self, config: AveragedResNetConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        cfg = AveragedResNetConfig.resolve(config, overrides)
        self.config = cfg
        self.blocks = nn.ModuleList(
            GradientStepBlock(
                width=cfg.width,
                kernel_size=cfg.kernel_size,
                integrator=cfg.integrator,
                activation=cfg.activation,
                negative_slope=cfg.negative_slope,
                boundary=cfg.boundary,
                safety=cfg.safety,
                max_substeps=cfg.max_substeps,
                constrained=cfg.constrained,
                differentiable_norm=cfg.differentiable_norm,
            )
            for _ in range(cfg.depth)
        )
        # theta(sigma) = sigmoid(t0 + t1 sigma/sigma_ref) in (0, 1); s(sigma) = exp(g0 + g1 sigma/sigma_ref).
        self.theta_raw = nn.Parameter(torch.tensor([2.0, 0.0]))
        self.gain_raw = nn.Parameter(torch.tensor([float(cfg.log_gain_init), 0.0]))
        self._warned_range = False

    # -- conditioning -----------------------------------------------------------------------------
    def _sigma_feature(self, sigma: float | torch.Tensor, batch: int, ref: torch.Tensor) -> torch.Tensor:
        s = torch.as_tensor(sigma, dtype=ref.dtype, device=ref.device).reshape(-1)
        if s.numel() == 1:
            s = s.expand(batch)
        if s.numel() != batch:
            raise ValueError(f"sigma must be a scalar or have one value per batch element ({batch}), got {s.numel()}")
        if not torch.isfinite(s).all() or (s < 0).any():
            raise ValueError("sigma must be finite and >= 0")
        warn_outside_range(
            self, s, "it runs at the nearest trained level (the certificate, computed over that range, holds); "
            "for weaker denoising below the range use priors.denoiser_at_level", stacklevel=4)
        lo, hi = self.config.sigma_range
        # Clamped: theta(sigma) and the gain are certified over the trained range only (theta grows
        # with sigma, so an unclamped sigma above it would weaken alpha below the stated value).
        return s.clamp(lo, hi) / self.config.sigma_ref

    def theta(self, sigma_feature: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.theta_raw[0] + self.theta_raw[1] * sigma_feature)

    def gain(self, sigma_feature: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.gain_raw[0] + self.gain_raw[1] * sigma_feature)

    # -- maps -------------------------------------------------------------------------------------
    def nonexpansive_part(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """``N_sigma(x) = E^T B_K ... B_1 (E s x) / s`` (averaged when the blocks are)."""
        feat = self._sigma_feature(sigma, x.shape[0], x)
        return self._n(x, feat)

    def _n(self, x: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if c != self.config.in_channels:
            raise ValueError(
                f"input has {c} channels but the model was built for in_channels={self.config.in_channels}"
            )
        s = self.gain(feat)[:, None, None, None]
        z = F.pad(x * s, (0, 0, 0, 0, 0, self.config.width - c))  # isometric lift E
        for block in self.blocks:
            z = block(z, feat)
        return z[:, :c] / s  # E^T, undo the gain

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor = 25 / 255, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Denoise ``x`` (B, C, H, W) at noise level ``sigma`` (scalar or one per batch element)."""
        if x.dim() != 4:
            raise ValueError(f"input must have shape (B, C, H, W), got {tuple(x.shape)}")
        feat = self._sigma_feature(sigma, x.shape[0], x)
        th = self.theta(feat)[:, None, None, None]
        return (1 - th) * x + th * self._n(x, feat)

    def certificate(self, *, adversarial: bool = False, **kwargs: Any):
        """Certificate of ``x -> D(x, sigma)`` over the trained sigma range.

        The rigorous part (see :func:`priors.certify.certify`) is cached until the weights change,
        so solvers can ask for it freely; ``adversarial=True`` adds the (slower) empirical search.
        """
        if adversarial or kwargs:
            return certify(self, adversarial=adversarial, **kwargs)
        return cached_certificate(self, lambda: certify(self, adversarial=False))

    @torch.no_grad()
    def refresh_norms(self, iterations: int = 200) -> None:
        """Run the warm-started power iterations further (e.g. after training)."""
        for block in self.blocks:
            block.refresh_norm(iterations=iterations)


@torch.no_grad()
def untie_substeps(model: AveragedResNet) -> AveragedResNet:
    """The same map with every integration sub-step turned into its own block (weights untied).

    A constrained block that takes ``n`` sub-steps of size ``h`` becomes ``n`` blocks with
    ``max_substeps = 1``, each a copy of its weights whose integration time is ``h``; the map
    ``x -> D(x, sigma)`` is unchanged (up to rounding) and so is its certificate, but training
    can then move the copies apart: depth at the same cost per forward pass.  Used to warm-start
    a deeper network from a trained one (``init_from`` in a training config).
    """
    cfg = model.config
    if not cfg.constrained:
        raise ValueError("untie_substeps needs a constrained model (an unconstrained block takes a single step)")
    schedules = [blk.schedule(norm=float(blk.norm_estimate)) for blk in model.blocks]  # inference steps
    depth = sum(n for _, n in schedules)
    out = AveragedResNet(AveragedResNetConfig.from_dict({**cfg.to_dict(), "depth": depth, "max_substeps": 1}))
    out.theta_raw.copy_(model.theta_raw)
    out.gain_raw.copy_(model.gain_raw)
    k = 0
    for blk, (h, n) in zip(model.blocks, schedules):
        for _ in range(n):
            new = out.blocks[k]
            new.weight.copy_(blk.weight)
            new.bias.copy_(blk.bias)
            new.bias_sigma.copy_(blk.bias_sigma)
            new.power_vector.copy_(blk.power_vector)
            new.norm_estimate.copy_(blk.norm_estimate)
            # softplus^{-1}(h): the new block's time is exactly the old sub-step
            hv = float(h)
            new.time_raw.fill_(hv + math.log(-math.expm1(-hv)))
            k += 1
    return out.train(model.training)
