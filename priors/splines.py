"""Per-channel monotone linear splines: the learned activations ``sigma_c = psi_c'`` of the convex ridge
regularizer (:mod:`priors.ridge`).  ``sigma_c(0) = 0`` and slopes in [0, 1], so ``psi_c`` is convex with a
1-Lipschitz derivative; :meth:`LinearSpline.integral` gives ``psi_c`` itself (exact, piecewise quadratic).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LinearSpline"]


class LinearSpline(nn.Module):
    """Per-channel monotone linear splines ``sigma_c`` with ``sigma_c(0) = 0`` and slopes in [0, 1].

    The parameters are the slopes of the ``knots - 1`` segments of ``[-r, r]`` (clamped to [0, 1]
    when used); ``sigma_c`` is constant outside ``[-r, r]``, so ``psi_c`` grows linearly there
    (edge preserving, TV-like tails).  Initialised at slope 1/2 (a clip function).

    Examples
    --------
    >>> s = LinearSpline(2, knots=5, knot_range=1.0)
    >>> s(torch.tensor([-3.0, 0.25]).reshape(1, 1, 1, 2).expand(1, 2, 1, 2))[0, 0, 0].tolist()
    [-0.5, 0.125]
    """

    def __init__(self, channels: int, *, knots: int = 21, knot_range: float = 0.1, monotone: bool = True) -> None:
        super().__init__()
        self.channels, self.knots, self.range = channels, knots, float(knot_range)
        self.monotone = monotone
        self.delta = 2 * self.range / (knots - 1)
        # slope 1/2 everywhere (a clipped linear function, psi = Huber): inside (0, 1), where the
        # clamp passes gradients (at exactly 0 or 1 torch's clamp has a zero gradient)
        self.raw = nn.Parameter(torch.full((channels, knots - 1), 0.5))

    def slopes(self) -> Tensor:
        return self.raw.clamp(0.0, 1.0) if self.monotone else self.raw

    def max_slopes(self) -> Tensor:
        """Largest slope of each channel's spline (its Lipschitz constant), shape (C,)."""
        return self.slopes().max(dim=1).values

    def _tables(self) -> tuple[Tensor, Tensor, Tensor]:
        """Values of sigma and psi at the knots (C, K) and the slopes (C, K - 1)."""
        s = self.slopes()
        zero = torch.zeros_like(s[:, :1])
        vals = torch.cat([zero, torch.cumsum(s * self.delta, dim=1)], dim=1)  # sigma(t_k) + const
        mid = (self.knots - 1) // 2
        vals = vals - vals[:, mid : mid + 1]  # sigma(0) = 0
        # psi(t_k) = int_0^{t_k} sigma (trapezoid rule is exact for a linear spline)
        seg = 0.5 * (vals[:, 1:] + vals[:, :-1]) * self.delta
        cum = torch.cat([zero, torch.cumsum(seg, dim=1)], dim=1)
        psi = cum - cum[:, mid : mid + 1]
        return vals, psi, s

    def _locate(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        c = x.shape[1]
        xc = x.clamp(-self.range, self.range)
        idx = ((xc + self.range) / self.delta).floor().clamp(0, self.knots - 2).long()
        d = xc - (idx.to(x.dtype) * self.delta - self.range)
        flat = idx + (torch.arange(c, device=x.device) * self.knots).view(1, c, 1, 1)
        return xc, d, flat

    def forward(self, x: Tensor) -> Tensor:
        """``sigma_c(x)`` elementwise, channels on dimension 1.

        Linear interpolation of the knot values with ``grid_sample`` (align_corners: grid -1 / +1 are
        the end knots -r / r; border padding: constant beyond them), one table per channel as one
        batch element: one fused op, about 4x faster on CPU than a gather of the segment tables, and
        differentiable in ``x`` and in the slopes.
        """
        vals, _, _ = self._tables()
        c = x.shape[1]
        table = vals.to(x.dtype).view(c, 1, 1, self.knots)
        grid = F.pad(x.movedim(1, 0).reshape(c, 1, -1, 1) / self.range, (0, 1))  # (x / r, 0)
        out = F.grid_sample(table, grid, mode="bilinear", padding_mode="border", align_corners=True)
        return out.reshape(x.movedim(1, 0).shape).movedim(0, 1)

    def integral(self, x: Tensor) -> Tensor:
        """``psi_c(x) = int_0^x sigma_c`` elementwise (piecewise quadratic, linear outside [-r, r])."""
        vals, psi, s = self._tables()
        vals, psi, s = vals.to(x.dtype), psi.to(x.dtype), s.to(x.dtype)
        xc, d, flat = self._locate(x)
        seg = flat - flat.div(self.knots, rounding_mode="floor")
        inside = psi.reshape(-1)[flat] + vals.reshape(-1)[flat] * d + 0.5 * s.reshape(-1)[seg] * d * d
        # beyond the range sigma is constant: psi continues linearly with that value
        edge = self.forward(xc)
        return inside + edge * (x - xc)
