"""Inexact proximal steps: certified inner accuracy, the summable schedule, and honest verdicts."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from operators import Blur, Gaussian, kernels
from operators.fidelity import L2Fidelity
from pnp import DRS, FISTA, PGD
from pnp.assumptions import check_assumptions
from pnp.inexact import InexactSchedule, default_schedule
from priors import TV, Tikhonov
from priors.base import Prior, ProxAccuracy
from priors.tv import tv_prox, tv_value
from problems import InverseProblem, load_image


def _problem(size: int = 32, dtype: torch.dtype = torch.float32) -> InverseProblem:
    x = load_image("camera", size=size, dtype=dtype)
    return InverseProblem.simulate(x, Blur(kernels.gaussian(1.6)), Gaussian(0.01), seed=0)


# ---------------------------------------------------------------------------- the prox reports its accuracy
def test_tv_prox_accuracy_bounds_the_true_error(gen):
    v = torch.rand(2, 1, 16, 16, generator=gen, dtype=torch.float64)
    ref, _, _ = tv_prox(v, 0.1, tol=1e-13, max_iter=40000)
    prior = 0.1 * TV()
    for target in (None, 1e-3, 1e-6):
        x, acc = prior.prox_accuracy(v, 1.0, target=target)
        assert isinstance(acc, ProxAccuracy) and acc.iterations > 0
        assert float((x - ref).norm()) <= acc.error_bound + 1e-9  # certified
        assert acc.met and (target is None or acc.error_bound <= target)
    torch.testing.assert_close(prior.prox(v, 1.0), TV(weight=0.1).prox(v, 1.0))  # the public API is unchanged


def test_exact_priors_report_zero_error():
    x, acc = Tikhonov(gradient=True).prox_accuracy(torch.rand(1, 1, 8, 8), 0.5, target=1e-12)
    assert acc.error_bound == 0.0 and acc.met and not acc.capped


def test_float32_floor_moves_the_solve_to_float64():
    v = load_image("camera", size=32)
    target = 1e-7 * float(v.norm())  # below what a float32 duality gap can certify
    x, _, info = tv_prox(v, 0.05, error_tol=target, max_iter=20000)
    assert x.dtype == torch.float32
    assert info.method == "iterative (float64)" and info.converged and info.error_abs <= target


@pytest.mark.parametrize("t", [1e-303, 1e-50, 1e-45, 1e-20])
def test_tiny_weights_return_the_input(t):
    v = load_image("camera", size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x, _, info = tv_prox(v, t)
    assert info.method == "identity" and torch.equal(x, v) and info.error_abs <= 1e-6


@pytest.mark.parametrize("t", [1e3, 1e6, 1e30, 1e300])
def test_huge_weights_give_the_certified_mean(t):
    v = torch.cat([load_image("astronaut", size=32, gray=False), load_image("coffee", size=32, gray=False)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x, _, info = tv_prox(v, t)
    assert info.method == "constant" and info.converged and info.error_abs < 1e-5
    torch.testing.assert_close(x, v.mean(dim=(-2, -1), keepdim=True).expand_as(v))


@pytest.mark.parametrize("isotropic", [True, False])
def test_constant_certificate_is_optimal(isotropic, gen):
    v = torch.rand(1, 1, 4, 5, generator=gen, dtype=torch.float64)
    t = 5.0
    x, _, info = tv_prox(v, t, isotropic=isotropic)
    assert info.method == "constant" and info.error_abs < 1e-6  # sqrt of a rounding-level gap

    def objective(z):
        return float(0.5 * ((z - v) ** 2).sum() + t * tv_value(z, isotropic=isotropic).sum())

    best = objective(x)
    for scale in (1e-1, 1e-3, 1e-6):  # no perturbation of the mean does better
        for _ in range(50):
            assert objective(x + scale * torch.randn(x.shape, generator=gen, dtype=x.dtype)) >= best - 1e-12


def test_far_from_unit_scale_is_rescaled():
    v = load_image("camera", size=16, dtype=torch.float64)
    x, _, _ = tv_prox(v, 0.05, tol=1e-10, max_iter=20000)
    big, _, info = tv_prox(v * 1e20, 0.05 * 1e20, tol=1e-10, max_iter=20000)
    torch.testing.assert_close(big / 1e20, x, rtol=1e-6, atol=1e-8)
    assert info.error_abs < 1e20 * 1e-3


# ---------------------------------------------------------------------------- the schedule and the verdict
def test_schedules_are_summable():
    assert default_schedule("PGD").power == pytest.approx(1.1)
    assert default_schedule("FISTA").power == pytest.approx(2.1)  # sum k e_k < inf for the O(1/k^2) rate
    with pytest.raises(ValueError, match="power"):
        InexactSchedule(power=1.0)


def test_the_schedule_is_declared_by_the_theorem_not_looked_up_by_name():
    from typing import ClassVar

    from pnp.assumptions import AcceleratedForwardBackward, Theory
    from pnp.assumptions_registry import _CLASSES, _THEORIES
    from pnp.inexact import CITATION_ACCELERATED, citation

    assert default_schedule(FISTA).power == FISTA.theory.inexact_power == pytest.approx(2.1)
    assert default_schedule(PGD.theory).power == pytest.approx(1.1)
    assert citation("fista") == CITATION_ACCELERATED and "Eckstein" in citation(DRS)

    class Nesterov(FISTA):  # an accelerated method under another name brings its own schedule
        name: ClassVar[str] = "Nesterov"
        theory: ClassVar[Theory] = AcceleratedForwardBackward()

    try:
        assert default_schedule("nesterov").power == pytest.approx(2.1)
        fid = L2Fidelity(Blur(kernels.gaussian(1.0)), torch.zeros(1, 1, 16, 16))
        report = Nesterov(fid, 0.01 * TV()).check_assumptions()
        assert {h.name: h for h in report.hypotheses}["inner prox errors summable"].value == pytest.approx(2.1)
    finally:
        _THEORIES.pop("NESTEROV", None)
        _CLASSES.pop("NESTEROV", None)


@pytest.mark.parametrize("alg", ["PGD", "FISTA", "DRS", "ADMM", "HQS"])
def test_check_assumptions_lists_the_inner_hypothesis(alg):
    fid = L2Fidelity(Blur(kernels.gaussian(1.0)), torch.zeros(1, 1, 16, 16))
    report = check_assumptions(alg, fid, 0.01 * TV(), step=1.0)
    hyp = {h.name: h for h in report.hypotheses}["inner prox errors summable"]
    assert hyp.holds and report.verdict == "guaranteed"
    assert hyp.value == pytest.approx(default_schedule(alg).power)
    exact = check_assumptions(alg, fid, 0.01 * Tikhonov(), step=1.0)
    assert "inner prox errors summable" not in {h.name for h in exact.hypotheses}


class _SilentIterativePrior(Prior):
    """An iterative convex prior that certifies nothing."""

    name, convex, exact_prox = "silent", True, False

    def _prox(self, v, t):
        return v / (1.0 + t)

    def _value(self, x):
        return 0.5 * (x * x).flatten(1).sum(1)


def test_an_iterative_prox_without_accuracy_is_not_guaranteed():
    report = PGD(_problem(16), _SilentIterativePrior()).check_assumptions()
    assert report.verdict == "not guaranteed" and "certifies no error bound" in report.reason


def test_guaranteed_run_records_the_inner_accuracy():
    problem = _problem()
    for cls in (PGD, FISTA, DRS):
        res = cls(problem, 1e-3 * TV()).run(max_iter=30, progress=False)
        assert res.report.verdict == "guaranteed", res.report.reason
        h = res.history
        assert len(h["prox_error_bound"]) == len(h["prox_target"]) == res.iterations
        assert all(b <= t for b, t in zip(h["prox_error_bound"], h["prox_target"]))
        summary = res.diagnostics["inexact_prox"]
        assert summary["violation"] is None and summary["max_ratio"] <= 1.0


def test_inner_cap_withdraws_the_verdict_at_once():
    with pytest.warns(RuntimeWarning, match="guarantee withdrawn at iteration 1"):
        res = PGD(_problem(), 1e-3 * TV(max_iter=1)).run(max_iter=5, progress=False)
    assert res.report.verdict == "not guaranteed"
    assert "inner prox errors not summable" in res.report.reason and "iteration cap" in res.report.reason
    failed = [h.name for h in res.report.hypotheses if not h.holds]
    assert failed == ["inner prox errors summable"]


class _LyingProx(Prior):
    """Claims a closed-form convex prox but expands: the run diverges."""

    name, convex, exact_prox = "liar", True, True

    def _prox(self, v, t):
        return 3.0 * v

    def _value(self, x):
        return x.flatten(1).abs().sum(1)


def test_a_diverged_run_never_keeps_guaranteed():
    alg = PGD(_problem(16, torch.float64), _LyingProx())
    assert alg.check_assumptions().verdict == "guaranteed"  # what the prior declares
    res = alg.run(max_iter=2000, progress=False)
    assert res.status in ("diverged", "nan")
    assert res.report.verdict == "not guaranteed"
    assert any(not h.holds and "bounded" in h.name for h in res.report.hypotheses)
    assert math.isfinite(float(res.x.abs().max()))
