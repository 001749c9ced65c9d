"""Linear operators on image tensors of shape ``(B, C, H, W)`` and their algebra.

A :class:`LinearOperator` is a callable with an exact adjoint. Operators combine like
matrices::

    A.T            # adjoint (also A.H; real operators only)
    A @ B          # composition x -> A(B(x))
    A + B, A - B   # sums
    2.0 * A, -A    # scalar multiples
    A.gram()       # A.T @ A, specialised where that is cheaper

``A @ x`` with a tensor ``x`` is refused on purpose: apply an operator with ``A(x)``.

Every operator also provides

* :meth:`LinearOperator.norm` -- the spectral norm ``||A||`` (never its square), exact where a
  closed form exists, otherwise by power iteration, cached per ``(shape, dtype)``;
* :meth:`LinearOperator.adjoint_test` -- the *relative* adjointness error;
* :meth:`LinearOperator.solve_normal` -- the solution of ``(A^T A + rho I) x = b``, in closed
  form where :attr:`LinearOperator.has_closed_form_normal` is true, by conjugate gradient otherwise.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import torch
from torch import Tensor

# conjugate gradient, power iteration and the adjoint test live in .linalg (conjugate_gradient and
# Shape stay importable from here)
from .linalg import Shape, adjoint_error, as_shape, conjugate_gradient, power_iteration

__all__ = [
    "LinearOperator",
    "AdjointOperator",
    "ComposedOperator",
    "SumOperator",
    "ScaledOperator",
    "GramOperator",
    "conjugate_gradient",
]

class LinearOperator:
    """A real linear map between tensors, with its exact adjoint.

    Subclasses implement :meth:`forward` and :meth:`adjoint`; they may override
    :meth:`_exact_norm` (closed-form norm), :meth:`_closed_normal` (closed-form solution of the
    normal equations, then set ``has_closed_form_normal = True``) and :meth:`_gram_forward`.

    Parameters
    ----------
    in_shape : tuple of int, optional
        The ``(B, C, H, W)`` input shape when the operator is built for one image size.
    out_shape : tuple of int, optional
        The output shape, when known.

    Attributes
    ----------
    in_shape, out_shape : tuple of int or None
        Shapes, when fixed.
    has_closed_form_normal : bool
        True when :meth:`solve_normal` is exact (no iterative solver).
    has_closed_form_normal_adjoint : bool
        Same for ``A.T`` (i.e. for ``(A A^T + rho I) x = b``).
    shape_preserving : bool
        True when the output always has the shape of the input (blur, mask, identity).

    Examples
    --------
    >>> import torch
    >>> from operators import Blur, Identity, gaussian
    >>> A = Blur(gaussian(1.0))
    >>> M = 2.0 * A.T @ A + Identity()
    >>> M(torch.rand(1, 1, 16, 16)).shape
    torch.Size([1, 1, 16, 16])
    >>> round(A.norm((1, 1, 16, 16)), 6)
    1.0
    """

    has_closed_form_normal: bool = False
    has_closed_form_normal_adjoint: bool = False
    shape_preserving: bool = False
    #: True on a class whose forward/adjoint pair the project's tests check (tests/test_hypotheses.py runs
    #: :meth:`check_linearity` on every such class), so that a theorem trusts it without the runtime
    #: test. Only the class that sets it counts: a subclass, which may change forward or adjoint, is
    #: tested at run time again.
    verified_by_tests: bool = False
    # Operators are not arrays: keep numpy from hijacking ``ndarray * A``.
    __array_ufunc__ = None

    def __init__(self, *, in_shape: Shape | None = None, out_shape: Shape | None = None) -> None:
        self.in_shape = as_shape(in_shape)
        self.out_shape = as_shape(out_shape)
        self._norm_cache: dict = {}

    # ----------------------------------------------------------------- application
    def forward(self, x: Tensor) -> Tensor:
        """Apply the operator: ``A x``."""
        raise NotImplementedError

    def adjoint(self, y: Tensor) -> Tensor:
        """Apply the adjoint: ``A^T y``."""
        raise NotImplementedError

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)

    # -------------------------------------------------------------------- algebra
    @property
    def T(self) -> LinearOperator:
        """The adjoint operator ``A^T`` (an operator object)."""
        return AdjointOperator(self)

    @property
    def H(self) -> LinearOperator:
        """Same as :attr:`T` (all operators here are real)."""
        return self.T

    def __matmul__(self, other):
        if isinstance(other, LinearOperator):
            return ComposedOperator(self, other)
        if isinstance(other, Tensor):
            raise TypeError("A @ x is not supported for tensors: apply the operator with A(x)")
        return NotImplemented

    def __rmatmul__(self, other):
        if isinstance(other, Tensor):
            raise TypeError("x @ A is not supported: use A.T(x) for the adjoint")
        return NotImplemented

    def __add__(self, other):
        if isinstance(other, LinearOperator):
            return SumOperator(self, other)
        return NotImplemented

    def __sub__(self, other):
        if isinstance(other, LinearOperator):
            return SumOperator(self, ScaledOperator(-1.0, other))
        return NotImplemented

    def __neg__(self):
        return ScaledOperator(-1.0, self)

    def __mul__(self, c):
        if isinstance(c, numbers.Real) and not isinstance(c, bool):
            return ScaledOperator(float(c), self)
        return NotImplemented

    __rmul__ = __mul__

    def __truediv__(self, c):
        if isinstance(c, numbers.Real) and not isinstance(c, bool):
            return ScaledOperator(1.0 / float(c), self)
        return NotImplemented

    def gram(self) -> LinearOperator:
        """Return ``A^T A`` as an operator (specialised where cheaper, e.g. one FFT pass)."""
        return GramOperator(self)

    def _gram_forward(self, x: Tensor) -> Tensor:
        return self.adjoint(self.forward(x))

    # --------------------------------------------------------------- diagnostics
    def _resolve_shape(self, shape, what: str) -> Shape:
        shape = as_shape(shape) if shape is not None else self.in_shape
        if shape is None:
            raise ValueError(
                f"{what}: shape is required for {type(self).__name__} (no in_shape): "
                "pass shape=(B, C, H, W)"
            )
        return shape

    def _exact_norm(self, shape: Shape | None, dtype: torch.dtype) -> float | None:
        """Closed-form ``||A||`` for input shape ``shape``, or None when there is none."""
        return None

    def norm(
        self,
        shape: Shape | None = None,
        *,
        tol: float = 1e-7,
        max_iter: int = 5000,
        dtype: torch.dtype = torch.float64,
    ) -> float:
        """Spectral norm ``||A||_2`` (the largest singular value; never its square).

        Exact where a closed form exists (circular blur by FFT: the maximum of ``|K^|`` over the
        FFT grid of the image; masks; identity; scalar multiples of those). Otherwise power
        iteration on ``A^T A`` from a seeded random start, in ``dtype``, until the Rayleigh
        quotient ``mu`` changes by less than ``tol * mu`` between iterations (or ``max_iter``).

        Safety margin: power iteration under-estimates. The value returned is
        ``sqrt(mu + ||r||)`` with ``r = A^T A v - mu v`` the eigen-residual of the unit iterate
        ``v``. Some eigenvalue of ``A^T A`` lies in ``[mu - ||r||, mu + ||r||]`` (Krylov-Bogoliubov
        bound), so once the iterate has settled on the top eigenspace the result is an upper
        bound; in practice the over-estimate is below ``sqrt(tol)`` relative (about 3e-4 at the
        default ``tol``).

        Results are cached per ``(shape, dtype)``.

        Parameters
        ----------
        shape : tuple of int, optional
            ``(B, C, H, W)`` input shape; defaults to :attr:`in_shape`.
        tol : float
            Relative tolerance of the power iteration.
        max_iter : int
            Maximum number of power iterations.
        dtype : torch.dtype
            Precision of the computation.

        Returns
        -------
        float
            ``||A||``.
        """
        shape = as_shape(shape) if shape is not None else self.in_shape
        key = (shape, dtype, tol)
        if key in self._norm_cache:
            return self._norm_cache[key]
        value = self._exact_norm(shape, dtype)
        if value is None:
            shape = self._resolve_shape(shape, "norm")
            value = self._power_norm(shape, tol=tol, max_iter=max_iter, dtype=dtype)
        value = self._finite_norm(value)
        self._norm_cache[key] = value
        return value

    def _finite_norm(self, value) -> float:
        """``value`` as a float once it is finite; a NaN or infinite ``||A||`` is refused in one line."""
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{self!r}.norm() is {value}: the operator or its adjoint produces NaN or Inf, so no "
                             "step bound can be derived from it; check the operator's weights and its forward/adjoint")
        return value

    def _power_norm(self, shape: Shape, *, tol: float, max_iter: int, dtype: torch.dtype) -> float:
        found = power_iteration(self._gram_forward, shape, tol=tol, max_iter=max_iter, dtype=dtype,
                                device=getattr(self, "device", None), not_adjoint=self._not_adjoint_message)
        if found is None:
            return 0.0
        mu, res = found
        return math.sqrt(max(float(mu + res) + self._rounding_allowance(shape, dtype, float(mu)), 0.0))

    def _rounding_allowance(self, shape: Shape, dtype: torch.dtype, mu: float) -> float:
        """Extra margin added to the estimate of ``||A||^2`` for rounding (none: float64 by default)."""
        return 0.0

    def _not_adjoint_message(self, mu: float) -> str:
        return (f"{self!r}.norm: <v, A^T(A(v))> = {mu:.3g} < 0, so the adjoint is not the adjoint of A "
                "(check adjoint_test()); no norm can be certified")

    def adjoint_test(
        self, shape: Shape | None = None, *, dtype: torch.dtype = torch.float64, seed: int = 0
    ) -> float:
        """Relative adjointness error ``|<Ax, y> - <x, A^T y>| / (||Ax|| ||y||)``.

        ``x`` and ``y`` are standard normal (seeded). Scale invariant, unlike an absolute test:
        a correct adjoint gives about ``1e-16`` in float64 and ``1e-7`` in float32.

        Parameters
        ----------
        shape : tuple of int, optional
            ``(B, C, H, W)`` input shape; defaults to :attr:`in_shape`.
        dtype : torch.dtype
            Precision of the test.
        seed : int
            Seed of the random vectors.

        Returns
        -------
        float
            The relative error (0 when ``Ax`` or ``y`` vanish and the inner products agree).
        """
        shape = self._resolve_shape(shape, "adjoint_test")
        return adjoint_error(self.forward, self.adjoint, shape, dtype=dtype, seed=seed)

    # ------------------------------------------------------- linearity (theorem hypotheses)
    def _parts(self) -> tuple[LinearOperator, ...]:
        """The operators this one is built from (compositions, sums, scalings); none for a leaf."""
        return ()

    def _verified_by_tests(self) -> bool:
        """Whether this very class declares :attr:`verified_by_tests` and so do all its parts."""
        return bool(type(self).__dict__.get("verified_by_tests", False)) and all(
            p._verified_by_tests() for p in self._parts())

    def _check_dtype(self, dtype: torch.dtype | None) -> torch.dtype:
        """The dtype :meth:`check_linearity` runs in when ``dtype`` is asked for (float64 by default)."""
        return dtype or torch.float64

    def check_linearity(self, shape: Shape | None = None, *, dtype: torch.dtype | None = None, seed: int = 0,
                        force: bool = False):
        """Whether ``A`` is linear and :meth:`adjoint` its adjoint: the hypotheses every theorem needs.

        An operator whose class (and every part) declares :attr:`verified_by_tests` is trusted
        without a test, unless ``force``. Otherwise a seeded randomised test
        (:func:`operators.checks.linearity_check`: homogeneity, additivity, two relative adjoint
        tests, tolerance ``1000 eps`` of the dtype), then ``||A||`` must be finite. The outcome is
        cached on the instance per ``(shape, dtype, seed)``; a failure is returned, not raised (a
        theorem then lacks its hypothesis), except a NaN ``||A||``, which :meth:`norm` refuses.

        Returns
        -------
        operators.checks.LinearityCheck

        Examples
        --------
        >>> from operators import FunctionOperator
        >>> r = FunctionOperator(lambda x: x + 1, in_shape=(1, 1, 8, 8), name="shift").check_linearity()
        >>> r.holds, r.failure.split(":")[0]
        (False, 'FunctionOperator(shift, in_shape=(1, 1, 8, 8)) is not linear')
        """
        from .checks import LinearityCheck, linearity_check, linearity_tolerance

        shape = self._resolve_shape(shape, "check_linearity")
        work = self._check_dtype(dtype)
        if not force and self._verified_by_tests():
            return LinearityCheck(operator=repr(self), holds=True, tol=linearity_tolerance(work),
                                  dtype=str(work).replace("torch.", ""), verified_by_tests=True)
        cache = self.__dict__.setdefault("_linearity_cache", {})
        key = (shape, work, int(seed))
        if key not in cache:
            result = linearity_check(self.forward, self.adjoint, shape, dtype=work, device=getattr(self, "device", None),
                                     seed=seed, name=repr(self))
            if result.holds:
                result = dataclasses.replace(result, norm=self.norm(shape))
            cache[key] = result
        return cache[key]

    # ------------------------------------------------------------ normal equations
    def _closed_normal(self, b: Tensor, rho: float) -> Tensor | None:
        """Exact solution of ``(A^T A + rho I) x = b``, or None when there is no closed form."""
        return None

    def _closed_normal_adjoint(self, b: Tensor, rho: float) -> Tensor | None:
        """Exact solution of ``(A A^T + rho I) x = b``, or None (used by ``A.T``)."""
        return None

    def solve_normal(
        self,
        b: Tensor,
        rho: float,
        *,
        x0: Tensor | None = None,
        tol: float = 1e-6,
        max_iter: int = 500,
    ) -> Tensor:
        """Solve ``(A^T A + rho I) x = b``.

        Closed form when :attr:`has_closed_form_normal` (circular blur by FFT, masks, identity,
        scalar multiples of those); otherwise conjugate gradient to relative residual ``tol``.

        Parameters
        ----------
        b : Tensor
            Right-hand side, shape of the operator's input.
        rho : float
            Positive shift.
        x0 : Tensor, optional
            Warm start for conjugate gradient.
        tol : float
            Relative residual tolerance of conjugate gradient.
        max_iter : int
            Maximum conjugate gradient iterations.

        Returns
        -------
        Tensor
            ``x``, shape of ``b``.
        """
        rho = float(rho)
        if not rho > 0 or not math.isfinite(rho):
            raise ValueError(f"solve_normal: rho must be a finite positive number, got {rho}")
        x = self._closed_normal(b, rho)
        if x is not None:
            return x
        return conjugate_gradient(
            lambda v: self._gram_forward(v) + rho * v, b, x0=x0, tol=tol, max_iter=max_iter
        )

    # ---------------------------------------------------------------------- misc
    def _infer_in_shape(self) -> Shape | None:
        return self.in_shape

    def __repr__(self) -> str:
        return f"{type(self).__name__}(in_shape={self.in_shape})"


class AdjointOperator(LinearOperator):
    """The adjoint ``A^T`` of an operator (returned by ``A.T``).

    Parameters
    ----------
    op : LinearOperator
        The operator to transpose.

    Examples
    --------
    >>> import torch
    >>> from operators import Blur, box
    >>> A = Blur(box(3), boundary="zero")
    >>> A.T.T is A
    True
    """

    verified_by_tests = True  # exact when op is (its parts are checked)

    def __init__(self, op: LinearOperator) -> None:
        super().__init__(in_shape=op.out_shape, out_shape=op.in_shape)
        if op.shape_preserving and op.in_shape is not None:
            self.in_shape = self.out_shape = op.in_shape
        self.op = op
        self.shape_preserving = op.shape_preserving
        self.has_closed_form_normal = op.has_closed_form_normal_adjoint
        self.has_closed_form_normal_adjoint = op.has_closed_form_normal

    def forward(self, x: Tensor) -> Tensor:
        return self.op.adjoint(x)

    def adjoint(self, y: Tensor) -> Tensor:
        return self.op.forward(y)

    def _parts(self) -> tuple[LinearOperator, ...]:
        return (self.op,)

    @property
    def T(self) -> LinearOperator:
        return self.op

    def _gram_forward(self, x: Tensor) -> Tensor:
        return self.op.forward(self.op.adjoint(x))

    def _exact_norm(self, shape, dtype):
        if self.op.shape_preserving:
            return self.op._exact_norm(shape, dtype)
        if shape is None:
            return self.op._exact_norm(None, dtype)
        return None

    def _closed_normal(self, b, rho):
        return self.op._closed_normal_adjoint(b, rho)

    def _closed_normal_adjoint(self, b, rho):
        return self.op._closed_normal(b, rho)

    def __repr__(self) -> str:
        return f"{self.op!r}.T"


class ComposedOperator(LinearOperator):
    """The composition ``A @ B: x -> A(B(x))`` (returned by ``A @ B``).

    Parameters
    ----------
    outer, inner : LinearOperator
        ``A`` and ``B``.

    Examples
    --------
    >>> import torch
    >>> from operators import Blur, Inpainting, box
    >>> mask = torch.ones(8, 8); mask[2:4] = 0
    >>> A = Inpainting(mask) @ Blur(box(3))
    >>> A(torch.ones(1, 1, 8, 8))[0, 0, 2, 0].item()
    0.0
    """

    def __init__(self, outer: LinearOperator, inner: LinearOperator) -> None:
        in_shape = inner.in_shape
        if in_shape is None and inner.shape_preserving:
            in_shape = outer.in_shape
        out_shape = outer.out_shape
        if out_shape is None and outer.shape_preserving:
            out_shape = inner.out_shape or (in_shape if inner.shape_preserving else None)
        super().__init__(in_shape=in_shape, out_shape=out_shape)
        self.outer, self.inner = outer, inner
        self.shape_preserving = outer.shape_preserving and inner.shape_preserving

    verified_by_tests = True  # exact when its parts are

    def _parts(self) -> tuple[LinearOperator, ...]:
        return (self.outer, self.inner)

    def forward(self, x: Tensor) -> Tensor:
        return self.outer.forward(self.inner.forward(x))

    def adjoint(self, y: Tensor) -> Tensor:
        return self.inner.adjoint(self.outer.adjoint(y))

    def _gram_forward(self, x: Tensor) -> Tensor:
        return self.inner.adjoint(self.outer._gram_forward(self.inner.forward(x)))

    def __repr__(self) -> str:
        return f"({self.outer!r} @ {self.inner!r})"


class SumOperator(LinearOperator):
    """The sum ``A + B`` of two operators with the same input and output shapes.

    Parameters
    ----------
    left, right : LinearOperator
        The two terms.

    Examples
    --------
    >>> import torch
    >>> from operators import Identity
    >>> (Identity() + Identity())(torch.ones(1, 1, 2, 2)).flatten().tolist()
    [2.0, 2.0, 2.0, 2.0]
    """

    def __init__(self, left: LinearOperator, right: LinearOperator) -> None:
        super().__init__(
            in_shape=left.in_shape or right.in_shape, out_shape=left.out_shape or right.out_shape
        )
        self.left, self.right = left, right
        self.shape_preserving = left.shape_preserving and right.shape_preserving

    verified_by_tests = True  # exact when its parts are

    def _parts(self) -> tuple[LinearOperator, ...]:
        return (self.left, self.right)

    def forward(self, x: Tensor) -> Tensor:
        return self.left.forward(x) + self.right.forward(x)

    def adjoint(self, y: Tensor) -> Tensor:
        return self.left.adjoint(y) + self.right.adjoint(y)

    def __repr__(self) -> str:
        return f"({self.left!r} + {self.right!r})"


class ScaledOperator(LinearOperator):
    """A scalar multiple ``c * A`` (returned by ``c * A``, ``-A``, ``A / c``).

    Norm and normal equations are exact whenever they are for ``A``.

    Parameters
    ----------
    scale : float
        The scalar ``c``.
    op : LinearOperator
        The operator ``A``.

    Examples
    --------
    >>> from operators import Identity
    >>> (3.0 * Identity()).norm((1, 1, 4, 4))
    3.0
    """

    def __init__(self, scale: float, op: LinearOperator) -> None:
        if isinstance(op, ScaledOperator):
            scale, op = scale * op.scale, op.op
        super().__init__(in_shape=op.in_shape, out_shape=op.out_shape)
        self.scale = float(scale)
        self.op = op
        self.shape_preserving = op.shape_preserving
        self.has_closed_form_normal = op.has_closed_form_normal or self.scale == 0.0
        self.has_closed_form_normal_adjoint = op.has_closed_form_normal_adjoint or self.scale == 0.0

    verified_by_tests = True  # exact when op is

    def _parts(self) -> tuple[LinearOperator, ...]:
        return (self.op,)

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * self.op.forward(x)

    def adjoint(self, y: Tensor) -> Tensor:
        return self.scale * self.op.adjoint(y)

    def _gram_forward(self, x: Tensor) -> Tensor:
        return self.scale**2 * self.op._gram_forward(x)

    def _exact_norm(self, shape, dtype):
        n = self.op._exact_norm(shape, dtype)
        return None if n is None else abs(self.scale) * n

    def norm(self, shape=None, *, tol=1e-7, max_iter=5000, dtype=torch.float64) -> float:
        if self.scale == 0.0:
            return 0.0
        return self._finite_norm(abs(self.scale) * self.op.norm(shape, tol=tol, max_iter=max_iter, dtype=dtype))

    def _closed_normal(self, b, rho):
        # (c^2 A^T A + rho) x = b  <=>  (A^T A + rho / c^2) x = b / c^2
        if self.scale == 0.0:
            return b / rho
        c2 = self.scale**2
        return self.op._closed_normal(b / c2, rho / c2)

    def _closed_normal_adjoint(self, b, rho):
        if self.scale == 0.0:
            return b / rho
        c2 = self.scale**2
        return self.op._closed_normal_adjoint(b / c2, rho / c2)

    def __repr__(self) -> str:
        return f"{self.scale} * {self.op!r}"


class GramOperator(LinearOperator):
    """``A^T A`` as a self-adjoint operator (returned by ``A.gram()``).

    Uses the operator's specialised ``A^T A`` (e.g. a single FFT pass for a circular blur).

    Parameters
    ----------
    op : LinearOperator
        The operator ``A``.

    Examples
    --------
    >>> from operators import Blur, gaussian
    >>> G = Blur(gaussian(1.0)).gram()
    >>> round(G.norm((1, 1, 16, 16)), 6)
    1.0
    """

    def __init__(self, op: LinearOperator) -> None:
        super().__init__(in_shape=op.in_shape, out_shape=op.in_shape)
        self.op = op
        self.shape_preserving = True

    verified_by_tests = True  # exact when op is

    def _parts(self) -> tuple[LinearOperator, ...]:
        return (self.op,)

    def forward(self, x: Tensor) -> Tensor:
        return self.op._gram_forward(x)

    adjoint = forward

    def _exact_norm(self, shape, dtype):
        n = self.op._exact_norm(shape, dtype)
        return None if n is None else n**2

    def norm(self, shape=None, *, tol=1e-7, max_iter=5000, dtype=torch.float64) -> float:
        return self.op.norm(shape, tol=tol, max_iter=max_iter, dtype=dtype) ** 2

    def __repr__(self) -> str:
        return f"gram({self.op!r})"
