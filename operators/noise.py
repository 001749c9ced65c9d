"""Noise models: sampling (seeded through a ``torch.Generator``) and the matching data fidelity.

=====================  ===================================  ===========================================
model                  observation ``y`` given ``z = A x``  :meth:`fidelity`
=====================  ===================================  ===========================================
``Gaussian(sigma)``    ``z + sigma * N(0, 1)``              ``L2Fidelity``: ``1/2 ||A x - y||^2``
``Poisson(gain)``      ``gain * Poisson(z / gain)``         ``PoissonNLL(gain=gain)``
``PoissonGaussian``    ``gain * Poisson(z / gain) + sigma   ``PoissonNLL`` on ``y + sigma^2 / gain``
                       * N(0, 1)``                          with offset ``sigma^2 / gain`` (shifted
                                                            Poisson approximation)
=====================  ===================================  ===========================================

The Gaussian fidelity is *not* divided by ``sigma^2``: the regularisation weight of the prior
absorbs it (MAP with weight ``lam`` corresponds to ``lam = sigma^2 * (prior weight)``), which
keeps ``||A||^2`` as the gradient's Lipschitz constant and step sizes independent of ``sigma``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import LinearOperator
from .fidelity import DataFidelity, L2Fidelity, PoissonNLL

__all__ = ["NoiseModel", "Gaussian", "Poisson", "PoissonGaussian"]


def _nonneg(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def _pos(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def _check_clean(z: Tensor) -> None:
    if not isinstance(z, Tensor):
        raise TypeError(f"z must be a torch.Tensor, got {type(z).__name__}")
    if not torch.isfinite(z).all():
        raise ValueError("z contains NaN or Inf values: noise needs a finite clean signal")


def _randn(z: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)


class NoiseModel:
    """Base class: ``sample(z, *, generator=None)`` and ``fidelity(operator, y)``."""

    def sample(self, z: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw a noisy observation of the clean measurement ``z`` (uses ``generator`` if given)."""
        raise NotImplementedError

    def fidelity(self, operator: LinearOperator, y: Tensor) -> DataFidelity:
        """The data-fidelity term matching this noise model."""
        raise NotImplementedError

    def __call__(self, z: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        return self.sample(z, generator=generator)


class Gaussian(NoiseModel):
    """Additive white Gaussian noise ``y = z + sigma * N(0, I)``.

    Parameters
    ----------
    sigma : float
        Standard deviation (>= 0; 0 means no noise), in image units ([0, 1] images).

    Examples
    --------
    >>> import torch
    >>> from operators import Gaussian
    >>> z = torch.zeros(1, 1, 64, 64)
    >>> y1 = Gaussian(0.1).sample(z, generator=torch.Generator().manual_seed(0))
    >>> y2 = Gaussian(0.1).sample(z, generator=torch.Generator().manual_seed(0))
    >>> bool(torch.equal(y1, y2)), round(y1.std().item(), 1)
    (True, 0.1)
    """

    def __init__(self, sigma: float) -> None:
        self.sigma = _nonneg("sigma", sigma)

    def sample(self, z: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        _check_clean(z)
        if self.sigma == 0:
            return z.clone()
        return z + self.sigma * _randn(z, generator)

    def fidelity(self, operator: LinearOperator, y: Tensor) -> L2Fidelity:
        """``L2Fidelity(operator, y)``: ``1/2 ||A x - y||^2`` (not divided by ``sigma^2``)."""
        return L2Fidelity(operator, y)

    def __repr__(self) -> str:
        return f"Gaussian(sigma={self.sigma})"


class Poisson(NoiseModel):
    """Poisson (shot) noise ``y = gain * Poisson(z / gain)``: mean ``z``, variance ``gain * z``.

    Negative values of ``z`` (e.g. FFT round-off) are clipped to 0 before sampling.

    Parameters
    ----------
    gain : float
        Intensity of one photon (> 0); smaller means less noise.

    Examples
    --------
    >>> import torch
    >>> from operators import Poisson
    >>> z = torch.full((1, 1, 64, 64), 0.5)
    >>> y = Poisson(0.01).sample(z, generator=torch.Generator().manual_seed(0))
    >>> round(y.mean().item(), 2)
    0.5
    """

    def __init__(self, gain: float) -> None:
        self.gain = _pos("gain", gain)

    def sample(self, z: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        _check_clean(z)
        return self.gain * torch.poisson(z.clamp_min(0) / self.gain, generator=generator)

    def fidelity(self, operator: LinearOperator, y: Tensor) -> PoissonNLL:
        """``PoissonNLL(operator, y, gain=gain)``."""
        return PoissonNLL(operator, y, gain=self.gain)

    def __repr__(self) -> str:
        return f"Poisson(gain={self.gain})"


class PoissonGaussian(NoiseModel):
    """Poisson-Gaussian noise ``y = gain * Poisson(z / gain) + sigma * N(0, I)``.

    The exact likelihood is an infinite mixture; :meth:`fidelity` uses the shifted-Poisson
    approximation (``y + sigma^2 / gain`` treated as Poisson with mean ``A x + sigma^2 / gain``,
    which matches the first two moments; see Chouzenoux, Jezierska, Pesquet & Talbot, SIAM J.
    Imaging Sci. 2015). Negative shifted data are clipped to 0.

    Parameters
    ----------
    gain : float
        Intensity of one photon (> 0).
    sigma : float
        Standard deviation of the additive Gaussian part (>= 0).

    Examples
    --------
    >>> import torch
    >>> from operators import PoissonGaussian, Identity
    >>> noise = PoissonGaussian(0.01, 0.02)
    >>> y = noise.sample(torch.full((1, 1, 8, 8), 0.5), generator=torch.Generator().manual_seed(0))
    >>> noise.fidelity(Identity(), y).offset
    0.04
    """

    def __init__(self, gain: float, sigma: float) -> None:
        self.gain = _pos("gain", gain)
        self.sigma = _nonneg("sigma", sigma)

    def sample(self, z: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        _check_clean(z)
        y = self.gain * torch.poisson(z.clamp_min(0) / self.gain, generator=generator)
        if self.sigma > 0:
            y = y + self.sigma * _randn(z, generator)
        return y

    def fidelity(self, operator: LinearOperator, y: Tensor) -> PoissonNLL:
        """``PoissonNLL`` on ``max(y + sigma^2 / gain, 0)`` with offset ``sigma^2 / gain``."""
        shift = self.sigma**2 / self.gain
        return PoissonNLL(operator, (y + shift).clamp_min(0), gain=self.gain, offset=shift)

    def __repr__(self) -> str:
        return f"PoissonGaussian(gain={self.gain}, sigma={self.sigma})"
