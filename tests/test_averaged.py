"""The averaged gradient-step network: adjoints, norm bounds, certificates vs adversarial search."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch

from operators.kernels import gaussian
from priors.averaged import INTEGRATORS, AveragedResNet, AveragedResNetConfig, composed_alpha
from priors.baselines import DnCNN
from priors.certify import certify, empirical_lipschitz, rigorous_bounds
from priors.spectral import conv_norm_bound


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _dense(op, shape):
    n = int(np.prod(shape))
    eye = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    return op(eye).reshape(n, -1).T


@pytest.mark.parametrize("boundary", ["zero", "circular"])
def test_block_conv_adjoint_is_exact(boundary):
    torch.manual_seed(0)
    blk = AveragedResNet(width=4, depth=1, boundary=boundary).double().blocks[0]
    shape = (4, 5, 7)
    a = _dense(lambda x: blk.conv(x), shape)
    at = _dense(lambda y: blk.conv_adjoint(y), shape)
    assert torch.allclose(a.T, at, atol=1e-12)


@pytest.mark.parametrize("c_in,c_out,k", [(1, 1, 3), (3, 5, 3), (4, 4, 5), (2, 3, (3, 5)), (8, 8, 3)])
def test_conv_norm_bound_brackets_every_size(c_in, c_out, k):
    torch.manual_seed(c_in + c_out)
    k1, k2 = (k, k) if isinstance(k, int) else k
    w = torch.randn(c_out, c_in, k1, k2, dtype=torch.float64)
    b = conv_norm_bound(w, rel_tol=1e-3)
    assert b.lower <= b.upper and b.relative_gap <= 1e-3 + 1e-12
    for n in (5, 8, 13):
        # zero-padded conv on n x n: dense SVD
        op = lambda x: torch.nn.functional.conv2d(x, w, padding=(k1 // 2, k2 // 2))  # noqa: E731
        dense = _dense(op, (c_in, n, n))
        assert torch.linalg.matrix_norm(dense, ord=2) <= b.upper
        # circular conv on n x n: exact symbol norms on the grid (Sedghi et al.)
        sym = torch.fft.fft2(w, s=(n, n)).permute(2, 3, 0, 1)
        assert torch.linalg.matrix_norm(sym, ord=2).max() <= b.upper
    fine = torch.fft.fft2(w, s=(512, 512)).permute(2, 3, 0, 1)
    assert float(torch.linalg.matrix_norm(fine, ord=2).max()) >= b.upper / (1 + 2e-3)


def test_composed_alpha_matches_numerical_averagedness():
    rng = np.random.default_rng(0)
    for a1, a2 in [(0.5, 0.5), (0.3, 0.9), (0.95, 0.2)]:
        alpha = composed_alpha([a1, a2])
        # T_i = (1 - a_i) I + a_i R_i with R_i random orthogonal (nonexpansive)
        r1, _ = np.linalg.qr(rng.standard_normal((6, 6)))
        r2, _ = np.linalg.qr(rng.standard_normal((6, 6)))
        t = ((1 - a1) * np.eye(6) + a1 * r1) @ ((1 - a2) * np.eye(6) + a2 * r2)
        n = (t - (1 - alpha) * np.eye(6)) / alpha
        assert np.linalg.norm(n, 2) <= 1 + 1e-10
    assert composed_alpha([0.5, 1.0]) == 1.0


def _scaled_model(integrator, boundary, constrained=True, seed=0, activation="leaky_relu"):
    torch.manual_seed(seed)
    net = AveragedResNet(
        width=6, depth=3, integrator=integrator, boundary=boundary, constrained=constrained, activation=activation
    )
    with torch.no_grad():
        for blk in net.blocks:
            blk.time_raw.fill_(2.5)  # long integration times: several sub-steps, near the bound
            blk.bias.normal_()
        net.theta_raw.copy_(torch.tensor([4.0, 0.5]))
    return net.eval()


@pytest.mark.parametrize("integrator,boundary", list(itertools.product(INTEGRATORS, ["zero", "circular"])))
def test_certificate_dominates_adversarial_search(integrator, boundary):
    net = _scaled_model(integrator, boundary)
    _check_certificate_against_search(net)


@pytest.mark.parametrize("activation", ["relu", "tanh", "hardtanh"])
def test_certificate_dominates_adversarial_search_for_every_activation(activation):
    net = _scaled_model("heun", "zero", activation=activation)
    with torch.no_grad():
        for blk in net.blocks:
            blk.bias.mul_(0.3)  # keep part of the saturating activations in their linear range
    _check_certificate_against_search(net)


def _check_certificate_against_search(net):
    cert = certify(net, power_iters=8, ascent_steps=15)
    assert cert.lipschitz <= 1.0 + 1e-9
    assert cert.alpha is not None and cert.alpha < 1.0
    assert cert.empirical is not None and cert.empirical <= cert.lipschitz * (1 + 1e-6)
    # every block satisfies the step condition with the *rigorous* norm
    for blk in cert.details["blocks"]:
        assert blk["h_L_norm2"] <= blk["step_bound"]


def test_averagedness_inequality_holds_on_random_pairs():
    net = _scaled_model("euler", "zero")
    alpha = certify(net, adversarial=False).alpha
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(8, 1, 16, 16, generator=gen)
    y = x + 0.1 * torch.randn(8, 1, 16, 16, generator=gen)
    with torch.no_grad():
        for s in (5 / 255, 55 / 255):
            dx, dy = net(x, s), net(y, s)
            # D alpha-averaged <=> (D - (1 - alpha) I) / alpha nonexpansive
            lhs = ((dx - dy) - (1 - alpha) * (x - y)).flatten(1).norm(dim=1)
            assert (lhs <= alpha * (x - y).flatten(1).norm(dim=1) * (1 + 1e-5)).all()


def test_unconstrained_variant_has_no_averagedness_and_bound_dominates():
    net = _scaled_model("euler", "zero", constrained=False)
    with torch.no_grad():
        for blk in net.blocks:
            blk.weight.mul_(4.0)
    cert = certify(net, power_iters=8, ascent_steps=15)
    assert cert.alpha is None
    assert cert.lipschitz > 1.0
    assert cert.empirical <= cert.lipschitz * (1 + 1e-6)


def test_dncnn_certificate_is_no_guarantee_and_dominates():
    torch.manual_seed(0)
    net = DnCNN(width=6, depth=3).eval()
    cert = net.certificate()
    emp = empirical_lipschitz(net, power_iters=8, ascent_steps=10, shape=(1, 1, 16, 16))
    assert cert.alpha is None and emp["max"] <= cert.lipschitz


def test_sigma_enters_without_breaking_the_bound():
    net = _scaled_model("euler", "zero")
    bounds = rigorous_bounds(net)
    x = torch.rand(1, 1, 16, 16)
    y = x + 0.05 * torch.randn_like(x)
    with torch.no_grad():
        for s in np.linspace(0, 0.3, 7):
            ratio = (net(x, float(s)) - net(y, float(s))).norm() / (x - y).norm()
            assert ratio <= bounds["lipschitz_N"] + 1e-6


def test_model_is_a_deepinv_denoiser_and_runs_in_deepinv_pnp():
    import deepinv as dinv

    net = AveragedResNet(width=4, depth=2).eval()
    assert isinstance(net, dinv.models.Denoiser)
    x = torch.rand(1, 1, 16, 16)
    physics = dinv.physics.BlurFFT(img_size=(1, 16, 16), filter=gaussian(1.0)[None, None].float())
    y = physics(x)
    model = dinv.optim.optim_builder(
        iteration="PGD", prior=dinv.optim.PnP(denoiser=net), data_fidelity=dinv.optim.L2(),
        params_algo={"stepsize": 1.0, "g_param": 0.1, "lambda": 1.0}, max_iter=3,
    )
    with torch.no_grad():
        out = model(y, physics)
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"integrator": "rk9"}, "integrator"),
        ({"boundary": "reflect"}, "boundary"),
        ({"safety": 1.0}, "safety"),
        ({"width": 0}, "width"),
        ({"colour": True}, "unknown key 'colour'"),
    ],
)
def test_bad_architecture_config_is_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        AveragedResNetConfig.from_dict(bad)


def test_wrong_channel_count_is_refused():
    net = AveragedResNet(width=4, depth=1)
    with pytest.raises(ValueError, match="in_channels=1"):
        net(torch.rand(1, 3, 8, 8), 0.1)


def test_sigma_outside_trained_range_is_warned_once():
    net = AveragedResNet(width=4, depth=1).eval()
    x = torch.rand(1, 1, 8, 8)
    with pytest.warns(UserWarning, match="outside the trained range"):
        net(x, 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net(x, 0.1)
        net(x, 0.5)  # only once per model


def test_sigma_above_the_range_runs_at_the_ceiling_so_the_certificate_holds():
    # theta grows with sigma here, so an unclamped sigma above the range would be less averaged
    # than the certificate (computed over the range) says
    torch.manual_seed(0)
    net = AveragedResNet(width=4, depth=1).eval()
    with torch.no_grad():
        net.theta_raw.copy_(torch.tensor([0.0, 3.0]))
    lo, hi = net.config.sigma_range
    x = torch.rand(2, 1, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.equal(net(x, 0.9), net(x, hi)) and torch.equal(net(x, 0.0), net(x, lo))
    cert = certify(net, adversarial=False)
    feat = torch.tensor([hi / net.config.sigma_ref])
    assert cert.alpha is not None and float(net.theta(feat)) * cert.details["alpha_N"] == pytest.approx(cert.alpha)


def test_shipped_averaged_prior_certificate_holds_against_search():
    from priors.pretrained import load_pretrained, pretrained_names

    if "averaged_gray" not in pretrained_names():
        pytest.fail("the shipped model priors/weights/averaged_gray.pt is missing")
    model = load_pretrained("averaged_gray")  # recomputes the rigorous bound and compares it
    cert = certify(model, power_iters=6, ascent_steps=8)
    assert cert.lipschitz <= 1.0 + 1e-9 and cert.alpha is not None and cert.alpha < 1.0
    assert cert.empirical <= cert.lipschitz * (1 + 1e-6)
    # and it denoises: better than the noisy input on a held-out image
    from problems.images import load_image
    from problems.metrics import psnr

    x = load_image("motorcycle", size=64)
    y = x + (25 / 255) * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert float(psnr(model(y, 25 / 255), x)[0]) > float(psnr(y, x)[0]) + 3.0


def test_differentiable_norm_gives_the_step_bound_a_gradient_and_keeps_the_certificate():
    torch.manual_seed(0)
    net = AveragedResNet(width=4, depth=2, max_substeps=1, differentiable_norm=True)
    with torch.no_grad():
        for blk in net.blocks:
            blk.time_raw.fill_(5.0)  # far above the bound: the step is the bound itself
    net.train()
    out = net(torch.rand(2, 1, 12, 12), 0.1)
    out.sum().backward()
    blk = net.blocks[0]
    assert blk.time_raw.grad is None or float(blk.time_raw.grad) == 0.0  # clamped: T has no say
    # the step bound 2rc/(L ||W u||^2) depends on W, so W's gradient includes it
    h, n = blk.schedule()
    assert n == 1 and h.requires_grad
    net.eval()
    cert = certify(net, power_iters=6, ascent_steps=8)
    assert cert.lipschitz <= 1.0 + 1e-9 and cert.empirical <= cert.lipschitz * (1 + 1e-6)


def test_differentiable_norm_uses_the_inference_step_value():
    torch.manual_seed(1)
    net = AveragedResNet(width=4, depth=2, max_substeps=2, differentiable_norm=True)
    with torch.no_grad():
        for blk in net.blocks:
            blk.time_raw.fill_(5.0)
    for blk in net.blocks:
        net.train()
        h_train, n_train = blk.schedule()
        net.eval()
        h_eval, n_eval = blk.schedule()
        assert n_train == n_eval and float(h_train.detach()) == pytest.approx(float(h_eval), rel=1e-6)
