"""A grey denoiser applied to each channel of a colour image, with the grey certificate.

If ``D`` is alpha-averaged on one channel, the stacked map ``(x_1, ..., x_C) -> (D x_1, ..., D x_C)``
is alpha-averaged on the product space with the l2 norm: writing ``D = (1 - alpha) I + alpha N`` on
each channel, the stacked map is ``(1 - alpha) I + alpha (N x ... x N)`` and
``||(N x_c - N y_c)_c||^2 = sum_c ||N x_c - N y_c||^2 <= sum_c ||x_c - y_c||^2``.  The same holds for
the Lipschitz bound.  So the colour default needs no new training and keeps its guarantee.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import deepinv
import torch
from torch import Tensor

__all__ = ["ChannelwiseDenoiser"]


class ChannelwiseDenoiser(deepinv.models.Denoiser):
    """``D`` applied to every channel independently (channels folded into the batch).

    Parameters
    ----------
    base : torch.nn.Module
        A one-channel denoiser ``base(x, sigma)`` (``config.in_channels == 1``).
    channels : int
        Number of image channels (e.g. 3).

    Examples
    --------
    >>> import torch
    >>> from priors.averaged import AveragedResNet
    >>> grey = AveragedResNet(width=8, depth=2)
    >>> den = ChannelwiseDenoiser(grey, channels=3)
    >>> den(torch.rand(2, 3, 16, 16), 0.1).shape
    torch.Size([2, 3, 16, 16])
    >>> den.certificate().alpha == grey.certificate().alpha
    True
    """

    def __init__(self, base: torch.nn.Module, *, channels: int) -> None:
        super().__init__()
        cfg = getattr(base, "config", None)
        if getattr(cfg, "in_channels", 1) != 1:
            raise ValueError(f"ChannelwiseDenoiser needs a one-channel denoiser, got in_channels={cfg.in_channels}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        self.base = base
        self.channels = channels
        # the same architecture record, with the channel count of the images it now accepts
        self.config = dataclasses.replace(cfg, in_channels=channels) if dataclasses.is_dataclass(cfg) else cfg
        self.stored_certificate = getattr(base, "stored_certificate", None)
        self.training_info = getattr(base, "training_info", {})

    def forward(self, x: Tensor, sigma: float | Tensor = 25 / 255, *args: Any, **kwargs: Any) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"input must have shape (B, {self.channels}, H, W), got {tuple(x.shape)}")
        b, c, h, w = x.shape
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
        s = s.repeat_interleave(c) if s.numel() == b and b > 1 else s
        return self.base(x.reshape(b * c, 1, h, w), s).reshape(b, c, h, w)

    def certificate(self, **kwargs: Any):
        cert = self.base.certificate(**kwargs)
        if cert is None:
            return None
        return dataclasses.replace(
            cert, method=f"{cert.method}; applied to each of {self.channels} channels independently (a product of "
                         "averaged maps is averaged with the same constant in the l2 product norm)")
