"""Hostile but fair inputs to the ``stablepnp`` command line, driven in-process through ``pnp.cli.main``.

Every case ends either with exit code 2 and one line ``stablepnp...: error: ...`` naming the field
(and a fix), or with a correct result; no traceback ever, and no "guaranteed" verdict on a run
whose hypotheses failed. Images are 32x32 and runs a few iterations long, so the module stays fast.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

from pnp.cli import main

BASE = ["--size", "32", "--prior", "tv", "--max-iter", "5", "--no-figure", "--quiet"]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def assert_refused(code: int, err: str, *fragments: str) -> None:
    """Exit 2, every stderr line from stablepnp, the last one the error naming ``fragments``."""
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and all(line.startswith("stablepnp") for line in lines), err
    assert ": error: " in lines[-1], err
    for fragment in fragments:
        assert fragment in lines[-1], f"{fragment!r} not in {lines[-1]!r}"


def assert_honest(record: dict) -> None:
    """A "guaranteed" verdict only with every hypothesis holding and a run that did not break down."""
    guarantee = record["guarantee"]
    if guarantee["verdict"] == "guaranteed":
        assert record["status"] not in ("diverged", "nan"), record["status"]
        assert all(h["holds"] for h in guarantee["report"]["hypotheses"]), guarantee["report"]["hypotheses"]
        missed = (record.get("inexact_prox") or {}).get("violation")
        assert missed is None, missed
    else:
        assert guarantee["report"]["reason"] or guarantee["verdict"] == "no guarantee"


def solve(tmp: Path, *extra: str, base: list[str] = BASE) -> tuple[int, str, str, dict | None]:
    json_path = tmp / "run.json"
    if json_path.exists():
        json_path.unlink()
    code, out, err = run_cli(["solve", *base, "--out", str(tmp / "out"), "--json", str(json_path), *extra])
    assert "Traceback" not in err, err
    record = json.loads(json_path.read_text()) if json_path.exists() else None
    return code, out, err, record


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def files(tmp) -> dict[str, Path]:
    """Files of every wrong kind."""
    d = tmp / "files"
    d.mkdir()
    made = {
        "missing_png": d / "missing.png", "missing_npy": d / "missing.npy", "missing_pt": d / "missing.pt",
        "folder": d / "a_folder", "folder_pt": d / "folder.pt", "text_png": d / "text.png",
        "text_npy": d / "text.npy", "text_pt": d / "text.pt", "empty_png": d / "empty.png",
        "pickle_npy": d / "pickled.npy", "nan_npy": d / "nan.npy", "a_file": d / "a_file",
        "empty_yaml": d / "empty.yaml", "dup_yaml": d / "dup.yaml", "list_yaml": d / "list.yaml",
        "bad_yaml": d / "bad.yaml", "binary_yaml": d / "binary.yaml", "unknown_yaml": d / "unknown.yaml",
        "tiny_step_yaml": d / "tiny_step.yaml", "huge_lam_yaml": d / "huge_lam.yaml",
    }
    made["folder"].mkdir()
    made["folder_pt"].mkdir()
    for key in ("text_png", "text_npy", "text_pt"):
        made[key].write_text("this is not what the suffix says\n")
    made["empty_png"].write_bytes(b"")
    made["a_file"].write_text("x")
    np.save(made["pickle_npy"], np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.save(made["nan_npy"], np.full((5, 5), np.nan))
    made["empty_yaml"].write_text("")
    made["dup_yaml"].write_text("solver:\n  prior: tv\n  max_iter: 5\n  max_iter: 50\n")
    made["list_yaml"].write_text("- a\n- b\n")
    made["bad_yaml"].write_text("solver: {prior: tv\n")
    made["binary_yaml"].write_bytes(bytes(range(256)))
    made["unknown_yaml"].write_text("solver:\n  priors: tv\n")
    made["tiny_step_yaml"].write_text("solver:\n  prior: tv\n  step: 1.0e-300\n")
    made["huge_lam_yaml"].write_text("solver:\n  prior: tv\n  lam: 1.0e+300\n  max_iter: 5\n")
    return made


def _readonly_dir(tmp: Path) -> Path:
    """A folder nobody can create files in (a chmod-ed folder, or /proc when running as root)."""
    d = tmp / "readonly"
    d.mkdir(exist_ok=True)
    d.chmod(0o555)
    try:
        with tempfile.NamedTemporaryFile(dir=d):
            pass
    except OSError:
        return d
    if Path("/proc").is_dir():
        return Path("/proc")
    pytest.skip("no read-only folder available (root on a system without /proc)")


# ---------------------------------------------------------------------------- numeric flags
REFUSED_NUMBERS = [
    ("--size", "0"), ("--size", "-3"), ("--size", "abc"), ("--size", "100000"),
    ("--noise", "-1"), ("--noise", "nan"), ("--noise", "inf"), ("--noise", "1e300"),
    ("--lam", "0"), ("--lam", "-1"), ("--lam", "nan"), ("--lam", "inf"),
    ("--step", "0"), ("--step", "nan"), ("--step", "1e-300"), ("--step", "1e-50"), ("--step", "1e300"),
    ("--relaxation", "0"), ("--relaxation", "nan"), ("--relaxation", "1e-300"), ("--relaxation", "1e300"),
    ("--max-iter", "0"), ("--max-iter", "-1"), ("--max-iter", "1.5"),
    ("--tol", "-1"), ("--tol", "nan"), ("--tol", "1e300"),
    ("--time-limit", "0"), ("--time-limit", "-1"), ("--time-limit", "inf"),
    ("--seed", "-1"), ("--seed", str(2**64)),
    ("--threads", "0"), ("--threads", "100000"), ("--threads", "1024"),
    ("--batch-size", "0"), ("--batch-size", "2"),
    ("--denoiser-sigma", "0"), ("--denoiser-sigma", "0.1"),
]


@pytest.mark.parametrize("flag,value", REFUSED_NUMBERS, ids=[f"{f}={v}" for f, v in REFUSED_NUMBERS])
def test_out_of_range_numbers_are_refused(tmp, flag, value):
    code, _, err, record = solve(tmp, f"{flag}={value}")
    assert record is None
    assert_refused(code, err)
    last = err.strip().splitlines()[-1]
    assert flag in last or flag.lstrip("-").replace("-", "_") in last, last  # the field is named


@pytest.mark.parametrize("extra", [["--algorithm", "fista", "--step", "1e-40"], ["--algorithm", "admm", "--step", "1e300"],
                                   ["--algorithm", "pdhg", "--step", "1e-300"], ["--algorithm", "drs", "--step", "1e-300"]],
                         ids=["fista-1e-40", "admm-1e300", "pdhg-1e-300", "drs-1e-300"])
def test_extreme_steps_of_every_algorithm_are_refused(tmp, extra):
    code, _, err, _ = solve(tmp, *extra)
    assert_refused(code, err, "--step")


@pytest.mark.parametrize("lam", ["1e-300", "1e-45"])
def test_negligible_weight_solves_least_squares(tmp, lam):
    code, _, err, record = solve(tmp, "--lam", lam)
    assert code == 0, err
    assert_honest(record)
    assert record["guarantee"]["verdict"] == "guaranteed"


@pytest.mark.parametrize("lam", ["1e3", "1e6", "1e30", "1e300"])
def test_huge_tv_weight_gives_the_constant_minimiser(tmp, lam):
    """The issue's case: a huge TV weight used to print "guaranteed" over pixels in [-5.5, 7.1]."""
    code, _, err, record = solve(tmp, "--lam", lam)
    assert code == 0, err
    assert_honest(record)
    x = np.load(record["reconstruction"])
    assert float(x.max() - x.min()) < 1e-5  # the minimiser of 1/2|Ax - y|^2 + lam TV is a constant
    assert record["guarantee"]["verdict"] == "guaranteed"


def test_huge_weight_in_a_config_file(tmp, files):
    code, _, err, record = solve(tmp, str(files["huge_lam_yaml"]), base=["--size", "32", "--no-figure", "--quiet"])
    assert code == 0, err
    assert_honest(record)


def test_tiny_step_in_a_config_file_is_refused(tmp, files):
    code, _, err, _ = solve(tmp, str(files["tiny_step_yaml"]), base=["--size", "32", "--no-figure", "--quiet"])
    assert_refused(code, err, "'step'")


def test_noise_far_outside_the_trained_range_is_said(tmp):
    code, out, err, record = solve(tmp, "--noise", "1e6", "--prior", "averaged",
                                   base=["--size", "32", "--max-iter", "2", "--no-figure"])
    assert code == 0, err
    assert_honest(record)
    text = " ".join(record["warnings"])
    assert "trained range" in text and "clamped" in text
    assert "warning      denoiser level" in out and "stablepnp: warning: noise level" in err


@pytest.mark.parametrize("extra", [["--prior", "averaged", "--denoiser-sigma", "1e300"],
                                   ["--prior", "averaged", "--lam", "1e300"]], ids=["sigma", "lam"])
def test_overflowing_denoiser_level_is_refused(tmp, extra):
    code, _, err, _ = solve(tmp, *extra, base=["--size", "32", "--max-iter", "2", "--no-figure", "--quiet"])
    assert_refused(code, err, "--denoiser-sigma", "--lam")


def test_unsafe_divergence_is_reported_not_guaranteed(tmp):
    code, _, err, record = solve(tmp, "--step", "3", "--unsafe", "--accelerate", "none", "--max-iter", "400",
                                 "--kernel", "box:1")
    assert code == 1, err
    assert record["status"] in ("diverged", "nan") and record["guarantee"]["verdict"] != "guaranteed"
    assert "Traceback" not in err and "drop --unsafe" in err


# ---------------------------------------------------------------------------- path arguments
PATH_CASES = [
    ("--image", "missing_png", "does not exist"), ("--image", "folder", "not a regular file"),
    ("--image", "text_png", "cannot read image file"), ("--image", "empty_png", "cannot read image file"),
    ("--image", "pickle_npy", "pickled.npy"), ("--image", "nan_npy", "NaN"),
    ("--kernel", "missing_npy", "missing.npy"), ("--kernel", "folder", "is a folder"),
    ("--kernel", "text_png", "not a readable PNG image"), ("--kernel", "text_npy", "not a NumPy .npy file"),
    ("--kernel", "pickle_npy", "pickled.npy"), ("--kernel", "nan_npy", "kernel"),
    ("--prior", "missing_pt", "does not exist"), ("--prior", "text_pt", "text.pt"),
    ("--prior", "folder_pt", "is a folder"),
    ("--out", "a_file", "--out"), ("--json", "folder", "--json"),
]


@pytest.mark.parametrize("flag,key,fragment", PATH_CASES, ids=[f"{f}={k}" for f, k, _ in PATH_CASES])
def test_wrong_files_are_refused(tmp, files, flag, key, fragment):
    if flag == "--image":
        extra = ["--image", str(files[key])]
    elif flag == "--out":
        extra = ["--out", str(files[key])]
    else:
        extra = [flag, str(files[key])]
    code, _, err, _ = solve(tmp, *extra)
    assert_refused(code, err, fragment)
    if "pickled" in fragment:
        assert "never loaded" in err or "unsupported dtype" in err or "pickle" in err.lower()
    assert "pip install" not in err


def test_unwritable_outputs_are_refused_before_any_work(tmp):
    ro = _readonly_dir(tmp)
    for extra, field in ((["--out", str(ro / "sub")], "--out"), (["--json", str(ro / "run.json")], "--json")):
        code, out, err = run_cli(["solve", *BASE, "--out", str(tmp / "out2"), *extra])
        assert_refused(code, err, field)
        assert out == ""  # nothing ran


CONFIG_CASES = [("missing", "does not exist"), ("folder", "is a folder"), ("dup_yaml", "duplicate key 'max_iter'"),
                ("list_yaml", "mapping"), ("bad_yaml", "not valid YAML"), ("binary_yaml", "config file"),
                ("unknown_yaml", "valid keys")]


@pytest.mark.parametrize("key,fragment", CONFIG_CASES, ids=[k for k, _ in CONFIG_CASES])
def test_bad_solve_configs_are_refused(tmp, files, key, fragment):
    path = files["folder"] / "nope.yaml" if key == "missing" else files[key]
    code, _, err = run_cli(["solve", str(path), "--out", str(tmp / "out3"), "--quiet"])
    assert "Traceback" not in err
    assert_refused(code, err, fragment if key != "folder" else "")


# ---------------------------------------------------------------------------- the other commands
def test_train_refuses_empty_and_duplicate_configs(files):
    code, _, err = run_cli(["train", str(files["empty_yaml"])])
    assert_refused(code, err, "is empty")
    code, _, err = run_cli(["train", str(files["dup_yaml"])])
    assert_refused(code, err, "duplicate key 'max_iter'")


def test_certify_names_a_folder_as_a_folder(files):
    code, _, err = run_cli(["certify", str(files["folder"]), "--no-adversarial"])
    assert_refused(code, err, "is a folder")
    assert "does not exist" not in err
    code, _, err = run_cli(["certify", str(files["text_pt"]), "--no-adversarial"])
    assert_refused(code, err, "text.pt")


def test_compare_refuses_duplicate_keys_before_creating_its_folder(tmp, files):
    out = tmp / "compare_out"
    code, _, err = run_cli(["compare", str(files["dup_yaml"]), "--out", str(out), "--no-progress"])
    assert_refused(code, err, "duplicate key")
    assert not out.exists()


def test_compare_refuses_a_file_as_its_output_folder(files):
    code, _, err = run_cli(["compare", "tiny", "--out", str(files["a_file"]), "--no-progress"])
    assert_refused(code, err, "--out")


def test_robustness_checks_the_data_before_creating_its_folder(tmp):
    config = Path(__file__).resolve().parents[1] / "priors" / "robustness" / "configs" / "tiny.yaml"
    out = tmp / "robustness_out"
    code, _, err = run_cli(["robustness", str(config), "--data-dir", str(tmp / "no_data"), "--output-dir", str(out),
                            "--no-progress"])
    assert_refused(code, err, "not found")
    assert not out.exists()


# ---------------------------------------------------------------------------- sizes before allocation
@pytest.mark.parametrize("spec", ["box:100000", "disk:1e9", "motion:1e7:0", "shake:1:99999", "gaussian:1e6"])
def test_huge_kernels_are_refused_before_allocation(tmp, spec):
    code, _, err, record = solve(tmp, "--kernel", spec)
    assert record is None
    assert_refused(code, err, "limit")


# ---------------------------------------------------------------------------- training values
@pytest.mark.parametrize("section, text, fragment", [
    ("data", "patch_size: 100000", "patch_size"), ("data", "refresh_every: 0", "refresh_every"),
    ("data", "pool_size: 0", "pool_size"), ("optim", "lr: 1.0e300", "optim.lr"), ("optim", "lr: .inf", "optim.lr"),
    ("optim", "grad_clip: .nan", "grad_clip"), ("optim", "grad_clip: -1", "grad_clip"),
    ("noise", "sigma_max: .inf", "sigma_max"), ("validation", "size: 100000", "validation.size"),
])
def test_out_of_range_training_values_are_refused_in_one_line(tmp, section, text, fragment):
    from priors.training import main as train_main

    base = {"data": "photos: false, dead_leaves_fraction: 1.0", "optim": "steps: 2", "noise": "sigma_max: 0.2",
            "validation": "every: 1"}
    base[section] = base[section] + ", " + text
    cfg = tmp / "cfg.yaml"
    cfg.write_text("arch: averaged\nmodel: {width: 4, depth: 2}\n"
                   + "".join(f"{k}: {{{v}}}\n" for k, v in base.items())
                   + f"checkpoint: {{dir: {tmp / 'run'}}}\n")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = train_main([str(cfg), "--quiet"])
    lines = [x for x in err.getvalue().splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and fragment in lines[0], err.getvalue()
    assert not (tmp / "run").exists()
