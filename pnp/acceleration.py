"""Safeguarded type-I Anderson acceleration of an averaged fixed-point iteration.

A stepping policy over the algorithms' typed states: it never changes what one iteration of an
algorithm computes (``algorithm.update``), only *where* the next iteration starts. Written once
for every algorithm whose iteration map is averaged (for ADMM: whose pair ``(x, u)`` is driven by
the averaged Douglas–Rachford map of ``z = x + u``): PGD, HQS, DRS and ADMM.

The method (Zhang, O'Donoghue & Boyd, "Globally convergent type-I Anderson acceleration for
non-smooth fixed-point iterations", SIAM J. Optim. 30(4), 2020; arXiv 1808.03971)
--------------------------------------------------------------------------------------------
Let ``T`` be the algorithm's iteration map on its governing variable ``v`` (``x`` for PGD/HQS,
``z`` for DRS, the pair ``(x, u)`` for ADMM) and ``g(v) = v − T(v)`` the fixed-point residual.
Type-I Anderson acceleration is a multi-secant quasi-Newton method for ``g(v) = 0``: it keeps
an approximate inverse Jacobian ``H = I + Σ_j a_j b_jᵀ`` (at most ``memory`` rank-one terms)
built from secant pairs ``s = Δv``, ``y = Δg`` and proposes ``ṽ = v − H g(v)``. The paper's
stabilisation is kept as published:

* **restart**: the ``s`` of a new pair is Gram–Schmidt-orthogonalised against the stored ones
  (``ŝ``); when ``‖ŝ‖ < restart · ‖s‖`` (the pairs have become nearly dependent) or the memory
  is full, ``H`` is reset to ``I``;
* **Powell-type regularisation**: ``y`` is replaced by ``ỹ = θ y − (1 − θ) g_prev`` with
  ``θ = φ(ŝᵀHy / ‖ŝ‖²)``, ``φ(η) = 1`` if ``|η| >= θ̄`` else ``(1 − sign(η) θ̄)/(1 − η)``, which
  keeps ``ŝᵀ H ỹ`` away from 0 so that the rank-one update stays well defined;
* **safeguard**: an Anderson step from ``v`` is taken only when the residual has decreased
  enough, ``‖g(v)‖ <= D · Ū · (n_AA + 1)^−(1+ε)`` (``Ū = ‖g(v_0)‖``, ``n_AA`` the number of
  Anderson steps accepted so far); otherwise the step is the plain one, ``T(v)``. With the
  published ``D = 1e6`` this test is asymptotic only: it does not stop an early excursion.

Three checks are added, none of which can break the theorem (a rejection only turns an Anderson
step into a plain one), and all measured with the *unaccelerated* map ``T``:

* the step must be bounded, ``‖H g‖ <= max_ratio · ‖g‖``;
* **deviation budget**: the accepted steps' total deviation from the plain steps,
  ``E = Σ ‖ṽ − T v‖ = Σ ‖g − H g‖`` (known before ``T(ṽ)`` is evaluated), stays below
  ``budget · max(‖v_0‖, ‖T v_0‖)`` (``budget = 1``);
* **residual test**: the candidate's own residual ``‖g(ṽ)‖ = ‖ṽ − T ṽ‖`` is at most
  ``max_growth`` times the smallest residual of the iterates so far (``max_growth = 2``).

Why these two. The earlier test compared a candidate with the point it started from
(``‖g(ṽ)‖ <= 2 ‖g(v)‖``), which compounds: the residual could double at every accepted step. Two
runs passed it while leaving every sensible region (both labelled "guaranteed"): PnP-PGD with the
ridge stack at step 1e-5 (camera 64², 200 iterations: pixels in [−26.6, 27.1], −22.8 dB; plain
PGD 21.2 dB) and the default ``ridge`` prior on 50 % inpainting from ``y`` (64²: 1000 iterations,
7.6 dB; the minimiser has 29.5 dB). In both the map's residual is nearly flat (a near-identity
denoiser at a tiny step; a saturated regulariser gradient in the holes), so no residual test can
see the excursion: the accepted steps' deviations summed to 7.5e4 and 4.1e4 against
``‖v_0‖ ≈ 30``. The budget bounds it: the step-1e-5 run now ends in [0.33, 0.40] after 200
iterations (its deviation 33.2 of a cap of 36.6), heading for a nearly flat image (3000
iterations end in [0.28, 0.30], not yet converged), as that step's fixed point is expected to
be: below its trained noise floor the denoiser is relaxed and the implied weight grows like
``τ^(−1/2)``. On the default deblurring
job (256², ``ridge``, from ``y``) the accepted steps deviate by 16.5 in total against a cap of
148 and the new tests refuse nothing: 64 map evaluations, as before (56 from the smooth start of
:mod:`pnp.start`, deviation 11.6). A strictly monotone residual test (each candidate no worse
than the point it starts from) refused 34 of 62 candidates there and cost 98 evaluations.

Why the theorem is kept
-----------------------
The plain step of these algorithms is ``v ↦ T v`` with ``T`` ``a``-averaged (``a = λα`` from the
assumption report for PGD/HQS, ``λ/2`` for DRS): ``T = (1 − a) I + a N`` with ``N``
nonexpansive and ``Fix N = Fix T``, so it is the Krasnosel'skii–Mann step on ``N`` — exactly
the fallback of the paper's Algorithm AA-I-S. For every ``v* ∈ Fix T`` a plain step does not
increase ``‖v − v*‖``, and an accepted Anderson step lands within ``‖ṽ − T v‖`` of the plain
step's point, so ``‖v_k − v*‖ <= ‖v_0 − v*‖ + E_k`` with ``E_k <= budget · max(‖v_0‖, ‖T v_0‖)``
at every ``k``: the iterates stay in that ball around every fixed point, and the errors are
summable (finitely many, of bounded total), so ``‖v_k − v*‖`` is quasi-Fejér and converges;
the residual tends to 0 (along plain steps by the averaged inequality, at the points Anderson
steps start from by the safeguard) and the iterates converge to a fixed point (Combettes,
"Quasi-Fejérian analysis of some optimization algorithms", 2001, Thm 3.8; the argument of Zhang
et al.). For ADMM the same argument runs on ``z = x + u``: the plain ADMM step maps it by the
relaxed Douglas–Rachford operator (``λ/2``-averaged), and an Anderson step on ``(x, u)`` moves
``z`` away from the plain step's ``z`` by at most ``√2`` times its deviation on the pair.
:meth:`pnp.run.Algorithm.run` then checks the returned iterate itself (its final verification).

Cost: one application of ``T`` per iteration plus ``O(memory)`` inner products; a candidate
rejected by the residual test costs a second application (the plain step from the old point).
A batch of images is accelerated as one vector (the theory holds on the product space).

Examples
--------
>>> import torch
>>> from operators import Blur, kernels
>>> from operators.fidelity import L2Fidelity
>>> from priors.classical import Tikhonov
>>> from pnp import PGD
>>> A = Blur(kernels.gaussian(1.5))
>>> y = A(torch.rand(1, 1, 16, 16, dtype=torch.float64))
>>> plain = PGD(L2Fidelity(A, y), 1e-3 * Tikhonov(gradient=True)).run(tol=1e-8, max_iter=5000, progress=False)
>>> fast = PGD(L2Fidelity(A, y), 1e-3 * Tikhonov(gradient=True), accelerate="anderson").run(
...     tol=1e-8, max_iter=5000, progress=False)
>>> fast.iterations < plain.iterations, fast.report.params["acceleration"].startswith("anderson")
(True, True)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from pnp.assumptions import AssumptionReport, Hypothesis
from pnp.assumptions_registry import algorithm_classes, algorithm_named

__all__ = [
    "Anderson",
    "AndersonState",
    "ACCELERATIONS",
    "SUPPORTED_ALGORITHMS",
    "accelerable",
    "supported_algorithms",
    "refusal",
    "resolve_acceleration",
    "accelerated_report",
    "STEP_ACCEPTED",
    "STEP_PLAIN",
    "STEP_REJECTED",
]

#: Values of ``--accelerate`` / ``solver.accelerate``.
ACCELERATIONS: tuple[str, ...] = ("auto", "anderson", "none")

_NOT_A_MAP = "it is not a fixed-point iteration of an averaged map"

#: Codes of ``Result.history["anderson"]``.
STEP_ACCEPTED, STEP_PLAIN, STEP_REJECTED = 1.0, 0.0, -1.0

_CITATION = ("Zhang, O'Donoghue & Boyd, SIAM J. Optim. 30(4) 2020 (arXiv 1808.03971), Algorithm AA-I-S; "
             "quasi-Fejer argument: Combettes 2001, Thm 3.8")

def _class_of(algorithm: Any) -> Any:
    """The algorithm class of a registered name (any case), a class or an instance (None if unknown)."""
    if isinstance(algorithm, str):
        return algorithm_named(algorithm)
    return algorithm if isinstance(algorithm, type) else type(algorithm)


def _not_accelerable(algorithm: Any) -> str | None:
    """Why the algorithm's class cannot be accelerated with its theorem kept (None when it can).

    Asked of the class: its ``anderson_fields`` (the state the averaged map acts on) and its
    theory's ``anderson_refusal``.
    """
    cls = _class_of(algorithm)
    if cls is None:
        return _NOT_A_MAP
    theory = getattr(cls, "theory", None)
    why = getattr(theory, "anderson_refusal", _NOT_A_MAP) if theory is not None else _NOT_A_MAP
    if why is None and getattr(cls, "anderson_fields", None) is None:
        why = _NOT_A_MAP
    return why


def accelerable(algorithm: Any) -> bool:
    """Whether safeguarded Anderson acceleration applies to ``algorithm`` (name, class or instance).

    Examples
    --------
    >>> import pnp
    >>> accelerable(pnp.DRS), accelerable("fista")
    (True, False)
    """
    return _not_accelerable(algorithm) is None


def supported_algorithms() -> tuple[str, ...]:
    """Names of the defined algorithm classes whose iteration map the safeguard can accelerate."""
    return tuple(cls.name for cls in algorithm_classes() if accelerable(cls))


def __getattr__(name: str) -> Any:
    # SUPPORTED_ALGORITHMS is computed from the classes (their anderson_fields and theory), so an
    # algorithm defined outside the package is included; kept as a module attribute for callers
    if name == "SUPPORTED_ALGORITHMS":
        return supported_algorithms()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _governing(state: Any, fields: tuple[str, ...]) -> Tensor:
    if len(fields) == 1:
        return getattr(state, fields[0]).reshape(-1)
    return torch.cat([getattr(state, f).reshape(-1) for f in fields])


def _with_governing(state: Any, fields: tuple[str, ...], v: Tensor) -> Any:
    parts: dict[str, Tensor] = {}
    offset = 0
    for f in fields:
        ref = getattr(state, f)
        n = ref.numel()
        parts[f] = v[offset:offset + n].view_as(ref)
        offset += n
    return dataclasses.replace(state, **parts)


def _norm(v: Tensor) -> float:
    return float(torch.linalg.vector_norm(v))


def _dot(a: Tensor, b: Tensor) -> float:
    return float(torch.dot(a, b))


def _powell_theta(eta: float, theta_bar: float) -> float:
    """Powell factor ``φ_θ̄(η)`` (Zhang et al.): 1 if ``|η| >= θ̄``, else ``(1 − sign(η)θ̄)/(1 − η)``."""
    if abs(eta) >= theta_bar:
        return 1.0
    sign = 1.0 if eta >= 0 else -1.0
    return (1.0 - sign * theta_bar) / (1.0 - eta)


@dataclass(frozen=True)
class AndersonState:
    """The accelerated iteration's state (immutable; :meth:`Anderson.step` returns a new one).

    Parameters
    ----------
    base : algorithm state
        The current iterate ``v_k`` (an algorithm state, e.g. :class:`pnp.PGDState`).
    image : algorithm state
        ``update(base)``: one plain iteration from it. ``image.x`` is the current estimate.
    v, g : Tensor
        Flat governing variable of ``base`` and its residual ``v − T(v)``.
    residual_norm, v_norm, x_norm : float
        ``‖g‖``, ``‖v‖`` and ``‖image.x‖``.
    hv1, hv2, qs : tuple of Tensor
        ``H = I + Σ hv1[j] hv2[j]ᵀ`` and the orthonormalised secant steps (Gram–Schmidt basis).
    u_bar : float
        ``Ū = ‖g(v_0)‖``, the scale of the safeguard.
    accepted, rejected, restarts, evaluations : int
        Running counts (Anderson steps taken, refused by the safeguard, memory restarts,
        applications of the iteration map).
    last : float
        What the last step was: :data:`STEP_ACCEPTED`, :data:`STEP_PLAIN` or :data:`STEP_REJECTED`.
    deviation, radius : float
        ``E = Σ ‖ṽ − T v‖`` over the accepted Anderson steps (how far they moved the iterate away
        from where the plain steps would have gone) and its cap ``budget · max(‖v_0‖, ‖T v_0‖)``.
    best_residual, best : float, algorithm state
        The smallest unaccelerated residual ``‖v − T v‖`` seen and the iterate ``v`` it belongs to
        (where a run falls back to plain steps when its last iterate fails the final verification).
    exhausted_at : int or None
        The map-evaluation count at which the deviation budget first refused a candidate (None if never).
    """

    base: Any
    image: Any
    v: Tensor
    g: Tensor
    residual_norm: float
    v_norm: float
    x_norm: float
    hv1: tuple[Tensor, ...] = ()
    hv2: tuple[Tensor, ...] = ()
    qs: tuple[Tensor, ...] = ()
    u_bar: float = 0.0
    accepted: int = 0
    rejected: int = 0
    restarts: int = 0
    evaluations: int = 1
    last: float = STEP_PLAIN
    deviation: float = 0.0
    radius: float = math.inf
    best_residual: float = math.inf
    best: Any = None
    exhausted_at: int | None = None

    @property
    def x(self) -> Tensor:
        """The current estimate: the image's ``x`` (what a plain run would return after this iterate)."""
        return self.image.x

    @property
    def relative_residual(self) -> float:
        """``‖v − T v‖ / ‖v‖`` (``‖g‖`` when ``v = 0``)."""
        if self.v_norm > 0:
            return self.residual_norm / self.v_norm
        return 0.0 if self.residual_norm == 0 else math.inf

    def apply_h(self, w: Tensor) -> Tensor:
        """``H w``."""
        out = w
        for a, b in zip(self.hv1, self.hv2):
            out = out + a * _dot(b, w)
        return out

    def apply_ht(self, w: Tensor) -> Tensor:
        """``Hᵀ w``."""
        out = w
        for a, b in zip(self.hv1, self.hv2):
            out = out + b * _dot(a, w)
        return out


class Anderson:
    """Safeguarded type-I Anderson acceleration (AA-I-S of Zhang, O'Donoghue & Boyd 2020).

    See the module docstring for the method and why the convergence theorem of the plain
    iteration still holds.

    Parameters
    ----------
    memory : int
        ``m``: number of secant pairs kept before a restart (the paper uses 5–10).
    powell : float
        ``θ̄ ∈ (0, 1)`` of the Powell-type regularisation.
    restart : float
        ``τ ∈ (0, 1)``: restart when a new step is nearly in the span of the stored ones.
    safeguard_d, safeguard_eps : float
        ``D > 0`` and ``ε > 0`` of the safeguard ``‖g‖ <= D Ū (n_AA + 1)^−(1+ε)``.
    max_ratio : float
        Largest ``‖H g‖ / ‖g‖`` accepted (bounds every Anderson step by the residual).
    max_growth : float
        A candidate is accepted only when ``‖g(ṽ)‖ <= max_growth · min_j ‖g(v_j)‖``, the smallest
        unaccelerated residual of the iterates so far (a bound that never grows).
    budget : float
        Cap of the accepted steps' total deviation from the plain steps, ``Σ ‖ṽ − T v‖ <=
        budget · max(‖v_0‖, ‖T v_0‖)``; once spent, every further step is the plain one.

    Examples
    --------
    >>> Anderson(memory=5).describe()
    'anderson(m=5, safeguarded)'
    """

    name = "anderson"

    def __init__(
        self,
        *,
        memory: int = 5,
        powell: float = 0.01,
        restart: float = 1e-3,
        safeguard_d: float = 1e6,
        safeguard_eps: float = 1e-6,
        max_ratio: float = 1e4,
        max_growth: float = 2.0,
        budget: float = 1.0,
    ) -> None:
        if isinstance(memory, bool) or not isinstance(memory, int) or memory < 1:
            raise ValueError(f"anderson memory must be an integer >= 1, got {memory!r}")
        for label, value, lo, hi in (("powell", powell, 0.0, 1.0), ("restart", restart, 0.0, 1.0)):
            if not (isinstance(value, (int, float)) and lo < value < hi):
                raise ValueError(f"anderson {label} must lie in ({lo:g}, {hi:g}), got {value!r}")
        for label, value in (("safeguard_d", safeguard_d), ("safeguard_eps", safeguard_eps), ("max_ratio", max_ratio)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"anderson {label} must be a finite number > 0, got {value!r}")
        if not (isinstance(max_growth, (int, float)) and math.isfinite(max_growth) and max_growth > 0):
            raise ValueError(f"anderson max_growth must be a finite number > 0, got {max_growth!r}")
        if isinstance(budget, bool) or not (isinstance(budget, (int, float)) and math.isfinite(budget)
                                            and budget >= 0):
            raise ValueError(f"anderson budget must be a finite number >= 0, got {budget!r}")
        self.memory = memory
        self.powell = float(powell)
        self.restart = float(restart)
        self.safeguard_d = float(safeguard_d)
        self.safeguard_eps = float(safeguard_eps)
        self.max_ratio = float(max_ratio)
        self.max_growth = float(max_growth)
        self.budget = float(budget)

    def describe(self) -> str:
        """Short description for reports and records."""
        return f"anderson(m={self.memory}, safeguarded)"

    def parameters(self) -> dict[str, float]:
        """The policy's constants (recorded in the assumption report)."""
        return {"memory": self.memory, "powell": self.powell, "restart": self.restart,
                "safeguard_d": self.safeguard_d, "safeguard_eps": self.safeguard_eps,
                "max_ratio": self.max_ratio, "max_growth": self.max_growth, "budget": self.budget}

    def __repr__(self) -> str:
        return (f"Anderson(memory={self.memory}, powell={self.powell:g}, restart={self.restart:g}, "
                f"safeguard_d={self.safeguard_d:g}, safeguard_eps={self.safeguard_eps:g}, "
                f"max_ratio={self.max_ratio:g}, max_growth={self.max_growth:g}, budget={self.budget:g})")

    # ------------------------------------------------------------------ the iteration
    @staticmethod
    def _fields(algorithm: Any) -> tuple[str, ...]:
        fields = getattr(algorithm, "anderson_fields", None)
        if fields is None:
            name = getattr(algorithm, "name", type(algorithm).__name__)
            raise ValueError(f"accelerate: Anderson acceleration supports {', '.join(supported_algorithms())}, "
                             f"not {name}")
        return tuple(fields)

    def start(self, algorithm: Any, state: Any) -> AndersonState:
        """The accelerated state around the algorithm's initial ``state`` (one application of the map)."""
        fields = self._fields(algorithm)
        image = algorithm.update(state)
        v = _governing(state, fields)
        g = v - _governing(image, fields)
        gn = _norm(g)
        v_norm = _norm(v)
        radius = self.budget * max(v_norm, _norm(v - g))
        return AndersonState(base=state, image=image, v=v, g=g, residual_norm=gn, v_norm=v_norm,
                             x_norm=_norm(image.x), u_bar=gn, evaluations=1, radius=radius,
                             best_residual=gn if math.isfinite(gn) else math.inf, best=state)

    def _plain(self, algorithm: Any, st: AndersonState, fields: tuple[str, ...]) -> tuple[Any, Any, Tensor, Tensor]:
        base = st.image
        image = algorithm.update(base)
        v = _governing(base, fields)
        return base, image, v, v - _governing(image, fields)

    def _remember(self, st: AndersonState, s: Tensor, y: Tensor,
                  g_prev: Tensor) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...], tuple[Tensor, ...], int]:
        """Add the secant pair ``(s, y)`` to ``H`` (``s = −H g_prev`` with the ``H`` of ``st``).

        Returns ``(hv1, hv2, qs, number of restarts)``: the memory restarts when it is full or when
        ``s`` is nearly in the span of the stored steps, and is emptied when the pair is unusable.
        """
        hv1, hv2, qs = st.hv1, st.hv2, st.qs
        s_norm = _norm(s)
        if not (math.isfinite(s_norm) and s_norm > 0):
            return (), (), (), int(bool(hv1))
        s_hat = s
        for q in qs:
            s_hat = s_hat - q * _dot(q, s)
        restarts = 0
        if len(qs) >= self.memory or _norm(s_hat) < self.restart * s_norm:
            hv1, hv2, qs, s_hat = (), (), (), s
            restarts = 1
        sh2 = _dot(s_hat, s_hat)
        h = dataclasses.replace(st, hv1=hv1, hv2=hv2)
        eta = _dot(s_hat, h.apply_h(y)) / sh2
        theta = _powell_theta(eta, self.powell)
        y_tilde = y if theta == 1.0 else theta * y - (1.0 - theta) * g_prev
        hy = h.apply_h(y_tilde)
        denom = _dot(s_hat, hy)
        if not (math.isfinite(denom) and abs(denom) > 1e-30 * sh2):
            return (), (), (), restarts + int(bool(hv1))
        return hv1 + (s - hy,), hv2 + (h.apply_ht(s_hat) / denom,), qs + (s_hat / math.sqrt(sh2),), restarts

    def step(self, algorithm: Any, st: AndersonState) -> AndersonState:
        """One safeguarded step; pure (``st`` is not modified).

        An Anderson candidate ``ṽ = v − H g`` is evaluated only when the paper's safeguard holds,
        ``‖H g‖ <= max_ratio ‖g‖`` and its deviation from the plain step, ``‖ṽ − T v‖ = ‖g − H g‖``,
        fits in what is left of the budget; it is accepted only when its own unaccelerated residual
        ``‖ṽ − T ṽ‖`` is at most ``max_growth`` times the smallest one seen so far. Any other step
        is the plain one, ``T v``.
        """
        fields = self._fields(algorithm)
        g, gn = st.g, st.residual_norm
        evaluations = st.evaluations
        accepted, rejected, restarts = st.accepted, st.rejected, st.restarts
        exhausted_at = st.exhausted_at
        outcome = STEP_PLAIN
        if st.hv1:
            bound = self.safeguard_d * st.u_bar * (accepted + 1) ** (-(1.0 + self.safeguard_eps))
            d = st.apply_h(g)
            dn = _norm(d)
            deviation = _norm(g - d)  # ‖ṽ − T v‖: T v = v − g, ṽ = v − H g
            fits = math.isfinite(deviation) and st.deviation + deviation <= st.radius
            if not fits and exhausted_at is None and math.isfinite(deviation):
                exhausted_at = st.evaluations  # first refusal by the budget (recorded once)
            if gn <= bound and math.isfinite(dn) and dn <= self.max_ratio * gn and fits:
                cand_v = st.v - d
                cand = _with_governing(st.base, fields, cand_v)
                cand_image = algorithm.update(cand)
                evaluations += 1
                cand_g = cand_v - _governing(cand_image, fields)
                cgn = _norm(cand_g)
                hv1, hv2, qs, r = self._remember(st, -d, cand_g - g, g)
                restarts += r
                if math.isfinite(cgn) and cgn <= self.max_growth * st.best_residual:
                    better = cgn < st.best_residual
                    return AndersonState(
                        base=cand, image=cand_image, v=cand_v, g=cand_g, residual_norm=cgn, v_norm=_norm(cand_v),
                        x_norm=_norm(cand_image.x), hv1=hv1, hv2=hv2, qs=qs, u_bar=st.u_bar, accepted=accepted + 1,
                        rejected=rejected, restarts=restarts, evaluations=evaluations, last=STEP_ACCEPTED,
                        deviation=st.deviation + deviation, radius=st.radius,
                        best_residual=cgn if better else st.best_residual, best=cand if better else st.best,
                        exhausted_at=exhausted_at)
                # residual test failed: the plain step from the old point (its image is known)
                base, image, v, g_new = self._plain(algorithm, st, fields)
                evaluations += 1
                return self._after_plain(st, base, image, v, g_new, hv1=hv1, hv2=hv2, qs=qs, accepted=accepted,
                                         rejected=rejected + 1, restarts=restarts, evaluations=evaluations,
                                         last=STEP_REJECTED, exhausted_at=exhausted_at)
            # safeguard, step bound or budget failed before evaluating: restart and take the plain step
            outcome = STEP_REJECTED
            rejected += 1
        base, image, v, g_new = self._plain(algorithm, st, fields)
        evaluations += 1
        # the plain step is s = −g with H = I after the (re)start, as the Powell update assumes
        fresh = dataclasses.replace(st, hv1=(), hv2=(), qs=())
        restarts += int(bool(st.hv1))
        hv1, hv2, qs, r = self._remember(fresh, v - st.v, g_new - g, g)
        restarts += r
        return self._after_plain(st, base, image, v, g_new, hv1=hv1, hv2=hv2, qs=qs, accepted=accepted,
                                 rejected=rejected, restarts=restarts, evaluations=evaluations, last=outcome,
                                 exhausted_at=exhausted_at)

    @staticmethod
    def _after_plain(st: AndersonState, base: Any, image: Any, v: Tensor, g_new: Tensor,
                     **counts: Any) -> AndersonState:
        """The state after a plain step to ``base`` (its image and residual given), tracking the best iterate."""
        gn = _norm(g_new)
        better = math.isfinite(gn) and gn < st.best_residual
        return AndersonState(
            base=base, image=image, v=v, g=g_new, residual_norm=gn, v_norm=_norm(v), x_norm=_norm(image.x),
            u_bar=st.u_bar, deviation=st.deviation, radius=st.radius,
            best_residual=gn if better else st.best_residual, best=base if better else st.best, **counts)

    def summary(self, st: AndersonState | None) -> dict[str, Any]:
        """Counts of a finished run (for ``Result.diagnostics["acceleration"]``)."""
        if st is None:
            return {"policy": self.describe(), "accepted": 0, "rejected": 0, "restarts": 0, "evaluations": 0}
        return {"policy": self.describe(), "accepted": st.accepted, "rejected": st.rejected,
                "restarts": st.restarts, "evaluations": st.evaluations, "deviation": st.deviation,
                "deviation_cap": st.radius, "budget_first_refused_at_evaluation": st.exhausted_at, **self.parameters()}


# ---------------------------------------------------------------------- options and reports
def resolve_acceleration(value: Any) -> Anderson | str | None:
    """``None``/``"none"`` → None, ``"anderson"`` → :class:`Anderson`, ``"auto"`` kept, an :class:`Anderson` kept.

    Examples
    --------
    >>> resolve_acceleration("none") is None, type(resolve_acceleration("anderson")).__name__
    (True, 'Anderson')
    """
    if value is None or isinstance(value, Anderson):
        return value
    if isinstance(value, str):
        key = value.strip().lower()
        if key == "none":
            return None
        if key == "anderson":
            return Anderson()
        if key == "auto":
            return "auto"
    raise ValueError(f"accelerate must be one of {', '.join(ACCELERATIONS)} (or a pnp.acceleration.Anderson), "
                     f"got {value!r}")


def refusal(algorithm: Any, report: AssumptionReport | None) -> str | None:
    """Why safeguarded Anderson acceleration cannot keep a theorem for this run (None when it can).

    ``algorithm`` is a registered name, a class or an instance; ``report`` (the plain run's) is read
    only for the algorithms the policy supports.
    """
    cls = _class_of(algorithm)
    name = str(getattr(cls, "name", algorithm))
    why = _not_accelerable(algorithm)
    if why is not None:
        return (f"accelerate: anderson does not apply to {name} ({why}); use --accelerate none or one of "
                f"{', '.join(a.lower() for a in supported_algorithms())}")
    if report is None or report.verdict != "guaranteed":
        verdict = "no report" if report is None else report.verdict
        reason = "" if report is None else (report.reason or report.verdict)
        return (f"accelerate: the safeguard keeps the convergence theorem of the plain iteration, and this "
                f"{name} run has none ({verdict}: {reason}); use --accelerate none")
    if getattr(cls, "theory", None) is not None and cls.theory.anderson_averaged(report, 1.0) is None:
        return (f"accelerate: the safeguard's theorem needs an averaged iteration map, and this {name} run's map "
                f"is not known to be averaged ({report.theorem.split(' (')[0]}); use --accelerate none")
    return None


def accelerated_report(report: AssumptionReport, policy: Anderson, *, algorithm_name: Any, relaxation: float,
                       unsafe: bool = False) -> AssumptionReport:
    """The assumption report of the accelerated run: the plain theorem plus the safeguard.

    ``algorithm_name`` is the algorithm (a registered name, its class or the instance). When the
    plain verdict is "guaranteed" the verdict stays, the theorem names the safeguarded acceleration
    and a hypothesis records it; otherwise the acceleration hypothesis fails (the algorithm refuses
    unless ``unsafe``).
    """
    params = dict(report.params)
    params["acceleration"] = policy.describe()
    params["acceleration_parameters"] = policy.parameters()
    why = refusal(algorithm_name, report)
    if why is not None:
        hyp = Hypothesis("acceleration keeps a convergence theorem (safeguarded Anderson over an averaged map)",
                         False, why.removeprefix("accelerate: "))
        verdict = report.verdict if report.verdict != "guaranteed" else "not guaranteed"
        return dataclasses.replace(report, verdict=verdict, hypotheses=(*report.hypotheses, hyp),
                                   conclusion="", reason=report.reason or hyp.detail, params=params,
                                   unsafe=unsafe or report.unsafe)
    theory = _class_of(algorithm_name).theory
    how = theory.anderson_map(theory.anderson_averaged(report, relaxation))
    detail = (f"Anderson steps taken only when ‖g‖ <= D·Ū·(n+1)^-(1+eps) (D = {policy.safeguard_d:g}, "
              f"eps = {policy.safeguard_eps:g}) with ‖H g‖ <= {policy.max_ratio:g}‖g‖, a candidate's "
              f"unaccelerated residual <= {policy.max_growth:g} x the smallest so far, and their total "
              f"deviation from the plain steps <= {policy.budget:g} max(‖v_0‖, ‖T v_0‖), so the iterates stay "
              f"within that distance of the plain iteration's Fejer ball around every fixed point; {how}")
    hyp = Hypothesis("acceleration safeguarded (Anderson steps summable, every other step the plain one)", True, detail)
    theorem = (f"{report.theorem}; accelerated by safeguarded type-I Anderson acceleration ({_CITATION})")
    conclusion = (f"{report.conclusion}; with safeguarded Anderson acceleration the iterates still converge to a "
                  "fixed point of the plain iteration (quasi-Fejer with summable Anderson steps)")
    return dataclasses.replace(report, theorem=theorem, hypotheses=(*report.hypotheses, hyp), conclusion=conclusion,
                               params=params)
