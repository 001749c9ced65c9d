"""The regularisation strength from the data: SURE and Morozov's discrepancy principle (``lam: auto``).

A prior's strength -- the weight ``lam`` of a classical or learned smooth regulariser, the level
``sigma`` of a Plug-and-Play denoiser -- is chosen from the observation ``y`` alone, for Gaussian
noise of known level ``sigma_n`` (``m`` measurements, ``x(v)`` the solution at strength ``v``):

* ``"sure"`` (the rule of ``lam: auto``): minimise Stein's unbiased estimate of the predicted risk
  ``E ||A x(v) - A x_true||^2``,

      SURE(v) = ||A x(v) - y||^2 - m sigma_n^2 + 2 sigma_n^2 div_y(A x(v)),

  (Stein, Ann. Statist. 1981; for deconvolution and iterative reconstructions see Eldar, IEEE
  TSP 2009, and Ramani, Blu, Unser, IEEE TIP 2008), with the divergence estimated by one
  Monte-Carlo probe ``b ~ N(0, I)``: ``div ~ b^T (A x_{y + eps b} - A x_y) / eps`` (Ramani et al.).
  The probe is solved *in lockstep* with the main problem -- one batch of two observations
  ``(y, y + eps b)`` from the same start, so the part of the difference that is still converging
  cancels -- and it is stopped when SURE itself has settled (:data:`SETTLE_ETA`).
  The same probe is used at every strength (common random numbers), so SURE is a smooth curve
  in ``v``; it is minimised over ``log v`` by walking from the default strength in steps of
  :data:`SEARCH_RATIO` until the minimum is located by three neighbouring points, then taking the
  vertex of their parabola (:func:`_minimise_sure`). Works for every prior, denoisers included, and for
  operators with a null space (inpainting), where the divergence is at most the rank.
* ``"discrepancy"``: Morozov's principle ``||A x(lam) - y||^2 = tau m sigma_n^2`` with ``tau =``
  :data:`DISCREPANCY_TAU`, root-found over ``log lam`` (bracketing in steps of 4, then the
  Illinois variant of regula falsi). For a convex prior and global minimisers the residual is
  nondecreasing in ``lam`` (Engl, Hanke, Neubauer, *Regularization of Inverse Problems*, 1996,
  the monotonicity lemma of Tikhonov-type functionals: adding the two optimality inequalities of
  ``lam < lam'`` gives ``(lam - lam')(R(x_lam) - R(x_lam')) <= 0``, hence ``R`` nonincreasing and
  the data term nondecreasing); for another prior the monotonicity is checked on the evaluated
  points. Where the equation has no root in the bracket (tiny noise: the residual left by the
  regulariser's bias and the solver's tolerance alone exceeds ``tau m sigma^2``; an operator
  whose residual cannot come down to the noise level) or the residual is not monotone, the
  choice falls back to SURE and says so. (On an inpainting mask the noise of the missing pixels
  stays in the residual, ``mask_ratio m sigma^2``, so the root exists and fits the observed
  pixels to their own noise level.)

Measured (scripts/bench_lam_auto.py, priors/results/lam_auto/): on the fitting set (the validation
image motorcycle at 128 x 128, six kernels, noise 0.01 and 0.03, prior ridge; ``--grid``) the
residual ratio ``||A x - y||^2 / (m sigma^2)`` at the best strength ranged from 0.54 (camera shake)
to 0.96 (wide Gaussian blur), so no single ``tau`` transfers: the discrepancy principle lost 0.98 dB
on the mean at ``tau = 1`` and 0.38 dB at the best ``tau`` (0.9, worst case -0.99 dB), SURE's
minimum 0.02 dB (worst -0.12 dB). ``auto`` therefore uses SURE; the discrepancy principle stays
available as ``lam_rule: discrepancy``.

Intermediate solves stop when their score has settled (warm-started from the nearest evaluated
strength); the final solve, at the user's tolerance, is run by :func:`pnp.solve.solve` from the
returned warm start :attr:`ParameterChoice.x`.

Examples
--------
>>> from problems import ProblemSpec
>>> from pnp.spec import SolverSpec
>>> spec = ProblemSpec(size=32, sigma=0.02)
>>> problem = spec.build()
>>> choice = choose_lam(problem, SolverSpec(prior="tv", algorithm="fista"), noise=0.02)
>>> choice.rule, choice.param, choice.value > 0
('sure', 'lam', True)
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor

from pnp.stopping import IterationInfo, MaxIter, StoppingCriterion, Tolerance

__all__ = [
    "RULES",
    "AUTO",
    "DISCREPANCY_TAU",
    "PROBE_EPSILON",
    "SETTLE_ETA",
    "SEARCH_TOL",
    "SEARCH_RATIO",
    "SEARCH_STEPS",
    "Evaluation",
    "ParameterChoice",
    "choose_lam",
    "choose_strength",
    "numeric_spec",
    "prior_family",
    "is_auto",
    "sure_probe",
]

#: The value of ``lam`` / ``denoiser_sigma`` that asks for the strength to be chosen from the data.
AUTO = "auto"
#: The data-driven rules (``"sure"`` is the one ``auto`` uses).
RULES: tuple[str, ...] = ("sure", "discrepancy")
#: Morozov's constant: ``||A x - y||^2 = tau m sigma^2`` (1: the expected residual of the truth; the best
#: single value on the fitting set was 0.9, still 0.38 dB from the best strength on the mean).
DISCREPANCY_TAU = 1.0
#: Probe step of the Monte-Carlo divergence, as a multiple of the noise level. At 0.01 the
#: finite difference is within 0.2 % of its limit on the default deblurring job (ridge, motion
#: blur, noise 0.01: 0.1812 vs 0.1815 per pixel); at 1.0 it is 12 % high (the estimator's curvature).
PROBE_EPSILON = 0.01
#: An intermediate solve stops when its score (SURE, or the residual ratio for the discrepancy
#: rule, both in units of ``m sigma^2``) has changed by at most this much over the last
#: :data:`SETTLE_COUNT` iterations. SURE differs by 0.005 to 0.05 between neighbouring strengths
#: near its minimum.
SETTLE_ETA = 5e-4
SETTLE_COUNT = 2
#: ... and when its relative fixed-point residual is below this (the residual ratio there is within
#: 0.5 % of the converged one on the default job; 3e-4 is 1.5 % off, enough to move SURE's minimum).
SEARCH_TOL = 1e-4
#: Step of the search over log strength: weights ``lam`` by 2, denoiser levels by sqrt(2)
#: (a PnP level acts like the square root of a weight).
SEARCH_RATIO: dict[str, float] = {"lam": 2.0, "sigma": math.sqrt(2.0)}
#: Most steps on either side of the default strength (lam: a factor 16, sigma: 4).
SEARCH_STEPS = 4
#: Offset of the probe's seed from the problem's noise seed. The probe must be independent of the
#: noise: drawn from the noise's own seed it *is* the noise (divided by sigma), and the divergence
#: came out 23 % high on the default job.
PROBE_SEED_OFFSET = 7919
#: Seed of the probe when the noise seed is unknown (the same probe for every strength of one choice).
PROBE_SEED = 104729


def is_auto(value: Any) -> bool:
    """True when ``value`` asks for the data-driven strength (the string ``"auto"``, any case)."""
    return isinstance(value, str) and value.strip().lower() == AUTO


@dataclass(frozen=True)
class Evaluation:
    """One strength tried: its residual and (SURE) risk estimate, per measurement and noise variance.

    ``residual`` is ``||A x - y||^2 / (m sigma^2)``; ``sure`` is ``SURE / (m sigma^2)`` (None for a
    discrepancy evaluation), ``divergence`` the Monte-Carlo ``div_y(A x) / m``.
    """

    value: float
    residual: float
    sure: float | None
    divergence: float | None
    iterations: int
    seconds: float
    status: str

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the record."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ParameterChoice:
    """The strength chosen from the data, how, and at what cost.

    Parameters
    ----------
    rule : {"sure", "discrepancy", "default"}
        The rule that chose ``value`` (``"default"``: no data-driven rule applies, see ``fallback``).
    requested : str
        The rule asked for.
    param : {"lam", "sigma"}
        What was chosen: a weight or a denoiser level.
    value : float
        The chosen strength.
    initial : float
        The default strength the search started from.
    evaluations : tuple of Evaluation
        Every strength tried, in order.
    seconds : float
        Wall-clock time of the search (the final solve not included).
    iterations : int
        Iterations of all intermediate solves (a lockstep SURE iteration solves two observations).
    fallback : str or None
        Why the requested rule was not the one used (said on stdout and in the record).
    at_edge : bool
        The optimum lies at the end of the search range (the value there is used).
    monotone : str or None
        The discrepancy rule's monotonicity: proved (convex prior) or checked on the bracket.
    tau : float or None
        Morozov's constant (discrepancy rule).
    x : Tensor or None
        The solution at the evaluated strength nearest to ``value``: the final solve's warm start.
    """

    rule: str
    requested: str
    param: str
    value: float
    initial: float
    evaluations: tuple = ()
    seconds: float = 0.0
    iterations: int = 0
    fallback: str | None = None
    at_edge: bool = False
    monotone: str | None = None
    tau: float | None = None
    probe: dict | None = None
    x: Tensor | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The record's ``lam_choice`` entry (without the warm start)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "x"}
        out["evaluations"] = [e.to_dict() for e in self.evaluations]
        return out

    def line(self) -> str:
        """One line for stdout: the rule, the value, its cost, and any fallback."""
        what = "lam" if self.param == "lam" else "denoiser sigma"
        how = {"sure": "SURE (Monte-Carlo divergence, predicted risk)",
               "discrepancy": f"the discrepancy principle (tau {self.tau:g})" if self.tau is not None
               else "the discrepancy principle",
               "default": "the default rule"}[self.rule]
        text = (f"{what} auto: {how} chose {self.value:.4g} (default {self.initial:.4g}) in "
                f"{len(self.evaluations)} evaluations, {self.iterations} iterations, {self.seconds:.1f} s")
        if self.at_edge:
            text += "; at the edge of the search range"
        if self.fallback:
            text += f"; {self.fallback}"
        return text


# ============================================================================ the prior at each strength
def prior_family(spec: Any, problem_spec: Any, channels: int | None,
                  y: Tensor | None = None) -> tuple[Callable[[float], Any], str, float, float]:
    """``(make(value) -> prior, param, default value, largest value)`` of ``spec``'s prior, loading a model once.

    ``param`` is ``"lam"`` (a weight) or ``"sigma"`` (a denoiser level); ``make`` builds the prior as
    :func:`pnp.build.build_prior` does for that value (a smooth regulariser keeps the ``mu`` of the
    noise level; a denoiser is relaxed below its trained range).
    """
    from pnp.build import build_prior

    base = dataclasses.replace(spec, lam=None, denoiser_sigma=None)
    prior0, info = build_prior(base, problem_spec, channels=channels, observation=y)
    if spec.entry.kind == "classical" and not spec.is_checkpoint:
        return (lambda v: build_prior(dataclasses.replace(base, lam=v), problem_spec, channels=channels,
                                      observation=y)[0], "lam", float(info["lam"]), math.inf)
    model = getattr(prior0, "model", None)
    if info.get("mu") is not None and model is not None:  # a learned smooth regulariser lam R_mu
        from priors.wcrr import smooth_prior

        mu = float(info["mu"])
        return (lambda v: smooth_prior(model, weight=v, mu=mu)), "lam", float(info["lam"]), math.inf
    denoiser = getattr(prior0, "denoiser", None)
    if denoiser is not None and info.get("denoiser_sigma") is not None:
        from priors import denoiser_at_level, trained_sigma_range

        rng = trained_sigma_range(denoiser)  # levels above the trained range are refused
        return ((lambda v: denoiser_at_level(denoiser, v, rng)), "sigma", float(info["denoiser_sigma"]),
                math.inf if rng is None else float(rng[1]))
    raise ValueError(f"lam 'auto' cannot vary the strength of prior {spec.prior!r}; give --lam or "
                     "--denoiser-sigma a number")


# ============================================================================ one evaluation
class _Settled(StoppingCriterion):
    """Fires when a score of the iterate (SURE, or the residual ratio) has settled.

    :meth:`observe` (the run's callback) evaluates ``score(x)`` after each iteration; the test is
    that the last :data:`SETTLE_COUNT` changes are all at most ``eta`` (in units of ``m sigma^2``),
    after at least :data:`SETTLE_COUNT` + 1 iterations. Used together with a fixed-point tolerance:
    in the lockstep pair it is what waits for the probe's difference (the divergence) to converge.
    """

    def __init__(self, score: Callable[[Tensor], float], eta: float) -> None:
        self.score, self.eta = score, float(eta)
        self.values: list[float] = []

    def observe(self, k: int, state: Any, record: Any) -> None:
        self.values.append(self.score(state.x))

    def check(self, info: IterationInfo) -> str | None:
        v = self.values
        if len(v) <= SETTLE_COUNT:
            return None
        changes = [abs(a - b) for a, b in zip(v[-SETTLE_COUNT - 1:], v[-SETTLE_COUNT:])]
        return "converged" if all(c <= self.eta for c in changes) and math.isfinite(v[-1]) else None

    def __repr__(self) -> str:
        return f"Settled({self.eta:g})"


def sure_probe(y: Tensor, *, seed: int | None = None) -> Tensor:
    """The Monte-Carlo probe ``b ~ N(0, I)`` of the shape of ``y``, seeded (:data:`PROBE_SEED` by default)."""
    gen = torch.Generator(device=y.device).manual_seed(PROBE_SEED if seed is None else int(seed) % 2**63)
    return torch.randn(y.shape, generator=gen, device=y.device, dtype=y.dtype)


_NO_OBJECTIVE: dict[type, type] = {}


def _without_objective_history(algorithm: Any) -> Any:
    """``algorithm``, made to record no objective history (the search reads only the final iterate).

    A learned regulariser's value ``R(x)`` costs about as much as its gradient, so the history of
    ``f + g`` took 60 % of an iteration of the default prior. An algorithm whose iteration itself
    reads the objective (FISTA's guarded restart) is left as it is.
    """
    if getattr(algorithm, "guarded", False) or not getattr(algorithm, "has_objective", False):
        return algorithm
    cls = type(algorithm)
    if cls not in _NO_OBJECTIVE:
        _NO_OBJECTIVE[cls] = type(cls.__name__, (cls,), {"has_objective": property(lambda self: False),
                                                         "__module__": cls.__module__})
    algorithm.__class__ = _NO_OBJECTIVE[cls]
    return algorithm


class _Evaluator:
    """Solves the problem at a strength (warm-started) and scores it by SURE or by its residual."""

    def __init__(self, problem: Any, spec: Any, make_prior: Callable[[float], Any], noise: float,
                 max_iter: int, eta: float, probe_seed: int) -> None:
        from problems.problem import InverseProblem

        self.problem, self.spec, self.make_prior = problem, spec, make_prior
        self.noise, self.max_iter, self.eta = float(noise), int(max_iter), float(eta)
        y = problem.y
        self.m = y.numel()
        self.eps = PROBE_EPSILON * self.noise
        self.probe_seed = int(probe_seed)
        self.b = sure_probe(y, seed=self.probe_seed)
        self.pair = InverseProblem(problem.operator, problem.noise, torch.cat([y, y + self.eps * self.b]))
        self.single = InverseProblem(problem.operator, problem.noise, y)
        self.xs: dict[float, Tensor] = {}  # log value -> solution (the warm starts)
        self.cache: dict[tuple[float, bool], Evaluation] = {}  # (log value, with SURE) -> evaluation
        self.order: list[Evaluation] = []
        self.iterations = 0

    def _start(self, t: float) -> Tensor:
        if not self.xs:  # the algorithm's own cold start (the one a solve at a fixed strength uses)
            return self._algorithm(math.exp(t), self.single).default_x0()
        return self.xs[min(self.xs, key=lambda s: abs(s - t))]

    def _algorithm(self, value: float, problem: Any) -> Any:
        from pnp.build import build_algorithm

        algorithm = build_algorithm(dataclasses.replace(self.spec, lam=None, denoiser_sigma=None), problem,
                                    self.make_prior(value))
        return _without_objective_history(algorithm)

    def evaluate(self, t: float, *, sure: bool) -> Evaluation:
        """The evaluation at strength ``exp(t)`` (cached)."""
        if (t, sure) in self.cache:
            return self.cache[(t, sure)]
        value = math.exp(t)
        x0 = self._start(t)
        t0 = time.perf_counter()
        scale = self.m * self.noise ** 2
        op, y = self.problem.operator, self.problem.y
        if sure:
            def score(x: Tensor) -> float:  # SURE / (m sigma^2) of the lockstep pair (x(y), x(y + eps b))
                ax = op(x)
                residual = float(((ax[:1] - y) ** 2).sum())
                div = float((self.b * (ax[1:] - ax[:1])).sum()) / self.eps
                return (residual - self.m * self.noise ** 2 + 2 * self.noise ** 2 * div) / scale

            algorithm = self._algorithm(value, self.pair)
            settled = _Settled(score, self.eta)
            with torch.inference_mode():
                result = algorithm.run(x0=torch.cat([x0, x0]), stop=(Tolerance(SEARCH_TOL) & settled) | MaxIter(self.max_iter),
                                       callback=settled.observe, progress=False, divergence=None)
                ax = op(result.x)
                residual = float(((ax[:1] - y) ** 2).sum())
                div = float((self.b * (ax[1:] - ax[:1])).sum()) / self.eps
            x = result.x[:1].clone()
            risk = (residual - self.m * self.noise ** 2 + 2 * self.noise ** 2 * div) / scale
            ev = Evaluation(value, residual / scale, risk, div / self.m, result.iterations,
                            time.perf_counter() - t0, result.status)
        else:
            algorithm = self._algorithm(value, self.single)
            settled = _Settled(lambda x: float(((op(x) - y) ** 2).sum()) / scale, self.eta)
            with torch.inference_mode():
                result = algorithm.run(x0=x0, stop=(Tolerance(SEARCH_TOL) & settled) | MaxIter(self.max_iter),
                                       callback=settled.observe,
                                       progress=False)
                residual = float(((op(result.x) - y) ** 2).sum())
            x = result.x.clone()
            ev = Evaluation(value, residual / scale, None, None, result.iterations, time.perf_counter() - t0,
                            result.status)
        if not all(math.isfinite(v) for v in (ev.residual, ev.sure if sure else 0.0)) or result.status in (
                "nan", "diverged"):
            ev = dataclasses.replace(ev, residual=math.inf, sure=math.inf if sure else None)
        self.iterations += result.iterations
        self.xs[t] = x
        self.cache[(t, sure)] = ev
        self.order.append(ev)
        return ev

    def x_near(self, t: float) -> Tensor:
        return self._start(t)


# ============================================================================ the rules
def _parabola_vertex(ts: tuple[float, float, float], fs: tuple[float, float, float]) -> float | None:
    """Vertex of the parabola through three equally spaced points (None unless it opens upwards)."""
    (t1, t2, _), (f1, f2, f3) = ts, fs
    curvature = f1 - 2 * f2 + f3
    if not (math.isfinite(curvature) and curvature > 0):
        return None
    return t2 + 0.5 * (t2 - t1) * (f1 - f3) / curvature


def _minimise_sure(ev: _Evaluator, t0: float, h: float, t_max: float) -> tuple[float, bool]:
    """``(log value, at_edge)`` of SURE's minimum over ``log v``, by a walk in steps ``h`` from ``t0``.

    The first step goes down when the residual at the default exceeds the noise level (``||Ax - y||^2
    >= m sigma^2``: at the best strength the ratio was 0.54 to 0.97 on every measured case, so the
    prior is too strong), up otherwise. The walk extends the evaluated run of grid points beyond its
    lowest end until the lowest point has evaluated neighbours on both sides, or the parabola through
    the three lowest consecutive points puts its vertex a quarter step or more inside the evaluated run
    (SURE is asymmetric in ``log v``, so a vertex nearer the lowest point is not trusted); the vertex
    is returned. Reaching the end of the range returns the lowest point there (``at_edge``).
    """
    lo, hi = t0 - SEARCH_STEPS * h, min(t0 + SEARCH_STEPS * h, t_max)
    t0 = min(t0, hi)  # a default above the allowed range (a denoiser's top level) starts at the top
    grid = lambda k: t0 + k * h  # noqa: E731
    risk = lambda k: ev.evaluate(grid(k), sure=True).sure  # noqa: E731
    inside = lambda k: lo - 1e-9 <= grid(k) <= hi + 1e-9  # noqa: E731
    done = [0]
    step = -1 if ev.evaluate(grid(0), sure=True).residual >= 1.0 else 1
    nxt = step if inside(step) else -step
    while True:
        if not inside(nxt):
            best = min(done, key=risk)
            return grid(best), True
        risk(nxt)
        done = sorted({*done, nxt})
        best = min(done, key=risk)
        if best - 1 in done and best + 1 in done:  # bracketed
            vertex = _parabola_vertex((grid(best - 1), grid(best), grid(best + 1)),
                                      (risk(best - 1), risk(best), risk(best + 1)))
            return (grid(best) if vertex is None else vertex), False
        inward = 1 if best == done[0] else -1  # the lowest point is an end of the evaluated run
        if len(done) >= 3:
            ks = (best, best + inward, best + 2 * inward)
            vertex = _parabola_vertex(tuple(grid(k) for k in ks), tuple(risk(k) for k in ks))
            # accepted only a quarter step inside or more: SURE is asymmetric in log v (steeper on one side),
            # so three points on one flank put the vertex too near the lowest one (crr, motion blur: 0.13
            # step inside, the minimum 0.6 step beyond; ridge_stack: 0.46 inside, the minimum 0.45 inside)
            half = grid(best + 0.25 * inward)
            if vertex is not None and min(half, grid(best + inward)) <= vertex <= max(half, grid(best + inward)):
                return vertex, False
        nxt = best - inward


def _discrepancy(ev: _Evaluator, t0: float, tau: float, convex: bool) -> tuple[float | None, str, str]:
    """``(log value or None, monotonicity note, reason when None)`` of the root of the discrepancy equation."""
    g = lambda t: math.log(ev.evaluate(t, sure=False).residual / tau)  # noqa: E731  (increasing in t)
    step, span = math.log(4.0), 3  # brackets up to a factor 4^3 = 64 either side of the default
    a, ga = t0, g(t0)
    b = gb = None
    for k in range(1, span + 1):
        t = t0 + (k * step if ga < 0 else -k * step)
        gt = g(t)
        if (gt >= 0) != (ga >= 0):
            b, gb = t, gt
            break
        a, ga = t, gt
    root: float | None = None
    if b is not None:  # Illinois regula falsi on g over the bracket [a, b]
        side = 0
        for _ in range(12):
            root = (a * gb - b * ga) / (gb - ga)
            gt = g(root)
            if abs(gt) <= 0.005 or abs(b - a) <= math.log(1.05):  # |residual / (tau m sigma^2) - 1| < 0.5 %
                break
            if (gt >= 0) == (gb >= 0):
                b, gb = root, gt
                if side == -1:
                    ga *= 0.5
                side = -1
            else:
                a, ga = root, gt
                if side == 1:
                    gb *= 0.5
                side = 1
    pts = sorted((math.log(e.value), e.residual) for e in ev.order)
    increasing = all(r2 >= r1 * (1 - 1e-3) for (_, r1), (_, r2) in zip(pts, pts[1:]))  # loose solves: 0.1 %
    if convex:
        mono = "residual nondecreasing in lam: proved for a convex prior (global minimisers)"
    elif increasing:
        mono = "residual nondecreasing on the evaluated points (checked, not proved for this prior)"
    else:
        mono = "residual not monotone in the strength on the evaluated points"
    if not (increasing or convex):
        return None, mono, "the residual is not monotone in the strength for this prior, so its root is not unique"
    if root is None:
        where = "below" if ga < 0 else "above"
        return None, mono, (f"the discrepancy equation has no root in [{math.exp(t0 - span * step):.3g}, "
                            f"{math.exp(t0 + span * step):.3g}] (the residual stays {where} tau m sigma^2)")
    return root, mono, ""


def choose_lam(
    problem: Any,
    spec: Any,
    *,
    noise: float,
    problem_spec: Any = None,
    rule: str = "sure",
    tau: float = DISCREPANCY_TAU,
    max_iter: int | None = None,
    eta: float = SETTLE_ETA,
    channels: int | None = None,
    noise_seed: int | None = None,
) -> ParameterChoice:
    """Choose the strength of ``spec``'s prior from ``problem.y`` (Gaussian noise of level ``noise``).

    Parameters
    ----------
    problem : problems.InverseProblem
        The problem (its truth is not used).
    spec : pnp.spec.SolverSpec
        The prior, algorithm and acceleration used for every solve; its ``lam`` and
        ``denoiser_sigma`` are ignored.
    noise : float
        Standard deviation of the Gaussian noise (> 0).
    problem_spec : problems.ProblemSpec, optional
        Supplies the default strength (the search starts there); default ``ProblemSpec(sigma=noise)``.
    rule : {"sure", "discrepancy"}
        ``"discrepancy"`` falls back to SURE, saying so, when the equation has no root in its
        bracket or the residual is not monotone.
    tau : float
        Morozov's constant of the discrepancy rule.
    max_iter : int, optional
        Iteration cap of each intermediate solve (default ``spec.max_iter``).
    eta : float
        An intermediate solve stops when its score changed by at most ``eta`` (units of ``m sigma^2``)
        over the last iterations.
    channels : int, optional
        Image channels (a grey model on a colour image runs per channel).
    noise_seed : int, optional
        Seed the noise of a simulated problem was drawn with; the probe is drawn with another one
        (default: ``problem_spec.seed`` when a spec is given).

    Returns
    -------
    ParameterChoice

    Raises
    ------
    ValueError
        An unknown rule, a noise level that is not positive, a prior whose strength cannot vary.
    """
    from problems import ProblemSpec

    if rule not in RULES:
        raise ValueError(f"solver field 'lam_rule' must be one of {', '.join(RULES)}, got {rule!r}")
    if not (isinstance(noise, (int, float)) and math.isfinite(noise) and noise > 0):
        raise ValueError(f"lam 'auto' needs a positive Gaussian noise level, got {noise!r}; give --noise or a "
                         "number for --lam")
    if not (math.isfinite(tau) and tau > 0):
        raise ValueError(f"tau must be a positive number, got {tau!r}")
    if noise_seed is None and problem_spec is not None:
        noise_seed = problem_spec.seed
    problem_spec = ProblemSpec(sigma=float(noise)) if problem_spec is None else problem_spec
    t_start = time.perf_counter()
    make_prior, param, initial, upper = prior_family(spec, problem_spec, channels, problem.y)
    probe_seed = PROBE_SEED if noise_seed is None else int(noise_seed) + PROBE_SEED_OFFSET
    ev = _Evaluator(problem, spec, make_prior, noise, spec.max_iter if max_iter is None else max_iter, eta,
                    probe_seed)
    t0, h = math.log(initial), math.log(SEARCH_RATIO[param])
    fallback, monotone, used = None, None, rule
    t_best: float | None = None
    at_edge = False
    if rule == "discrepancy":
        probe_prior = make_prior(initial)
        convex = bool(getattr(probe_prior, "convex", False)) and param == "lam"
        t_best, monotone, reason = _discrepancy(ev, t0, tau, convex)
        if t_best is None:
            fallback, used = f"{reason}; fell back to SURE", "sure"
    if t_best is None:
        t_best, at_edge = _minimise_sure(ev, t0, h, math.log(upper) if math.isfinite(upper) else math.inf)
    value = math.exp(t_best)
    probe = {"epsilon": ev.eps, "epsilon_over_sigma": PROBE_EPSILON, "seed": ev.probe_seed} if used == "sure" else None
    return ParameterChoice(rule=used, requested=rule, param=param, value=value, initial=initial,
                           evaluations=tuple(ev.order), seconds=time.perf_counter() - t_start,
                           iterations=ev.iterations, fallback=fallback, at_edge=at_edge, monotone=monotone,
                           tau=tau if rule == "discrepancy" else None, probe=probe, x=ev.x_near(t_best))


def numeric_spec(spec: Any, choice: ParameterChoice) -> Any:
    """``spec`` with its ``"auto"`` strength replaced by the chosen number (None for the default rule)."""
    value = None if choice.rule == "default" else choice.value
    if choice.param == "sigma":
        return dataclasses.replace(spec, lam=None, denoiser_sigma=value)
    return dataclasses.replace(spec, lam=value, denoiser_sigma=None)


def choose_strength(problem: Any, spec: Any, problem_spec: Any, *, channels: int | None = None) -> ParameterChoice:
    """The choice behind ``lam: auto`` in a solve job (:func:`pnp.solve.solve`).

    Runs :func:`choose_lam` with ``spec.lam_rule`` for Gaussian noise of a positive level; for
    other noise models or noiseless data no data-driven rule applies and the prior's default
    strength is kept, with ``fallback`` saying why.
    """
    rule = getattr(spec, "lam_rule", "sure")
    noise = float(problem_spec.sigma)
    reason = None
    if problem_spec.noise_model != "gaussian":
        reason = (f"the data-driven rules assume Gaussian noise, the problem has {problem_spec.noise_model!r} noise: "
                  "kept the prior's default strength")
    elif not noise > 0:
        reason = "the noise level is 0, so neither SURE nor the discrepancy principle applies: kept the default strength"
    if reason is None:
        return choose_lam(problem, spec, noise=noise, problem_spec=problem_spec, rule=rule, channels=channels)
    t0 = time.perf_counter()
    _, param, initial, _ = prior_family(spec, problem_spec, channels, problem.y)
    return ParameterChoice(rule="default", requested=rule, param=param, value=initial, initial=initial,
                           seconds=time.perf_counter() - t0, fallback=reason)
