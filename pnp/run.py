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

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor

from operators.fidelity import PenalizedFidelity
from priors.classical import Box
from pnp.assumptions import AssumptionReport, Theory, describe_fidelity, register_theory, update_hypothesis_report
from pnp.assumptions_registry import register_class
from pnp.diagnostics import DivergenceMonitor, relative_residual
from pnp.result import Result
from pnp.run_log import RunLog, predicted_total
from pnp.stopping import IterationInfo, StoppingCriterion, default_criterion
from pnp.verification import FALLBACK_REASON, VERIFY_FACTOR, FinalVerification

__all__ = ["Algorithm", "DataFidelityLike", "PriorLike", "predicted_total", "VERIFY_FACTOR", "FALLBACK_REASON"]


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


@dataclass(frozen=True)
class _PlainStep:
    """History entry of a fallback's plain step in an accelerated run (``pnp.acceleration.STEP_PLAIN``)."""

    evaluations: int
    last: float = 0.0


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


def _check_positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    return v


class Algorithm(FinalVerification):
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
    #: the state fields the averaged iteration map acts on (safeguarded Anderson acceleration,
    #: :mod:`pnp.acceleration`); None when the iteration is not such a map
    anderson_fields: ClassVar[tuple[str, ...] | None] = None
    #: values of the ``restart`` keyword the class accepts (FISTA's adaptive restart, :mod:`pnp.restart`)
    restart_schemes: ClassVar[tuple[str, ...]] = ()
    #: build the autograd graph through the prior (an unrolled map that is differentiated, e.g. by
    #: the attacks of :mod:`pnp.robustness`); ``run()`` never sets it, so solves stay graph-free
    track_gradients: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # pnp.check_assumptions("NAME", ...) finds the theory of the class that declares that name
        if "name" in cls.__dict__ and cls.theory is not None:
            register_theory(cls.name, cls.theory)
            register_class(cls)

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
        overridden = update_hypothesis_report(type(self), self.name, self.unsafe_used)
        if overridden is not None:  # update() changed below the class that declared the theorem
            return overridden
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
        from pnp.acceleration import Anderson, accelerable, accelerated_report, refusal, resolve_acceleration

        policy = resolve_acceleration(accelerate)
        if policy is None:
            return
        why = refusal(self, self._assumptions)
        if why is not None and not accelerable(self):
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
        self._assumptions = accelerated_report(self._assumptions, policy, algorithm_name=self,
                                               relaxation=self.relaxation, unsafe=self.unsafe_used)

    def _lipschitz_text(self) -> str:
        return f"L = {describe_fidelity(self.fidelity, self.L).L_text} = {self.L:g}"

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
        # denoisers are nn.Modules: never build an autograd graph through them while iterating,
        # unless the caller differentiates the unrolled iterations (track_gradients)
        with contextlib.nullcontext() if self.track_gradients else torch.no_grad():
            tracker = self._inexact_tracker()
            if tracker is not None:  # iterative prox: solved along the summable schedule, recorded
                return tracker.prox(v, tau)
            return self.prior.prox(v, tau)

    def _inexact_tracker(self) -> Any:
        """The :class:`pnp.inexact.InexactProxTracker` of an iterative convex prior (None otherwise)."""
        tracker = self.__dict__.get("_inexact")
        if tracker is None and "_inexact" not in self.__dict__:
            from pnp.inexact import InexactProxTracker, default_schedule, is_inexact

            tracker = InexactProxTracker(self.prior, default_schedule(self), self.name) \
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
        check = diagnostics.get("final_verification") or {}
        if check.get("in_region") is False and status != "converged" and report.verdict == "guaranteed":
            report = withdraw(report, Hypothesis(
                "the accelerated iterates stay where the safeguard keeps them (unaccelerated residual <= "
                "max_growth x the first one)", False, str(check.get("reason") or FALLBACK_REASON)))
        if status == "unverified" and report.verdict == "guaranteed":
            report = withdraw(report, Hypothesis(
                "the returned iterate passes the final verification (residual of the unaccelerated map <= "
                f"{VERIFY_FACTOR:g} x tol)", False, str(check.get("reason") or FALLBACK_REASON)))
        if status in ("diverged", "nan") and report.verdict == "guaranteed":
            why = diagnostics.get("stop_reason") or status
            report = withdraw(report, Hypothesis(
                "the iterates stay bounded (a fixed point exists and the arithmetic is exact enough)", False,
                f"the run ended '{status}' ({why}), which the theorem excludes when its hypotheses hold: no "
                "minimiser / fixed point exists or a numerical failure broke them"))
        return report

    def denoiser_input(self, x: Tensor) -> Tensor:
        """The point at which one iteration from ``x`` calls the prior's prox (``x`` unless overridden)."""
        return x

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
        """The smooth least-squares start :func:`pnp.start.smooth_start` (for a least-squares data term),
        from ``problem.x0()`` when a problem was given, otherwise from ``y`` (same shape) or ``Aᵀy``.

        ``y`` itself leaves an inpainting mask's holes at zero, where a learned smooth regulariser's
        gradient is saturated and the iterations crawl (see :mod:`pnp.start` for the measurements)."""
        from pnp.start import smooth_start

        if self.problem is not None and callable(getattr(self.problem, "x0", None)):
            return smooth_start(self.fidelity, self.problem.x0())
        y = getattr(self.fidelity, "y", None)
        op = getattr(self.fidelity, "operator", None)
        if y is None or op is None:
            raise ValueError("x0: the fidelity has no y/operator to build a starting point from; pass x0=...")
        x = op.adjoint(y)
        return smooth_start(self.fidelity, y.clone() if x.shape == y.shape else x)

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
            Status ``"converged"`` only when the returned ``x`` is finite and passes the final
            verification: one more application of the *unaccelerated* map at ``x`` gives a residual
            at most ``VERIFY_FACTOR`` (2) times the tolerance (:meth:`_verify`; recorded in
            ``diagnostics["final_verification"]``). An accelerated run that fails it continues with
            plain iterations from its safest iterate within the budget left; otherwise the status is
            ``"unverified"`` and the report loses "guaranteed".
        """
        criterion = stop if stop is not None else default_criterion(max_iter, tol, time_limit)
        if not isinstance(criterion, StoppingCriterion):
            raise TypeError(f"stop must be a StoppingCriterion, got {type(criterion).__name__}")
        monitor = DivergenceMonitor() if divergence is _DEFAULT else divergence
        if monitor is not None:
            if not isinstance(monitor, DivergenceMonitor):
                raise TypeError(f"divergence must be a DivergenceMonitor or None, got {type(monitor).__name__}")
            monitor.reset()
        x0 = self._checked_x0(x0)
        if self._inexact_tracker() is not None:
            self._inexact.reset()  # the schedule restarts at k = 1 with every run
        log = RunLog(self, x0, truth=truth, criterion=criterion, progress=progress, monotone_rtol=monotone_rtol)
        state = self.init(x0)
        start_seconds = 0.0
        if self.acceleration is not None:
            # the policy's state wraps the algorithm's; its .x is the current estimate
            start_seconds = time.perf_counter()
            state = self.acceleration.start(self, state)
            start_seconds = time.perf_counter() - start_seconds
        diagnostics: dict[str, Any] = {}
        t0 = time.perf_counter() - start_seconds
        try:
            status, k, state = self._iterate(state, x0, criterion, monitor, log, callback, diagnostics, t0)
            status, k, state = self._verify(status, k, state, x0, criterion, monitor, log, callback, diagnostics, t0)
        finally:
            log.close()
        seconds = time.perf_counter() - t0
        return self._result(state, status, k, seconds, log, diagnostics)

    def _checked_x0(self, x0: Tensor | None) -> Tensor:
        x0 = self.default_x0() if x0 is None else x0
        if not isinstance(x0, Tensor) or x0.ndim != 4:
            raise ValueError("x0 must be a tensor of shape (B, C, H, W)")
        if not bool(torch.isfinite(x0).all()):
            raise ValueError("x0 contains NaN or Inf; pass a finite starting image")
        return x0

    def _iterate(self, state: Any, x0: Tensor, criterion: StoppingCriterion, monitor: DivergenceMonitor | None,
                 log: RunLog, callback: Callable[[int, Any, dict[str, float]], None] | None,
                 diagnostics: dict[str, Any], t0: float, *, plain: bool = False, k: int = 0,
                 evaluations: int = 0) -> tuple[str, int, Any]:
        """The loop of :meth:`run`: returns ``(status, iterations, last finite state)``.

        ``plain`` runs unaccelerated iterations from the algorithm state ``state`` after ``k``
        iterations (``evaluations`` applications of the map) of an accelerated run: its fallback."""
        policy = None if plain else self.acceleration
        eps = torch.finfo(x0.dtype).eps if x0.is_floating_point() else 2.2e-16
        old_norm = float(torch.linalg.vector_norm(x0 if k == 0 else state.x))
        scale = self.residual_scale()
        if scale != 1.0:
            diagnostics["residual_scale"] = scale
        status: str | None = None
        while status is None:
            if policy is None:
                new = self.update(state)
                rel, d, nx = relative_residual(new.x, state.x, old_norm=old_norm)
            else:
                # residual: ‖v − T v‖/‖v‖ of the governing variable at the new iterate
                new = policy.step(self, state)
                rel, d, nx = new.relative_residual, new.residual_norm, new.x_norm
            rel = rel * scale
            if not (math.isfinite(d) and math.isfinite(nx)):
                finite_entries = bool(torch.isfinite(new.x).all())
                diagnostics["stopped_at_iteration"] = k + 1
                diagnostics["stop_reason"] = (
                    "iterate norm overflowed" if finite_entries else f"NaN/Inf in the iterate at iteration {k + 1}"
                )
                return ("diverged" if finite_entries else "nan"), k, state
            k += 1
            state, old_norm = new, nx
            elapsed = time.perf_counter() - t0
            if policy is not None:
                step_record = new
            elif plain:  # the fallback's plain steps keep the accelerated run's history columns aligned
                evaluations += 1
                step_record = _PlainStep(evaluations=evaluations)
            else:
                step_record = None
            record = log.record(k, state, step_record, rel, elapsed)
            if callback is not None:
                callback(k, state if policy is None else state.image, record)
            if monitor is not None:
                div = monitor.update(k, d, x_norm=nx, eps=eps)
                if div is not None:
                    diagnostics["divergence"] = div
                    diagnostics["stop_reason"] = str(div)
                    return "diverged", k, state
            status = criterion.check(IterationInfo(iteration=k, residual=rel, seconds=elapsed))
            if status == "converged" and not bool(torch.isfinite(state.x).all()):
                diagnostics["stop_reason"] = f"NaN/Inf in the returned iterate at iteration {k}"
                return "nan", k, state
            log.show(k, rel, record)
        return status, k, state

    def residual_scale(self) -> float:
        """Factor applied to the relative change ``‖x_(k+1) − x_k‖/‖x_k‖`` before the stopping test.

        1 by default.  Gradient methods override it so that the test does not shrink with the step
        (a tiny step must not "converge" in one iteration)."""
        return 1.0

    def _result(self, state: Any, status: str, k: int, seconds: float, log: RunLog,
                diagnostics: dict[str, Any]) -> Result:
        """The :class:`Result` of a finished run (``state`` the last finite one)."""
        diagnostics["monotone"] = log.monotone_report()
        diagnostics.setdefault("divergence", None)
        diagnostics["last_finite_iteration"] = k
        if self.acceleration is not None:
            if "acceleration" not in diagnostics:  # (set by the final verification, before any fallback)
                diagnostics["acceleration"] = self.acceleration.summary(state)
        else:
            diagnostics.update(self.run_diagnostics(state))
        if self._overrides:
            diagnostics["unsafe_overrides"] = list(self._overrides)
        return Result(
            x=state.x,
            converged=status == "converged",
            status=status,
            iterations=k,
            seconds=seconds,
            history=log.history,
            report=self._final_report(status, k, log.history, diagnostics),
            unsafe=self.unsafe_used,
            algorithm=self.name,
            step=self.step,
            params=self.parameters(),
            diagnostics=diagnostics,
        )

    def history_entries(self, state: Any) -> dict[str, float]:
        """Numbers of this iteration an algorithm adds to ``Result.history`` (e.g. FISTA's restarts)."""
        return {}

    def run_diagnostics(self, state: Any) -> dict[str, Any]:
        """What an algorithm adds to ``Result.diagnostics`` at the end of a run (e.g. its restart counts)."""
        return {}

    def __repr__(self) -> str:
        return (f"{self.name}(fidelity={type(self.fidelity).__name__}, prior={self.prior!r}, step={self.step:.4g}, "
                f"relaxation={self.relaxation:g}, unsafe={self.unsafe})")
