"""Poisson and Poisson-Gaussian noise end to end: the data term's prox in z = A x, the splittings that use
it (ADMM, DRS, PDHG), their theorems, the weight rule and the command line."""

from __future__ import annotations

import contextlib
import io
import json
import math

import pytest
import torch

from operators import Blur, Identity, L2Fidelity, Poisson, PoissonGaussian, PoissonNLL, gaussian
from pnp import ADMM, DRS, FISTA, PDHG, PGD
from pnp.algorithms import split_form
from pnp.cli import main
from pnp.poisson import POISSON_LAM_FACTOR, effective_noise, poisson_lam
from priors.classical import TV, Tikhonov

F64 = torch.float64


def _data(seed: int = 0, shape=(1, 1, 12, 12), gain: float = 0.05, zeros: int = 6):
    g = torch.Generator().manual_seed(seed)
    truth = 0.1 + 0.8 * torch.rand(shape, generator=g, dtype=F64)
    y = Poisson(gain).sample(truth, generator=g)
    y.view(-1)[:zeros] = 0.0  # zero counts, whatever the draw
    return truth, y


# ---------------------------------------------------------------------------- the prox in z = A x
@pytest.mark.parametrize("offset", [0.0, 1e-6, 0.05])
@pytest.mark.parametrize("tau", [1e-4, 0.03, 1.0, 50.0])
def test_data_prox_satisfies_the_subgradient_condition(offset, tau):
    """z = prox_{tau F}(u): 0 in z - u + tau dF(z), y = 0 pixels and extreme inputs included."""
    gain = 0.05
    _, y = _data(gain=gain)
    f = PoissonNLL(Blur(gaussian(1.0, size=5)), y, gain=gain, offset=offset)
    g = torch.Generator().manual_seed(3)
    u = 4.0 * torch.randn(y.shape, generator=g, dtype=F64)
    u.view(-1)[6:10] = torch.tensor([-1e4, 1e4, -1e-3, 1e-3], dtype=F64)  # cancellation-prone roots
    t = tau / gain
    u.view(-1)[0], u.view(-1)[1] = -5.0, 2.0 * t + 1.0  # a y = 0 pixel on the constraint z = -offset, one inside
    z = f.data_prox(u, tau)
    w = z + offset
    assert torch.isfinite(z).all()
    assert (w >= 0).all()  # in the domain
    pos = y > 0
    assert (w[pos] > 0).all()  # log(y / w) finite where y > 0
    # y > 0: F is differentiable, z - u + t (1 - y / w) = 0 (relative to the size of the terms)
    safe_w = torch.where(pos, w, torch.ones_like(w))
    res = z - u + t * (1 - y / safe_w)
    scale = 1.0 + u.abs() + t * (1 + y / safe_w)
    # w = z + offset is rounded here (absolute error eps (|z| + offset)), which moves t y / w by t y / w^2 times it
    rounding = 10 * torch.finfo(F64).eps * t * y / safe_w ** 2 * (z.abs() + offset)
    assert ((res.abs() - rounding)[pos] / scale[pos]).max() < 1e-12
    # y = 0: F(z) = (z + offset)/gain on z >= -offset; optimal iff z - u + t = 0 inside, u - t <= -offset on it
    zero = ~pos
    inside = zero & (w > 0)
    edge = zero & (w == 0)
    assert float(((z - u + t)[inside].abs() / scale[inside]).max()) < 1e-12
    assert ((u - t + offset)[edge] <= 1e-12 * scale[edge]).all()
    assert zero.sum() >= 6 and edge.any() and inside.any()  # both y = 0 cases are exercised


def test_data_prox_against_brute_force():
    y = torch.tensor([[[[0.0, 0.2, 1.5, 0.0]]]], dtype=F64)
    f = PoissonNLL(Blur(gaussian(1.0, size=3)), y, gain=0.5, offset=0.01)
    u, tau = torch.tensor([[[[0.3, -0.2, 0.9, 2.0]]]], dtype=F64), 0.4
    z = f.data_prox(u, tau)
    grid = torch.linspace(-0.01, 3.0, 300001, dtype=F64)
    for i in range(4):
        yi = float(y.view(-1)[i])
        w = grid + 0.01
        nll = w - (yi * torch.log(w.clamp_min(1e-300)) if yi > 0 else 0.0)
        obj = 0.5 * (grid - u.view(-1)[i]) ** 2 + tau / 0.5 * nll
        assert float(z.view(-1)[i]) == pytest.approx(float(grid[obj.argmin()]), abs=2e-5)


def test_diagonal_prox_is_the_data_prox():
    """For A = I the prox of f and the prox in z = A x are the same map."""
    _, y = _data()
    f = PoissonNLL(Identity(), y, gain=0.05, offset=0.01)
    u = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    torch.testing.assert_close(f.prox(u, 0.3), f.data_prox(u, 0.3), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sigma", [0.1, 2.0, 60.0])
def test_conjugate_prox_by_moreau(sigma):
    """p = prox_{sigma F*}(v)  <=>  p = grad F((v - p) / sigma) where F is differentiable (y > 0)."""
    gain = 0.05
    _, y = _data(zeros=0)
    f = PoissonNLL(Blur(gaussian(1.0, size=5)), y, gain=gain, offset=1e-3)
    v = 3.0 * torch.randn(y.shape, generator=torch.Generator().manual_seed(2), dtype=F64)
    p = f.data_prox_conj(v, sigma)
    z = (v - p) / sigma
    torch.testing.assert_close(p, (1.0 - y / (z + 1e-3)) / gain, rtol=1e-9, atol=1e-9)


def test_l2_data_prox_and_curvatures():
    y = torch.rand(1, 1, 6, 6, dtype=F64)
    f = L2Fidelity(Blur(gaussian(1.0, size=3)), y)
    u = torch.randn_like(y)
    z = f.data_prox(u, 0.7)
    torch.testing.assert_close(z - u + 0.7 * (z - y), torch.zeros_like(y), rtol=0, atol=1e-12)
    assert f.data_curvature() == 1.0
    p = PoissonNLL(Identity(), torch.full((1, 1, 4, 4), 0.5, dtype=F64), gain=0.02)
    assert p.data_curvature() == pytest.approx(1 / (0.02 * 0.5))
    # an empty observation keeps a finite scale (one photon)
    assert PoissonNLL(Identity(), torch.zeros(1, 1, 4, 4), gain=0.02).data_curvature() == pytest.approx(1 / 0.02 ** 2)


# ---------------------------------------------------------------------------- the splittings
@pytest.fixture(scope="module")
def blurred():
    g = torch.Generator().manual_seed(5)
    truth = 0.2 + 0.6 * torch.rand(1, 1, 16, 16, generator=g, dtype=F64)
    A = Blur(gaussian(1.2, size=7))
    y = Poisson(0.02).sample(A(truth), generator=g)
    return A, y


def test_splittings_agree_and_name_their_theorems(blurred):
    A, y = blurred
    f = PoissonNLL(A, y, gain=0.02)
    assert not f.has_prox and split_form(f, "ADMM") and split_form(f, "PDHG")
    prior = 0.5 * Tikhonov(gradient=True)  # exact prox: the three limits are the same minimiser
    runs = {cls.name: cls(f, prior) for cls in (ADMM, DRS, PDHG)}
    results = {name: alg.run(progress=False, tol=1e-10, max_iter=20000) for name, alg in runs.items()}
    for name, res in results.items():
        assert res.converged and res.report.verdict == "guaranteed", (name, res.report.reason)
        assert runs[name].split
    assert "Figueiredo & Bioucas-Dias" in results["ADMM"].report.theorem
    assert "graph z = A x" in results["DRS"].report.theorem
    assert "Chambolle & Pock" in results["PDHG"].report.theorem and "z = A x" in results["PDHG"].report.theorem
    ref = results["ADMM"].x
    for name in ("DRS", "PDHG"):
        assert float((results[name].x - ref).norm() / ref.norm()) < 1e-5, name
    # the limit is a minimiser: the objective's gradient vanishes there (F(Ax) + g smooth inside the domain)
    x = ref.clone()
    grad = f.grad(x) + prior.grad(x)
    assert float(grad.norm()) < 1e-4 * float(f.grad(y).norm())


def test_pdhg_takes_a_smooth_prior_by_its_gradient(blurred):
    A, y = blurred
    f = PoissonNLL(A, y, gain=0.02)

    class Smooth(Tikhonov):  # a smooth convex prior without a linear part: Condat-Vu
        smooth = True

        def lipschitz_grad(self):
            return 8.0 * self.weight

    alg = PDHG(f, Smooth(gradient=True, weight=0.5))
    assert alg.prior_block == "gradient"
    r = alg.run(progress=False, tol=1e-10, max_iter=20000)
    assert r.converged and r.report.verdict == "guaranteed"
    assert "Condat" in r.report.theorem
    ref = ADMM(f, 0.5 * Tikhonov(gradient=True)).run(progress=False, tol=1e-10, max_iter=20000).x
    assert float((r.x - ref).norm() / ref.norm()) < 1e-5
    # a step above the bound is refused
    with pytest.raises(ValueError, match="primal-dual convergence bound"):
        PDHG(f, Smooth(gradient=True, weight=0.5), step=1.0, dual_step=10.0)


def test_tv_split_runs_from_defaults(blurred):
    A, y = blurred
    f = PoissonNLL(A, y, gain=0.02)
    for cls in (ADMM, DRS):
        alg = cls(f, 2.0 * TV())  # about the weight of the rule (pnp.poisson) at this noise level
        assert alg.step == pytest.approx(1.0 / (f.data_curvature() * A.norm(tuple(y.shape)) ** 2))  # not hand-picked
        r = alg.run(progress=False, max_iter=3000)
        assert r.converged and r.report.verdict == "guaranteed", r.report.reason
    pd = PDHG(f, 2.0 * TV())
    assert pd.prior_block == "dual" and pd.dual_step == pytest.approx(f.data_curvature())
    assert pd.check_assumptions().verdict == "guaranteed"


def test_gradient_methods_refuse_poisson(blurred):
    A, y = blurred
    f = PoissonNLL(A, y, gain=0.02)
    for cls in (PGD, FISTA):
        with pytest.raises(ValueError, match="admm, drs or pdhg"):
            cls(f, 0.05 * TV())
        with pytest.raises(ValueError, match="admm, drs or pdhg"):
            cls(f, 0.05 * TV(), step=1e-3)


def test_poisson_gaussian_fidelity_splits(blurred):
    A, y = blurred
    yg = PoissonGaussian(0.02, 0.03).sample(A(torch.full_like(y, 0.5)), generator=torch.Generator().manual_seed(0))
    f = PoissonGaussian(0.02, 0.03).fidelity(A, yg)
    r = ADMM(f, 2.0 * TV()).run(progress=False, max_iter=3000)
    assert r.converged and r.report.verdict == "guaranteed"
    assert f.data_curvature() == pytest.approx(1 / (0.02 * float(yg.mean()) + 0.03 ** 2), rel=1e-6)


# ---------------------------------------------------------------------------- the weight rule
def test_weight_rule_scales_with_the_peak():
    s10, s100 = effective_noise(gain=0.1, mean=0.5), effective_noise(gain=0.01, mean=0.5)
    assert s10 == pytest.approx(math.sqrt(0.05)) and s100 == pytest.approx(math.sqrt(0.005))
    assert effective_noise(gain=0.01, mean=0.5, sigma=0.02) == pytest.approx(math.sqrt(0.005 + 0.0004))
    assert effective_noise(gain=0.01, mean=0.0) == pytest.approx(0.01)  # one photon floor
    assert poisson_lam("tv", 0.01, 0.1) == pytest.approx(POISSON_LAM_FACTOR["tv"] * 1.0)
    assert poisson_lam("wavelet", 0.01, 0.1) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="sigma_eff"):
        poisson_lam("tv", 0.01, 0.0)


# ---------------------------------------------------------------------------- the command line
def _cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(("extra", "theorem"), [([], "Figueiredo & Bioucas-Dias"), (["--prior", "tv"], "Figueiredo"),
                                                (["--prior", "tv", "--algorithm", "drs"], "graph z = A x")])
def test_cli_poisson_solves(tmp_path, extra, theorem):
    out_json = tmp_path / "r.json"
    code, _, err = _cli(["solve", "--noise-model", "poisson", "--peak", "30", "--size", "32", "--quiet",
                         "--no-figure", "--out", str(tmp_path), "--json", str(out_json), *extra])
    assert code == 0, err
    record = json.loads(out_json.read_text())
    assert record["problem"]["noise_model"] == "poisson" and record["problem"]["gain"] == pytest.approx(1 / 30)
    assert record["psnr"] > record["psnr_observed"] + 3.0
    assert record["converged"] and record["guarantee"]["verdict"] == "guaranteed"
    assert theorem in record["guarantee"]["theorem"] and "z = A x" in record["guarantee"]["theorem"]
    assert "Poisson rule" in record["lam_source"]
    if "--algorithm" not in extra:  # the Poisson defaults: ADMM through the split, plain iterations
        assert record["algorithm"] == "admm" and record["accelerate"] == "none"


def test_cli_poisson_gaussian_and_config(tmp_path):
    code, _, err = _cli(["solve", "--noise-model", "poisson_gaussian", "--peak", "30", "--noise", "0.02",
                         "--prior", "tv", "--size", "32", "-q", "--no-figure", "--out", str(tmp_path),
                         "--json", str(tmp_path / "pg.json")])
    assert code == 0, err
    record = json.loads((tmp_path / "pg.json").read_text())
    assert record["algorithm"] == "admm" and record["guarantee"]["verdict"] == "guaranteed"
    assert record["problem"]["sigma"] == 0.02 and record["psnr"] > record["psnr_observed"]
    # a config that names a gradient method for Poisson data is refused in one line, with the fix
    cfg = tmp_path / "p.yaml"
    cfg.write_text("problem:\n  noise_model: poisson\n  gain: 0.05\n  size: 32\nsolver:\n  algorithm: pgd\n")
    code, _, err = _cli(["solve", str(cfg), "-q", "--no-figure", "--out", str(tmp_path)])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "admm, drs or pdhg" in err


@pytest.mark.parametrize(("args", "fragment"), [
    (["--noise-model", "poisson", "--peak", "0"], "--peak: must be > 0"),
    (["--noise-model", "poisson", "--peak", "nan"], "--peak: expected a finite"),
    (["--noise-model", "poisson", "--peak", "-5"], "--peak: must be > 0"),
    (["--peak", "30"], "noise model is 'gaussian'; add --noise-model poisson"),
    (["--noise-model", "gaussian", "--peak", "30"], "noise model is 'gaussian'"),
    (["--noise-model", "poisson", "--peak", "30", "--noise", "0.01"], "drop --noise"),
    (["--noise-model", "poisson", "--peak", "30", "--algorithm", "fista"], "admm, drs or pdhg"),
    (["--noise-model", "laplace", "--peak", "30"], "--noise-model: invalid choice"),
])
def test_cli_bad_poisson_values(tmp_path, args, fragment):
    code, out, err = _cli(["solve", "--size", "16", "-q", "--no-figure", "--out", str(tmp_path), *args])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], err
    assert not list(tmp_path.glob("*_reconstruction.npy"))
