"""Adapters: deepinv physics <-> :class:`LinearOperator`, and any linear torch function as an operator.

Adding a new forward model
--------------------------
Write the forward model as a plain torch function of a ``(B, C, H, W)`` tensor and wrap it in
:class:`FunctionOperator`; the adjoint is derived by automatic differentiation (a vector-Jacobian
product), so there is nothing else to write. Check it with ``adjoint_test()``.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Callable

import torch
from torch import Tensor

from .base import LinearOperator, Shape
from .io import first_line

__all__ = ["FunctionOperator", "DeepinvOperator", "from_deepinv", "to_deepinv"]


class FunctionOperator(LinearOperator):
    """A linear torch function as a :class:`LinearOperator`; adjoint by autograd (VJP).

    For a linear ``fn``, the vector-Jacobian product at any point is ``v -> A^T v``, so the
    adjoint is ``torch.func.vjp(fn, 0)`` applied to ``v``. The VJP function is built once per
    (batch size, dtype, device) and reused (one extra forward pass the first time).

    ``fn`` must be linear (no bias, no clipping) and fixed: if it closes over parameters that
    you later modify, build a new operator. Linearity is not assumed: before a convergence theorem
    is applied, :meth:`~operators.base.LinearOperator.check_linearity` tests it (homogeneity,
    additivity, adjoint) on random inputs, and a function that fails (``x**2``, ``x + 1``, a
    ``x.detach()`` whose autograd adjoint is zero) gets "no guarantee" with the failing test named.

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
            try:
                with torch.enable_grad():
                    out, vjp_fn = torch.func.vjp(self.fn, torch.zeros(shape, dtype=dtype, device=device))
            except Exception as exc:  # e.g. fn leaves torch (numpy): autograd cannot derive its adjoint
                raise ValueError(f"{self!r}: the adjoint cannot be derived by automatic differentiation "
                                 f"({type(exc).__name__}: {first_line(exc)}); build fn from differentiable torch "
                                 "operations") from None
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


# complex dtype -> the real dtype of its parts
_REAL_PART = {torch.complex32: torch.float16, torch.complex64: torch.float32, torch.complex128: torch.float64}


def _physics_dtype(physics, name: str) -> torch.dtype | None:
    """The real dtype a deepinv physics computes in, or None when it holds no floating tensor.

    A declared ``physics.dtype`` (Tomography, CompressedSensing) wins; otherwise the promoted dtype
    of its floating buffers and parameters (complex ones count as their real part, e.g. the FFT of
    a float32 filter is complex64; deepinv's ``_device_holder`` placeholder does not count). A
    complex declared dtype is refused here.
    """
    declared = getattr(physics, "dtype", None)
    if isinstance(declared, torch.dtype):
        if declared.is_complex:
            raise ValueError(
                f"from_deepinv({name}): the physics is complex-valued ({declared}) but stable-pnp operators act on "
                "real images; build it with a real dtype (e.g. dtype=torch.float32)"
            )
        if declared.is_floating_point:
            return declared
    found = None
    for key, t in itertools.chain(physics.named_parameters(), physics.named_buffers()):
        if key.rsplit(".", 1)[-1] == "_device_holder":  # deepinv's float32 placeholder that tracks the device
            continue
        if t.is_complex():
            dt = _REAL_PART.get(t.dtype)
        elif t.is_floating_point():
            dt = t.dtype
        else:
            continue
        if dt is not None:
            found = dt if found is None else torch.promote_types(found, dt)
    return found


def _physics_device(physics) -> torch.device | None:
    for t in itertools.chain(physics.parameters(), physics.buffers()):
        return t.device
    return None


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    return a.index is None or b.index is None or a.index == b.index


def _declared_in_shape(physics, complex_images: bool, real_images: bool) -> Shape | None:
    """``(1, C, H, W)`` from what the physics declares (``img_size``, ``imsize``, ``img_width``), else None."""
    import deepinv

    size = getattr(physics, "img_size", None)
    if size is None and isinstance(physics, deepinv.physics.Downsampling):
        size = getattr(physics, "imsize", None)  # Downsampling keeps its declared size there
        if size is not None and isinstance(physics, deepinv.physics.Upsampling):
            factor = int(physics.factor)  # ... which for Upsampling is the size of the *output*
            size = (size[0], size[1] // factor, size[2] // factor)
    if size is not None and not isinstance(size, (str, int)):
        size = tuple(int(s) for s in size)
        if complex_images and len(size) == 2:  # the MRI family may declare (H, W) only
            size = (2, *size)
        if len(size) == 3:
            if real_images:  # the physics declares the 2-channel complex image
                size = (1, *size[1:])
            return (1, *size)
    width = getattr(physics, "img_width", None)
    if isinstance(width, int):  # deepinv's Tomography: square images, channel-wise (it assumes C = 1 itself)
        return (1, 1, width, width)
    return None


def _acts_on_complex_images(physics) -> bool:
    """True for deepinv's MRI family (complex images stored as 2 channels: real, imaginary)."""
    try:
        from deepinv.utils.mixins import MRIMixin
    except ImportError:  # pragma: no cover - older deepinv
        return False
    return isinstance(physics, MRIMixin)


class DeepinvOperator(LinearOperator):
    """A ``deepinv.physics.LinearPhysics`` seen as a :class:`LinearOperator` (use :func:`from_deepinv`).

    ``forward`` is ``physics.A`` and ``adjoint`` is ``physics.A_adjoint`` (the noise model is
    not used). For a ``deepinv.physics.DecomposablePhysics`` (e.g. ``BlurFFT``) the normal
    equations are solved in closed form through the physics' SVD-based ``prox_l2``.

    **Dtype and device.** The adapter computes in the physics' own dtype (:attr:`dtype`: its
    declared ``dtype`` or that of its buffers, e.g. float32 for deepinv's default filters) and on
    its device. A tensor of another dtype is refused with one line (deepinv would fail deep inside
    a convolution, or silently compute a float64 solve with float32 coefficients), unless the
    adapter was built with ``cast=True``: then inputs are cast to :attr:`dtype` on the way in and
    results back to the input's dtype on the way out, which is an explicit choice that the
    computation keeps the physics' precision. :meth:`norm` and :meth:`adjoint_test` always run in
    :attr:`dtype` whatever ``dtype`` they are asked for, with tolerances fitted to it (see
    :meth:`norm_rtol`). A physics without floating tensors (``dtype is None``) follows its input.

    **Shapes.** :attr:`in_shape` is taken from what the physics declares (``img_size``,
    Downsampling's ``imsize``, Tomography's ``img_width``), else from the first input, so
    ``A.norm()`` and ``A.adjoint_test()`` need no shape after ``A(x)``. Measurements that are not
    ``(B, C, H, W)`` (CompressedSensing's ``(B, m)``) are viewed as ``(B, 1, 1, m)`` so that they fit
    :class:`~problems.InverseProblem`; the adjoint reshapes them back (a reshape is an isometry, so the
    adjoint stays exact).

    **Complex images.** deepinv's MRI family stores a complex image as two real channels (real,
    imaginary). ``real_images=True`` restricts it to real images: ``x -> A [x; 0]`` on
    ``(B, 1, H, W)``, whose adjoint keeps the real channel of ``A^T y``. ``real_images=False`` works
    on the 2-channel image. Physics with complex dtypes or complex measurements are refused, and so
    are stacked measurements (a ``TensorList``) and, in :meth:`norm`, a pair whose
    ``<v, A_adjoint(A v)>`` is negative (``A_adjoint`` is then not the adjoint of ``A``).

    Parameters
    ----------
    physics : deepinv.physics.LinearPhysics
        The physics to wrap.
    in_shape : tuple of int, optional
        ``(B, C, H, W)``; inferred as described above when omitted.
    cast : bool
        Cast inputs of another dtype to :attr:`dtype` (and results back) instead of refusing them.
    real_images : bool, optional
        Required for the MRI family (see above); must stay None for other physics.

    Attributes
    ----------
    dtype : torch.dtype or None
        The dtype the physics computes in (None: it follows the input).
    device : torch.device or None
        The device of the physics' tensors (None: it holds none).

    Examples
    --------
    >>> import deepinv
    >>> from operators import from_deepinv
    >>> phys = deepinv.physics.BlurFFT((1, 16, 16), filter=torch.ones(1, 1, 3, 3) / 9)
    >>> A = from_deepinv(phys)
    >>> A.dtype, A.in_shape
    (torch.float32, (1, 1, 16, 16))
    >>> A.adjoint_test() < 1e-5  # float32: a correct adjoint gives about 1e-7
    True
    >>> A(torch.rand(1, 1, 16, 16, dtype=torch.float64))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: from_deepinv(BlurFFT).forward: input is torch.float64 but the physics computes in torch.float32; ...
    >>> from_deepinv(phys, cast=True)(torch.rand(1, 1, 16, 16, dtype=torch.float64)).dtype
    torch.float64
    """

    def __init__(
        self, physics, *, in_shape: Shape | None = None, cast: bool = False, real_images: bool | None = None
    ) -> None:
        import deepinv

        if not isinstance(physics, deepinv.physics.Physics):
            raise TypeError(f"physics must be a deepinv.physics.LinearPhysics, got {type(physics).__name__}")
        name = type(physics).__name__
        if not isinstance(physics, deepinv.physics.LinearPhysics):
            raise ValueError(
                f"from_deepinv({name}): not a deepinv LinearPhysics (a nonlinear forward model); "
                "stable-pnp operators are linear maps with an exact adjoint"
            )
        complex_images = _acts_on_complex_images(physics)
        if complex_images and real_images is None:
            raise ValueError(
                f"from_deepinv({name}): the physics acts on complex images stored as 2 channels (real, imaginary); "
                "pass real_images=True to reconstruct a real (B, 1, H, W) image or real_images=False for the "
                "2-channel one"
            )
        if real_images is not None and not complex_images:
            raise ValueError(
                f"from_deepinv({name}): real_images is only for physics acting on complex images "
                "(deepinv's MRI family); this one acts on real images, leave it unset"
            )
        self.name = name
        self.real_images = bool(real_images)
        self.cast = bool(cast)
        self.dtype = _physics_dtype(physics, name)
        self.device = _physics_device(physics)
        if in_shape is None:
            in_shape = _declared_in_shape(physics, complex_images, self.real_images)
        super().__init__(in_shape=in_shape)
        self.physics = physics
        self.has_closed_form_normal = (
            isinstance(physics, deepinv.physics.DecomposablePhysics) and not self.real_images
        )
        self._native_out: tuple[int, ...] | None = None  # physics.A's output shape without the batch
        self._zero_y: dict = {}

    # ---------------------------------------------------------------- boundaries
    def _prepare(self, t: Tensor, what: str) -> tuple[Tensor, torch.dtype | None]:
        """Check ``t`` against the physics' dtype and device (or cast it); return it and the dtype to give back."""
        if not isinstance(t, Tensor):
            raise TypeError(f"{self!r}.{what}: expected a torch.Tensor, got {type(t).__name__}")
        if t.is_complex():
            raise ValueError(f"{self!r}.{what}: complex input ({t.dtype}); stable-pnp operators act on real tensors")
        if self.device is not None and not _same_device(t.device, self.device):
            raise ValueError(
                f"{self!r}.{what}: input is on {t.device} but the physics is on {self.device}; move one of them"
            )
        if self.dtype is None or t.dtype == self.dtype:
            return t, None
        if not self.cast:
            raise ValueError(
                f"{self!r}.{what}: input is {t.dtype} but the physics computes in {self.dtype}; pass {self.dtype} "
                "tensors, or build with from_deepinv(physics, cast=True) to cast at the boundary (the "
                "computation keeps the physics' precision)"
            )
        return t.to(self.dtype), t.dtype

    def _note_input(self, x: Tensor) -> None:
        if self.in_shape is None and x.ndim == 4:
            self.in_shape = (1, *(int(s) for s in x.shape[1:]))

    def _to_physics_input(self, x: Tensor) -> Tensor:
        return torch.cat([x, torch.zeros_like(x)], dim=1) if self.real_images else x

    def _from_physics_image(self, x: Tensor) -> Tensor:
        return x[:, :1] if self.real_images else x

    def _measurement(self, y) -> Tensor:
        if not isinstance(y, Tensor):
            raise ValueError(
                f"from_deepinv({self.name}): the physics returns a {type(y).__name__} (stacked measurements), not one "
                "tensor; wrap each of its component physics separately"
            )
        if y.is_complex():
            raise ValueError(
                f"from_deepinv({self.name}): the physics returned complex measurements ({y.dtype}) but stable-pnp "
                "operators are real; use a real-valued version of this physics"
            )
        if self._native_out is None:
            self._native_out = tuple(int(s) for s in y.shape[1:])
        return y if y.ndim == 4 else y.reshape(y.shape[0], 1, 1, -1)

    def _physics_measurement(self, y: Tensor) -> Tensor:
        if self._native_out is None:  # adjoint before any forward: learn the measurement shape once
            if self.in_shape is None:
                raise ValueError(
                    f"{self!r}.adjoint: the measurement shape is unknown; apply the operator once or pass in_shape"
                )
            probe = torch.zeros(self.in_shape, dtype=self.dtype or y.dtype, device=self.device or y.device)
            with torch.no_grad():
                self._measurement(self.physics.A(self._to_physics_input(probe)))
        if len(self._native_out) == 3:
            return y
        return y.reshape(y.shape[0], *self._native_out)

    # ---------------------------------------------------------------- application
    def forward(self, x: Tensor) -> Tensor:
        x_in, back = self._prepare(x, "forward")
        self._note_input(x)
        y = self._measurement(self.physics.A(self._to_physics_input(x_in)))
        return y if back is None else y.to(back)

    def adjoint(self, y: Tensor) -> Tensor:
        y_in, back = self._prepare(y, "adjoint")
        x = self._from_physics_image(self.physics.A_adjoint(self._physics_measurement(y_in)))
        return x if back is None else x.to(back)

    def _gram_forward(self, x: Tensor) -> Tensor:
        x_in, back = self._prepare(x, "gram")
        self._note_input(x)
        z = self._from_physics_image(self.physics.A_adjoint_A(self._to_physics_input(x_in)))
        return z if back is None else z.to(back)

    def _closed_normal(self, b: Tensor, rho: float) -> Tensor | None:
        if not self.has_closed_form_normal:
            return None
        b_in, back = self._prepare(b, "solve_normal")
        # deepinv: prox_l2(z, y, gamma) solves (A^T A + 1/gamma) x = A^T y + z / gamma
        key = (tuple(b_in.shape), b_in.dtype, b_in.device)
        if key not in self._zero_y:
            with torch.no_grad():
                self._zero_y[key] = torch.zeros_like(self.physics.A(b_in))
        x = self.physics.prox_l2(b_in / rho, self._zero_y[key], 1.0 / rho)
        return x if back is None else x.to(back)

    # ---------------------------------------------------------------- diagnostics
    def _work_dtype(self, requested: torch.dtype | None) -> torch.dtype:
        return self.dtype or requested or torch.float64

    def _check_dtype(self, dtype: torch.dtype | None) -> torch.dtype:
        # check_linearity runs in the physics' own dtype, as norm() and adjoint_test() do
        return self._work_dtype(dtype)

    @staticmethod
    def _fitted_tol(tol: float, dtype: torch.dtype) -> float:
        # Rayleigh quotients carry a rounding noise of a few eps: a tighter stopping test would never
        # trigger and would run to max_iter.
        return max(float(tol), 100.0 * torch.finfo(dtype).eps)

    def norm_rtol(self, tol: float = 1e-7, dtype: torch.dtype | None = None) -> float:
        """The relative accuracy :meth:`norm` states for these arguments: ``sqrt(tol')``.

        ``tol' = max(tol, 100 eps)`` in the working dtype (``1.2e-5`` in float32, so ``3.5e-3``).
        The norm is an upper estimate (Rayleigh quotient plus eigen-residual plus a rounding
        allowance) that exceeds ``||A||`` by at most about this fraction.
        """
        return self._fitted_tol(tol, self._work_dtype(dtype)) ** 0.5

    def norm(
        self,
        shape: Shape | None = None,
        *,
        tol: float = 1e-7,
        max_iter: int = 5000,
        dtype: torch.dtype | None = None,
    ) -> float:
        """Spectral norm ``||A||`` by power iteration in the physics' dtype, on its device.

        As :meth:`LinearOperator.norm`, except that the computation runs in :attr:`dtype` (the
        ``dtype`` argument only applies to a physics without one; float64 by default), with the
        relative tolerance raised to ``max(tol, 100 eps)`` of that dtype, and with a rounding
        allowance of ``8 eps sqrt(n)`` (``n`` entries) added to the estimate of ``||A||²``. See
        :meth:`norm_rtol` for the accuracy this states.
        """
        work = self._work_dtype(dtype)
        return super().norm(shape, tol=self._fitted_tol(tol, work), max_iter=max_iter, dtype=work)

    def _rounding_allowance(self, shape: Shape, dtype: torch.dtype, mu: float) -> float:
        # the physics computes in its own (often single) precision: 8 eps sqrt(n) on ||A||^2
        return 8.0 * torch.finfo(dtype).eps * math.sqrt(math.prod(shape)) * abs(mu)

    def _not_adjoint_message(self, mu: float) -> str:
        return (f"{self!r}.norm: <v, A_adjoint(A(v))> = {mu:.3g} < 0, so the physics' A_adjoint is not the "
                "adjoint of its A (check adjoint_test()); no norm can be certified")

    def adjoint_test(
        self, shape: Shape | None = None, *, dtype: torch.dtype | None = None, seed: int = 0
    ) -> float:
        """Relative adjointness error, in the physics' dtype (see :meth:`LinearOperator.adjoint_test`).

        A correct adjoint gives about ``1e-7`` in float32 and ``1e-16`` in float64; ``dtype`` only
        applies to a physics without one (float64 by default).
        """
        shape = self._resolve_shape(shape, "adjoint_test")
        work = self._work_dtype(dtype)
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(shape, generator=gen, dtype=work).to(self.device or "cpu")
        with torch.no_grad():
            ax = self.forward(x)
            y = torch.randn(ax.shape, generator=gen, dtype=work).to(ax.device)
            aty = self.adjoint(y)
        if aty.shape != x.shape:
            raise ValueError(
                f"adjoint_test: adjoint returned shape {tuple(aty.shape)}, expected {tuple(x.shape)}"
            )
        lhs, rhs = torch.sum(ax * y), torch.sum(x * aty)
        denom = torch.linalg.vector_norm(ax) * torch.linalg.vector_norm(y)
        err = torch.abs(lhs - rhs)
        return float(err / denom) if denom > 0 else float(err)

    def __repr__(self) -> str:
        return f"from_deepinv({self.name})"


def from_deepinv(
    physics, *, in_shape: Shape | None = None, cast: bool = False, real_images: bool | None = None
) -> LinearOperator:
    """Wrap any ``deepinv.physics.LinearPhysics`` as a :class:`LinearOperator`.

    Parameters
    ----------
    physics : deepinv.physics.LinearPhysics
        The physics. A nonlinear physics, a complex dtype or complex measurements are refused
        (``ValueError``, one line naming the physics).
    in_shape : tuple of int, optional
        ``(B, C, H, W)`` input shape (default: declared by the physics, else the first input's).
    cast : bool
        Accept inputs of another dtype, computing in the physics' dtype (see :class:`DeepinvOperator`).
    real_images : bool, optional
        For deepinv's MRI family: True restricts it to real images, False keeps 2-channel complex ones.

    Returns
    -------
    LinearOperator
        See :class:`DeepinvOperator`.

    Examples
    --------
    >>> import deepinv, torch
    >>> from operators import from_deepinv
    >>> A = from_deepinv(deepinv.physics.Downsampling(img_size=(1, 16, 16), factor=2, filter="bicubic"))
    >>> A.in_shape, A.dtype
    ((1, 1, 16, 16), torch.float32)
    >>> A.adjoint_test() < 1e-5
    True
    """
    return DeepinvOperator(physics, in_shape=in_shape, cast=cast, real_images=real_images)


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
