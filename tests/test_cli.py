"""End-to-end tests of ``stablepnp solve`` and the command routing (small images, few iterations)."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pnp.cli import main
from pnp.solve import SolveConfig, SolverSpec, default_lam

REQUIRED_FIELDS = (
    "psnr_observed", "psnr", "ssim", "iterations", "converged", "status", "seconds",
    "step", "lam", "prior", "algorithm", "guarantee",
)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` in-process; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "no error message"
    last = lines[-1]
    assert last.startswith("stablepnp: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in last, f"{fragment!r} not in {last!r}"


# ---------------------------------------------------------------------------- the solve job
@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One in-process TV-PGD run on a 64x64 cameraman, shared by the tests that read its outputs."""
    import torch

    tmp = tmp_path_factory.mktemp("solve")
    threads = torch.get_num_threads()
    code, out, err = run_cli([
        "solve", "--prior", "tv", "--lam", "default", "--size", "64", "--max-iter", "15", "--out", str(tmp / "out"),
        "--json", str(tmp / "run.json"),
    ])
    assert torch.get_num_threads() == threads  # the CLI's --threads setting is restored afterwards
    return {"code": code, "out": out, "err": err, "json": tmp / "run.json", "dir": tmp / "out"}


def test_solve_improves_psnr(small_run):
    assert small_run["code"] == 0, small_run["err"]
    record = json.loads(small_run["json"].read_text())
    assert record["psnr"] > record["psnr_observed"] + 1.0
    assert record["ssim"] > record["ssim_observed"]


def test_json_record_has_required_fields(small_run):
    record = json.loads(small_run["json"].read_text())
    for key in REQUIRED_FIELDS:
        assert key in record, key
    assert record["prior"] == "tv" and record["algorithm"] == "pgd"
    assert record["iterations"] == 15 and record["status"] == "max_iter" and record["converged"] is False
    assert record["lam"] == pytest.approx(default_lam("tv", 0.01))
    assert record["step"] == pytest.approx(1.0, rel=1e-3)  # 1/‖A‖², ‖A‖ = 1 for a normalised circular blur
    assert record["guarantee"]["verdict"] == "guaranteed"
    assert "Forward-backward" in record["guarantee"]["theorem"]
    assert len(record["history"]["residual"]) == 15


def test_figure_and_table_written(small_run):
    record = json.loads(small_run["json"].read_text())
    figure = Path(record["figure"])
    assert figure.is_file() and figure.parent == small_run["dir"]
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.load(record["reconstruction"]).shape == (1, 64, 64)
    table = small_run["out"]
    for fragment in ("observation", "reconstruction", "PSNR", "SSIM", "iterations", "max_iter", "guaranteed"):
        assert fragment in table


def test_console_script_entry_point(tmp_path):
    script = Path(sys.executable).with_name("stablepnp")
    if not script.exists():
        pytest.fail(f"console script not installed next to {sys.executable}; run pip install -e .")
    out_json = tmp_path / "r.json"
    proc = subprocess.run(
        [str(script), "solve", "--size", "32", "--max-iter", "8", "--quiet", "--no-figure",
         "--out", str(tmp_path), "--json", str(out_json)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""  # --quiet: no table
    record = json.loads(out_json.read_text())
    assert record["psnr"] > record["psnr_observed"]
    assert record["figure"] is None


def test_config_file_and_flag_override(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "problem:\n  size: 32\n  kernel: 'box:3'\n  sigma: 0.02\n"
        "solver:\n  prior: wavelet\n  lam: 0.01\n  max_iter: 4\n"
        f"output:\n  dir: '{tmp_path / 'o'}'\n  figure: false\n"
    )
    code, out, err = run_cli(["solve", str(cfg), "--algorithm", "fista", "--lam", "0.02", "--quiet",
                              "--json", str(tmp_path / "r.json")])
    assert code == 0, err
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["algorithm"] == "fista" and record["prior"] == "wavelet"
    assert record["lam"] == 0.02 and record["iterations"] == 4
    assert record["problem"]["kernel"] == "box:3" and record["problem"]["sigma"] == 0.02


def test_bundled_config_is_the_default_job():
    path = Path(__import__("pnp").__file__).with_name("configs") / "solve_default.yaml"
    assert SolveConfig.from_yaml(path) == SolveConfig()


# ---------------------------------------------------------------------------- bad input: exit 2
@pytest.fixture
def nan_image(tmp_path):
    a = np.full((64, 64), 0.5)
    a[10, 20] = np.nan
    path = tmp_path / "nan.npy"
    np.save(path, a)
    return path


def test_nan_image(nan_image):
    assert_one_line_error(*run_cli(["solve", "--image", str(nan_image)])[::2], "NaN or Inf", "nan.npy", "replace")


def test_missing_image(tmp_path):
    missing = tmp_path / "nope.png"
    assert_one_line_error(*run_cli(["solve", "--image", str(missing)])[::2], "does not exist", "nope.png")


def test_unreadable_image(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_text("this is not a png")
    assert_one_line_error(*run_cli(["solve", "--image", str(bad)])[::2], "cannot read", "broken.png")


def test_unknown_kernel_spec():
    assert_one_line_error(*run_cli(["solve", "--size", "64", "--kernel", "foo:3"])[::2],
                          "unknown kernel spec 'foo:3'", "valid forms")


def test_kernel_larger_than_image(tmp_path):
    kernel = tmp_path / "big.npy"
    np.save(kernel, np.full((65, 65), 1.0 / 65**2))
    assert_one_line_error(*run_cli(["solve", "--size", "64", "--kernel", str(kernel)])[::2],
                          "larger than the 64x64 image")


def test_negative_noise():
    assert_one_line_error(*run_cli(["solve", "--noise", "-1"])[::2], "--noise", ">= 0")


def test_step_above_bound():
    assert_one_line_error(*run_cli(["solve", "--size", "64", "--step", "100"])[::2],
                          "step 100", "bound", "--unsafe")


def test_unknown_config_key(tmp_path):
    cfg = tmp_path / "typo.yaml"
    cfg.write_text("problem:\n  size: 64\nsolver:\n  max_iters: 10\n")
    assert_one_line_error(*run_cli(["solve", str(cfg)])[::2], "unknown key 'max_iters'", "valid keys", "max_iter")


def test_unknown_top_level_key(tmp_path):
    cfg = tmp_path / "typo.yaml"
    cfg.write_text("problme:\n  size: 64\n")
    assert_one_line_error(*run_cli(["solve", str(cfg)])[::2], "unknown key 'problme'", "problem, solver, output")


def test_bad_yaml(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("problem: [1, 2\n")
    assert_one_line_error(*run_cli(["solve", str(cfg)])[::2], "not valid YAML", "line")


def test_missing_config():
    assert_one_line_error(*run_cli(["solve", "no/such/config.yaml"])[::2], "does not exist")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--prior", "foo"], "'prior' must be one of"),
        (["--algorithm", "xyz"], "invalid choice"),
        (["--max-iter", "0"], "--max-iter"),
        (["--bogus"], "unrecognized arguments"),
        (["--prior", "missing_model.pt"], "checkpoint file"),
    ],
)
def test_other_usage_errors(argv, fragment):
    assert_one_line_error(*run_cli(["solve", *argv])[::2], fragment)


# ---------------------------------------------------------------------------- breakdown: exit 1
def test_divergence_is_reported_loudly(tmp_path):
    out_json = tmp_path / "r.json"
    code, _, err = run_cli(["solve", "--size", "32", "--step", "100", "--unsafe", "--max-iter", "100", "--quiet",
                            "--no-figure", "--out", str(tmp_path), "--json", str(out_json)])
    assert code == 1
    assert "FAILED" in err and "Traceback" not in err
    record = json.loads(out_json.read_text())
    assert record["status"] in ("diverged", "nan") and record["failed"] is True
    assert record["psnr"] is None and record["unsafe"] is True and record["reconstruction"] is None


# ---------------------------------------------------------------------------- priors and routing
def test_checkpoint_prior_path(tmp_path, monkeypatch):
    """--prior PATH.pt goes through priors' load_checkpoint and is wrapped in DenoiserPrior."""
    import priors
    from priors.denoisers import TVDenoiser

    calls = []

    def fake_loader(path, **kwargs):
        calls.append((Path(path), kwargs))
        return TVDenoiser()

    monkeypatch.setattr(priors, "load_checkpoint", fake_loader, raising=False)
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"placeholder")
    out_json = tmp_path / "r.json"
    code, _, err = run_cli(["solve", "--size", "32", "--prior", str(ckpt), "--lam", "default", "--max-iter", "3", "--quiet",
                            "--no-figure", "--out", str(tmp_path), "--json", str(out_json)])
    assert code == 0, err
    assert calls and calls[0][0] == ckpt and calls[0][1].get("in_channels") == 1
    record = json.loads(out_json.read_text())
    assert record["prior"] == "checkpoint:model.pt"
    assert record["denoiser_sigma"] == pytest.approx(0.01)  # default: the noise level
    assert record["lam"] == pytest.approx(0.01**2 / record["step"])  # implied weight sigma²/step
    assert record["guarantee"]["verdict"] == "guaranteed"  # TV denoiser: firmly nonexpansive


def test_solver_spec_validation():
    with pytest.raises(ValueError, match="valid keys"):
        SolverSpec.from_dict({"stepsize": 1.0})
    with pytest.raises(ValueError, match="denoiser_sigma"):
        SolverSpec(prior="tv", denoiser_sigma=0.1)
    assert SolverSpec(algorithm="FISTA").algorithm == "fista"


def test_missing_subcommand_module(monkeypatch):
    import pnp.cli as cli

    monkeypatch.setitem(cli.ROUTES, "compare", ("pnp._no_such_module", "main", "test"))
    assert_one_line_error(*run_cli(["compare", "x.yaml"])[::2], "'stablepnp compare' is not available")


def test_unknown_and_missing_command():
    assert_one_line_error(*run_cli(["frobnicate"])[::2], "unknown command 'frobnicate'")
    assert_one_line_error(*run_cli([])[::2], "choose a command")


# ---------------------------------------------------------------------------- folders, diagnostics, shipped priors
@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """Three 32x32 grey PNGs."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32]
    for i, name in enumerate(("a", "b", "c")):
        img = 0.5 + 0.3 * np.sin((xx + 3 * i) / 4.0) * np.cos(yy / 5.0) + 0.05 * rng.standard_normal((32, 32))
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(folder / f"{name}.png")
    return folder


def test_input_dir_writes_records_figures_and_summary(image_dir, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = run_cli(["solve", "--input-dir", str(image_dir), "--out", str(out), "--max-iter", "10",
                                 "--json", str(tmp_path / "summary.json"), "--batch-size", "3"])
    assert code == 0, err
    for name in ("a", "b", "c"):
        record = json.loads((out / f"{name}.json").read_text())
        assert record["psnr"] > record["psnr_observed"] and record["iterations"] == 10
        assert record["verdict"] == "guaranteed" and record["batch_size"] == 3  # equal shapes: one batch
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert np.load(out / f"{name}_reconstruction.npy").shape == (1, 32, 32)
    for summary in ("summary.md", "summary.csv", "summary.json"):
        assert (out / summary).is_file()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [Path(r["file"]).name for r in summary["images"]] == ["a.png", "b.png", "c.png"]
    assert summary["failed"] == []
    for fragment in ("a.png", "b.png", "c.png", "mean", "PSNR", "guaranteed (", "orward-backward",
                     "summary.md"):
        assert fragment in stdout
    assert "solve" in err  # the progress bar


def test_input_dir_observed(image_dir, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = run_cli(["solve", "--input-dir", str(image_dir), "--observed", "--out", str(out),
                                 "--max-iter", "3", "--no-figure", "--quiet"])
    assert code == 0, err
    assert stdout == ""
    record = json.loads((out / "a.json").read_text())
    assert record["observed_input"] is True and record["psnr"] is None
    assert not (out / "a.png").exists()


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--image", "camera"], "not allowed with argument"),
        (["--diagnostics"], "--diagnostics applies to a single image"),
        (["--unsafe"], "--unsafe is not available with --input-dir"),
    ],
)
def test_input_dir_usage_errors(image_dir, tmp_path, argv, fragment):
    assert_one_line_error(*run_cli(["solve", "--input-dir", str(image_dir), "--out", str(tmp_path), *argv])[::2],
                          fragment)


def test_folder_flags_need_input_dir():
    assert_one_line_error(*run_cli(["solve", "--observed"])[::2], "--observed applies to a folder")


def test_input_dir_missing_folder(tmp_path):
    assert_one_line_error(*run_cli(["solve", "--input-dir", str(tmp_path / "nope")])[::2], "is not a folder")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny certified averaged denoiser trained for 6 steps (about 2 s)."""
    import torch

    from priors.training import TrainConfig, train

    tmp = tmp_path_factory.mktemp("tiny_model")
    threads = torch.get_num_threads()
    config = {
        "arch": "averaged",
        "model": {"width": 4, "depth": 2},
        "data": {"patch_size": 16, "batch_size": 2, "dead_leaves_fraction": 1.0, "photos": False,
                 "pool_size": 2, "refresh_every": 1000},
        "noise": {"sigma_min": "5/255", "sigma_max": "55/255"},
        "optim": {"name": "adam", "lr": 1e-3, "steps": 6},
        "validation": {"every": 3, "size": 32},
        "checkpoint": {"dir": str(tmp / "run"), "every": 6},
        "seed": 0,
        "threads": 1,
    }
    try:
        summary = train(TrainConfig.from_dict(config), progress=False)
    finally:
        torch.set_num_threads(threads)
    return Path(summary["model"])


@pytest.fixture(scope="module")
def diagnostics_run(tiny_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("diag")
    code, out, err = run_cli(["solve", "--size", "32", "--prior", str(tiny_model), "--max-iter", "12", "--diagnostics",
                              "--out", str(tmp / "out"), "--json", str(tmp / "run.json")])
    return {"code": code, "out": out, "err": err, "json": tmp / "run.json", "dir": tmp / "out"}


def test_diagnostics_record_and_figure(diagnostics_run):
    assert diagnostics_run["code"] == 0, diagnostics_run["err"]
    record = json.loads(diagnostics_run["json"].read_text())
    diag = record["diagnostics"]
    assert diag["fixed_point_residual"] > 0 and diag["relative_fixed_point_residual"] > 0
    assert len(diag["step_lengths"]) == 12 and len(diag["envelope"]) == 12
    assert diag["steps_monotone"] is True and diag["envelope_holds"] is True  # averaged PnP-PGD
    assert diag["alpha"] == pytest.approx(record["guarantee"]["report"]["alpha"])  # relaxation 1
    lips = diag["local_lipschitz"]
    assert lips and all(0 < p["estimate"] <= 1.0 + 1e-3 for p in lips)  # certified nonexpansive
    assert diag["max_local_lipschitz"] == pytest.approx(max(p["estimate"] for p in lips))
    figure = Path(diag["figure"])
    assert figure.parent == Path(record["figure"]).parent and figure.name.endswith("_diagnostics.png")
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for fragment in ("diagnostics  fixed-point residual", "envelope holds", "local Lip(D)", "diag figure"):
        assert fragment in diagnostics_run["out"]


def test_verdict_line_states_alpha_and_step_bound(diagnostics_run):
    record = json.loads(diagnostics_run["json"].read_text())
    report = record["guarantee"]["report"]
    line = record["guarantee"]["line"]
    assert line.startswith("guaranteed (PnP forward-backward, averaged composition alpha = ")
    assert f"alpha = {report['alpha']:.4g}" in line
    assert "step 1.0 < 2/‖A‖² = 2.0" in line  # normalised circular blur: ‖A‖ = 1, default step 1/‖A‖²
    assert record["solver"]["relaxation"] == 1.0  # learned prior with PGD: no relaxation unless given
    assert f"guarantee    {line}" in diagnostics_run["out"]


def test_diagnostics_without_denoiser(tmp_path):
    out_json = tmp_path / "r.json"
    code, _, err = run_cli(["solve", "--prior", "tv", "--size", "32", "--max-iter", "5", "--algorithm", "fista",
                            "--diagnostics",
                            "--quiet", "--no-figure", "--out", str(tmp_path), "--json", str(out_json)])
    assert code == 0, err
    diag = json.loads(out_json.read_text())["diagnostics"]
    assert diag["envelope"] is None and diag["envelope_holds"] is None  # FISTA: no averaged-map envelope
    assert diag["local_lipschitz"] == [] and diag["figure"] is None


def test_shipped_prior_missing_weights(image_dir, tmp_path, monkeypatch):
    import priors.pretrained

    monkeypatch.setattr(priors.pretrained, "WEIGHTS_DIR", tmp_path)  # empty: no shipped model installed
    assert_one_line_error(*run_cli(["solve", "--size", "32", "--prior", "averaged"])[::2],
                          "stablepnp train priors/configs/averaged_gray.yaml", "not installed")
    assert_one_line_error(*run_cli(["solve", "--input-dir", str(image_dir), "--out", str(tmp_path / "o"),
                                    "--prior", "averaged"])[::2],
                          "stablepnp train priors/configs/averaged_gray.yaml")
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_shipped_prior_by_name(tiny_model, tmp_path, monkeypatch):
    import shutil

    import priors.pretrained

    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copy(tiny_model, weights / "averaged_gray.pt")
    monkeypatch.setattr(priors.pretrained, "WEIGHTS_DIR", weights)
    out_json = tmp_path / "r.json"
    code, _, err = run_cli(["solve", "--size", "32", "--prior", "averaged", "--max-iter", "3", "--quiet",
                            "--no-figure", "--out", str(tmp_path), "--json", str(out_json)])
    assert code == 0, err
    record = json.loads(out_json.read_text())
    assert record["prior"] == "averaged" and record["solver"]["relaxation"] == 1.0
    assert record["guarantee"]["verdict"] == "guaranteed"
    assert SolverSpec(prior="averaged_gray").is_shipped  # any installed model name is accepted


def test_no_argument_solve_is_the_guaranteed_convex_ridge_problem(tmp_path):
    """`stablepnp solve` without a prior solves 1/2||Ax - y||^2 + lam R(x) with the shipped convex ridge
    regularizer by gradient steps on the smooth sum, and names the theorem."""
    out_json = tmp_path / "r.json"
    code, out, err = run_cli(["solve", "--size", "48", "--max-iter", "20", "--no-figure", "--quiet",
                              "--out", str(tmp_path), "--json", str(out_json)])
    assert code == 0, err
    record = json.loads(out_json.read_text())
    assert record["prior"] == "ridge" and record["algorithm"] == "pgd"
    g = record["guarantee"]
    assert g["verdict"] == "guaranteed" and "forward-backward" in g["theorem"].lower()
    assert record["psnr"] > record["psnr_observed"]


def test_solve_with_the_shipped_averaged_prior_is_certified_pnp(tmp_path):
    """`stablepnp solve --prior averaged` runs PnP with the shipped averaged denoiser and says why it converges."""
    out_json = tmp_path / "r.json"
    code, out, err = run_cli(["solve", "--size", "48", "--max-iter", "4", "--no-figure", "--quiet", "--prior", "averaged",
                              "--out", str(tmp_path), "--json", str(out_json)])
    assert code == 0, err
    record = json.loads(out_json.read_text())
    assert record["prior"] == "averaged" and record["algorithm"] == "pgd"
    g = record["guarantee"]
    assert g["verdict"] == "guaranteed" and "averaged" in g["theorem"].lower() + " ".join(map(str, g.get("hypotheses", [])))
    assert record["denoiser_sigma"] > 0
    assert record["psnr"] > record["psnr_observed"]


def test_shipped_prior_default_level_uses_the_tuned_scale(tiny_model, tmp_path, monkeypatch):
    import shutil

    import dataclasses

    from pnp.registry import PRIORS
    import priors.pretrained

    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copy(tiny_model, weights / "averaged_gray.pt")
    monkeypatch.setattr(priors.pretrained, "WEIGHTS_DIR", weights)
    monkeypatch.setitem(PRIORS, "averaged", dataclasses.replace(PRIORS["averaged"], sigma_scale=3.0))
    out_json = tmp_path / "r.json"
    code, _, err = run_cli(["solve", "--prior", "averaged", "--lam", "default", "--size", "32", "--noise", "0.02",
                            "--max-iter", "2", "--quiet",
                            "--no-figure", "--out", str(tmp_path), "--json", str(out_json)])
    assert code == 0, err
    record = json.loads(out_json.read_text())
    assert record["denoiser_sigma"] == pytest.approx(0.06)
    assert record["denoiser_strength"] == 1.0
    assert "tuned for PnP" in record["lam_source"]
    full_alpha = record["guarantee"]["report"]["alpha"]
    # below the trained floor (5/255): the denoiser runs there, relaxed; the guarantee follows
    monkeypatch.setitem(PRIORS, "averaged", dataclasses.replace(PRIORS["averaged"], sigma_scale=0.5))
    code, _, err = run_cli(["solve", "--prior", "averaged", "--lam", "default", "--size", "32", "--noise", "0.02",
                            "--max-iter", "2", "--quiet",
                            "--no-figure", "--out", str(tmp_path), "--json", str(out_json)])
    assert code == 0, err
    record = json.loads(out_json.read_text())
    assert record["denoiser_sigma"] == pytest.approx(0.01)
    assert record["denoiser_strength"] == pytest.approx(0.01 / (5 / 255))
    assert "relaxed" in record["lam_source"] and record["guarantee"]["verdict"] == "guaranteed"
    assert record["guarantee"]["report"]["alpha"] < full_alpha
