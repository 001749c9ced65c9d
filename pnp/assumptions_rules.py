"""The theorems the algorithms declare (their class attribute ``theory``), one :class:`Theory` each.

Forward-backward (PGD), accelerated forward-backward (FISTA, with or without adaptive restart),
Douglas-Rachford (DRS, ADMM), half-quadratic splitting (HQS) and primal-dual (PDHG). Each
subclass turns the described terms and a run's numbers into an :class:`AssumptionReport` and
carries what else its theorem decides: the gradient-step bound, the summable inner-error schedule
of an iterative prox (:mod:`pnp.inexact`), and whether safeguarded Anderson acceleration
(:mod:`pnp.acceleration`) keeps it. Re-exported by :mod:`pnp.assumptions`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from pnp.assumptions_report import BC17, CY15, KM_ITER, AssumptionReport, Hypothesis, compose_alpha, fmt, verdict_of
from pnp.assumptions_terms import (
    FidelityInfo,
    PriorInfo,
    RunSettings,
    StepBound,
    Theory,
    certificate_hypotheses,
    lipschitz_hypothesis,
    no_certificate_report,
    relaxation_hypothesis,
    step_hypothesis,
)
from pnp.inexact import CITATION_ACCELERATED, CITATION_ADMM, CITATION_DRS, DELTA
from pnp.restart import CITATION

__all__ = ["ForwardBackward", "AcceleratedForwardBackward", "DouglasRachford", "HalfQuadratic", "PrimalDual"]


def _fidelity_prox_hypothesis(f: FidelityInfo, how: str = "") -> Hypothesis:
    """"fidelity convex with a prox" (the splittings that call prox_{step f})."""
    prox = ("available" + (f", {how}" if how else "")) if f.has_prox else "missing"
    return Hypothesis("fidelity convex with a prox", f.convex and f.has_prox,
                      f"{f.name}: convex={f.convex}, prox {prox}")


def _convex_prior_hypotheses(p: PriorInfo, inexact: list[Hypothesis]) -> list[Hypothesis]:
    """A convex prior's prox is firmly nonexpansive; an iterative one adds its summable-error hypothesis."""
    return [Hypothesis("prior convex with a prox (exact or to tolerance)", True, p.detail), *inexact]


def _no_denoiser_theorem(alg: str, needed: str, p: PriorInfo, params: dict, reason: str) -> AssumptionReport:
    """"no guarantee" for a theorem that needs a convex prior and got a (certified) denoiser."""
    return AssumptionReport(alg, "no guarantee", "", (Hypothesis(needed, False, p.detail),), reason=reason,
                            params=params)


KL_THEOREM = ("gradient descent on a smooth nonconvex objective with the Kurdyka-Lojasiewicz property (Attouch, "
              "Bolte & Svaiter, Math. Program. 137 (2013), Thm 3.2 with sufficient decrease (H1) for step < 2/L "
              "and relative error (H2); semi-algebraic functions are KL: Bolte, Daniilidis & Lewis 2007)")


def _weakly_convex(f: FidelityInfo, p: PriorInfo) -> bool:
    """A smooth objective f + lam R with R weakly convex whose modulus is not covered by f (a nonconvex F)."""
    return p.kind == "convex" and p.exact and not f.convex and f.nonconvexity is not None and f.nonconvexity > 0


def _report_nonconvex_gradient(alg: str, f: FidelityInfo, step: float, relaxation: float, unsafe: bool,
                               params: dict, rule: StepBound) -> AssumptionReport:
    """Gradient descent on F = f + lam R, R weakly convex and F not convex: a stationary point, never a minimiser."""
    params["nonconvexity"] = f.nonconvexity
    eff = step * relaxation
    hyps = [
        Hypothesis("objective smooth, weakly convex with a certified modulus", True,
                   f"{f.name}: F + (w/2)||.||^2 is convex for w = {fmt(f.nonconvexity)} (the prior's certified weak "
                   "convexity minus the data term's strong convexity); F itself is not convex"),
        Hypothesis("objective semi-algebraic (Kurdyka-Lojasiewicz)", f.semialgebraic,
                   "least squares plus a piecewise-polynomial ridge penalty" if f.semialgebraic else
                   f"{f.name}: no semi-algebraic / KL structure declared (semialgebraic is False)"),
        lipschitz_hypothesis(f),
        step_hypothesis(f, eff, rule),
    ]
    verdict, reason = verdict_of(hyps)
    conclusion = ("the objective is nonincreasing and, when the iterates stay bounded, they converge to a "
                  "stationary point of the nonconvex objective (not necessarily a global minimiser)")
    return AssumptionReport(alg, verdict, KL_THEOREM, tuple(hyps), conclusion if verdict == "guaranteed" else "",
                            reason, None, None, unsafe and verdict != "guaranteed", params)


def _report_pgd(alg: str, f: FidelityInfo, p: PriorInfo, step: float, relaxation: float, unsafe: bool,
                params: dict, rule: StepBound, inexact: list[Hypothesis]) -> AssumptionReport:
    if p.kind == "uncertified":
        return no_certificate_report(alg, p, params)
    if _weakly_convex(f, p):
        return _report_nonconvex_gradient(alg, f, step, relaxation, unsafe, params, rule)
    hyps = [
        Hypothesis("fidelity convex", f.convex, f"{f.name} declares convex={f.convex}"),
        lipschitz_hypothesis(f),
        step_hypothesis(f, step, rule),
    ]
    a1 = None
    if f.L is not None and f.L > 0 and step * f.L < 2:  # I - step ∇f is (step L / 2)-averaged
        a1 = max(step * f.L / 2.0, 1e-300)
    elif f.L == 0:
        a1 = 1e-300  # identity gradient step: 0-averaged in the limit
    if p.kind == "convex":
        hyps.extend(_convex_prior_hypotheses(p, inexact))
        a2 = 0.5
        theorem = (f"Forward-backward splitting (Combettes & Wajs 2005, Thm 3.4; {BC17}, Cor. 28.9); "
                   f"averagedness by composition ({CY15}) and {KM_ITER}")
    else:
        holds = p.alpha is not None
        hyps.append(Hypothesis("denoiser is averaged (certificate alpha)", holds, p.detail, p.alpha))
        hyps.extend(certificate_hypotheses(p))
        a2 = p.alpha
        theorem = f"PnP forward-backward: composition of averaged maps ({CY15}) and {KM_ITER}"
    alpha = compose_alpha(a1, a2) if (a1 is not None and a2 is not None) else None
    if alpha is not None:
        rh, rng = relaxation_hypothesis(relaxation, alpha)
        hyps.append(rh)
    else:
        rng = None
    verdict, reason = verdict_of(hyps)
    if p.kind == "convex":
        conclusion = (f"iteration map is alpha-averaged (alpha = {fmt(alpha)}); iterates converge to a minimiser "
                      "of f + g when one exists and the objective decreases monotonically")
    else:
        conclusion = (f"iteration map is alpha-averaged (alpha = {fmt(alpha)}); converges to a fixed point when "
                      "one exists (Krasnosel'skii-Mann)")
    return AssumptionReport(alg, verdict, theorem, tuple(hyps), conclusion if verdict == "guaranteed" else "",
                            reason, alpha, rng, unsafe and verdict != "guaranteed", params)


def _report_fista(alg: str, f: FidelityInfo, p: PriorInfo, step: float, a: float, unsafe: bool, params: dict,
                  rule: StepBound, inexact: list[Hypothesis]) -> AssumptionReport:
    if p.kind == "uncertified":
        return no_certificate_report(alg, p, params)
    if _weakly_convex(f, p):
        return AssumptionReport(alg, "no guarantee", "", (Hypothesis(
            "objective convex", False, f"{f.name}: weakly convex with modulus {fmt(f.nonconvexity)}, not convex"),),
            reason="no convergence theorem for FISTA on a nonconvex objective; use PGD (stationary point, "
                   "Kurdyka-Lojasiewicz)", params=params)
    if p.kind == "certified":
        return _no_denoiser_theorem(alg, "prior is the prox of a convex function", p, params,
                                    "no convergence theorem for FISTA with a plug-in denoiser: the momentum step "
                                    "breaks the averaged-operator (Krasnosel'skii-Mann) argument even for an averaged "
                                    "denoiser; use PGD")
    hyps = [
        Hypothesis("fidelity convex", f.convex, f"{f.name} declares convex={f.convex}"),
        lipschitz_hypothesis(f),
        step_hypothesis(f, step, rule),
        *_convex_prior_hypotheses(p, inexact),
        Hypothesis("momentum parameter a > 2", a > 2, f"a = {fmt(a)} (a = 2 gives the Beck-Teboulle rate only)", a),
    ]
    verdict, reason = verdict_of(hyps)
    theorem = ("FISTA: F(x_k) - F* = O(1/k^2) (Beck & Teboulle, SIAM J. Imaging Sci. 2009, Thm 4.4); iterates "
               "converge for a > 2 (Chambolle & Dossal, JOTA 2015)")
    conclusion = "objective converges at rate O(1/k^2) and iterates converge to a minimiser of f + g"
    return AssumptionReport(alg, verdict, theorem, tuple(hyps), conclusion if verdict == "guaranteed" else "",
                            reason, None, None, unsafe and verdict != "guaranteed", params)


def _split_of(f: FidelityInfo, s: RunSettings) -> str | None:
    """How the data term runs through z = A x: the algorithm's description, or None when it does not split.

    A check by name (no algorithm instance) splits exactly where the algorithms do for ADMM / DRS:
    a data term without a prox that has one in z = A x."""
    if s.split is not None:
        return s.split
    if not f.has_prox and f.has_data_prox:
        return f"data term {f.name} through z = A x (its prox in z)"
    return None


SPLIT_ADMM = ("ADMM with the split z = A x: min F(z) + g(v) subject to (z, v) = (A x, x), x -> (A x, x) injective "
              "(Figueiredo & Bioucas-Dias, IEEE Trans. Image Process. 19 (2010)); ADMM is Douglas-Rachford on the "
              f"dual (Gabay 1983; Eckstein & Bertsekas, Math. Program. 55 (1992), Thm 8; {BC17}, Thm 26.11)")
SPLIT_DRS = ("Douglas-Rachford splitting on the pairs (x, z): g(x) + F(z) and the indicator of the graph z = A x, "
             "whose prox is the graph projection (Lions & Mercier 1979; "
             f"{BC17}, Thm 26.11; Parikh & Boyd, Proximal Algorithms 2014, Sec. 4.4)")


def _report_drs(alg: str, f: FidelityInfo, p: PriorInfo, step: float, relaxation: float, unsafe: bool,
                params: dict, admm: bool, inexact: list[Hypothesis], split: str | None = None) -> AssumptionReport:
    if p.kind == "uncertified":
        return no_certificate_report(alg, p, params)
    fprox = "closed form" if f.prox_exact else "computed to a tolerance (or closed form)"
    if split is not None:
        params["split"] = "z = A x"
        fid = Hypothesis("data term convex with a closed-form prox in z = A x (no Lipschitz gradient needed)",
                         f.convex and f.has_data_prox,
                         f"{f.name}: convex={f.convex}, prox in z {'available' if f.has_data_prox else 'missing'}; "
                         f"{split}")
    else:
        fid = _fidelity_prox_hypothesis(f, fprox)
    hyps = [fid, Hypothesis("step (= 1/penalty) > 0", step > 0, f"step = {fmt(step)}", step)]
    if p.kind == "convex":
        hyps.extend(_convex_prior_hypotheses(p, inexact))
        if split is not None:
            theorem = SPLIT_ADMM if admm else SPLIT_DRS
        else:
            theorem = (f"Douglas-Rachford splitting (Lions & Mercier 1979; {BC17}, Thm 26.11)"
                       + ("; ADMM is Douglas-Rachford on the dual (Gabay 1983; Eckstein & Bertsekas 1992)"
                          if admm else ""))
        conclusion = "the governing sequence converges; the estimate converges to a minimiser of f + g when one exists"
    else:
        firm = p.alpha is not None and p.alpha <= 0.5 + 1e-12
        if p.alpha is None:
            detail = f"denoiser certificate gives no averagedness constant; PnP-{alg} needs firm nonexpansiveness ({p.detail})"
        elif not firm:
            detail = (f"denoiser is alpha-averaged with alpha = {fmt(p.alpha)} > 1/2; PnP-ADMM/DRS need firm "
                      "nonexpansiveness")
        else:
            detail = f"alpha = {fmt(p.alpha)} <= 1/2 ({p.detail})"
        hyps.append(Hypothesis("denoiser firmly nonexpansive (alpha <= 1/2)", firm, detail, p.alpha))
        hyps.extend(certificate_hypotheses(p))
        theorem = (f"Douglas-Rachford with a firmly nonexpansive denoiser, i.e. the resolvent of a maximally monotone "
                   f"operator ({BC17}, Ch. 23 and Thm 26.11; Ryu et al., ICML 2019"
                   + ("; PnP-ADMM is PnP-DRS after a change of variables" if admm else "") + ")")
        if split is not None:  # (D, prox_F) is firmly nonexpansive on the pairs, the graph projection too
            theorem = ("Douglas-Rachford on the pairs (x, z) with the firmly nonexpansive map (D, prox_F) and the "
                       f"projection onto the graph z = A x ({BC17}, Ch. 23 and Thm 26.11; Ryu et al., ICML 2019)")
        conclusion = "the iteration map is 1/2-averaged; converges to a fixed point when one exists"
    # the Douglas-Rachford operator (I + R_g R_f)/2 is 1/2-averaged when both reflections are nonexpansive
    alpha = 0.5
    rh, rng = relaxation_hypothesis(relaxation, alpha)
    hyps.append(rh)
    verdict, reason = verdict_of(hyps)
    return AssumptionReport(alg, verdict, theorem, tuple(hyps), conclusion if verdict == "guaranteed" else "",
                            reason, alpha if verdict == "guaranteed" else None, rng,
                            unsafe and verdict != "guaranteed", params)


def _report_hqs(alg: str, f: FidelityInfo, p: PriorInfo, step: float, relaxation: float, unsafe: bool,
                params: dict, inexact: list[Hypothesis]) -> AssumptionReport:
    if p.kind == "uncertified":
        return no_certificate_report(alg, p, params)
    hyps = [_fidelity_prox_hypothesis(f), Hypothesis("step > 0", step > 0, f"step = {fmt(step)}", step)]
    if p.kind == "convex":
        hyps.extend(_convex_prior_hypotheses(p, inexact))
        a2 = 0.5
        theorem = (f"HQS with a fixed step is forward-backward on g + (Moreau envelope of f with parameter step) "
                   f"({BC17}, Ch. 12 and Cor. 28.9), i.e. a composition of two firmly nonexpansive maps ({CY15}) "
                   f"and {KM_ITER}")
        conclusion = ("iteration map is alpha-averaged (alpha = {a}); converges to a minimiser of g + env_step(f), "
                      "the penalised problem, which differs from f + g by O(step)")
    else:
        hyps.append(Hypothesis("denoiser is averaged (certificate alpha)", p.alpha is not None, p.detail, p.alpha))
        hyps.extend(certificate_hypotheses(p))
        a2 = p.alpha
        theorem = (f"composition of the firmly nonexpansive prox of f with an averaged denoiser ({CY15}) and {KM_ITER}; "
                   "no general theorem characterises the limit as a minimiser")
        conclusion = ("iteration map is alpha-averaged (alpha = {a}); converges to a fixed point of "
                      "D o prox_(step f) when one exists")
    alpha = compose_alpha(0.5, a2) if a2 is not None else None
    rng = None
    if alpha is not None:
        rh, rng = relaxation_hypothesis(relaxation, alpha)
        hyps.append(rh)
    verdict, reason = verdict_of(hyps)
    return AssumptionReport(alg, verdict, theorem, tuple(hyps),
                            conclusion.format(a=fmt(alpha)) if verdict == "guaranteed" else "",
                            reason, alpha, rng, unsafe and verdict != "guaranteed", params)


def _report_pdhg_split(alg: str, f: FidelityInfo, p: PriorInfo, step: float, dual_step: float,
                       op_norm_sq: float | None, unsafe: bool, params: dict, admits: Callable[..., bool],
                       split: str, smooth: float | None) -> AssumptionReport:
    """PDHG with the data term in the dual through z = A x (Chambolle-Pock; Condat-Vu with a smooth prior)."""
    Lg = 0.0 if smooth is None else float(smooth)
    params.update(split="z = A x", smooth_lipschitz=smooth)
    room = None if op_norm_sq is None else 1.0 / step - dual_step * op_norm_sq
    prod = None if op_norm_sq is None else step * dual_step * op_norm_sq
    hyps = [
        Hypothesis("data term convex with a closed-form prox in z = A x (no Lipschitz gradient needed)",
                   f.convex and f.has_data_prox,
                   f"{f.name}: convex={f.convex}, prox in z {'available' if f.has_data_prox else 'missing'}; {split}"),
        Hypothesis("prior convex with a prox, a linear part or a Lipschitz gradient", True, p.detail),
        Hypothesis("1/tau - sigma * ‖K‖² > L_g/2" if smooth is not None else "tau * sigma * ‖K‖² < 1",
                   op_norm_sq is not None and admits(step, dual_step, op_norm_sq, Lg),
                   f"tau = {fmt(step)}, sigma = {fmt(dual_step)}, ‖K‖² <= {fmt(op_norm_sq)} (K = [A; rescaled "
                   f"prior operator]), L_g = {fmt(Lg)}: 1/tau - sigma ‖K‖² = {fmt(room)}, "
                   f"tau sigma ‖K‖² = {fmt(prod)}",
                   room if smooth is not None else prod),
    ]
    verdict, reason = verdict_of(hyps)
    if smooth is not None:
        theorem = ("Primal-dual splitting with a smooth term (Condat, J. Optim. Theory Appl. 158 (2013), Thm 3.1; "
                   "Vu, Adv. Comput. Math. 38 (2013)), the data term split z = A x and taken in the dual")
    else:
        theorem = ("Primal-dual hybrid gradient (Chambolle & Pock, J. Math. Imaging Vis. 2011, Thm 1, theta = 1), the "
                   "data term split z = A x and taken in the dual")
    conclusion = "(x_k, p_k) converges to a saddle point; x_k to a minimiser of F(A x) + g(x) when one exists"
    return AssumptionReport(alg, verdict, theorem, tuple(hyps), conclusion if verdict == "guaranteed" else "",
                            reason, None, None, unsafe and verdict != "guaranteed", params)


def _report_pdhg(alg: str, f: FidelityInfo, p: PriorInfo, step: float, dual_step: float, op_norm_sq: float | None,
                 unsafe: bool, params: dict, admits: Callable[..., bool], split: str | None = None,
                 smooth: float | None = None) -> AssumptionReport:
    if p.kind == "uncertified":
        return no_certificate_report(alg, p, params)
    if p.kind == "certified":
        return _no_denoiser_theorem(alg, "prior is a convex function composed with a linear operator", p, params,
                                    "no convergence theorem for PDHG with a plug-in denoiser (its dual step needs a "
                                    "convex conjugate)")
    if split is not None:
        return _report_pdhg_split(alg, f, p, step, dual_step, op_norm_sq, unsafe, params, admits, split, smooth)
    prod = None if op_norm_sq is None else step * dual_step * op_norm_sq
    hyps = [
        _fidelity_prox_hypothesis(f),
        Hypothesis("prior convex, g(Kx) with prox of g* available", True, p.detail),
        Hypothesis("tau * sigma * ‖K‖² < 1", op_norm_sq is not None and admits(step, dual_step, op_norm_sq),
                   f"tau = {fmt(step)}, sigma = {fmt(dual_step)}, ‖K‖² <= {fmt(op_norm_sq)}, product = {fmt(prod)}",
                   prod),
    ]
    verdict, reason = verdict_of(hyps)
    theorem = "Primal-dual hybrid gradient (Chambolle & Pock, J. Math. Imaging Vis. 2011, Thm 1, theta = 1)"
    conclusion = "(x_k, p_k) converges to a saddle point; x_k to a minimiser of f + g(K .) when one exists"
    return AssumptionReport(alg, verdict, theorem, tuple(hyps), conclusion if verdict == "guaranteed" else "",
                            reason, None, None, unsafe and verdict != "guaranteed", params)




def _with_restart(report: AssumptionReport, restart: str, objective: bool, prior: str) -> AssumptionReport:
    """FISTA's report with adaptive restart (:mod:`pnp.restart` gives the argument in full).

    With the objective available the restart is guarded by it and the report keeps its verdict with
    the weaker conclusion that holds (monotone objective, per-epoch FISTA rate, F(x_k) -> min F; no
    global O(1/k^2)); without it the restart hypothesis fails.
    """
    params = {**report.params, "restart": restart}
    scheme = ("gradient test <z_(k-1) - x_k, x_k - x_(k-1)> > 0" if restart == "gradient"
              else "function test F(x_k) > F(x_(k-1))")
    if objective:
        hyp = Hypothesis(
            "restart guarded by the objective (F(x_k) <= F(x_(k-1)))", True,
            f"{restart} restart ({scheme}) starts a new FISTA epoch with t = 1; an iterate that increases F is "
            "replaced by the prox-gradient step from x_(k-1), which cannot increase F for step <= 1/L (Beck & "
            "Teboulle 2009, Lemma 2.3)")
    else:
        hyp = Hypothesis(
            "restart guarded by the objective (F(x_k) <= F(x_(k-1)))", False,
            f"{restart} restart without objective values (the prior {prior} has no value()): no convergence theorem "
            "covers infinitely many unguarded restarts (O'Donoghue & Candes 2015 prove the speed-up only for "
            "strongly convex quadratics); use restart='none' or a prior with value()")
    hyps = (*report.hypotheses, hyp)
    if report.verdict != "guaranteed" or not objective:
        verdict = "not guaranteed" if report.verdict == "guaranteed" else report.verdict
        return dataclasses.replace(report, verdict=verdict, hypotheses=hyps, conclusion="",
                                   reason=report.reason or hyp.detail, params=params)
    theorem = (f"FISTA with {restart} adaptive restart ({CITATION}), guarded by the objective: every epoch is "
               "FISTA from its start point (Beck & Teboulle, SIAM J. Imaging Sci. 2009, Thm 4.4; Chambolle & "
               "Dossal, JOTA 2015), every other step a prox-gradient step (Beck & Teboulle 2009, Lemma 2.3)")
    conclusion = (f"{restart} restart: the objective is nonincreasing at every iteration; j iterations into an "
                  "epoch the FISTA O(1/j^2) bound holds from the epoch's start point; F(x_k) -> min F (finitely "
                  "many restarts: the last epoch is plain FISTA and its iterates converge for a > 2; infinitely "
                  "many: through the prox-gradient steps at the restarts, when the iterates stay bounded); the "
                  "global O(1/k^2) rate of plain FISTA is not claimed with restart")
    return dataclasses.replace(report, theorem=theorem, hypotheses=hyps, conclusion=conclusion, params=params)


class ForwardBackward(Theory):
    """Forward-backward splitting (PGD), and PnP-PGD with an averaged denoiser: ``step < 2/L``."""

    step_bound = StepBound(2.0, strict=True)
    anderson_refusal = None

    def rule(self, algorithm: str, f: FidelityInfo, p: PriorInfo, s: RunSettings, params: dict) -> AssumptionReport:
        return _report_pgd(algorithm, f, p, s.step, s.relaxation, s.unsafe, params, self.step_bound,
                           self.inexact_hypotheses(p))


class AcceleratedForwardBackward(Theory):
    """FISTA with Chambolle-Dossal momentum, convex priors only: ``step <= 1/L``, ``a > 2``.

    With adaptive restart (``restart`` "gradient" or "function", :mod:`pnp.restart`) the report
    states the guarantee that survives it.
    """

    step_bound = StepBound(1.0, strict=False)
    inexact_power = 2.0 + DELTA  # sum k e_k < inf for the O(1/k^2) rate
    inexact_citation = CITATION_ACCELERATED
    anderson_refusal = "FISTA already extrapolates with momentum and its state is not the iterate of an averaged map"

    def rule(self, algorithm: str, f: FidelityInfo, p: PriorInfo, s: RunSettings, params: dict) -> AssumptionReport:
        params["momentum"] = float(s.momentum)
        report = _report_fista(algorithm, f, p, s.step, float(s.momentum), s.unsafe, params, self.step_bound,
                               self.inexact_hypotheses(p))
        if s.restart == "none":
            return report
        report = _with_restart(report, s.restart, f.has_value and p.has_value, p.name)
        return dataclasses.replace(report, unsafe=s.unsafe and report.verdict != "guaranteed")


class DouglasRachford(Theory):
    """Douglas-Rachford splitting (DRS); ``admm=True`` for ADMM, Douglas-Rachford on the dual."""

    anderson_refusal = None

    def __init__(self, *, admm: bool = False) -> None:
        self.admm = bool(admm)
        self.inexact_citation = CITATION_ADMM if self.admm else CITATION_DRS

    def rule(self, algorithm: str, f: FidelityInfo, p: PriorInfo, s: RunSettings, params: dict) -> AssumptionReport:
        return _report_drs(algorithm, f, p, s.step, s.relaxation, s.unsafe, params, self.admm,
                           self.inexact_hypotheses(p), _split_of(f, s))

    def anderson_averaged(self, report: AssumptionReport, relaxation: float) -> float | None:
        """The relaxed Douglas-Rachford operator is (relaxation/2)-averaged (for ADMM: the map of z = x + u)."""
        return relaxation / 2.0

    def anderson_map(self, a: float) -> str:
        if not self.admm:
            return super().anderson_map(a)
        return (f"the plain ADMM step maps z = x + u by the relaxed Douglas-Rachford operator ({a:.4g}-averaged); "
                "an Anderson step on (x, u) perturbs z by a multiple of its length")

    def __repr__(self) -> str:
        return f"DouglasRachford(admm={self.admm})"


class HalfQuadratic(Theory):
    """Half-quadratic splitting with a fixed penalty (HQS): forward-backward on a Moreau envelope."""

    anderson_refusal = None

    def rule(self, algorithm: str, f: FidelityInfo, p: PriorInfo, s: RunSettings, params: dict) -> AssumptionReport:
        return _report_hqs(algorithm, f, p, s.step, s.relaxation, s.unsafe, params, self.inexact_hypotheses(p))


class PrimalDual(Theory):
    """Chambolle-Pock primal-dual hybrid gradient (PDHG): ``tau sigma ‖K‖² < 1``."""

    anderson_refusal = ("PDHG's map is averaged only in its own primal-dual metric, not in the Euclidean norm the "
                        "safeguard measures")

    @staticmethod
    def admits(step: float, dual_step: float, op_norm_sq: float, smooth_lipschitz: float = 0.0) -> bool:
        """The step condition of the theorem: ``tau sigma ‖K‖² < 1`` (Chambolle & Pock 2011, Thm 1); with a
        smooth term whose gradient is ``L``-Lipschitz, ``1/tau - sigma ‖K‖² > L/2`` (Condat 2013, Thm 3.1
        with relaxation 1)."""
        if smooth_lipschitz > 0:
            return 1.0 / step - dual_step * op_norm_sq > smooth_lipschitz / 2.0
        return step * dual_step * op_norm_sq < 1.0

    def rule(self, algorithm: str, f: FidelityInfo, p: PriorInfo, s: RunSettings, params: dict) -> AssumptionReport:
        params.update(dual_step=s.dual_step, op_norm_sq=s.op_norm_sq)
        if s.dual_step is None:
            raise ValueError(f"dual_step is required for {algorithm} assumption checks")
        split = s.split if s.split is not None else (
            f"data term {f.name} through z = A x (its prox in z)" if not f.has_prox and f.has_data_prox else None)
        return _report_pdhg(algorithm, f, p, s.step, float(s.dual_step), s.op_norm_sq, s.unsafe, params,
                            self.admits, split, s.smooth_lipschitz)
