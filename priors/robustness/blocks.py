"""Residual blocks of the certified classifiers, each with its rigorous l2 Lipschitz bound.

Gradient-step blocks (Sherry et al.), the unconstrained baseline, contractive neural ODE blocks
(Zakwan et al.) and Gershgorin residual layers (Juston et al.); see
:mod:`priors.robustness.models` for the architectures built from them.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..averaged import GradientStepBlock
from ..integrators import substep_bound
from ..spectral import conv_norm_bound
from .layers import ROUND_UP

__all__ = [
    "GradientStepLayer",
    "PlainResidualBlock",
    "PlainConv",
    "ContractiveODEBlock",
    "gershgorin_diagonal",
    "GershgorinResidualBlock",
]


class GradientStepLayer(nn.Module):
    """A :class:`priors.averaged.GradientStepBlock` used in a classifier (sigma feature = 0).

    Bound: the block's convolution norm is bounded rigorously by
    :func:`priors.spectral.conv_norm_bound`; each of its ``n`` sub-steps with ``h l``,
    ``l = L_sigma ||W||^2``, has the bound of :func:`priors.integrators.substep_bound` (1 when
    ``h l <= 2 r``, Sherry et al. 2024), so the block is bounded by ``lip_step ** n``.

    Examples
    --------
    >>> layer = GradientStepLayer(width=4)
    >>> layer(torch.rand(1, 4, 8, 8)).shape
    torch.Size([1, 4, 8, 8])
    """

    def __init__(self, *, width: int, kernel_size: int = 3, integrator: str = "euler",
                 negative_slope: float = 0.05, max_substeps: int = 4, constrained: bool = True) -> None:
        super().__init__()
        self.block = GradientStepBlock(width=width, kernel_size=kernel_size, integrator=integrator,
                                       negative_slope=negative_slope, max_substeps=max_substeps,
                                       constrained=constrained)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x, torch.zeros(x.shape[0], dtype=x.dtype, device=x.device))

    @torch.no_grad()
    def bound_details(self) -> dict[str, float]:
        b = self.block
        nb = conv_norm_bound(b.weight, rel_tol=5e-3)
        h, n = b.schedule()
        hl = float(h) * b.lip_activation * nb.upper**2
        lip_step, _ = substep_bound(b.integrator, hl, b.radius)
        return {"norm_upper": nb.upper, "h_L_norm2": hl, "substeps": n, "lipschitz": lip_step**n}

    def lipschitz_bound(self) -> float:
        return float(self.bound_details()["lipschitz"])


class PlainResidualBlock(nn.Module):
    """Unconstrained ``x + C2 relu(C1 x + b1) + b2`` (baseline); bound ``1 + ||C2|| ||C1||``.

    Examples
    --------
    >>> PlainResidualBlock(width=4)(torch.rand(1, 4, 8, 8)).shape
    torch.Size([1, 4, 8, 8])
    """

    def __init__(self, *, width: int, kernel_size: int = 3) -> None:
        super().__init__()
        p = kernel_size // 2
        self.conv1 = nn.Conv2d(width, width, kernel_size, padding=p)
        self.conv2 = nn.Conv2d(width, width, kernel_size, padding=p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))

    def lipschitz_bound(self) -> float:
        n1 = conv_norm_bound(self.conv1.weight, rel_tol=5e-3).upper
        n2 = conv_norm_bound(self.conv2.weight, rel_tol=5e-3).upper
        return 1.0 + n1 * n2


class PlainConv(nn.Module):
    """Unconstrained convolution (baseline stem / growth); bound from :func:`conv_norm_bound`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def lipschitz_bound(self) -> float:
        return conv_norm_bound(self.conv.weight, rel_tol=5e-3).upper


def _abs_row_col_bound(kernel: torch.Tensor) -> torch.Tensor:
    """``sqrt(||K||_1 ||K||_inf)`` of the convolution matrix: an upper bound of ``||K||_2``.

    For a convolution with kernel ``K`` (c_out, c_in, k, k) and zero or circular padding, every
    row of its matrix holds (a subset of) the taps ``K[o, :, :, :]`` and every column (a subset
    of) ``K[:, i, :, :]``, so the max absolute row sum is ``<= max_o sum |K[o]|`` and the column
    sum ``<= max_i sum |K[:, i]|``; ``||A||_2 <= sqrt(||A||_1 ||A||_inf)`` (Schur / Hoelder).
    Differentiable, valid at every image size.
    """
    a = kernel.abs()
    return torch.sqrt(a.sum(dim=(1, 2, 3)).max() * a.sum(dim=(0, 2, 3)).max())


class ContractiveODEBlock(nn.Module):
    """Convolutional neural ODE ``z' = -gamma z + sigma(K z + b)`` over time ``T``, explicit Euler.

    ``sigma`` is leaky ReLU, slope-restricted in ``[a, 1]``.  The Jacobian of the vector field is
    ``J(z) = -gamma I + D(z) K`` with ``D = diag(sigma'(K z + b))``, entries in ``[a, 1]``.

    Contraction (Lohmiller & Slotine; rate via the l2 matrix measure ``mu_2(J) = lambda_max((J +
    J^T)/2)``): if ``mu_2(J(z)) <= -rho < 0`` for all z, trajectories approach each other like
    ``exp(-rho t)``.  Following Zakwan, Xu, Ferrari-Trecate ("Robust Convolution Neural ODEs via
    Contractivity-promoting regularization", 2025), contraction is *promoted during training by
    regularisers*, not enforced:

    * Jacobian-based term (:meth:`jacobian_regulariser`): ``relu(v^T J(z) v + rho)`` at states z
      visited by the trajectory, with ``v`` a unit vector from a few power iterations on the
      shifted symmetric part ``(J + J^T)/2 + s I`` -- so ``v^T J v`` estimates ``mu_2(J(z))``.
    * Weight-based term for slope-restricted activations (:meth:`weight_regulariser`): since
      ``mu_2(-gamma I + D K) <= -gamma + ||D K||_2 <= -gamma + ||K||_2`` for every diagonal D with
      entries in [0, 1], the condition ``||K||_2 <= gamma - rho`` implies contraction at rate rho
      for every state; we penalise ``relu(sqrt(||K||_1 ||K||_inf) + rho - gamma)``, a cheap
      differentiable upper bound of ``||K||_2`` (no eigenvalue or power iteration needed).

    This is our reading of the paper's two regularisers for this model class (the exact forms in
    the paper may differ); both are penalties, so the **Lipschitz bound is computed a posteriori**
    from the weights and holds whatever the training did: one Euler step
    ``z + h(-gamma z + sigma(K z + b))`` has Jacobian ``(1 - h gamma) I + h D K``, hence
    Lipschitz constant ``<= |1 - h gamma| + h ||K||_2`` with ``||K||_2`` bounded by
    :func:`priors.spectral.conv_norm_bound`; the block is bounded by its n-th power.  When
    ``||K||_2 < gamma`` and ``h gamma <= 1`` this is ``1 - h (gamma - ||K||) < 1``, the discrete
    image of the contraction rate ``gamma - ||K||`` (the exact flow satisfies
    ``exp(-(gamma - ||K||) T)``); :meth:`bound_details` reports whether the weight condition holds.

    Examples
    --------
    >>> block = ContractiveODEBlock(width=4)
    >>> block(torch.rand(1, 4, 8, 8)).shape
    torch.Size([1, 4, 8, 8])
    """

    def __init__(self, *, width: int, kernel_size: int = 3, gamma: float = 1.0, time: float = 1.0,
                 steps: int = 2, negative_slope: float = 0.05) -> None:
        super().__init__()
        if gamma <= 0 or time <= 0 or steps < 1:
            raise ValueError(f"ContractiveODEBlock needs gamma > 0, time > 0, steps >= 1; got {gamma}, {time}, {steps}")
        self.gamma, self.time, self.steps, self.negative_slope = float(gamma), float(time), int(steps), negative_slope
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.empty(width, width, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        with torch.no_grad():  # start inside the contractive region
            self.weight.mul_(0.5 * self.gamma / float(_abs_row_col_bound(self.weight)))
        self.bias = nn.Parameter(torch.zeros(width))
        self._states: list[torch.Tensor] = []

    @property
    def step(self) -> float:
        return self.time / self.steps

    def _conv(self, z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(z, self.weight, padding=self.kernel_size // 2)

    def _conv_t(self, z: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose2d(z, self.weight, padding=self.kernel_size // 2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.step
        self._states = []
        for _ in range(self.steps):
            if self.training:
                self._states.append(z)
            z = z + h * (-self.gamma * z + F.leaky_relu(self._conv(z) + self.bias[:, None, None], self.negative_slope))
        return z

    def weight_regulariser(self, rho: float = 0.1) -> torch.Tensor:
        """``relu(sqrt(||K||_1 ||K||_inf) + rho - gamma)``: zero only if contraction at rate rho is certain."""
        return F.relu(_abs_row_col_bound(self.weight) + rho - self.gamma)

    def jacobian_regulariser(self, rho: float = 0.1, *, power_iters: int = 3, max_states: int = 1) -> torch.Tensor:
        """``mean relu(v^T J(z) v + rho)`` over the last forward's states (needs a training forward)."""
        if not self._states:
            return self.weight.new_zeros(())
        terms = []
        shift = self.gamma + float(_abs_row_col_bound(self.weight.detach()))  # makes (J+J^T)/2 + s I >= 0
        for z in self._states[-max_states:]:
            z = z.detach()
            pre = self._conv(z) + self.bias[:, None, None]
            d = torch.where(pre > 0, torch.ones_like(pre), torch.full_like(pre, self.negative_slope))
            with torch.no_grad():
                v = torch.randn_like(z)
                v = v / v.flatten(1).norm(dim=1)[:, None, None, None]
                for _ in range(power_iters):
                    sv = -self.gamma * v + 0.5 * (d * self._conv(v) + self._conv_t(d * v)) + shift * v
                    v = sv / sv.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None, None]
            quad = -self.gamma * (v * v).flatten(1).sum(1) + (v * d * self._conv(v)).flatten(1).sum(1)
            terms.append(F.relu(quad + rho).mean())
        return torch.stack(terms).mean()

    @torch.no_grad()
    def bound_details(self) -> dict[str, Any]:
        nk = conv_norm_bound(self.weight, rel_tol=5e-3).upper
        h = self.step
        lip_step = abs(1 - h * self.gamma) + h * nk
        return {"norm_upper": nk, "gamma": self.gamma, "contraction_rate": self.gamma - nk,
                "contractive": bool(nk < self.gamma and h * self.gamma <= 1), "lipschitz": lip_step**self.steps}

    def lipschitz_bound(self) -> float:
        return float(self.bound_details()["lipschitz"])


def gershgorin_diagonal(kernel: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Per-channel ``T_i = (S q)_i / q_i`` with ``S = A A^T``, ``A_ik = sum_taps |K[i, k]|``.

    ``W`` is the convolution with kernel ``K`` (m, n, k, k).  Entry-wise
    ``|(W W^T)_{(i,p),(j,p')}| <= sum_k sum_r |K[i,k,r-p]| |K[j,k,r-p']|`` (zero padding only removes
    terms), so the q-weighted absolute row sum of ``W W^T`` at any pixel of channel i is at most
    ``sum_j (q_j / q_i) S_ij = T_i``.  By Gershgorin's theorem applied to ``Q^{-1} (T - W W^T) Q``
    (same eigenvalues, Q = diag(q) > 0), ``T - W W^T`` is positive semidefinite.
    """
    a = kernel.abs().sum(dim=(2, 3))  # (m, n)
    s = a @ a.T
    return (s @ q) / q


class GershgorinResidualBlock(nn.Module):
    """L-Lipschitz residual layer ``x - c W^T T^{-1} sigma(W x + b)`` with a Gershgorin-certified T.

    After Juston, Norris, Nottage, Soylemezoglu, "L-Lipschitz Gershgorin ResNet Network" (2025):
    the Lipschitz condition of a residual layer ``x + G sigma(W x + b)`` with ``sigma``
    slope-restricted in [0, 1] is an LMI obtained by the S-procedure from the quadratic constraint
    ``dphi_i (dv_i - dphi_i) >= 0`` (``dphi = sigma(v) - sigma(v')``, ``dv = W dx``):

        [[(L^2 - 1) I, -G - W^T Lam], [-G^T - Lam W, 2 Lam - G^T G]] >= 0,   Lam diagonal >= 0,

    and Gershgorin discs make it hold without eigenvalue computations.  We implement the case
    ``G = -c W^T T^{-1}``, ``Lam = c T^{-1}`` (the coupling of Araujo et al. 2023's SLL layers),
    where the off-diagonal block vanishes and the LMI reduces to ``T >= (c/2) W W^T``; the
    Gershgorin diagonal of :func:`gershgorin_diagonal` gives ``T >= W W^T`` in closed form with
    learnable weights ``q > 0``.  Directly: with ``P = T^{-1/2} W`` (``||P|| <= 1``) and secant slopes
    ``D = diag(d_i)``, ``d_i in [0, 1]``, the layer's increments are ``(I - c P^T D P) dx``, a
    symmetric matrix with spectrum in ``[1 - c, 1]``, so the layer is ``max(1, c - 1)``-Lipschitz.
    ``c = (1 + lipschitz) * sigmoid(c_raw)`` keeps it below ``lipschitz`` (>= 1); ``lipschitz = 1``
    gives nonexpansive layers.  Juston et al.'s general multi-layer inner system (their
    pseudo-tridiagonal LMI) is not implemented.

    Examples
    --------
    >>> block = GershgorinResidualBlock(width=4, hidden=8)
    >>> block(torch.rand(1, 4, 8, 8)).shape
    torch.Size([1, 4, 8, 8])
    """

    def __init__(self, *, width: int, hidden: int | None = None, kernel_size: int = 3, lipschitz: float = 1.0,
                 negative_slope: float = 0.05) -> None:
        super().__init__()
        if lipschitz < 1:
            raise ValueError(f"lipschitz must be >= 1 for a residual layer x + ..., got {lipschitz}")
        hidden = hidden or width
        self.lipschitz, self.negative_slope, self.kernel_size = float(lipschitz), negative_slope, kernel_size
        self.weight = nn.Parameter(torch.empty(hidden, width, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(hidden))
        self.q_raw = nn.Parameter(torch.zeros(hidden))
        self.c_raw = nn.Parameter(torch.tensor(2.0))

    def coefficient(self) -> torch.Tensor:
        return (1 + self.lipschitz) * torch.sigmoid(self.c_raw)

    def diagonal(self, weight: torch.Tensor | None = None) -> torch.Tensor:
        w = self.weight if weight is None else weight
        return gershgorin_diagonal(w, torch.exp(self.q_raw.to(w.dtype))).clamp_min(1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.kernel_size // 2
        t = self.diagonal()
        v = F.leaky_relu(F.conv2d(x, self.weight, self.bias, padding=p), self.negative_slope)
        return x - self.coefficient() * F.conv_transpose2d(v / t[:, None, None], self.weight, padding=p)

    @torch.no_grad()
    def bound_details(self) -> dict[str, Any]:
        c = float(self.coefficient().double())
        t_used = self.diagonal().double()
        t_exact = gershgorin_diagonal(self.weight.double(), torch.exp(self.q_raw.double()))
        ratio = float((t_exact / t_used).max()) * ROUND_UP  # ||P||^2 <= ratio (float32 rounding of T)
        return {"c": c, "p_norm2_bound": ratio, "lipschitz": max(1.0, c * ratio - 1.0)}

    def lipschitz_bound(self) -> float:
        return float(self.bound_details()["lipschitz"])
