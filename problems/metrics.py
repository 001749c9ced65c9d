"""Image-quality metrics for images in [0, 1]: PSNR and SSIM, one value per batch element.

Both metrics use a fixed peak / data range of 1.0, the nominal range of the images in this
package, never the maximum of the particular image (which would make scores depend on the
content and inflate them for dark images). The estimate ``x`` is *not* clipped: a reconstruction
that leaves [0, 1] is scored as it is. Clip it yourself (``x.clamp(0, 1)``) to score the displayed
image.

Both functions return a float64 CPU tensor of shape ``(B,)`` for inputs of shape ``(B, C, H, W)``,
whatever the batch size (use ``float(t)`` for a single image, ``t.mean()`` to average).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["psnr", "ssim", "SSIM_MIN_SIZE"]

#: Smallest image side accepted by :func:`ssim` (the 11 x 11 Gaussian window).
SSIM_MIN_SIZE = 11


def _check_pair(x: Tensor, ref: Tensor, name: str) -> None:
    for label, t in (("x", x), ("ref", ref)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: {label} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 4:
            raise ValueError(f"{name}: {label} must have shape (B, C, H, W), got {tuple(t.shape)}")
    if x.shape != ref.shape:
        raise ValueError(
            f"{name}: x has shape {tuple(x.shape)} but ref has shape {tuple(ref.shape)}; they must match"
        )


def psnr(x: Tensor, ref: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB with peak 1.0, per batch element.

    ``PSNR = 10 log10(1 / MSE)`` with the MSE averaged over channels and pixels of each batch
    element. Identical images give ``inf``; a non-finite ``x`` gives ``nan``.

    Parameters
    ----------
    x : Tensor
        Estimate, shape (B, C, H, W).
    ref : Tensor
        Reference (ground truth) in [0, 1], same shape.

    Returns
    -------
    Tensor
        float64 CPU tensor of shape (B,).

    Examples
    --------
    >>> import torch
    >>> x, ref = torch.full((1, 1, 8, 8), 0.5), torch.full((1, 1, 8, 8), 0.6)
    >>> round(float(psnr(x, ref)), 4)
    20.0
    """
    _check_pair(x, ref, "psnr")
    diff = x.detach().to(device="cpu", dtype=torch.float64) - ref.detach().to(
        device="cpu", dtype=torch.float64
    )
    mse = diff.pow(2).flatten(1).mean(dim=1)
    return -10.0 * torch.log10(mse)


def ssim(x: Tensor, ref: Tensor) -> Tensor:
    """Structural similarity (scikit-image), data range 1.0, per batch element.

    Computed by :func:`skimage.metrics.structural_similarity` with the settings of Wang et al.
    (IEEE TIP 2004): 11 x 11 Gaussian window of standard deviation 1.5 and population
    covariances (``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``). Colour
    images are scored per channel and averaged (``channel_axis``).

    Parameters
    ----------
    x : Tensor
        Estimate, shape (B, C, H, W) with ``H, W >= 11``.
    ref : Tensor
        Reference in [0, 1], same shape.

    Returns
    -------
    Tensor
        float64 CPU tensor of shape (B,); 1.0 for identical images.

    Examples
    --------
    >>> import torch
    >>> ref = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> ssim(ref, ref).tolist()
    [1.0, 1.0]
    """
    _check_pair(x, ref, "ssim")
    if min(x.shape[-2:]) < SSIM_MIN_SIZE:
        raise ValueError(
            f"ssim: images must be at least {SSIM_MIN_SIZE}x{SSIM_MIN_SIZE}, got {tuple(x.shape[-2:])}"
        )
    from skimage.metrics import structural_similarity

    xs = x.detach().to(device="cpu", dtype=torch.float64).numpy()
    rs = ref.detach().to(device="cpu", dtype=torch.float64).numpy()
    values = []
    for a, b in zip(xs, rs):
        if not np.isfinite(a).all():
            values.append(float("nan"))
            continue
        colour = a.shape[0] > 1
        values.append(
            float(
                structural_similarity(
                    a if colour else a[0],
                    b if colour else b[0],
                    data_range=1.0,
                    channel_axis=0 if colour else None,
                    gaussian_weights=True,
                    sigma=1.5,
                    use_sample_covariance=False,
                )
            )
        )
    return torch.tensor(values, dtype=torch.float64)
