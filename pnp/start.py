"""The default starting point of the iterations: a smooth least-squares fit of the data.

Why not ``y`` itself
--------------------
With an inpainting mask, ``y`` (the old default start) has zeros in the holes: every missing pixel
is an edge of height ~0.5. There the learned ridge regularizer's spline derivatives are saturated
(constant outside their knot range, :mod:`priors.ridge`), so its gradient is flat: a gradient step
moves a hole by at most ``τ λ ‖Wᵀσ‖ / μ`` however wrong it is, and the secant pairs of Anderson
acceleration see no curvature (``Δg ≈ 0``) and propose huge steps. Measured on the 64 x 64 camera
crop with 50 % of the pixels missing (noise 0.01, default ``ridge`` prior, PGD): the minimiser
(L-BFGS) has 29.54 dB; from ``y`` plain PGD is at 15.4 dB after 1000 iterations and the
accelerated run oscillated to 7.6 dB; from the smooth start below plain PGD converges (920
iterations, 29.5 dB) and the accelerated run in 24 iterations (29.58 dB). The step (from ‖A‖),
the weight rule (29.5 dB at the minimiser) and the regulariser's smoothness constant were not the
cause. On blur the smooth start is a mild deconvolution (default job: 59 instead of 63
iterations); on downsampling a smooth upsampling; on denoising a smoothed ``y``.

The start
---------
For a least-squares data term ``½‖A x − y‖²`` (also inside a smooth penalised term):

.. math:: x_0 = \\arg\\min_x \\tfrac12 \\|A x - y\\|^2 + \\tfrac{\\varepsilon}{2} \\|D x\\|^2,
          \\qquad \\varepsilon = 0.1\\,\\|A\\|^2,

``D`` the forward differences (Neumann boundary, :class:`priors.finite_differences.FiniteDifference`),
solved by conjugate gradient on ``(AᵀA + ε DᵀD) x = Aᵀy`` (:func:`operators.linalg.conjugate_gradient`)
to relative residual 1e-3 from the old start. The system is positive definite whenever ``A`` sees
the constant image (``DᵀD`` vanishes only on constants). It fills a mask's holes by a discrete
harmonic interpolation of their neighbours. Any other data term keeps the old start. The start does
not change a convex problem's minimiser nor a theorem's hypotheses: only how far the iterations go.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from operators.linalg import conjugate_gradient
from priors.finite_differences import grad2d, grad2d_adjoint

__all__ = ["SMOOTHNESS", "least_squares_term", "smooth_start"]

#: ``ε / ‖A‖²`` of the smooth start: enough to fill holes and damp noise, small against the data
SMOOTHNESS = 0.1
#: relative residual of the conjugate-gradient solve (a start needs no more)
START_TOL = 1e-3
#: iteration cap of that solve
START_MAX_ITER = 100


def least_squares_term(fidelity: Any) -> Any:
    """The least-squares term ``½‖A x − y‖²`` of a data term (inside a penalised one), else None."""
    from operators.fidelity import L2Fidelity, PenalizedFidelity

    seen = 0
    while isinstance(fidelity, PenalizedFidelity) and seen < 8:
        fidelity, seen = fidelity.fidelity, seen + 1
    return fidelity if isinstance(fidelity, L2Fidelity) else None


def smooth_start(fidelity: Any, x: Tensor, *, smoothness: float = SMOOTHNESS) -> Tensor:
    """``argmin ½‖A x − y‖² + (ε/2)‖D x‖²`` with ``ε = smoothness ‖A‖²``, from ``x`` (see the module).

    Returns ``x`` unchanged when the data term is not least squares, when ``x`` has not the shape of
    the operator's input or is smaller than 2 x 2, or when the solve does not give a finite image.

    Examples
    --------
    >>> from operators import Inpainting, L2Fidelity
    >>> truth = torch.linspace(0, 1, 16, dtype=torch.float64).repeat(1, 1, 16, 1)
    >>> A = Inpainting(torch.rand(16, 16, generator=torch.Generator().manual_seed(0)) > 0.5)
    >>> y = A(truth)
    >>> x0 = smooth_start(L2Fidelity(A, y), y.clone())
    >>> bool((x0 - truth).norm() < 0.5 * (y - truth).norm())
    True
    """
    ls = least_squares_term(fidelity)
    if ls is None or x.ndim != 4 or min(x.shape[-2:]) < 2:
        return x
    A, y = ls.operator, ls.y
    with torch.no_grad():
        b = A.adjoint(y.to(x.dtype))
        if b.shape != x.shape:
            return x
        lip = ls.lipschitz_grad()
        if not (isinstance(lip, (int, float)) and math.isfinite(lip) and lip > 0):
            return x
        eps = float(smoothness) * float(lip)

        def normal(v: Tensor) -> Tensor:
            gh, gv = grad2d(v)
            return A.adjoint(A(v)) + eps * grad2d_adjoint(gh, gv)

        out = conjugate_gradient(normal, b, x0=x, tol=START_TOL, max_iter=START_MAX_ITER)
    return out if bool(torch.isfinite(out).all()) else x
