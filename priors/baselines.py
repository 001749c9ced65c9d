"""Unconstrained baseline denoiser trained by the same code as the averaged network.

:class:`DnCNN` is a plain residual CNN (Zhang et al., IEEE TIP 2017, without batch norm) that
receives the noise level as an extra constant input channel.  It carries no guarantee:
:meth:`DnCNN.certificate` returns the product of rigorous layer norms as a Lipschitz bound (which
for a trained network is far above 1) and ``alpha=None``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import deepinv
import torch
import torch.nn.functional as F
from torch import nn

from ._config import ModelConfigMixin, warn_outside_range

from .base import Certificate, cached_certificate
from .spectral import conv_norm_bound

__all__ = ["DnCNNConfig", "DnCNN"]


@dataclass(frozen=True)
class DnCNNConfig(ModelConfigMixin):
    in_channels: int = 1
    width: int = 32
    depth: int = 8
    sigma_ref: float = 25 / 255
    sigma_range: tuple[float, float] = (5 / 255, 55 / 255)


class DnCNN(deepinv.models.Denoiser):
    """Residual CNN ``D(x, sigma) = x - R([x, sigma / sigma_ref])`` with ``depth`` 3x3 conv layers.

    Examples
    --------
    >>> import torch
    >>> DnCNN(width=8, depth=3)(torch.rand(1, 1, 16, 16), 0.1).shape
    torch.Size([1, 1, 16, 16])
    """

    def __init__(self, config: DnCNNConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        cfg = DnCNNConfig.resolve(config, overrides)
        if cfg.depth < 2:
            raise ValueError(f"DnCNN depth must be >= 2, got {cfg.depth}")
        self.config = cfg
        c = cfg.in_channels
        layers = [nn.Conv2d(c + 1, cfg.width, 3, padding=1)]
        layers += [nn.Conv2d(cfg.width, cfg.width, 3, padding=1) for _ in range(cfg.depth - 2)]
        layers += [nn.Conv2d(cfg.width, c, 3, padding=1)]
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor = 25 / 255, *args: Any, **kwargs: Any) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"input must have shape (B, {self.config.in_channels}, H, W), got {tuple(x.shape)}"
            )
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
        s = s.expand(x.shape[0]) if s.numel() == 1 else s
        warn_outside_range(self, s)  # no certificate to protect here, so sigma is not clamped
        z = torch.cat([x, (s / self.config.sigma_ref)[:, None, None, None].expand(-1, 1, *x.shape[-2:])], 1)
        for i, layer in enumerate(self.layers):
            z = layer(z)
            if i < len(self.layers) - 1:
                z = F.relu(z)
        return x - z

    def certificate(self, **_: Any) -> Certificate:
        """Upper bound ``1 + prod ||W_k||`` (residual form, ReLU 1-Lipschitz); never averaged (cached)."""
        return cached_certificate(self, self._certificate)

    @torch.no_grad()
    def _certificate(self) -> Certificate:
        t0 = time.perf_counter()
        prod = 1.0
        norms = []
        for i, layer in enumerate(self.layers):
            w = layer.weight if i else layer.weight[:, : self.config.in_channels]  # the sigma channel is constant in x
            n = conv_norm_bound(w).upper
            norms.append(n)
            prod *= n
        return Certificate(
            lipschitz=1.0 + prod,
            alpha=None,
            method="product of rigorous conv norm bounds (no constraint: no averagedness guarantee)",
            seconds=time.perf_counter() - t0,
            details={"layer_norms": norms},
        )
