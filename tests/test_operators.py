"""Contract tests for every linear operator (written once, run over a registry), and kernels."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

import operators as ops
from operators import (
    BOUNDARIES,
    Blur,
    Downsampling,
    FunctionOperator,
    Identity,
    Inpainting,
    LinearOperator,
    from_deepinv,
    to_deepinv,
)

DT = torch.float64


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    """Tiny tensors: intra-op threads only add contention on a shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _kernel(h: int, w: int, seed: int) -> torch.Tensor:
    """A random positive (asymmetric) kernel summing to 1."""
    g = torch.Generator().manual_seed(seed)
    k = torch.rand(h, w, generator=g, dtype=DT) + 0.1
    return k / k.sum()


# ----------------------------------------------------------------------------- registry
SIZES = [(7, 7), (8, 8), (6, 9)]  # odd, even, non-square
KERNELS = [(3, 3), (2, 4)]  # odd, even-sized (centre at (h // 2, w // 2))


def _mask(shape, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape[-2:], generator=g) > 0.4).to(DT)


def _registry():
    cases = {}
    for b in BOUNDARIES:
        for i, (H, W) in enumerate(SIZES):
            for C in (1, 3):
                kh, kw = KERNELS[(i + C) % 2]
                cases[f"blur-{b}-{H}x{W}-c{C}-k{kh}x{kw}"] = (
                    lambda b=b, kh=kh, kw=kw: Blur(_kernel(kh, kw, 7), boundary=b),
                    (1, C, H, W),
                )
        # a kernel with >= 50 entries takes the FFT-on-padded-grid path
        cases[f"blur-{b}-fftpath-9x10-k7x8"] = (lambda b=b: Blur(_kernel(7, 8, 3), boundary=b), (1, 1, 9, 10))
    cases["blur-gaussian-circular-c2"] = (lambda: Blur(ops.gaussian(0.8, size=5)), (1, 2, 8, 8))
    cases["downsampling-2-gaussian"] = (lambda: Downsampling(2, filter="gaussian"), (1, 2, 8, 8))
    cases["downsampling-3-box-reflect"] = (lambda: Downsampling(3, filter="box", boundary="reflect"), (1, 1, 9, 6))
    cases["downsampling-2-none-odd"] = (lambda: Downsampling(2, filter=None, in_shape=(1, 1, 7, 9)), (1, 1, 7, 9))
    cases["downsampling-2-custom-odd"] = (
        lambda: Downsampling(2, filter=_kernel(3, 3, 3), boundary="zero", in_shape=(1, 3, 7, 6)), (1, 3, 7, 6))
    cases["inpainting"] = (lambda: Inpainting(_mask((7, 9))), (1, 3, 7, 9))
    cases["inpainting-weights"] = (lambda: Inpainting(torch.linspace(-2, 1, 48, dtype=DT).reshape(6, 8)), (1, 1, 6, 8))
    cases["identity"] = (lambda: Identity(), (1, 2, 5, 6))
    cases["compose-mask-blur"] = (
        lambda: Inpainting(_mask((8, 7))) @ Blur(_kernel(3, 3, 2), boundary="reflect"), (1, 1, 8, 7))
    cases["compose-down-blur"] = (
        lambda: Downsampling(2, filter=None) @ Blur(_kernel(2, 2, 4), boundary="replicate"), (1, 1, 8, 6))
    cases["sum-blur-identity"] = (lambda: Blur(_kernel(3, 3, 5), boundary="zero") + 0.5 * Identity(), (1, 1, 6, 7))
    cases["difference-blurs"] = (
        lambda: Blur(_kernel(3, 3, 5), boundary="mirror") - Blur(_kernel(3, 2, 6)), (1, 2, 6, 6))
    cases["scaled-blur"] = (lambda: -2.5 * Blur(_kernel(3, 3, 5)), (1, 1, 7, 8))
    cases["adjoint-of-downsampling"] = (lambda: Downsampling(2, filter="box").T, (1, 1, 4, 3))
    cases["gram-reflect"] = (lambda: Blur(_kernel(3, 3, 8), boundary="reflect").gram(), (1, 1, 7, 6))
    cases["gram-circular"] = (lambda: Blur(_kernel(3, 3, 8)).gram(), (1, 1, 7, 6))
    cases["function-colmean"] = (
        lambda: FunctionOperator(lambda x: x.mean(dim=-2, keepdim=True), in_shape=(1, 2, 6, 5)), (1, 2, 6, 5))
    cases["function-shift-add"] = (
        lambda: FunctionOperator(lambda x: x + 0.5 * torch.roll(x, (1, 2), (-2, -1)), in_shape=(1, 1, 6, 7)),
        (1, 1, 6, 7))
    cases["deepinv-blurfft"] = (_deepinv_blurfft, (1, 1, 8, 8))
    cases["deepinv-blur-valid"] = (_deepinv_blur_valid, (1, 1, 7, 8))
    return cases


def _deepinv_blurfft():
    import deepinv

    return from_deepinv(deepinv.physics.BlurFFT((1, 8, 8), filter=_kernel(3, 3, 9)[None, None]))


def _deepinv_blur_valid():
    import deepinv

    return from_deepinv(deepinv.physics.Blur(filter=_kernel(3, 2, 9)[None, None], padding="valid"))


REGISTRY = _registry()
IDS = sorted(REGISTRY)


def _dense(fn, shape) -> torch.Tensor:
    """Matrix (out_dim x in_dim) of a linear map, by applying it to the canonical basis (batched)."""
    assert shape[0] == 1 or "batch" in str(shape)
    n = int(np.prod(shape))
    basis = torch.eye(n, dtype=DT).reshape(n, *shape[1:])  # the n basis images as one batch
    return fn(basis).reshape(n, -1).T


@pytest.fixture(params=IDS)
def case(request):
    factory, shape = REGISTRY[request.param]
    return factory(), shape


def test_adjoint_relative_error(case):
    op, shape = case
    assert op.adjoint_test(shape, dtype=DT) < 1e-5
    assert op.adjoint_test(shape, dtype=DT, seed=3) < 1e-5


def test_adjoint_matches_dense_transpose(case):
    op, shape = case
    M = _dense(op.forward, shape)
    y_shape = op(torch.zeros(shape, dtype=DT)).shape
    Mt = _dense(op.adjoint, tuple(y_shape))
    torch.testing.assert_close(Mt, M.T, atol=1e-12, rtol=1e-10)


def test_norm_against_dense_svd(case):
    op, shape = case
    M = _dense(op.forward, shape)
    exact = torch.linalg.matrix_norm(M, ord=2).item()
    est = op.norm(shape)
    assert est == pytest.approx(exact, rel=2e-3)
    assert est >= exact * (1 - 1e-6)  # power iteration carries an upward margin
    assert op.norm(shape) == est  # cached and stable
    assert op.T.norm(tuple(op(torch.zeros(shape, dtype=DT)).shape)) == pytest.approx(exact, rel=2e-3)


def test_solve_normal_against_dense(case):
    op, shape = case
    M = _dense(op.forward, shape)
    rho = 0.3
    g = torch.Generator().manual_seed(5)
    b = torch.randn(shape, generator=g, dtype=DT)
    x = op.solve_normal(b, rho, tol=1e-10, max_iter=2000)
    ref = torch.linalg.solve(M.T @ M + rho * torch.eye(M.shape[1], dtype=DT), b.reshape(-1))
    torch.testing.assert_close(x.reshape(-1), ref, atol=1e-7, rtol=1e-7)


def test_gram_matches_dense(case):
    op, shape = case
    M = _dense(op.forward, shape)
    G = _dense(op.gram().forward, shape)
    torch.testing.assert_close(G, M.T @ M, atol=1e-12, rtol=1e-10)


def test_float32_forward_adjoint(case):
    op, shape = case
    if isinstance(op, (FunctionOperator, ops.DeepinvOperator)):
        pytest.skip("dtype fixed by the wrapped function")
    x = torch.rand(shape)
    assert op(x).dtype == torch.float32
    assert op.adjoint_test(shape, dtype=torch.float32) < 1e-5


# --------------------------------------------------------------------- closed forms
@pytest.mark.parametrize(
    "factory",
    [lambda: Blur(_kernel(3, 3, 1)), lambda: Inpainting(_mask((6, 7))), lambda: Identity(),
     lambda: 3.0 * Blur(_kernel(2, 3, 1)), lambda: Blur(_kernel(3, 3, 1)).T, lambda: _deepinv_blurfft()],
)
def test_closed_form_normal_flags(factory):
    op = factory()
    assert op.has_closed_form_normal
    shape = (1, 1, 8, 8) if "from_deepinv" in repr(op) else (1, 1, 6, 7)
    b = torch.randn(shape, dtype=DT)
    x = op.solve_normal(b, 0.2)
    torch.testing.assert_close(op.gram()(x) + 0.2 * x, b, atol=1e-5, rtol=1e-5)


def test_iterative_normal_flag():
    assert not Blur(_kernel(3, 3, 1), boundary="reflect").has_closed_form_normal
    assert not Downsampling(2).has_closed_form_normal


def test_circular_norm_is_exact_fft_max():
    k = _kernel(5, 3, 2)
    op = Blur(k)
    shape = (1, 1, 12, 10)
    big = torch.zeros(12, 10, dtype=DT)
    big[:5, :3] = k
    assert op.norm(shape) == pytest.approx(torch.fft.fft2(big).abs().max().item(), rel=1e-12)
    assert Blur(ops.gaussian(2.0)).norm((1, 1, 32, 32)) == pytest.approx(1.0, abs=1e-12)
    assert Inpainting(_mask((5, 5))).norm() == 1.0
    assert (2.0 * Identity()).norm() == 2.0


def test_norm_requires_shape():
    with pytest.raises(ValueError, match="shape"):
        Blur(_kernel(3, 3, 1), boundary="reflect").norm()


# ------------------------------------------------------------------------ algebra
def test_composition_algebra():
    A = Blur(_kernel(3, 3, 1), boundary="reflect")
    B = Blur(_kernel(2, 2, 2), boundary="zero")
    D = Downsampling(2, filter=None)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 8, 6, generator=g, dtype=DT)
    y = torch.randn(1, 2, 4, 3, generator=g, dtype=DT)
    close = torch.testing.assert_close
    close((A @ B)(x), A(B(x)))
    close((A + B)(x), A(x) + B(x))
    close((A - B)(x), A(x) - B(x))
    close((-A)(x), -A(x))
    close((2.5 * A)(x), 2.5 * A(x))
    close((A * 2.5)(x), 2.5 * A(x))
    close((A / 4)(x), A(x) / 4)
    close((np.float64(2.0) * A)(x), 2.0 * A(x))
    close((D @ A @ B).T(y), B.T(A.T(D.T(y))))
    close((D @ A).H(y), A.adjoint(D.adjoint(y)))
    close(A.gram()(x), A.T(A(x)))
    close((A.T @ A)(x), A.gram()(x))
    assert A.T.T is A
    assert (2 * (3 * A)).scale == 6.0
    assert (3 * A).norm((1, 2, 8, 6)) == pytest.approx(3 * A.norm((1, 2, 8, 6)))
    assert A(x).shape == x.shape and A.H(x).shape == x.shape


def test_matmul_with_tensor_is_refused():
    A = Identity()
    x = torch.zeros(1, 1, 2, 2)
    with pytest.raises(TypeError, match=r"A\(x\)"):
        A @ x
    with pytest.raises(TypeError):
        A + 1.0
    with pytest.raises(TypeError):
        x @ A


def test_composition_shapes_propagate():
    D = Downsampling(2, filter="box", in_shape=(1, 1, 8, 8))
    A = D @ Blur(_kernel(3, 3, 1))
    assert A.in_shape == (1, 1, 8, 8) and A.out_shape == (1, 1, 4, 4)
    assert A.T.in_shape == (1, 1, 4, 4) and A.T.out_shape == (1, 1, 8, 8)
    assert A.adjoint_test() < 1e-12


# ----------------------------------------------------------------- blur vs scipy
SCIPY_MODE = {"circular": "wrap", "reflect": "reflect", "mirror": "mirror", "replicate": "nearest", "zero": "constant"}


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("ksize", [(3, 3), (5, 2), (4, 4), (1, 3), (8, 7), (9, 11)])
def test_blur_matches_scipy_convolve(boundary, ksize):
    k = _kernel(*ksize, seed=11)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 9, 11, generator=g, dtype=DT)
    y = Blur(k, boundary=boundary)(x)
    ref = np.stack([
        np.stack([ndi.convolve(x[b, c].numpy(), k.numpy(), mode=SCIPY_MODE[boundary], cval=0.0) for c in range(3)])
        for b in range(2)
    ])
    np.testing.assert_allclose(y.numpy(), ref, atol=1e-12)


def test_blur_full_size_kernel_and_too_large():
    k = _kernel(6, 6, 1)
    for b in BOUNDARIES:
        op = Blur(k, boundary=b)
        assert op.adjoint_test((1, 1, 6, 6)) < 1e-12
        with pytest.raises(ValueError, match="larger than the 5x6 image"):
            op(torch.zeros(1, 1, 5, 6))
    with pytest.raises(ValueError, match="larger than"):
        Blur(k, in_shape=(1, 1, 4, 4))


def test_blur_matches_deepinv():
    import deepinv

    k = _kernel(5, 4, 3)
    x = torch.rand(1, 3, 16, 12, dtype=DT)
    ours = Blur(k)(x)
    theirs = deepinv.physics.BlurFFT((3, 16, 12), filter=k[None, None]).A(x)
    torch.testing.assert_close(ours, theirs.to(DT), atol=1e-6, rtol=0)
    # our "mirror" is torch's (and deepinv's) "reflect"
    ours = Blur(k, boundary="mirror")(x)
    theirs = deepinv.physics.Blur(filter=k[None, None], padding="reflect").A(x)
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=0)


def test_blur_input_validation():
    with pytest.raises(ValueError, match="boundary"):
        Blur(_kernel(3, 3, 1), boundary="periodic")
    with pytest.raises(ValueError, match="B, C, H, W"):
        Blur(_kernel(3, 3, 1))(torch.zeros(8, 8))


def test_solve_normal_rejects_bad_rho():
    with pytest.raises(ValueError, match="rho"):
        Identity().solve_normal(torch.zeros(1, 1, 2, 2), 0.0)


# ---------------------------------------------------------------------- sampling
def test_downsampling_shapes_and_checks():
    D = Downsampling(3, filter="box")
    assert D(torch.zeros(1, 1, 9, 12)).shape == (1, 1, 3, 4)
    assert D.T(torch.zeros(1, 1, 3, 4)).shape == (1, 1, 9, 12)
    with pytest.raises(ValueError, match="in_shape"):
        D(torch.zeros(1, 1, 10, 12))
    Dn = Downsampling(3, filter=None, in_shape=(1, 1, 10, 11))
    assert Dn(torch.zeros(1, 1, 10, 11)).shape == (1, 1, 4, 4)
    assert Dn.T(torch.zeros(1, 1, 4, 4)).shape == (1, 1, 10, 11)
    for bad in (0, 1.5, "2"):
        with pytest.raises((ValueError, TypeError)):
            Downsampling(bad)
    with pytest.raises(ValueError, match="filter"):
        Downsampling(2, filter="lanczos")


def test_downsampling_box_is_average_pooling():
    x = torch.rand(1, 2, 8, 8, dtype=DT)
    y = Downsampling(2, filter="box", boundary="zero")(x)
    torch.testing.assert_close(y, torch.nn.functional.avg_pool2d(x, 2))


def test_inpainting_mask_and_validation():
    m = _mask((6, 6))
    A = Inpainting(m)
    x = torch.rand(2, 3, 6, 6, dtype=DT)
    torch.testing.assert_close(A(x), x * m)
    with pytest.raises(ValueError, match="mask size"):
        A(torch.zeros(1, 1, 5, 6))
    with pytest.raises(ValueError, match="NaN"):
        Inpainting(torch.tensor([[1.0, float("nan")]]))


# ---------------------------------------------------------------------- adapters
def test_function_operator_adjoint_by_vjp():
    W = torch.randn(5, 12, dtype=DT)
    op = FunctionOperator(lambda x: (x.reshape(x.shape[0], 1, 1, -1) @ W.T), in_shape=(1, 1, 3, 4))
    y = torch.randn(1, 1, 1, 5, dtype=DT)
    torch.testing.assert_close(op.T(y).reshape(-1), W.T @ y.reshape(-1))
    assert op.T(torch.randn(3, 1, 1, 5, dtype=DT)).shape == (3, 1, 3, 4)  # other batch size
    with pytest.raises(ValueError, match="expected"):
        op.T(torch.zeros(1, 1, 1, 4, dtype=DT))
    with pytest.raises(ValueError, match="in_shape"):
        FunctionOperator(lambda x: x, in_shape=None)


def test_to_deepinv_roundtrip():
    import deepinv

    op = Blur(_kernel(3, 3, 4), boundary="reflect")
    phys = to_deepinv(op)
    assert isinstance(phys, deepinv.physics.LinearPhysics)
    x = torch.rand(1, 1, 8, 8, dtype=DT)
    y = op(x)
    torch.testing.assert_close(phys.A(x), y)
    torch.testing.assert_close(phys.A_adjoint(y), op.T(y))
    z, gamma = torch.rand_like(x), 0.7
    p = phys.prox_l2(z, y, gamma)
    # (A^T A + 1/gamma) p = A^T y + z / gamma
    torch.testing.assert_close(op.gram()(p) + p / gamma, op.T(y) + z / gamma, atol=1e-5, rtol=1e-5)
    assert phys.compute_norm(x).item() == pytest.approx(op.norm((1, 1, 8, 8)) ** 2)
    back = from_deepinv(phys)
    assert back.adjoint_test((1, 1, 8, 8)) < 1e-12
    with pytest.raises(TypeError):
        from_deepinv(op)
    with pytest.raises(TypeError):
        to_deepinv(phys)


# ----------------------------------------------------------------------- kernels
def _moments(k):
    h, w = k.shape
    r = torch.arange(h, dtype=DT)[:, None] - h // 2
    c = torch.arange(w, dtype=DT)[None, :] - w // 2
    return (k * r * r).sum().item(), (k * c * c).sum().item(), (k * r * c).sum().item()


def test_kernel_generators_basic():
    for k in (ops.gaussian(1.3), ops.gaussian(2.0, std_y=0.7, angle=30), ops.box(4), ops.box((3, 5)),
              ops.disk(3.5), ops.motion(9, 20), ops.shake(1), ops.shake(2, size=15)):
        assert k.dim() == 2 and k.dtype == DT
        assert k.sum().item() == pytest.approx(1.0, abs=1e-12)
        assert (k >= 0).all() and torch.isfinite(k).all()
    torch.testing.assert_close(ops.gaussian(1.5), ops.gaussian(1.5).T)


def test_kernel_orientation_conventions():
    vr, vc, _ = _moments(ops.gaussian(3.0, std_y=1.0))
    assert vc > 5 * vr  # std along x = columns
    torch.testing.assert_close(ops.gaussian(3.0, std_y=1.0, angle=90), ops.gaussian(1.0, std_y=3.0), atol=1e-12, rtol=0)
    assert _moments(ops.gaussian(3.0, std_y=1.0, angle=45))[2] < 0  # up-right as displayed
    k = ops.motion(9, 0)
    assert (k.sum(dim=1) > 0).sum() == 1 and k.shape[0] % 2 == 1
    torch.testing.assert_close(ops.motion(9, 90), k.T, atol=1e-12, rtol=0)
    assert _moments(ops.motion(11, 45))[2] < 0
    d = ops.disk(4)
    torch.testing.assert_close(d, d.T)
    torch.testing.assert_close(d, d.flip(0))


def test_shake_seeded():
    assert torch.equal(ops.shake(5), ops.shake(5))
    assert not torch.equal(ops.shake(5), ops.shake(6))


def test_parse_kernel_spec(tmp_path):
    torch.testing.assert_close(ops.parse_kernel_spec("gaussian:2.0"), ops.gaussian(2.0))
    torch.testing.assert_close(ops.parse_kernel_spec("gaussian:2:1:30"), ops.gaussian(2.0, std_y=1.0, angle=30))
    torch.testing.assert_close(ops.parse_kernel_spec("motion:15:30"), ops.motion(15, 30))
    torch.testing.assert_close(ops.parse_kernel_spec("box:7"), ops.box(7))
    torch.testing.assert_close(ops.parse_kernel_spec("disk:4"), ops.disk(4))
    torch.testing.assert_close(ops.parse_kernel_spec("shake:3"), ops.shake(3))
    f = tmp_path / "k.npy"
    np.save(f, 2 * np.ones((3, 3)))
    with pytest.warns(UserWarning, match="normalising"):
        k = ops.parse_kernel_spec(str(f))
    assert k.sum().item() == pytest.approx(1.0)
    for bad in ("gauss:2", "gaussian", "gaussian:a", "gaussian:1:2", "box:2.5", "motion:3", "blur.txt", ""):
        with pytest.raises(ValueError, match="valid forms|must be|positive|unsupported"):
            ops.parse_kernel_spec(bad)
    with pytest.raises(FileNotFoundError):
        ops.parse_kernel_spec(str(tmp_path / "missing.npy"))
    with pytest.raises(ValueError, match="std"):
        ops.parse_kernel_spec("gaussian:-1")


def test_load_kernel_png(tmp_path):
    from skimage import io

    img = np.zeros((5, 5, 3), dtype=np.uint8)
    img[2, 1:4] = 255
    f = tmp_path / "k.png"
    io.imsave(f, img, check_contrast=False)
    with pytest.warns(UserWarning):
        k = ops.load_kernel(f)
    expected = torch.zeros(5, 5, dtype=DT)
    expected[2, 1:4] = 1 / 3
    torch.testing.assert_close(k, expected)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.array([[1.0, np.nan]]), "NaN"),
        (np.array([[1.0, np.inf]]), "NaN or Inf"),
        (np.array([[0.5, -0.1, 0.6]]), "negative"),
        (np.zeros((3, 3)), "sum"),
        (np.ones((2, 2, 2)), "2-D"),
        (np.ones((0, 3)), "2-D"),
    ],
)
def test_bad_kernels_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        ops.validate_kernel(bad)
    with pytest.raises(ValueError, match=match):
        Blur(bad)


def test_validate_kernel_normalises_with_warning_and_checks_size():
    with pytest.warns(UserWarning, match="normalising"):
        k = ops.validate_kernel(np.ones((3, 3)))
    assert k.sum().item() == pytest.approx(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ops.validate_kernel(torch.ones(1, 1, 2, 2) / 4)
    with pytest.raises(ValueError, match="larger than the 4x8 image"):
        ops.validate_kernel(np.ones((5, 5)) / 25, (1, 1, 4, 8))


# -------------------------------------------------------------------- properties
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(
    H=st.integers(1, 9), W=st.integers(1, 9), C=st.integers(1, 2),
    kh=st.integers(1, 5), kw=st.integers(1, 5), boundary=st.sampled_from(BOUNDARIES), seed=st.integers(0, 99),
)
def test_property_blur_adjoint_any_shape(H, W, C, kh, kw, boundary, seed):
    kh, kw = min(kh, H), min(kw, W)
    op = Blur(_kernel(kh, kw, seed), boundary=boundary)
    assert op.adjoint_test((1, C, H, W), seed=seed) < 1e-12


@settings(max_examples=15, deadline=None)
@given(scale=st.floats(1e-3, 1e3), seed=st.integers(0, 99))
def test_property_adjoint_test_is_scale_invariant(scale, seed):
    op = scale * Blur(_kernel(3, 3, seed), boundary="replicate")
    assert op.adjoint_test((1, 1, 6, 5), seed=seed) < 1e-12


def test_linear_operator_is_abstract():
    with pytest.raises(NotImplementedError):
        LinearOperator()(torch.zeros(1))
