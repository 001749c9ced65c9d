"""Argument checks shared by the data terms (``operators.fidelity``) and the priors (``priors``), and the
randomised test of linearity and adjointness behind :meth:`operators.base.LinearOperator.check_linearity`.

It lives here because ``priors`` may import ``operators`` but never the other way round.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .io import first_line

__all__ = ["check_tau", "LinearityCheck", "linearity_check", "linearity_tolerance"]


def check_tau(tau: float, *, allow_zero: bool = True) -> float:
    """``tau``, a prox step, as a finite float: ``>= 0`` (``allow_zero``) or ``> 0``; else a one-line error.

    A prior's prox at ``tau = 0`` is the identity, so priors accept it; a data term's prox
    divides by ``tau`` and asks for ``allow_zero=False``. A one-element tensor is accepted.

    Examples
    --------
    >>> check_tau(0.5)
    0.5
    >>> check_tau(0.0, allow_zero=False)
    Traceback (most recent call last):
        ...
    ValueError: tau must be finite and > 0, got 0.0
    """
    if isinstance(tau, Tensor):
        if tau.numel() != 1:
            raise ValueError("tau must be a scalar; pass a float step")
        tau = float(tau)
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real):
        raise TypeError(f"tau must be a float, got {type(tau).__name__}")
    t = float(tau)
    if not math.isfinite(t) or t < 0 or (t == 0 and not allow_zero):
        raise ValueError(f"tau must be finite and {'>=' if allow_zero else '>'} 0, got {tau!r}")
    return t


# ---------------------------------------------------------------------------- linearity and adjointness
def linearity_tolerance(dtype: torch.dtype) -> float:
    """The relative tolerance of :func:`linearity_check` in ``dtype``: ``1000 eps``, at most ``1e-2``.

    ``1.2e-4`` in float32 and ``2.2e-13`` in float64: a linear operator with its exact adjoint stays
    a few ``eps`` (times a logarithm of the size) below it, a wrong adjoint or a nonlinear map is
    far above it.

    Examples
    --------
    >>> linearity_tolerance(torch.float32), linearity_tolerance(torch.float64)  # doctest: +ELLIPSIS
    (0.000119..., 2.22...e-13)
    """
    return min(1e3 * float(torch.finfo(dtype).eps), 1e-2)


@dataclass(frozen=True)
class LinearityCheck:
    """Outcome of the randomised test of an operator ``A`` and its adjoint ``A*`` (see :func:`linearity_check`).

    Attributes
    ----------
    operator : str
        The operator's ``repr``.
    holds : bool
        ``A`` is linear and ``A*`` its adjoint within ``tol`` (or the class is verified by the tests).
    tol : float
        The relative tolerance (:func:`linearity_tolerance` of the dtype).
    dtype : str
        The dtype of the test.
    homogeneity, additivity, adjoint : float or None
        The relative errors measured (None when not measured).
    norm : float or None
        ``‖A‖`` (finite) when it was computed.
    failure : str
        Empty when ``holds``; else the hypothesis that fails, with its number.
    verified_by_tests : bool
        The operator's class declares itself checked by the project's tests; nothing was measured.
    """

    operator: str
    holds: bool
    tol: float
    dtype: str
    homogeneity: float | None = None
    additivity: float | None = None
    adjoint: float | None = None
    norm: float | None = None
    failure: str = ""
    verified_by_tests: bool = False

    @property
    def worst(self) -> float | None:
        """The largest relative error measured (None when nothing was measured)."""
        vals = [v for v in (self.homogeneity, self.additivity, self.adjoint) if v is not None]
        return max(vals) if vals else None

    @property
    def detail(self) -> str:
        """One line for a report: the failure, or what was checked and how."""
        if not self.holds:
            return self.failure
        if self.verified_by_tests:
            return f"{self.operator}: linear with its exact adjoint, verified by the project's tests"
        norm = "" if self.norm is None else f"; ‖A‖ = {self.norm:.6g}"
        return (f"{self.operator}: randomised test in {self.dtype}, relative errors homogeneity "
                f"{self.homogeneity:.2g}, additivity {self.additivity:.2g}, adjoint {self.adjoint:.2g} "
                f"<= {self.tol:.2g}{norm}")


def _norm(t: Tensor) -> float:
    return float(torch.linalg.vector_norm(t.detach().double()))


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return 0.0 if num == 0 else math.inf


def _inner(a: Tensor, b: Tensor) -> float:
    return float(torch.sum(a.detach().double() * b.detach().double()))


def linearity_check(forward: Callable[[Tensor], Tensor], adjoint: Callable[[Tensor], Tensor], shape: tuple, *,
                    dtype: torch.dtype, device: torch.device | str | None = None, seed: int = 0,
                    name: str = "A") -> LinearityCheck:
    """Test on seeded random inputs that ``forward`` is linear and ``adjoint`` its adjoint.

    With ``x``, ``z`` standard normal of shape ``shape``, ``y`` standard normal of the output's
    shape and ``a = -0.75``, the relative errors are

    * homogeneity ``‖A(a x) − a Ax‖ / (|a| ‖Ax‖)``;
    * additivity ``‖A(x + z) − Ax − Az‖ / (‖Ax‖ + ‖Az‖)``;
    * adjoint ``|<Ax, v> − <x, A*v>| / max(‖Ax‖ ‖v‖, ‖x‖ ‖A*v‖)`` for ``v = y`` and for ``v = Ax``
      (the second catches a scaled adjoint, which random ``y`` barely see in high dimension);

    each must be at most :func:`linearity_tolerance` of ``dtype``. An exception raised by either map,
    a non-finite output or an adjoint of the wrong shape fails the check (never propagates): the
    hypothesis is then missing, with the reason.

    Examples
    --------
    >>> ok = linearity_check(lambda x: 2 * x, lambda y: 2 * y, (1, 1, 4, 4), dtype=torch.float64)
    >>> ok.holds, ok.adjoint < 1e-15
    (True, True)
    >>> bad = linearity_check(lambda x: x ** 2, lambda y: y, (1, 1, 4, 4), dtype=torch.float64, name="sq")
    >>> bad.holds, bad.failure.split(":")[0]
    (False, 'sq is not linear')
    """
    tol = linearity_tolerance(dtype)
    label = str(dtype).replace("torch.", "")
    out = {"operator": name, "tol": tol, "dtype": label}

    def fail(text: str, **measured: float) -> LinearityCheck:
        return LinearityCheck(holds=False, failure=text, **out, **measured)

    gen = torch.Generator().manual_seed(int(seed))
    x = torch.randn(shape, generator=gen, dtype=dtype).to(device or "cpu")
    z = torch.randn(shape, generator=gen, dtype=dtype).to(device or "cpu")
    a = -0.75
    try:
        with torch.no_grad():
            ax, az, aax, axz = forward(x), forward(z), forward(a * x), forward(x + z)
    except Exception as exc:  # a forward that cannot run on a test input is no linear operator we can check
        return fail(f"{name} raised {type(exc).__name__} on a random input: {first_line(exc)}")
    if not all(isinstance(t, Tensor) for t in (ax, az, aax, axz)):
        return fail(f"{name} does not return a tensor")
    if not all(bool(torch.isfinite(t).all()) for t in (ax, az, aax, axz)):
        return fail(f"{name} gives NaN or Inf on a finite random input")
    hom = _ratio(_norm(aax - a * ax), abs(a) * _norm(ax))
    add = _ratio(_norm(axz - ax - az), _norm(ax) + _norm(az))
    if hom > tol or add > tol:
        which, what, value = ((f"‖A(ax) − a Ax‖/(|a| ‖Ax‖) = {hom:.2g}", "homogeneity", hom) if hom >= add else
                              (f"‖A(x+z) − Ax − Az‖/(‖Ax‖ + ‖Az‖) = {add:.2g}", "additivity", add))
        return fail(f"{name} is not linear: {which} > {tol:.2g} (randomised {what} test in {label})",
                    homogeneity=hom, additivity=add)
    y = torch.randn(ax.shape, generator=gen, dtype=ax.dtype).to(ax.device)
    try:
        with torch.no_grad():
            aty, atax = adjoint(y), adjoint(ax)
    except Exception as exc:
        return fail(f"the adjoint of {name} raised {type(exc).__name__}: {first_line(exc)}",
                    homogeneity=hom, additivity=add)
    for t in (aty, atax):
        if not isinstance(t, Tensor) or tuple(t.shape) != tuple(x.shape):
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            return fail(f"the adjoint of {name} returns {got}, not the input shape {tuple(x.shape)}",
                        homogeneity=hom, additivity=add)
        if not bool(torch.isfinite(t).all()):
            return fail(f"the adjoint of {name} gives NaN or Inf on a finite input", homogeneity=hom, additivity=add)
    errors = []
    for v, atv in ((y, aty), (ax, atax)):
        den = max(_norm(ax) * _norm(v), _norm(x) * _norm(atv))
        errors.append(_ratio(abs(_inner(ax, v) - _inner(x, atv)), den))
    adj = max(errors)
    if adj > tol:
        return fail(f"A* is not the adjoint of {name}: |<Ax, v> − <x, A*v>|/max(‖Ax‖ ‖v‖, ‖x‖ ‖A*v‖) = {adj:.2g} > "
                    f"{tol:.2g} (randomised test in {label})", homogeneity=hom, additivity=add, adjoint=adj)
    return LinearityCheck(holds=True, homogeneity=hom, additivity=add, adjoint=adj, **out)
