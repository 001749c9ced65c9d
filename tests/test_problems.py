"""Tests of problems/: image loading, metrics, InverseProblem and the YAML problem spec."""

from __future__ import annotations

import importlib

import math
import struct
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from problems import (
    InverseProblem,
    ProblemSpec,
    TEST_SPLIT,
    available_images,
    bundled_spec_names,
    bundled_spec_path,
    load_image,
    load_yaml_mapping,
    training_pool_names,
)
from problems import metrics


# ----------------------------------------------------------------------------------------------
# helpers


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def write_png16(path: Path, array: np.ndarray) -> None:
    """Minimal 16-bit PNG encoder (colour types 0/2/4/6) cycling through all five row filters."""
    height, width = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    bpp = 2 * channels
    raw = array.astype(">u2").reshape(height, -1).view(np.uint8).reshape(height, width * bpp)
    raw = raw.astype(np.int32)
    lines = []
    for i in range(height):
        cur = raw[i]
        up = raw[i - 1] if i else np.zeros_like(cur)
        left = np.concatenate([np.zeros(bpp, np.int32), cur[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), up[:-bpp]])
        kind = i % 5
        pred = [0 * cur, left, up, (left + up) // 2, _paeth(left, up, upleft)][kind]
        lines.append(bytes([kind]) + ((cur - pred) % 256).astype(np.uint8).tobytes())

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(lines)))
        + chunk(b"IEND", b"")
    )


class Halve:
    """Tiny linear operator for tests: 2x2 average pooling (adjoint: spread / 4)."""

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        return torch.nn.functional.avg_pool2d(x, 2)

    def adjoint(self, y):
        return torch.repeat_interleave(torch.repeat_interleave(y, 2, dim=-1), 2, dim=-2) / 4


class Ident:
    def __call__(self, x):
        return x

    def forward(self, x):
        return x

    def adjoint(self, y):
        return y


class StubNoise:
    def __init__(self, sigma: float = 0.1) -> None:
        self.sigma = sigma
        self.calls = 0

    def sample(self, z, *, generator=None):
        return z + self.sigma * torch.randn(z.shape, generator=generator, dtype=z.dtype)

    def fidelity(self, operator, y):
        self.calls += 1
        return ("fidelity", operator, y)


def _importable(*modules: str) -> bool:
    try:
        for name in modules:
            importlib.import_module(name)
    except ImportError:
        return False
    return True


needs_operators = pytest.mark.skipif(
    not _importable("operators.blur", "operators.kernels", "operators.noise", "operators.sampling"),
    reason="operators package not complete yet",
)


needs_linear_operators = pytest.mark.skipif(
    not _importable("operators.kernels", "operators.sampling"), reason="operators.sampling not available yet"
)


# ----------------------------------------------------------------------------------------------
# images


@pytest.mark.parametrize("name", TEST_SPLIT)
def test_test_split_loads_gray_and_colour(name):
    native = load_image(name)
    assert native.shape[:2] == (1, 1) and min(native.shape[-2:]) >= 256
    assert native.dtype == torch.float32
    assert 0.0 <= float(native.min()) and float(native.max()) <= 1.0
    gray = load_image(name, size=32)
    colour = load_image(name, size=(24, 40), gray=False, dtype=torch.float64)
    assert gray.shape == (1, 1, 32, 32)
    assert colour.shape == (1, 3, 24, 40) and colour.dtype == torch.float64
    assert 0.0 <= float(colour.min()) and float(colour.max()) <= 1.0


def test_camera_native_values_are_uint8_over_255():
    import skimage.data

    x = load_image("camera", dtype=torch.float64)
    np.testing.assert_array_equal(x[0, 0].numpy(), skimage.data.camera() / 255.0)


def test_gray_image_in_colour_is_replicated():
    x = load_image("camera", size=16, gray=False)
    assert x.shape == (1, 3, 16, 16)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])


def test_training_pool_is_disjoint_and_loads_offline():
    pool = training_pool_names()
    assert len(pool) >= 5
    assert set(pool).isdisjoint(TEST_SPLIT)
    assert "cat" not in pool  # the same picture as chelsea
    for name in pool:
        x = load_image(name, size=16)
        assert x.shape == (1, 1, 16, 16) and torch.isfinite(x).all()


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown image name 'lena'.*camera.*rocket"):
        load_image("lena")


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_image(tmp_path / "nope.png")
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="cannot read image file .*bad.png"):
        load_image(bad)


def test_16bit_gray_png_scaled_by_dtype_range(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 1000, size=(20, 30), dtype=np.uint16)  # max far below 65535
    path = tmp_path / "g16.png"
    iio.imwrite(path, data)
    x = load_image(path, dtype=torch.float64)
    np.testing.assert_allclose(x[0, 0].numpy(), data / 65535.0, rtol=0, atol=1e-15)
    assert float(x.max()) < 1000 / 65535 + 1e-12


@pytest.mark.parametrize("channels", [3, 4, 2])
def test_16bit_colour_png_keeps_16_bits(tmp_path, channels):
    rng = np.random.default_rng(channels)
    data = rng.integers(0, 65536, size=(9, 13, channels), dtype=np.uint16)
    if channels in (2, 4):
        data[..., -1] = 65535  # opaque: the colour values must come back exactly
    path = tmp_path / "c16.png"
    write_png16(path, data)
    x = load_image(path, gray=False, dtype=torch.float64)
    expected = data[..., :-1] if channels in (2, 4) else data
    expected = expected / 65535.0
    if channels == 2:
        expected = np.repeat(expected, 3, axis=-1)
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), expected, rtol=0, atol=1e-12)


def test_rgba_png_composited_over_white(tmp_path):
    data = np.zeros((4, 6, 4), dtype=np.uint8)
    data[..., 0] = 255  # red
    data[:2, :, 3] = 255  # top half opaque, bottom half fully transparent
    path = tmp_path / "rgba.png"
    iio.imwrite(path, data)
    x = load_image(path, gray=False, dtype=torch.float64)
    assert x.shape == (1, 3, 4, 6)
    assert torch.equal(x[0, :, :2, :], torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, 2, 6).double())
    assert torch.equal(x[0, :, 2:, :], torch.ones(3, 2, 6, dtype=torch.float64))
    assert load_image(path).shape == (1, 1, 4, 6)


def test_npy_round_trip_and_refusals(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.random((12, 10, 3))
    path = tmp_path / "img.npy"
    np.save(path, data)
    x = load_image(path, gray=False, dtype=torch.float64)
    np.testing.assert_array_equal(x[0].permute(1, 2, 0).numpy(), data)

    data[3, 4, 1] = np.nan
    np.save(path, data)
    with pytest.raises(ValueError) as info:
        load_image(path)
    assert str(info.value) == f"image '{path}' contains NaN or Inf values"

    np.save(path, np.full((8, 8), 2.0))
    with pytest.raises(ValueError, match=r"outside \[0, 1\]; rescale"):
        load_image(path)
    np.save(path, np.ones((8, 8), dtype=np.int64))
    with pytest.raises(ValueError, match="integer dtype int64"):
        load_image(path)
    np.save(path, np.ones((2, 8, 8, 3)))
    with pytest.raises(ValueError, match=r"expected \(H, W\) or \(H, W, C\)"):
        load_image(path)


def test_float_tiff_round_trip(tmp_path):
    data = np.random.default_rng(2).random((10, 14)).astype(np.float32)
    path = tmp_path / "img.tif"
    iio.imwrite(path, data)
    x = load_image(path)
    np.testing.assert_array_equal(x[0, 0].numpy(), data)


def test_size_centre_crops_then_resizes(tmp_path):
    data = np.zeros((20, 40), dtype=np.uint8)
    data[:, 10:30] = 255  # the centred 20x20 square is white, the sides black
    path = tmp_path / "wide.png"
    iio.imwrite(path, data)
    assert torch.equal(load_image(path, size=20), torch.ones(1, 1, 20, 20))  # exact crop, no resize
    small = load_image(path, size=10)
    assert small.shape == (1, 1, 10, 10) and float(small.min()) > 0.99
    with pytest.warns(UserWarning, match="upsampling"):
        assert load_image(path, size=25).shape == (1, 1, 25, 25)
    with pytest.raises(ValueError, match="size must be"):
        load_image(path, size=0)


def test_available_images_contains_splits():
    names = available_images()
    assert set(TEST_SPLIT) <= set(names) and set(training_pool_names()) <= set(names)


# ----------------------------------------------------------------------------------------------
# metrics


def test_psnr_uses_peak_one_not_image_max():
    x = torch.full((2, 1, 8, 8), 0.5, dtype=torch.float64)
    ref = torch.full((2, 1, 8, 8), 0.6, dtype=torch.float64)
    values = metrics.psnr(x, ref)
    assert values.shape == (2,) and values.dtype == torch.float64
    np.testing.assert_allclose(values.numpy(), [20.0, 20.0], rtol=0, atol=1e-12)
    assert math.isinf(float(metrics.psnr(ref[:1], ref[:1])))


def test_psnr_per_batch_element():
    ref = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    x = ref.clone()
    x[0] += 0.1
    x[1] += 0.01
    np.testing.assert_allclose(metrics.psnr(x, ref).numpy(), [20.0, 40.0], atol=1e-9)


def test_ssim_identity_and_skimage_agreement():
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(2, 3, 24, 24, generator=g, dtype=torch.float64)
    assert metrics.ssim(ref, ref).tolist() == [1.0, 1.0]
    gray = ref[:, :1]
    noisy = (gray + 0.1 * torch.randn(gray.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    value = metrics.ssim(noisy, gray)
    expected = structural_similarity(
        noisy[0, 0].numpy(),
        gray[0, 0].numpy(),
        data_range=1.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert value.shape == (2,) and float(value[0]) == pytest.approx(expected, abs=1e-12)
    assert float(value[0]) < 1.0


def test_metric_shape_errors():
    with pytest.raises(ValueError, match="must match"):
        metrics.psnr(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 9))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        metrics.psnr(torch.zeros(8, 8), torch.zeros(8, 8))
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))


# ----------------------------------------------------------------------------------------------
# InverseProblem (with stand-in operator and noise, independent of operators/)


def test_inverse_problem_simulate_seed_and_metrics():
    truth = load_image("camera", size=32, dtype=torch.float64)
    a = InverseProblem.simulate(truth, Ident(), StubNoise(), seed=3)
    b = InverseProblem.simulate(truth, Ident(), StubNoise(), seed=3)
    c = InverseProblem.simulate(truth, Ident(), StubNoise(), seed=4)
    assert torch.equal(a.y, b.y) and not torch.equal(a.y, c.y)
    assert a.psnr(a.y) == pytest.approx(20.0, abs=0.5)  # sigma 0.1 -> about 20 dB
    assert a.psnr(truth) == math.inf and a.ssim(truth) == 1.0
    assert isinstance(a.psnr(a.y), float) and isinstance(a.ssim(a.y), float)
    assert torch.equal(a.x0(), a.y) and a.x0() is not a.y


def test_inverse_problem_fidelity_cached_and_truth_required():
    noise = StubNoise()
    y = torch.zeros(1, 1, 16, 16)
    problem = InverseProblem(Ident(), noise, y)
    assert problem.fidelity is problem.fidelity and noise.calls == 1
    with pytest.raises(ValueError, match="needs the ground truth"):
        problem.psnr(y)
    with pytest.raises(ValueError, match="needs the ground truth"):
        problem.ssim(y)


def test_inverse_problem_validation():
    y = torch.zeros(1, 1, 8, 8)
    with pytest.raises(ValueError, match="y contains NaN or Inf"):
        InverseProblem(Ident(), StubNoise(), torch.full((1, 1, 4, 4), float("nan")))
    with pytest.raises(ValueError, match=r"y must have shape \(B, C, H, W\)"):
        InverseProblem(Ident(), StubNoise(), torch.zeros(8, 8))
    with pytest.raises(ValueError, match="A\\(truth\\) has shape"):
        InverseProblem(Ident(), StubNoise(), y, truth=torch.zeros(1, 1, 6, 6))
    with pytest.raises(TypeError, match="noise must be a noise model"):
        InverseProblem(Ident(), object(), y)


def test_x0_rescales_adjoint_when_shapes_differ():
    truth = torch.full((1, 1, 8, 8), 0.7, dtype=torch.float64)
    problem = InverseProblem.simulate(truth, Halve(), StubNoise(0.0))
    x0 = problem.x0()
    assert x0.shape == truth.shape
    torch.testing.assert_close(x0, truth)  # the bare adjoint would give 0.7 / 4


# ----------------------------------------------------------------------------------------------
# ProblemSpec


def test_spec_unknown_key_lists_valid_keys():
    with pytest.raises(ValueError) as info:
        ProblemSpec.from_dict({"image": "camera", "foo": 1})
    message = str(info.value)
    assert message.startswith("unknown key 'foo' in problem spec; valid keys: image, size, gray,")
    assert "\n" not in message
    for key in ProblemSpec.keys():
        assert key in message


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"size": "big"}, "field 'size' must be an integer"),
        ({"size": True}, "field 'size' must be an integer"),
        ({"gray": "yes"}, "field 'gray' must be true or false"),
        ({"sigma": -0.1}, "field 'sigma' must be a finite number >= 0"),
        ({"sigma": "abc"}, "field 'sigma' must be a number"),
        ({"operator": "deconv"}, "field 'operator' must be one of blur, downsampling"),
        ({"noise_model": "laplace"}, "field 'noise_model' must be one of gaussian"),
        ({"mask_ratio": 1.0}, r"field 'mask_ratio' must lie in \[0, 1\)"),
        ({"gain": 0}, "field 'gain' must be > 0"),
        ({"kernel": 2.0}, "field 'kernel' must be a string"),
    ],
)
def test_spec_field_errors(data, pattern):
    with pytest.raises(ValueError, match=pattern):
        ProblemSpec.from_dict(data)


def test_spec_defaults_and_coercions():
    spec = ProblemSpec.from_dict({"sigma": "1e-2", "size": None, "operator": "Blur"})
    assert spec.sigma == 0.01 and spec.size is None and spec.operator == "blur"
    default = ProblemSpec()
    assert (default.image, default.size, default.gray, default.kernel, default.sigma, default.seed) == (
        "camera", 256, True, "gaussian:1.6", 0.01, 0,
    )
    assert ProblemSpec.from_dict(default.to_dict()) == default
    assert default.updated(seed=5).seed == 5
    with pytest.raises(ValueError, match="unknown key 'colour'"):
        default.updated(colour=True)


def test_spec_yaml_sections_and_errors(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("problem:\n  image: astronaut\n  size: 64\nsolver:\n  algorithm: pgd\n")
    assert ProblemSpec.from_yaml(cfg) == ProblemSpec(image="astronaut", size=64)
    assert load_yaml_mapping(cfg)["solver"] == {"algorithm": "pgd"}

    cfg.write_text("problem:\n  imgae: astronaut\n")
    with pytest.raises(ValueError, match="unknown key 'imgae' in section 'problem' of .*run.yaml"):
        ProblemSpec.from_yaml(cfg)

    cfg.write_text("image: camera\n  size: [1, 2\n")
    with pytest.raises(ValueError, match=r"run.yaml' is not valid YAML: .* line \d+, column \d+"):
        load_yaml_mapping(cfg)
    cfg.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="must contain a mapping"):
        load_yaml_mapping(cfg)
    cfg.write_text("")
    assert load_yaml_mapping(cfg) == {} and ProblemSpec.from_yaml(cfg) == ProblemSpec()
    with pytest.raises(FileNotFoundError, match="missing.yaml' does not exist"):
        load_yaml_mapping(tmp_path / "missing.yaml")


def test_bundled_specs_parse():
    names = bundled_spec_names()
    assert "default" in names
    for name in names:
        ProblemSpec.from_yaml(bundled_spec_path(name))
    default = ProblemSpec.from_yaml(bundled_spec_path("default"))
    assert (default.image, default.size, default.operator, default.kernel, default.sigma) == (
        "camera", 256, "blur", "gaussian:1.6", 0.01,
    )
    with pytest.raises(ValueError, match="unknown bundled spec 'nope'; available: .*default"):
        bundled_spec_path("nope")


@needs_operators
@pytest.mark.parametrize("name", ["default", "superresolution", "inpainting", "poisson_deblur"])
def test_bundled_specs_build(name):
    spec = ProblemSpec.from_yaml(bundled_spec_path(name)).updated(size=32)
    problem = spec.build()
    channels = 1 if spec.gray else 3
    expected = (1, channels, 16, 16) if spec.operator == "downsampling" else (1, channels, 32, 32)
    assert tuple(problem.y.shape) == expected
    assert problem.truth.shape == (1, channels, 32, 32)
    assert torch.isfinite(problem.y).all()
    assert problem.x0().shape == problem.truth.shape
    assert problem.fidelity is problem.fidelity


@needs_operators
def test_spec_build_is_seed_reproducible():
    spec = ProblemSpec(size=32, sigma=0.05)
    a, b, c = spec.build(), spec.build(), spec.updated(seed=1).build()
    assert torch.equal(a.y, b.y) and not torch.equal(a.y, c.y)
    assert torch.equal(a.truth, c.truth)
    assert a.psnr(a.y) < a.psnr(a.truth)


@needs_operators
@pytest.mark.parametrize("operator", ["denoising", "inpainting", "blur"])
def test_spec_build_each_operator_and_noise(operator):
    for noise_model in ("gaussian", "poisson", "poisson_gaussian"):
        spec = ProblemSpec(size=16, operator=operator, noise_model=noise_model, gain=0.05, sigma=0.02)
        problem = spec.build(dtype=torch.float64)
        assert problem.y.dtype == torch.float64 and problem.y.shape == (1, 1, 16, 16)


@needs_operators
def test_inpainting_mask_ratio_and_seed():
    spec = ProblemSpec(size=32, operator="inpainting", mask_ratio=0.3, sigma=0.0, mask_seed=7)
    y = spec.build().y
    observed = float((y != 0).double().mean())
    assert 0.6 < observed < 0.8
    assert torch.equal(y, spec.updated(seed=9).build().y)  # mask_seed fixes the mask, sigma 0


@needs_linear_operators
@pytest.mark.parametrize(
    ("operator", "out_size"), [("blur", 30), ("downsampling", 10), ("inpainting", 30), ("denoising", 30)]
)
def test_make_operator_shapes(operator, out_size):
    spec = ProblemSpec(operator=operator, factor=3, kernel="box:5", boundary="reflect")
    shape = (1, 2, 30, 30)
    op = spec.make_operator(shape)
    x = torch.rand(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert op(x).shape == (1, 2, out_size, out_size)
    assert op.adjoint(op(x)).shape == shape
    assert op.adjoint_test(shape) < 1e-10


@needs_linear_operators
def test_kernel_errors_surface_from_build():
    with pytest.raises(ValueError, match="larger than the 16x16 image"):
        ProblemSpec(size=16, kernel="box:21").build()
    with pytest.raises(ValueError, match="unknown kernel spec 'blob:3'"):
        ProblemSpec(size=16, kernel="blob:3").build()
