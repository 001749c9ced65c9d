"""A user's own observation: ``solve --image y --observed``, the noise level from the data, native size, PNG/TIFF out."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pnp.cli import build_solve_parser, config_from_args, main

SIGMA = 0.03  # noise of the synthetic observation
FAST = ["--prior", "tv", "--max-iter", "20", "--quiet"]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def one_line_error(code: int, err: str, *fragments: str) -> None:
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _smooth_image(height: int, width: int) -> np.ndarray:
    """A smooth scene in [0.2, 0.8] (no clipping of the noisy observation, little fine-scale signal)."""
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    return 0.5 + 0.15 * np.sin(6.0 * xx + 1.0) * np.cos(4.0 * yy) + 0.1 * np.exp(-((xx - 0.5) ** 2 + (yy - 0.4) ** 2) / 0.05)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """A blurred noisy observation (8-bit PNG, float .npy, float TIFF), its kernel, and a few bad files."""
    import tifffile
    from PIL import Image

    from operators.blur import Blur
    from operators.kernels import parse_kernel_spec

    d = tmp_path_factory.mktemp("observed")
    h, w = 112, 144  # not square, not 256: the native size must be kept
    x = torch.from_numpy(_smooth_image(h, w))[None, None]
    kernel = parse_kernel_spec("gaussian:1.6").double()
    np.save(d / "k.npy", kernel.numpy())
    g = torch.Generator().manual_seed(3)
    y = (Blur(kernel, in_shape=(1, 1, h, w))(x) + SIGMA * torch.randn(x.shape, generator=g, dtype=torch.float64))[0, 0]
    y = y.numpy()
    Image.fromarray(np.round(np.clip(y, 0, 1) * 255).astype(np.uint8)).save(d / "y.png")
    np.save(d / "y.npy", y.astype(np.float32))
    tifffile.imwrite(d / "y.tif", (y - 0.45).astype(np.float32))  # float data with negative values, kept as is
    tifffile.imwrite(d / "y16.tif", np.round(np.clip(y, 0, 1) * 65535).astype(np.uint16))
    bad = y.copy()
    bad[5, 7] = np.nan
    np.save(d / "nan.npy", bad)
    np.save(d / "big_kernel.npy", np.full((121, 121), 1.0 / 121**2))
    Image.fromarray(np.full((48, 64), 128, np.uint8)).save(d / "photo.png")
    return {"dir": d, "k": d / "k.npy", "png": d / "y.png", "y": d / "y.npy", "y_tif": d / "y.tif",
            "y16_tif": d / "y16.tif", "nan": d / "nan.npy", "big_kernel": d / "big_kernel.npy",
            "photo": d / "photo.png"}


# ---------------------------------------------------------------------------- end to end
def test_observed_png_end_to_end(data, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = run_cli(["solve", "--image", str(data["png"]), "--observed", "--kernel",
                                 str(data["k"]), "--out", str(out), "--json", str(tmp_path / "r.json"), *FAST])
    assert code == 0, err
    record = json.loads((tmp_path / "r.json").read_text())
    # no ground truth: no score, and the record says why
    assert record["observed_input"] is True and record["problem"]["observed"] is True
    for key in ("psnr", "ssim", "psnr_observed", "ssim_observed", "psnr_gain"):
        assert record[key] is None, key
    # the noise level was estimated from the data (no --noise): within 5 % on this smooth scene (8-bit
    # quantisation adds 1/255/sqrt(12) = 0.0011 in quadrature: 0.03002)
    est = record["noise_estimate"]
    assert record["noise_estimated"] is True and record["noise_sigma"] == pytest.approx(est["sigma"])
    assert abs(est["sigma"] - SIGMA) < 0.05 * SIGMA, est
    assert 0 < est["uncertainty"] < 0.05 * SIGMA and est["true_sigma"] is None
    # native size kept
    assert record["shape"] == [1, 1, 112, 144] and record["problem"]["size"] is None
    # the reconstruction as .npy, 8-bit PNG (clipped) and float32 TIFF (not clipped), all readable
    import imageio.v3 as iio
    import tifffile

    x = np.load(record["reconstruction"])
    png, tif = iio.imread(record["reconstruction_png"]), tifffile.imread(record["reconstruction_tiff"])
    assert x.shape == (1, 112, 144) and x.dtype == np.float32
    assert png.dtype == np.uint8 and png.shape == (112, 144)
    assert np.abs(png.astype(float) - np.round(np.clip(x[0], 0, 1) * 255)).max() <= 1.0
    assert tif.dtype == np.float32 and tif.shape == (112, 144)
    np.testing.assert_allclose(tif, x[0], rtol=0, atol=1e-7)


def test_observed_prints_the_estimate(data, tmp_path):
    code, stdout, err = run_cli(["solve", "--image", str(data["png"]), "--observed", "--kernel",
                                 str(data["k"]), "--out", str(tmp_path), "--prior", "tv", "--max-iter", "3",
                                 "--no-figure"])
    assert code == 0, err
    assert "noise sigma estimated from the data: 0.0" in stdout and "±" in stdout
    assert "observed, no ground truth" in stdout and "_reconstruction.tif (float32, not clipped)" in stdout


def test_given_noise_overrides_the_estimate(data, tmp_path):
    code, _, err = run_cli(["solve", "--image", str(data["y"]), "--observed", "--kernel", str(data["k"]),
                            "--noise", "0.02", "--out", str(tmp_path), "--json", str(tmp_path / "r.json"),
                            "--no-figure", *FAST])
    assert code == 0, err
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["noise_estimated"] is False and record["noise_estimate"] is None
    assert record["noise_sigma"] == 0.02


def test_noise_estimate_on_a_simulated_problem(tmp_path):
    code, _, err = run_cli(["solve", "--size", "64", "--noise", "estimate", "--out", str(tmp_path), "--json",
                            str(tmp_path / "r.json"), "--no-figure", *FAST])
    assert code == 0, err
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["noise_estimated"] is True and record["noise_estimate"]["true_sigma"] == 0.01
    assert abs(record["noise_sigma"] - 0.01) < 0.15 * 0.01  # camera at 64 px: some image content leaks in
    assert record["psnr"] is not None and record["observed_input"] is False


# ---------------------------------------------------------------------------- inputs
def test_float_and_16_bit_observations_are_read_as_they_are(data):
    import tifffile

    from problems.images import load_observation

    y = np.load(data["y"])
    shifted = load_observation(data["y_tif"])[0, 0].numpy()
    assert shifted.min() < 0  # kept, not refused and not clipped
    np.testing.assert_allclose(shifted, y - 0.45, rtol=0, atol=1e-6)
    y16 = load_observation(data["y16_tif"])[0, 0].numpy()
    np.testing.assert_allclose(y16, tifffile.imread(data["y16_tif"]) / 65535.0, rtol=0, atol=1e-7)


def test_float_npy_observation_runs(data, tmp_path):
    code, _, err = run_cli(["solve", "--image", str(data["y_tif"]), "--observed", "--kernel", str(data["k"]),
                            "--out", str(tmp_path), "--json", str(tmp_path / "r.json"), "--no-figure", *FAST])
    assert code == 0, err
    record = json.loads((tmp_path / "r.json").read_text())
    assert abs(record["noise_sigma"] - SIGMA) < 0.05 * SIGMA  # a shift does not change the noise


def test_native_size_is_the_default_for_an_image_file_only(data):
    parser = build_solve_parser()

    def size(*argv: str):
        return config_from_args(parser.parse_args(list(argv))).problem.size

    photo = str(data["photo"])
    assert size() == 256 and size("--image", "astronaut") == 256  # bundled images: unchanged default
    assert size("--image", photo) is None and size("--image", photo, "--size", "32") == 32
    assert size("--image", photo, "--observed") is None


def test_image_file_is_solved_at_its_native_size(data, tmp_path):
    code, _, err = run_cli(["solve", "--image", str(data["photo"]), "--out", str(tmp_path), "--json",
                            str(tmp_path / "r.json"), "--no-figure", "--max-iter", "2", "--prior", "tv", "--quiet"])
    assert code == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["shape"] == [1, 1, 48, 64]


def test_too_large_native_image_is_refused_up_front(data, tmp_path, monkeypatch):
    import problems.images

    monkeypatch.setattr(problems.images, "available_memory", lambda: 2**20)  # 1 MiB free: the solve needs about 3 MB
    code, out, err = run_cli(["solve", "--image", str(data["png"]), "--observed", "--kernel",
                              str(data["k"]), "--out", str(tmp_path / "o"), *FAST])
    one_line_error(code, err, "native size (112 x 144, 1 channel)", "GiB", "crop the file")
    assert out == "" and not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--image", "{nan}", "--observed", "--kernel", "{k}"], ("NaN or Inf", "nan.npy")),
        (["--image", "{y}", "--observed", "--kernel", "{big_kernel}"], ("larger than", "112x144")),
        (["--image", "{dir}/missing.png", "--observed", "--kernel", "{k}"], ("does not exist", "missing.png")),
        (["--image", "{y}", "--observed", "--kernel", "{k}", "--size", "64"], ("native size", "--size")),
        (["--image", "{y}", "--observed", "--kernel", "{k}", "--noise", "loud"], ("'estimate'", "loud")),
        (["--observed"], ("--image PATH",)),
    ],
    ids=["non-finite", "kernel-too-large", "missing-file", "resize-observation", "bad-noise", "no-image"],
)
def test_bad_observations_are_refused_in_one_line(data, tmp_path, args, fragments):
    argv = [a.format(**{k: str(v) for k, v in data.items()}) for a in args]
    code, _, err = run_cli(["solve", *argv, "--out", str(tmp_path / "o"), *FAST])
    one_line_error(code, err, *fragments)


# ---------------------------------------------------------------------------- outputs
def test_outputs_never_follow_a_link_to_a_user_file(data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"user data")
    (out / "y_pgd_tv_reconstruction.png").symlink_to(mine)
    code, _, err = run_cli(["solve", "--image", str(data["y"]), "--observed", "--noise", "0.03", "--kernel",
                            str(data["k"]), "--out", str(out), "--no-figure", *FAST])
    one_line_error(code, err, "symbolic link")
    assert mine.read_bytes() == b"user data"
    assert not (out / "y_pgd_tv_reconstruction.npy").exists()  # refused before any file was written


def test_a_rerun_replaces_its_own_outputs(data, tmp_path):
    argv = ["solve", "--image", str(data["y"]), "--observed", "--noise", "0.03", "--kernel", str(data["k"]),
            "--out", str(tmp_path), "--no-figure", *FAST]
    assert run_cli(argv)[0] == 0
    first = (tmp_path / "y_pgd_tv_reconstruction.tif").stat().st_mtime_ns
    code, _, err = run_cli([*argv[:-5], "--max-iter", "5", *argv[-3:]])
    assert code == 0, err
    assert (tmp_path / "y_pgd_tv_reconstruction.tif").stat().st_mtime_ns >= first
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]  # no temporary file left behind


def test_folder_of_observations_estimates_each_noise_level(data, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.npy").write_bytes(data["y"].read_bytes())
    (folder / "a_reconstruction.png").write_bytes(data["png"].read_bytes())  # stems that collide
    out = tmp_path / "out"
    code, _, err = run_cli(["solve", "--input-dir", str(folder), "--observed", "--kernel", str(data["k"]),
                            "--out", str(out), "--no-figure", *FAST])
    assert code == 0, err
    a = json.loads((out / "a.json").read_text())
    assert a["noise_estimated"] is True and abs(a["noise_sigma"] - SIGMA) < 0.05 * SIGMA and a["psnr"] is None
    import tifffile

    assert tifffile.imread(out / "a_reconstruction.tif").dtype == np.float32
    # the input a_reconstruction.png got its own stem: its outputs do not overwrite a's reconstruction PNG
    b = json.loads((out / "a_reconstruction_2.json").read_text())
    assert Path(b["reconstruction_png"]).name == "a_reconstruction_2_reconstruction.png"
    assert Path(a["reconstruction_png"]).name == "a_reconstruction.png"


# ---------------------------------------------------------------------------- the estimator
def test_estimate_on_pure_noise_is_within_its_uncertainty():
    from problems.noise_estimate import estimate_noise

    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(20):
        est = estimate_noise(0.5 + 0.05 * rng.standard_normal((96, 96)))
        assert est.uncertainty == pytest.approx(max(est.standard_error, est.tile_error))
        hits += abs(est.sigma - 0.05) <= 2 * est.uncertainty
    assert hits >= 16  # about 95 % expected within 2 standard errors


def test_estimate_of_colour_and_flat_images():
    from problems.noise_estimate import estimate_noise

    g = torch.Generator().manual_seed(1)
    rgb = 0.5 + torch.tensor([0.01, 0.02, 0.03]).view(1, 3, 1, 1) * torch.randn(1, 3, 128, 128, generator=g)
    est = estimate_noise(rgb)
    assert len(est.per_channel) == 3 and est.per_channel[0] < est.per_channel[1] < est.per_channel[2]
    assert est.sigma == pytest.approx(sum(est.per_channel) / 3)
    assert estimate_noise(np.full((32, 32), 0.5)).sigma < 1e-12  # a flat image: no noise (up to round-off)
    with pytest.raises(ValueError, match="too small"):
        estimate_noise(np.zeros((4, 40)))
