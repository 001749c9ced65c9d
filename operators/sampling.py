"""Sampling operators: decimation with anti-aliasing (super-resolution) and masking (inpainting)."""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from torch import Tensor

from .base import LinearOperator, Shape
from .identity import Identity
from .blur import Blur
from .kernels import box, gaussian

__all__ = ["Downsampling", "Inpainting", "Identity"]


class Downsampling(LinearOperator):
    """Anti-aliased decimation ``A = S o B``: blur ``B``, then keep every ``factor``-th pixel.

    ``S`` keeps pixels ``(factor * i, factor * j)``; its adjoint puts them back and fills the rest
    with zeros, so ``A^T = B^T o S^T`` is exact.

    Parameters
    ----------
    factor : int
        Decimation factor (>= 1) along both axes.
    filter : {"gaussian", "box"}, None, or 2-D array
        Anti-aliasing kernel: ``"gaussian"`` has standard deviation ``factor / 2``, truncated at
        3 standard deviations (its frequency response at the new Nyquist frequency is
        ``exp(-pi^2 / 8)``, about 0.29); ``"box"`` is the
        ``factor x factor`` average (area downsampling); ``None`` is plain decimation; an array is
        used as the kernel.
    boundary : str
        Boundary rule of the blur (see :class:`~operators.Blur`).
    in_shape : tuple of int, optional
        ``(B, C, H, W)``. Needed when ``H`` or ``W`` is not a multiple of ``factor`` (the adjoint
        cannot otherwise know the size); without it the adjoint returns ``factor`` times the
        size of its input.

    Examples
    --------
    >>> import torch
    >>> from operators import Downsampling
    >>> A = Downsampling(2, filter="gaussian")
    >>> A(torch.rand(1, 3, 32, 32)).shape
    torch.Size([1, 3, 16, 16])
    >>> A.adjoint_test((1, 1, 16, 12)) < 1e-12
    True
    """

    verified_by_tests = True  # tests/test_hypotheses.py

    def __init__(
        self,
        factor: int,
        *,
        filter: str | None | Tensor | np.ndarray = "gaussian",
        boundary: str = "circular",
        in_shape: Shape | None = None,
    ) -> None:
        if not isinstance(factor, numbers.Integral) or isinstance(factor, bool) or factor < 1:
            raise ValueError(f"factor must be a positive integer, got {factor}")
        factor = int(factor)
        out_shape = None
        if in_shape is not None:
            B, C, H, W = in_shape
            out_shape = (B, C, math.ceil(H / factor), math.ceil(W / factor))
        super().__init__(in_shape=in_shape, out_shape=out_shape)
        self.factor = factor
        if isinstance(filter, str):
            if filter == "gaussian":
                kernel = gaussian(factor / 2.0, size=2 * math.ceil(1.5 * factor) + 1)
            elif filter == "box":
                kernel = box(factor)
            else:
                raise ValueError(f"filter must be 'gaussian', 'box', None or a 2-D kernel, got {filter!r}")
            self.blur: LinearOperator = Blur(kernel, boundary=boundary, in_shape=in_shape)
        elif filter is None:
            self.blur = Identity(in_shape=in_shape)
        else:
            self.blur = Blur(filter, boundary=boundary, in_shape=in_shape)

    def _hr_size(self, h: int, w: int) -> tuple[int, int]:
        if self.in_shape is not None:
            return self.in_shape[-2], self.in_shape[-1]
        return h * self.factor, w * self.factor

    def forward(self, x: Tensor) -> Tensor:
        H, W = x.shape[-2:]
        f = self.factor
        if self.in_shape is None and (H % f or W % f):
            raise ValueError(
                f"Downsampling: image size {H}x{W} is not a multiple of factor {f}: pass in_shape=(B, C, H, W)"
            )
        return self.blur(x)[..., ::f, ::f]

    def adjoint(self, y: Tensor) -> Tensor:
        H, W = self._hr_size(*y.shape[-2:])
        f = self.factor
        up = y.new_zeros(*y.shape[:-2], H, W)
        up[..., ::f, ::f] = y
        return self.blur.adjoint(up)

    def __repr__(self) -> str:
        return f"Downsampling(factor={self.factor}, blur={self.blur!r})"


class Inpainting(LinearOperator):
    """Pixel mask ``y = m * x`` (elementwise); missing pixels are set to zero.

    The output keeps the image shape (deepinv's convention), so the operator is diagonal: it is
    self-adjoint, its norm is ``max |m|`` and the normal equations are solved in closed form.

    Parameters
    ----------
    mask : Tensor or ndarray
        Broadcastable to the images: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``; 1 = observed,
        0 = missing. Real weights are allowed (a diagonal operator).
    in_shape : tuple of int, optional
        Fixed ``(B, C, H, W)`` input shape.

    Examples
    --------
    >>> import torch
    >>> from operators import Inpainting
    >>> gen = torch.Generator().manual_seed(0)
    >>> A = Inpainting(torch.rand(8, 8, generator=gen) > 0.5)
    >>> A.norm()
    1.0
    """

    has_closed_form_normal = True
    has_closed_form_normal_adjoint = True
    shape_preserving = True
    verified_by_tests = True  # tests/test_hypotheses.py

    def __init__(self, mask, *, in_shape: Shape | None = None) -> None:
        super().__init__(in_shape=in_shape, out_shape=in_shape)
        m = mask.detach().to("cpu") if isinstance(mask, Tensor) else torch.as_tensor(np.asarray(mask))
        m = m.to(torch.float64)
        if m.dim() < 2 or m.dim() > 4:
            raise ValueError(f"mask must have 2 to 4 dimensions ((H, W) ... (B, C, H, W)), got shape {tuple(m.shape)}")
        if not torch.isfinite(m).all():
            raise ValueError("mask contains NaN or Inf values: pass a finite mask")
        while m.dim() < 4:
            m = m[None]
        self.mask = m
        self._cast: dict = {}

    def _m(self, x: Tensor) -> Tensor:
        key = (x.dtype, x.device)
        if key not in self._cast:
            self._cast[key] = self.mask.to(device=x.device, dtype=x.dtype)
        m = self._cast[key]
        if m.shape[-2:] != x.shape[-2:]:
            raise ValueError(
                f"Inpainting: mask size {tuple(m.shape[-2:])} does not match image size {tuple(x.shape[-2:])}"
            )
        return m

    def forward(self, x: Tensor) -> Tensor:
        return self._m(x) * x

    adjoint = forward

    def _gram_forward(self, x: Tensor) -> Tensor:
        m = self._m(x)
        return m * m * x

    def _exact_norm(self, shape, dtype):
        return float(self.mask.abs().max())

    def _closed_normal(self, b: Tensor, rho: float) -> Tensor:
        m = self._m(b)
        return b / (m * m + rho)

    _closed_normal_adjoint = _closed_normal

    def __repr__(self) -> str:
        return f"Inpainting(mask {tuple(self.mask.shape)}, observed fraction {float((self.mask != 0).double().mean()):.2f})"
