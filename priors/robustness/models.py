"""Image classifiers with certified (or at least reported) l2 Lipschitz bounds.

Every network here is a plain sequence of layers, and every layer carries a rigorous
``lipschitz_bound()`` computed from its weights; the bound of the network is the product of all
of them (:meth:`SequentialClassifier.lipschitz_bound`), with no layer left out -- lifts, pools,
channel growth and the head included.  Four architectures share one skeleton

    lift -> [stage of residual blocks -> 1x1 channel growth -> pooling] x S -> global pool -> head

and differ in the residual blocks:

``nonexpansive``
    Sherry et al. (Physica D 2024) gradient-step blocks :class:`priors.averaged.GradientStepBlock`
    (``x - h W^T sigma(W x + b)``, step rule ``h L_sigma ||W||^2 <= 2 r c``); isometric
    zero-padding lift, norm-controlled 1x1 growth, norm-1 pooling, norm-controlled head: L <= 1.
``resnet``
    Unconstrained baseline: 3x3 stem, blocks ``x + C2 relu(C1 x)``, free 1x1 growth and head.  Its
    bound (product of ``1 + ||C2|| ||C1||`` etc.) is valid but very loose.
``node``
    Contractive convolutional neural ODE ``z' = -gamma z + sigma(K z + b)`` integrated by explicit
    Euler, trained with the contractivity-promoting regularisers of Zakwan, Xu, Ferrari-Trecate
    (2025) as described in :class:`ContractiveODEBlock`; the bound is checked a posteriori.
``gershgorin``
    Residual layers ``x - c W^T T^{-1} sigma(W x + b)`` whose diagonal ``T`` comes from Gershgorin
    discs so that the slope-restriction LMI holds (Juston et al. 2025, see
    :class:`GershgorinResidualBlock`): each layer is ``max(1, c - 1)``-Lipschitz with
    ``c < 1 + lipschitz``.

Between stages and before the head there are two layouts (``downsample`` / ``pooling``): the
paper's ``avgpool`` + global ``mean`` (norm 1, but only on signals constant over each window:
every other direction is attenuated, which caps the logit margins a 1-Lipschitz network can
reach), and ``unshuffle`` (space-to-depth, orthogonal) + ``flatten``, which keeps the norm of
every input; the second is our addition, measured side by side in the README.

The exact norms of the parameter-free layers (proved in their docstrings): 2x2 average pooling
has l2 norm exactly 1/2 (each output is the mean of 4 disjoint inputs: ``||(1/4) 1^T|| = 1/2``),
so :class:`ScaledAvgPool` uses ``2 * avgpool`` (norm 1); the global mean over ``H x W`` pixels has
norm ``1/sqrt(HW)``, so :class:`ScaledGlobalPool` uses ``sqrt(HW) * mean`` (norm 1, any size).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..averaged import GradientStepBlock
from ..integrators import substep_bound
from ..spectral import conv_norm_bound

__all__ = [
    "ARCHITECTURES",
    "ClassifierConfig",
    "ChannelLift",
    "NormedConv1x1",
    "NormedLinear",
    "ScaledAvgPool",
    "ScaledGlobalPool",
    "PixelUnshuffle",
    "Flatten",
    "GradientStepLayer",
    "PlainResidualBlock",
    "ContractiveODEBlock",
    "GershgorinResidualBlock",
    "SequentialClassifier",
    "build_classifier",
]

ARCHITECTURES = ("nonexpansive", "resnet", "node", "gershgorin")
_ROUND = 1 + 1e-9  # inflation of float64 bounds for rounding


def _spectral_norm_exact(matrix: torch.Tensor) -> float:
    """Largest singular value by a full SVD in float64 (rigorous up to rounding, inflated)."""
    return float(torch.linalg.matrix_norm(matrix.detach().double(), ord=2)) * _ROUND


# --------------------------------------------------------------------------------------------
# parameter-free and norm-controlled linear layers


class ChannelLift(nn.Module):
    """Zero-pad the channels from ``in_channels`` to ``width``: an isometry (``E^T E = I``), norm 1.

    Examples
    --------
    >>> ChannelLift(1, 4)(torch.ones(1, 1, 2, 2)).shape
    torch.Size([1, 4, 2, 2])
    """

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        if width < in_channels:
            raise ValueError(f"width ({width}) must be >= in_channels ({in_channels}) for the zero-padding lift")
        self.pad = width - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, 0, 0, 0, 0, self.pad))

    def lipschitz_bound(self) -> float:
        return 1.0


class NormedConv1x1(nn.Module):
    """1x1 convolution with weight ``V / max(1, ||V||_2)`` (exact SVD norm): norm <= 1.

    A 1x1 convolution acts pixel by pixel with the same matrix, so its operator norm on images of
    any size is exactly the spectral norm of that matrix.

    Examples
    --------
    >>> layer = NormedConv1x1(4, 8)
    >>> layer.lipschitz_bound() <= 1 + 1e-6
    True
    """

    def __init__(self, in_channels: int, out_channels: int, *, constrained: bool = True) -> None:
        super().__init__()
        self.constrained = constrained
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels))
        nn.init.orthogonal_(self.weight)

    def matrix(self) -> torch.Tensor:
        if not self.constrained:
            return self.weight
        return self.weight / torch.clamp(torch.linalg.matrix_norm(self.weight, ord=2), min=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.matrix()[:, :, None, None])

    def lipschitz_bound(self) -> float:
        return _spectral_norm_exact(self.matrix())


class NormedLinear(nn.Module):
    """Linear head ``z = W x + b`` with ``W = V / max(1, ||V||_2)`` (exact SVD norm): norm <= 1.

    Examples
    --------
    >>> NormedLinear(8, 10)(torch.rand(2, 8)).shape
    torch.Size([2, 10])
    """

    def __init__(self, in_features: int, out_features: int, *, constrained: bool = True) -> None:
        super().__init__()
        self.constrained = constrained
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.orthogonal_(self.weight)
        self.bias = nn.Parameter(torch.zeros(out_features))

    def matrix(self) -> torch.Tensor:
        if not self.constrained:
            return self.weight
        return self.weight / torch.clamp(torch.linalg.matrix_norm(self.weight, ord=2), min=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.matrix(), self.bias)

    def lipschitz_bound(self) -> float:
        return _spectral_norm_exact(self.matrix())


class ScaledAvgPool(nn.Module):
    """``gain * avg_pool2d(x, 2)``; the 2x2 average pool has l2 norm exactly 1/2.

    Each output pixel is ``(1/4) (x1 + x2 + x3 + x4)`` over a disjoint 2x2 window, a row vector
    of norm ``sqrt(4)/4 = 1/2``; disjoint windows give a block-diagonal map with norm 1/2 (with odd
    sizes the last row/column is dropped, a further restriction: still <= 1/2).  The default
    ``gain = 2`` makes the layer nonexpansive with norm exactly 1.

    Examples
    --------
    >>> ScaledAvgPool().lipschitz_bound()
    1.0
    """

    def __init__(self, gain: float = 2.0) -> None:
        super().__init__()
        self.gain = float(gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gain * F.avg_pool2d(x, 2)

    def lipschitz_bound(self) -> float:
        return abs(self.gain) * 0.5


class ScaledGlobalPool(nn.Module):
    """``sqrt(H W) * mean over (H, W)`` per channel: norm exactly 1 at every image size.

    The mean of ``n = HW`` pixels is the row vector ``(1/n) 1^T`` with norm ``1/sqrt(n)``;
    multiplying by ``sqrt(n)`` gives the unit vector ``1/sqrt(n)``, an l2 norm of exactly 1.

    Examples
    --------
    >>> ScaledGlobalPool()(torch.ones(1, 3, 4, 4)).flatten().tolist()
    [4.0, 4.0, 4.0]
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1] * x.shape[-2]
        return x.sum(dim=(-2, -1)) / math.sqrt(n)

    def lipschitz_bound(self) -> float:
        return 1.0


class PixelUnshuffle(nn.Module):
    """Space-to-depth ``(C, H, W) -> (4C, H/2, W/2)``: a permutation of the pixels, norm exactly 1.

    Unlike :class:`ScaledAvgPool` (norm 1 only on signals constant over each 2x2 window, so it
    attenuates every other direction), this downsampling is orthogonal: it keeps the norm of every
    input, which is what lets a 1-Lipschitz classifier keep its margins (the gradient-norm
    preserving layout of orthogonal-convolution networks).  H and W must be even.

    Examples
    --------
    >>> PixelUnshuffle()(torch.ones(1, 2, 4, 4)).shape
    torch.Size([1, 8, 2, 2])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(f"downsample 'unshuffle' needs even image sizes, got {tuple(x.shape[-2:])}; "
                             "use downsample: avgpool or another image_size")
        return F.pixel_unshuffle(x, 2)

    def lipschitz_bound(self) -> float:
        return 1.0


class Flatten(nn.Module):
    """``(B, C, H, W) -> (B, C H W)``: a reshape, norm exactly 1 (used by ``pooling: flatten``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)

    def lipschitz_bound(self) -> float:
        return 1.0


# --------------------------------------------------------------------------------------------
# residual blocks


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
        ratio = float((t_exact / t_used).max()) * _ROUND  # ||P||^2 <= ratio (float32 rounding of T)
        return {"c": c, "p_norm2_bound": ratio, "lipschitz": max(1.0, c * ratio - 1.0)}

    def lipschitz_bound(self) -> float:
        return float(self.bound_details()["lipschitz"])


# --------------------------------------------------------------------------------------------
# the classifier


@dataclass(frozen=True)
class ClassifierConfig:
    """Architecture of a :class:`SequentialClassifier` (stored in checkpoints).

    Attributes
    ----------
    arch : str
        One of ``nonexpansive``, ``resnet``, ``node``, ``gershgorin``.
    in_channels, num_classes : int
        Image channels and number of classes.
    widths : tuple of int
        Channels of each stage; stages after the first start with 1x1 growth and 2x2 pooling.
    depth : int
        Residual blocks per stage.
    kernel_size : int
        Odd kernel size of the block convolutions.
    negative_slope : float
        Leaky-ReLU slope in [0, 1] (slope-restricted activation).
    max_substeps, integrator
        Gradient-step blocks (``nonexpansive``).
    node_gamma, node_time, node_steps
        Neural-ODE blocks (``node``).
    gershgorin_lipschitz : float
        Per-layer Lipschitz target (>= 1) of the ``gershgorin`` blocks.
    downsample : str
        Between stages: ``avgpool`` (Sherry et al.'s layout: 1x1 growth, then ``2 * avgpool``) or
        ``unshuffle`` (space-to-depth, then a norm-controlled 1x1 from ``4 C`` channels).  Both have
        norm <= 1; ``unshuffle`` is orthogonal, ``avgpool`` discards 3/4 of the directions.
    pooling : str
        Before the head: ``mean`` (``sqrt(HW) * mean``, the paper's global mean) or ``flatten``
        (all features to the head; needs ``image_size``).
    image_size : int
        Input side, used only by ``pooling: flatten`` to size the head.
    """

    arch: str = "nonexpansive"
    in_channels: int = 1
    num_classes: int = 10
    widths: tuple[int, ...] = (16, 32, 64)
    depth: int = 2
    kernel_size: int = 3
    negative_slope: float = 0.05
    integrator: str = "euler"
    max_substeps: int = 2
    node_gamma: float = 1.0
    node_time: float = 1.0
    node_steps: int = 2
    gershgorin_lipschitz: float = 1.0
    downsample: str = "avgpool"
    pooling: str = "mean"
    image_size: int = 28

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch {self.arch!r} unknown; valid: {', '.join(ARCHITECTURES)}")
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if not self.widths or min(self.widths) < self.in_channels:
            raise ValueError(f"widths must be non-empty and each >= in_channels ({self.in_channels}), got {self.widths}")
        if self.depth < 1 or self.num_classes < 2 or self.kernel_size % 2 == 0:
            raise ValueError("depth must be >= 1, num_classes >= 2 and kernel_size odd")
        if not 0 <= self.negative_slope <= 1:
            raise ValueError(f"negative_slope must lie in [0, 1], got {self.negative_slope}")
        if self.downsample not in ("avgpool", "unshuffle"):
            raise ValueError(f"downsample {self.downsample!r} unknown; valid: avgpool, unshuffle")
        if self.pooling not in ("mean", "flatten"):
            raise ValueError(f"pooling {self.pooling!r} unknown; valid: mean, flatten")
        if self.pooling == "flatten" and self.image_size % (2 ** (len(self.widths) - 1)):
            raise ValueError(f"pooling 'flatten' needs image_size divisible by 2^(stages - 1) = "
                             f"{2 ** (len(self.widths) - 1)}, got {self.image_size}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ClassifierConfig":
        valid = sorted(cls.__dataclass_fields__)
        unknown = sorted(set(d) - set(valid))
        if unknown:
            raise ValueError(f"unknown model key {unknown[0]!r}; valid keys: {', '.join(valid)}")
        return cls(**d)


class SequentialClassifier(nn.Module):
    """A sequence of layers, each with ``lipschitz_bound()``; the network bound is their product.

    Parameters
    ----------
    layers : list of nn.Module
        Applied in order; the last one returns logits (B, K).
    config : ClassifierConfig
        Kept for checkpoints and reports.

    Examples
    --------
    >>> net = build_classifier(ClassifierConfig(widths=(4, 8), depth=1))
    >>> net(torch.rand(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    >>> net.lipschitz_bound() <= 1.0 + 1e-6
    True
    """

    def __init__(self, layers: list[nn.Module], config: ClassifierConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.config = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def lipschitz_report(self) -> list[dict[str, Any]]:
        """One entry per layer: its type and rigorous bound (plus details where available)."""
        out = []
        for i, layer in enumerate(self.layers):
            details = layer.bound_details() if hasattr(layer, "bound_details") else {}
            bound = float(details["lipschitz"]) if "lipschitz" in details else float(layer.lipschitz_bound())
            out.append({"layer": i, "type": type(layer).__name__, "lipschitz": bound, **details})
        return out

    def lipschitz_bound(self) -> float:
        """Certified l2 Lipschitz constant of ``x -> logits``: the product over *all* layers."""
        out = 1.0
        for entry in self.lipschitz_report():
            out *= entry["lipschitz"]
        return out

    def regularisers(self) -> dict[str, torch.Tensor]:
        """Contractivity penalties of the ODE blocks (empty for other architectures)."""
        blocks = [m for m in self.modules() if isinstance(m, ContractiveODEBlock)]
        if not blocks:
            return {}
        return {"weight": torch.stack([b.weight_regulariser() for b in blocks]).sum(),
                "jacobian": torch.stack([b.jacobian_regulariser() for b in blocks]).sum()}


def build_classifier(config: ClassifierConfig | None = None, **overrides: Any) -> SequentialClassifier:
    """Build the classifier described by ``config`` (keyword overrides accepted).

    Examples
    --------
    >>> net = build_classifier(arch="gershgorin", widths=(4,), depth=1)
    >>> net(torch.rand(1, 1, 8, 8)).shape
    torch.Size([1, 10])
    """
    cfg = config or ClassifierConfig()
    if overrides:
        cfg = ClassifierConfig.from_dict({**cfg.to_dict(), **overrides})
    constrained = cfg.arch != "resnet"

    def block(width: int) -> nn.Module:
        if cfg.arch == "nonexpansive":
            return GradientStepLayer(width=width, kernel_size=cfg.kernel_size, integrator=cfg.integrator,
                                     negative_slope=cfg.negative_slope, max_substeps=cfg.max_substeps)
        if cfg.arch == "resnet":
            return PlainResidualBlock(width=width, kernel_size=cfg.kernel_size)
        if cfg.arch == "node":
            return ContractiveODEBlock(width=width, kernel_size=cfg.kernel_size, gamma=cfg.node_gamma,
                                       time=cfg.node_time, steps=cfg.node_steps, negative_slope=cfg.negative_slope)
        return GershgorinResidualBlock(width=width, kernel_size=cfg.kernel_size,
                                       lipschitz=cfg.gershgorin_lipschitz, negative_slope=cfg.negative_slope)

    layers: list[nn.Module] = []
    if constrained:
        layers.append(ChannelLift(cfg.in_channels, cfg.widths[0]))
    else:
        layers.append(PlainConv(cfg.in_channels, cfg.widths[0], cfg.kernel_size))
    for s, width in enumerate(cfg.widths):
        if s > 0 and cfg.downsample == "avgpool":
            layers.append(NormedConv1x1(cfg.widths[s - 1], width, constrained=constrained))
            layers.append(ScaledAvgPool(2.0 if constrained else 1.0))
        elif s > 0:
            layers.append(PixelUnshuffle())
            layers.append(NormedConv1x1(4 * cfg.widths[s - 1], width, constrained=constrained))
        layers.extend(block(width) for _ in range(cfg.depth))
    if cfg.pooling == "mean":
        layers.append(ScaledGlobalPool())
        features = cfg.widths[-1]
    else:
        layers.append(Flatten())
        features = cfg.widths[-1] * (cfg.image_size // 2 ** (len(cfg.widths) - 1)) ** 2
    layers.append(NormedLinear(features, cfg.num_classes, constrained=constrained))
    return SequentialClassifier(layers, cfg)
