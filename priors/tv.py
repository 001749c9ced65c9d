"""Total variation: value, a fast dual-FISTA prox (relative-change stopping, certified gap bound), and the prior.

Discretisation (the same as deepinv's ``TVDenoiser``): forward differences with Neumann
boundary, i.e. ``(Dx)_h[i, j] = x[i, j+1] - x[i, j]`` for ``j < W-1`` and ``0`` on the last
column, likewise ``(Dx)_v`` with the last row set to zero. TV acts on each channel separately:

* isotropic   ``TV(x) = sum_{c,i,j} sqrt((Dx)_h^2 + (Dx)_v^2)``
* anisotropic ``TV(x) = sum_{c,i,j} |(Dx)_h| + |(Dx)_v|``

The prox ``argmin_x ½‖x − v‖² + t TV(x)`` is computed on the dual problem
``min_{p in K} ½‖v − t Dᵀp‖²`` (``K``: unit l2 balls per pixel, or the unit box for the
anisotropic case) by the fast gradient projection of Beck & Teboulle (IEEE TIP 18(11), 2009,
"Fast gradient-based algorithms for constrained total variation image denoising and
deblurring problems") with step ``1/(8 t²)`` (``‖D‖² ≤ 8``), and ``x = v − t Dᵀp``.

Stopping rule: relative change of the primal iterate over ``check_every`` iterations below
``tol`` (details and measured error/tolerance ratios in :func:`tv_prox`). A certified bound
is also returned: for a feasible dual point ``p`` and ``x_p = v − t Dᵀp`` the duality gap is

    gap(p) = t * sum_i ( |(D x_p)_i| − <p_i, (D x_p)_i> )   (>= 0),

and, the primal objective being 1-strongly convex, ``½‖x_p − x*‖² ≤ gap(p)``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from .base import Prior, _check_image, _check_tau

__all__ = ["TV", "TVProxInfo", "tv_prox", "tv_value", "grad2d", "grad2d_adjoint"]


def grad2d(x: Tensor) -> tuple[Tensor, Tensor]:
    """Forward differences with Neumann boundary: returns ``((Dx)_h, (Dx)_v)``, each shaped like x."""
    gh = torch.zeros_like(x)
    gv = torch.zeros_like(x)
    torch.sub(x[..., :, 1:], x[..., :, :-1], out=gh[..., :, :-1])
    torch.sub(x[..., 1:, :], x[..., :-1, :], out=gv[..., :-1, :])
    return gh, gv


def grad2d_adjoint(ph: Tensor, pv: Tensor) -> Tensor:
    """Adjoint of :func:`grad2d` (minus the discrete divergence); entries of ``ph`` on the last
    column and of ``pv`` on the last row are ignored, as D never produces them."""
    out = torch.zeros_like(ph)
    out[..., :, :-1] -= ph[..., :, :-1]
    out[..., :, 1:] += ph[..., :, :-1]
    out[..., :-1, :] -= pv[..., :-1, :]
    out[..., 1:, :] += pv[..., :-1, :]
    return out


def tv_value(x: Tensor, *, isotropic: bool = True) -> Tensor:
    """Total variation of each batch element (channels summed), shape (B,)."""
    _check_image(x, "x")
    gh, gv = grad2d(x)
    if isotropic:
        per_pixel = torch.sqrt(gh * gh + gv * gv)
    else:
        per_pixel = gh.abs() + gv.abs()
    return per_pixel.flatten(1).sum(1)


@dataclass(frozen=True)
class TVProxInfo:
    """Diagnostics of one TV prox solve.

    Attributes
    ----------
    iterations : int
        Dual FISTA iterations performed.
    gap : float
        Largest (over the batch) duality gap of the returned point.
    error_bound : float
        Largest certified relative error bound ``sqrt(2 gap) / ‖v‖`` (usually loose).
    converged : bool
        The relative-change test reached ``tol`` before ``max_iter``.
    """

    iterations: int
    gap: float
    error_bound: float
    converged: bool


class _DualFGP:
    """Buffers and one step of the dual fast gradient projection, in a flat strided layout.

    Each image is flattened to length ``N = H W``. The dual lives in a buffer of shape
    (B, C, 2, W + N) whose first ``W`` entries per component are a zero margin, so that the
    shifted fields ``p_h[i − 1]`` and ``p_v[i − W]`` needed by ``Dᵀp`` are *one* strided view
    (and likewise ``x[i + 1]``, ``x[i + W]`` for ``Dx``, using a zero tail on x). A step is then
    eleven whole-array torch kernels without allocation; in a 256² float32 single-thread test
    this was about 5.5 times cheaper than one iteration of deepinv's TVDenoiser.
    """

    def __init__(self, v: Tensor, isotropic: bool, dual: Tensor | None) -> None:
        b, c, h, w = v.shape
        n = h * w
        self.b, self.c, self.h, self.w, self.n_pix = b, c, h, w, n
        self.isotropic = isotropic
        self.v = v.reshape(b, c, n)
        self.xbuf = v.new_zeros((b, c, n + w))  # x followed by a zero tail of length W
        self.x = self.xbuf[..., :n]
        shape = (b, c, 2, w + n)
        # mask of the entries D can produce: no horizontal difference on the last column,
        # no vertical difference on the last row (Neumann boundary)
        mask = v.new_ones((2, h, w))
        mask[0, :, -1] = 0
        mask[1, -1, :] = 0
        self.mask = mask.reshape(2, n)
        self.nrm = v.new_empty((b, c, 1, n))
        if dual is not None and tuple(dual.shape) == shape:
            self.p = dual.to(dtype=v.dtype, device=v.device).clone()
            self.p[..., :w] = 0
            self.p[..., w:].mul_(self.mask)
            self._project(self.p[..., w:])
        else:
            self.p = v.new_zeros(shape)
        self.q = torch.zeros_like(self.p)
        self.r = self.p.clone()  # extrapolated point
        self.g = v.new_empty((b, c, 2, n))
        self.y = v.new_empty((b, c, 2, n))

    def _shifted_dual(self, buf: Tensor) -> Tensor:
        # [.., 0, i] -> p_h[i - 1],  [.., 1, i] -> p_v[i - W]  (zeros where out of range)
        b, c, w, n = self.b, self.c, self.w, self.n_pix
        length = w + n
        return torch.as_strided(buf, (b, c, 2, n), (c * 2 * length, 2 * length, n + 1, 1), buf.storage_offset() + w - 1)

    def _shifted_x(self) -> Tensor:
        # [.., 0, i] -> x[i + 1],  [.., 1, i] -> x[i + W]
        b, c, w, n = self.b, self.c, self.w, self.n_pix
        xb = self.xbuf
        return torch.as_strided(xb, (b, c, 2, n), (c * (n + w), n + w, w - 1, 1), xb.storage_offset() + 1)

    def _project(self, q: Tensor) -> None:
        if self.isotropic:
            nrm = self.nrm
            torch.mul(q[:, :, 0:1], q[:, :, 0:1], out=nrm)
            nrm.addcmul_(q[:, :, 1:2], q[:, :, 1:2]).clamp_(min=1.0).rsqrt_()
            q.mul_(nrm)
        else:
            q.clamp_(-1.0, 1.0)

    def primal(self, buf: Tensor, t: float, out: Tensor) -> Tensor:
        """``out = v − t Dᵀp`` (flat layout (B, C, N))."""
        y = self.y
        torch.sub(buf[..., self.w :], self._shifted_dual(buf), out=y)
        torch.add(self.v, y[:, :, 0], alpha=t, out=out)
        return out.add_(y[:, :, 1], alpha=t)

    def step(self, t: float, beta: float) -> None:
        self.primal(self.r, t, self.x)
        torch.sub(self._shifted_x(), self.x.unsqueeze(2), out=self.g)
        qv = self.q[..., self.w :]
        torch.addcmul(self.r[..., self.w :], self.g, self.mask, value=1.0 / (8.0 * t), out=qv)
        self._project(qv)
        # r <- q + beta (q - p), a single lerp kernel
        torch.lerp(self.p, self.q, 1.0 + beta, out=self.r)
        self.p, self.q = self.q, self.p

    def fields(self, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """Current dual as two (B, C, H, W) fields ``(p_h, p_v)``."""
        pv = self.p[..., self.w :].to(dtype).reshape(self.b, self.c, 2, self.h, self.w)
        return pv[:, :, 0], pv[:, :, 1]

    def gap(self, v: Tensor, t: float) -> tuple[Tensor, Tensor]:
        """Duality gap per batch element (float64) and the primal point of the current dual."""
        ph, pv = self.fields(torch.float64)
        if self.isotropic:
            # rescale into the ball exactly (the float32 projection may overshoot by an ulp)
            scale = torch.clamp(torch.sqrt(ph * ph + pv * pv), min=1.0)
            ph, pv = ph / scale, pv / scale
        else:
            ph, pv = ph.clamp(-1, 1), pv.clamp(-1, 1)
        x64 = v.to(torch.float64) - t * grad2d_adjoint(ph, pv)
        gh, gv = grad2d(x64)
        if self.isotropic:
            gap = torch.sqrt(gh * gh + gv * gv) - (ph * gh + pv * gv)
        else:
            gap = gh.abs() + gv.abs() - ph * gh - pv * gv
        return t * gap.clamp(min=0).flatten(1).sum(1), x64


def tv_prox(
    v: Tensor,
    t: float,
    *,
    isotropic: bool = True,
    tol: float = 1e-4,
    max_iter: int = 2000,
    check_every: int = 10,
    dual: Tensor | None = None,
) -> tuple[Tensor, Tensor, TVProxInfo]:
    """Prox of ``t * TV``: ``argmin_x ½‖x − v‖² + t TV(x)`` by dual FISTA (Beck & Teboulle 2009).

    Stopping rule: every ``check_every`` iterations the primal point ``x_k = v − t Dᵀp_k`` is
    formed and the iteration stops when ``‖x_k − x_{k−check_every}‖ ≤ tol ‖x_k‖`` for every
    batch element. Measured against float64 solves run to a duality gap of 1e-12 (camera
    256², weights 0.02 to 0.3) the true relative error was between 0.2 and 3 times this
    change. On return the duality gap is evaluated once (in float64) and
    ``info.error_bound = sqrt(2 gap) / ‖v‖`` is a *certified* bound on ``‖x − x*‖ / ‖v‖``
    (the primal objective is 1-strongly convex); it is usually much looser than the true error.

    Parameters
    ----------
    v : Tensor
        Input of shape (B, C, H, W), floating point.
    t : float
        Weight of TV (>= 0).
    isotropic : bool
        Isotropic (l2 over the two differences) or anisotropic (l1) TV.
    tol : float
        Relative-change tolerance of the stopping rule above.
    max_iter : int
        Iteration cap; ``info.converged`` says whether ``tol`` was reached.
    check_every : int
        Window (in iterations) of the relative-change test.
    dual : Tensor, optional
        Dual field returned by a previous call on an image of the same shape (warm start).

    Returns
    -------
    x : Tensor
        The prox, same shape and dtype as ``v``.
    dual : Tensor
        Final dual field (pass it back as ``dual=`` to warm start).
    info : TVProxInfo
        Iterations, gap, certified error bound, convergence flag.

    Examples
    --------
    >>> v = torch.rand(1, 1, 32, 32)
    >>> x, p, info = tv_prox(v, 0.1, tol=1e-4)
    >>> info.converged
    True
    """
    _check_image(v, "v")
    t = _check_tau(t)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol > 0:
        raise ValueError(f"tol must be a float > 0, got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be an int >= 1, got {max_iter!r}")
    if isinstance(check_every, bool) or not isinstance(check_every, int) or check_every < 1:
        raise ValueError(f"check_every must be an int >= 1, got {check_every!r}")
    if not v.is_floating_point():
        raise TypeError("v must be a floating-point tensor; convert it with v.float()")
    b, c, h, w = v.shape
    if t == 0 or h * w == 1:
        dual_out = v.new_zeros((b, c, 2, w + h * w))
        return v.clone(), dual_out, TVProxInfo(0, 0.0, 0.0, True)

    with torch.no_grad():
        v = v.contiguous()
        solver = _DualFGP(v, isotropic, dual)
        x_prev = solver.primal(solver.p, t, v.new_empty((b, c, h * w)))
        x_now = torch.empty_like(x_prev)
        tk = 1.0
        k = 0
        converged = False
        while k < max_iter:
            n_steps = min(check_every, max_iter - k)
            for _ in range(n_steps):
                tk1 = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * tk * tk))
                solver.step(t, (tk - 1.0) / tk1)
                tk = tk1
            k += n_steps
            solver.primal(solver.p, t, x_now)
            change = torch.linalg.vector_norm((x_now - x_prev).flatten(1), dim=1)
            scale = torch.linalg.vector_norm(x_now.flatten(1), dim=1)
            if bool((change <= tol * scale).all()):
                converged = True
                break
            x_prev, x_now = x_now, x_prev
        gap, x64 = solver.gap(v, t)
        vnorm = v.to(torch.float64).flatten(1).norm(dim=1).clamp(min=torch.finfo(torch.float64).tiny)
        bound = torch.sqrt(2.0 * gap) / vnorm
        info = TVProxInfo(
            iterations=k,
            gap=float(gap.max().item()),
            error_bound=float(bound.max().item()),
            converged=converged,
        )
        return x64.to(v.dtype), solver.p, info


class TV(Prior):
    """Total variation prior ``weight * TV(x)`` (isotropic or anisotropic), channel by channel.

    Boundary: Neumann (forward differences, zero on the last row/column), as in deepinv.
    The prox is computed by dual FISTA (Beck & Teboulle 2009) and stops when the relative
    change of the iterate over 10 iterations is below ``tol`` (measured true error within
    0.2-3 ``tol``; see :func:`tv_prox`); ``last_info`` holds the diagnostics of the latest
    call, including a certified duality-gap bound. ``exact_prox`` is False.

    Parameters
    ----------
    isotropic : bool
        l2 (isotropic, default) or l1 (anisotropic) coupling of the two differences.
    tol : float
        Relative-change tolerance of the inner solver (default 1e-4).
    max_iter : int
        Iteration cap of the inner solver (a RuntimeWarning is emitted when it stops there).
    warm_start : bool
        Reuse the previous dual solution as the starting point of the next call (useful in
        proximal-gradient loops; the result does not depend on it beyond ``tol``).
    weight : float
        Scaling of the functional (``0.1 * TV()`` is the same as ``TV(weight=0.1)``).

    Examples
    --------
    >>> prior = 0.1 * TV()
    >>> x = prior.prox(torch.rand(1, 1, 16, 16), tau=1.0)
    >>> tuple(x.shape)
    (1, 1, 16, 16)
    """

    convex = True
    has_value = True
    exact_prox = False

    def __init__(
        self,
        *,
        isotropic: bool = True,
        tol: float = 1e-4,
        max_iter: int = 2000,
        warm_start: bool = False,
        weight: float = 1.0,
    ) -> None:
        super().__init__(weight=weight)
        if not isinstance(isotropic, bool):
            raise TypeError(f"isotropic must be a bool, got {type(isotropic).__name__}")
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (0 < tol < 1):
            raise ValueError(f"tol must be a float in (0, 1), got {tol!r}")
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(f"max_iter must be an int >= 1, got {max_iter!r}")
        self.isotropic = isotropic
        self.tol = float(tol)
        self.max_iter = max_iter
        self.warm_start = bool(warm_start)
        self.name = "tv" if isotropic else "tv-anisotropic"
        self.last_info: TVProxInfo | None = None
        self._dual: Tensor | None = None

    def _value(self, x: Tensor) -> Tensor:
        return tv_value(x, isotropic=self.isotropic)

    def _prox(self, v: Tensor, t: float) -> Tensor:
        dual = self._dual if self.warm_start else None
        x, p, info = tv_prox(v, t, isotropic=self.isotropic, tol=self.tol, max_iter=self.max_iter, dual=dual)
        self.last_info = info
        if self.warm_start:
            self._dual = p
        if not info.converged:
            warnings.warn(
                f"TV prox reached max_iter={self.max_iter} before the relative change fell below "
                f"tol={self.tol:g}; raise max_iter or tol",
                RuntimeWarning,
                stacklevel=3,
            )
        return x

    def __mul__(self, c: float) -> "TV":
        new = super().__mul__(c)
        if new is not NotImplemented:
            new._dual = None  # never share a warm-start buffer between copies
        return new

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return (
            f"TV(isotropic={self.isotropic}, tol={self.tol:g}, max_iter={self.max_iter}, "
            f"weight={self.weight:g})"
        )
