"""The bookkeeping of one :meth:`pnp.run.Algorithm.run`: history, PSNR, monotonicity check, progress bar.

Kept apart from the iteration loop so that the loop reads as the algorithm: step, check, record,
stop. :func:`predicted_total` is what the progress bar's total (hence its ETA) follows.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from problems.metrics import psnr

from pnp.diagnostics import MonotonicityCheck, MonotonicityReport
from pnp.stopping import AllOf, AnyOf, StoppingCriterion, Tolerance

__all__ = ["RunLog", "predicted_total"]


def _tolerance_of(criterion: StoppingCriterion) -> float | None:
    """The residual tolerance a criterion stops at (the largest one in a composition), if any."""
    if isinstance(criterion, Tolerance):
        return criterion.tol
    if isinstance(criterion, (AnyOf, AllOf)):
        tols = [t for t in (_tolerance_of(c) for c in criterion.criteria) if t is not None]
        return max(tols) if tols else None
    return None


def predicted_total(residuals: list[float], tol: float | None, max_iter: int | None, *, window: int = 20) -> int | None:
    """Iterations a run is expected to take: where the residual's recent geometric decay reaches ``tol``.

    The rate is measured on the running minimum of the residual over the last ``window``
    iterations (Anderson residuals zigzag); without a tolerance or a measurable decay the
    answer is ``max_iter``. This is what the progress bar's total (hence its ETA) follows,
    instead of promising the time to ``max_iter`` for a run that stops at ``tol``.

    Examples
    --------
    >>> predicted_total([10.0 ** -k for k in range(1, 8)], 1e-10, 1000)
    10
    """
    n = len(residuals)
    if tol is None or n < 3:
        return max_iter
    best: list[float] = []
    for r in residuals[-(window + 1):]:
        best.append(min(r, best[-1]) if best else r)
    span = len(best) - 1
    if not (best[0] > 0 and best[-1] > 0 and math.isfinite(best[0]) and math.isfinite(best[-1])):
        return max_iter
    slope = (math.log(best[-1]) - math.log(best[0])) / span
    if best[-1] <= tol:
        return n
    if slope >= 0:
        return max_iter
    total = n + math.ceil(math.log(tol / best[-1]) / slope - 1e-9)
    return total if max_iter is None else min(total, max_iter)


class RunLog:
    """History and live checks of one run.

    Parameters
    ----------
    algorithm : pnp.run.Algorithm
        The running algorithm (its ``objective``, ``_monotone_expected``, ``history_entries``).
    x0 : Tensor
        The starting image (the monotonicity check's first value).
    truth : Tensor or None
        Ground truth for the PSNR history (default: the algorithm's problem's truth, if any).
    criterion : StoppingCriterion
        The run's stopping rule (the progress bar's total and tolerance).
    progress : bool
        Show a tqdm progress bar.
    monotone_rtol : float
        Relative tolerance of the objective-monotonicity check.
    """

    def __init__(self, algorithm: Any, x0: Tensor, *, truth: Tensor | None, criterion: StoppingCriterion,
                 progress: bool, monotone_rtol: float) -> None:
        from tqdm.auto import tqdm

        self.algorithm = algorithm
        problem = algorithm.problem
        self._problem_psnr = False
        if truth is None and problem is not None:
            truth = getattr(problem, "truth", None)
            self._problem_psnr = truth is not None and callable(getattr(problem, "psnr", None))
        self.truth = truth
        self.history: dict[str, list[float]] = {"residual": [], "time": []}
        self.record_objective = algorithm.has_objective
        if self.record_objective:
            self.history["objective"] = []
        if truth is not None:
            self.history["psnr"] = []
        expected, self.why = algorithm._monotone_expected()
        if algorithm.acceleration is not None:
            self.history["anderson"] = []  # the policy's step codes and applications of the map
            self.history["evaluations"] = []
            if expected:
                expected, self.why = False, "an accelerated run does not decrease the objective monotonically"
        self.mono = MonotonicityCheck(rtol=monotone_rtol, reason=self.why) if (
            expected and self.record_objective) else None
        if self.mono is not None:
            f0 = algorithm.objective(x0)
            if f0 is not None:
                self.mono.update(0, f0)
        self.progress = progress
        self.criterion = criterion
        self.bar_tol = _tolerance_of(criterion)
        self.bar = tqdm(total=criterion.max_iterations, desc=algorithm.name, disable=not progress, leave=False,
                        dynamic_ncols=True)

    def _psnr(self, x: Tensor) -> float:
        if self._problem_psnr:
            return float(self.algorithm.problem.psnr(x))
        return float(psnr(x, self.truth).mean())  # the problem's score: per-image PSNR averaged over the batch

    def record(self, k: int, state: Any, step: Any, rel: float, elapsed: float) -> dict[str, float]:
        """Append iteration ``k`` (``state`` the algorithm's state, ``step`` the policy's if accelerated)."""
        record: dict[str, float] = {"residual": rel, "time": elapsed}
        self.history["residual"].append(rel)
        self.history["time"].append(elapsed)
        if self.record_objective:
            F = getattr(state, "objective", None)  # a state that already evaluated F(x) carries it
            F = self.algorithm.objective(state.x) if F is None else F
            self.history["objective"].append(F)
            record["objective"] = F
            if self.mono is not None:
                self.mono.update(k, F)
        if self.truth is not None:
            record["psnr"] = self._psnr(state.x)
            self.history["psnr"].append(record["psnr"])
        if step is not None:
            self.history["anderson"].append(step.last)
            self.history["evaluations"].append(float(step.evaluations))
        for key, value in self.algorithm.history_entries(state).items():
            self.history.setdefault(key, []).append(value)
        return record

    def show(self, k: int, rel: float, record: dict[str, float]) -> None:
        """Advance the progress bar (its total follows the predicted stop at the tolerance)."""
        if not self.progress:
            return
        post = {"res": f"{rel:.2e}"}
        if self.truth is not None:
            post["psnr"] = f"{record['psnr']:.2f}"
        self.bar.set_postfix(post, refresh=False)
        total = predicted_total(self.history["residual"], self.bar_tol, self.criterion.max_iterations)
        if total is not None and total != self.bar.total:
            self.bar.total = max(total, k)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()

    def monotone_report(self) -> MonotonicityReport:
        """The monotonicity check's report (``checked=False`` when theory expects no decrease)."""
        if self.mono is not None:
            return self.mono.report()
        return MonotonicityReport(checked=False, holds=True, reason=self.why)
