"""What the theorems read: the declared properties of the two terms, shared hypotheses, the :class:`Theory` base.

:func:`describe_fidelity` and :func:`describe_prior` ask the terms for their capabilities
(convexity, ``lipschitz_grad()``, ``prox``/``has_prox``, ``has_value``, ``exact_prox``,
``certificate()``), never their class names; the hypothesis helpers are the checks several
theorems share; :class:`Theory` is the base of the theorem each algorithm class declares
(:mod:`pnp.assumptions_rules`). Re-exported by :mod:`pnp.assumptions`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from operators.fidelity import L2Fidelity
from pnp.assumptions_report import BC17, AssumptionReport, Hypothesis, fmt
from pnp.inexact import CITATION_FORWARD_BACKWARD, DELTA, InexactSchedule, is_inexact, reports_accuracy

__all__ = ["StepBound", "RunSettings", "Theory", "FidelityInfo", "PriorInfo", "describe_fidelity", "describe_prior",
           "certificate_hypotheses", "lipschitz_hypothesis", "no_certificate_report", "relaxation_hypothesis",
           "step_hypothesis", "OPERATOR_HYPOTHESIS", "operator_hypothesis", "UPDATE_HYPOTHESIS", "update_override",
           "no_theorem_report"]


# ---------------------------------------------------------------------- hypotheses checked, never assumed
#: The hypothesis every theorem here needs of the data term's operator (f(x) = F(Ax; y) with A linear).
OPERATOR_HYPOTHESIS = "A linear with A* its adjoint"

#: The hypothesis that the iteration run is the one the theorem is about.
UPDATE_HYPOTHESIS = "the iteration is the one the theorem covers"


def _fidelity_shape_dtype(fidelity: Any, op: Any) -> tuple[tuple[int, ...] | None, Any]:
    """The input shape and dtype the data term applies its operator at (None when unknown)."""
    import torch

    y = getattr(fidelity, "y", None)
    dtype = y.dtype if isinstance(y, torch.Tensor) and y.is_floating_point() else None
    in_shape = getattr(op, "in_shape", None)
    batch = int(y.shape[0]) if isinstance(y, torch.Tensor) and y.ndim >= 1 else 1
    if in_shape is not None:
        return (batch, *in_shape[1:]), dtype
    shape_fn = getattr(fidelity, "_x_shape", None)
    if callable(shape_fn):
        try:
            return tuple(int(s) for s in shape_fn()), dtype
        except Exception:  # an adjoint that cannot run: the test below says so
            return None, dtype
    return None, dtype


def operator_hypothesis(fidelity: Any) -> Hypothesis | None:
    """"A linear with A* its adjoint": the data term's operator tested (or verified by the tests), or None without one.

    Runs :meth:`operators.base.LinearOperator.check_linearity` at the data term's shape and dtype
    (cached on the operator, so once per operator and shape). An operator that is not an
    ``operators.LinearOperator`` cannot be tested, so the hypothesis fails for it.
    """
    op = getattr(fidelity, "operator", None)
    if op is None:
        return None
    check = getattr(op, "check_linearity", None)
    name = OPERATOR_HYPOTHESIS
    if not callable(check):
        return Hypothesis(name, False, f"{type(op).__name__} is not an operators.LinearOperator, so its linearity and "
                                       "adjoint cannot be tested; wrap it (operators.FunctionOperator, from_deepinv)")
    shape, dtype = _fidelity_shape_dtype(fidelity, op)
    if shape is None:
        return Hypothesis(name, False, f"{op!r}: the input shape is unknown (no in_shape and the adjoint of y fails), "
                                       "so linearity and adjointness cannot be tested; pass in_shape")
    result = check(shape, dtype=dtype)
    return Hypothesis(name, bool(result.holds), result.detail, result.worst)


def update_override(cls: type) -> str | None:
    """Why ``cls`` does not inherit its parent's theorem: it overrides ``update()`` without declaring its own.

    The theorem belongs to the class that declares ``theory`` (the nearest in the MRO); a subclass
    below it that defines ``update`` runs another iteration, which that theorem does not cover.
    None when the class runs the iteration of the class that declared its theory.

    Examples
    --------
    >>> from pnp import PGD
    >>> class Damped(PGD):
    ...     def update(self, state):
    ...         return state
    >>> update_override(Damped)
    'update() overridden by Damped, which declares no theory of its own (class attribute theory); the theorem of PGD covers PGD.update() only'
    >>> update_override(PGD) is None
    True
    """
    mro = getattr(cls, "__mro__", ())
    owner = next((k for k in mro if "theory" in k.__dict__), None)
    if owner is None:
        return None
    for k in mro:
        if k is owner:
            return None
        if "update" in k.__dict__:
            return (f"update() overridden by {k.__name__}, which declares no theory of its own (class attribute "
                    f"theory); the theorem of {owner.__name__} covers {owner.__name__}.update() only")
    return None


def no_theorem_report(algorithm: str, hypothesis: Hypothesis, params: dict | None = None,
                      unsafe: bool = False) -> AssumptionReport:
    """"no guarantee" because ``hypothesis``, which every theorem here needs, does not hold."""
    return AssumptionReport(algorithm, "no guarantee", "", (hypothesis,),
                            reason=hypothesis.detail or hypothesis.name, unsafe=unsafe,
                            params=dict(params or {}))


# ---------------------------------------------------------------------- term descriptions
@dataclass(frozen=True)
class FidelityInfo:
    name: str
    convex: bool
    L: float | None
    has_grad: bool
    has_prox: bool
    prox_exact: bool
    has_value: bool = False
    least_squares: bool = False  # ½‖Ax − y‖², whose L is ‖A‖²
    # f + r with r weakly convex (PenalizedFidelity): the certified modulus of nonconvexity of the sum
    # (0: convex), None when no such certificate exists; semialgebraic: Kurdyka-Lojasiewicz holds
    nonconvexity: float | None = None
    semialgebraic: bool = False
    # the data term's prox in z = A x (data_prox), what the splittings with z = A x need
    has_data_prox: bool = False

    @property
    def L_text(self) -> str:
        return "‖A‖²" if self.least_squares else "Lip(∇f)"


@dataclass(frozen=True)
class PriorInfo:
    name: str
    kind: str  # "convex" | "certified" | "uncertified"
    alpha: float | None  # averagedness of the prox / denoiser map
    lipschitz: float | None
    exact: bool
    certificate: Any
    detail: str
    accuracy: bool = False  # an iterative prox that certifies its error (pnp.inexact)
    has_value: bool = False  # g(x) can be evaluated (the objective f + g exists)


def describe_fidelity(fidelity: Any, L: float | None = None) -> FidelityInfo:
    """Read the declared properties of a data-fidelity term (duck-typed)."""
    if L is None:
        lip = getattr(fidelity, "lipschitz_grad", None)
        L = lip() if callable(lip) else None
    L = None if L is None else float(L)
    has_grad = callable(getattr(fidelity, "grad", None))
    has_prox = callable(getattr(fidelity, "prox", None)) and bool(getattr(fidelity, "has_prox", True))
    op = getattr(fidelity, "operator", None)
    prox_exact = bool(getattr(op, "has_closed_form_normal", False)) if op is not None else False
    return FidelityInfo(
        name=type(fidelity).__name__,
        convex=bool(getattr(fidelity, "convex", False)),
        L=L,
        has_grad=has_grad,
        has_prox=has_prox,
        prox_exact=prox_exact,
        has_value=callable(getattr(fidelity, "value", None)),
        least_squares=isinstance(fidelity, L2Fidelity),
        nonconvexity=getattr(fidelity, "nonconvexity", None),
        semialgebraic=bool(getattr(fidelity, "semialgebraic", False)),
        has_data_prox=(bool(getattr(fidelity, "has_data_prox", False))
                       and callable(getattr(fidelity, "data_prox", None))),
    )


def describe_prior(prior: Any) -> PriorInfo:
    """Classify a prior: convex with a prox, certified denoiser, or uncertified."""
    name = str(getattr(prior, "name", type(prior).__name__))
    has_value = bool(getattr(prior, "has_value", False))
    cert = None
    cert_error = ""
    fn = getattr(prior, "certificate", None)
    if callable(fn):
        try:
            cert = fn()
        except Exception as exc:  # a broken certificate is no certificate
            cert_error = f"certificate() raised {type(exc).__name__}: {exc}"
    exact = bool(getattr(prior, "exact_prox", False))
    if bool(getattr(prior, "convex", False)):
        how = "closed form" if exact else f"computed iteratively (tol={getattr(prior, 'tol', '?')})"
        return PriorInfo(
            name, "convex", 0.5, 1.0, exact or not is_inexact(prior), cert,
            f"prox of a convex function ({how}) is firmly nonexpansive, alpha = 1/2 ({BC17}, Prop. 12.28)",
            reports_accuracy(prior), has_value,
        )
    if cert is None:
        why = cert_error or "the prior/denoiser has no certificate (certificate() missing or None)"
        return PriorInfo(name, "uncertified", None, None, False, None, why, has_value=has_value)
    alpha = getattr(cert, "alpha", None)
    lip = getattr(cert, "lipschitz", None)
    method = getattr(cert, "method", "")
    return PriorInfo(
        name, "certified", None if alpha is None else float(alpha), None if lip is None else float(lip),
        exact, cert, f"certificate: Lip <= {lip}, alpha = {alpha} ({method})", has_value=has_value,
    )




def _inexact_hypothesis(p: PriorInfo, sched: InexactSchedule, cite: str) -> list[Hypothesis]:
    """The hypothesis "inner prox errors summable" of an iterative prox (none for a closed form)."""
    if p.exact:
        return []
    if p.accuracy:
        return [Hypothesis(
            "inner prox errors summable", True,
            f"the {p.name} prox is iterative; every call is solved to a certified error bound <= "
            f"{sched.describe()} (summable; {cite}), checked at every iteration: the verdict is "
            "withdrawn if an inner solve misses it or stops at its cap", sched.power,
        )]
    return [Hypothesis(
        "inner prox errors summable", False,
        f"the {p.name} prox is iterative and certifies no error bound (reports_accuracy is False), so the "
        f"summable-error hypothesis of {cite} cannot be checked; use a prior with a closed-form or "
        "certified prox",
    )]



def certificate_hypotheses(p: PriorInfo) -> list[Hypothesis]:
    """Sanity of a denoiser certificate: averaged ⇒ nonexpansive; adversarial estimate below bound."""
    hyps = []
    if p.lipschitz is not None and p.alpha is not None:
        hyps.append(Hypothesis(
            "certified Lip(D) <= 1 (implied by averagedness)", p.lipschitz <= 1.0 + 1e-9,
            f"certified Lip(D) = {fmt(p.lipschitz)}", p.lipschitz,
        ))
    emp = getattr(p.certificate, "empirical", None)
    if emp is not None and p.lipschitz is not None:
        hyps.append(Hypothesis(
            "adversarial Lip estimate <= certified bound", emp <= p.lipschitz * (1 + 1e-6),
            f"empirical {fmt(emp)} vs certified {fmt(p.lipschitz)}", float(emp),
        ))
    return hyps


def no_certificate_report(algorithm: str, p: PriorInfo, params: dict) -> AssumptionReport:
    return AssumptionReport(
        algorithm=algorithm,
        verdict="no guarantee",
        theorem="",
        hypotheses=(Hypothesis("denoiser has a certificate", False, p.detail),),
        reason=f"no guarantee without a certificate: {p.detail}",
        params=params,
    )


def relaxation_hypothesis(relaxation: float, alpha: float | None, hi_default: float = 2.0) -> tuple[Hypothesis, tuple[float, float]]:
    hi = (1.0 / alpha) if alpha is not None else hi_default
    ok = 0.0 < relaxation < hi
    return (
        Hypothesis(
            "relaxation in (0, 1/alpha)", ok,
            f"relaxation = {fmt(relaxation)}, allowed (0, {fmt(hi)})", relaxation,
        ),
        (0.0, hi),
    )


def lipschitz_hypothesis(f: FidelityInfo) -> Hypothesis:
    if f.L is None:
        return Hypothesis("∇f globally Lipschitz", False,
                          f"{f.name}: gradient not globally Lipschitz (lipschitz_grad() is None); the forward-backward "
                          "step bound does not apply")
    return Hypothesis("∇f globally Lipschitz", True, f"L = {f.L_text} = {fmt(f.L)}", f.L)


@dataclass(frozen=True)
class StepBound:
    """A theorem's bound on the gradient step: ``step < factor/L`` (``strict``) or ``step <= factor/L``.

    Examples
    --------
    >>> b = StepBound(2.0, strict=True)
    >>> b.label, b.allows(1.9, 1.0), b.allows(2.0, 1.0)
    ('step < 2/L', True, False)
    """

    factor: float
    strict: bool

    @property
    def rhs(self) -> str:
        return f"{self.factor:g}/L"

    @property
    def label(self) -> str:
        return f"step {'<' if self.strict else '<='} {self.rhs}"

    def bound(self, L: float) -> float:
        return self.factor / L

    def allows(self, step: float, L: float) -> bool:
        """Whether ``step`` satisfies the bound for ``L > 0`` (a non-strict bound tolerates rounding)."""
        b = self.bound(L)
        return step < b if self.strict else step <= b * (1 + 1e-12)


def step_hypothesis(f: FidelityInfo, step: float, rule: StepBound) -> Hypothesis:
    label = rule.label
    if f.L is None:
        return Hypothesis(label, False, "fidelity.lipschitz_grad() is None (gradient not globally Lipschitz, e.g. "
                          "Poisson NLL): the step bound cannot be checked", step)
    if f.L == 0:
        return Hypothesis(label, True, f"L = 0: any step is allowed (step = {fmt(step)})", step)
    bound = rule.bound(f.L)
    return Hypothesis(label, rule.allows(step, f.L),
                      f"step = {fmt(step)}, bound {fmt(bound)} (L = {f.L_text} = {fmt(f.L)})", step)



# ---------------------------------------------------------------------- theories the algorithms declare
@dataclass(frozen=True)
class RunSettings:
    """The numbers of one run that a theorem's hypotheses are checked against.

    ``step`` is the gradient step (PGD/FISTA), ``1/penalty`` (ADMM/DRS/HQS) or the primal step
    (PDHG); ``momentum`` is FISTA's ``a``; ``dual_step`` and ``op_norm_sq`` are PDHG's ``sigma``
    and bound of ``‖K‖²``; ``restart`` is FISTA's adaptive restart scheme (:mod:`pnp.restart`).
    ``split`` describes how a splitting runs the data term through ``z = A x`` (None: it does not;
    see :func:`pnp.algorithms.split_form`); ``smooth_lipschitz`` is the Lipschitz constant of the
    prior's gradient when PDHG takes that gradient (Condat-Vu), else None.
    """

    step: float
    relaxation: float = 1.0
    unsafe: bool = False
    momentum: float = 3.0
    dual_step: float | None = None
    op_norm_sq: float | None = None
    restart: str = "none"
    split: str | None = None
    smooth_lipschitz: float | None = None


class Theory:
    """The convergence theorem an algorithm declares (its class attribute ``theory``).

    :meth:`rule` turns the described terms and the run's numbers into an
    :class:`AssumptionReport`; ``step_bound`` is the gradient-step bound of the theorem, the one
    the algorithm refuses to exceed and the report checks (None when any positive step is allowed).
    Both come from the same object, so the bound is written once. The theorem also decides the
    summable schedule of an iterative prox's inner errors (``inexact_power``, ``inexact_citation``;
    :mod:`pnp.inexact`) and whether safeguarded Anderson acceleration keeps it
    (``anderson_refusal`` None, :meth:`anderson_averaged`; :mod:`pnp.acceleration`).

    Examples
    --------
    >>> class F:
    ...     convex = True
    ...     def lipschitz_grad(self): return 1.0
    ...     def grad(self, x): return x
    >>> class G:
    ...     name, convex, exact_prox = "l1", True, True
    >>> from pnp.assumptions import ForwardBackward
    >>> ForwardBackward().assess("PGD", F(), G(), step=2.5).reason
    'step = 2.5, bound 2 (L = Lip(∇f) = 1)'
    """

    step_bound: StepBound | None = None
    #: decay exponent of the inner-error schedule ``c ‖v_1‖ / k^p`` the theorem needs (pnp.inexact)
    inexact_power: float = 1.0 + DELTA
    #: the theorem that allows summable inner prox errors
    inexact_citation: str = CITATION_FORWARD_BACKWARD
    #: why safeguarded Anderson acceleration cannot keep this theorem; None when it can
    anderson_refusal: str | None = "it is not a fixed-point iteration of an averaged map"

    def inexact_schedule(self) -> InexactSchedule:
        """The inner-error schedule an iterative prox must meet under this theorem."""
        return InexactSchedule(power=self.inexact_power)

    def inexact_hypotheses(self, p: PriorInfo) -> list[Hypothesis]:
        """``[]`` for an exact prox, else the hypothesis "inner prox errors summable" on this schedule."""
        return _inexact_hypothesis(p, self.inexact_schedule(), self.inexact_citation)

    def anderson_averaged(self, report: AssumptionReport, relaxation: float) -> float | None:
        """Averagedness constant of the relaxed plain step, the fallback of the Anderson safeguard."""
        return None if report.alpha is None else relaxation * float(report.alpha)

    def anderson_map(self, a: float) -> str:
        """How the plain step of an accelerated run is the Krasnosel'skii-Mann step (for the report)."""
        return f"the plain step is the Krasnosel'skii-Mann step of the {a:.4g}-averaged iteration map"

    def rule(self, algorithm: str, f: FidelityInfo, p: PriorInfo, s: RunSettings, params: dict) -> AssumptionReport:
        raise NotImplementedError

    def assess(self, algorithm: str, fidelity: Any, prior: Any, *, step: float, relaxation: float = 1.0,
               L: float | None = None, dual_step: float | None = None, op_norm_sq: float | None = None,
               momentum: float = 3.0, unsafe: bool = False, restart: str = "none", split: str | None = None,
               smooth_lipschitz: float | None = None) -> AssumptionReport:
        """The report of ``algorithm`` (a name, for the report) on ``fidelity + prior`` under this theorem.

        The data term's operator is tested first (:func:`operator_hypothesis`): when it is not linear
        with its adjoint, no theorem here applies and the report is "no guarantee", naming the test
        that failed; otherwise that hypothesis heads the theorem's list.
        """
        op_hyp = operator_hypothesis(fidelity)
        if op_hyp is not None and not op_hyp.holds:
            return no_theorem_report(algorithm, op_hyp, {"step": float(step), "relaxation": float(relaxation),
                                                         "fidelity": type(fidelity).__name__}, unsafe)
        f = describe_fidelity(fidelity, L)
        p = describe_prior(prior)
        params: dict[str, Any] = {"step": float(step), "relaxation": float(relaxation), "L": f.L,
                                  "fidelity": f.name, "prior": p.name, "prior_kind": p.kind}
        settings = RunSettings(float(step), float(relaxation), unsafe, momentum, dual_step, op_norm_sq, restart,
                               split, None if smooth_lipschitz is None else float(smooth_lipschitz))
        report = self.rule(algorithm, f, p, settings, params)
        if op_hyp is None:
            return report
        return dataclasses.replace(report, hypotheses=(op_hyp, *report.hypotheses))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

