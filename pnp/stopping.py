"""Composable stopping criteria.

A criterion looks at an :class:`IterationInfo` after each iteration and either returns
None (keep going) or the status the run ends with. Criteria compose with ``|`` (stop
when either fires) and ``&`` (stop when both fire; the left operand names the status)::

    stop = MaxIter(500) | Tolerance(1e-6) | TimeLimit(30.0)
    stop = (Tolerance(1e-6) & MinIter(20)) | MaxIter(500)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "IterationInfo",
    "StoppingCriterion",
    "MaxIter",
    "MinIter",
    "Tolerance",
    "TimeLimit",
    "AnyOf",
    "AllOf",
    "default_criterion",
    "tolerance_of",
]


@dataclass(frozen=True)
class IterationInfo:
    """What a criterion sees after an iteration.

    Parameters
    ----------
    iteration : int
        Number of completed iterations (1 after the first).
    residual : float
        Relative fixed-point residual of the last iteration.
    seconds : float
        Wall-clock time since the start of the run.
    """

    iteration: int
    residual: float
    seconds: float


class StoppingCriterion:
    """Base class: override :meth:`check`.

    Examples
    --------
    >>> stop = MaxIter(10) | Tolerance(1e-3)
    >>> stop.check(IterationInfo(iteration=4, residual=1e-4, seconds=0.1))
    'converged'
    >>> stop.check(IterationInfo(iteration=4, residual=1e-2, seconds=0.1)) is None
    True
    """

    def check(self, info: IterationInfo) -> str | None:
        """Return None to continue, or the final status."""
        raise NotImplementedError

    @property
    def max_iterations(self) -> int | None:
        """Upper bound on the number of iterations, when one is known (for progress bars)."""
        return None

    def __or__(self, other: "StoppingCriterion") -> "AnyOf":
        _check_criterion(other)
        return AnyOf(self, other)

    def __and__(self, other: "StoppingCriterion") -> "AllOf":
        _check_criterion(other)
        return AllOf(self, other)


def _check_criterion(obj: object) -> None:
    if not isinstance(obj, StoppingCriterion):
        raise TypeError(f"stopping criteria compose only with StoppingCriterion, got {type(obj).__name__}")


class MaxIter(StoppingCriterion):
    """Stop after ``n`` iterations with status ``"max_iter"``.

    Examples
    --------
    >>> MaxIter(3).check(IterationInfo(3, 1.0, 0.0))
    'max_iter'
    """

    def __init__(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"max_iter must be an integer >= 1, got {n!r}")
        self.n = n

    def check(self, info: IterationInfo) -> str | None:
        return "max_iter" if info.iteration >= self.n else None

    @property
    def max_iterations(self) -> int | None:
        return self.n

    def __repr__(self) -> str:
        return f"MaxIter({self.n})"


class MinIter(StoppingCriterion):
    """Fires once ``n`` iterations are done; meant for ``Tolerance(t) & MinIter(n)``.

    Alone it behaves like :class:`MaxIter` (status ``"max_iter"``).

    Examples
    --------
    >>> (Tolerance(1e-3) & MinIter(5)).check(IterationInfo(2, 1e-9, 0.0)) is None
    True
    """

    def __init__(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"MinIter n must be an integer >= 0, got {n!r}")
        self.n = n

    def check(self, info: IterationInfo) -> str | None:
        return "max_iter" if info.iteration >= self.n else None

    def __repr__(self) -> str:
        return f"MinIter({self.n})"


class Tolerance(StoppingCriterion):
    """Stop with status ``"converged"`` when the relative residual is ``<= tol``.

    Examples
    --------
    >>> Tolerance(1e-5).check(IterationInfo(7, 3e-6, 0.0))
    'converged'
    """

    def __init__(self, tol: float) -> None:
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(tol) or tol <= 0:
            raise ValueError(f"tol must be a positive float, got {tol!r}; pass tol=None to disable early stopping")
        self.tol = float(tol)

    def check(self, info: IterationInfo) -> str | None:
        return "converged" if info.residual <= self.tol else None

    def __repr__(self) -> str:
        return f"Tolerance({self.tol:g})"


class TimeLimit(StoppingCriterion):
    """Stop with status ``"time_limit"`` once ``seconds`` of wall-clock time have passed.

    Examples
    --------
    >>> TimeLimit(1.0).check(IterationInfo(7, 1.0, 2.5))
    'time_limit'
    """

    def __init__(self, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
            raise ValueError(f"time_limit must be a positive number of seconds, got {seconds!r}")
        self.seconds = float(seconds)

    def check(self, info: IterationInfo) -> str | None:
        return "time_limit" if info.seconds >= self.seconds else None

    def __repr__(self) -> str:
        return f"TimeLimit({self.seconds:g})"


class AnyOf(StoppingCriterion):
    """Stop when any operand fires; the first operand that fires names the status.

    Examples
    --------
    >>> AnyOf(MaxIter(2), Tolerance(1e-3)).check(IterationInfo(2, 1.0, 0.0))
    'max_iter'
    """

    def __init__(self, *criteria: StoppingCriterion) -> None:
        for c in criteria:
            _check_criterion(c)
        self.criteria = tuple(criteria)

    def check(self, info: IterationInfo) -> str | None:
        for c in self.criteria:
            s = c.check(info)
            if s is not None:
                return s
        return None

    @property
    def max_iterations(self) -> int | None:
        bounds = [c.max_iterations for c in self.criteria if c.max_iterations is not None]
        return min(bounds) if bounds else None

    def __repr__(self) -> str:
        return " | ".join(repr(c) for c in self.criteria)


class AllOf(StoppingCriterion):
    """Stop when every operand fires; the first operand names the status.

    Examples
    --------
    >>> AllOf(Tolerance(1e-3), MinIter(3)).check(IterationInfo(3, 1e-4, 0.0))
    'converged'
    """

    def __init__(self, *criteria: StoppingCriterion) -> None:
        for c in criteria:
            _check_criterion(c)
        self.criteria = tuple(criteria)

    def check(self, info: IterationInfo) -> str | None:
        statuses = [c.check(info) for c in self.criteria]
        if all(s is not None for s in statuses):
            return statuses[0]
        return None

    @property
    def max_iterations(self) -> int | None:
        bounds = [c.max_iterations for c in self.criteria if c.max_iterations is not None]
        return max(bounds) if bounds else None

    def __repr__(self) -> str:
        return "(" + " & ".join(repr(c) for c in self.criteria) + ")"


def default_criterion(
    max_iter: int | None = 300, tol: float | None = 1e-5, time_limit: float | None = None
) -> StoppingCriterion:
    """``MaxIter(max_iter) | Tolerance(tol) | TimeLimit(time_limit)``, skipping the None ones.

    Early stopping is on by default (``tol=1e-5``); ``tol=None`` turns it off.

    Examples
    --------
    >>> default_criterion(100, 1e-4)
    MaxIter(100) | Tolerance(0.0001)
    """
    parts: list[StoppingCriterion] = []
    if max_iter is not None:
        parts.append(MaxIter(max_iter))
    if tol is not None:
        parts.append(Tolerance(tol))
    if time_limit is not None:
        parts.append(TimeLimit(time_limit))
    if not parts:
        raise ValueError("max_iter, tol and time_limit are all None; give at least max_iter so the run ends")
    return AnyOf(*parts)


def tolerance_of(criterion: StoppingCriterion) -> float | None:
    """The residual tolerance a criterion stops at with status ``"converged"`` (the largest one in a
    composition), or None when it has no :class:`Tolerance`.

    The final verification of a run (:meth:`pnp.run.Algorithm.run`) checks the returned iterate
    against it.

    Examples
    --------
    >>> tolerance_of(MaxIter(10) | Tolerance(1e-4)), tolerance_of(MaxIter(10)) is None
    (0.0001, True)
    """
    if isinstance(criterion, Tolerance):
        return criterion.tol
    if isinstance(criterion, (AnyOf, AllOf)):
        tols = [t for t in (tolerance_of(c) for c in criterion.criteria) if t is not None]
        return max(tols) if tols else None
    return None
