"""Training: strict configs, exact resumption, signal checkpoints, DDP on 2 CPU processes, model files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from priors.pretrained import certificate_rtol, certify_main, load_checkpoint
from priors.spectral import _norms as spectral_norms
from priors.training import TrainConfig, build_model, load_training_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]


def tiny(tmp_path: Path, **over) -> dict:
    d = {
        "arch": "averaged",
        "model": {"width": 4, "depth": 2},
        "data": {"patch_size": 16, "batch_size": 2, "dead_leaves_fraction": 1.0, "photos": False,
                 "pool_size": 2, "refresh_every": 1000},
        "noise": {"sigma_min": "5/255", "sigma_max": "55/255"},
        "optim": {"name": "adam", "lr": 1e-3, "steps": 6},
        "validation": {"every": 3, "size": 32},
        "checkpoint": {"dir": str(tmp_path / "run"), "every": 2},
        "seed": 0,
        "threads": 1,
    }
    for k, v in over.items():
        d[k] = {**d[k], **v} if isinstance(v, dict) and isinstance(d.get(k), dict) else v
    return d


def test_training_writes_model_file_with_certificate(tmp_path):
    summary = train(TrainConfig.from_dict(tiny(tmp_path)), progress=False)
    assert summary["finished"] and Path(summary["model"]).is_file()
    model = load_checkpoint(summary["model"])
    cert = model.stored_certificate
    assert cert["lipschitz"] <= 1.0 and 0 < cert["alpha"] < 1
    log = [json.loads(l) for l in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 6 and "val_psnr" in log[2]


def test_resume_continues_exactly(tmp_path):
    full = train(TrainConfig.from_dict(tiny(tmp_path / "a")), progress=False)
    part = TrainConfig.from_dict(tiny(tmp_path / "b"))
    train(part, progress=False, max_steps=3)  # killed after 3 steps (checkpoint every 2 and at stop)
    assert load_training_checkpoint(tmp_path / "b" / "run" / "checkpoint.pt")["step"] == 3
    train(part, resume=True, progress=False)
    a = torch.load(full["model"], weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "run" / "model.pt", weights_only=True)["state_dict"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_sigterm_checkpoints_and_stops(tmp_path, monkeypatch):
    from priors import data

    calls = {"n": 0}
    original = data.PatchSampler.sample

    def sample(self):
        calls["n"] += 1
        if calls["n"] == 2:
            signal.raise_signal(signal.SIGTERM)
        return original(self)

    monkeypatch.setattr(data.PatchSampler, "sample", sample)
    summary = train(TrainConfig.from_dict(tiny(tmp_path, optim={"steps": 50})), progress=False)
    assert summary["interrupted"] and summary["step"] == 2
    assert load_training_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 2


@pytest.mark.parametrize(
    "over,match",
    [
        ({"optimizer": {}}, "unknown key 'optimizer'"),
        ({"optim": {"lr": -1}}, "optim.lr"),
        ({"optim": {"schedule": "linear"}}, "optim.schedule"),
        ({"noise": {"sigma_min": "a/b"}}, "noise.sigma_min"),
        ({"data": {"patchsize": 3}}, "unknown key 'patchsize'"),
        ({"model": {"depht": 3}}, "unknown key 'depht'"),
        ({"arch": "unet"}, "arch"),
        ({"model": [1, 2]}, "model must be a mapping"),
        ({"model": {"width": 4, "depth": 2, "sigma_range": [0.5]}}, "model.sigma_range must be a pair"),
        ({"model": {"width": 4.5}}, "model.width must be an integer"),
        ({"model": {"width": 4, "depth": 2, "sigma_range": ["5/255", "75/255"]}}, "differs from the training noise range"),
        ({"seed": 1.5}, "seed must be a non-negative integer"),
        ({"threads": "two"}, "threads must be a non-negative integer"),
        ({"optim": {"schedule": "step", "milestones": [1.5]}}, "milestones must be positive integer"),
        ({"validation": {"sigmas": [2.0]}}, "validation.sigmas"),
        ({"noise": {"sampling": "gamma"}}, "noise.sampling 'gamma' unknown"),
        ({"noise": {"sigma_min": 0, "sampling": "log"}}, "noise.sampling log needs noise.sigma_min > 0"),
    ],
)
def test_bad_training_config_one_line_error(tmp_path, over, match):
    with pytest.raises(ValueError, match=match) as info:
        TrainConfig.from_dict(tiny(tmp_path, **over))
    assert "\n" not in str(info.value)


def test_log_noise_sampling_spreads_the_levels_evenly_in_log_scale():
    from priors.training_loop import noisy_batch
    gen = torch.Generator().manual_seed(0)
    lo, hi = 0.5 / 255, 55 / 255
    sig, _ = noisy_batch(torch.zeros(20000, 1, 1, 1), lo, hi, gen, "log")
    assert float(sig.min()) >= lo and float(sig.max()) <= hi
    # log sigma is uniform: each third of [log lo, log hi] holds a third of the draws (uniform draws
    # would put under 1 % of them below 1.1/255)
    t = (torch.log(sig) - np.log(lo)) / (np.log(hi) - np.log(lo))
    for k in range(3):
        share = float(((t >= k / 3) & (t < (k + 1) / 3)).float().mean())
        assert abs(share - 1 / 3) < 0.02
    sig_u, _ = noisy_batch(torch.zeros(20000, 1, 1, 1), lo, hi, gen)
    assert float((sig_u < 1.1 / 255).float().mean()) < 0.02 < float((sig < 1.1 / 255).float().mean())


def test_model_sigma_range_is_the_training_noise_range(tmp_path):
    cfg = TrainConfig.from_dict(tiny(tmp_path, noise={"sigma_min": 0.1, "sigma_max": 0.1}))
    assert cfg.model["sigma_range"] == [0.1, 0.1]  # a fixed-noise model claims only its own level
    model = build_model(cfg.arch, cfg.model)
    assert model.config.sigma_range == (0.1, 0.1)


def test_resume_with_another_config_is_refused(tmp_path):
    train(TrainConfig.from_dict(tiny(tmp_path)), progress=False, max_steps=2)
    other = TrainConfig.from_dict(tiny(tmp_path, optim={"lr": 5e-4}))
    with pytest.raises(ValueError, match="config differs"):
        train(other, resume=True, progress=False)


def test_bad_model_files_are_refused(tmp_path):
    summary = train(TrainConfig.from_dict(tiny(tmp_path)), progress=False)
    path = Path(summary["model"])
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="truncated"):
        load_checkpoint(truncated)
    rec = torch.load(path, weights_only=True)
    key = next(k for k in rec["state_dict"] if k.endswith("weight"))
    rec["state_dict"][key] = rec["state_dict"][key] * 3
    tampered = tmp_path / "tampered.pt"
    torch.save(rec, tampered)
    with pytest.raises(ValueError, match="does not match its weights"):
        load_checkpoint(tampered)
    # a stored claim stronger than the weights allow is refused; a weaker one (an older, looser
    # certifier wrote the file) still holds and is accepted
    rec = torch.load(path, weights_only=True)
    fresh = rec["certificate"]
    assert certificate_rtol(fresh) < 1e-3 / 2  # a 0.1 % edit lies beyond the cross-machine rounding tolerance
    for scale, ok in ((0.999, False), (1.001, True)):
        rec["certificate"] = {**fresh, "alpha": fresh["alpha"] * scale}
        edited = tmp_path / f"claim_{scale}.pt"
        torch.save(rec, edited)
        if ok:
            assert load_checkpoint(edited).stored_certificate["alpha"] == fresh["alpha"] * scale
        else:
            with pytest.raises(ValueError, match="does not match its weights"):
                load_checkpoint(edited)
    with pytest.raises(ValueError, match="trained for 1-channel"):
        load_checkpoint(path, in_channels=3)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
    assert certify_main([str(truncated)]) == 2


def test_certify_cli_prints_and_writes_json(tmp_path, capsys):
    summary = train(TrainConfig.from_dict(tiny(tmp_path)), progress=False)
    out = tmp_path / "cert.json"
    assert certify_main([summary["model"], "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Lipschitz bound" in text and "averagedness alpha" in text and "empirical max" in text
    assert "not I - D" in text and "for every sigma in" in text
    rec = json.loads(out.read_text())
    assert rec["empirical"] <= rec["lipschitz"] and rec["alpha"] < 1 and rec["map"].startswith("x -> D(x, sigma)")


def test_dncnn_baseline_trains_through_the_same_code(tmp_path):
    cfg = tiny(tmp_path, arch="dncnn", model={"width": 4, "depth": 3})
    cfg["model"] = {"width": 4, "depth": 3}
    summary = train(TrainConfig.from_dict(cfg), progress=False)
    model = load_checkpoint(summary["model"])
    assert model.stored_certificate["alpha"] is None


def test_ddp_two_cpu_processes(tmp_path):
    cfg_path = tmp_path / "ddp.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny(tmp_path, optim={"steps": 4})))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    code = "import sys; from priors.training import main; sys.exit(main(sys.argv[1:]))"
    script = tmp_path / "entry.py"
    script.write_text(code)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
         str(script), str(cfg_path), "--quiet"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    state = load_training_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] == 4 and len(state["ranks"]) == 2
    # the two ranks drew different data, and hold identical weights and norm estimates
    assert not torch.equal(state["ranks"][0]["noise_rng"], state["ranks"][1]["noise_rng"])
    assert state["ranks"][0]["weights_sha256"] == state["ranks"][1]["weights_sha256"]
    load_checkpoint(tmp_path / "run" / "model.pt")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU (runs wherever one is present)")
def test_training_and_certificate_on_cuda(tmp_path):
    summary = train(TrainConfig.from_dict(tiny(tmp_path, device="cuda")), progress=False)
    model = load_checkpoint(summary["model"])  # certificate recomputed on the CPU and compared
    assert model.stored_certificate["lipschitz"] <= 1 + 1e-9


def test_warm_start_untied_model_starts_from_the_same_map(tmp_path):
    from priors.averaged import AveragedResNet
    from priors.training import build_model, warm_start

    first = train(TrainConfig.from_dict(tiny(tmp_path, model={"width": 4, "depth": 2, "max_substeps": 3})),
                  progress=False)
    src = load_checkpoint(first["model"])
    steps = sum(b.schedule()[1] for b in src.blocks)
    deep = build_model("averaged", {"width": 4, "depth": steps, "max_substeps": 1})
    warm_start(deep, first["model"])
    deep.eval()
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(deep(x, 0.1), src(x, 0.1), atol=1e-5)
    assert isinstance(deep, AveragedResNet) and deep.certificate().lipschitz <= 1.0
    # the config key runs it: training continues from those weights
    cfg = tiny(tmp_path, model={"width": 4, "depth": steps, "max_substeps": 1, "differentiable_norm": True},
               checkpoint={"dir": str(tmp_path / "run2")}, init_from=first["model"])
    out = train(TrainConfig.from_dict(cfg), progress=False)
    assert load_checkpoint(out["model"]).certificate().lipschitz <= 1.0
    # shapes that do not fit are a one-line error
    with pytest.raises(ValueError, match="init_from"):
        warm_start(build_model("averaged", {"width": 6, "depth": 2}), first["model"])
    with pytest.raises(ValueError, match="init_from: file"):
        TrainConfig.from_dict(tiny(tmp_path, init_from=str(tmp_path / "missing.pt")))


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "priors" / "configs").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_bundled_training_config_validates(path):
    cfg = TrainConfig.from_yaml(path)  # strict: unknown keys and bad values raise
    model = build_model(cfg.arch, cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.parametrize("integrator", ["euler", "heun", "rk4"])
@pytest.mark.parametrize("boundary", ["zero", "circular"])
def test_trained_models_of_every_integrator_and_boundary_hold_their_certificate(tmp_path, integrator, boundary):
    from priors.certify import certify

    cfg = tiny(tmp_path, model={"width": 4, "depth": 2, "integrator": integrator, "boundary": boundary,
                                "max_substeps": 2})
    summary = train(TrainConfig.from_dict(cfg), progress=False)
    model = load_checkpoint(summary["model"])
    cert = certify(model, power_iters=8, ascent_steps=10)
    assert cert.lipschitz <= 1 + 1e-9 and cert.alpha is not None
    assert 0 < cert.empirical <= cert.lipschitz * (1 + 1e-6)


def test_photos_and_user_folders_are_used_and_described(tmp_path):
    from PIL import Image

    from problems.images import TEST_SPLIT

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray((rng.random((48, 48)) * 255).astype(np.uint8)).save(folder / f"im{i}.png")
    cfg = tiny(tmp_path, data={"photos": True, "folders": [str(folder)], "dead_leaves_fraction": 0.0},
               optim={"steps": 2})
    summary = train(TrainConfig.from_dict(cfg), progress=False)
    data = load_training_checkpoint(tmp_path / "run" / "checkpoint.pt")["data"]
    assert data["folders"] == {str(folder): 2}
    assert data["photo_names"] and set(data["photo_names"]).isdisjoint(TEST_SPLIT)
    assert data["sampler"]["photos"] == len(data["photo_names"]) + 2
    assert summary["finished"]


@pytest.mark.parametrize("name", ["averaged_gray", "averaged_unconstrained_gray", "dncnn_gray", "ridge_gray",
                                  "ridge_stack_gray"])
def test_shipped_weights_come_with_their_config_and_log(name):
    import gzip

    from priors.pretrained import WEIGHTS_DIR, load_pretrained

    model = load_pretrained(name)  # certificate recomputed and compared
    info = model.training_info
    shipped = TrainConfig.from_yaml(WEIGHTS_DIR / f"{name}.yaml").to_dict()
    # the stored recipe, parsed by today's parser: keys added after that run take their defaults
    stored = json.loads(json.dumps(TrainConfig.from_dict(info["config"]).to_dict()))
    for key in ("threads", "device"):  # execution details, may change between resumptions
        shipped.pop(key), stored.pop(key)
    assert json.loads(json.dumps(shipped)) == stored
    with gzip.open(WEIGHTS_DIR / f"{name}.log.jsonl.gz", "rt") as fh:
        log = [json.loads(line) for line in fh]
    assert len(log) == info["steps"] == stored["optim"]["steps"]
    assert log[-1]["val_psnr"] == pytest.approx(info["final_val_psnr"])


# ------------------------------------------------------------- the load-time check across machines

SHIPPED = sorted((ROOT / "priors" / "weights").glob("*.pt"))
_SINGLE_PRECISION_NORMS = spectral_norms  # the certifier's own float32 SVD, before any patch


def _norms_as_on_another_machine(monkeypatch, *, factor: float = 1.0, dtype: torch.dtype | None = None) -> None:
    """Every symbol SVD of the certifier returns another machine's answer: computed in ``dtype``, or
    scaled by ``factor`` (1 + a few eps32: what another CPU's float32 SVD may return)."""
    import priors.spectral as spectral

    def norms(mats: torch.Tensor) -> torch.Tensor:
        if dtype is not None:
            return torch.linalg.matrix_norm(mats.to(dtype), ord=2).to(torch.float64)
        return _SINGLE_PRECISION_NORMS(mats) * factor

    monkeypatch.setattr(spectral, "_norms", norms)


# The ridge models' claims (Lipschitz 1, alpha = c, or its composition for a stack) do not depend on
# ||W||: each step is 2c / L with L the recomputed bound itself, so larger norms give a smaller step
# and the same certificate.  The prox models' neither: crr_bsd400 is firmly nonexpansive whatever its
# norms, and wcrr_bsd400's lam(sigma) rho_R sits at its cap 0.9 (lam = cap / rho_R), so 1/(1 - lam rho_R) = 10.
NORM_DEPENDENT = [p for p in SHIPPED if p.stem not in ("ridge_gray", "ridge_stack_gray", "crr_bsd400", "wcrr_bsd400")]


@pytest.mark.parametrize("path", NORM_DEPENDENT, ids=lambda p: p.stem)
def test_shipped_certificate_check_tolerates_rounding_but_not_a_1_percent_change(path, monkeypatch):
    eps32 = torch.finfo(torch.float32).eps
    # the same weights certified with float64 SVDs, or with every norm a few ulps larger: the file loads
    _norms_as_on_another_machine(monkeypatch, dtype=torch.complex128)
    load_checkpoint(path)
    _norms_as_on_another_machine(monkeypatch, factor=1 + 4 * eps32)
    load_checkpoint(path)
    # every norm 1 % larger, i.e. other weights than the certified ones: refused
    _norms_as_on_another_machine(monkeypatch, factor=1.01)
    with pytest.raises(ValueError, match="does not match its weights"):
        load_checkpoint(path)


@pytest.mark.parametrize("name, key", [("averaged_unconstrained_gray", "lipschitz"), ("averaged_gray", "alpha")])
def test_edited_shipped_claims_are_refused_beyond_the_rounding_tolerance(name, key, tmp_path):
    src = ROOT / "priors" / "weights" / f"{name}.pt"
    fresh = load_checkpoint(src).certificate().to_dict()  # recomputed (and cached) by the load
    rtol = certificate_rtol(fresh)
    assert rtol < 1e-3  # 128 * (number of norms) * eps32: far below a 1 % edit
    rec = torch.load(src, weights_only=True)
    for scale, ok in ((1 - rtol / 2, True), (1.01, True), (1 - 2 * rtol, False), (0.99, False)):
        rec["certificate"] = {**rec["certificate"], key: fresh[key] * scale}
        edited = tmp_path / f"{key}_{scale}.pt"
        torch.save(rec, edited)
        if ok:  # within rounding of the recomputed claim, or weaker than it
            load_checkpoint(edited)
        else:
            with pytest.raises(ValueError, match="does not match its weights"):
                load_checkpoint(edited)
    rec = torch.load(src, weights_only=True)
    rec["state_dict"] = {k: v * 10 if k.endswith("weight") else v for k, v in rec["state_dict"].items()}
    torch.save(rec, tmp_path / "weights_x10.pt")
    with pytest.raises(ValueError, match="does not match its weights"):
        load_checkpoint(tmp_path / "weights_x10.pt")


def test_stablepnp_certify_runs_on_every_shipped_model(capsys):
    from pnp.cli import main

    # the command of the bug report, adversarial search included
    assert main(["certify", str(ROOT / "priors" / "weights" / "averaged_unconstrained_gray.pt")]) == 0
    assert "Lipschitz bound" in capsys.readouterr().out
    for path in SHIPPED:
        assert main(["certify", str(path), "--no-adversarial"]) == 0, path.name
        assert "averagedness alpha" in capsys.readouterr().out


def _photo_folder(path: Path, n: int = 3) -> Path:
    from PIL import Image

    path.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray((rng.random((40, 40)) * 255).astype(np.uint8)).save(path / f"p{i}.png")
    return path


def test_data_folder_and_out_from_the_command_line_and_every_file_recorded(tmp_path, capsys):
    import hashlib

    from priors.training import main as train_main

    folder = _photo_folder(tmp_path / "photos")
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny(tmp_path, data={"dead_leaves_fraction": 0.0}, optim={"steps": 2})))
    # the config names no folder and no photos: refused, then given on the command line
    assert train_main([str(cfg_path), "--quiet", "--out", str(tmp_path / "a")]) == 2
    assert train_main([str(cfg_path), "--quiet", "--out", str(tmp_path / "b"), "--data-folder", str(folder)]) == 0
    state = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    files = state["training"]["data"]["folder_files"][str(folder)]
    assert [f["file"] for f in files] == ["p0.png", "p1.png", "p2.png"]
    assert files[1]["sha256"] == hashlib.sha256((folder / "p1.png").read_bytes()).hexdigest()
    assert train_main([str(cfg_path), "--data-folder", str(tmp_path / "nope")]) == 2


def test_a_finished_run_is_not_overwritten_without_resume_or_overwrite(tmp_path):
    cfg = TrainConfig.from_dict(tiny(tmp_path))
    train(cfg, progress=False)
    model = (tmp_path / "run" / "model.pt").read_bytes()
    with pytest.raises(ValueError, match="already holds a run"):
        train(cfg, progress=False)
    assert (tmp_path / "run" / "model.pt").read_bytes() == model
    assert train(cfg, progress=False, overwrite=True)["finished"]


def test_weakly_convex_ridge_trains_and_its_file_reloads_with_the_certificate(tmp_path):
    cfg = tiny(tmp_path, arch="wcrr", optim={"steps": 2})
    cfg["model"] = {"hidden": 2, "channels": 4, "kernel_size": 3, "knots": 5, "solve_iterations": 20}
    summary = train(TrainConfig.from_dict(cfg), progress=False)
    model = load_checkpoint(summary["model"])
    cert = model.certificate()
    assert "rho" in cert.details and cert.lipschitz >= 1.0
