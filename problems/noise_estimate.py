"""The Gaussian noise level of an observation, estimated from the data (wavelet MAD).

:func:`estimate_noise` wraps :func:`skimage.restoration.estimate_sigma` (Donoho and Johnstone's
robust estimator: the median absolute value of the finest diagonal ``db2`` wavelet coefficients
divided by ``Phi^{-1}(0.75) = 0.6745``) and adds an uncertainty, so that a user who gives no
noise level sees how far the value can be trusted.

The uncertainty is one standard error, the larger of two measures:

* the asymptotic standard error of the MAD estimator on Gaussian noise,
  ``1.166 sigma / sqrt(n)`` with ``n`` the number of coefficients (the sample median of
  ``|X|`` has variance ``1 / (4 n f(m)^2)`` at the density ``f(m) = 2 phi(0.6745) / sigma``);
* the spread of the estimates over a grid of tiles, ``std(tiles) / sqrt(#tiles)``, which also
  grows where image structure leaks into the finest scale (textured tiles estimate more).

Neither measures a bias common to the whole image: on a blurred photograph the finest scale
still holds some signal, which biases the estimate upwards. ``scripts/bench_sigma_estimate.py``
measures that bias on the test photographs (results in ``priors/results/sigma_estimate/``).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> est = estimate_noise(0.5 + 0.02 * rng.standard_normal((128, 128)))
>>> abs(est.sigma - 0.02) < 3 * est.uncertainty
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["NoiseEstimate", "estimate_noise", "METHOD", "MIN_SIDE", "MAD_SE_FACTOR"]

#: Named in records and messages.
METHOD = "wavelet MAD (skimage.restoration.estimate_sigma, finest db2 diagonal coefficients)"
#: Smallest image side the estimate accepts (a few wavelet coefficients per row are needed).
MIN_SIDE = 8
#: ``sd(sigma_hat) = MAD_SE_FACTOR * sigma / sqrt(n)`` for the MAD estimator on Gaussian noise.
MAD_SE_FACTOR = 1.0 / (2.0 * 2.0 * 0.3177765 * 0.6744898)  # 1 / (2 * f(m) * q) with f(m) = 2 phi(q)
#: Side of the tiles whose spread is measured (at most 4 x 4 tiles; none below 2 x 2).
_TILE_MIN = 16


@dataclass(frozen=True)
class NoiseEstimate:
    """An estimated Gaussian noise standard deviation with its uncertainty (both on the data's scale).

    Attributes
    ----------
    sigma : float
        The estimate, averaged over channels.
    uncertainty : float
        One standard error: ``max(standard_error, tile_error)``.
    standard_error : float
        The MAD estimator's asymptotic standard error on pure Gaussian noise.
    tile_error : float or None
        ``std / sqrt(count)`` of the estimates on a grid of tiles (None for images too small to tile).
    per_channel : tuple of float
        The estimate of every channel.
    coefficients : int
        Wavelet coefficients the estimate used (all channels).
    method : str
        :data:`METHOD`.
    """

    sigma: float
    uncertainty: float
    standard_error: float
    tile_error: float | None
    per_channel: tuple[float, ...]
    coefficients: int
    method: str = METHOD

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {"sigma": self.sigma, "uncertainty": self.uncertainty, "standard_error": self.standard_error,
                "tile_error": self.tile_error, "per_channel": list(self.per_channel),
                "coefficients": self.coefficients, "method": self.method}

    def line(self) -> str:
        """One printable line, e.g. ``noise sigma estimated from the data: 0.0101 ± 0.0001 (...)``."""
        return (f"noise sigma estimated from the data: {self.sigma:.4g} ± {self.uncertainty:.2g} "
                f"(one standard error; {self.method}; give --noise to override)")


def _channels(y: Any) -> list[np.ndarray]:
    """The 2-D channels of an image: (H, W), (C, H, W) or (1, C, H, W) array or tensor."""
    if hasattr(y, "detach"):
        y = y.detach().cpu().double().numpy()
    a = np.asarray(y, dtype=np.float64)
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise ValueError(f"estimate_noise takes one image, got a batch of {a.shape[0]}; estimate each image")
        a = a[0]
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"estimate_noise expects an image (H, W), (C, H, W) or (1, C, H, W), got shape {a.shape}")
    if min(a.shape[-2:]) < MIN_SIDE:
        raise ValueError(f"the observation is {a.shape[-2]} x {a.shape[-1]} pixels, too small to estimate its noise "
                         f"level (at least {MIN_SIDE} x {MIN_SIDE}); give the noise level with --noise")
    if not np.isfinite(a).all():
        raise ValueError("the observation contains NaN or Inf values; its noise level cannot be estimated")
    return list(a)


def _mad_sigma(channel: np.ndarray) -> tuple[float, int]:
    """skimage's estimate of one channel and the number of nonzero coefficients it used."""
    import pywt
    from skimage.restoration import estimate_sigma

    detail = pywt.dwtn(channel, wavelet="db2")["dd"]  # the band estimate_sigma reads
    count = int(np.count_nonzero(detail))
    if count == 0:
        return 0.0, 0
    return float(estimate_sigma(channel)), count


def _tile_error(channel: np.ndarray) -> tuple[float, int] | None:
    """``(std / sqrt(count), count)`` of the estimates on a grid of up to 4 x 4 tiles."""
    h, w = channel.shape
    rows, cols = min(4, h // _TILE_MIN), min(4, w // _TILE_MIN)
    if rows * cols < 4:
        return None
    th, tw = h // rows, w // cols
    values = [_mad_sigma(channel[i * th:(i + 1) * th, j * tw:(j + 1) * tw])[0]
              for i in range(rows) for j in range(cols)]
    return float(np.std(values, ddof=1) / math.sqrt(len(values))), len(values)


def estimate_noise(y: Any) -> NoiseEstimate:
    """Estimate the standard deviation of additive white Gaussian noise in an observation.

    Parameters
    ----------
    y : array or Tensor
        One image, ``(H, W)``, ``(C, H, W)`` or ``(1, C, H, W)``, on the scale the noise is wanted
        on (the solver's [0, 1] scale); channels are estimated separately and averaged, as
        ``estimate_sigma(..., average_sigmas=True)`` does.

    Returns
    -------
    NoiseEstimate
        The estimate, its uncertainty and how it was made. A flat image (no fine-scale
        variation at all) gives ``sigma = 0`` up to round-off.

    Raises
    ------
    ValueError
        A batch of several images, a side below :data:`MIN_SIDE`, or non-finite values.

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> y = 0.5 + 0.05 * torch.randn((1, 3, 96, 96), generator=g, dtype=torch.float64)
    >>> round(estimate_noise(y).sigma, 2)
    0.05
    """
    channels = _channels(y)
    sigmas, counts, tiles = [], [], []
    for c in channels:
        s, n = _mad_sigma(c)
        sigmas.append(s)
        counts.append(n)
        tiles.append(_tile_error(c))
    sigma = float(np.mean(sigmas))
    total = int(sum(counts))
    # the channel mean of independent estimates: its variance is the mean variance / C
    se = math.sqrt(sum((MAD_SE_FACTOR * s) ** 2 / n for s, n in zip(sigmas, counts) if n)) / len(sigmas)
    tile_error = None
    if all(t is not None for t in tiles):
        tile_error = math.sqrt(sum(t[0] ** 2 for t in tiles)) / len(tiles)  # type: ignore[index]
    return NoiseEstimate(sigma=sigma, uncertainty=max(se, tile_error or 0.0), standard_error=se,
                         tile_error=tile_error, per_channel=tuple(float(s) for s in sigmas), coefficients=total)
