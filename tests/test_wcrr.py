"""Weakly convex ridge regularizer: certified modulus, prox, denoiser Lipschitz bound, theory verdicts."""

from __future__ import annotations

import math

import pytest
import torch

from operators import Blur, Identity, L2Fidelity, PenalizedFidelity, gaussian
from pnp.algorithms import FISTA, PGD
from priors.ridge import RidgePrior, RidgeRegularizer
from priors.wcrr import WCRRPrior, WeaklyConvexRidge, smooth_prior

D = torch.float64


def _model(seed: int = 0, negative: bool = True) -> WeaklyConvexRidge:
    torch.manual_seed(seed)
    net = WeaklyConvexRidge(hidden=3, channels=6, kernel_size=3, knots=7, knot_range=0.5,
                            sigma_range=(0.01, 0.2), prox_tol=1e-7, solve_iterations=3000).double().eval()
    with torch.no_grad():
        lo = -0.8 if negative else 0.1
        net.spline.raw.copy_(torch.empty_like(net.spline.raw).uniform_(lo, 1.0))
        net.mu_raw.copy_(torch.tensor([0.5, -0.3]))
        net.lam_raw.copy_(torch.tensor([0.0, 1.0]))
    return net


def _hessian_extremes(net: WeaklyConvexRidge, x: torch.Tensor, mu: float, iters: int = 200) -> tuple[float, float]:
    """Largest and smallest eigenvalue of the Hessian of R_mu at x (power iterations on H and on cI - H)."""

    def hvp(v: torch.Tensor) -> torch.Tensor:
        xx = x.clone().requires_grad_(True)
        g = net.grad(xx, mu)
        return torch.autograd.grad((g * v).sum(), xx)[0]

    v = torch.randn_like(x)
    for _ in range(iters):
        v = hvp(v)
        v = v / v.norm()
    top = float((v * hvp(v)).sum())
    c = abs(top) + 1.0
    v = torch.randn_like(x)
    for _ in range(iters):
        v = c * v - hvp(v)
        v = v / v.norm()
    low = float((v * hvp(v)).sum())
    return top, low


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_certified_modulus_and_gradient_bound_hold_against_the_hessian_spectrum(seed):
    net = _model(seed)
    rho, lip = net.weak_convexity(), net.grad_lipschitz()
    assert rho > 0
    worst_low, worst_top = 0.0, 0.0
    for k in range(4):  # several points and scales: the active spline segments differ
        x = torch.randn(1, 1, 12, 12, generator=torch.Generator().manual_seed(10 * seed + k), dtype=D) * (0.05 * (k + 1))
        top, low = _hessian_extremes(net, x, mu=1.0)
        worst_low, worst_top = min(worst_low, low), max(worst_top, top)
    assert worst_low >= -rho * (1 + 1e-6) - 1e-9, (worst_low, rho)
    assert worst_top <= lip * (1 + 1e-6) + 1e-9, (worst_top, lip)
    assert worst_low < 0  # the search does find negative curvature: the model is really nonconvex


def test_convex_splines_give_a_firmly_nonexpansive_certificate():
    net = _model(negative=False)
    cert = net.certificate()
    assert net.weak_convexity() == 0.0
    assert cert.lipschitz == 1.0 and cert.alpha == 0.5


def test_nonconvex_certificate_is_the_prox_lipschitz_bound_and_not_averaged():
    net = _model()
    cert = net.certificate()
    lam_rho = cert.details["lam_rho_max"]
    assert 0 < lam_rho <= net.config.convexity_cap + 1e-12
    assert cert.alpha is None
    assert math.isclose(cert.lipschitz, 1 / (1 - lam_rho))


def test_prox_denoiser_meets_its_optimality_condition_and_certified_error():
    net = _model()
    y = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(3), dtype=D)
    sigma = 0.1
    with torch.no_grad():
        x = net(y, sigma)
        lam, mu = net.lam(sigma), net.mu(sigma)
        residual = (x - y) + lam * net.grad(x, mu)
    strong = 1 - float(lam) * net.weak_convexity()
    assert strong > 0
    # ||x - x*|| <= ||grad F(x)|| / m: the certified tolerance, measured at the returned point
    err = residual.flatten(1).norm(dim=1) / strong
    assert bool((err <= net.config.prox_tol * y.flatten(1).norm(dim=1) * (1 + 1e-6)).all())


def test_denoiser_lipschitz_stays_below_its_certificate_under_attack():
    net = _model(1)
    bound = net.certificate().lipschitz
    sigma = 0.2  # the largest lam in the range: the largest lam rho
    gen = torch.Generator().manual_seed(5)
    best = 0.0
    for _ in range(3):
        a = torch.rand(1, 1, 10, 10, generator=gen, dtype=D)
        d = (1e-2 * torch.randn(1, 1, 10, 10, generator=gen, dtype=D)).requires_grad_(True)
        opt = torch.optim.Adam([d], lr=2e-3)
        for _ in range(40):  # gradient ascent on the difference quotient
            q = (net(a + d, sigma) - net(a, sigma)).norm() / d.norm()
            best = max(best, float(q.detach()))
            opt.zero_grad()
            (-q).backward()
            opt.step()
    assert best <= bound * (1 + 1e-4)


def test_nan_weights_get_no_certificate():
    net = _model()
    with torch.no_grad():
        net.mu_raw[0] = float("nan")
    with pytest.raises(ValueError, match="not finite"):
        net.certificate()


def test_penalized_fidelity_declares_convexity_only_when_established():
    net = _model()
    y = torch.rand(1, 1, 16, 16, dtype=D)
    rho = net.weak_convexity()
    small = WCRRPrior(net, weight=0.5 / rho)  # lam rho = 0.5 < 1 = strong convexity of the identity
    large = WCRRPrior(net, weight=0.5 / rho)
    assert PenalizedFidelity(L2Fidelity(Identity(), y), small).convex
    blur = PenalizedFidelity(L2Fidelity(Blur(gaussian(1.0)), y), large)  # sigma_min unknown: 0
    assert not blur.convex and blur.nonconvexity == pytest.approx(0.5)

    class Unknown:  # no convexity declared
        name = "unknown"

        def value(self, x):
            return x.flatten(1).sum(1)

        def grad(self, x):
            return torch.ones_like(x)

        def lipschitz_grad(self):
            return 0.0

    f = PenalizedFidelity(L2Fidelity(Identity(), y), Unknown())
    assert not f.convex and f.nonconvexity is None


def test_denoising_with_a_weakly_convex_prior_is_a_convex_problem():
    net = _model()
    y = torch.rand(1, 1, 16, 16, dtype=D)
    prior = smooth_prior(net, weight=0.5 / net.weak_convexity())
    assert isinstance(prior, WCRRPrior)
    report = PGD(L2Fidelity(Identity(), y), prior).check_assumptions()
    assert report.verdict == "guaranteed"
    assert "minimiser" in report.conclusion


def test_deblurring_with_a_weakly_convex_prior_names_the_stationary_point_theorem():
    net = _model()
    A = Blur(gaussian(1.0))
    y = A(torch.rand(1, 1, 16, 16, dtype=D))
    prior = smooth_prior(net, weight=0.5 / net.weak_convexity())
    alg = PGD(L2Fidelity(A, y), prior)
    report = alg.check_assumptions()
    assert report.verdict == "guaranteed"
    assert "Kurdyka" in report.theorem and "stationary point" in report.conclusion
    assert "minimiser of" not in report.conclusion and report.alpha is None
    res = alg.run(max_iter=300, progress=False)
    values = [float(v) for v in res.history["objective"]] if "objective" in res.history else []
    if values:
        assert all(b <= a + 1e-9 * abs(a) for a, b in zip(values, values[1:]))
    fista = FISTA(L2Fidelity(A, y), prior).check_assumptions()
    assert fista.verdict == "no guarantee"


def test_convex_ridge_prior_is_unchanged_by_the_weakly_convex_machinery():
    torch.manual_seed(0)
    net = RidgeRegularizer(hidden=2, channels=4, kernel_size=3, knots=5).double().eval()
    assert type(smooth_prior(net, weight=0.1)) is RidgePrior
    y = torch.rand(1, 1, 16, 16, dtype=D)
    report = PGD(L2Fidelity(Blur(gaussian(1.0)), y), smooth_prior(net, weight=0.1)).check_assumptions()
    assert report.verdict == "guaranteed" and "Kurdyka" not in report.theorem


def test_anderson_is_refused_on_a_nonconvex_objective_and_auto_runs_plain():
    net = _model()
    A = Blur(gaussian(1.0))
    y = A(torch.rand(1, 1, 16, 16, dtype=D))
    prior = smooth_prior(net, weight=0.5 / net.weak_convexity())
    with pytest.raises(ValueError, match="not known to be averaged"):
        PGD(L2Fidelity(A, y), prior, accelerate="anderson")
    alg = PGD(L2Fidelity(A, y), prior, accelerate="auto")
    assert alg.acceleration is None and alg.check_assumptions().verdict == "guaranteed"


# ---------------------------------------------------------------------------- the shipped models
def _shipped(name: str):
    from priors.pretrained import pretrained_names

    if name not in pretrained_names():
        pytest.skip(f"{name} is not shipped")
    from priors import load_pretrained

    return load_pretrained(name)


def test_shipped_wcrr_certificate_states_its_modulus_and_holds_under_attack():
    from priors.certify import empirical_lipschitz

    net = _shipped("wcrr_bsd400")
    cert = net.certificate()
    assert cert.details["rho"] > 0 and cert.alpha is None
    assert cert.lipschitz == pytest.approx(1 / (1 - cert.details["lam_rho_max"]))
    emp = empirical_lipschitz(net, sigmas=tuple(net.config.sigma_range), shape=(1, 1, 24, 24))
    assert emp["max"] <= cert.lipschitz * (1 + 1e-4)


def test_shipped_crr_is_firmly_nonexpansive():
    net = _shipped("crr_bsd400")
    cert = net.certificate()
    assert cert.lipschitz == 1.0 and cert.alpha == 0.5 and net.weak_convexity() == 0.0


@pytest.mark.parametrize("extra, verdict_words", [
    (["--kernel", "gaussian:1.6"], "stationary point"),
    (["--algorithm", "fista"], "no guarantee"),
])
def test_solve_with_the_weakly_convex_prior_reports_the_right_verdict(tmp_path, extra, verdict_words):
    import json

    from pnp.cli import main

    _shipped("wcrr_bsd400")
    out = tmp_path / "o"
    code = main(["solve", "--prior", "wcrr", "--size", "32", "--max-iter", "30", "--quiet", "--no-figure",
                 "--out", str(out), "--json", str(out / "r.json"), *extra])
    assert code == 0
    record = json.loads((out / "r.json").read_text())
    text = json.dumps(record["guarantee"])
    assert verdict_words in text
    assert "minimiser of f + g" not in text and "averaged" not in record["guarantee"].get("line", "")
