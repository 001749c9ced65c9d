"""Convex ridge regularizer (priors/ridge.py): splines, the linear map, the certificate, the prox."""

from __future__ import annotations

import math

import pytest
import numpy as np
import torch

from priors.certify import empirical_lipschitz
from priors.ridge import LinearSpline, RidgePrior, RidgeRegularizer


def _trained_like(seed: int = 0, **cfg) -> RidgeRegularizer:
    """A small model with random (non-trivial) splines and scalars, as after training."""
    torch.manual_seed(seed)
    net = RidgeRegularizer(**{"hidden": 3, "channels": 6, "kernel_size": 3, "knots": 9, **cfg}).double()
    with torch.no_grad():
        net.spline.raw.uniform_(-0.3, 1.3)  # some segments clamped to 0 or 1
        net.mu_raw.copy_(torch.tensor([1.5, 0.0]))
    return net.eval()


def test_spline_is_monotone_with_slopes_in_unit_interval_and_zero_at_zero():
    s = LinearSpline(4, knots=11, knot_range=0.5).double()
    with torch.no_grad():
        s.raw.uniform_(-1, 2)
    x = torch.linspace(-1, 1, 2001, dtype=torch.float64).view(1, 1, 1, -1).expand(1, 4, 1, -1)
    with torch.no_grad():
        y = s(x)
    d = (y[..., 1:] - y[..., :-1]) / (x[..., 1:] - x[..., :-1])
    assert float(d.min()) >= -1e-12 and float(d.max()) <= 1 + 1e-9
    assert torch.allclose(s(torch.zeros(1, 4, 1, 1, dtype=torch.float64)), torch.zeros(1, 4, 1, 1, dtype=torch.float64))
    # constant outside the knot range
    assert torch.allclose(s(torch.full((1, 4, 1, 1), 3.0, dtype=torch.float64)),
                          s(torch.full((1, 4, 1, 1), 0.5, dtype=torch.float64)))
    # the largest slope reported is the largest slope of the function
    assert torch.allclose(s.max_slopes().detach(), d.amax(dim=(0, 2, 3)), atol=1e-6)


def test_spline_is_the_linear_interpolation_of_its_knots_with_the_segment_slope_as_derivative():
    """The fused evaluation (grid_sample) against numpy's interpolation of the knot values, per channel,
    on a batch of 2 with points beyond the knot range; its autograd derivative is the segment's slope."""
    s = LinearSpline(3, knots=9, knot_range=0.2).double()
    with torch.no_grad():
        s.raw.uniform_(-0.5, 1.5)
    gen = torch.Generator().manual_seed(1)
    x = (0.3 * torch.randn(2, 3, 5, 7, generator=gen, dtype=torch.float64)).requires_grad_(True)
    y = s(x)
    knots = np.linspace(-0.2, 0.2, 9)
    slopes = s.slopes().detach().numpy()
    vals = np.concatenate([np.zeros((3, 1)), np.cumsum(slopes * (knots[1] - knots[0]), axis=1)], axis=1)
    vals -= vals[:, 4:5]
    xs = x.detach().numpy()
    for c in range(3):
        ref = np.interp(xs[:, c], knots, vals[c])
        assert np.allclose(y.detach().numpy()[:, c], ref, atol=1e-12)
    (dx,) = torch.autograd.grad(y.sum(), x)
    seg = np.clip(np.floor((xs + 0.2) / 0.05).astype(int), 0, 7)
    inside = np.abs(xs) < 0.2
    expect = np.where(inside, slopes[np.arange(3)[None, :, None, None], seg], 0.0)
    assert np.allclose(dx.numpy(), expect, atol=1e-9)
    # the slopes receive gradients (training moves the splines)
    (dr,) = torch.autograd.grad(s(x.detach()).sum(), s.raw)
    assert float(dr.abs().sum()) > 0


def test_spline_integral_is_the_antiderivative():
    s = LinearSpline(3, knots=7, knot_range=0.3).double()
    with torch.no_grad():
        s.raw.uniform_(0, 1)
    x = torch.linspace(-0.6, 0.6, 1201, dtype=torch.float64).view(1, 1, 1, -1).expand(1, 3, 1, -1).contiguous()
    with torch.no_grad():
        psi, sig = s.integral(x), s(x)
    # trapezoid integration of sigma from 0 reproduces psi (psi(0) = 0)
    h = float(x[0, 0, 0, 1] - x[0, 0, 0, 0])
    cum = torch.cumsum(0.5 * (sig[..., 1:] + sig[..., :-1]) * h, dim=-1)
    mid = 600
    ref = torch.cat([torch.zeros_like(cum[..., :1]), cum], dim=-1)
    ref = ref - ref[..., mid : mid + 1]
    assert torch.allclose(psi, ref, atol=1e-6)
    assert float(psi.min()) >= -1e-12  # convex with psi'(0) = 0: minimum 0 at 0


def test_composed_kernel_matches_the_two_convolutions_and_adjoint_is_exact():
    net = _trained_like()
    x = torch.randn(2, 1, 24, 24, dtype=torch.float64)
    ws = [w - w.mean(dim=(1, 2, 3), keepdim=True) for w in net.factors]
    seq = torch.nn.functional.conv2d(torch.nn.functional.conv2d(x, ws[0], padding=1), ws[1], padding=1)
    one = net.W(x)
    assert torch.allclose(seq[..., 3:-3, 3:-3], one[..., 3:-3, 3:-3], atol=1e-12)
    z = torch.randn_like(one)
    lhs, rhs = float((one * z).sum()), float((x * net.Wt(z)).sum())
    assert abs(lhs - rhs) <= 1e-12 * max(abs(lhs), 1.0)
    # zero-mean filters: constants are invisible away from the border
    c = net.W(torch.full((1, 1, 24, 24), 0.7, dtype=torch.float64))
    assert float(c[..., 3:-3, 3:-3].abs().max()) < 1e-12


def test_gradient_is_the_gradient_of_the_cost_finite_differences():
    net = _trained_like()
    x = torch.rand(1, 1, 12, 12, dtype=torch.float64)
    v = torch.randn_like(x)
    mu = 3.0
    eps = 1e-6
    fd = (net.cost(x + eps * v, mu) - net.cost(x - eps * v, mu)) / (2 * eps)
    an = (net.grad(x, mu) * v).sum()
    assert abs(float(fd) - float(an)) <= 1e-6 * max(1.0, abs(float(an)))


def test_cost_is_convex_along_random_segments():
    net = _trained_like(seed=1)
    for _ in range(5):
        a, b = torch.rand(1, 1, 10, 10, dtype=torch.float64), torch.rand(1, 1, 10, 10, dtype=torch.float64)
        t = 0.3
        mid = net.cost(t * a + (1 - t) * b, 2.0)
        assert float(mid) <= float(t * net.cost(a, 2.0) + (1 - t) * net.cost(b, 2.0)) + 1e-12


def test_gradient_lipschitz_bound_holds_against_adversarial_search():
    net = _trained_like(seed=2)
    L = net.grad_lipschitz()
    # power iteration on the Hessian-like map W^T S W (the sup over x of the Jacobian norm)
    est = float(net._power(iterations=300, slopes=net.spline.max_slopes().detach()))
    assert est <= L * (1 + 1e-6)
    assert est >= 0.5 * L  # the bound is not vacuous
    # pairs: ||grad R(x) - grad R(y)|| <= L ||x - y|| at random and adversarial points
    x = torch.rand(4, 1, 16, 16, dtype=torch.float64, requires_grad=True)
    d = (1e-2 * torch.randn(4, 1, 16, 16, dtype=torch.float64)).requires_grad_(True)
    opt = torch.optim.Adam([x, d], lr=1e-2)
    best = 0.0
    for _ in range(40):
        r = (net.grad(x + d, 2.0) - net.grad(x, 2.0)).flatten(1).norm(dim=1) / d.flatten(1).norm(dim=1)
        best = max(best, float(r.max()))
        opt.zero_grad()
        (-r.sum()).backward()
        opt.step()
    assert best <= L * (1 + 1e-6)


def test_denoiser_certificate_is_averaged_and_the_search_stays_below_it():
    net = _trained_like(seed=3)
    cert = net.certificate()
    assert cert.lipschitz == 1.0 and cert.alpha is not None and cert.alpha <= net.config.safety
    emp = empirical_lipschitz(net, sigmas=(25 / 255,), shape=(2, 1, 16, 16), power_iters=30, ascent_steps=30)
    assert emp["max"] <= 1.0 + 1e-6
    # averagedness: N = (D - (1 - alpha) I) / alpha must be nonexpansive too
    a = cert.alpha
    x, y = torch.rand(8, 1, 16, 16, dtype=torch.float64), torch.rand(8, 1, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        nx = (net(x, 25 / 255) - (1 - a) * x) / a
        ny = (net(y, 25 / 255) - (1 - a) * y) / a
    ratio = (nx - ny).flatten(1).norm(dim=1) / (x - y).flatten(1).norm(dim=1)
    assert float(ratio.max()) <= 1 + 1e-9


def test_certificate_refuses_to_assume_slopes():
    """The bound follows the trained slopes: halving every spline halves L."""
    net = _trained_like(seed=4)
    L1 = net.grad_lipschitz()
    with torch.no_grad():
        net.spline.raw.copy_(0.5 * net.spline.raw.clamp(0, 1))
    L2 = net.grad_lipschitz()
    assert L2 == pytest.approx(0.5 * L1, rel=2e-3)


def test_prox_optimality_and_certified_error():
    net = _trained_like(seed=5)
    prior = 0.5 * RidgePrior(net, tol=1e-8, max_iter=2000)
    v = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    x = prior.prox(v, 0.8)
    t = 0.8 * 0.5
    g = (x - v) + t * net.grad(x, prior.mu)
    assert float(g.norm()) <= 1e-8 * float(v.norm()) + 1e-12
    assert prior.last_prox_error is not None and prior.last_prox_error <= 1e-8 * float(v.norm()) + 1e-12
    # optimality against perturbations (brute force): F(x) <= F(x + e)
    F = lambda z: 0.5 * float(((z - v) ** 2).sum()) + t * float(net.cost(z, prior.mu))  # noqa: E731
    for _ in range(10):
        assert F(x) <= F(x + 1e-3 * torch.randn_like(x)) + 1e-12


def test_prior_value_grad_and_lipschitz_scale_with_the_weight():
    net = _trained_like(seed=6)
    p1, p3 = RidgePrior(net), 3.0 * RidgePrior(net)
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    assert torch.allclose(p3.value(x), 3 * p1.value(x))
    assert torch.allclose(p3.grad(x), 3 * p1.grad(x))
    assert p3.lipschitz_grad() == pytest.approx(3 * p1.lipschitz_grad(), rel=1e-12)


def test_training_step_moves_the_splines_and_keeps_the_certificate():
    torch.manual_seed(0)
    net = RidgeRegularizer(hidden=2, channels=4, kernel_size=3, knots=5)
    opt = torch.optim.Adam(net.param_groups(1e-2))
    clean = torch.rand(4, 1, 16, 16)
    before = net.spline.raw.detach().clone()
    net.train()
    for _ in range(3):
        noisy = clean + (25 / 255) * torch.randn_like(clean)
        loss = torch.nn.functional.l1_loss(net(noisy, 25 / 255), clean)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not torch.equal(before, net.spline.raw.detach())
    net.eval()
    cert = net.certificate()
    assert cert.alpha is not None and cert.alpha < 1 and math.isfinite(cert.details["grad_lipschitz"])


def test_solve_with_a_ridge_model_file_is_a_guaranteed_smooth_convex_solve(tmp_path):
    """`stablepnp solve --prior model.pt` with a ridge model runs the variational problem
    1/2 ||Ax - y||^2 + lam R_mu(x) by gradient steps on the smooth sum (no inner prox)."""
    import json

    from pnp.cli import main
    from priors.registry import save_model_file

    net = _trained_like(seed=7).float()
    path = tmp_path / "ridge.pt"
    save_model_file(net, path, arch="ridge")
    rec = tmp_path / "r.json"
    rc = main(["solve", "--prior", str(path), "--size", "32", "--max-iter", "30", "--no-figure", "-q",
               "--json", str(rec)])
    assert rc == 0
    data = json.loads(rec.read_text())
    text = json.dumps(data)
    assert "guaranteed" in text and "not guaranteed" not in text
    assert "ridge" in text


def test_shipped_ridge_model_holds_its_certificate_and_records_its_data():
    import json
    from pathlib import Path

    from priors.pretrained import WEIGHTS_DIR, load_pretrained

    net = load_pretrained("ridge_gray")  # certificate recomputed on load
    cert = net.certificate()
    assert cert.lipschitz == 1.0 and cert.alpha is not None and cert.alpha <= net.config.safety
    lo, hi = net.config.sigma_range
    emp = empirical_lipschitz(net, sigmas=(lo, hi), shape=(2, 1, 24, 24), power_iters=10, ascent_steps=10)
    assert emp["max"] <= 1.0 + 1e-5
    # the gradient bound dominates a long power iteration on W^T S W (float32 model)
    est = float(net._power(iterations=200, slopes=net.spline.max_slopes().detach()))
    assert est <= net.grad_lipschitz() * (1 + 1e-4)
    # every training photo fetched from the registry packages is listed with its checksum
    photos = json.loads(Path(WEIGHTS_DIR / "ridge_gray.photos.json").read_text())
    assert photos and all(len(p["sha256"]) == 64 for p in photos)
    assert net.training_info["data"]["folders"] == {"data/photos": len(photos)}


def test_ridge_step_follows_the_recomputed_bound_so_inflated_norms_keep_the_certificate(monkeypatch):
    """Another machine's slightly larger norm bound (or a 1 % one) only shrinks the step: the map
    stays (c L_true / L_used)-averaged with L_used >= L_true, so the stored claim still holds."""
    import priors.spectral as spectral
    from priors.pretrained import WEIGHTS_DIR, load_checkpoint

    base = load_checkpoint(WEIGHTS_DIR / "ridge_gray.pt")
    L0 = base.grad_lipschitz()
    orig = spectral._norms
    monkeypatch.setattr(spectral, "_norms", lambda mats: orig(mats) * 1.01)
    net = load_checkpoint(WEIGHTS_DIR / "ridge_gray.pt")
    assert net.grad_lipschitz() == pytest.approx(L0 * 1.01 ** 2, rel=1e-3)
    assert net.certificate().alpha == pytest.approx(base.certificate().alpha)


# -- prox denoiser (denoiser: prox) ----------------------------------------------------------------
def _prox_model(seed: int = 0, **cfg) -> RidgeRegularizer:
    net = _trained_like(seed=seed, denoiser="prox", sigma_range=(5 / 255, 50 / 255), **cfg)
    with torch.no_grad():
        net.lam_raw.copy_(torch.tensor([0.5, 2.0]))
    return net.eval()


def test_prox_denoiser_is_firmly_nonexpansive_and_certified_as_such():
    net = _prox_model(seed=7, prox_tol=1e-9, solve_iterations=2000)
    cert = net.certificate()
    assert cert.lipschitz == 1.0 and cert.alpha == 0.5 and "prox" in cert.method
    x, y = torch.rand(6, 1, 12, 12, dtype=torch.float64), torch.rand(6, 1, 12, 12, dtype=torch.float64)
    for sigma in (5 / 255, 30 / 255):
        with torch.no_grad():
            dx, dy = net(x, sigma), net(y, sigma)
        # firm nonexpansiveness: ||Dx - Dy||^2 <= <Dx - Dy, x - y>
        lhs = ((dx - dy) ** 2).flatten(1).sum(1)
        rhs = ((dx - dy) * (x - y)).flatten(1).sum(1)
        assert bool((lhs <= rhs + 1e-9).all())
        assert not torch.allclose(dx, x)  # the map does something
    emp = empirical_lipschitz(net, sigmas=(25 / 255,), shape=(1, 1, 12, 12), power_iters=10, ascent_steps=8)
    assert 0.2 < emp["max"] <= 1.0 + 1e-6


def test_prox_denoiser_is_the_prox_of_the_prior_at_its_learned_weights():
    net = _prox_model(seed=8, prox_tol=1e-10, solve_iterations=2000)
    sigma = 20 / 255
    y = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        d = net(y, sigma)
        lam, mu = float(net.lam(sigma)), float(net.mu(sigma))
    prior = RidgePrior(net, mu=mu, tol=1e-10, max_iter=5000)
    assert torch.allclose(d, prior.prox(y, lam), atol=1e-8)
    assert net.last_prox_error is not None and net.last_prox_error <= 1e-10 * float(y.norm()) + 1e-12
    # the default weights of a prox model for noise s are its own lam(s), mu(s); mu along lam inverts it
    from priors.ridge import ridge_mu_for_lam, ridge_weights
    lam_s, mu_s, why = ridge_weights(net, sigma)
    assert lam_s == pytest.approx(lam) and mu_s == pytest.approx(mu) and "trained" in why
    assert ridge_mu_for_lam(net, lam) == pytest.approx(mu, rel=1e-6)


def test_prox_training_gradient_is_a_descent_direction_for_the_deployed_denoiser():
    """The truncated implicit gradient of the training forward points downhill for the loss of the
    exact prox (checked on the scalar lam and on the kernels, by finite differences)."""
    net = _prox_model(seed=9, backprop_steps=3, solve_tol=1e-9, solve_iterations=2000, prox_tol=1e-10)
    torch.manual_seed(1)
    clean = torch.rand(3, 1, 16, 16, dtype=torch.float64)
    noisy = clean + 0.1 * torch.randn_like(clean)

    def eval_loss() -> float:
        net.eval()
        with torch.no_grad():
            return float(((net(noisy, 0.1) - clean) ** 2).mean())

    net.train()
    loss = ((net(noisy, 0.1) - clean) ** 2).mean()
    params = [net.lam_raw, net.factors[0]]
    grads = torch.autograd.grad(loss, params)
    base = eval_loss()
    eps = 1e-4
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.sub_(eps * g / g.norm())
    assert eval_loss() < base


def test_prox_config_is_validated():
    with pytest.raises(ValueError, match="denoiser"):
        RidgeRegularizer(hidden=2, channels=4, kernel_size=3, knots=5, denoiser="unrolled")
    with pytest.raises(ValueError, match="backprop_steps"):
        RidgeRegularizer(hidden=2, channels=4, kernel_size=3, knots=5, denoiser="prox", backprop_steps=0)
    with pytest.raises(ValueError, match="lam"):
        RidgeRegularizer(hidden=2, channels=4, kernel_size=3, knots=5).lam(0.1)


def test_ablation_switches_remove_the_certificate_and_each_changes_the_map():
    """The ablation models of scripts/ablate_ridge.py: any constraint off -> no averagedness claimed,
    a Lipschitz bound that the adversarial search respects, and a different map once trained."""
    torch.manual_seed(0)
    x = torch.rand(2, 1, 16, 16)
    for switch in ("tied", "monotone", "step_cap"):
        net = RidgeRegularizer(hidden=2, channels=4, kernel_size=3, knots=5, **{switch: False})
        assert not net.config.certified
        opt = torch.optim.Adam(net.param_groups(1e-2))
        net.train()
        for _ in range(3):
            loss = torch.nn.functional.l1_loss(net(x + 0.1 * torch.randn_like(x), 0.1), x)
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        cert = net.certificate()
        assert cert.alpha is None and "ablation" in cert.method
        emp = empirical_lipschitz(net, sigmas=(0.1,), shape=(1, 1, 16, 16), power_iters=10, ascent_steps=10)
        assert emp["max"] <= cert.lipschitz * (1 + 1e-6)
    untied = RidgeRegularizer(hidden=2, channels=4, kernel_size=3, knots=5, tied=False)
    with torch.no_grad():
        untied.factors_t[0].mul_(2.0)
    assert not torch.allclose(untied.kernel(untied.factors_t), untied.kernel())
    free = RidgeRegularizer(hidden=2, channels=4, kernel_size=3, knots=5, monotone=False)
    with torch.no_grad():
        free.spline.raw.fill_(-0.5)
    assert float(free.spline.slopes().min()) == -0.5  # not clamped
    with pytest.raises(ValueError, match="onestep only"):
        RidgeRegularizer(hidden=2, channels=4, kernel_size=3, knots=5, denoiser="prox", tied=False)


def test_a_one_step_model_warm_starts_a_prox_model(tmp_path):
    """init_from a one-step ridge file into a prox config: kernels, splines, mu carried, lam its own."""
    from priors.registry import save_model_file
    from priors.training import warm_start

    src = _trained_like(seed=11).float()
    path = tmp_path / "one_step.pt"
    save_model_file(src, path, arch="ridge")
    dst = RidgeRegularizer(hidden=3, channels=6, kernel_size=3, knots=9, denoiser="prox")
    lam_before = dst.lam_raw.detach().clone()
    warm_start(dst, path)
    assert torch.allclose(dst.kernel(), src.kernel()) and torch.allclose(dst.spline.raw, src.spline.raw)
    assert torch.allclose(dst.mu_raw, src.mu_raw) and torch.equal(dst.lam_raw, lam_before)
