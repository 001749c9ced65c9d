"""Runtime diagnostics: residuals, divergence detection, objective monotonicity.

These are the checks a run performs while it iterates, complementing the a-priori
:func:`pnp.assumptions.check_assumptions`.

Divergence is detected on the *absolute* step length ``d_k = ‖x_{k+1} − x_k‖``: under a
geometric blow-up ``x_k ≈ c ρ^k v`` the relative residual ``d_k / ‖x_k‖`` settles to the
constant ``|ρ − 1|`` and never grows, whereas ``d_k`` grows like ``ρ^k``. A run is declared
divergent when ``d_k`` exceeds ``factor`` times the smallest step length seen in the last
``window`` iterations (floored at ``sqrt(eps) ‖x_k‖`` so that rounding noise at
convergence never triggers it). With the defaults (``window=100``, ``factor=1e3``) a geometric
blow-up is caught when it grows faster than ``1e3^(1/100) ≈ 1.072`` per iteration; slower
growth shows in the history and ends in an overflow (status ``"diverged"``) or NaN
(status ``"nan"``) if it persists.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

# re-exported: the one PSNR of the project (per image, peak 1.0)
from problems.metrics import psnr

__all__ = [
    "relative_residual",
    "psnr",
    "DivergenceMonitor",
    "DivergenceReport",
    "MonotonicityCheck",
    "MonotonicityReport",
]


def _norm(x: Tensor) -> float:
    return float(torch.linalg.vector_norm(x.detach()))


def relative_residual(x_new: Tensor, x_old: Tensor, *, old_norm: float | None = None) -> tuple[float, float, float]:
    """Return ``(‖x_new − x_old‖ / ‖x_old‖, ‖x_new − x_old‖, ‖x_new‖)``.

    When ``x_old`` is zero the denominator falls back to ``‖x_new‖`` (and the residual is
    0 when both are zero). ``old_norm`` saves recomputing ``‖x_old‖`` when it is known.

    Examples
    --------
    >>> import torch
    >>> relative_residual(torch.ones(1, 1, 2, 2) * 1.1, torch.ones(1, 1, 2, 2))[0]  # doctest: +ELLIPSIS
    0.1000...
    """
    d = _norm(x_new - x_old)
    n_old = _norm(x_old) if old_norm is None else old_norm
    n_new = _norm(x_new)
    denom = n_old if n_old > 0 else n_new
    if denom == 0 or not math.isfinite(denom):
        rel = 0.0 if d == 0 else (math.inf if math.isfinite(d) else d)
    else:
        rel = d / denom
    return rel, d, n_new


# ---------------------------------------------------------------------- divergence
@dataclass(frozen=True)
class DivergenceReport:
    """Why a run was declared divergent."""

    iteration: int
    step_length: float
    reference: float
    factor: float
    window: int

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"diverged at iteration {self.iteration}: step length {self.step_length:.3g} is more than "
            f"{self.factor:g}x the smallest step length ({self.reference:.3g}) of the last {self.window} iterations"
        )


class DivergenceMonitor:
    """Detects a blow-up from the sequence of step lengths ``‖x_{k+1} − x_k‖``.

    Parameters
    ----------
    window : int
        Number of past iterations whose smallest step length is the reference.
    factor : float
        Growth factor over that reference that counts as divergence.

    Examples
    --------
    >>> m = DivergenceMonitor(window=10, factor=100.0)
    >>> [m.update(k, 2.0**k, x_norm=2.0**k, eps=2.2e-16) is not None for k in range(1, 10)]
    [False, False, False, False, False, False, False, True, True]
    """

    def __init__(self, *, window: int = 100, factor: float = 1e3) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 2:
            raise ValueError(f"divergence window must be an integer >= 2, got {window!r}")
        if not (isinstance(factor, (int, float)) and factor > 1):
            raise ValueError(f"divergence factor must be > 1, got {factor!r}")
        self.window = window
        self.factor = float(factor)
        self._past: deque[float] = deque(maxlen=window)

    def reset(self) -> None:
        """Forget the past step lengths (call before a new run)."""
        self._past.clear()

    def update(self, iteration: int, step_length: float, *, x_norm: float, eps: float) -> DivergenceReport | None:
        """Record one step length; return a report when divergence is detected."""
        report = None
        if self._past:
            floor = math.sqrt(eps) * x_norm
            reference = max(min(self._past), floor)
            if reference > 0 and step_length > self.factor * reference:
                report = DivergenceReport(iteration, step_length, reference, self.factor, self.window)
        self._past.append(step_length)
        return report


# ---------------------------------------------------------------------- monotonicity
@dataclass(frozen=True)
class MonotonicityReport:
    """Result of the objective-monotonicity check.

    Parameters
    ----------
    checked : bool
        Whether the check applied (PGD on a convex problem inside the step bound).
    holds : bool
        No increase beyond ``rtol`` was seen (True when not checked).
    violations : tuple of (int, float)
        ``(iteration, relative increase)`` for every violation.
    rtol : float
        Relative tolerance: an increase ``F_k − F_{k−1} > rtol · max(|F_{k−1}|, tiny)`` counts.
    reason : str
        Why the check was (not) applied.
    """

    checked: bool
    holds: bool
    violations: tuple[tuple[int, float], ...] = ()
    rtol: float = 0.0
    reason: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["violations"] = [list(v) for v in self.violations]
        return d


@dataclass
class MonotonicityCheck:
    """Accumulates objective values and records increases beyond ``rtol``.

    Forward–backward with step ``τ < 2/L`` (and relaxation ``λ <= 1``) decreases the
    objective at every iteration: ``F(x_{k+1}) <= F(x_k) − (1/τ − L/2) ‖x_{k+1} − x_k‖²``
    (Beck & Teboulle 2009, Lemma 2.3; Bauschke–Combettes Thm 28.8 setting). Small increases
    of the order of the prox tolerance can appear when the prox is iterative.

    Examples
    --------
    >>> m = MonotonicityCheck(rtol=1e-6)
    >>> for k, F in enumerate([3.0, 2.0, 2.5, 1.0]):
    ...     m.update(k, F)
    >>> m.report().violations
    ((2, 0.25),)
    """

    rtol: float = 1e-6
    reason: str = "PGD on a convex problem with step < 2/L"
    _last: float | None = None
    _violations: list[tuple[int, float]] = field(default_factory=list)

    def update(self, iteration: int, value: float) -> None:
        """Record ``F`` at ``iteration``."""
        if self._last is not None and math.isfinite(value) and math.isfinite(self._last):
            scale = max(abs(self._last), 1e-30)
            rel = (value - self._last) / scale
            if rel > self.rtol:
                self._violations.append((iteration, rel))
        self._last = value

    def report(self) -> MonotonicityReport:
        return MonotonicityReport(
            checked=True,
            holds=not self._violations,
            violations=tuple(self._violations),
            rtol=self.rtol,
            reason=self.reason,
        )
