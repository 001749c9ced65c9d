"""FISTA with adaptive restart (pnp.restart): same minimiser, faster where it is known to help, honest verdict."""

from __future__ import annotations

import pytest
import torch

from operators import L2Fidelity
from pnp import FISTA, PGD, check_assumptions
from pnp.restart import RESTART_FUNCTION, RESTART_GRADIENT, check_restart, momentum_uphill
from priors import TV, Tikhonov
from test_acceleration import _closed_form, _problem, _rel  # the same blur problem and its closed-form minimiser

torch.set_num_threads(1)
C = 1e-3  # Tikhonov weight: strong convexity modulus of the quadratic, condition number ~ 1/C


@pytest.fixture(scope="module")
def quad():
    A, y, _ = _problem()
    return A, y, _closed_form(A, y, C)


@pytest.mark.parametrize("restart", ["gradient", "function"])
def test_restart_reaches_the_minimiser_in_fewer_iterations_on_a_strongly_convex_quadratic(quad, restart):
    A, y, x_star = quad
    plain = FISTA(L2Fidelity(A, y), C * Tikhonov()).run(tol=1e-9, max_iter=20000, progress=False)
    fast = FISTA(L2Fidelity(A, y), C * Tikhonov(), restart=restart).run(tol=1e-9, max_iter=20000, progress=False)
    assert plain.converged and fast.converged
    assert _rel(fast.x, x_star) < 1e-5 and _rel(plain.x, x_star) < 1e-5
    # the oscillating momentum of plain FISTA is what restart removes: at least twice fewer iterations
    assert fast.iterations * 2 <= plain.iterations, (fast.iterations, plain.iterations)
    info = fast.diagnostics["restart"]
    assert info["scheme"] == restart and info["guarded"] and info["restarts"] >= 1
    codes = fast.history["restart"]
    assert len(codes) == fast.iterations and sum(c != 0.0 for c in codes) == info["restarts"]
    assert (RESTART_GRADIENT if restart == "gradient" else RESTART_FUNCTION) in codes


@pytest.mark.parametrize("restart", ["gradient", "function"])
def test_restart_never_ends_above_plain_fista_at_equal_iterations_and_decreases_monotonically(quad, restart):
    A, y, _ = quad
    for n in (25, 60, 150):
        plain = FISTA(L2Fidelity(A, y), C * Tikhonov()).run(tol=None, max_iter=n, progress=False)
        fast = FISTA(L2Fidelity(A, y), C * Tikhonov(), restart=restart).run(tol=None, max_iter=n, progress=False)
        assert fast.history["objective"][-1] <= plain.history["objective"][-1] * (1 + 1e-12), n
        mono = fast.diagnostics["monotone"]
        assert mono.checked and mono.holds, mono
    # plain FISTA on the same problem is not monotone, and its check does not claim it
    assert not plain.diagnostics["monotone"].checked
    obj = plain.history["objective"]
    assert any(b > a for a, b in zip(obj, obj[1:]))


def test_restart_on_tv_gives_the_same_minimiser_as_plain_fista():
    A, y, _ = _problem(n=16, seed=1)
    prior = 0.02 * TV()
    plain = FISTA(L2Fidelity(A, y), prior).run(tol=1e-8, max_iter=3000, progress=False)
    fast = FISTA(L2Fidelity(A, y), prior, restart="gradient").run(tol=1e-8, max_iter=3000, progress=False)
    assert plain.converged and fast.converged
    assert _rel(fast.x, plain.x) < 1e-4
    objective = FISTA(L2Fidelity(A, y), prior).objective
    assert objective(fast.x) <= objective(plain.x) * (1 + 1e-6)
    assert fast.report.verdict == "guaranteed"


def test_the_verdict_names_the_restart_and_the_guarantee_it_keeps(quad):
    A, y, _ = quad
    plain = FISTA(L2Fidelity(A, y), C * Tikhonov()).check_assumptions()
    assert "O(1/k^2)" in plain.conclusion and "restart" not in plain.theorem
    for restart in ("gradient", "function"):
        alg = FISTA(L2Fidelity(A, y), C * Tikhonov(), restart=restart)
        r = alg.check_assumptions()
        assert r.verdict == "guaranteed" and r.params["restart"] == restart
        assert f"FISTA with {restart} adaptive restart" in r.theorem and "O'Donoghue" in r.theorem
        assert "nonincreasing" in r.conclusion and "O(1/k^2) rate of plain FISTA is not claimed" in r.conclusion
        assert r.hypotheses[-1].name.startswith("restart guarded by the objective") and r.hypotheses[-1].holds
        assert alg.parameters()["restart"] == restart
        # the lookup by name gives the same report
        by_name = check_assumptions("fista", L2Fidelity(A, y), C * Tikhonov(), step=alg.step, L=alg.L,
                                    restart=restart)
        assert by_name == r


class _ProxOnly:
    """A convex prior with a closed-form prox and no value (the objective cannot be evaluated)."""

    name, convex, exact_prox, has_value = "prox-only", True, True, False

    def prox(self, v, tau):
        return v / (1.0 + tau)


def test_restart_without_the_objective_is_refused_or_flagged(quad):
    A, y, _ = quad
    assert FISTA(L2Fidelity(A, y), _ProxOnly()).check_assumptions().verdict == "guaranteed"
    with pytest.raises(ValueError, match=r"^restart: 'function' needs the objective f \+ g and the prior prox-only "
                                         r"has no value\(\); use restart='gradient' or 'none'$"):
        FISTA(L2Fidelity(A, y), _ProxOnly(), restart="function")
    with pytest.raises(ValueError, match=r"^restart: 'gradient' restart without objective values keeps no "
                                         r"convergence theorem .*pass unsafe=True to run anyway$"):
        FISTA(L2Fidelity(A, y), _ProxOnly(), restart="gradient")
    alg = FISTA(L2Fidelity(A, y), _ProxOnly(), restart="gradient", unsafe=True)
    r = alg.check_assumptions()
    assert r.verdict == "not guaranteed" and r.unsafe and "no value()" in r.reason
    res = alg.run(tol=1e-8, max_iter=2000, progress=False)
    assert res.unsafe and res.diagnostics["restart"]["guarded"] is False


@pytest.mark.parametrize("bad", ["sometimes", "", None, 1, True])
def test_invalid_restart_is_refused_in_one_line(quad, bad):
    A, y, _ = quad
    with pytest.raises(ValueError, match=r"^restart must be one of 'none', 'gradient', 'function', got .+$") as e:
        FISTA(L2Fidelity(A, y), C * Tikhonov(), restart=bad)
    assert "\n" not in str(e.value)


def test_default_is_plain_fista_with_no_restart_record(quad):
    A, y, _ = quad
    a = FISTA(L2Fidelity(A, y), C * Tikhonov()).run(tol=None, max_iter=30, progress=False)
    b = FISTA(L2Fidelity(A, y), C * Tikhonov(), restart="none").run(tol=None, max_iter=30, progress=False)
    assert torch.equal(a.x, b.x) and "restart" not in a.history and "restart" not in a.diagnostics
    assert check_restart(" Gradient ") == "gradient"
    # the job layer asks the class which schemes it takes (only FISTA has momentum to restart)
    assert FISTA.restart_schemes == ("none", "gradient", "function") and PGD.restart_schemes == ()


def test_gradient_test_is_the_sign_of_the_inner_product():
    x_old, x_new = torch.zeros(2, 3), torch.ones(2, 3)
    assert momentum_uphill(2.0 * torch.ones(2, 3), x_new, x_old)  # z beyond x_new along the step: uphill
    assert not momentum_uphill(0.5 * torch.ones(2, 3), x_new, x_old)


def test_restart_flag_goes_through_solve_and_is_refused_without_momentum(tmp_path, capsys):
    """`stablepnp solve --restart` reaches FISTA and its record; PGD refuses it in one line (exit 2)."""
    import json

    from pnp.cli import main

    out = tmp_path / "r.json"
    rc = main(["solve", "--prior", "tv", "--algorithm", "fista", "--restart", "function", "--size", "32",
               "--max-iter", "60", "--no-figure", "--quiet", "--json", str(out)])
    assert rc == 0
    record = json.loads(out.read_text())
    assert record["solver"]["restart"] == "function" and record["restart"]["scheme"] == "function"
    rc = main(["solve", "--prior", "tv", "--algorithm", "pgd", "--restart", "gradient", "--size", "32", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no momentum to restart" in err[0]
