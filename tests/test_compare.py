"""The comparison suite, the convergence diagnostics and batch solving (small images, a tiny learned model)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pnp.compare import CompareConfig, main, run_suite

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from priors.training import TrainConfig, train

    tmp = tmp_path_factory.mktemp("tiny_model")
    cfg = {
        "arch": "averaged",
        "model": {"width": 4, "depth": 2},
        "data": {"patch_size": 16, "batch_size": 2, "dead_leaves_fraction": 1.0, "photos": False,
                 "pool_size": 2, "refresh_every": 1000},
        "noise": {"sigma_min": "5/255", "sigma_max": "55/255"},
        "optim": {"name": "adam", "lr": 1e-3, "steps": 4},
        "validation": {"every": 4, "size": 32},
        "checkpoint": {"dir": str(tmp / "run"), "every": 4},
        "seed": 0,
        "threads": 1,
    }
    return Path(train(TrainConfig.from_dict(cfg), progress=False)["model"])


def _tiny_config(model: Path) -> dict:
    return {
        "name": "test suite",
        "images": ["camera", "astronaut"],
        "size": 32,
        "kernels": ["gaussian:1.6"],
        "noise": [0.03],
        "solver": {"max_iter": 30, "tol": 1e-4},
        "tuning": {"grid_points": 2, "refine_steps": 0, "max_iter": 15},
        "priors": [
            {"prior": "tv", "algorithms": ["fista"]},
            {"prior": "averaged", "path": str(model), "algorithms": ["pgd"], "max_iter": 20},
        ],
    }


def test_tiny_suite_outputs_and_resume(tiny_model, tmp_path):
    cfg = CompareConfig.from_dict(_tiny_config(tiny_model))
    out = tmp_path / "out"
    rep = run_suite(cfg, out, progress=False)
    assert rep["counts"] == {"computed": 4, "reused": 0, "failed": 0, "tuning_runs": rep["counts"]["tuning_runs"]}
    for name in ("results.md", "results.csv", "results.json", "tuning.json", "recon_grid.png", "convergence.png"):
        assert (out / name).is_file(), name
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 5 and "guarantee" in rows[0]
    data = json.loads((out / "results.json").read_text())
    methods = {c["method"] for c in data["cells"]}
    assert methods == {"TV-FISTA", "averaged-PGD"}
    for c in data["cells"]:
        assert math.isfinite(c["psnr"]) and 0 < c["ssim"] <= 1
        assert c["guarantee"] is True and c["verdict"] == "guaranteed"  # TV convex; tiny model certified averaged
    tuned = data["tuning"]["averaged-PGD|0.03"]
    lo, hi = (5 / 255, 55 / 255)
    # never above the trained range; below it, the denoiser runs relaxed at the floor
    assert tuned["param"] == "sigma" and 0.02 * lo <= tuned["value"] <= hi
    lvl = tuned["level"]
    if tuned["value"] < lo:
        assert lvl["sigma"] == lo and math.isclose(lvl["strength"], tuned["value"] / lo)
    else:
        assert lvl == {"sigma": tuned["value"], "strength": 1.0}
    for c in data["cells"]:
        if c["method"] == "averaged-PGD":
            assert c["denoiser_level"] == lvl
    md = (out / "results.md").read_text()
    assert "| TV-FISTA |" in md and "Tuned parameters" in md and "averaged-PGD - TV-FISTA: mean paired PSNR gap" in md
    assert "target" not in md.lower() and [g["reference"] for g in data["paired_gaps"]] == ["TV-FISTA"]

    # rerun: every cell and every tuning run is reused, nothing recomputed, files untouched
    cell_files = sorted((out / "cells").glob("*.json"))
    mtimes = [p.stat().st_mtime_ns for p in cell_files]
    rep2 = run_suite(cfg, out, progress=False, figures=False)
    assert rep2["counts"]["computed"] == 0 and rep2["counts"]["reused"] == 4 and rep2["counts"]["tuning_runs"] == 0
    assert [p.stat().st_mtime_ns for p in cell_files] == mtimes
    assert [c["psnr"] for c in rep2["cells"]] == [c["psnr"] for c in data["cells"]]


def test_bad_config_key_is_one_line(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"unknown key 'colour' in compare config; valid keys: name, out, images"):
        CompareConfig.from_dict({"priors": ["tv"], "colour": True})
    with pytest.raises(ValueError, match=r"unknown key 'lamda' in priors\[0\]; valid keys: prior, label"):
        CompareConfig.from_dict({"priors": [{"prior": "tv", "lamda": 1}]})
    with pytest.raises(ValueError, match="test image"):
        CompareConfig.from_dict({"priors": ["tv"], "tuning": {"image": "camera"}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("priors: [tv]\nkernal: gaussian:2\n")
    assert main([str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown key 'kernal'" in err[0] and "kernels" in err[0]


def test_only_runs_a_subset_whose_cells_the_full_suite_reuses(tmp_path, capsys):
    import yaml

    cfg = {"images": ["camera", "astronaut"], "size": 24, "kernels": ["gaussian:1.6"], "noise": [0.03],
           "solver": {"max_iter": 10, "tol": 1e-4}, "tuning": {"grid_points": 2, "refine_steps": 0, "max_iter": 5},
           "priors": [{"prior": "tv", "algorithms": ["fista"]}, {"prior": "tikhonov", "algorithms": ["pgd"]}]}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    common = [str(path), "--out", str(out), "--no-figures", "--no-progress"]
    assert main(common + ["--only", "Tikhonov"]) == 0
    rep = json.loads((out / "results.json").read_text())
    assert set(rep["summary"]) == {"tikhonov-PGD"} and rep["counts"]["computed"] == 2
    assert main(common) == 0
    rep = json.loads((out / "results.json").read_text())
    assert set(rep["summary"]) == {"TV-FISTA", "tikhonov-PGD"}
    assert rep["counts"]["reused"] == 2 and rep["counts"]["computed"] == 2
    capsys.readouterr()
    assert main(common + ["--only", "tv,nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no prior entry named nope" in err[0] and "tikhonov" in err[0]


def test_deepinv_download_refused_in_one_line():
    with pytest.raises(ValueError, match="downloaded"):
        run_suite(CompareConfig.from_dict({"images": ["camera"], "size": 16, "priors": ["deepinv:DRUNet"]}),
                  "/tmp/never_written_compare", progress=False)


def test_convergence_diagnostics_tiny_pnp(tiny_model, tmp_path):
    from operators import Blur, Gaussian, kernels
    from pnp import PGD
    from pnp.convergence import plot_diagnostics, run_with_diagnostics
    from priors import DenoiserPrior, load_checkpoint
    from problems import InverseProblem, load_image

    den = load_checkpoint(tiny_model)
    truth = load_image("camera", size=24)
    problem = InverseProblem.simulate(truth, Blur(kernels.gaussian(1.0)), Gaussian(0.03), seed=0)
    alg = PGD(problem, DenoiserPrior(den, sigma=0.05))
    result, diag = run_with_diagnostics(alg, max_iter=25, tol=None, lipschitz_points=3, power_iters=5)
    assert result.iterations == 25 and len(diag.step_lengths) == 25
    assert result.diagnostics["convergence"] is diag
    # averaged PnP-PGD: an envelope exists, the steps never increase and stay under the bound
    assert diag.alpha is not None and 0 < diag.alpha < 1 and diag.envelope is not None
    assert diag.steps_monotone and diag.envelope_violations == 0
    assert math.isfinite(diag.fixed_point_residual) and diag.fixed_point_residual <= diag.step_lengths[-1] * 1.01
    # the local Lipschitz estimates along the iterates respect the certificate (Lip <= 1)
    assert len(diag.local_lipschitz) >= 2
    assert all(0 < p.estimate <= 1.0 + 1e-3 for p in diag.local_lipschitz)
    d = diag.to_dict()
    assert d["max_local_lipschitz"] == diag.max_local_lipschitz and json.dumps(d)
    assert plot_diagnostics({"averaged": diag}, tmp_path / "diag.png", psnr={"averaged": result.history["psnr"]}).is_file()


def test_convergence_diagnostics_no_certificate_has_no_envelope():
    from operators import Blur, kernels
    from operators.fidelity import L2Fidelity
    from pnp import PGD
    from pnp.convergence import run_with_diagnostics
    from priors import DenoiserPrior, DnCNN

    A = Blur(kernels.gaussian(1.0))
    y = A(torch.rand(1, 1, 16, 16))
    den = DnCNN(width=4, depth=2)
    den.certificate = lambda: None  # an uncertified denoiser
    _, diag = run_with_diagnostics(PGD(L2Fidelity(A, y), DenoiserPrior(den, sigma=0.05)), max_iter=5,
                                   lipschitz_points=1, power_iters=3)
    assert diag.envelope is None and diag.alpha is None and "no envelope" in diag.theory
    assert len(diag.local_lipschitz) == 1


def test_solve_folder(tmp_path):
    from skimage.io import imsave

    from pnp.batch import solve_folder

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i, shape in enumerate([(24, 24), (24, 24), (20, 28)]):
        img = (rng.random(shape) * 255).astype(np.uint8)
        imsave(src / f"img{i}.png", img, check_contrast=False)
    out = tmp_path / "out"
    summary = solve_folder(src, out, prior="tv", noise=0.02, max_iter=20, progress=False, batch_size=8)
    recs = summary["images"]
    assert len(recs) == 3
    assert [r["batch_size"] for r in recs] == [2, 2, 1]  # the two 24x24 images were solved together
    for r in recs:
        stem = Path(r["file"]).stem
        assert (out / f"{stem}.json").is_file() and (out / f"{stem}.png").is_file()
        assert math.isfinite(r["psnr"]) and r["verdict"] == "guaranteed"
    assert (out / "summary.md").is_file() and (out / "summary.csv").is_file() and (out / "summary.json").is_file()
    # observations as given: no truth, no PSNR
    obs = solve_folder(src, tmp_path / "obs", observed=True, lam=1e-3, max_iter=5, figures=False, progress=False)
    assert all(r["psnr"] is None for r in obs["images"])


@pytest.mark.parametrize("extensions", [0, 3])
def test_tuning_walks_past_an_edge_only_as_far_as_allowed(extensions):
    from pnp.compare import build_prior_handle, tune

    # a range far below TV's useful weights: the best point sits on the upper edge
    cfg = CompareConfig.from_dict({
        "images": ["camera"], "kernels": ["gaussian:1.6"], "noise": [0.05], "size": 32,
        "solver": {"max_iter": 15, "tol": 1e-4},
        "tuning": {"grid_points": 3, "refine_steps": 0, "max_iter": 15, "edge_extensions": extensions},
        "priors": [{"prior": "tv", "algorithms": ["pgd"], "range": [1e-6, 4e-6]}],
    })
    t = tune(build_prior_handle(cfg.priors[0]), "pgd", 0.05, cfg)
    assert len(t["evaluations"]) == 3 + extensions
    if extensions == 0:
        assert t["value"] == pytest.approx(4e-6) and t["at_boundary"]
    else:
        assert t["value"] > 4e-6 * 1.5  # it moved past the original edge
