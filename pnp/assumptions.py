"""Which convergence theorem applies to a run, and whether its hypotheses hold.

:func:`check_assumptions` reads the *declared* properties of the two terms — the data
fidelity (convexity, Lipschitz constant of its gradient ``L``, availability of its prox)
and the prior (convex with a prox, or a denoiser with a :class:`priors.base.Certificate`
giving a Lipschitz bound and an averagedness constant ``alpha``) — together with the
algorithm's step and relaxation, and returns an :class:`AssumptionReport` with a verdict:

``"guaranteed"``
    a theorem applies and every one of its hypotheses holds;
``"not guaranteed"``
    a theorem would apply but at least one hypothesis fails (the reason names it);
``"no guarantee"``
    no convergence theorem is known for this combination (for example a denoiser without
    a certificate, or FISTA with a plug-in denoiser). Never a silent pass.

Each algorithm class owns its theorem: its ``theory`` attribute is a :class:`Theory`
(:class:`ForwardBackward`, :class:`AcceleratedForwardBackward`, :class:`DouglasRachford`,
:class:`HalfQuadratic`, :class:`PrimalDual`) that writes the report and carries the step bound the
algorithm enforces; :func:`check_assumptions` finds it by the class's ``name``.

The facts used (see ``shared/MATH.md``):

* prox of a proper convex lsc function is firmly nonexpansive, i.e. 1/2-averaged
  (Bauschke & Combettes 2017, Prop. 12.28);
* for convex ``f`` with ``L``-Lipschitz gradient and ``τ ∈ (0, 2/L)``, ``I − τ∇f`` is
  ``τL/2``-averaged (∇f is 1/L-cocoercive by the Baillon–Haddad theorem; Bauschke &
  Combettes 2017, Ch. 4 and 18);
* composition of an ``a1``- and an ``a2``-averaged map is averaged with
  ``alpha = (a1 + a2 − 2 a1 a2) / (1 − a1 a2)`` (Combettes & Yamada, J. Math. Anal. Appl.
  425, 2015);
* Krasnosel'skii–Mann: an ``alpha``-averaged map with a fixed point, relaxed with
  ``λ ∈ (0, 1/alpha)``, has iterates converging to a fixed point (Bauschke & Combettes
  2017, Prop. 5.16);
* Douglas–Rachford for two maximally monotone operators (Lions & Mercier 1979; Bauschke &
  Combettes 2017, Thm 26.11); a firmly nonexpansive map defined everywhere is the
  resolvent of a maximally monotone operator (Bauschke & Combettes 2017, Ch. 23), which is
  why PnP-ADMM/DRS need ``alpha <= 1/2`` (Ryu et al., ICML 2019, discuss PnP-ADMM/DRS
  convergence with properly trained denoisers).
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

from pnp.inexact import citation, default_schedule, is_inexact, reports_accuracy

__all__ = [
    "Hypothesis",
    "AssumptionReport",
    "check_assumptions",
    "register_theory",
    "Theory",
    "StepBound",
    "RunSettings",
    "ForwardBackward",
    "AcceleratedForwardBackward",
    "DouglasRachford",
    "HalfQuadratic",
    "PrimalDual",
    "compose_alpha",
    "withdraw",
    "VERDICTS",
]

VERDICTS = ("guaranteed", "not guaranteed", "no guarantee")

_BC = "Bauschke & Combettes, Convex Analysis and Monotone Operator Theory, 2nd ed. 2017"
_CY = "Combettes & Yamada, J. Math. Anal. Appl. 425 (2015)"
_KM = f"Krasnosel'skii-Mann iteration ({_BC}, Prop. 5.16)"


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


# ---------------------------------------------------------------------- term descriptions
@dataclass(frozen=True)
class _FidelityInfo:
    name: str
    convex: bool
    L: float | None
    has_grad: bool
    has_prox: bool
    prox_exact: bool

    @property
    def L_text(self) -> str:
        return "‖A‖²" if self.name == "L2Fidelity" else "Lip(∇f)"


@dataclass(frozen=True)
class _PriorInfo:
    name: str
    kind: str  # "convex" | "certified" | "uncertified"
    alpha: float | None  # averagedness of the prox / denoiser map
    lipschitz: float | None
    exact: bool
    certificate: Any
    detail: str
    accuracy: bool = False  # an iterative prox that certifies its error (pnp.inexact)


def describe_fidelity(fidelity: Any, L: float | None = None) -> _FidelityInfo:
    """Read the declared properties of a data-fidelity term (duck-typed)."""
    if L is None:
        lip = getattr(fidelity, "lipschitz_grad", None)
        L = lip() if callable(lip) else None
    L = None if L is None else float(L)
    has_grad = callable(getattr(fidelity, "grad", None))
    has_prox = callable(getattr(fidelity, "prox", None)) and bool(getattr(fidelity, "has_prox", True))
    op = getattr(fidelity, "operator", None)
    prox_exact = bool(getattr(op, "has_closed_form_normal", False)) if op is not None else False
    return _FidelityInfo(
        name=type(fidelity).__name__,
        convex=bool(getattr(fidelity, "convex", True)),
        L=L,
        has_grad=has_grad,
        has_prox=has_prox,
        prox_exact=prox_exact,
    )


def describe_prior(prior: Any) -> _PriorInfo:
    """Classify a prior: convex with a prox, certified denoiser, or uncertified."""
    name = str(getattr(prior, "name", type(prior).__name__))
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
        return _PriorInfo(
            name, "convex", 0.5, 1.0, exact or not is_inexact(prior), cert,
            f"prox of a convex function ({how}) is firmly nonexpansive, alpha = 1/2 ({_BC}, Prop. 12.28)",
            reports_accuracy(prior),
        )
    if cert is None:
        why = cert_error or "the prior/denoiser has no certificate (certificate() missing or None)"
        return _PriorInfo(name, "uncertified", None, None, False, None, why)
    alpha = getattr(cert, "alpha", None)
    lip = getattr(cert, "lipschitz", None)
    method = getattr(cert, "method", "")
    return _PriorInfo(
        name, "certified", None if alpha is None else float(alpha), None if lip is None else float(lip),
        exact, cert, f"certificate: Lip <= {lip}, alpha = {alpha} ({method})",
    )


# ---------------------------------------------------------------------- helpers
def _fmt(x: float | None) -> str:
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


def _inexact_hypothesis(alg: str, p: _PriorInfo) -> list[Hypothesis]:
    """The hypothesis "inner prox errors summable" of an iterative prox (none for a closed form)."""
    if p.exact:
        return []
    sched = default_schedule(alg)
    if p.accuracy:
        return [Hypothesis(
            "inner prox errors summable", True,
            f"the {p.name} prox is iterative; every call is solved to a certified error bound <= "
            f"{sched.describe()} (summable; {citation(alg)}), checked at every iteration: the verdict is "
            "withdrawn if an inner solve misses it or stops at its cap", sched.power,
        )]
    return [Hypothesis(
        "inner prox errors summable", False,
        f"the {p.name} prox is iterative and certifies no error bound (reports_accuracy is False), so the "
        f"summable-error hypothesis of {citation(alg)} cannot be checked; use a prior with a closed-form or "
        "certified prox",
    )]


def _verdict(hyps: list[Hypothesis]) -> tuple[str, str]:
    failed = [h for h in hyps if not h.holds]
    if not failed:
        return "guaranteed", ""
    h = failed[0]
    return "not guaranteed", (h.detail or h.name)


def _certificate_hypotheses(p: _PriorInfo) -> list[Hypothesis]:
    """Sanity of a denoiser certificate: averaged ⇒ nonexpansive; adversarial estimate below bound."""
    hyps = []
    if p.lipschitz is not None and p.alpha is not None:
        hyps.append(Hypothesis(
            "certified Lip(D) <= 1 (implied by averagedness)", p.lipschitz <= 1.0 + 1e-9,
            f"certified Lip(D) = {_fmt(p.lipschitz)}", p.lipschitz,
        ))
    emp = getattr(p.certificate, "empirical", None)
    if emp is not None and p.lipschitz is not None:
        hyps.append(Hypothesis(
            "adversarial Lip estimate <= certified bound", emp <= p.lipschitz * (1 + 1e-6),
            f"empirical {_fmt(emp)} vs certified {_fmt(p.lipschitz)}", float(emp),
        ))
    return hyps


def _no_certificate(algorithm: str, p: _PriorInfo, params: dict) -> AssumptionReport:
    return AssumptionReport(
        algorithm=algorithm,
        verdict="no guarantee",
        theorem="",
        hypotheses=(Hypothesis("denoiser has a certificate", False, p.detail),),
        reason=f"no guarantee without a certificate: {p.detail}",
        params=params,
    )


def _relaxation_hypothesis(relaxation: float, alpha: float | None, hi_default: float = 2.0) -> tuple[Hypothesis, tuple[float, float]]:
    hi = (1.0 / alpha) if alpha is not None else hi_default
    ok = 0.0 < relaxation < hi
    return (
        Hypothesis(
            "relaxation in (0, 1/alpha)", ok,
            f"relaxation = {_fmt(relaxation)}, allowed (0, {_fmt(hi)})", relaxation,
        ),
        (0.0, hi),
    )


def _lipschitz_hypothesis(f: _FidelityInfo) -> Hypothesis:
    if f.L is None:
        return Hypothesis("∇f globally Lipschitz", False,
                          f"{f.name}: gradient not globally Lipschitz (lipschitz_grad() is None); the forward-backward "
                          "step bound does not apply")
    return Hypothesis("∇f globally Lipschitz", True, f"L = {f.L_text} = {_fmt(f.L)}", f.L)


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


def _step_hypothesis(f: _FidelityInfo, step: float, rule: StepBound) -> Hypothesis:
    label = rule.label
    if f.L is None:
        return Hypothesis(label, False, "fidelity.lipschitz_grad() is None (gradient not globally Lipschitz, e.g. "
                          "Poisson NLL): the step bound cannot be checked", step)
    if f.L == 0:
        return Hypothesis(label, True, f"L = 0: any step is allowed (step = {_fmt(step)})", step)
    bound = rule.bound(f.L)
    return Hypothesis(label, rule.allows(step, f.L),
                      f"step = {_fmt(step)}, bound {_fmt(bound)} (L = {f.L_text} = {_fmt(f.L)})", step)


# ---------------------------------------------------------------------- per algorithm
def _report_pgd(alg: str, f: _FidelityInfo, p: _PriorInfo, step: float, relaxation: float, unsafe: bool,
                params: dict, rule: StepBound) -> AssumptionReport:
    if p.kind == "uncertified":
        return _no_certificate(alg, p, params)
    hyps = [
        Hypothesis("fidelity convex", f.convex, f"{f.name} declares convex={f.convex}"),
        _lipschitz_hypothesis(f),
        _step_hypothesis(f, step, rule),
    ]
    a1 = None
    if f.L is not None and f.L > 0 and step * f.L < 2:  # I - step ∇f is (step L / 2)-averaged
        a1 = max(step * f.L / 2.0, 1e-300)
    elif f.L == 0:
        a1 = 1e-300  # identity gradient step: 0-averaged in the limit
    if p.kind == "convex":
        hyps.append(Hypothesis("prior convex with a prox (exact or to tolerance)", True, p.detail))
        hyps.extend(_inexact_hypothesis(alg, p))
        a2 = 0.5
        theorem = (f"Forward-backward splitting (Combettes & Wajs 2005, Thm 3.4; {_BC}, Cor. 28.9); "
                   f"averagedness by composition ({_CY}) and {_KM}")
    else:
        holds = p.alpha is not None
        hyps.append(Hypothesis("denoiser is averaged (certificate alpha)", holds, p.detail, p.alpha))
        hyps.extend(_certificate_hypotheses(p))
        a2 = p.alpha
        theorem = f"PnP forward-backward: composition of averaged maps ({_CY}) and {_KM}"
    alpha = compose_alpha(a1, a2) if (a1 is not None and a2 is not None) else None
    if alpha is not None:
        rh, rng = _relaxation_hypothesis(relaxation, alpha)
        hyps.append(rh)
    else:
        rng = None
    verdict, reason = _verdict(hyps)
    if p.kind == "convex":
        conclusion = (f"iteration map is alpha-averaged (alpha = {_fmt(alpha)}); iterates converge to a minimiser "
                      "of f + g when one exists and the objective decreases monotonically")
    else:
        conclusion = (f"iteration map is alpha-averaged (alpha = {_fmt(alpha)}); converges to a fixed point when "
                      "one exists (Krasnosel'skii-Mann)")
    return AssumptionReport(alg, verdict, theorem, tuple(hyps), conclusion if verdict == "guaranteed" else "",
                            reason, alpha, rng, unsafe and verdict != "guaranteed", params)


def _report_fista(alg: str, f: _FidelityInfo, p: _PriorInfo, step: float, a: float, unsafe: bool, params: dict,
                  rule: StepBound) -> AssumptionReport:
    if p.kind == "uncertified":
        return _no_certificate(alg, p, params)
    if p.kind == "certified":
        return AssumptionReport(
            alg, "no guarantee", "",
            (Hypothesis("prior is the prox of a convex function", False, p.detail),),
            reason=("no convergence theorem for FISTA with a plug-in denoiser: the momentum step breaks the "
                    "averaged-operator (Krasnosel'skii-Mann) argument even for an averaged denoiser; use PGD"),
            params=params,
        )
    hyps = [
        Hypothesis("fidelity convex", f.convex, f"{f.name} declares convex={f.convex}"),
        _lipschitz_hypothesis(f),
        _step_hypothesis(f, step, rule),
        Hypothesis("prior convex with a prox (exact or to tolerance)", True, p.detail),
        *_inexact_hypothesis(alg, p),
        Hypothesis("momentum parameter a > 2", a > 2, f"a = {_fmt(a)} (a = 2 gives the Beck-Teboulle rate only)", a),
    ]
    verdict, reason = _verdict(hyps)
    theorem = ("FISTA: F(x_k) - F* = O(1/k^2) (Beck & Teboulle, SIAM J. Imaging Sci. 2009, Thm 4.4); iterates "
               "converge for a > 2 (Chambolle & Dossal, JOTA 2015)")
    conclusion = "objective converges at rate O(1/k^2) and iterates converge to a minimiser of f + g"
    return AssumptionReport(alg, verdict, theorem, tuple(hyps), conclusion if verdict == "guaranteed" else "",
                            reason, None, None, unsafe and verdict != "guaranteed", params)


def _report_drs(alg: str, f: _FidelityInfo, p: _PriorInfo, step: float, relaxation: float, unsafe: bool,
                params: dict, admm: bool) -> AssumptionReport:
    if p.kind == "uncertified":
        return _no_certificate(alg, p, params)
    fprox = "closed form" if f.prox_exact else "computed to a tolerance (or closed form)"
    hyps = [
        Hypothesis("fidelity convex with a prox", f.convex and f.has_prox,
                   f"{f.name}: convex={f.convex}, prox {'available, ' + fprox if f.has_prox else 'missing'}"),
        Hypothesis("step (= 1/penalty) > 0", step > 0, f"step = {_fmt(step)}", step),
    ]
    if p.kind == "convex":
        hyps.append(Hypothesis("prior convex with a prox (exact or to tolerance)", True, p.detail))
        hyps.extend(_inexact_hypothesis(alg, p))
        theorem = (f"Douglas-Rachford splitting (Lions & Mercier 1979; {_BC}, Thm 26.11)"
                   + ("; ADMM is Douglas-Rachford on the dual (Gabay 1983; Eckstein & Bertsekas 1992)"
                      if admm else ""))
        conclusion = "the governing sequence converges; the estimate converges to a minimiser of f + g when one exists"
    else:
        firm = p.alpha is not None and p.alpha <= 0.5 + 1e-12
        if p.alpha is None:
            detail = f"denoiser certificate gives no averagedness constant; PnP-{alg} needs firm nonexpansiveness ({p.detail})"
        elif not firm:
            detail = (f"denoiser is alpha-averaged with alpha = {_fmt(p.alpha)} > 1/2; PnP-ADMM/DRS need firm "
                      "nonexpansiveness")
        else:
            detail = f"alpha = {_fmt(p.alpha)} <= 1/2 ({p.detail})"
        hyps.append(Hypothesis("denoiser firmly nonexpansive (alpha <= 1/2)", firm, detail, p.alpha))
        hyps.extend(_certificate_hypotheses(p))
        theorem = (f"Douglas-Rachford with a firmly nonexpansive denoiser, i.e. the resolvent of a maximally monotone "
                   f"operator ({_BC}, Ch. 23 and Thm 26.11; Ryu et al., ICML 2019"
                   + ("; PnP-ADMM is PnP-DRS after a change of variables" if admm else "") + ")")
        conclusion = "the iteration map is 1/2-averaged; converges to a fixed point when one exists"
    # the Douglas-Rachford operator (I + R_g R_f)/2 is 1/2-averaged when both reflections are nonexpansive
    alpha = 0.5
    rh, rng = _relaxation_hypothesis(relaxation, alpha)
    hyps.append(rh)
    verdict, reason = _verdict(hyps)
    return AssumptionReport(alg, verdict, theorem, tuple(hyps), conclusion if verdict == "guaranteed" else "",
                            reason, alpha if verdict == "guaranteed" else None, rng,
                            unsafe and verdict != "guaranteed", params)


def _report_hqs(alg: str, f: _FidelityInfo, p: _PriorInfo, step: float, relaxation: float, unsafe: bool,
                params: dict) -> AssumptionReport:
    if p.kind == "uncertified":
        return _no_certificate(alg, p, params)
    hyps = [
        Hypothesis("fidelity convex with a prox", f.convex and f.has_prox,
                   f"{f.name}: convex={f.convex}, prox {'available' if f.has_prox else 'missing'}"),
        Hypothesis("step > 0", step > 0, f"step = {_fmt(step)}", step),
    ]
    if p.kind == "convex":
        hyps.append(Hypothesis("prior convex with a prox (exact or to tolerance)", True, p.detail))
        hyps.extend(_inexact_hypothesis(alg, p))
        a2 = 0.5
        theorem = (f"HQS with a fixed step is forward-backward on g + (Moreau envelope of f with parameter step) "
                   f"({_BC}, Ch. 12 and Cor. 28.9), i.e. a composition of two firmly nonexpansive maps ({_CY}) "
                   f"and {_KM}")
        conclusion = ("iteration map is alpha-averaged (alpha = {a}); converges to a minimiser of g + env_step(f), "
                      "the penalised problem, which differs from f + g by O(step)")
    else:
        hyps.append(Hypothesis("denoiser is averaged (certificate alpha)", p.alpha is not None, p.detail, p.alpha))
        hyps.extend(_certificate_hypotheses(p))
        a2 = p.alpha
        theorem = (f"composition of the firmly nonexpansive prox of f with an averaged denoiser ({_CY}) and {_KM}; "
                   "no general theorem characterises the limit as a minimiser")
        conclusion = ("iteration map is alpha-averaged (alpha = {a}); converges to a fixed point of "
                      "D o prox_(step f) when one exists")
    alpha = compose_alpha(0.5, a2) if a2 is not None else None
    rng = None
    if alpha is not None:
        rh, rng = _relaxation_hypothesis(relaxation, alpha)
        hyps.append(rh)
    verdict, reason = _verdict(hyps)
    return AssumptionReport(alg, verdict, theorem, tuple(hyps),
                            conclusion.format(a=_fmt(alpha)) if verdict == "guaranteed" else "",
                            reason, alpha, rng, unsafe and verdict != "guaranteed", params)


def _report_pdhg(alg: str, f: _FidelityInfo, p: _PriorInfo, step: float, dual_step: float, op_norm_sq: float | None,
                 unsafe: bool, params: dict, admits: Callable[[float, float, float], bool]) -> AssumptionReport:
    if p.kind == "uncertified":
        return _no_certificate(alg, p, params)
    if p.kind == "certified":
        return AssumptionReport(
            alg, "no guarantee", "",
            (Hypothesis("prior is a convex function composed with a linear operator", False, p.detail),),
            reason="no convergence theorem for PDHG with a plug-in denoiser (its dual step needs a convex conjugate)",
            params=params,
        )
    prod = None if op_norm_sq is None else step * dual_step * op_norm_sq
    hyps = [
        Hypothesis("fidelity convex with a prox", f.convex and f.has_prox,
                   f"{f.name}: convex={f.convex}, prox {'available' if f.has_prox else 'missing'}"),
        Hypothesis("prior convex, g(Kx) with prox of g* available", True, p.detail),
        Hypothesis("tau * sigma * ‖K‖² < 1", op_norm_sq is not None and admits(step, dual_step, op_norm_sq),
                   f"tau = {_fmt(step)}, sigma = {_fmt(dual_step)}, ‖K‖² <= {_fmt(op_norm_sq)}, product = {_fmt(prod)}",
                   prod),
    ]
    verdict, reason = _verdict(hyps)
    theorem = "Primal-dual hybrid gradient (Chambolle & Pock, J. Math. Imaging Vis. 2011, Thm 1, theta = 1)"
    conclusion = "(x_k, p_k) converges to a saddle point; x_k to a minimiser of f + g(K .) when one exists"
    return AssumptionReport(alg, verdict, theorem, tuple(hyps), conclusion if verdict == "guaranteed" else "",
                            reason, None, None, unsafe and verdict != "guaranteed", params)


# ---------------------------------------------------------------------- theories the algorithms declare
@dataclass(frozen=True)
class RunSettings:
    """The numbers of one run that a theorem's hypotheses are checked against.

    ``step`` is the gradient step (PGD/FISTA), ``1/penalty`` (ADMM/DRS/HQS) or the primal step
    (PDHG); ``momentum`` is FISTA's ``a``; ``dual_step`` and ``op_norm_sq`` are PDHG's ``sigma``
    and bound of ``‖K‖²``.
    """

    step: float
    relaxation: float = 1.0
    unsafe: bool = False
    momentum: float = 3.0
    dual_step: float | None = None
    op_norm_sq: float | None = None


class Theory:
    """The convergence theorem an algorithm declares (its class attribute ``theory``).

    :meth:`rule` turns the described terms and the run's numbers into an
    :class:`AssumptionReport`; ``step_bound`` is the gradient-step bound of the theorem, the one
    the algorithm refuses to exceed and the report checks (None when any positive step is allowed).
    Both come from the same object, so the bound is written once.

    Examples
    --------
    >>> class F:
    ...     convex = True
    ...     def lipschitz_grad(self): return 1.0
    ...     def grad(self, x): return x
    >>> class G:
    ...     name, convex, exact_prox = "l1", True, True
    >>> ForwardBackward().assess("PGD", F(), G(), step=2.5).reason
    'step = 2.5, bound 2 (L = Lip(∇f) = 1)'
    """

    step_bound: StepBound | None = None

    def rule(self, algorithm: str, f: _FidelityInfo, p: _PriorInfo, s: RunSettings, params: dict) -> AssumptionReport:
        raise NotImplementedError

    def assess(self, algorithm: str, fidelity: Any, prior: Any, *, step: float, relaxation: float = 1.0,
               L: float | None = None, dual_step: float | None = None, op_norm_sq: float | None = None,
               momentum: float = 3.0, unsafe: bool = False) -> AssumptionReport:
        """The report of ``algorithm`` (a name, for the report) on ``fidelity + prior`` under this theorem."""
        f = describe_fidelity(fidelity, L)
        p = describe_prior(prior)
        params: dict[str, Any] = {"step": float(step), "relaxation": float(relaxation), "L": f.L,
                                  "fidelity": f.name, "prior": p.name, "prior_kind": p.kind}
        settings = RunSettings(float(step), float(relaxation), unsafe, momentum, dual_step, op_norm_sq)
        return self.rule(algorithm, f, p, settings, params)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ForwardBackward(Theory):
    """Forward-backward splitting (PGD), and PnP-PGD with an averaged denoiser: ``step < 2/L``."""

    step_bound = StepBound(2.0, strict=True)

    def rule(self, algorithm: str, f: _FidelityInfo, p: _PriorInfo, s: RunSettings, params: dict) -> AssumptionReport:
        return _report_pgd(algorithm, f, p, s.step, s.relaxation, s.unsafe, params, self.step_bound)


class AcceleratedForwardBackward(Theory):
    """FISTA with Chambolle-Dossal momentum, convex priors only: ``step <= 1/L``, ``a > 2``."""

    step_bound = StepBound(1.0, strict=False)

    def rule(self, algorithm: str, f: _FidelityInfo, p: _PriorInfo, s: RunSettings, params: dict) -> AssumptionReport:
        params["momentum"] = float(s.momentum)
        return _report_fista(algorithm, f, p, s.step, float(s.momentum), s.unsafe, params, self.step_bound)


class DouglasRachford(Theory):
    """Douglas-Rachford splitting (DRS); ``admm=True`` for ADMM, Douglas-Rachford on the dual."""

    def __init__(self, *, admm: bool = False) -> None:
        self.admm = bool(admm)

    def rule(self, algorithm: str, f: _FidelityInfo, p: _PriorInfo, s: RunSettings, params: dict) -> AssumptionReport:
        return _report_drs(algorithm, f, p, s.step, s.relaxation, s.unsafe, params, self.admm)

    def __repr__(self) -> str:
        return f"DouglasRachford(admm={self.admm})"


class HalfQuadratic(Theory):
    """Half-quadratic splitting with a fixed penalty (HQS): forward-backward on a Moreau envelope."""

    def rule(self, algorithm: str, f: _FidelityInfo, p: _PriorInfo, s: RunSettings, params: dict) -> AssumptionReport:
        return _report_hqs(algorithm, f, p, s.step, s.relaxation, s.unsafe, params)


class PrimalDual(Theory):
    """Chambolle-Pock primal-dual hybrid gradient (PDHG): ``tau sigma ‖K‖² < 1``."""

    @staticmethod
    def admits(step: float, dual_step: float, op_norm_sq: float) -> bool:
        """The step condition of the theorem (Chambolle & Pock 2011, Thm 1)."""
        return step * dual_step * op_norm_sq < 1.0

    def rule(self, algorithm: str, f: _FidelityInfo, p: _PriorInfo, s: RunSettings, params: dict) -> AssumptionReport:
        params.update(dual_step=s.dual_step, op_norm_sq=s.op_norm_sq)
        if s.dual_step is None:
            raise ValueError(f"dual_step is required for {algorithm} assumption checks")
        return _report_pdhg(algorithm, f, p, s.step, float(s.dual_step), s.op_norm_sq, s.unsafe, params,
                            self.admits)


# name (upper case) -> (name, theory); filled by pnp.run.Algorithm for every subclass declaring a theory
_THEORIES: dict[str, tuple[str, Theory]] = {}


def register_theory(name: str, theory: Theory) -> None:
    """Let :func:`check_assumptions` find ``theory`` under ``name`` (case-insensitive).

    Every :class:`pnp.run.Algorithm` subclass that sets ``name`` and ``theory`` is registered
    when it is defined; a later class of the same name replaces the earlier one.
    """
    if not isinstance(theory, Theory):
        raise TypeError(f"theory must be a pnp.assumptions.Theory, got {type(theory).__name__}")
    _THEORIES[name.upper()] = (name, theory)


def check_assumptions(
    algorithm: str,
    fidelity: Any,
    prior: Any,
    *,
    step: float,
    relaxation: float = 1.0,
    L: float | None = None,
    dual_step: float | None = None,
    op_norm_sq: float | None = None,
    momentum: float = 3.0,
    unsafe: bool = False,
) -> AssumptionReport:
    """Report which convergence theorem applies to ``algorithm`` on ``f + g`` and whether it holds.

    Parameters
    ----------
    algorithm : str
        The ``name`` of an algorithm class, any case: ``"PGD"``, ``"FISTA"``, ``"ADMM"``, ``"DRS"``,
        ``"HQS"``, ``"PDHG"`` or one defined elsewhere. Its class's :class:`Theory` makes the report
        (this function is the lookup by name; an algorithm instance calls its theory directly).
    fidelity : DataFidelity
        Data term; read: ``convex`` (default True), ``lipschitz_grad()``, ``grad``, ``prox``,
        ``has_prox``, ``smooth``, ``operator.has_closed_form_normal``.
    prior : Prior
        Prior; read: ``convex``, ``exact_prox``, ``certificate()``.
    step : float
        Gradient step (PGD/FISTA), prox parameter ``1/penalty`` (ADMM/DRS/HQS) or primal step
        ``tau`` (PDHG).
    relaxation : float
        Krasnosel'skii–Mann relaxation ``λ``.
    L : float, optional
        Lipschitz constant of ``∇f`` when already known (otherwise ``fidelity.lipschitz_grad()``).
    dual_step, op_norm_sq : float, optional
        PDHG dual step ``sigma`` and an upper bound of ``‖K‖²``.
    momentum : float
        FISTA parameter ``a`` (Chambolle–Dossal).
    unsafe : bool
        Whether the algorithm runs with ``unsafe=True`` (recorded in the report).

    Returns
    -------
    AssumptionReport

    Examples
    --------
    >>> class F:  # a stand-in L2 fidelity with ‖A‖ = 1
    ...     convex = True
    ...     def lipschitz_grad(self): return 1.0
    ...     def grad(self, x): return x
    ...     def prox(self, v, tau): return v
    >>> class G:
    ...     name, convex, exact_prox = "l1", True, True
    >>> check_assumptions("PGD", F(), G(), step=1.0).verdict
    'guaranteed'
    """
    entry = _THEORIES.get(str(algorithm).upper())
    if entry is None:
        raise ValueError(f"algorithm must be one of {', '.join(n for n, _ in _THEORIES.values())}, got {algorithm!r}")
    name, theory = entry
    return theory.assess(name, fidelity, prior, step=step, relaxation=relaxation, L=L, dual_step=dual_step,
                         op_norm_sq=op_norm_sq, momentum=momentum, unsafe=unsafe)

