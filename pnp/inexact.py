"""Inexact proximal steps: a summable tolerance schedule and the per-run record of inner errors.

An iterative prox (TV, or any prior whose ``exact_prox`` is False) returns an approximation
``x̃_k`` of ``prox(v_k)``. The outer theorems survive when the errors ``e_k = ‖x̃_k − prox(v_k)‖``
are summable:

* forward–backward (PGD, and HQS, which is forward–backward on a Moreau envelope):
  ``Σ e_k < ∞`` (Combettes & Wajs, Multiscale Model. Simul. 4, 2005, Thm 3.4);
* Douglas–Rachford / ADMM: ``Σ e_k < ∞`` (Eckstein & Bertsekas, Math. Program. 55, 1992,
  Thm 8; Combettes, Optimization 53, 2004);
* FISTA: ``Σ k e_k < ∞`` and ``Σ k sqrt(ε_k) < ∞`` for the O(1/k²) rate (Schmidt, Le Roux &
  Bach, NeurIPS 2011, Prop. 2; ``ε_k`` the inner objective gap, so ``sqrt(2 ε_k)`` is our bound).

The algorithm asks the prior for a *certified* bound ``b_k ≥ e_k`` below the schedule
``c ‖v_1‖ / k^p`` (``p = 1 + δ``, or ``2 + δ`` for FISTA, ``δ = 0.1``; ``v_1`` the first prox
input, so the schedule is invariant to the image scale; ``k`` counts prox calls of the run). Any
``c`` keeps the sum finite; ``c = 1`` lets the prior's own relative-change tolerance decide
the early inner solves, as it did before the schedule existed, while the schedule takes over
once it is the stricter of the two. The hypothesis is checked at every call: the first call
whose solver stops at its cap, or whose bound exceeds the schedule, withdraws the verdict
(a warning at that moment; the run goes on and its result says why it is not guaranteed).

Examples
--------
>>> s = default_schedule("PGD")
>>> round(s.bound(10, scale=1.0), 6)
0.079433
>>> default_schedule("FISTA").power
2.1
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from pnp.assumptions_registry import theory_named

__all__ = ["InexactSchedule", "InexactProxTracker", "default_schedule", "citation", "is_inexact", "reports_accuracy",
           "DELTA", "SCHEDULE_C", "CITATION_FORWARD_BACKWARD", "CITATION_ACCELERATED", "CITATION_ADMM", "CITATION_DRS"]

#: Exponent margin of the schedules: errors decay like 1/k^(1+DELTA) (1/k^(2+DELTA) for FISTA).
DELTA = 0.1
#: Constant of the schedules, relative to the norm of the first prox input.
SCHEDULE_C = 1.0

#: The theorems that allow summable inner errors; each algorithm's theory names the one it rests on
#: (``Theory.inexact_citation``), with the schedule exponent it needs (``Theory.inexact_power``).
CITATION_FORWARD_BACKWARD = "Combettes & Wajs 2005, Thm 3.4 (forward-backward with summable prox errors)"
CITATION_ACCELERATED = "Schmidt, Le Roux & Bach, NeurIPS 2011, Prop. 2 (accelerated: sum k e_k < inf)"
CITATION_ADMM = "Eckstein & Bertsekas 1992, Thm 8 (ADMM / Douglas-Rachford with summable errors)"
CITATION_DRS = "Eckstein & Bertsekas 1992, Thm 8 (Douglas-Rachford with summable errors)"


@dataclass(frozen=True)
class InexactSchedule:
    """Tolerance schedule ``b_k ≤ c · scale / k^power`` for the k-th inner prox error bound.

    Parameters
    ----------
    power : float
        Decay exponent; ``> 1`` makes the bounds summable (``> 2`` gives ``Σ k b_k < ∞``).
    c : float
        Constant, relative to ``scale`` (the norm of the first prox input).

    Examples
    --------
    >>> InexactSchedule(power=1.1).bound(1, scale=2.0)
    2.0
    """

    power: float
    c: float = SCHEDULE_C

    def __post_init__(self) -> None:
        if not (isinstance(self.power, (int, float)) and math.isfinite(self.power) and self.power > 1):
            raise ValueError(f"power must be a finite number > 1 (summable schedule), got {self.power!r}")
        if not (isinstance(self.c, (int, float)) and math.isfinite(self.c) and self.c > 0):
            raise ValueError(f"c must be a finite number > 0, got {self.c!r}")

    def bound(self, k: int, *, scale: float) -> float:
        """Largest allowed error bound at call ``k`` (1-based)."""
        return self.c * scale / float(k) ** self.power

    def describe(self) -> str:
        """``"c ‖v_1‖ / k^p"`` with the numbers."""
        return f"{self.c:g} ‖v_1‖ / k^{self.power:g}"


def _theory_of(algorithm: Any) -> Any:
    """The theorem of an algorithm given by name (registered), class or instance; or a theorem itself."""
    if isinstance(algorithm, str):
        return theory_named(algorithm)
    return getattr(algorithm, "theory", algorithm)


def default_schedule(algorithm: Any) -> InexactSchedule:
    """The schedule the theorem of ``algorithm`` needs: ``1/k^(2+δ)`` for FISTA, ``1/k^(1+δ)`` for the others.

    ``algorithm`` is a registered algorithm name (any case), an algorithm class or instance, or its
    :class:`pnp.assumptions.Theory`; the exponent is the theorem's ``inexact_power`` (the
    forward-backward one, ``1 + δ``, for a name nobody registered).
    """
    return InexactSchedule(power=float(getattr(_theory_of(algorithm), "inexact_power", 1.0 + DELTA)))


def citation(algorithm: Any) -> str:
    """The theorem that allows summable inner errors for ``algorithm`` (as for :func:`default_schedule`)."""
    return str(getattr(_theory_of(algorithm), "inexact_citation", CITATION_FORWARD_BACKWARD))


def is_inexact(prior: Any) -> bool:
    """A convex prior whose prox is computed iteratively (``convex`` and not ``exact_prox``)."""
    return bool(getattr(prior, "convex", False)) and not bool(getattr(prior, "exact_prox", True))


def reports_accuracy(prior: Any) -> bool:
    """The prior certifies its prox error: ``reports_accuracy`` (solves to a requested bound), or a
    certified ``last_prox_error`` after each solve (checked against the schedule, not driven by it)."""
    if not callable(getattr(prior, "prox_accuracy", None)):
        return False
    return bool(getattr(prior, "reports_accuracy", False)) or hasattr(prior, "last_prox_error")


@dataclass
class InexactProxTracker:
    """Calls an inexact prior along the schedule and records every inner solve of one run.

    Parameters
    ----------
    prior : Prior
        The inexact prior (``prox_accuracy(v, tau, target=...)``).
    schedule : InexactSchedule
        The bound asked of call ``k``.
    algorithm : str
        Name used in messages.

    Examples
    --------
    >>> import torch
    >>> from priors import TV
    >>> tr = InexactProxTracker(0.1 * TV(), default_schedule("PGD"), "PGD")
    >>> _ = tr.prox(torch.rand(1, 1, 16, 16), 1.0)
    >>> tr.calls, tr.violation is None
    (1, True)
    """

    prior: Any
    schedule: InexactSchedule
    algorithm: str = ""
    scale: float | None = None
    calls: int = 0
    bounds: list[float] = field(default_factory=list)
    targets: list[float] = field(default_factory=list)
    inner_iterations: list[int] = field(default_factory=list)
    violation: dict[str, Any] | None = None

    def reset(self) -> None:
        """Forget the previous run."""
        self.scale, self.calls, self.violation = None, 0, None
        self.bounds, self.targets, self.inner_iterations = [], [], []

    def prox(self, v: Tensor, tau: float) -> Tensor:
        """``prior.prox(v, tau)`` solved to this call's scheduled bound; records the outcome."""
        import torch

        if self.scale is None or self.scale == 0.0:
            self.scale = float(torch.linalg.vector_norm(v.detach()))
            if not math.isfinite(self.scale):  # a broken-down input: the run's NaN/overflow checks take over
                self.scale = None
        k = self.calls + 1
        target = math.inf if self.scale is None else self.schedule.bound(k, scale=self.scale)
        fn = getattr(self.prior, "prox_accuracy", None)
        if callable(fn):
            x, acc = fn(v, tau, target=target)
            bound, capped, inner = float(acc.error_bound), bool(acc.capped), int(acc.iterations)
        else:  # a duck-typed prior without accuracy: nothing is certified
            x, bound, capped, inner = self.prior.prox(v, tau), math.inf, False, 0
        self.calls = k
        self.bounds.append(bound)
        self.targets.append(target)
        self.inner_iterations.append(inner)
        if self.violation is None and (capped or not bound <= target):
            what = (f"the inner solver stopped at its iteration cap ({inner} iterations) with error bound {bound:.3g}"
                    if capped else f"the certified inner error bound {bound:.3g} exceeds the schedule {target:.3g}")
            self.violation = {"call": k, "error_bound": bound, "target": target, "capped": capped,
                              "inner_iterations": inner,
                              "reason": f"inner prox errors not summable as required: at iteration {k} {what} "
                                        f"({self.schedule.describe()})"}
            warnings.warn(f"{self.algorithm}: guarantee withdrawn at iteration {k}: {what} "
                          f"({self.schedule.describe()}); the run goes on without a guarantee", RuntimeWarning,
                          stacklevel=4)
        return x

    def summary(self) -> dict[str, Any]:
        """Plain-data record: schedule, calls, worst ratio bound/target, the violation if any."""
        ratios = [b / t for b, t in zip(self.bounds, self.targets) if t > 0]
        return {
            "schedule": self.schedule.describe(),
            "power": self.schedule.power,
            "c": self.schedule.c,
            "scale": self.scale,
            "calls": self.calls,
            "max_ratio": max(ratios) if ratios else None,
            "inner_iterations_total": sum(self.inner_iterations),
            "violation": None if self.violation is None else dict(self.violation),
            "per_call": {"error_bound": list(self.bounds), "target": list(self.targets),
                         "inner_iterations": list(self.inner_iterations)},
        }
