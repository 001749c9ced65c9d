"""The convergence-assumption verdicts: one test per case of the theory."""

from __future__ import annotations

import json

import pytest
import torch

from operators import Blur, Identity, L2Fidelity, PoissonNLL, gaussian
from pnp import ADMM, DRS, FISTA, HQS, PDHG, PGD, VERDICTS, AssumptionReport, check_assumptions, compose_alpha
from priors import TV, Certificate, DenoiserPrior, Tikhonov

torch.set_num_threads(1)
F64 = torch.float64
ALL = (PGD, FISTA, ADMM, DRS, HQS, PDHG)


@pytest.fixture(scope="module")
def fid():
    g = torch.Generator().manual_seed(0)
    truth = torch.rand(1, 1, 32, 32, generator=g, dtype=F64)
    A = Blur(gaussian(1.0))
    y = A(truth) + 0.01 * torch.randn(truth.shape, generator=g, dtype=F64)
    return L2Fidelity(A, y)


class Averaged(torch.nn.Module):
    """D = (1 − a) I + a N with N a (nonexpansive) blur: an a-averaged denoiser with its certificate."""

    def __init__(self, alpha: float | None, *, lipschitz: float = 1.0, empirical: float | None = None) -> None:
        super().__init__()
        self.alpha, self.lipschitz, self.empirical = alpha, lipschitz, empirical
        self.N = Blur(gaussian(0.8))

    def forward(self, x, sigma=None):
        a = 0.5 if self.alpha is None else self.alpha
        return (1 - a) * x + a * self.N(x)

    def certificate(self):
        return Certificate(lipschitz=self.lipschitz, alpha=self.alpha, method="by construction (test)",
                           empirical=self.empirical)


class NoCertificate(torch.nn.Module):
    def forward(self, x, sigma=None):
        return 0.9 * x


class NoneCertificate(NoCertificate):
    def certificate(self):
        return None


class BrokenCertificate(NoCertificate):
    def certificate(self):
        raise RuntimeError("weights changed since certification")


def pnp(den) -> DenoiserPrior:
    return DenoiserPrior(den, sigma=0.05)


# ---------------------------------------------------------------------- forward-backward, convex
def test_convex_forward_backward_guaranteed(fid):
    L = fid.lipschitz_grad()
    r = PGD(fid, 0.01 * TV()).check_assumptions()
    assert r.verdict == "guaranteed" and r.ok
    assert "Combettes & Wajs 2005" in r.theorem and "Cor. 28.9" in r.theorem
    assert r.alpha == pytest.approx(2 / 3)  # tau L/2 = 1/2 composed with the prox's 1/2
    assert r.relaxation_range == pytest.approx((0.0, 1.5))
    names = {h.name: h for h in r.hypotheses}
    assert names["step < 2/L"].holds and "‖A‖²" in names["step < 2/L"].detail
    # larger step: alpha_grad = tau L / 2 = 0.95
    r = PGD(fid, 0.01 * TV(), step=1.9 / L).check_assumptions()
    assert r.verdict == "guaranteed"
    assert r.alpha == pytest.approx((0.95 + 0.5 - 2 * 0.95 * 0.5) / (1 - 0.95 * 0.5))
    assert "minimiser" in r.conclusion


def test_fista_convex_guaranteed_with_step_at_most_one_over_L(fid):
    r = FISTA(fid, 0.01 * Tikhonov()).check_assumptions()
    assert r.verdict == "guaranteed" and "Beck & Teboulle" in r.theorem
    r = FISTA(fid, 0.01 * Tikhonov(), step=1.5 / fid.lipschitz_grad(), unsafe=True).check_assumptions()
    assert r.verdict == "not guaranteed" and r.unsafe


# ---------------------------------------------------------------------- PnP-PGD
@pytest.mark.parametrize("a", [0.5, 0.6, 0.9, 1.0])
def test_pnp_pgd_with_averaged_denoiser(fid, a):
    alg = PGD(fid, pnp(Averaged(a)), relaxation=0.9 if a == 1.0 else 1.0)
    r = alg.check_assumptions()
    a1 = 0.5  # step 1/L
    expected = (a1 + a - 2 * a1 * a) / (1 - a1 * a)
    assert r.alpha == pytest.approx(expected)
    assert r.relaxation_range == pytest.approx((0.0, 1.0 / expected))
    assert r.verdict == "guaranteed"
    assert "converges to a fixed point when one exists (Krasnosel'skii-Mann)" in r.conclusion
    assert "alpha-averaged" in r.conclusion and "Combettes & Yamada" in r.theorem
    # and the run does converge
    res = alg.run(progress=False, max_iter=2000, tol=1e-8)
    assert res.converged and res.report is r


def test_pnp_pgd_merely_nonexpansive_needs_relaxation(fid):
    # alpha = 1 (nonexpansive): plain iteration is outside (0, 1/alpha) = (0, 1)
    with pytest.raises(ValueError, match="relaxation 1 is outside"):
        PGD(fid, pnp(Averaged(1.0)))
    r = PGD(fid, pnp(Averaged(1.0)), unsafe=True).check_assumptions()
    assert r.verdict == "not guaranteed" and "relaxation" in r.reason


def test_pnp_relaxation_beyond_one_over_alpha_refused(fid):
    alpha = compose_alpha(0.5, 0.5)
    PGD(fid, pnp(Averaged(0.5)), relaxation=0.99 / alpha)
    with pytest.raises(ValueError, match=r"\(0, 1/alpha\)"):
        PGD(fid, pnp(Averaged(0.5)), relaxation=1.01 / alpha)


def test_pnp_pgd_step_above_bound_not_guaranteed(fid):
    r = PGD(fid, pnp(Averaged(0.5)), step=2.5 / fid.lipschitz_grad(), unsafe=True).check_assumptions()
    assert r.verdict == "not guaranteed" and r.alpha is None and r.unsafe
    assert "unsafe" in r.summary()


def test_certificate_without_alpha_is_not_guaranteed(fid):
    r = PGD(fid, pnp(Averaged(None, lipschitz=1.3))).check_assumptions()
    assert r.verdict == "not guaranteed"
    assert any(h.name.startswith("denoiser is averaged") and not h.holds for h in r.hypotheses)
    r = DRS(fid, pnp(Averaged(None, lipschitz=1.3))).check_assumptions()
    assert r.verdict == "not guaranteed" and "firm nonexpansiveness" in r.reason


def test_certificate_contradicted_by_adversarial_estimate(fid):
    r = PGD(fid, pnp(Averaged(0.5, lipschitz=1.0, empirical=1.2))).check_assumptions()
    assert r.verdict == "not guaranteed"
    assert "empirical 1.2" in r.reason


# ---------------------------------------------------------------------- PnP-ADMM / DRS
@pytest.mark.parametrize("alg", [ADMM, DRS])
def test_pnp_admm_drs_need_firm_nonexpansiveness(fid, alg):
    r = alg(fid, pnp(Averaged(0.8))).check_assumptions()
    assert r.verdict == "not guaranteed"
    assert r.reason == "denoiser is alpha-averaged with alpha = 0.8 > 1/2; PnP-ADMM/DRS need firm nonexpansiveness"
    r = alg(fid, pnp(Averaged(0.5))).check_assumptions()
    assert r.verdict == "guaranteed"
    assert "Ryu et al., ICML 2019" in r.theorem and "Thm 26.11" in r.theorem
    assert r.relaxation_range == (0.0, 2.0)


@pytest.mark.parametrize("alg", [ADMM, DRS])
def test_convex_admm_drs_guaranteed(fid, alg):
    r = alg(fid, 0.01 * TV()).check_assumptions()
    assert r.verdict == "guaranteed" and "Douglas-Rachford" in r.theorem


# ---------------------------------------------------------------------- HQS, FISTA with denoisers, PDHG
def test_hqs_verdicts(fid):
    r = HQS(fid, 0.01 * TV(), step=0.1).check_assumptions()
    assert r.verdict == "guaranteed" and "penalised" in r.conclusion
    assert r.alpha == pytest.approx(2 / 3)
    r = HQS(fid, pnp(Averaged(0.6))).check_assumptions()
    assert r.verdict == "guaranteed" and r.alpha == pytest.approx(1 / (2 - 0.6))
    assert "no general theorem characterises the limit as a minimiser" in r.theorem
    assert HQS(fid, pnp(NoCertificate())).check_assumptions().verdict == "no guarantee"


def test_fista_with_denoiser_has_no_guarantee(fid):
    r = FISTA(fid, pnp(Averaged(0.5))).check_assumptions()
    assert r.verdict == "no guarantee"
    assert "momentum" in r.reason and "averaged-operator" in r.reason


def test_pdhg_verdicts(fid):
    r = PDHG(fid, 0.01 * TV()).check_assumptions()
    assert r.verdict == "guaranteed" and "Chambolle & Pock" in r.theorem
    assert r.params["op_norm_sq"] == 8.0
    r = PDHG(fid, 0.01 * TV(), step=0.5, dual_step=0.5, unsafe=True).check_assumptions()
    assert r.verdict == "not guaranteed" and "tau = 0.5" in r.reason and r.unsafe
    assert PDHG(fid, pnp(Averaged(0.5))).check_assumptions().verdict == "no guarantee"


# ---------------------------------------------------------------------- no certificate: never a pass
@pytest.mark.parametrize("den", [NoCertificate(), NoneCertificate(), BrokenCertificate()], ids=["missing", "none", "raises"])
@pytest.mark.parametrize("alg", ALL)
def test_denoiser_without_certificate_has_no_guarantee(fid, alg, den):
    r = alg(fid, pnp(den)).check_assumptions()
    assert r.verdict == "no guarantee" and not r.ok
    assert "certificate" in r.reason


# ---------------------------------------------------------------------- fidelity cases
def test_poisson_without_lipschitz_gradient(fid):
    y = fid.y.clamp_min(0.0)
    poisson = PoissonNLL(fid.operator, y, gain=0.01)
    r = PGD(poisson, 0.01 * TV(), step=1e-3, unsafe=True).check_assumptions()  # refused without unsafe
    assert r.verdict == "not guaranteed"
    assert "not globally Lipschitz" in r.reason
    # Douglas-Rachford needs no Lipschitz gradient: guaranteed with a prox (diagonal operator)
    r = DRS(PoissonNLL(Identity(), y, gain=0.01), 0.01 * TV()).check_assumptions()
    assert r.verdict == "guaranteed"


def test_nonconvex_fidelity_is_reported(fid):
    class NonconvexL2(L2Fidelity):
        convex = False

    f = NonconvexL2(fid.operator, fid.y)
    for alg in (PGD, DRS, HQS):
        r = alg(f, 0.01 * TV()).check_assumptions()
        assert r.verdict == "not guaranteed" and "convex=False" in r.reason


# ---------------------------------------------------------------------- report object
def test_report_serialises_and_summarises(fid):
    for alg in ALL:
        for prior in (0.01 * TV(), pnp(Averaged(0.5)), pnp(NoCertificate())):
            r = alg(fid, prior).check_assumptions()
            assert isinstance(r, AssumptionReport) and r.verdict in VERDICTS
            d = json.loads(json.dumps(r.to_dict()))
            assert d["verdict"] == r.verdict and d["algorithm"] == alg.name
            s = r.summary()
            assert "\n" not in s and s.startswith(alg.name)
            assert all(isinstance(h.holds, bool) for h in r.hypotheses)
            str(r)


def test_check_assumptions_function_and_errors(fid):
    r = check_assumptions("pgd", fid, 0.01 * TV(), step=1.0)
    assert r.algorithm == "PGD" and r.verdict == "guaranteed"
    with pytest.raises(ValueError, match="algorithm must be one of"):
        check_assumptions("SGD", fid, TV(), step=1.0)
    with pytest.raises(ValueError, match="verdict"):
        AssumptionReport(algorithm="PGD", verdict="maybe", theorem="")


def test_composed_alpha_is_a_valid_averagedness_constant():
    """Numerically: T1 T2 = (1 − a) I + a N with ‖N‖ <= 1 for random a_i-averaged linear maps."""
    g = torch.Generator().manual_seed(0)
    n = 12
    for _ in range(20):
        a1, a2 = (0.05 + 0.9 * torch.rand(2, generator=g, dtype=F64)).tolist()
        Q1, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))
        Q2, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))
        eye = torch.eye(n, dtype=F64)
        T = ((1 - a1) * eye + a1 * Q1) @ ((1 - a2) * eye + a2 * Q2)
        a = compose_alpha(a1, a2)
        N = (T - (1 - a) * eye) / a
        assert float(torch.linalg.matrix_norm(N, ord=2)) <= 1 + 1e-10
    assert compose_alpha(0.5, 0.5) == pytest.approx(2 / 3)
    assert compose_alpha(1.0, 0.3) == 1.0
    with pytest.raises(ValueError):
        compose_alpha(0.0, 0.5)
