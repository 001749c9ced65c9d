"""Classical convex priors: wavelet l1, Tikhonov, gradient-l2, box and nonnegativity constraints.

All follow the :class:`priors.base.Prior` convention
``prox(v, tau) = argmin_x ½‖x − v‖² + tau * weight * g(x)`` and ``value(x) = weight * g(x)``
(shape (B,), summed over channels and pixels). TV lives in :mod:`priors.tv` and is re-exported
here so that ``from priors.classical import TV`` works.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pywt
import torch
from torch import Tensor

from .base import Prior, check_image
from .tv import TV

__all__ = ["TV", "Wavelet", "Tikhonov", "Box", "NonNegative"]


class Wavelet(Prior):
    """l1 norm of the detail coefficients of an orthonormal 2-D wavelet transform.

    ``g(x) = sum |(W x)_d|`` over the detail coefficients ``d`` of every level; the coarse
    approximation coefficients are *not* penalised. ``W`` is PyWavelets' ``wavedec2`` with
    ``mode="periodization"``, which is orthonormal (``WᵀW = I``) for orthogonal wavelets
    (Daubechies, symlets, coiflets, Haar) when H and W are divisible by ``2**levels``; other
    sizes are refused. Because ``W`` is orthonormal, ``prox_{t g}(v) = Wᵀ soft_t(W v)`` with
    soft-thresholding of the details only, and :meth:`value` uses the very same coefficients,
    so value and prox share one scaling. Channels are transformed separately.

    Parameters
    ----------
    wavelet : str
        Name of an orthogonal PyWavelets wavelet (default ``"db4"``).
    levels : int
        Number of decomposition levels (default 3).
    weight : float
        Scaling of the functional.

    Examples
    --------
    >>> prior = 0.05 * Wavelet(wavelet="haar", levels=2)
    >>> x = prior.prox(torch.rand(1, 1, 16, 16), tau=1.0)
    >>> tuple(x.shape)
    (1, 1, 16, 16)
    """

    convex = True
    has_value = True
    exact_prox = True

    def __init__(self, *, wavelet: str = "db4", levels: int = 3, weight: float = 1.0) -> None:
        super().__init__(weight=weight)
        if wavelet not in pywt.wavelist(kind="discrete"):
            raise ValueError(f"wavelet must be a discrete PyWavelets name such as 'db4' or 'haar', got {wavelet!r}")
        w = pywt.Wavelet(wavelet)
        if not w.orthogonal:
            raise ValueError(f"wavelet must be orthogonal (db*, sym*, coif*, haar) for an orthonormal transform, got {wavelet!r}")
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise ValueError(f"levels must be an int >= 1, got {levels!r}")
        self.wavelet = wavelet
        self.levels = levels
        self.name = f"wavelet-{wavelet}"

    # -- transform -----------------------------------------------------------------
    def _check_shape(self, x: Tensor) -> None:
        h, w = x.shape[-2:]
        m = 2**self.levels
        if h % m or w % m:
            raise ValueError(
                f"image size {h}x{w} must be divisible by 2**levels={m} for an orthonormal transform; "
                "crop the image or lower levels"
            )

    def _layout(self, h: int, w: int) -> tuple[list, Tensor]:
        """Coefficient slices of the packed layout and the detail mask, cached per size."""
        cache = self.__dict__.setdefault("_layouts", {})
        if (h, w) not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "level too high": still orthonormal
                coeffs = pywt.wavedec2(np.zeros((h, w)), self.wavelet, mode="periodization", level=self.levels)
            packed, slices = pywt.coeffs_to_array(coeffs)
            if packed.shape != (h, w):  # cannot happen for sizes divisible by 2**levels
                raise ValueError(f"unexpected wavelet layout {packed.shape} for a {h}x{w} image")
            mask = torch.ones((h, w), dtype=torch.bool)
            mask[slices[0]] = False
            cache[(h, w)] = (slices, mask)
        return cache[(h, w)]

    def transform(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Orthonormal analysis ``W x``, packed into an array of the shape of ``x``.

        Returns
        -------
        coeffs : Tensor
            Coefficients (B, C, H, W) in PyWavelets' ``coeffs_to_array`` layout.
        detail_mask : Tensor
            Boolean (H, W) mask of the detail coefficients (False on the approximation).
        """
        check_image(x, "x")
        self._check_shape(x)
        _, mask = self._layout(*x.shape[-2:])
        arr = x.detach().cpu().numpy()
        with warnings.catch_warnings():
            # PyWavelets warns when the filter is longer than the coarsest signal; with
            # periodization the transform stays orthonormal, so the warning is noise here
            warnings.simplefilter("ignore", UserWarning)
            coeffs = pywt.wavedec2(arr, self.wavelet, mode="periodization", level=self.levels, axes=(-2, -1))
        packed, _ = pywt.coeffs_to_array(coeffs, axes=(-2, -1))
        out = torch.from_numpy(np.ascontiguousarray(packed)).to(device=x.device, dtype=x.dtype)
        return out, mask.to(x.device)

    def inverse(self, coeffs: Tensor) -> Tensor:
        """Synthesis ``Wᵀ c`` (the inverse, ``W`` being orthonormal) of packed coefficients."""
        check_image(coeffs, "coeffs")
        self._check_shape(coeffs)
        slices, _ = self._layout(*coeffs.shape[-2:])
        # the cached slices index the last two axes; prepend the leading (B, C) axes
        lead = (slice(None),) * (coeffs.ndim - 2)
        nd_slices = [lead + slices[0]] + [{k: lead + v for k, v in d.items()} for d in slices[1:]]
        arr = coeffs.detach().cpu().numpy()
        cs = pywt.array_to_coeffs(arr, nd_slices, output_format="wavedec2")
        rec = pywt.waverec2(cs, self.wavelet, mode="periodization", axes=(-2, -1))
        return torch.from_numpy(np.ascontiguousarray(rec)).to(device=coeffs.device, dtype=coeffs.dtype)

    # -- prior -----------------------------------------------------------------------
    def _value(self, x: Tensor) -> Tensor:
        c, mask = self.transform(x)
        return (c.abs() * mask).flatten(1).sum(1)

    def _prox(self, v: Tensor, t: float) -> Tensor:
        c, mask = self.transform(v)
        shrunk = torch.sign(c) * torch.clamp(c.abs() - t, min=0.0)
        return self.inverse(torch.where(mask, shrunk, c))

    def __repr__(self) -> str:
        return f"Wavelet(wavelet={self.wavelet!r}, levels={self.levels}, weight={self.weight:g})"


class Tikhonov(Prior):
    """Quadratic prior: ``g(x) = ½‖x‖²`` or, with ``gradient=True``, ``g(x) = ½‖∇x‖²``.

    The gradient version uses forward differences with *periodic* boundary
    (``(∇x)_h[i, j] = x[i, (j+1) mod W] − x[i, j]``), so ``∇ᵀ∇`` is diagonalised by the 2-D
    DFT with eigenvalues ``4 sin²(π k/H) + 4 sin²(π l/W)`` and the prox
    ``(I + t ∇ᵀ∇)⁻¹ v`` is one FFT solve. Without gradient the prox is ``v / (1 + t)``.
    Both proxes are exact.

    Parameters
    ----------
    gradient : bool
        Penalise the (periodic) image gradient instead of the image.
    weight : float
        Scaling of the functional.

    Examples
    --------
    >>> prior = 0.5 * Tikhonov(gradient=True)
    >>> x = prior.prox(torch.rand(1, 1, 8, 8), tau=1.0)
    >>> tuple(x.shape)
    (1, 1, 8, 8)
    """

    convex = True
    has_value = True
    exact_prox = True

    def __init__(self, *, gradient: bool = False, weight: float = 1.0) -> None:
        super().__init__(weight=weight)
        if not isinstance(gradient, bool):
            raise TypeError(f"gradient must be a bool, got {type(gradient).__name__}")
        self.gradient = gradient
        self.name = "tikhonov-gradient" if gradient else "tikhonov"

    @staticmethod
    def _periodic_grad(x: Tensor) -> tuple[Tensor, Tensor]:
        return torch.roll(x, -1, dims=-1) - x, torch.roll(x, -1, dims=-2) - x

    @staticmethod
    def _laplacian_symbol(h: int, w: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        fy = torch.arange(h, dtype=torch.float64, device=device)
        fx = torch.arange(w, dtype=torch.float64, device=device)
        sy = 4.0 * torch.sin(math.pi * fy / h) ** 2
        sx = 4.0 * torch.sin(math.pi * fx / w) ** 2
        return (sy[:, None] + sx[None, :]).to(dtype)

    def _value(self, x: Tensor) -> Tensor:
        if not self.gradient:
            return 0.5 * (x * x).flatten(1).sum(1)
        gh, gv = self._periodic_grad(x)
        return 0.5 * (gh * gh + gv * gv).flatten(1).sum(1)

    def grad(self, x: Tensor) -> Tensor:
        """Gradient of ``weight * g`` at ``x`` (the prior is smooth)."""
        check_image(x, "x")
        if not self.gradient:
            return self.weight * x
        gh, gv = self._periodic_grad(x)
        # adjoint of the periodic forward difference: roll(p, +1) - p
        return self.weight * ((torch.roll(gh, 1, dims=-1) - gh) + (torch.roll(gv, 1, dims=-2) - gv))

    def _prox(self, v: Tensor, t: float) -> Tensor:
        if not self.gradient:
            return v / (1.0 + t)
        h, w = v.shape[-2:]
        # the filter in float64: in float32 a huge t overflows t * sym to inf and inf * 0 (zero frequency) is NaN
        sym = self._laplacian_symbol(h, w, torch.float64, v.device)
        gain = (1.0 / (1.0 + t * sym)).to(v.dtype)
        return torch.fft.ifft2(torch.fft.fft2(v) * gain).real.to(v.dtype)

    def __repr__(self) -> str:
        return f"Tikhonov(gradient={self.gradient}, weight={self.weight:g})"


class Box(Prior):
    """Indicator of the box ``lo <= x <= hi`` (value 0 inside, +inf outside); prox = clamp.

    The weight does not change an indicator (``c * ι = ι`` for ``c > 0``); it is kept for
    uniformity. ``lo`` may be ``-inf`` and ``hi`` may be ``inf``.

    Parameters
    ----------
    lo, hi : float
        Bounds with ``lo <= hi`` (defaults 0 and 1).

    Examples
    --------
    >>> Box(lo=0.0, hi=1.0).prox(torch.tensor([[[[-0.5, 0.3, 1.7]]]]), tau=1.0)
    tensor([[[[0.0000, 0.3000, 1.0000]]]])
    """

    convex = True
    has_value = True
    exact_prox = True

    def __init__(self, lo: float = 0.0, hi: float = 1.0, *, weight: float = 1.0) -> None:
        super().__init__(weight=weight)
        for nm, val in (("lo", lo), ("hi", hi)):
            if isinstance(val, bool) or not isinstance(val, (int, float)) or math.isnan(val):
                raise ValueError(f"{nm} must be a real number (inf allowed), got {val!r}")
        if not lo <= hi:
            raise ValueError(f"lo must be <= hi, got lo={lo!r}, hi={hi!r}")
        if lo == math.inf or hi == -math.inf:
            raise ValueError(f"the box [lo, hi] = [{lo}, {hi}] is empty; use finite bounds")
        self.lo = float(lo)
        self.hi = float(hi)
        self.name = "box"

    def _value(self, x: Tensor) -> Tensor:
        inside = ((x >= self.lo) & (x <= self.hi)).flatten(1).all(1)
        zero = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        return torch.where(inside, zero, torch.full_like(zero, math.inf))

    def _prox(self, v: Tensor, t: float) -> Tensor:
        return torch.clamp(v, min=self.lo, max=self.hi)

    def project(self, v: Tensor) -> Tensor:
        """Projection onto the box (the prox for any step)."""
        check_image(v, "v")
        return self._prox(v, 1.0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lo={self.lo:g}, hi={self.hi:g})"


class NonNegative(Box):
    """Indicator of the nonnegative orthant ``x >= 0``; prox = ``max(v, 0)``.

    Examples
    --------
    >>> NonNegative().prox(torch.tensor([[[[-1.0, 2.0]]]]), tau=1.0)
    tensor([[[[0., 2.]]]])
    """

    def __init__(self, *, weight: float = 1.0) -> None:
        super().__init__(0.0, math.inf, weight=weight)
        self.name = "nonnegative"

    def __repr__(self) -> str:
        return "NonNegative()"
