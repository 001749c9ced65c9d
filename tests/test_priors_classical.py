"""Contract tests of the classical priors, denoisers and the PnP prior wrapper (CPU, float64 maths)."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from priors.base import Certificate, Prior
from priors.classical import TV, Box, NonNegative, Tikhonov, Wavelet
from priors.denoisers import BM3DDenoiser, TVDenoiser, WaveletDenoiser
from priors.pnp_prior import DenoiserPrior
from priors.tv import grad2d, grad2d_adjoint, tv_prox, tv_value

DT = torch.float64


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


def rand(shape, gen, scale=1.0):
    return scale * torch.rand(shape, generator=gen, dtype=DT)


def objective(prior: Prior, v: torch.Tensor, tau: float):
    """x (numpy, flat) -> ½‖x − v‖² + tau * prior.value(x) for one image."""

    def f(xf: np.ndarray) -> float:
        x = torch.from_numpy(xf).reshape(v.shape)
        return float(0.5 * ((x - v) ** 2).sum() + tau * prior.value(x).sum())

    return f


def check_prox_optimal(prior: Prior, v: torch.Tensor, tau: float, tol: float, gen: torch.Generator) -> None:
    """prox objective <= brute-force minimum + tol, and no random perturbation improves it."""
    f = objective(prior, v, tau)
    x = prior.prox(v, tau)
    fx = f(x.numpy().ravel())
    best = math.inf
    for x0 in (v.numpy().ravel(), x.numpy().ravel()):
        res = minimize(f, x0, method="Powell", options={"xtol": 1e-9, "ftol": 1e-12, "maxfev": 20000})
        best = min(best, res.fun)
    assert fx <= best + tol, (fx, best)
    for _ in range(20):
        d = 1e-3 * torch.randn(v.shape, generator=gen, dtype=DT)
        assert fx <= f((x + d).numpy().ravel()) + tol


# ---------------------------------------------------------------------------- base
def test_certificate_fields_and_validation():
    c = Certificate(lipschitz=1, alpha=0.5, method="m", details={"tol": 1e-4})
    d = c.to_dict()
    assert d == {"lipschitz": 1.0, "alpha": 0.5, "method": "m", "empirical": None, "seconds": 0.0, "details": {"tol": 1e-4}}
    with pytest.raises(ValueError, match="alpha"):
        Certificate(lipschitz=1.0, alpha=1.5, method="m")
    with pytest.raises(ValueError, match="lipschitz"):
        Certificate(lipschitz=-1.0, alpha=None, method="m")


@pytest.mark.parametrize(
    "make", [lambda: TV(tol=1e-8), lambda: TV(isotropic=False, tol=1e-8), lambda: Wavelet(wavelet="haar", levels=2),
             lambda: Tikhonov(), lambda: Tikhonov(gradient=True)]
)
def test_weight_scaling(make, gen):
    base = make()
    scaled = 0.3 * base
    assert base.weight == 1.0 and scaled.weight == pytest.approx(0.3)
    assert (base * 2.0).weight == 2.0
    x = rand((2, 1, 8, 8), gen)
    torch.testing.assert_close(scaled.value(x), 0.3 * base.value(x))
    torch.testing.assert_close(scaled.prox(x, 0.5), base.prox(x, 0.15), atol=1e-6, rtol=0)


def test_bad_arguments(gen):
    x = rand((1, 1, 8, 8), gen)
    with pytest.raises(ValueError, match="weight"):
        TV(weight=-1.0)
    with pytest.raises(ValueError, match="weight"):
        -1.0 * TV()
    with pytest.raises(ValueError, match="tau"):
        TV().prox(x, -0.1)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        TV().prox(x[0], 0.1)
    with pytest.raises(ValueError, match="tol"):
        TV(tol=0.0)
    with pytest.raises(ValueError, match="max_iter"):
        TV(max_iter=0)
    with pytest.raises(ValueError, match="lo"):
        Box(lo=1.0, hi=0.0)
    with pytest.raises(ValueError, match="orthogonal"):
        Wavelet(wavelet="bior2.2")
    with pytest.raises(ValueError, match="wavelet"):
        Wavelet(wavelet="nope")
    with pytest.raises(ValueError, match="divisible"):
        Wavelet(levels=3).prox(rand((1, 1, 12, 16), gen), 0.1)


# ---------------------------------------------------------------------------- TV
def test_tv_value_known_image():
    x = torch.zeros(1, 1, 4, 5, dtype=DT)
    x[..., :, 3:] = 2.0  # a vertical edge of height 2 over 4 rows
    assert tv_value(x).item() == pytest.approx(8.0)
    assert tv_value(x, isotropic=False).item() == pytest.approx(8.0)
    y = torch.zeros(1, 1, 3, 3, dtype=DT)
    y[..., 0, 0] = 1.0  # one corner pixel: gradient (−1, −1) at (0,0)
    assert tv_value(y).item() == pytest.approx(math.sqrt(2))
    assert tv_value(y, isotropic=False).item() == pytest.approx(2.0)


def test_grad_adjoint(gen):
    x = rand((2, 3, 7, 6), gen)
    ph, pv = rand((2, 3, 7, 6), gen), rand((2, 3, 7, 6), gen)
    ph[..., :, -1] = 0
    pv[..., -1, :] = 0
    gh, gv = grad2d(x)
    lhs = (gh * ph).sum() + (gv * pv).sum()
    rhs = (x * grad2d_adjoint(ph, pv)).sum()
    assert abs(lhs - rhs) / abs(lhs) < 1e-12


@pytest.mark.parametrize("isotropic", [True, False])
def test_tv_prox_optimal_bruteforce(isotropic, gen):
    v = rand((1, 1, 4, 5), gen)
    prior = TV(isotropic=isotropic, tol=1e-10, max_iter=20000)
    check_prox_optimal(prior, v, 0.15, 1e-7, gen)


def test_tv_prox_accuracy_and_certified_bound(gen):
    v = rand((1, 1, 24, 24), gen)
    t = 0.1
    ref, _, info_ref = tv_prox(v, t, tol=1e-12, max_iter=30000)
    assert info_ref.converged
    for tol in (1e-3, 1e-4, 1e-5):
        x, _, info = tv_prox(v, t, tol=tol)
        err = ((x - ref).norm() / ref.norm()).item()
        assert info.converged
        assert err <= 5 * tol, (tol, err)
        # the duality-gap bound is certified: never below the true error
        true_vs_v = ((x - ref).norm() / v.norm()).item()
        assert true_vs_v <= info.error_bound + 1e-9


def test_tv_matches_deepinv_discretisation(gen):
    from deepinv.models import TVDenoiser as DeepinvTV

    v = rand((1, 1, 16, 16), gen)
    x, _, _ = tv_prox(v, 0.1, tol=1e-10, max_iter=20000)
    xd = DeepinvTV(crit=1e-14, n_it_max=4000)(v, ths=0.1)
    assert ((x - xd).norm() / x.norm()).item() < 1e-5


def test_tv_batch_channels_warm_start(gen):
    v = rand((2, 3, 12, 10), gen)
    prior = TV(tol=1e-8, max_iter=10000)
    xb = prior.prox(v, 0.2)
    x0 = prior.prox(v[1:2, 2:3], 0.2)
    torch.testing.assert_close(xb[1:2, 2:3], x0, atol=1e-6, rtol=0)
    warm = TV(tol=1e-8, max_iter=10000, warm_start=True)
    warm.prox(v, 0.2)
    first = warm.last_info.iterations
    x2 = warm.prox(v, 0.2)
    assert warm.last_info.iterations < first
    torch.testing.assert_close(x2, xb, atol=1e-6, rtol=0)


@pytest.mark.parametrize("isotropic", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_tv_warm_start_successive_calls(isotropic, dtype, gen):
    # regression: a second prox call with warm_start=True passes the stored dual back into the
    # solver (reported AttributeError in the dual projection); it must match a cold start and
    # converge in fewer iterations, also once the solver has left its FISTA phase
    v = rand((1, 2, 20, 18), gen).to(dtype)
    tol = 1e-7 if dtype == torch.float64 else 1e-5
    cold = TV(isotropic=isotropic, tol=tol, max_iter=20000)
    warm = TV(isotropic=isotropic, tol=tol, max_iter=20000, warm_start=True)
    for t in (0.3, 0.3, 0.25):
        xc = cold.prox(v, t)
        xw = warm.prox(v, t)
        atol = 2e-5 if dtype == torch.float64 else 2e-3
        torch.testing.assert_close(xw, xc, atol=atol, rtol=0)
    assert cold.last_info.iterations > 50  # the switch to the primal-dual phase is exercised
    # same t, stored dual from the previous call: far fewer iterations than from scratch
    warm.prox(v, 0.25)
    assert warm.last_info.iterations < cold.last_info.iterations
    # a stored dual of another shape is ignored, not an error
    y = warm.prox(rand((1, 1, 8, 8), gen).to(dtype), 0.1)
    assert y.shape == (1, 1, 8, 8)


def test_tv_float32_and_max_iter_warning(gen):
    v = rand((1, 1, 16, 16), gen).float()
    with pytest.warns(RuntimeWarning, match="max_iter"):
        x = TV(max_iter=3, tol=1e-9).prox(v, 0.3)
    assert x.dtype == torch.float32


def test_tv_prox_firmly_nonexpansive(gen):
    prior = TV(tol=1e-9, max_iter=20000)
    for _ in range(3):
        a, b = rand((1, 1, 8, 8), gen), rand((1, 1, 8, 8), gen)
        pa, pb = prior.prox(a, 0.2), prior.prox(b, 0.2)
        assert ((pa - pb) ** 2).sum() <= ((pa - pb) * (a - b)).sum() + 1e-8


def test_tv_certificate():
    cert = TV(tol=1e-5).certificate()
    assert cert.lipschitz == 1.0 and cert.alpha == 0.5
    assert "tol" in cert.method and cert.details["tol"] == 1e-5
    assert TV().exact_prox is False and TV().convex is True


# ---------------------------------------------------------------------------- wavelet
@pytest.mark.parametrize("wavelet,levels,shape", [("haar", 2, (8, 12)), ("db4", 3, (32, 24)), ("sym3", 2, (16, 16))])
def test_wavelet_orthonormal(wavelet, levels, shape, gen):
    w = Wavelet(wavelet=wavelet, levels=levels)
    x = rand((2, 3, *shape), gen)
    c, mask = w.transform(x)
    assert c.shape == x.shape and mask.shape == shape
    assert abs(c.norm() - x.norm()) / x.norm() < 1e-9  # PyWavelets' sym/db filters carry ~1e-12 rounding
    torch.testing.assert_close(w.inverse(c), x)
    y = rand((2, 3, *shape), gen)
    assert abs((c * y).sum() - (x * w.inverse(y)).sum()) < 1e-10  # adjoint = inverse
    # approximation block is (H / 2**levels) x (W / 2**levels) and is not penalised
    assert (~mask).sum().item() == (shape[0] >> levels) * (shape[1] >> levels)


def test_wavelet_prox_optimal_bruteforce(gen):
    v = rand((1, 1, 4, 4), gen)
    check_prox_optimal(Wavelet(wavelet="haar", levels=1), v, 0.2, 1e-8, gen)


def test_wavelet_moreau_identity(gen):
    # g = ‖(Wx)_detail‖_1, g* = indicator of {y : |(Wy)_d| <= 1, (Wy)_approx = 0};
    # Moreau: prox_{τ w g}(v) + τ w P(v / (τ w)) = v, P the projection on that set.
    w = 0.7 * Wavelet(wavelet="db2", levels=2)
    v = rand((1, 2, 16, 16), gen, scale=3.0)
    tau = 0.4
    s = tau * w.weight
    c, mask = w.transform(v / s)
    proj = w.inverse(torch.where(mask, c.clamp(-1, 1), torch.zeros_like(c)))
    torch.testing.assert_close(w.prox(v, tau) + s * proj, v)


def test_wavelet_value_prox_same_scaling(gen):
    # soft-thresholding by exactly tau*weight: a coefficient above the threshold moves by it
    w = Wavelet(wavelet="haar", levels=1)
    x = torch.zeros(1, 1, 4, 4, dtype=DT)
    c, mask = w.transform(x)
    c[..., 0, 3] = 1.0  # one detail coefficient
    x = w.inverse(c)
    assert w.value(x).item() == pytest.approx(1.0)
    out, _ = w.transform((0.5 * w).prox(x, 0.4))
    assert out[..., 0, 3].item() == pytest.approx(0.8)
    assert w.certificate().alpha == 0.5 and w.exact_prox


# ---------------------------------------------------------------------------- Tikhonov
def periodic_diff_matrix(h: int, w: int) -> np.ndarray:
    n = h * w
    idx = np.arange(n).reshape(h, w)
    dh = np.zeros((n, n))
    dv = np.zeros((n, n))
    for i in range(h):
        for j in range(w):
            dh[idx[i, j], idx[i, (j + 1) % w]] += 1
            dh[idx[i, j], idx[i, j]] -= 1
            dv[idx[i, j], idx[(i + 1) % h, j]] += 1
            dv[idx[i, j], idx[i, j]] -= 1
    return np.vstack([dh, dv])


def test_tikhonov_closed_forms(gen):
    v = rand((1, 1, 4, 5), gen)
    torch.testing.assert_close(Tikhonov().prox(v, 0.5), v / 1.5)
    d = periodic_diff_matrix(4, 5)
    tau = 0.7
    x = np.linalg.solve(np.eye(20) + tau * d.T @ d, v.numpy().ravel())
    torch.testing.assert_close(Tikhonov(gradient=True).prox(v, tau), torch.from_numpy(x).reshape(v.shape))
    assert Tikhonov(gradient=True).value(v).item() == pytest.approx(0.5 * np.sum((d @ v.numpy().ravel()) ** 2))
    check_prox_optimal(0.5 * Tikhonov(gradient=True), v, 0.8, 1e-8, gen)


def test_tikhonov_grad_matches_autograd(gen):
    prior = 0.3 * Tikhonov(gradient=True)
    x = rand((2, 1, 6, 7), gen).requires_grad_(True)
    prior.value(x).sum().backward()
    torch.testing.assert_close(prior.grad(x.detach()), x.grad)


# ---------------------------------------------------------------------------- constraints
def test_box_and_nonnegative(gen):
    v = rand((2, 1, 5, 5), gen, scale=4.0) - 2.0
    box = Box(lo=-0.5, hi=1.0)
    p = box.prox(v, 3.0)
    torch.testing.assert_close(p, v.clamp(-0.5, 1.0))
    assert box.value(p).tolist() == [0.0, 0.0]
    assert box.value(v).tolist() == [math.inf, math.inf]
    assert (0.0 * box).value(v).tolist() == [math.inf, math.inf]  # indicators ignore the weight
    nn = NonNegative()
    torch.testing.assert_close(nn.prox(v, 1.0), v.clamp(min=0))
    assert nn.value(v.abs()).tolist() == [0.0, 0.0]
    # Moreau with the conjugate (support function σ(y) = Σ hi·y⁺ − lo·y⁻): prox_σ(v) + P(v) = v
    prox_support = torch.where(v > 1.0, v - 1.0, torch.where(v < -0.5, v + 0.5, torch.zeros_like(v)))
    torch.testing.assert_close(box.prox(v, 1.0) + prox_support, v)
    assert box.certificate().alpha == 0.5


# ---------------------------------------------------------------------------- denoisers
def test_tv_denoiser_is_tv_prox(gen):
    y = rand((2, 1, 12, 12), gen)
    den = TVDenoiser(strength=2.0, tol=1e-8)
    out = den(y, 0.05)
    ref, _, _ = tv_prox(y, 0.1, tol=1e-8)
    torch.testing.assert_close(out, ref)
    per = den(y, torch.tensor([0.05, 0.1]))
    torch.testing.assert_close(per[1:], tv_prox(y[1:], 0.2, tol=1e-8)[0])
    cert = den.certificate()
    assert cert.alpha == 0.5 and "tol" in cert.method
    with pytest.raises(ValueError, match="sigma"):
        den(y, -0.1)
    with pytest.raises(ValueError, match="strength"):
        TVDenoiser(strength=0.0)


def test_wavelet_denoiser(gen):
    y = rand((1, 1, 16, 16), gen)
    den = WaveletDenoiser(strength=2.0, wavelet="haar", levels=2)
    torch.testing.assert_close(den(y, 0.1), Wavelet(wavelet="haar", levels=2).prox(y, 0.2))
    assert den.certificate().alpha == 0.5


def test_bm3d_denoiser(gen):
    pytest.importorskip("bm3d")
    clean = torch.zeros(1, 1, 32, 32)
    clean[..., 8:24, 8:24] = 1.0
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    den = BM3DDenoiser()
    out = den(noisy, 0.1)
    assert out.shape == noisy.shape and out.dtype == torch.float32
    assert ((out - clean) ** 2).mean() < 0.5 * ((noisy - clean) ** 2).mean()
    assert den.certificate() is None
    assert DenoiserPrior(den, sigma=0.1).certificate() is None


def test_bm3d_missing_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "bm3d", None)  # makes `import bm3d` raise ImportError
    with pytest.raises(ImportError, match=r"stable-pnp\[bm3d\]"):
        BM3DDenoiser()


# ---------------------------------------------------------------------------- PnP prior
class _Recorder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.sigmas = []

    def forward(self, x, sigma):
        self.sigmas.append(sigma)
        return x


def test_denoiser_prior_relation(gen):
    rec = _Recorder()
    x = rand((1, 1, 4, 4), gen)
    p = DenoiserPrior(rec, lam=0.02)
    p.prox(x, 0.5)
    assert rec.sigmas[-1] == pytest.approx(math.sqrt(0.5 * 0.02))
    assert p.implied_lam(0.5) == pytest.approx(0.02)
    (3.0 * p).prox(x, 0.5)
    assert rec.sigmas[-1] == pytest.approx(math.sqrt(0.5 * 0.06))
    q = DenoiserPrior(rec, sigma=0.1)
    q.prox(x, 4.0)
    assert rec.sigmas[-1] == pytest.approx(0.1)
    assert q.implied_lam(4.0) == pytest.approx(0.01 / 4.0)
    assert (p.convex, p.has_value, p.exact_prox) == (False, False, False)
    assert p.certificate() is None  # the recorder has no certificate: no guarantee
    with pytest.raises(NotImplementedError):
        p.value(x)


def test_denoiser_prior_bad_args():
    with pytest.raises(ValueError, match=r"sigma.*lam"):
        DenoiserPrior(_Recorder())
    with pytest.raises(ValueError, match=r"sigma.*lam"):
        DenoiserPrior(_Recorder(), sigma=0.1, lam=0.1)
    with pytest.raises(ValueError, match="sigma"):
        DenoiserPrior(_Recorder(), sigma=-0.1)
    with pytest.raises(TypeError, match="denoiser"):
        DenoiserPrior(3.0, lam=0.1)


def test_denoiser_prior_forwards_certificate(gen):
    p = DenoiserPrior(TVDenoiser(), lam=0.01)
    cert = p.certificate()
    assert isinstance(cert, Certificate) and cert.alpha == 0.5
    y = rand((1, 1, 8, 8), gen)
    torch.testing.assert_close(p.prox(y, 1.0), TVDenoiser()(y, 0.1))


def test_relaxed_denoiser_prox_and_certificate(gen):
    from priors import AveragedResNet, denoiser_at_level
    from priors.certify import empirical_lipschitz

    torch.manual_seed(0)
    net = AveragedResNet(width=6, depth=2).eval()
    x = rand((1, 1, 12, 12), gen).float()
    p = DenoiserPrior(net, sigma=0.1, strength=0.3)
    assert torch.allclose(p.prox(x, 1.0), 0.7 * x + 0.3 * net(x, 0.1), atol=1e-6)
    full, rel = net.certificate(), p.certificate()
    assert rel.alpha == pytest.approx(0.3 * full.alpha)
    assert rel.lipschitz == pytest.approx(0.7 + 0.3 * full.lipschitz)
    assert p.implied_lam(2.0) == pytest.approx(0.3 * 0.1**2 / 2.0)
    # the rescaled claim holds against an adversarial search on the relaxed map itself
    relaxed = lambda z, s: z + 0.3 * (net(z, s) - z)  # noqa: E731
    emp = empirical_lipschitz(relaxed, sigmas=(0.1,), shape=(2, 1, 12, 12), power_iters=10, ascent_steps=10)
    assert emp["max"] <= rel.lipschitz * (1 + 1e-6)
    with pytest.raises(ValueError, match="strength"):
        DenoiserPrior(net, sigma=0.1, strength=1.5)
    # below the trained floor: relaxed at the floor, continuous there; above the ceiling: refused
    lo, hi = 5 / 255, 55 / 255
    below = denoiser_at_level(net, 0.5 * lo, (lo, hi))
    assert below.sigma == lo and below.strength == pytest.approx(0.5)
    at = denoiser_at_level(net, lo, (lo, hi))
    assert at.strength == 1.0 and at.sigma == lo
    assert denoiser_at_level(net, 0.2, None).sigma == 0.2
    with pytest.raises(ValueError, match="above the denoiser's trained range"):
        denoiser_at_level(net, 1.1 * hi, (lo, hi))
