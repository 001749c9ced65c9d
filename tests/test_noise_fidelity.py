"""Noise models (seeding, statistics, validation) and data-fidelity terms (value, grad, prox)."""

from __future__ import annotations

import math

import pytest
import torch

from operators import (
    Blur,
    Downsampling,
    Gaussian,
    Identity,
    Inpainting,
    L2Fidelity,
    Poisson,
    PoissonGaussian,
    PoissonNLL,
    gaussian,
)

DT = torch.float64


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _img(shape=(2, 1, 8, 8), seed=0, lo=0.1):
    g = torch.Generator().manual_seed(seed)
    return lo + torch.rand(shape, generator=g, dtype=DT)


def _mask(seed=1, shape=(8, 8)):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) > 0.3).to(DT)


# --------------------------------------------------------------------------- noise
@pytest.mark.parametrize("noise", [Gaussian(0.1), Poisson(0.05), PoissonGaussian(0.05, 0.02)])
def test_noise_reproducible_with_seed(noise):
    z = _img()
    a = noise.sample(z, generator=torch.Generator().manual_seed(3))
    b = noise.sample(z, generator=torch.Generator().manual_seed(3))
    c = noise.sample(z, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == z.shape and a.dtype == z.dtype


def test_noise_statistics(gen):
    z = torch.full((1, 1, 256, 256), 0.4, dtype=DT)
    y = Gaussian(0.05).sample(z, generator=gen)
    assert (y - z).std().item() == pytest.approx(0.05, rel=0.03)
    y = Poisson(0.01).sample(z, generator=gen)
    assert y.mean().item() == pytest.approx(0.4, rel=0.01)
    assert y.var().item() == pytest.approx(0.01 * 0.4, rel=0.03)
    y = PoissonGaussian(0.01, 0.05).sample(z, generator=gen)
    assert y.var().item() == pytest.approx(0.01 * 0.4 + 0.05**2, rel=0.03)
    assert torch.equal(Gaussian(0.0).sample(z), z)


@pytest.mark.parametrize(
    "build, field",
    [(lambda: Gaussian(-0.1), "sigma"), (lambda: Gaussian(float("nan")), "sigma"),
     (lambda: Poisson(0.0), "gain"), (lambda: Poisson(-1), "gain"),
     (lambda: PoissonGaussian(0.1, -0.01), "sigma"), (lambda: PoissonGaussian(0, 0.1), "gain")],
)
def test_noise_parameter_validation(build, field):
    with pytest.raises(ValueError, match=field):
        build()


def test_noise_rejects_nonfinite_input():
    with pytest.raises(ValueError, match="NaN"):
        Gaussian(0.1).sample(torch.tensor([[[[float("nan")]]]]))


def test_noise_fidelity_types():
    A, y = Identity(), _img()
    assert isinstance(Gaussian(0.1).fidelity(A, y), L2Fidelity)
    f = Poisson(0.1).fidelity(A, y)
    assert isinstance(f, PoissonNLL) and f.gain == 0.1 and f.offset == 1e-6
    f = PoissonGaussian(0.1, 0.2).fidelity(A, y)
    assert isinstance(f, PoissonNLL) and f.offset == pytest.approx(0.4)
    torch.testing.assert_close(f.y, y + 0.4)


# ------------------------------------------------------------------- L2 fidelity
OPERATORS = {
    "blur-circular": lambda: Blur(gaussian(1.0, size=5)),
    "blur-reflect": lambda: Blur(gaussian(1.0, size=5), boundary="reflect"),
    "inpainting": lambda: Inpainting(_mask()),
    "identity": lambda: Identity(),
    "downsampling": lambda: Downsampling(2, filter="box"),
    "mask-after-blur": lambda: Inpainting(_mask()) @ Blur(gaussian(0.7, size=3), boundary="replicate"),
}


def _autograd_grad(f, x):
    x = x.clone().requires_grad_(True)
    f.value(x).sum().backward()
    return x.grad


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_l2_value_grad_prox(name):
    A = OPERATORS[name]()
    x_true = _img(seed=1)
    y = A(x_true) + 0.01 * torch.randn(A(x_true).shape, generator=torch.Generator().manual_seed(2), dtype=DT)
    f = L2Fidelity(A, y, cg_tol=1e-12, cg_max_iter=3000)
    x = _img(seed=5)
    v = f.value(x)
    assert v.shape == (2,)
    torch.testing.assert_close(v, 0.5 * ((A(x) - y) ** 2).flatten(1).sum(1))
    torch.testing.assert_close(f.grad(x), _autograd_grad(f, x))
    for tau in (0.3, 5.0):
        p = f.prox(x, tau)
        # optimality of argmin 1/2 ||p - x||^2 + tau f(p)
        residual = p - x + tau * f.grad(p)
        assert residual.norm() <= 1e-8 * max(1.0, x.norm().item())
    assert f.lipschitz_grad() == pytest.approx(A.norm(tuple(x.shape)) ** 2)


def test_l2_prox_vs_brute_force():
    A = Blur(gaussian(0.8, size=3), boundary="zero")
    y = _img((1, 1, 4, 5), seed=3)
    f = L2Fidelity(A, y)
    v, tau = _img((1, 1, 4, 5), seed=4), 0.7
    x = torch.zeros_like(v, requires_grad=True)
    opt = torch.optim.LBFGS([x], lr=1, max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-15)

    def closure():
        opt.zero_grad()
        loss = 0.5 * ((x - v) ** 2).sum() + tau * f.value(x).sum()
        loss.backward()
        return loss

    opt.step(closure)
    torch.testing.assert_close(f.prox(v, tau), x.detach(), atol=1e-5, rtol=1e-5)


def test_l2_lipschitz_bounds_empirical():
    A = Blur(gaussian(1.5, size=7), boundary="reflect")
    f = L2Fidelity(A, _img((1, 1, 12, 12)))
    L = f.lipschitz_grad()
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        a, b = torch.randn(1, 1, 12, 12, generator=g, dtype=DT), torch.randn(1, 1, 12, 12, generator=g, dtype=DT)
        assert (f.grad(a) - f.grad(b)).norm() <= L * (a - b).norm() * (1 + 1e-9)


def test_fidelity_validation():
    with pytest.raises(ValueError, match="tau"):
        L2Fidelity(Identity(), _img()).prox(_img(), 0.0)
    with pytest.raises(ValueError, match="NaN"):
        L2Fidelity(Identity(), torch.full((1, 1, 2, 2), float("nan")))
    with pytest.raises(TypeError, match="LinearOperator"):
        L2Fidelity(lambda x: x, _img())


# --------------------------------------------------------------- Poisson fidelity
def test_poisson_value_is_kl_divergence():
    y = _img(seed=2)
    f = PoissonNLL(Identity(), y, gain=0.1, offset=0.0)
    assert torch.allclose(f.value(y), torch.zeros(2, dtype=DT), atol=1e-12)
    x = _img(seed=3)
    assert (f.value(x) > 0).all()
    ref = ((x - y + y * torch.log(y / x)) / 0.1).flatten(1).sum(1)
    torch.testing.assert_close(f.value(x), ref)
    # outside the domain
    assert math.isinf(f.value(-x)[0].item())
    assert f.value(torch.zeros_like(x)).isinf().all()


def test_poisson_zero_counts():
    y = torch.zeros(1, 1, 2, 2, dtype=DT)
    f = PoissonNLL(Identity(), y, gain=1.0, offset=0.0)
    torch.testing.assert_close(f.value(torch.full_like(y, 0.5)), torch.tensor([2.0], dtype=DT))
    assert f.value(torch.zeros_like(y)).item() == 0.0


@pytest.mark.parametrize("op", ["blur", "identity", "inpainting"])
def test_poisson_grad_matches_autograd(op):
    A = {"blur": Blur(gaussian(1.0, size=5), boundary="reflect"), "identity": Identity(),
         "inpainting": Inpainting(_mask())}[op]
    y = Poisson(0.05).sample(A(_img(seed=1)), generator=torch.Generator().manual_seed(0))
    f = PoissonNLL(A, y, gain=0.05, offset=0.01)
    x = _img(seed=4)
    torch.testing.assert_close(f.grad(x), _autograd_grad(f, x))
    assert f.lipschitz_grad() is None and not f.smooth


@pytest.mark.parametrize(
    "A", [Identity(), Inpainting(_mask()), 2.0 * Identity(), -0.5 * Inpainting(_mask())],
    ids=["identity", "inpainting", "scaled-identity", "negative-scaled-mask"],
)
@pytest.mark.parametrize("offset", [0.0, 0.05])
def test_poisson_prox_optimality(A, offset):
    y = Poisson(0.05).sample(_img(seed=1), generator=torch.Generator().manual_seed(0))
    y[0, 0, 0, :3] = 0.0  # some zero counts
    f = PoissonNLL(A, y, gain=0.05, offset=offset)
    assert f.has_prox
    v = _img(seed=6) - 0.3
    for tau in (0.01, 1.0):
        p = f.prox(v, tau)
        z = A(p) + offset
        assert (z >= -1e-12).all()  # feasible
        interior = z > 1e-10  # z = 0 only where y = 0 and the constraint z >= 0 is active
        safe_z = torch.where(interior, z, torch.ones_like(z))
        kkt = p - v + tau * A.adjoint(1 - y / safe_z) / 0.05
        assert kkt[interior].abs().max() < 1e-8


def test_poisson_prox_vs_brute_force():
    y = torch.tensor([[[[0.0, 0.2, 1.5]]]], dtype=DT)
    f = PoissonNLL(Identity(), y, gain=0.5, offset=0.01)
    v, tau = torch.tensor([[[[0.3, -0.2, 0.9]]]], dtype=DT), 0.4
    grid = torch.linspace(-0.01 + 1e-9, 3, 300001, dtype=DT)
    for i in range(3):
        yi = y[0, 0, 0, i]
        obj = 0.5 * (grid - v[0, 0, 0, i]) ** 2 + tau / 0.5 * (grid + 0.01 - yi * torch.log(grid + 0.01))
        assert f.prox(v, tau)[0, 0, 0, i].item() == pytest.approx(grid[obj.argmin()].item(), abs=2e-5)


def test_poisson_prox_unavailable_for_blur_and_validation():
    y = _img()
    f = PoissonNLL(Blur(gaussian(1.0, size=5)), y, gain=0.1)
    assert not f.has_prox
    with pytest.raises(NotImplementedError, match="split"):
        f.prox(y, 1.0)
    with pytest.raises(ValueError, match="gain"):
        PoissonNLL(Identity(), y, gain=0.0)
    with pytest.raises(ValueError, match="offset"):
        PoissonNLL(Identity(), y, gain=1.0, offset=-1.0)
    with pytest.raises(ValueError, match="negative"):
        PoissonNLL(Identity(), y - 1.0, gain=1.0)
