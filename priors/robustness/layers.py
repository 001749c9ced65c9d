"""Layers of the certified classifiers whose l2 Lipschitz bound is exact or norm-controlled.

Lifts, 1x1 channel growth, linear heads, pools and reshapes (see :mod:`priors.robustness.models`
for how they are assembled).  Each layer's ``lipschitz_bound()`` is proved in its docstring or
computed by a full SVD (:func:`spectral_norm_exact`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ROUND_UP",
    "spectral_norm_exact",
    "ChannelLift",
    "NormedConv1x1",
    "NormedLinear",
    "ScaledAvgPool",
    "ScaledGlobalPool",
    "PixelUnshuffle",
    "Flatten",
]

ROUND_UP = 1 + 1e-9  # inflation of float64 bounds for rounding


def spectral_norm_exact(matrix: torch.Tensor) -> float:
    """Largest singular value by a full SVD in float64 (rigorous up to rounding, inflated)."""
    return float(torch.linalg.matrix_norm(matrix.detach().double(), ord=2)) * ROUND_UP


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
        return spectral_norm_exact(self.matrix())


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
        return spectral_norm_exact(self.matrix())


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
