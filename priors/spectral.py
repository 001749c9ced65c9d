"""Rigorous spectral norms of multi-channel 2-D convolutions.

A convolution with kernel ``K`` (c_out x c_in x k x k, k odd) acting on n x n images with
circular boundary has, as singular values, the union over the frequency grid of the singular
values of the c_out x c_in symbols

    P(w) = sum_{p, q} K[:, :, p + m, q + m] exp(-i (w1 p + w2 q)),   p, q in {-m, ..., m},

(Sedghi, Gupta, Long, "The Singular Values of Convolutional Layers", ICLR 2019).  A zero-padded
("same") convolution on n x n is a restriction of a circular one on a larger grid, so for a bound
that holds at *every* image size and for both boundary modes we need ``sup_w s(w)`` over the
continuous torus, where ``s(w) = sigma_max(P(w))``.

We bound that supremum from samples.  Let ``w*`` attain it, with top singular vectors u, v, and
``r(w) = Re u^H P(w) v``: a real trigonometric polynomial with ``|r| <= M`` everywhere, ``r(w*) = M``
and ``grad r(w*) = 0``.  Along the segment from ``w*`` to a point at max-norm distance ``h``, r is a
sum of sinusoids of frequency at most ``Omega = (m1 + m2) h``, so Bernstein's inequality gives
``|r''| <= Omega^2 M`` and ``s(c) >= r(c) >= M (1 - Omega^2 / 2)``.  Hence on a grid of cells of
half-width h, ``M <= max_c s(c) / (1 - (m1 + m2)^2 h^2 / 2)`` -- only symbol norms at the cell
centres are needed.  Cells whose centre value stays below that fraction of the best value cannot
hold ``w*`` and are discarded; the others are split in four.  The result is an upper bound, the best
sampled value a lower bound, and their gap is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["ConvNormBound", "conv_norm_bound", "conv_symbol_norms"]


@dataclass(frozen=True)
class ConvNormBound:
    """Two-sided bound on ``sup_w sigma_max(P(w))`` for one convolution kernel.

    Attributes
    ----------
    upper : float
        Certified upper bound on the operator norm at every image size (zero or circular padding).
    lower : float
        Largest symbol norm actually evaluated (a lower bound on the supremum).
    cells : int
        Number of symbol evaluations used.
    """

    upper: float
    lower: float
    cells: int

    @property
    def relative_gap(self) -> float:
        return (self.upper - self.lower) / max(self.lower, 1e-300)


def _taps(kernel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    k1, k2 = kernel.shape[-2:]
    if k1 % 2 == 0 or k2 % 2 == 0:
        raise ValueError(f"conv_norm_bound needs odd kernel sizes, got {k1}x{k2}")
    m1, m2 = k1 // 2, k2 // 2
    p = torch.arange(-m1, m1 + 1, dtype=torch.float64)
    q = torch.arange(-m2, m2 + 1, dtype=torch.float64)
    offsets = torch.stack(torch.meshgrid(p, q, indexing="ij"), dim=-1).reshape(-1, 2)  # (T, 2)
    taps = kernel.detach().to('cpu', torch.float64).permute(2, 3, 0, 1).reshape(-1, *kernel.shape[:2])  # CPU maths
    return taps.to(torch.complex128), offsets, max(m1, m2)


def _symbols(taps: torch.Tensor, offsets: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    phases = torch.exp(-1j * (freqs.to(torch.float64) @ offsets.T))  # (F, T)
    return torch.einsum("ft,tab->fab", phases, taps)


#: symbols are formed in complex128 and their norms computed in complex64 (about twice faster);
#: the float32 SVD error is below ~10 n eps_32 ||P|| for n <= 64 channels, so every computed
#: norm is deflated (lower bounds) or inflated (upper bounds) by this relative margin.
_ROUNDING = 1e-4

#: precision of the symbol SVDs; its eps sets how far two CPUs may disagree on a recomputed bound
#: (priors.pretrained compares a stored certificate with the recomputed one under that tolerance).
NORM_DTYPE = torch.complex64


def _norms(mats: torch.Tensor) -> torch.Tensor:
    return torch.linalg.matrix_norm(mats.to(NORM_DTYPE), ord=2).to(torch.float64)


def conv_symbol_norms(kernel: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Largest singular value of the symbol ``P(w)`` at each frequency pair in ``freqs`` (F, 2)."""
    taps, offsets, _ = _taps(kernel)
    return torch.linalg.matrix_norm(_symbols(taps, offsets, freqs), ord=2)


def conv_norm_bound(
    kernel: torch.Tensor, *, grid: int = 32, rel_tol: float = 1e-3, max_rounds: int = 8
) -> ConvNormBound:
    """Certified upper bound on the l2 operator norm of a 2-D multi-channel convolution.

    With cells of half-width h covering the torus, ``sup_w s(w) <= max_c s(c) / (1 - (m1 + m2)^2 h^2 / 2)``
    over the cell centres c that may hold the maximiser (see the module docstring: second-order
    Taylor at the maximiser, where the gradient vanishes, with Bernstein's inequality).  Cells whose
    centre value is below that fraction of the best value are discarded, the others split in four,
    until the relative gap is below ``rel_tol``.

    Parameters
    ----------
    kernel : Tensor
        Weights of shape (c_out, c_in, k, k) with k odd (as in ``torch.nn.Conv2d``).
    grid : int
        Number of initial cells per axis of the torus.
    rel_tol : float
        Stop refining when ``(upper - lower) / lower <= rel_tol``.
    max_rounds : int
        Maximum number of refinement rounds.

    Returns
    -------
    ConvNormBound
        ``upper`` bounds the norm of the convolution with zero or circular padding on any image
        size; symbol norms are computed in single precision and inflated by a relative
        rounding margin of 1e-4.

    Examples
    --------
    >>> import torch
    >>> k = torch.zeros(1, 1, 3, 3); k[0, 0, 1, 1] = 2.0
    >>> b = conv_norm_bound(k)
    >>> b.lower <= 2.0 <= b.upper <= 2.0 * (1 + 1e-3)
    True
    """
    if kernel.dim() != 4:
        raise ValueError(f"kernel must have shape (c_out, c_in, k, k), got {tuple(kernel.shape)}")
    taps, offsets, m = _taps(kernel)
    if m == 0:  # 1x1 convolution: the symbol is constant.
        s = float(torch.linalg.matrix_norm(kernel.detach().double()[:, :, 0, 0], ord=2))
        return ConvNormBound(upper=s * (1 + 1e-9), lower=s, cells=1)
    m_sum = sum(d // 2 for d in kernel.shape[-2:])
    half = math.pi / grid
    if (m_sum * half) ** 2 / 2 >= 0.25:
        raise ValueError(f"grid={grid} too coarse for a {kernel.shape[-2]}x{kernel.shape[-1]} kernel; "
                         f"use grid >= {math.ceil(math.sqrt(2) * math.pi * m_sum)}")
    # s(-w) = s(w) for real kernels and the grid is symmetric, so centres with w1 in [0, pi] suffice.
    w1 = torch.arange(0, grid // 2 + 1, dtype=torch.float64) * (2 * half)
    w2 = torch.arange(0, grid, dtype=torch.float64) * (2 * half)
    centres = torch.stack(torch.meshgrid(w1, w2, indexing="ij"), dim=-1).reshape(-1, 2)
    cells = 0
    lower, upper = 0.0, math.inf
    for _ in range(max_rounds + 1):
        s = _norms(_symbols(taps, offsets, centres))
        cells += len(centres)
        lower = max(lower, float(s.max()) * (1 - _ROUNDING))
        shrink = 1 - (m_sum * half) ** 2 / 2
        s_up = s * (1 + _ROUNDING)
        upper = min(upper, max(lower, float(s_up.max()) / shrink))
        if upper - lower <= rel_tol * lower:
            break
        # the cell holding the maximiser has s(centre) >= M * shrink >= lower * shrink
        keep = s_up >= lower * shrink
        half = half / 2
        shifts = torch.tensor([[-1, -1], [-1, 1], [1, -1], [1, 1]], dtype=torch.float64) * half
        centres = (centres[keep][:, None, :] + shifts[None]).reshape(-1, 2)
    return ConvNormBound(upper=upper * (1 + 1e-9), lower=lower, cells=cells)
