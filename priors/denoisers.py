"""Classical denoisers with deepinv's contract ``forward(x, sigma)``: TV, wavelet soft-threshold, BM3D.

They subclass :class:`deepinv.models.Denoiser`, so they plug into deepinv's algorithms and
into :class:`priors.pnp_prior.DenoiserPrior`. Denoisers that are exact proxes of convex
functions carry a :class:`~priors.base.Certificate` (firmly nonexpansive: Lipschitz 1, alpha
1/2, Bauschke & Combettes Prop. 12.28); BM3D has none (``certificate()`` returns None).

Relation between noise level and regularisation weight. A prox denoiser solves
``argmin_x ½‖x − y‖² + λ(σ) g(x)``; we tie the weight to the noise level linearly,
``λ(σ) = c σ`` with ``c = strength``. This is a convention (for TV and l1 penalties the
best weight grows roughly linearly with σ), not a derived MAP relation; inside
:class:`~priors.pnp_prior.DenoiserPrior` the step and weight are first mapped to a noise
level by the Gaussian-MAP relation ``σ = sqrt(τ λ)``, then ``D(·, σ)`` is called.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from deepinv.models import Denoiser
from torch import Tensor

from .base import Certificate, check_image, firmly_nonexpansive_certificate
from .classical import Wavelet
from .tv import tv_prox

__all__ = ["TVDenoiser", "WaveletDenoiser", "BM3DDenoiser"]

_BM3D_MESSAGE = "BM3D needs the optional extra: pip install 'stable-pnp[bm3d]'"


def _sigma_list(sigma: float | Tensor, batch: int) -> list[float]:
    """Noise level(s) as one float per batch element; refuses negative or non-finite values."""
    if isinstance(sigma, Tensor):
        vals = sigma.detach().flatten().cpu().tolist()
        if len(vals) == 1:
            vals = vals * batch
        if len(vals) != batch:
            raise ValueError(f"sigma must be a float or a tensor of shape (B,)=({batch},), got {tuple(sigma.shape)}")
    elif isinstance(sigma, (int, float)) and not isinstance(sigma, bool):
        vals = [float(sigma)] * batch
    else:
        raise TypeError(f"sigma must be a float or a tensor, got {type(sigma).__name__}")
    for s in vals:
        if not math.isfinite(s) or s < 0:
            raise ValueError(f"sigma must be finite and >= 0, got {s!r}")
    return vals


def _check_strength(strength: float) -> float:
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not strength > 0:
        raise ValueError(f"strength must be a float > 0, got {strength!r}")
    return float(strength)


class TVDenoiser(Denoiser):
    """TV denoiser: ``D(y, σ) = argmin_x ½‖x − y‖² + strength·σ·TV(x)`` (a prox, so firmly nonexpansive).

    Computed by :func:`priors.tv.tv_prox` (dual FISTA then over-relaxed primal-dual, Neumann boundary, channelwise TV).
    With the default ``strength=1`` the TV weight equals the noise level σ.

    Parameters
    ----------
    strength : float
        Constant ``c`` in ``λ(σ) = c σ``.
    isotropic : bool
        Isotropic (default) or anisotropic TV.
    tol : float
        Relative-change tolerance of the inner solver.
    max_iter : int
        Iteration cap of the inner solver.

    Examples
    --------
    >>> den = TVDenoiser()
    >>> y = torch.rand(1, 1, 16, 16)
    >>> tuple(den(y, 0.1).shape)
    (1, 1, 16, 16)
    """

    def __init__(self, *, strength: float = 1.0, isotropic: bool = True, tol: float = 1e-4, max_iter: int = 2000) -> None:
        super().__init__()
        self.strength = _check_strength(strength)
        self.isotropic = bool(isotropic)
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < 1:
            raise ValueError(f"tol must be a float in (0, 1), got {tol!r}")
        self.tol = float(tol)
        self.max_iter = int(max_iter)

    def forward(self, x: Tensor, sigma: float | Tensor, **kwargs) -> Tensor:
        check_image(x, "x")
        sig = _sigma_list(sigma, x.shape[0])
        if len(set(sig)) == 1:
            out, _, _ = tv_prox(x, self.strength * sig[0], isotropic=self.isotropic, tol=self.tol, max_iter=self.max_iter)
            return out
        parts = [
            tv_prox(x[i : i + 1], self.strength * s, isotropic=self.isotropic, tol=self.tol, max_iter=self.max_iter)[0]
            for i, s in enumerate(sig)
        ]
        return torch.cat(parts, dim=0)

    def certificate(self) -> Certificate:
        """Firm nonexpansiveness of the exact TV prox; the computed map matches it up to ``tol``."""
        return firmly_nonexpansive_certificate(
            f"prox of {self.strength:g}*sigma*TV (convex), computed by dual FISTA + primal-dual to relative-change "
            f"tolerance tol={self.tol:g}: firmly nonexpansive up to tol, Bauschke-Combettes Prop. 12.28",
            tol=self.tol,
        )


class WaveletDenoiser(Denoiser):
    """Soft-thresholding of orthonormal wavelet details at ``strength·σ`` (prox of ``strength·σ·‖W·‖_1``).

    The approximation coefficients are kept. Exact prox of a convex function, hence firmly
    nonexpansive. With ``strength = sqrt(2 log n)`` this is Donoho-Johnstone's universal
    threshold; the default ``strength = 3`` is a common practical choice.

    Parameters
    ----------
    strength : float
        Threshold in units of σ.
    wavelet : str
        Orthogonal PyWavelets wavelet name.
    levels : int
        Decomposition levels (H and W must be divisible by ``2**levels``).

    Examples
    --------
    >>> den = WaveletDenoiser(wavelet="haar", levels=2)
    >>> tuple(den(torch.rand(1, 1, 16, 16), 0.1).shape)
    (1, 1, 16, 16)
    """

    def __init__(self, *, strength: float = 3.0, wavelet: str = "db4", levels: int = 3) -> None:
        super().__init__()
        self.strength = _check_strength(strength)
        self.prior = Wavelet(wavelet=wavelet, levels=levels)

    def forward(self, x: Tensor, sigma: float | Tensor, **kwargs) -> Tensor:
        check_image(x, "x")
        sig = _sigma_list(sigma, x.shape[0])
        if len(set(sig)) == 1:
            return self.prior.prox(x, self.strength * sig[0])
        return torch.cat([self.prior.prox(x[i : i + 1], self.strength * s) for i, s in enumerate(sig)], dim=0)

    def certificate(self) -> Certificate:
        """Exact prox of a convex function: firmly nonexpansive."""
        return firmly_nonexpansive_certificate(
            "soft-thresholding of orthonormal wavelet details = exact prox of a convex l1 norm: "
            "firmly nonexpansive, Bauschke-Combettes Prop. 12.28"
        )


class BM3DDenoiser(Denoiser):
    """BM3D (Dabov et al., IEEE TIP 2007) through the ``bm3d`` package; no convergence certificate.

    Runs on the CPU in NumPy (float32 in, float32 out), image by image; colour images use
    ``bm3d_rgb`` (the package's colour variant), grey images ``bm3d``. ``sigma`` is the noise
    standard deviation on the [0, 1] intensity scale, multiplied by ``strength``.

    Parameters
    ----------
    strength : float
        Multiplier of the noise level handed to BM3D (1.0 = the true level).

    Raises
    ------
    ImportError
        When the optional ``bm3d`` package is missing (install ``stable-pnp[bm3d]``).

    Examples
    --------
    >>> den = BM3DDenoiser()  # doctest: +SKIP
    >>> den(torch.rand(1, 1, 32, 32), 0.1).shape  # doctest: +SKIP
    torch.Size([1, 1, 32, 32])
    """

    def __init__(self, *, strength: float = 1.0) -> None:
        super().__init__()
        try:
            import bm3d  # noqa: F401
        except ImportError as exc:
            raise ImportError(_BM3D_MESSAGE) from exc
        self.strength = _check_strength(strength)

    def forward(self, x: Tensor, sigma: float | Tensor, **kwargs) -> Tensor:
        import bm3d

        check_image(x, "x")
        if x.shape[1] not in (1, 3):
            raise ValueError(f"BM3D needs 1 (grey) or 3 (RGB) channels, got C={x.shape[1]}")
        sig = _sigma_list(sigma, x.shape[0])
        out = []
        arr = x.detach().cpu().to(torch.float32).numpy()
        for i, s in enumerate(sig):
            s_eff = self.strength * s
            if s_eff == 0:
                out.append(arr[i])
                continue
            img = np.moveaxis(arr[i], 0, -1)  # (H, W, C)
            if arr.shape[1] == 3:
                den = bm3d.bm3d_rgb(img, s_eff)
            else:
                den = bm3d.bm3d(img[..., 0], s_eff)[..., None]
            out.append(np.moveaxis(np.asarray(den, dtype=np.float32), -1, 0))
        return torch.from_numpy(np.stack(out)).to(device=x.device, dtype=x.dtype)

    def certificate(self) -> None:
        """BM3D has no Lipschitz or averagedness guarantee: returns None (no guarantee)."""
        return None
