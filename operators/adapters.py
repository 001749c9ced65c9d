"""Adapters: deepinv physics <-> :class:`LinearOperator`, and any linear torch function as an operator.

Adding a new forward model
--------------------------
Write the forward model as a plain torch function of a ``(B, C, H, W)`` tensor and wrap it in
:class:`FunctionOperator`; the adjoint is derived by automatic differentiation (a vector-Jacobian
product), so there is nothing else to write. Check it with ``adjoint_test()``.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch
from torch import Tensor

from .base import LinearOperator, Shape

__all__ = ["FunctionOperator", "DeepinvOperator", "from_deepinv", "to_deepinv"]


class FunctionOperator(LinearOperator):
    """A linear torch function as a :class:`LinearOperator`; adjoint by autograd (VJP).

    For a linear ``fn``, the vector-Jacobian product at any point is ``v -> A^T v``, so the
    adjoint is ``torch.func.vjp(fn, 0)`` applied to ``v``. The VJP function is built once per
    (batch size, dtype, device) and reused (one extra forward pass the first time).

    ``fn`` must be linear (no bias, no clipping) and fixed: if it closes over parameters that
    you later modify, build a new operator. ``adjoint_test()`` detects most mistakes.

    Parameters
    ----------
    fn : callable
        ``x -> A x`` on ``(B, C, H, W)`` tensors, built from differentiable torch operations.
    in_shape : tuple of int
        ``(B, C, H, W)`` input shape. For a different batch size in :meth:`adjoint`, the batch
        dimension is taken from ``y`` (``fn`` is assumed to act on each batch element alike).
    name : str, optional
        Name shown in ``repr``.

    Examples
    --------
    A new forward model, the column-wise average of an image (a line detector), in three lines:

    >>> import torch
    >>> from operators import FunctionOperator
    >>> col_mean = FunctionOperator(lambda x: x.mean(dim=-2, keepdim=True), in_shape=(1, 1, 16, 16))
    >>> y = col_mean(torch.rand(1, 1, 16, 16))
    >>> y.shape, col_mean.T(y).shape
    (torch.Size([1, 1, 1, 16]), torch.Size([1, 1, 16, 16]))
    >>> col_mean.adjoint_test() < 1e-12
    True
    >>> round(col_mean.norm(), 4)  # ||A|| = 1 / sqrt(16)
    0.25

    A shift-and-add (the sum of two shifted copies, as in a double exposure):

    >>> shift_add = FunctionOperator(
    ...     lambda x: x + torch.roll(x, shifts=(2, 3), dims=(-2, -1)), in_shape=(1, 3, 12, 10))
    >>> shift_add.adjoint_test() < 1e-12
    True
    """

    def __init__(self, fn: Callable[[Tensor], Tensor], *, in_shape: Shape, name: str | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        if in_shape is None:
            raise ValueError("FunctionOperator needs in_shape=(B, C, H, W) to derive the adjoint")
        super().__init__(in_shape=in_shape)
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "fn")
        self._vjps: dict = {}

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def _vjp(self, batch: int, dtype, device):
        key = (batch, dtype, device)
        if key not in self._vjps:
            shape = (batch, *self.in_shape[1:])
            with torch.enable_grad():
                out, vjp_fn = torch.func.vjp(self.fn, torch.zeros(shape, dtype=dtype, device=device))
            self._vjps[key] = (tuple(out.shape), vjp_fn)
        return self._vjps[key]

    def adjoint(self, y: Tensor) -> Tensor:
        out_shape, vjp_fn = self._vjp(y.shape[0], y.dtype, y.device)
        if tuple(y.shape) != out_shape:
            raise ValueError(
                f"FunctionOperator.adjoint: y has shape {tuple(y.shape)}, expected {out_shape}"
            )
        return vjp_fn(y)[0]

    def __repr__(self) -> str:
        return f"FunctionOperator({self.name}, in_shape={self.in_shape})"


class DeepinvOperator(LinearOperator):
    """A ``deepinv.physics.LinearPhysics`` seen as a :class:`LinearOperator` (use :func:`from_deepinv`).

    ``forward`` is ``physics.A`` and ``adjoint`` is ``physics.A_adjoint`` (the noise model is
    not used). The norm is ours (power iteration to a relative tolerance; deepinv's
    ``compute_norm`` returns the squared norm by default). For a
    ``deepinv.physics.DecomposablePhysics`` (e.g. ``BlurFFT``) the normal equations are solved in
    closed form through the physics' SVD-based ``prox_l2``.

    Parameters
    ----------
    physics : deepinv.physics.LinearPhysics
        The physics to wrap.
    in_shape : tuple of int, optional
        ``(B, C, H, W)``; defaults to ``(1, *physics.img_size)`` when the physics has a
        3-entry ``img_size``.

    Examples
    --------
    >>> import deepinv
    >>> from operators import from_deepinv
    >>> phys = deepinv.physics.BlurFFT((1, 16, 16), filter=torch.ones(1, 1, 3, 3) / 9)
    >>> A = from_deepinv(phys)
    >>> A.adjoint_test() < 1e-6
    True
    """

    def __init__(self, physics, *, in_shape: Shape | None = None) -> None:
        import deepinv

        if not isinstance(physics, deepinv.physics.LinearPhysics):
            raise TypeError(f"physics must be a deepinv.physics.LinearPhysics, got {type(physics).__name__}")
        if in_shape is None:
            img_size = getattr(physics, "img_size", None)
            if img_size is not None and len(tuple(img_size)) == 3:
                in_shape = (1, *tuple(img_size))
        super().__init__(in_shape=in_shape)
        self.physics = physics
        self.has_closed_form_normal = isinstance(physics, deepinv.physics.DecomposablePhysics)
        self._zero_y: dict = {}

    def forward(self, x: Tensor) -> Tensor:
        return self.physics.A(x)

    def adjoint(self, y: Tensor) -> Tensor:
        return self.physics.A_adjoint(y)

    def _gram_forward(self, x: Tensor) -> Tensor:
        return self.physics.A_adjoint_A(x)

    def _closed_normal(self, b: Tensor, rho: float) -> Tensor | None:
        if not self.has_closed_form_normal:
            return None
        # deepinv: prox_l2(z, y, gamma) solves (A^T A + 1/gamma) x = A^T y + z / gamma
        key = (tuple(b.shape), b.dtype, b.device)
        if key not in self._zero_y:
            self._zero_y[key] = torch.zeros_like(self.physics.A(b))
        return self.physics.prox_l2(b / rho, self._zero_y[key], 1.0 / rho)

    def __repr__(self) -> str:
        return f"from_deepinv({type(self.physics).__name__})"


def from_deepinv(physics, *, in_shape: Shape | None = None) -> LinearOperator:
    """Wrap any ``deepinv.physics.LinearPhysics`` as a :class:`LinearOperator`.

    Parameters
    ----------
    physics : deepinv.physics.LinearPhysics
        The physics.
    in_shape : tuple of int, optional
        ``(B, C, H, W)`` input shape.

    Returns
    -------
    LinearOperator
        See :class:`DeepinvOperator`.
    """
    return DeepinvOperator(physics, in_shape=in_shape)


@functools.lru_cache(maxsize=None)
def _physics_class():
    from deepinv.physics import LinearPhysics

    class StablePnPPhysics(LinearPhysics):
        """deepinv ``LinearPhysics`` backed by a stable-pnp :class:`LinearOperator`.

        ``A``/``A_adjoint`` call the operator, ``prox_l2`` uses ``operator.solve_normal``
        (closed form where available) and ``compute_norm`` uses ``operator.norm`` (deepinv's
        semantics: squared by default).
        """

        def __init__(self, operator: LinearOperator, noise_model=None) -> None:
            img_size = None if operator.in_shape is None else tuple(operator.in_shape[1:])
            kwargs = {} if noise_model is None else {"noise_model": noise_model}
            super().__init__(img_size=img_size, **kwargs)
            self.operator = operator

        def A(self, x, **kwargs):
            return self.operator.forward(x)

        def A_adjoint(self, y, **kwargs):
            return self.operator.adjoint(y)

        def A_adjoint_A(self, x, **kwargs):
            return self.operator._gram_forward(x)

        def prox_l2(self, z, y, gamma, **kwargs):
            if isinstance(gamma, Tensor):
                if gamma.numel() != 1:
                    return super().prox_l2(z, y, gamma, **kwargs)
                gamma = float(gamma)
            b = self.operator.adjoint(y)
            if z is not None and not (isinstance(z, (int, float)) and z == 0):
                b = b + z / gamma
            tol = kwargs.get("tol") or 1e-6
            max_iter = kwargs.get("max_iter") or 500
            return self.operator.solve_normal(b, 1.0 / gamma, x0=None, tol=tol, max_iter=max_iter)

        def compute_norm(self, x0, max_iter=100, tol=1e-3, verbose=False, squared=True, **kwargs):
            n = self.operator.norm(tuple(x0.shape))
            return torch.tensor(n**2 if squared else n, dtype=x0.dtype, device=x0.device)

    return StablePnPPhysics


def to_deepinv(op: LinearOperator, *, noise_model=None):
    """Export a :class:`LinearOperator` as a ``deepinv.physics.LinearPhysics``.

    Parameters
    ----------
    op : LinearOperator
        The operator.
    noise_model : deepinv.physics.NoiseModel, optional
        deepinv noise model used by ``physics(x)`` (none by default).

    Returns
    -------
    deepinv.physics.LinearPhysics
        Physics whose ``A``/``A_adjoint`` call ``op``; ``prox_l2`` solves through
        ``op.solve_normal`` and ``compute_norm`` returns ``op.norm()**2`` (deepinv's convention,
        ``squared=False`` for the norm itself).

    Examples
    --------
    >>> import torch
    >>> from operators import Blur, gaussian, to_deepinv
    >>> phys = to_deepinv(Blur(gaussian(1.0)))
    >>> phys.A(torch.rand(1, 1, 16, 16)).shape
    torch.Size([1, 1, 16, 16])
    """
    if not isinstance(op, LinearOperator):
        raise TypeError(f"op must be a LinearOperator, got {type(op).__name__}")
    return _physics_class()(op, noise_model=noise_model)
