"""Rigorous spectral norms of multi-channel 2-D convolutions.

A convolution with kernel ``K`` (c_out x c_in x k x k, k odd) acting on n x n images with
circular boundary has, as singular values, the union over the frequency grid of the singular
values of the c_out x c_in symbols

    P(w) = sum_{p, q} K[:, :, p + m, q + m] exp(-i (w1 p + w2 q)),   p, q in {-m, ..., m},

(Sedghi, Gupta, Long, "The Singular Values of Convolutional Layers", ICLR 2019).  A zero-padded
("same") convolution on n x n is a restriction of a circular one on a larger grid, so for a bound
that holds at *every* image size and for both boundary modes we need ``sup_w s(w)`` over the
continuous torus, where ``s(w) = sigma_max(P(w))``.

We bound that supremum by branch and bound on cells of the torus.  ``P`` is a trigonometric
polynomial of degree m in each variable, so Bernstein's inequality (valid for Banach-space valued
trigonometric polynomials) gives ``||d P / d w_j|| <= m M`` with ``M = sup s``.  On a square cell of
half-width h centred at c, ``s <= s(c) + 2 m h M``.  Hence ``M <= max_c s(c) / (1 - 2 m h)`` over the
cells that may still contain the maximum; cells that provably stay below the best value found are
discarded, the others are split in four.  The result is an upper bound, the best grid value a
lower bound, and their gap is reported.
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
    taps = kernel.detach().to(torch.float64).permute(2, 3, 0, 1).reshape(-1, *kernel.shape[:2])
    return taps.to(torch.complex128), offsets, max(m1, m2)


def _symbols(kernel: torch.Tensor, freqs: torch.Tensor, derivatives: bool = False):
    taps, offsets, _ = _taps(kernel)
    phases = torch.exp(-1j * (freqs.to(torch.float64) @ offsets.T))  # (F, T)
    sym = torch.einsum("ft,tab->fab", phases, taps)
    if not derivatives:
        return sym
    d1 = torch.einsum("ft,tab->fab", phases * (-1j * offsets[:, 0]), taps)
    d2 = torch.einsum("ft,tab->fab", phases * (-1j * offsets[:, 1]), taps)
    return sym, d1, d2


#: symbols are formed in complex128 and their norms computed in complex64 (about twice faster);
#: the float32 SVD error is below ~10 n eps_32 ||P|| for n <= 64 channels, so every computed
#: norm is inflated (upper bounds) by this relative margin.
_ROUNDING = 1e-4


def _norms(mats: torch.Tensor) -> torch.Tensor:
    return torch.linalg.matrix_norm(mats.to(torch.complex64), ord=2).to(torch.float64)


def conv_symbol_norms(kernel: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Largest singular value of the symbol ``P(w)`` at each frequency pair in ``freqs`` (F, 2)."""
    return torch.linalg.matrix_norm(_symbols(kernel, freqs), ord=2)


def _cell_bounds(kernel: torch.Tensor, centres: torch.Tensor, half: float):
    """Symbol norm at each centre and the corner maximum of its first-order Taylor model.

    ``w -> ||P(c) + (w - c) . grad P(c)||`` is convex, so on the square cell its maximum is at a
    corner; the Taylor remainder is bounded separately by ``2 m^2 h^2 M`` (Bernstein, twice).
    """
    sym, d1, d2 = _symbols(kernel, centres, derivatives=True)
    corners = [sym + half * (a * d1 + b * d2) for a in (-1, 1) for b in (-1, 1)]
    centre_norm = _norms(sym) * (1 - _ROUNDING)  # a lower bound
    corner_norm = _norms(torch.stack(corners)).amax(0) * (1 + _ROUNDING)  # an upper bound
    return centre_norm, torch.maximum(corner_norm, centre_norm)


def conv_norm_bound(
    kernel: torch.Tensor, *, grid: int = 32, rel_tol: float = 1e-3, max_rounds: int = 8
) -> ConvNormBound:
    """Certified upper bound on the l2 operator norm of a 2-D multi-channel convolution.

    On a cell of half-width h centred at c, ``s(w) <= max_corners ||P(c) + (w - c) . grad P(c)||
    + 2 m^2 h^2 M`` with ``M = sup s`` (second-order Taylor with Bernstein's inequality
    ``||d_i d_j P|| <= m^2 M``), so ``M <= max_c A_c / (1 - 2 m^2 h^2)`` over cells that may hold
    the maximum.  Cells whose bound falls below the best evaluated value are discarded, the others
    split in four, until the relative gap is below ``rel_tol``.

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
    >>> round(conv_norm_bound(k).upper, 6)
    2.0
    """
    if kernel.dim() != 4:
        raise ValueError(f"kernel must have shape (c_out, c_in, k, k), got {tuple(kernel.shape)}")
    _, _, m = _taps(kernel)
    if m == 0:  # 1x1 convolution: the symbol is constant.
        s = float(torch.linalg.matrix_norm(kernel.detach().double()[:, :, 0, 0], ord=2))
        return ConvNormBound(upper=s * (1 + 1e-9), lower=s, cells=1)
    half = math.pi / grid
    if 2 * m * m * half * half >= 0.25:
        raise ValueError(f"grid={grid} too coarse for a {2 * m + 1}-tap kernel; use grid >= {12 * m}")
    # s(-w) = s(w) for real kernels, so cells with w1 in [0, pi] (and their mirrors) cover the torus.
    w1 = torch.arange(0, grid // 2 + 1, dtype=torch.float64) * (2 * half)
    w2 = torch.arange(0, grid, dtype=torch.float64) * (2 * half)
    centres = torch.stack(torch.meshgrid(w1, w2, indexing="ij"), dim=-1).reshape(-1, 2)
    cells = 0
    lower = 0.0
    for _ in range(max_rounds + 1):
        centre_norm, model_max = _cell_bounds(kernel, centres, half)
        cells += len(centres)
        lower = max(lower, float(centre_norm.max()))
        shrink = 1 - 2 * m * m * half * half
        upper = max(lower, float(model_max.max()) / shrink)
        if upper - lower <= rel_tol * lower:
            break
        # A cell may hold the maximum only if its bound reaches the best value seen so far.
        keep = model_max + 2 * m * m * half * half * upper >= lower
        half = half / 2
        shifts = torch.tensor([[-1, -1], [-1, 1], [1, -1], [1, 1]], dtype=torch.float64) * half
        centres = (centres[keep][:, None, :] + shifts[None]).reshape(-1, 2)
    return ConvNormBound(upper=upper * (1 + 1e-9), lower=lower, cells=cells)
