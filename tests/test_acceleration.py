"""Safeguarded Anderson acceleration (pnp.acceleration): speed, same fixed point, safeguard, verdict, refusals."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from operators import Blur, L2Fidelity, gaussian
from pnp import ADMM, DRS, FISTA, HQS, PGD
from pnp.acceleration import STEP_ACCEPTED, STEP_REJECTED, Anderson, AndersonState
from priors import AveragedResNet, DenoiserPrior, Tikhonov

torch.set_num_threads(1)
F64 = torch.float64


def _problem(n: int = 24, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    truth = torch.zeros(1, 1, n, n, dtype=F64)
    truth[..., n // 4 : 3 * n // 4, n // 4 : 3 * n // 4] = 0.8
    truth += 0.1 * torch.rand(1, 1, n, n, generator=g, dtype=F64)
    A = Blur(gaussian(1.5), boundary="circular")
    y = A(truth) + 0.01 * torch.randn(truth.shape, generator=g, dtype=F64)
    return A, y, truth


def _closed_form(A, y, c: float, hqs_step: float = 0.0) -> torch.Tensor:
    """Minimiser of ½‖Ax − y‖² + (c/2)‖x‖² for a circular blur (FFT); with ``hqs_step`` γ the
    fixed point of HQS (the penalised problem: denominator ``|Â|² + c + γ c |Â|²``)."""
    delta = torch.zeros_like(y)
    delta[..., 0, 0] = 1.0
    H = torch.fft.fft2(A(delta))
    denom = H.abs() ** 2 + c + hqs_step * c * H.abs() ** 2
    return torch.fft.ifft2(H.conj() * torch.fft.fft2(y) / denom).real


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


@pytest.fixture(scope="module")
def blur():
    return _problem()


@pytest.fixture(scope="module")
def certified_prior():
    torch.manual_seed(0)
    net = AveragedResNet(width=4, depth=1).to(F64).eval()
    return DenoiserPrior(net, sigma=0.05)


# ---------------------------------------------------------------------- faster, same fixed point
@pytest.mark.parametrize("alg", [PGD, HQS, DRS, ADMM])
def test_anderson_reaches_the_tolerance_in_fewer_iterations_at_the_same_minimiser(blur, alg):
    A, y, _ = blur
    prior = 0.002 * Tikhonov()  # (c/2)‖x‖² with c = 0.004: ill-conditioned, slow for the plain iteration
    kw = {} if alg is PGD else {"step": 1.0}
    tol = 1e-9
    plain = alg(L2Fidelity(A, y), prior, **kw).run(tol=tol, max_iter=20000, progress=False)
    fast = alg(L2Fidelity(A, y), prior, accelerate="anderson", **kw).run(tol=tol, max_iter=20000, progress=False)
    assert plain.converged and fast.converged
    assert fast.iterations * 5 < plain.iterations, (fast.iterations, plain.iterations)
    assert fast.diagnostics["acceleration"]["evaluations"] * 3 < plain.iterations
    target = _closed_form(A, y, 0.004, hqs_step=1.0 if alg is HQS else 0.0)
    # both stopped at the same relative residual; Anderson's iterate is at least as close to the fixed point
    assert _rel(fast.x, target) <= max(_rel(plain.x, target), 1e-8) * 1.5
    assert _rel(fast.x, plain.x) < 1e-4
    assert len(fast.history["anderson"]) == fast.iterations == len(fast.history["evaluations"])
    assert fast.history["anderson"].count(STEP_ACCEPTED) > fast.iterations // 2


def test_anderson_pnp_with_a_certified_denoiser(blur, certified_prior):
    A, y, truth = blur
    f = L2Fidelity(A, y)
    plain = PGD(f, certified_prior).run(tol=1e-8, max_iter=5000, progress=False, truth=truth)
    fast = PGD(f, certified_prior, accelerate="anderson").run(tol=1e-8, max_iter=5000, progress=False, truth=truth)
    assert plain.converged and fast.converged
    assert fast.iterations < plain.iterations
    assert _rel(fast.x, plain.x) < 1e-5
    assert abs(fast.psnr - plain.psnr) < 0.01


def test_step_is_pure_and_state_is_frozen(blur):
    A, y, _ = blur
    alg = PGD(L2Fidelity(A, y), 0.002 * Tikhonov())
    pol = Anderson()
    st = pol.start(alg, alg.init(y.clone()))
    for _ in range(3):
        st = pol.step(alg, st)
    snapshot = (st.v.clone(), st.g.clone(), st.x.clone(), [h.clone() for h in st.hv1])
    nxt = pol.step(alg, st)
    assert nxt is not st and nxt.evaluations > st.evaluations
    assert torch.equal(st.v, snapshot[0]) and torch.equal(st.g, snapshot[1]) and torch.equal(st.x, snapshot[2])
    assert all(torch.equal(a, b) for a, b in zip(st.hv1, snapshot[3]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        st.accepted = 3  # type: ignore[misc]


# ---------------------------------------------------------------------- the safeguard
def test_safeguard_refusing_every_anderson_step_gives_exactly_the_plain_iteration(blur):
    """With D tiny the residual never satisfies ‖g‖ <= D Ū (n+1)^-(1+eps): every step is the plain one."""
    A, y, _ = blur
    prior = 0.002 * Tikhonov()
    plain = PGD(L2Fidelity(A, y), prior).run(tol=None, max_iter=30, progress=False)
    guarded = PGD(L2Fidelity(A, y), prior, accelerate=Anderson(safeguard_d=1e-9)).run(
        tol=None, max_iter=30, progress=False)
    # the accelerated run's estimate at iteration k is T(v_k), one plain step ahead of v_k = x_k
    replay = PGD(L2Fidelity(A, y), prior).run(tol=None, max_iter=31, progress=False)
    assert torch.allclose(guarded.x, replay.x, rtol=0, atol=1e-14)
    assert STEP_ACCEPTED not in guarded.history["anderson"]
    assert guarded.history["anderson"].count(STEP_REJECTED) == 29  # the first step has no memory yet
    assert guarded.diagnostics["acceleration"]["evaluations"] == 31  # refused before evaluating: no extra cost
    assert plain.iterations == guarded.iterations


def test_safeguard_rejects_a_bad_anderson_candidate():
    """A poisoned inverse-Jacobian model proposes a step that increases the residual 3.5x: refused, plain step taken."""
    A = Blur(gaussian(1.0), boundary="circular")
    y = A(torch.rand(1, 1, 16, 16, dtype=F64))
    alg = PGD(L2Fidelity(A, y), 0.5 * Tikhonov())
    pol = Anderson(budget=100.0)  # a budget wide enough that only the residual test can refuse it
    st = pol.start(alg, alg.init(torch.ones_like(y)))
    # H = I + a bᵀ with a = 4 g/‖g‖, b = g/‖g‖: H g = 5 g, i.e. ṽ = v − 5 g, past the fixed point
    unit = st.g / torch.linalg.vector_norm(st.g)
    bad = dataclasses.replace(st, hv1=(4.0 * unit,), hv2=(unit,), qs=(unit,))
    assert torch.allclose(bad.apply_h(st.g), 5.0 * st.g)
    nxt = pol.step(alg, bad)
    assert nxt.last == STEP_REJECTED and nxt.rejected == 1 and nxt.accepted == 0
    assert nxt.evaluations == st.evaluations + 2  # the refused candidate and the plain step
    plain_next = alg.update(st.image)
    assert torch.equal(nxt.base.x, st.image.x) and torch.allclose(nxt.x, plain_next.x)
    # the same step is accepted when the policy tolerates the growth
    lax = Anderson(max_growth=10.0, budget=100.0).step(alg, bad)
    assert lax.last == STEP_ACCEPTED
    assert lax.deviation == pytest.approx(4.0 * st.residual_norm, rel=1e-9)  # ‖ṽ − T v‖ = ‖(H − I) g‖
    # with the default budget (max(‖v_0‖, ‖T v_0‖)) its deviation 4‖g‖ does not fit: refused before evaluating
    assert 4.0 * st.residual_norm > Anderson().start(alg, alg.init(torch.ones_like(y))).radius
    tight = Anderson().step(alg, dataclasses.replace(Anderson().start(alg, alg.init(torch.ones_like(y))),
                                                     hv1=(4.0 * unit,), hv2=(unit,), qs=(unit,)))
    assert tight.last == STEP_REJECTED and tight.evaluations == st.evaluations + 1 and tight.exhausted_at == 1


def test_step_longer_than_max_ratio_is_refused_before_evaluating(blur):
    A, y, _ = blur
    alg = PGD(L2Fidelity(A, y), 0.002 * Tikhonov())
    pol = Anderson(max_ratio=2.0)
    st = pol.start(alg, alg.init(y.clone()))
    unit = st.g / torch.linalg.vector_norm(st.g)
    huge = dataclasses.replace(st, hv1=(1e3 * unit,), hv2=(unit,), qs=(unit,))
    nxt = pol.step(alg, huge)
    assert nxt.last == STEP_REJECTED and nxt.evaluations == st.evaluations + 1 and nxt.restarts == 1


def test_anderson_state_exposes_the_estimate(blur):
    A, y, _ = blur
    alg = DRS(L2Fidelity(A, y), 0.002 * Tikhonov(), step=1.0)
    st = Anderson().start(alg, alg.init(y.clone()))
    assert isinstance(st, AndersonState)
    assert torch.equal(st.x, st.image.x) and st.evaluations == 1
    assert st.relative_residual == pytest.approx(st.residual_norm / st.v_norm)


# ---------------------------------------------------------------------- the verdict
def test_verdict_names_the_theorem_and_the_safeguard(blur, certified_prior):
    from pnp.solve import verdict_line

    A, y, _ = blur
    plain = PGD(L2Fidelity(A, y), certified_prior).check_assumptions()
    report = PGD(L2Fidelity(A, y), certified_prior, accelerate="anderson").check_assumptions()
    assert report.verdict == plain.verdict == "guaranteed"
    assert report.theorem.startswith(plain.theorem)
    assert "Anderson" in report.theorem and "Zhang" in report.theorem and "Krasnosel" in report.theorem
    hyp = report.hypotheses[-1]
    assert hyp.holds and "safeguarded" in hyp.name and "averaged" in hyp.detail
    assert report.params["acceleration"] == "anderson(m=5, safeguarded)"
    line = verdict_line(report)
    assert line.startswith("guaranteed (PnP forward-backward") and "safeguarded Anderson acceleration (m = 5)" in line
    drs = DRS(L2Fidelity(A, y), 0.01 * Tikhonov(), accelerate="anderson").check_assumptions()
    assert drs.verdict == "guaranteed" and "Douglas-Rachford" in drs.theorem and "Anderson" in drs.theorem


def test_refused_where_the_safeguard_cannot_keep_a_theorem(blur):
    A, y, _ = blur
    uncertified = DenoiserPrior(lambda x, sigma: 0.9 * x, sigma=0.05)
    with pytest.raises(ValueError, match="safeguard keeps the convergence theorem.*unsafe=True"):
        PGD(L2Fidelity(A, y), uncertified, accelerate="anderson")
    flagged = PGD(L2Fidelity(A, y), uncertified, accelerate="anderson", unsafe=True)
    res = flagged.run(max_iter=5, progress=False)
    assert res.unsafe and res.report.verdict != "guaranteed" and "anderson" in res.history
    # "auto" accelerates only where the theorem is kept
    assert PGD(L2Fidelity(A, y), uncertified, accelerate="auto").acceleration is None
    assert PGD(L2Fidelity(A, y), 0.01 * Tikhonov(), accelerate="auto").acceleration is not None
    with pytest.raises(ValueError, match="accelerate must be one of"):
        PGD(L2Fidelity(A, y), 0.01 * Tikhonov(), accelerate="nesterov")


def test_solver_spec_and_build_algorithm_refuse_fista(blur):
    from pnp.solve import SolverSpec, build_algorithm

    A, y, _ = blur
    assert SolverSpec().accelerate == "auto"
    with pytest.raises(ValueError, match="accelerate"):
        SolverSpec.from_dict({"accelerate": "yes"})
    spec = SolverSpec.from_dict({"prior": "tv", "algorithm": "fista", "accelerate": "anderson"})
    with pytest.raises(ValueError, match="does not apply to FISTA"):
        build_algorithm(spec, L2Fidelity(A, y), 0.01 * Tikhonov())
    auto = SolverSpec.from_dict({"prior": "tv", "algorithm": "fista"})
    assert build_algorithm(auto, L2Fidelity(A, y), 0.01 * Tikhonov()).acceleration is None
    pgd = build_algorithm(SolverSpec.from_dict({"prior": "tv"}), L2Fidelity(A, y), 0.01 * Tikhonov())
    assert isinstance(pgd.acceleration, Anderson)
    with pytest.raises(TypeError):
        FISTA(L2Fidelity(A, y), 0.01 * Tikhonov(), accelerate="anderson")  # no such option


def test_acceleration_is_asked_of_the_class_never_its_name(blur):
    from typing import ClassVar

    from pnp.acceleration import accelerable, refusal, supported_algorithms
    from pnp.assumptions import ForwardBackward, Theory
    from pnp.assumptions_registry import _CLASSES, _THEORIES

    class DampedPGD(PGD):  # defined outside the package: inherits PGD's governing variable
        name: ClassVar[str] = "DampedPGD"
        theory: ClassVar[Theory] = ForwardBackward()

    class Opaque(PGD):  # declares no averaged map: the safeguard has nothing to accelerate
        name: ClassVar[str] = "Opaque"
        anderson_fields: ClassVar[tuple[str, ...] | None] = None

    A, y, _ = blur
    try:
        assert accelerable(DampedPGD) and "DampedPGD" in supported_algorithms()
        assert isinstance(DampedPGD(L2Fidelity(A, y), 0.01 * Tikhonov(), accelerate="anderson").acceleration,
                          Anderson)
        assert not accelerable(Opaque) and "Opaque" not in supported_algorithms()
        with pytest.raises(ValueError, match="^accelerate: anderson does not apply to Opaque"):
            Opaque(L2Fidelity(A, y), 0.01 * Tikhonov(), accelerate="anderson")
        assert Opaque(L2Fidelity(A, y), 0.01 * Tikhonov(), accelerate="auto").acceleration is None
        assert refusal("fista", None).startswith("accelerate: anderson does not apply to FISTA (FISTA already")
        assert set(supported_algorithms()) >= {"PGD", "HQS", "DRS", "ADMM"}
    finally:
        for key in ("DAMPEDPGD", "OPAQUE"):
            _THEORIES.pop(key, None)
            _CLASSES.pop(key, None)


def test_cli_accelerate_flag(tmp_path, capsys):
    from pnp.cli import main

    code = main(["solve", "--size", "32", "--prior", "tv", "--algorithm", "fista", "--accelerate", "anderson",
                 "--quiet", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "FISTA" in err[0]
    code = main(["solve", "--size", "32", "--prior", "tv", "--accelerate", "fast", "--quiet", "--out", str(tmp_path)])
    assert code == 2
    capsys.readouterr()
    out = tmp_path / "run.json"
    code = main(["solve", "--size", "32", "--prior", "tv", "--max-iter", "40", "--quiet", "--out", str(tmp_path),
                 "--json", str(out)])
    assert code == 0
    import json

    record = json.loads(out.read_text())
    assert record["accelerate"] == "auto" and record["acceleration"]["policy"].startswith("anderson")
    assert "safeguarded Anderson acceleration" in record["guarantee"]["line"]
    assert len(record["history"]["anderson"]) == record["iterations"]


def test_figure_marks_anderson_steps(tmp_path):
    from pnp.figures import solve_figure

    x = torch.rand(1, 1, 16, 16)
    path = solve_figure(observed=x, reconstruction=x, truth=x, path=tmp_path / "f.png",
                        history={"residual": [1e-1, 5e-2, 6e-2, 1e-3], "anderson": [0.0, 1.0, -1.0, 1.0]})
    assert path.stat().st_size > 0


def test_progress_total_follows_the_predicted_stop():
    from pnp.run import predicted_total

    assert predicted_total([1e-2, 1e-3, 1e-4], 1e-6, 1000) == 5
    assert predicted_total([1e-2, 1e-3, 1e-4], None, 1000) == 1000
    assert predicted_total([1e-3, 1e-3, 1e-3], 1e-6, 1000) == 1000  # no decay: the cap
    assert predicted_total([1e-2, 1e-3, 1e-4], 1e-60, 50) == 50  # never beyond the cap
    zigzag = [1e-2, 2e-3, 5e-3, 1e-3, 4e-3, 5e-4]  # Anderson-like: the running minimum sets the rate
    assert 6 < predicted_total(zigzag, 1e-6, 1000) < 40
