"""The :class:`Algorithm` base class and the shared iteration loop :meth:`Algorithm.run`.

An algorithm is three small pieces over a typed, immutable state:

* ``init(x0) -> State`` builds the initial state;
* ``update(state) -> State`` performs one iteration (pure: it never mutates ``state``);
* ``state.x`` is the current image estimate.

:meth:`Algorithm.run` drives any algorithm: it records the relative fixed-point residual
``‖x_{k+1} − x_k‖ / ‖x_k‖`` every iteration, the objective when both terms have a value,
the PSNR when the truth is known, checks the objective's monotonicity where theory says it
must decrease, stops on divergence or NaN/Inf (returning the last finite iterate), and
applies composable stopping criteria (:mod:`pnp.stopping`).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor

from operators.fidelity import PenalizedFidelity
from priors.classical import Box
from problems.metrics import psnr

from pnp.assumptions import AssumptionReport, Theory, register_theory
from pnp.diagnostics import DivergenceMonitor, MonotonicityCheck, MonotonicityReport, relative_residual
from pnp.result import Result
from pnp.stopping import AllOf, AnyOf, IterationInfo, StoppingCriterion, Tolerance, default_criterion

__all__ = ["Algorithm", "DataFidelityLike", "PriorLike"]


@runtime_checkable
class DataFidelityLike(Protocol):
    """What the algorithms read from a data term (see ``operators.fidelity.DataFidelity``)."""

    def value(self, x: Tensor) -> Tensor: ...

    def grad(self, x: Tensor) -> Tensor: ...

    def prox(self, v: Tensor, tau: float) -> Tensor: ...

    def lipschitz_grad(self) -> float | None: ...


@runtime_checkable
class PriorLike(Protocol):
    """What the algorithms read from a prior (see :class:`priors.base.Prior`)."""

    def prox(self, v: Tensor, tau: float) -> Tensor: ...


_DEFAULT = object()


def _split_problem(obj: Any) -> tuple[Any, Any]:
    """Return ``(problem or None, fidelity)``."""
    fid = getattr(obj, "fidelity", None)
    if fid is not None and not callable(getattr(obj, "grad", None)):
        return obj, fid
    if callable(getattr(obj, "prox", None)) or callable(getattr(obj, "grad", None)):
        return None, obj
    raise TypeError(
        f"problem_or_fidelity must be an InverseProblem (with .fidelity) or a DataFidelity, got {type(obj).__name__}"
    )


def _check_prior(prior: Any) -> Any:
    if not callable(getattr(prior, "prox", None)):
        raise TypeError(
            f"prior must have prox(v, tau) (a priors.Prior), got {type(prior).__name__}; "
            "wrap a denoiser as priors.DenoiserPrior(denoiser, sigma=...)"
        )
    return prior


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


def _check_positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    return v


class Algorithm:
    """Base class of the solvers for ``min_x f(x) + g(x)`` (or their Plug-and-Play versions).

    Parameters
    ----------
    problem_or_fidelity : InverseProblem or DataFidelity
        The data term ``f`` (an :class:`problems.InverseProblem` also provides ``x0()`` and the
        truth for PSNR histories).
    prior : Prior
        The regulariser ``g`` (:class:`priors.base.Prior`, including ``DenoiserPrior``).
    step : float, optional
        Step size; the meaning and default are those of each algorithm's theory.
    relaxation : float
        Krasnosel'skii–Mann relaxation ``λ`` (``1.0`` = none).
    unsafe : bool
        Run settings outside the convergence bounds instead of refusing them; the
        :class:`Result` is then flagged ``unsafe``.
    accelerate : {None, "none", "anderson", "auto"} or pnp.acceleration.Anderson
        Stepping policy: safeguarded type-I Anderson acceleration of the iteration map
        (:mod:`pnp.acceleration`; PGD, HQS, DRS, ADMM). ``"anderson"`` is refused (unless
        ``unsafe``) where the plain run has no convergence theorem to keep; ``"auto"`` uses it
        exactly where it keeps one. The assumption report then names the safeguard.

    Subclasses implement :meth:`init`, :meth:`update` and :meth:`_resolve_step` and set the
    class attributes ``name``, ``theory`` (the :class:`pnp.assumptions.Theory` whose report
    :meth:`check_assumptions` returns and whose ``step_bound`` the step obeys), ``needs_grad``
    and ``needs_fidelity_prox``; :meth:`_theory_settings` adds any number the theorem needs.
    """

    name: ClassVar[str] = "algorithm"
    theory: ClassVar[Theory | None] = None
    needs_grad: ClassVar[bool] = False
    needs_fidelity_prox: ClassVar[bool] = False
    supports_relaxation: ClassVar[bool] = True
    #: gradient methods take a smooth prior into f (see __init__); proximal splittings use its prox
    absorbs_smooth_prior: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # pnp.check_assumptions("NAME", ...) finds the theory of the class that declares that name
        if "name" in cls.__dict__ and cls.theory is not None:
            register_theory(cls.name, cls.theory)

    def __init__(
        self,
        problem_or_fidelity: Any,
        prior: Any,
        *,
        step: float | None = None,
        relaxation: float = 1.0,
        unsafe: bool = False,
        accelerate: Any = None,
    ) -> None:
        self.problem, self.fidelity = _split_problem(problem_or_fidelity)
        self.prior = _check_prior(prior)
        self.smooth_prior = None
        if self.absorbs_smooth_prior and getattr(self.prior, "smooth", False) and getattr(self.fidelity, "smooth", False):
            # A smooth convex prior (value, grad, lipschitz_grad) joins the smooth part: the method
            # then runs gradient steps on f + g, whose step bound and objective are the true ones,
            # and the proximal part is zero (no inner prox solves).
            self.smooth_prior = self.prior
            self.fidelity = PenalizedFidelity(self.fidelity, self.prior)
            self.prior = Box(-math.inf, math.inf)
            self.prior.name = "zero"
        self.unsafe = bool(unsafe)
        self.relaxation = _check_positive("relaxation", relaxation)
        if not self.supports_relaxation and self.relaxation != 1.0:
            raise ValueError(f"relaxation: {self.name} has no relaxation parameter; leave relaxation=1.0")
        self._overrides: list[str] = []
        self._check_terms()
        lip = getattr(self.fidelity, "lipschitz_grad", None)
        L = lip() if callable(lip) else None
        self.L: float | None = None if L is None else float(L)
        if step is not None:
            step = _check_positive("step", step)
        self.step: float = self._resolve_step(step)
        self._assumptions: AssumptionReport = self._report()
        self._check_relaxation_bound()
        self.acceleration: Any = None
        self._set_acceleration(accelerate)

    # ------------------------------------------------------------------ to implement
    def init(self, x0: Tensor) -> Any:
        """Initial state from the starting image ``x0``."""
        raise NotImplementedError

    def update(self, state: Any) -> Any:
        """One iteration: return the next state (``state`` is not modified)."""
        raise NotImplementedError

    def _resolve_step(self, step: float | None) -> float:
        raise NotImplementedError

    def _theory_settings(self) -> dict[str, Any]:
        """The run's numbers passed to :meth:`pnp.assumptions.Theory.assess`."""
        return {"step": self.step, "relaxation": self.relaxation, "L": self.L, "unsafe": self.unsafe_used}

    def _report(self) -> AssumptionReport:
        if self.theory is None:
            return AssumptionReport(self.name, "no guarantee", "",
                                    reason=f"{self.name} declares no convergence theorem (class attribute theory)",
                                    unsafe=self.unsafe_used)
        return self.theory.assess(self.name, self.fidelity, self.prior, **self._theory_settings())

    def parameters(self) -> dict[str, Any]:
        """The iteration's parameters (recorded in :attr:`Result.params`)."""
        p: dict[str, Any] = {"algorithm": self.name, "step": self.step, "relaxation": self.relaxation,
                             "L": self.L, "prior": str(getattr(self.prior, "name", type(self.prior).__name__)),
                             "weight": getattr(self.prior, "weight", None)}
        for attr in ("sigma", "lam"):
            v = getattr(self.prior, attr, None)
            if isinstance(v, (int, float)):
                p[attr] = float(v)
        # denoiser priors: the noise level the denoiser runs at and the weight it implies
        for attr, key in (("sigma_eff", "sigma_eff"), ("implied_lam", "implied_lam")):
            fn = getattr(self.prior, attr, None)
            if callable(fn):
                try:
                    p[key] = float(fn(self.step))
                except (TypeError, ValueError):
                    pass
        return p

    # ------------------------------------------------------------------ checks
    def _check_terms(self) -> None:
        f = self.fidelity
        if self.needs_grad and not callable(getattr(f, "grad", None)):
            raise ValueError(
                f"fidelity: {self.name} needs fidelity.grad ({type(f).__name__} has none); use ADMM, DRS or HQS"
            )
        if self.needs_fidelity_prox and not (callable(getattr(f, "prox", None)) and getattr(f, "has_prox", True)):
            raise ValueError(
                f"fidelity: {self.name} needs fidelity.prox ({type(f).__name__} has has_prox=False); "
                "use PGD or FISTA with an explicit step"
            )

    def _refuse(self, message: str) -> None:
        """Raise ``message`` unless ``unsafe``; then remember the override."""
        if not self.unsafe:
            raise ValueError(f"{message}; pass unsafe=True to run anyway")
        self._overrides.append(message)

    def _check_relaxation_bound(self) -> None:
        rng = self._assumptions.relaxation_range
        if rng is None or not self.supports_relaxation:
            return
        lo, hi = rng
        if not (lo < self.relaxation < hi):
            alpha = self._assumptions.alpha
            self._refuse(
                f"relaxation {self.relaxation:g} is outside ({lo:g}, {hi:g}) = (0, 1/alpha) for {self.name}"
                + (f" (alpha = {alpha:.4g})" if alpha is not None else "")
            )
            self._assumptions = self._report()

    def _set_acceleration(self, accelerate: Any) -> None:
        """Adopt a stepping policy (:mod:`pnp.acceleration`); refuse it where it cannot keep the theorem.

        ``"auto"`` means safeguarded Anderson acceleration when the plain run is guaranteed and the
        algorithm's map can be accelerated, else none.
        """
        from pnp.acceleration import SUPPORTED_ALGORITHMS, Anderson, accelerated_report, refusal, resolve_acceleration

        policy = resolve_acceleration(accelerate)
        if policy is None:
            return
        why = refusal(self.name, self._assumptions)
        if why is not None and self.name not in SUPPORTED_ALGORITHMS:
            if policy == "auto":
                return
            raise ValueError(why)
        if policy == "auto":
            if why is not None:
                return
            policy = Anderson()
        elif why is not None:
            self._refuse(why)
        self.acceleration = policy
        self._assumptions = accelerated_report(self._assumptions, policy, algorithm_name=self.name,
                                               relaxation=self.relaxation, unsafe=self.unsafe_used)

    def _lipschitz_text(self) -> str:
        is_l2 = type(self.fidelity).__name__ == "L2Fidelity"
        return f"L = ‖A‖² = {self.L:g}" if is_l2 else f"L = Lip(∇f) = {self.L:g}"

    def _require_L(self, what: str) -> float:
        if self.L is None:
            raise ValueError(
                f"step: {type(self.fidelity).__name__}.lipschitz_grad() is None (gradient not globally Lipschitz), "
                f"so {what} has no default step; pass step=... explicitly"
            )
        return self.L

    @property
    def unsafe_used(self) -> bool:
        """True when a refused-by-default setting is in use (``unsafe=True`` overrode a bound)."""
        return bool(self._overrides)

    def check_assumptions(self) -> AssumptionReport:
        """Which convergence theorem applies and whether its hypotheses hold (see :mod:`pnp.assumptions`)."""
        return self._assumptions

    # ------------------------------------------------------------------ helpers for subclasses
    def _prox_g(self, v: Tensor, tau: float) -> Tensor:
        # denoisers are nn.Modules: never build an autograd graph through them while iterating
        with torch.no_grad():
            tracker = self._inexact_tracker()
            if tracker is not None:  # iterative prox: solved along the summable schedule, recorded
                return tracker.prox(v, tau)
            return self.prior.prox(v, tau)

    def _inexact_tracker(self) -> Any:
        """The :class:`pnp.inexact.InexactProxTracker` of an iterative convex prior (None otherwise)."""
        tracker = self.__dict__.get("_inexact")
        if tracker is None and "_inexact" not in self.__dict__:
            from pnp.inexact import InexactProxTracker, default_schedule, is_inexact

            tracker = InexactProxTracker(self.prior, default_schedule(self.name), self.name) \
                if is_inexact(self.prior) else None
            self._inexact = tracker
        return tracker

    def _final_report(self, status: str, iterations: int, history: dict[str, list[float]],
                      diagnostics: dict[str, Any]) -> AssumptionReport:
        """The report a finished run carries: the a-priori one, withdrawn when a hypothesis failed.

        An inner prox that missed its schedule names the hypothesis "inner prox errors summable";
        a run that broke down (status ``diverged`` / ``nan``) never keeps "guaranteed". The inner
        error bounds go into ``history`` (one per iteration when there is one prox call per
        iteration) and ``diagnostics["inexact_prox"]``.
        """
        from pnp.assumptions import Hypothesis, withdraw

        report = self._assumptions
        tracker = self._inexact_tracker()
        if tracker is not None and tracker.calls:
            diagnostics["inexact_prox"] = tracker.summary()
            if tracker.calls in (iterations, iterations + 1):  # + 1: the update that broke down
                history["prox_error_bound"] = tracker.bounds[:iterations]
                history["prox_target"] = tracker.targets[:iterations]
                history["prox_iterations"] = [float(n) for n in tracker.inner_iterations[:iterations]]
            if tracker.violation is not None:
                report = withdraw(report, Hypothesis("inner prox errors summable", False,
                                                     tracker.violation["reason"]))
        if status in ("diverged", "nan") and report.verdict == "guaranteed":
            why = diagnostics.get("stop_reason") or status
            report = withdraw(report, Hypothesis(
                "the iterates stay bounded (a fixed point exists and the arithmetic is exact enough)", False,
                f"the run ended '{status}' ({why}), which the theorem excludes when its hypotheses hold: no "
                "minimiser / fixed point exists or a numerical failure broke them"))
        return report

    def _grad_f(self, x: Tensor) -> Tensor:
        return self.fidelity.grad(x)

    def _prox_f(self, v: Tensor, tau: float) -> Tensor:
        return self.fidelity.prox(v, tau)

    @property
    def has_objective(self) -> bool:
        """Both terms have a value: ``f(x) + g(x)`` is recorded in the history."""
        return callable(getattr(self.fidelity, "value", None)) and bool(getattr(self.prior, "has_value", False))

    def objective(self, x: Tensor) -> float | None:
        """``f(x) + g(x)`` summed over the batch, or None when a term has no value."""
        if not self.has_objective:
            return None
        with torch.no_grad():
            return float(self.fidelity.value(x).sum() + self.prior.value(x).sum())

    def _monotone_expected(self) -> tuple[bool, str]:
        """Whether theory says the objective decreases at every iteration (overridden by PGD)."""
        return False, f"{self.name}: the objective is not monotone in general"

    def default_x0(self) -> Tensor:
        """``problem.x0()`` when a problem was given; otherwise ``y`` (same shape) or ``Aᵀy``."""
        if self.problem is not None and callable(getattr(self.problem, "x0", None)):
            return self.problem.x0()
        y = getattr(self.fidelity, "y", None)
        op = getattr(self.fidelity, "operator", None)
        if y is None or op is None:
            raise ValueError("x0: the fidelity has no y/operator to build a starting point from; pass x0=...")
        x = op.adjoint(y)
        return y.clone() if x.shape == y.shape else x

    # ------------------------------------------------------------------ the loop
    def run(
        self,
        x0: Tensor | None = None,
        *,
        max_iter: int | None = 300,
        tol: float | None = 1e-5,
        time_limit: float | None = None,
        truth: Tensor | None = None,
        progress: bool = True,
        callback: Callable[[int, Any, dict[str, float]], None] | None = None,
        stop: StoppingCriterion | None = None,
        divergence: DivergenceMonitor | None | object = _DEFAULT,
        monotone_rtol: float = 1e-6,
    ) -> Result:
        """Iterate until a stopping criterion fires, divergence or NaN is detected.

        Parameters
        ----------
        x0 : Tensor, optional
            Starting image (default :meth:`default_x0`). Its dtype is the working dtype.
        max_iter, tol, time_limit : optional
            Build the default criterion ``MaxIter(max_iter) | Tolerance(tol) | TimeLimit(time_limit)``
            (a None entry is skipped; early stopping is on by default with ``tol=1e-5``).
        truth : Tensor, optional
            Ground truth for the PSNR history (default: the problem's truth, if any).
        progress : bool
            Show a tqdm progress bar with the residual and PSNR.
        callback : callable, optional
            ``callback(iteration, state, record)`` after every iteration; ``record`` holds the
            numbers appended to the history.
        stop : StoppingCriterion, optional
            Replaces the criterion built from ``max_iter``/``tol``/``time_limit``.
        divergence : DivergenceMonitor or None
            Divergence detector (default ``DivergenceMonitor(window=100, factor=1e3)``); None disables it.
        monotone_rtol : float
            Relative tolerance of the objective-monotonicity check.

        Returns
        -------
        Result
        """
        from tqdm.auto import tqdm

        criterion = stop if stop is not None else default_criterion(max_iter, tol, time_limit)
        if not isinstance(criterion, StoppingCriterion):
            raise TypeError(f"stop must be a StoppingCriterion, got {type(criterion).__name__}")
        monitor = DivergenceMonitor() if divergence is _DEFAULT else divergence
        if monitor is not None:
            if not isinstance(monitor, DivergenceMonitor):
                raise TypeError(f"divergence must be a DivergenceMonitor or None, got {type(monitor).__name__}")
            monitor.reset()

        x0 = self.default_x0() if x0 is None else x0
        if not isinstance(x0, Tensor) or x0.ndim != 4:
            raise ValueError("x0 must be a tensor of shape (B, C, H, W)")
        if not bool(torch.isfinite(x0).all()):
            raise ValueError("x0 contains NaN or Inf; pass a finite starting image")
        eps = torch.finfo(x0.dtype).eps if x0.is_floating_point() else 2.2e-16
        if self._inexact_tracker() is not None:
            self._inexact.reset()  # the schedule restarts at k = 1 with every run

        use_problem_psnr = False
        if truth is None and self.problem is not None:
            truth = getattr(self.problem, "truth", None)
            use_problem_psnr = truth is not None and callable(getattr(self.problem, "psnr", None))

        def measure_psnr(x: Tensor) -> float:
            if use_problem_psnr:
                return float(self.problem.psnr(x))
            return float(psnr(x, truth).mean())  # the problem's score: per-image PSNR averaged over the batch

        history: dict[str, list[float]] = {"residual": [], "time": []}
        record_objective = self.has_objective
        if record_objective:
            history["objective"] = []
        if truth is not None:
            history["psnr"] = []

        expected, why = self._monotone_expected()
        policy = self.acceleration
        if policy is not None and expected:
            expected, why = False, "an accelerated run does not decrease the objective monotonically"
        mono = MonotonicityCheck(rtol=monotone_rtol, reason=why) if (expected and record_objective) else None
        if mono is not None:
            f0 = self.objective(x0)
            if f0 is not None:
                mono.update(0, f0)

        state = self.init(x0)
        start_seconds = 0.0
        if policy is not None:
            # the policy's state wraps the algorithm's; its .x is the current estimate
            start_seconds = time.perf_counter()
            state = policy.start(self, state)
            start_seconds = time.perf_counter() - start_seconds
            history["anderson"] = []
            history["evaluations"] = []
        status: str | None = None
        diagnostics: dict[str, Any] = {}
        k = 0
        old_norm = float(torch.linalg.vector_norm(x0))
        bar_tol = _tolerance_of(criterion)
        bar = tqdm(total=criterion.max_iterations, desc=self.name, disable=not progress, leave=False,
                   dynamic_ncols=True)
        t0 = time.perf_counter() - start_seconds
        try:
            while status is None:
                if policy is None:
                    new = self.update(state)
                    rel, d, nx = relative_residual(new.x, state.x, old_norm=old_norm)
                else:
                    # residual: ‖v − T v‖/‖v‖ of the governing variable at the new iterate
                    new = policy.step(self, state)
                    rel, d, nx = new.relative_residual, new.residual_norm, new.x_norm
                if not (math.isfinite(d) and math.isfinite(nx)):
                    finite_entries = bool(torch.isfinite(new.x).all())
                    status = "diverged" if finite_entries else "nan"
                    diagnostics["stopped_at_iteration"] = k + 1
                    diagnostics["stop_reason"] = (
                        "iterate norm overflowed" if finite_entries else f"NaN/Inf in the iterate at iteration {k + 1}"
                    )
                    break
                k += 1
                state = new
                old_norm = nx
                elapsed = time.perf_counter() - t0
                record: dict[str, float] = {"residual": rel, "time": elapsed}
                history["residual"].append(rel)
                history["time"].append(elapsed)
                if record_objective:
                    F = self.objective(state.x)
                    history["objective"].append(F)
                    record["objective"] = F
                    if mono is not None:
                        mono.update(k, F)
                if truth is not None:
                    p = measure_psnr(state.x)
                    history["psnr"].append(p)
                    record["psnr"] = p
                if policy is not None:
                    history["anderson"].append(new.last)
                    history["evaluations"].append(float(new.evaluations))
                if callback is not None:
                    callback(k, state if policy is None else state.image, record)
                if monitor is not None:
                    div = monitor.update(k, d, x_norm=nx, eps=eps)
                    if div is not None:
                        status = "diverged"
                        diagnostics["divergence"] = div
                        diagnostics["stop_reason"] = str(div)
                        break
                status = criterion.check(IterationInfo(iteration=k, residual=rel, seconds=elapsed))
                if progress:
                    post = {"res": f"{rel:.2e}"}
                    if truth is not None:
                        post["psnr"] = f"{record['psnr']:.2f}"
                    bar.set_postfix(post, refresh=False)
                    # an honest ETA: the total follows the predicted stop at tol, not max_iter
                    total = predicted_total(history["residual"], bar_tol, criterion.max_iterations)
                    if total is not None and total != bar.total:
                        bar.total = max(total, k)
                    bar.update(1)
        finally:
            bar.close()
        seconds = time.perf_counter() - t0

        diagnostics["monotone"] = (
            mono.report() if mono is not None else MonotonicityReport(checked=False, holds=True, reason=why)
        )
        diagnostics.setdefault("divergence", None)
        diagnostics["last_finite_iteration"] = k
        if policy is not None:
            diagnostics["acceleration"] = policy.summary(state)
        if self._overrides:
            diagnostics["unsafe_overrides"] = list(self._overrides)
        assert status is not None
        return Result(
            x=state.x,
            converged=status == "converged",
            status=status,
            iterations=k,
            seconds=seconds,
            history=history,
            report=self._final_report(status, k, history, diagnostics),
            unsafe=self.unsafe_used,
            algorithm=self.name,
            step=self.step,
            params=self.parameters(),
            diagnostics=diagnostics,
        )

    def __repr__(self) -> str:
        return (f"{self.name}(fidelity={type(self.fidelity).__name__}, prior={self.prior!r}, step={self.step:.4g}, "
                f"relaxation={self.relaxation:g}, unsafe={self.unsafe})")
