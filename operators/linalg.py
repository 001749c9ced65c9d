"""Matrix-free linear algebra behind :class:`operators.base.LinearOperator`.

Conjugate gradient for the normal equations, power iteration for the spectral norm and the
relative adjointness test, each written once for every operator; plus the shape check of the
``(B, C, H, W)`` convention.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

__all__ = ["Shape", "as_shape", "dot", "conjugate_gradient", "power_iteration", "adjoint_error"]

Shape = tuple[int, ...]


def as_shape(shape) -> Shape | None:
    """``shape`` as a tuple of four positive ints (None stays None); refuses anything else."""
    if shape is None:
        return None
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"shape must be a (B, C, H, W) tuple of positive ints, got {shape}")
    return shape


def dot(a: Tensor, b: Tensor) -> Tensor:
    """Euclidean inner product of two tensors (all entries), as a 0-d tensor."""
    return torch.sum(a * b)


def conjugate_gradient(
    apply: Callable[[Tensor], Tensor],
    b: Tensor,
    *,
    x0: Tensor | None = None,
    tol: float = 1e-6,
    max_iter: int = 500,
) -> Tensor:
    """Solve ``M x = b`` for a symmetric positive definite ``M`` by conjugate gradient.

    Parameters
    ----------
    apply : callable
        ``x -> M x``.
    b : Tensor
        Right-hand side.
    x0 : Tensor, optional
        Initial guess (zeros by default).
    tol : float
        Stop when ``||b - M x|| <= tol * ||b||`` (whole tensor, Euclidean norm).
    max_iter : int
        Maximum number of iterations.

    Returns
    -------
    Tensor
        The approximate solution, same shape as ``b``.

    Examples
    --------
    >>> import torch
    >>> b = torch.ones(1, 1, 2, 2)
    >>> conjugate_gradient(lambda x: 2 * x, b).flatten().tolist()
    [0.5, 0.5, 0.5, 0.5]
    """
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - apply(x) if x0 is not None else b.clone()
    b_norm = torch.linalg.vector_norm(b)
    if b_norm == 0:
        return torch.zeros_like(b)
    p = r.clone()
    rr = dot(r, r)
    for _ in range(max_iter):
        if torch.sqrt(rr) <= tol * b_norm:
            break
        mp = apply(p)
        alpha = rr / dot(p, mp)
        x = x + alpha * p
        r = r - alpha * mp
        rr_new = dot(r, r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def power_iteration(gram: Callable[[Tensor], Tensor], shape: Shape, *, tol: float, max_iter: int,
                    dtype: torch.dtype, device: torch.device | str | None,
                    not_adjoint: Callable[[float], str]) -> tuple[Tensor, Tensor] | None:
    """Largest eigenvalue of the positive semidefinite ``gram`` (``x -> A^T A x``) by power iteration.

    Starts from a seeded random unit vector (drawn on the CPU, then moved to ``device``) and stops
    when the Rayleigh quotient ``mu`` changes by less than ``tol * mu`` (or after ``max_iter``).

    Returns
    -------
    (mu, res) or None
        The last Rayleigh quotient and the norm of the eigen-residual ``gram(v) - mu v`` of the
        unit iterate ``v`` (some eigenvalue lies in ``[mu - res, mu + res]``); None when
        ``gram`` annihilates the iterate (the norm is 0).

    Raises
    ------
    ValueError
        With the message ``not_adjoint(mu)`` when ``<v, gram(v)>`` is clearly negative: the
        adjoint is then not the adjoint and no norm can be certified.

    Examples
    --------
    >>> mu, res = power_iteration(lambda x: 4 * x, (1, 1, 2, 2), tol=1e-9, max_iter=10, dtype=torch.float64,
    ...                           device=None, not_adjoint=str)
    >>> round(float(mu), 12), float(res) < 1e-12
    (4.0, True)
    """
    gen = torch.Generator().manual_seed(1234)  # seeded on the CPU, then moved to the operator's device
    v = torch.randn(shape, generator=gen, dtype=dtype).to(device or "cpu")
    v = v / torch.linalg.vector_norm(v)
    mu_old = None
    mu = torch.zeros((), dtype=dtype)
    res = torch.zeros((), dtype=dtype)
    with torch.no_grad():
        for _ in range(max_iter):
            w = gram(v)
            mu = dot(v, w)
            res = torch.linalg.vector_norm(w - mu * v)
            w_norm = torch.linalg.vector_norm(w)
            # <v, A^T A v> = ||A v||^2 >= 0 when the adjoint is the adjoint: otherwise no norm is certified
            if mu < -1e3 * torch.finfo(dtype).eps * w_norm:
                raise ValueError(not_adjoint(float(mu)))
            if w_norm == 0:
                return None
            v = w / w_norm
            if mu_old is not None and abs(mu - mu_old) <= tol * abs(mu):
                break
            mu_old = mu
    return mu, res


def adjoint_error(forward: Callable[[Tensor], Tensor], adjoint: Callable[[Tensor], Tensor], shape: Shape, *,
                  dtype: torch.dtype, seed: int) -> float:
    """Relative adjointness error ``|<Ax, y> - <x, A^T y>| / (||Ax|| ||y||)`` on seeded normal ``x``, ``y``.

    Examples
    --------
    >>> adjoint_error(lambda x: 2 * x, lambda y: 2 * y, (1, 1, 3, 3), dtype=torch.float64, seed=0)
    0.0
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=dtype)
    with torch.no_grad():
        ax = forward(x)
        y = torch.randn(ax.shape, generator=gen, dtype=dtype)
        aty = adjoint(y)
    if aty.shape != x.shape:
        raise ValueError(
            f"adjoint_test: adjoint returned shape {tuple(aty.shape)}, expected {tuple(x.shape)}"
        )
    lhs, rhs = dot(ax, y), dot(x, aty)
    denom = torch.linalg.vector_norm(ax) * torch.linalg.vector_norm(y)
    err = torch.abs(lhs - rhs)
    return float(err / denom) if denom > 0 else float(err)
