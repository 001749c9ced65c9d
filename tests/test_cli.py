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
        "solve", "--size", "64", "--max-iter", "15", "--out", str(tmp / "out"), "--json", str(tmp / "run.json"),
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
    code, _, err = run_cli(["solve", "--size", "32", "--prior", str(ckpt), "--max-iter", "3", "--quiet",
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
