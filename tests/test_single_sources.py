"""One source for each piece of theory and arithmetic the algorithms share.

The algorithms own their convergence theorem (``Algorithm.theory``: report and step bound in one
object), PDHG asks the prior for its linear part instead of recognising TV by name and uses TV's
own finite differences, and PSNR and the prox-step check exist once.
"""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch

import pnp.diagnostics
import priors.base
from operators import Blur, Identity, L2Fidelity, gaussian
from operators.checks import check_tau
from pnp import ADMM, DRS, FISTA, HQS, PDHG, PGD, check_assumptions, linear_part_of
from pnp.assumptions import ForwardBackward, Theory
from pnp.assumptions_registry import _THEORIES
from priors import TV, Tikhonov
from priors.tv import FiniteDifference, grad2d
from problems import metrics

torch.set_num_threads(1)
F64 = torch.float64
ALL = (PGD, FISTA, ADMM, DRS, HQS, PDHG)


@pytest.fixture(scope="module")
def fid():
    g = torch.Generator().manual_seed(0)
    truth = torch.rand(1, 1, 16, 16, generator=g, dtype=F64)
    A = Blur(gaussian(1.0))
    return L2Fidelity(A, A(truth) + 0.01 * torch.randn(truth.shape, generator=g, dtype=F64))


@pytest.mark.parametrize("alg", ALL, ids=lambda a: a.name)
def test_every_algorithm_declares_the_theory_its_report_comes_from(fid, alg):
    assert isinstance(alg.theory, Theory)
    solver = alg(fid, 0.01 * Tikhonov())
    extra = {"momentum": solver.momentum} if alg is FISTA else {}
    if alg is PDHG:
        extra = {"dual_step": solver.dual_step, "op_norm_sq": solver.linear.norm_sq}
    by_name = check_assumptions(alg.name.lower(), fid, 0.01 * Tikhonov(), step=solver.step, L=solver.L, **extra)
    assert by_name == solver.check_assumptions()


@pytest.mark.parametrize("alg", (PGD, FISTA), ids=lambda a: a.name)
def test_the_refused_step_is_the_one_the_report_rejects(fid, alg):
    rule = alg.theory.step_bound
    L = fid.lipschitz_grad()
    too_big = 1.01 * rule.bound(L)
    with pytest.raises(ValueError, match=rf"convergence bound {rule.rhs}"):
        alg(fid, 0.01 * Tikhonov(), step=too_big)
    report = alg(fid, 0.01 * Tikhonov(), step=too_big, unsafe=True).check_assumptions()
    step_hyp = next(h for h in report.hypotheses if h.name == rule.label)
    assert not step_hyp.holds and report.unsafe
    ok = alg(fid, 0.01 * Tikhonov(), step=0.99 * rule.bound(L)).check_assumptions()
    assert next(h for h in ok.hypotheses if h.name == rule.label).holds


def test_an_algorithm_defined_outside_the_package_brings_its_theory(fid):
    class DampedPGD(PGD):
        name: ClassVar[str] = "DampedPGD"
        theory: ClassVar[Theory] = ForwardBackward()

    try:
        report = check_assumptions("dampedpgd", fid, 0.01 * TV(), step=1.0)
        assert report.algorithm == "DampedPGD" and report.verdict == "guaranteed"
        assert DampedPGD(fid, 0.01 * TV()).check_assumptions().algorithm == "DampedPGD"
    finally:
        _THEORIES.pop("DAMPEDPGD", None)
    with pytest.raises(ValueError, match="algorithm must be one of PGD, FISTA, ADMM, DRS, HQS, PDHG"):
        check_assumptions("DampedPGD", fid, TV(), step=1.0)


def test_pdhg_asks_the_prior_for_its_linear_part_not_its_class_name(fid):
    class RenamedTV(TV):  # a TV under another class name still brings its finite differences
        pass

    for prior in (0.02 * TV(), 0.02 * RenamedTV(), RenamedTV(isotropic=False, weight=0.02)):
        lp = linear_part_of(prior)
        assert lp.norm_sq == 8.0 and "TV: K = forward differences" in lp.description
        p = torch.randn(1, 1, 2, 5, 5, dtype=F64)
        q = lp.prox_conj(p, 0.3)  # projection onto the dual ball of radius 0.02
        if prior.isotropic:
            assert float(torch.linalg.vector_norm(q, dim=2).max()) <= 0.02 * (1 + 1e-12)
        else:
            assert float(q.abs().max()) <= 0.02
    assert linear_part_of(Tikhonov()).description.startswith("K = I")


def test_one_finite_difference_operator():
    import pnp.algorithms

    assert pnp.algorithms.FiniteDifference is FiniteDifference
    x = torch.randn(2, 3, 6, 7, dtype=F64)
    gh, gv = grad2d(x)
    d = FiniteDifference.forward(x)
    assert torch.equal(d[:, :, 0], gv) and torch.equal(d[:, :, 1], gh)
    p = torch.randn(2, 3, 2, 6, 7, dtype=F64)
    lhs, rhs = float((d * p).sum()), float((x * FiniteDifference.adjoint(p)).sum())
    assert abs(lhs - rhs) <= 1e-12 * max(abs(lhs), 1.0)


def test_one_psnr():
    assert pnp.diagnostics.psnr is metrics.psnr
    x, ref = torch.full((2, 1, 8, 8), 0.5), torch.full((2, 1, 8, 8), 0.6)
    res = PGD(L2Fidelity(Identity(), ref.clone()), 0.0 * Tikhonov(), step=0.5).run(x, truth=ref, max_iter=1,
                                                                                 progress=False)
    assert res.history["psnr"][0] == pytest.approx(float(metrics.psnr(res.x, ref).mean()))


def test_one_tau_check():
    assert priors.base.check_tau is check_tau
    assert check_tau(0.0) == 0.0  # a prior's prox at tau = 0 is the identity
    with pytest.raises(ValueError, match="tau must be finite and > 0"):
        L2Fidelity(Identity(), torch.zeros(1, 1, 2, 2)).prox(torch.zeros(1, 1, 2, 2), 0.0)
    with pytest.raises(ValueError, match="tau must be finite and >= 0"):
        Tikhonov().prox(torch.zeros(1, 1, 2, 2), -1.0)
    with pytest.raises(TypeError, match="tau must be a float"):
        check_tau("0.5")
