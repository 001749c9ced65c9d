"""Solver tests: closed-form minimisers, deepinv agreement, monotonicity, divergence, stopping."""

from __future__ import annotations

import json
import math

import pytest
import torch

from operators import Blur, Identity, L2Fidelity, PoissonNLL, gaussian, to_deepinv
from pnp import (
    ADMM,
    DRS,
    FISTA,
    HQS,
    PDHG,
    PGD,
    DivergenceMonitor,
    FiniteDifference,
    IterationInfo,
    MaxIter,
    MinIter,
    Result,
    TimeLimit,
    Tolerance,
)
from priors import TV, DenoiserPrior, Tikhonov

torch.set_num_threads(1)
F64 = torch.float64


# ---------------------------------------------------------------------- fixtures
def _blur_problem(n: int = 32, *, sigma_blur: float = 1.2, noise: float = 0.01, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    truth = torch.zeros(1, 1, n, n, dtype=F64)
    truth[..., n // 4 : 3 * n // 4, n // 4 : 3 * n // 4] = 0.8
    truth += 0.1 * torch.rand(1, 1, n, n, generator=g, dtype=F64)
    A = Blur(gaussian(sigma_blur), boundary="circular")
    y = A(truth) + noise * torch.randn(truth.shape, generator=g, dtype=F64)
    return A, y, truth


@pytest.fixture(scope="module")
def blur():
    return _blur_problem(32)


def _tikhonov_closed_form(A, y, c: float, *, hqs_step: float | None = None) -> torch.Tensor:
    """Minimiser of ½‖Ax − y‖² + (c/2)‖x‖² for a circular blur, by FFT (transfer function from A(δ)).

    With ``hqs_step = γ`` it returns instead the fixed point of HQS,
    ``x̂ = Â* ŷ / (|Â|² + c + γ c |Â|²)`` (the penalised problem HQS solves).
    """
    delta = torch.zeros_like(y)
    delta[..., 0, 0] = 1.0
    H = torch.fft.fft2(A(delta))
    Y = torch.fft.fft2(y)
    denom = H.abs() ** 2 + c
    if hqs_step is not None:
        denom = denom + hqs_step * c * H.abs() ** 2
    return torch.fft.ifft2(H.conj() * Y / denom).real


def _tik_weight(prior) -> float:
    """c such that the prior is (c/2)‖x‖², read from its value on a known input."""
    x = torch.ones(1, 1, 2, 2, dtype=F64)
    return float(prior.value(x)) / 2.0  # value = (c/2) * 4


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


class ScaleDenoiser(torch.nn.Module):
    """A "denoiser" x ↦ s·x (s = 2: deliberately expansive)."""

    def __init__(self, s: float) -> None:
        super().__init__()
        self.s = s

    def forward(self, x, sigma=None):
        return self.s * x


class NaNAfter(torch.nn.Module):
    """Shrinks by 0.9 until call ``n``, then returns NaN."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.calls = n, 0

    def forward(self, x, sigma=None):
        self.calls += 1
        return x * float("nan") if self.calls >= self.n else 0.9 * x


# ---------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("alg", [PGD, ADMM])
def test_tikhonov_deblurring_matches_closed_form(blur, alg):
    A, y, _ = blur
    prior = 0.05 * Tikhonov()
    c = _tik_weight(prior)
    x_star = _tikhonov_closed_form(A, y, c)
    res = alg(L2Fidelity(A, y), prior).run(progress=False, tol=1e-12, max_iter=3000)
    assert res.status == "converged"
    assert _rel(res.x, x_star) < 1e-8


def test_all_six_algorithms_reach_the_tikhonov_minimiser(blur):
    A, y, truth = blur
    prior = 0.05 * Tikhonov()
    c = _tik_weight(prior)
    f = L2Fidelity(A, y)
    x_star = _tikhonov_closed_form(A, y, c)
    F_star = float(f.value(x_star) + prior.value(x_star))
    for alg in (PGD, FISTA, ADMM, DRS, PDHG):
        res = alg(f, prior).run(progress=False, tol=1e-11, max_iter=4000, truth=truth)
        assert res.status == "converged", alg.name
        assert _rel(res.x, x_star) < 1e-7, alg.name
        assert res.history["objective"][-1] <= F_star * (1 + 1e-9), alg.name
        assert res.history["objective"][0] > res.history["objective"][-1], alg.name
    # HQS with a fixed step solves the penalised problem: check its own closed form, and that it
    # approaches the true minimiser as the step shrinks
    for gamma in (0.5, 0.1):
        res = HQS(f, prior, step=gamma).run(progress=False, tol=1e-12, max_iter=6000)
        assert _rel(res.x, _tikhonov_closed_form(A, y, c, hqs_step=gamma)) < 1e-7
    assert _rel(res.x, x_star) < 0.01


def test_relaxed_pgd_and_drs_reach_the_same_minimiser(blur):
    A, y, _ = blur
    prior = 0.05 * Tikhonov()
    x_star = _tikhonov_closed_form(A, y, _tik_weight(prior))
    f = L2Fidelity(A, y)
    r1 = PGD(f, prior, relaxation=1.4).run(progress=False, tol=1e-12, max_iter=3000)
    r2 = DRS(f, prior, relaxation=1.8).run(progress=False, tol=1e-12, max_iter=3000)
    r3 = ADMM(f, prior, relaxation=1.6).run(progress=False, tol=1e-12, max_iter=3000)
    for r in (r1, r2, r3):
        assert _rel(r.x, x_star) < 1e-8, r.algorithm


def test_all_algorithms_agree_on_a_tiny_tv_problem():
    A, y, _ = _blur_problem(16, sigma_blur=0.7, noise=0.02)
    f = L2Fidelity(A, y)
    # PDHG needs no inner TV iterations: it gives a cheap accurate reference
    ref = PDHG(f, 0.02 * TV()).run(progress=False, tol=1e-9, max_iter=20000)
    assert ref.converged
    F_ref = ref.history["objective"][-1]
    prior = 0.02 * TV(tol=1e-5)
    for alg in (PGD, FISTA, ADMM, DRS):
        res = alg(f, prior).run(progress=False, tol=1e-5, max_iter=1000)
        assert res.status == "converged", alg.name
        assert res.history["objective"][-1] < res.history["objective"][0], alg.name
        assert _rel(res.x, ref.x) < 2e-3, alg.name
        assert abs(res.history["objective"][-1] - F_ref) <= 1e-4 * F_ref, alg.name
    # HQS solves a penalised problem: close to the minimiser for a small step
    res = HQS(f, prior, step=0.3).run(progress=False, tol=1e-4, max_iter=400)
    assert res.history["objective"][-1] < res.history["objective"][0]
    assert _rel(res.x, ref.x) < 0.02


def test_pdhg_tv_uses_the_finite_difference_operator(blur):
    A, y, _ = blur
    alg = PDHG(L2Fidelity(A, y), 0.01 * TV())
    assert alg.linear.norm_sq == 8.0
    assert alg.step * alg.dual_step * 8.0 < 1.0
    # our gradient operator is TV's: ‖∇x‖_{2,1} equals the prior's value
    x = torch.rand(1, 1, 9, 7, dtype=F64)
    tv = torch.linalg.vector_norm(FiniteDifference.forward(x), dim=2).sum()
    assert float(tv) == pytest.approx(float(TV().value(x)), rel=1e-12)


# ---------------------------------------------------------------------- deepinv agreement
def test_pgd_matches_deepinv_pgd(blur):
    dinv = pytest.importorskip("deepinv")
    A, y, _ = blur
    lam, stepsize, n_it = 0.1, 1.5, 30
    physics = to_deepinv(A)
    model = dinv.optim.optim_builder(
        iteration="PGD",
        prior=dinv.optim.Tikhonov(),  # ½‖x‖²
        data_fidelity=dinv.optim.L2(),  # ½‖Ax − y‖²  (sigma = 1)
        params_algo={"stepsize": stepsize, "lambda": lam},
        max_iter=n_it,
        early_stop=False,
    )
    with torch.no_grad():
        x_dinv = model(y, physics)
    # deepinv: x⁺ = prox_{γλ g}(x − γ∇f) from x0 = Aᵀy; ours with weight λ and step γ is the same map
    prior = lam * Tikhonov()
    assert _tik_weight(prior) == pytest.approx(lam)
    ours = PGD(L2Fidelity(A, y), prior, step=stepsize).run(
        A.adjoint(y), progress=False, tol=None, max_iter=n_it
    )
    assert ours.iterations == n_it
    assert _rel(ours.x, x_dinv) < 1e-10


def test_pnp_pgd_matches_deepinv_pnp(blur):
    dinv = pytest.importorskip("deepinv")
    A, y, _ = blur
    sigma, n_it = 0.05, 15

    class Shrink(dinv.models.Denoiser):
        def forward(self, x, sigma=None, **kwargs):
            return x / (1.0 + float(sigma))

    den = Shrink()
    model = dinv.optim.optim_builder(
        iteration="PGD",
        prior=dinv.optim.PnP(denoiser=den),
        data_fidelity=dinv.optim.L2(),
        params_algo={"stepsize": 1.0, "g_param": sigma, "lambda": 1.0},
        max_iter=n_it,
        early_stop=False,
    )
    with torch.no_grad():
        x_dinv = model(y, physics=to_deepinv(A))
    ours = PGD(L2Fidelity(A, y), DenoiserPrior(den, sigma=sigma), step=1.0).run(
        A.adjoint(y), progress=False, tol=None, max_iter=n_it
    )
    assert _rel(ours.x, x_dinv) < 1e-10


# ---------------------------------------------------------------------- monotonicity
def test_tv_pgd_objective_is_monotone():
    A, y, _ = _blur_problem(32, noise=0.02)
    res = PGD(L2Fidelity(A, y), 0.02 * TV(tol=1e-6)).run(progress=False, tol=1e-6, max_iter=60)
    mono = res.diagnostics["monotone"]
    assert mono.checked and mono.holds, mono.violations
    F = res.history["objective"]
    assert len(F) == res.iterations
    assert all(b <= a * (1 + 1e-9) for a, b in zip(F, F[1:]))
    assert F[-1] < F[0]


def test_monotonicity_check_records_violations(blur):
    # FISTA is not monotone in general: the check does not apply
    A, y, _ = blur
    res = FISTA(L2Fidelity(A, y), 0.05 * Tikhonov()).run(progress=False, max_iter=20)
    assert res.diagnostics["monotone"].checked is False
    # unsafe PGD above 2/L: the check is off (theory does not promise a decrease)
    res = PGD(L2Fidelity(A, y), 0.05 * Tikhonov(), step=2.5, unsafe=True).run(progress=False, max_iter=5)
    assert res.diagnostics["monotone"].checked is False


# ---------------------------------------------------------------------- divergence and NaN
def test_divergence_detected_for_unsafe_step(blur):
    A, y, _ = blur
    f = L2Fidelity(A, y)
    L = f.lipschitz_grad()
    res = PGD(f, 0.01 * Tikhonov(), step=3.0 / L, unsafe=True).run(progress=False, max_iter=500)
    assert res.status == "diverged" and not res.converged
    assert res.iterations < 100
    assert bool(torch.isfinite(res.x).all())
    assert res.unsafe is True
    assert res.report.verdict == "not guaranteed" and res.report.unsafe
    assert res.diagnostics["divergence"] is not None


def test_divergence_detected_for_expansive_denoiser(blur):
    A, y, _ = blur
    res = PGD(L2Fidelity(A, y), DenoiserPrior(ScaleDenoiser(2.0), sigma=0.1)).run(progress=False, max_iter=1000)
    assert res.status == "diverged"
    assert res.iterations < 100
    assert bool(torch.isfinite(res.x).all())
    assert res.report.verdict == "no guarantee"


def test_nan_stops_and_returns_last_finite_iterate(blur):
    A, y, _ = blur
    den = NaNAfter(6)
    seen = []
    res = PGD(L2Fidelity(A, y), DenoiserPrior(den, sigma=0.1)).run(
        progress=False, max_iter=100, callback=lambda k, s, rec: seen.append(s.x.clone())
    )
    assert res.status == "nan"
    assert res.iterations == 5 and len(res.history["residual"]) == 5
    assert bool(torch.isfinite(res.x).all())
    assert torch.equal(res.x, seen[-1])


def test_converging_run_never_flags_divergence(blur):
    # residual noise at convergence (tol disabled) must not look like a blow-up
    A, y, _ = blur
    res = PGD(L2Fidelity(A, y), 0.05 * Tikhonov()).run(progress=False, tol=None, max_iter=1500)
    assert res.status == "max_iter"


def test_divergence_monitor_unit():
    m = DivergenceMonitor(window=10, factor=1e3)
    flags = [m.update(k, 2.0**k, x_norm=2.0**k, eps=2.2e-16) for k in range(1, 30)]
    first = next(i for i, r in enumerate(flags) if r is not None)
    assert first == 10  # 2^11 / 2^1 > 1e3
    m.reset()
    # tiny fluctuations far below sqrt(eps)·‖x‖ are ignored
    assert all(m.update(k, 1e-12 * (1 + k % 3), x_norm=1.0, eps=2.2e-16) is None for k in range(50))


# ---------------------------------------------------------------------- step rules
def test_default_steps_follow_theory(blur):
    A, y, _ = blur
    f = L2Fidelity(A, y)
    L = f.lipschitz_grad()
    assert PGD(f, Tikhonov()).step == pytest.approx(1.0 / L)
    assert FISTA(f, Tikhonov()).step == pytest.approx(1.0 / L)
    pd = PDHG(f, TV())
    assert pd.step * pd.dual_step * 8.0 == pytest.approx(0.99**2)


def test_step_above_bound_is_refused(blur):
    A, y, _ = blur
    f = L2Fidelity(A, y)
    L = f.lipschitz_grad()
    with pytest.raises(ValueError, match=r"step 2\.5 exceeds the convergence bound 2/L = 2 for PGD \(L = ‖A‖² = 1\); "
                       r"pass unsafe=True to run anyway"):
        PGD(f, Tikhonov(), step=2.5 / L)
    with pytest.raises(ValueError, match="exceeds the convergence bound 1/L"):
        FISTA(f, Tikhonov(), step=1.5 / L)
    with pytest.raises(ValueError, match=r"tau\*sigma\*‖K‖²"):
        PDHG(f, TV(), step=0.5, dual_step=0.5)
    with pytest.raises(ValueError, match="relaxation"):
        PGD(f, Tikhonov(), relaxation=1.6)  # 1/alpha = 1.5 at step 1/L
    with pytest.raises(ValueError, match="relaxation"):
        DRS(f, Tikhonov(), relaxation=2.0)
    # unsafe=True runs and flags
    alg = PGD(f, Tikhonov(), step=2.5 / L, unsafe=True)
    assert alg.unsafe_used and alg.check_assumptions().unsafe
    assert "unsafe" in alg.check_assumptions().summary()
    # a safe step with unsafe=True is not flagged
    assert PGD(f, Tikhonov(), unsafe=True).unsafe_used is False


def test_construction_refuses_missing_terms(blur):
    A, y, _ = blur
    poisson = PoissonNLL(A, y.clamp_min(0), gain=0.01)  # blur: no prox, a prox in z = A x (the split)
    assert ADMM(poisson, Tikhonov()).split and DRS(poisson, Tikhonov()).split

    class NoProx(PoissonNLL):  # neither prox: the splittings have nothing to work with
        has_data_prox = False

    with pytest.raises(ValueError, match="^fidelity: ADMM needs fidelity.prox"):
        ADMM(NoProx(A, y.clamp_min(0), gain=0.01), Tikhonov())
    with pytest.raises(ValueError, match="^fidelity: DRS needs fidelity.prox"):
        DRS(NoProx(A, y.clamp_min(0), gain=0.01), Tikhonov())
    with pytest.raises(ValueError, match="^step: PoissonNLL.lipschitz_grad"):
        PGD(poisson, Tikhonov())
    with pytest.raises(TypeError, match="DenoiserPrior"):
        PGD(L2Fidelity(A, y), ScaleDenoiser(0.5))
    with pytest.raises(ValueError, match="^relaxation: FISTA"):
        FISTA(L2Fidelity(A, y), Tikhonov(), relaxation=0.5)
    with pytest.raises(ValueError, match="^step must be"):
        PGD(L2Fidelity(A, y), Tikhonov(), step=-1.0)
    # PGD refuses a data term without a Lipschitz gradient; with unsafe=True and a step it runs, flagged
    with pytest.raises(ValueError, match="admm, drs or pdhg"):
        PGD(poisson, Tikhonov(), step=1e-4)
    alg = PGD(poisson, Tikhonov(), step=1e-4, unsafe=True)
    assert alg.check_assumptions().verdict == "not guaranteed" and alg.unsafe_used


def test_poisson_denoising_with_admm_and_drs():
    g = torch.Generator().manual_seed(1)
    truth = 0.2 + 0.6 * torch.rand(1, 1, 16, 16, generator=g, dtype=F64)
    gain = 0.02
    y = gain * torch.poisson(truth / gain, generator=g)
    f = PoissonNLL(Identity(), y, gain=gain)
    prior = 0.5 * Tikhonov()
    r1 = ADMM(f, prior, step=0.05).run(progress=False, tol=1e-10, max_iter=3000)
    r2 = DRS(f, prior, step=0.05).run(progress=False, tol=1e-10, max_iter=3000)
    assert r1.converged and r2.converged
    assert _rel(r1.x, r2.x) < 1e-6
    assert r1.report.verdict == "guaranteed"


# ---------------------------------------------------------------------- results and stopping
def test_result_fields_and_history(blur):
    A, y, truth = blur
    res = PGD(L2Fidelity(A, y), 0.05 * Tikhonov()).run(progress=False, truth=truth, max_iter=40, tol=1e-30)
    assert isinstance(res, Result)
    assert res.status == "max_iter" and res.iterations == 40 and not res.converged
    for key in ("residual", "objective", "psnr", "time"):
        assert len(res.history[key]) == 40
    assert res.step == res.params["step"]
    assert res.report is not None and res.report.verdict == "guaranteed"
    assert res.psnr == res.history["psnr"][-1]
    json.dumps(res.to_dict())
    assert "PGD" in res.summary()
    # residual is ‖x_{k+1} − x_k‖ / ‖x_k‖
    x0 = y.clone()
    r1 = PGD(L2Fidelity(A, y), 0.05 * Tikhonov()).run(x0, progress=False, max_iter=1)
    assert r1.history["residual"][0] == pytest.approx(_rel(r1.x, x0) * 1.0, rel=1e-12)


def test_no_objective_for_denoiser_priors(blur):
    A, y, truth = blur
    res = PGD(L2Fidelity(A, y), DenoiserPrior(ScaleDenoiser(0.5), sigma=0.1)).run(progress=False, max_iter=5)
    assert "objective" not in res.history and "residual" in res.history


def test_problem_gives_x0_and_truth(blur):
    problems = pytest.importorskip("problems")
    A, y, truth = blur
    from operators import Gaussian

    prob = problems.InverseProblem(A, Gaussian(0.01), y, truth=truth)
    res = PGD(prob, 0.05 * Tikhonov()).run(progress=False, max_iter=10)
    assert "psnr" in res.history
    assert res.history["psnr"][-1] == pytest.approx(prob.psnr(res.x))


def test_early_stopping_is_on_by_default(blur):
    A, y, _ = blur
    res = PGD(L2Fidelity(A, y), 0.05 * Tikhonov()).run(progress=False)
    assert res.status == "converged" and res.history["residual"][-1] <= 1e-5
    assert res.iterations < 300


def test_stopping_criteria_compose(blur):
    A, y, _ = blur
    alg = PGD(L2Fidelity(A, y), 0.05 * Tikhonov())
    r = alg.run(progress=False, stop=MaxIter(7) | Tolerance(1e-30))
    assert (r.status, r.iterations) == ("max_iter", 7)
    r = alg.run(progress=False, stop=(Tolerance(1e-2) & MinIter(25)) | MaxIter(100))
    assert (r.status, r.iterations) == ("converged", 25)
    r = alg.run(progress=False, stop=TimeLimit(1e-9) | MaxIter(100))
    assert r.status == "time_limit" and r.iterations == 1
    r = alg.run(progress=False, max_iter=None, tol=None, time_limit=0.01)
    assert r.status == "time_limit"
    info = IterationInfo(iteration=3, residual=0.5, seconds=0.0)
    assert (MaxIter(3) & Tolerance(0.1)).check(info) is None
    assert (MaxIter(3) | Tolerance(0.1)).check(info) == "max_iter"
    with pytest.raises(ValueError, match="tol"):
        Tolerance(-1.0)
    with pytest.raises(TypeError):
        MaxIter(3) | 5


def test_progress_bar_runs(blur, capsys):
    A, y, truth = blur
    res = PGD(L2Fidelity(A, y), 0.05 * Tikhonov()).run(progress=True, truth=truth, max_iter=5)
    assert res.iterations == 5


def test_float32_run(blur):
    A, y, truth = blur
    res = PGD(L2Fidelity(A, y.float()), 0.05 * Tikhonov()).run(progress=False, max_iter=200)
    assert res.x.dtype == torch.float32 and res.status in ("converged", "max_iter")
    assert math.isfinite(res.final_residual)
