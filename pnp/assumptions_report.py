"""Assumption reports: hypotheses, verdicts and the arithmetic they share (re-exported by :mod:`pnp.assumptions`).

:class:`AssumptionReport` is what ``check_assumptions`` returns; :func:`withdraw` turns a
"guaranteed" report into "not guaranteed" when a hypothesis fails during a run;
:func:`compose_alpha` is the averagedness constant of a composition (Combettes & Yamada 2015).
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

__all__ = ["VERDICTS", "Hypothesis", "AssumptionReport", "compose_alpha", "withdraw", "fmt", "verdict_of",
           "BC17", "CY15", "KM_ITER"]

VERDICTS = ("guaranteed", "not guaranteed", "no guarantee")

#: citations shared by the theorems of pnp.assumptions_rules
BC17 = "Bauschke & Combettes, Convex Analysis and Monotone Operator Theory, 2nd ed. 2017"
CY15 = "Combettes & Yamada, J. Math. Anal. Appl. 425 (2015)"
KM_ITER = f"Krasnosel'skii-Mann iteration ({BC17}, Prop. 5.16)"


def compose_alpha(a1: float, a2: float) -> float:
    """Averagedness constant of ``T1 ∘ T2`` for ``a1``- and ``a2``-averaged maps.

    ``alpha = (a1 + a2 − 2 a1 a2) / (1 − a1 a2)`` (Combettes & Yamada 2015); equals 1 (merely
    nonexpansive) when either constant is 1.

    Examples
    --------
    >>> compose_alpha(0.5, 0.5)  # two firmly nonexpansive maps
    0.6666666666666666
    """
    for name, a in (("a1", a1), ("a2", a2)):
        if not (0.0 < a <= 1.0):
            raise ValueError(f"{name} must lie in (0, 1], got {a!r}")
    if a1 >= 1.0 or a2 >= 1.0:
        return 1.0
    return min((a1 + a2 - 2.0 * a1 * a2) / (1.0 - a1 * a2), 1.0)


@dataclass(frozen=True)
class Hypothesis:
    """One hypothesis of a theorem, checked.

    Parameters
    ----------
    name : str
        Short statement, e.g. ``"step < 2/L"``.
    holds : bool
        Whether it holds for this run.
    detail : str
        The numbers or the reason.
    value : float or None
        The checked quantity, when there is one.
    """

    name: str
    holds: bool
    detail: str = ""
    value: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        mark = "ok " if self.holds else "NO "
        return f"[{mark}] {self.name}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class AssumptionReport:
    """Which theorem applies and whether its hypotheses hold.

    Parameters
    ----------
    algorithm : str
        Algorithm name.
    verdict : str
        ``"guaranteed"``, ``"not guaranteed"`` or ``"no guarantee"``.
    theorem : str
        Name of the theorem with its citation (empty when none applies).
    hypotheses : tuple of Hypothesis
        Every hypothesis, with ``holds`` and a detail string.
    conclusion : str
        What the theorem gives when it applies (e.g. "iteration map is alpha-averaged ...").
    reason : str
        One line: why the verdict is not "guaranteed" (empty otherwise).
    alpha : float or None
        Composed averagedness constant of the iteration map, when relevant.
    relaxation_range : tuple of float or None
        Open interval of relaxation parameters the theorem allows.
    unsafe : bool
        A bound was overridden with ``unsafe=True``.
    params : Mapping
        The numbers checked (step, L, relaxation, ...).

    Examples
    --------
    >>> r = AssumptionReport(algorithm="PGD", verdict="guaranteed", theorem="FB",
    ...                      hypotheses=(Hypothesis("step < 2/L", True, "1 < 2"),))
    >>> r.ok
    True
    """

    algorithm: str
    verdict: str
    theorem: str
    hypotheses: tuple[Hypothesis, ...] = ()
    conclusion: str = ""
    reason: str = ""
    alpha: float | None = None
    relaxation_range: tuple[float, float] | None = None
    unsafe: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    @property
    def ok(self) -> bool:
        """True only for the verdict "guaranteed"."""
        return self.verdict == "guaranteed"

    @property
    def failed(self) -> tuple[Hypothesis, ...]:
        """The hypotheses that do not hold."""
        return tuple(h for h in self.hypotheses if not h.holds)

    def summary(self) -> str:
        """One line: algorithm, verdict, and the theorem or the reason."""
        s = f"{self.algorithm}: {self.verdict}"
        if self.verdict == "guaranteed":
            s += f" ({self.conclusion})" if self.conclusion else ""
        elif self.reason:
            s += f": {self.reason}"
        if self.unsafe:
            s += " [unsafe=True: run outside the convergence bound]"
        return s

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dictionary."""
        return {
            "algorithm": self.algorithm,
            "verdict": self.verdict,
            "theorem": self.theorem,
            "hypotheses": [h.to_dict() for h in self.hypotheses],
            "conclusion": self.conclusion,
            "reason": self.reason,
            "alpha": self.alpha,
            "relaxation_range": None if self.relaxation_range is None else list(self.relaxation_range),
            "unsafe": self.unsafe,
            "params": dict(self.params),
        }

    def __str__(self) -> str:
        lines = [self.summary()]
        if self.theorem:
            lines.append(f"  theorem: {self.theorem}")
        lines.extend(f"  {h}" for h in self.hypotheses)
        if self.alpha is not None:
            lines.append(f"  composed averagedness constant alpha = {self.alpha:.6g}")
        return "\n".join(lines)



def fmt(x: float | None) -> str:
    return "None" if x is None else f"{x:.6g}"


def withdraw(report: AssumptionReport, hypothesis: Hypothesis) -> AssumptionReport:
    """``report`` after ``hypothesis`` was found to fail during the run.

    A "guaranteed" verdict becomes "not guaranteed" with the hypothesis's detail as the reason;
    any other verdict keeps its reason. The hypothesis replaces the one of the same name (or is
    appended), so the report lists what failed.

    Examples
    --------
    >>> r = AssumptionReport("PGD", "guaranteed", "FB", (Hypothesis("inner prox errors summable", True),))
    >>> w = withdraw(r, Hypothesis("inner prox errors summable", False, "bound 1e-3 > schedule 1e-4"))
    >>> w.verdict, w.reason, len(w.hypotheses)
    ('not guaranteed', 'bound 1e-3 > schedule 1e-4', 1)
    """
    hyps = tuple(h for h in report.hypotheses if h.name != hypothesis.name) + (hypothesis,)
    if report.verdict != "guaranteed":
        return dataclasses.replace(report, hypotheses=hyps)
    return dataclasses.replace(report, verdict="not guaranteed", hypotheses=hyps, conclusion="",
                               reason=hypothesis.detail or hypothesis.name)



def verdict_of(hyps: list[Hypothesis]) -> tuple[str, str]:
    failed = [h for h in hyps if not h.holds]
    if not failed:
        return "guaranteed", ""
    h = failed[0]
    return "not guaranteed", (h.detail or h.name)

