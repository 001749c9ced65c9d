"""Ridge stack (priors/ridge_stack.py): composition of averaged ridge steps, its certificate, warm start, training."""

from __future__ import annotations

import pytest
import torch

from priors.certify import empirical_lipschitz
from priors.integrators import composed_alpha
from priors.ridge import RidgeRegularizer
from priors.ridge_stack import RidgeStack, RidgeStackConfig, stack_from_single

SMALL = {"hidden": 3, "channels": 6, "kernel_size": 3, "knots": 9}


def _trained_like(seed: int = 0, blocks: int = 3) -> RidgeStack:
    """A small stack with random splines and step fractions, as after training."""
    torch.manual_seed(seed)
    net = RidgeStack(blocks=blocks, **SMALL).double()
    with torch.no_grad():
        for i, b in enumerate(net.blocks):
            b.spline.raw.uniform_(-0.3, 1.3)
            b.mu_raw.copy_(torch.tensor([1.5, 0.0]))
            b.step_raw.copy_(torch.tensor([1.0 + i, 0.3]))
    return net.eval()


def test_forward_is_the_composition_of_the_blocks():
    net = _trained_like()
    x = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    with torch.no_grad():
        ref = x
        for b in net.blocks:
            ref = b(ref, 0.1)
        torch.testing.assert_close(net(x, 0.1), ref)


def test_certificate_is_the_composed_constant_and_adversarial_search_stays_below_it():
    net = _trained_like(seed=1)
    cert = net.certificate()
    blocks = [b.certificate().alpha for b in net.blocks]
    assert cert.lipschitz == 1.0 and cert.alpha == pytest.approx(composed_alpha(blocks))
    assert max(blocks) < cert.alpha < 1
    emp = empirical_lipschitz(net, sigmas=(25 / 255,), shape=(2, 1, 16, 16), power_iters=30, ascent_steps=30)
    assert emp["max"] <= 1.0 + 1e-6
    # averagedness: N = (D - (1 - alpha) I) / alpha is nonexpansive; ascend its ratio over pairs
    a = cert.alpha
    x = torch.rand(4, 1, 16, 16, dtype=torch.float64, requires_grad=True)
    d = (1e-2 * torch.randn(4, 1, 16, 16, dtype=torch.float64)).requires_grad_(True)
    opt = torch.optim.Adam([x, d], lr=1e-2)
    for p in net.parameters():
        p.requires_grad_(False)
    best = 0.0
    for _ in range(40):
        nx = (net(x, 25 / 255) - (1 - a) * x) / a
        nd = (net(x + d, 25 / 255) - (1 - a) * (x + d)) / a
        r = (nd - nx).flatten(1).norm(dim=1) / d.flatten(1).norm(dim=1)
        best = max(best, float(r.max()))
        opt.zero_grad()
        (-r.sum()).backward()
        opt.step()
    assert 0.5 < best <= 1 + 1e-9  # the search is not vacuous and stays below the claim
    # a smaller constant than the composed one would be wrong somewhere: the claim is not loose by much
    assert cert.alpha > blocks[-1]


def test_warm_start_from_a_one_step_model_starts_close_to_it(tmp_path):
    from priors.pretrained import load_checkpoint
    from priors.registry import save_model_file
    from priors.training import warm_start

    torch.manual_seed(4)
    src = RidgeRegularizer(**SMALL)
    with torch.no_grad():
        src.spline.raw.uniform_(0.0, 1.0)
    path = tmp_path / "one.pt"
    save_model_file(src.eval(), path, arch="ridge")
    stack = RidgeStack(blocks=3, **SMALL)
    warm_start(stack, path)
    stack.eval()
    for b in stack.blocks:
        assert torch.allclose(b.kernel(), src.kernel()) and torch.allclose(b.spline.raw, src.spline.raw)
    assert torch.equal(stack.blocks[0].step_raw, src.step_raw)
    assert all(b.certificate().alpha < 0.02 for b in list(stack.blocks)[1:])
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        gap = float((stack(x, 0.1) - src(x, 0.1)).norm() / (src(x, 0.1) - x).norm())
    assert gap < 0.1
    # a model file round trip keeps the map and re-checks the certificate
    out = tmp_path / "stack.pt"
    save_model_file(stack, out, arch="ridge_stack")
    back = load_checkpoint(out).eval()
    with torch.no_grad():
        torch.testing.assert_close(back(x, 0.1), stack(x, 0.1))
    with pytest.raises(ValueError, match="one-step"):
        stack_from_single(RidgeRegularizer(denoiser="prox", **SMALL), stack)


def test_config_is_validated():
    with pytest.raises(ValueError, match="blocks"):
        RidgeStackConfig(blocks=0)
    with pytest.raises(ValueError, match="onestep"):
        RidgeStackConfig(denoiser="prox")
    with pytest.raises(ValueError, match="onestep"):
        RidgeStackConfig(tied=False)


def test_a_stack_trains_through_the_training_config(tmp_path):
    from priors.pretrained import load_checkpoint
    from priors.training import TrainConfig, train

    cfg = {"arch": "ridge_stack", "model": {"blocks": 2, **SMALL},
           "data": {"patch_size": 16, "batch_size": 2, "dead_leaves_fraction": 1.0, "photos": False,
                    "pool_size": 2, "refresh_every": 1000},
           "noise": {"sigma_min": "5/255", "sigma_max": "55/255"},
           "optim": {"name": "adam", "lr": 1e-2, "steps": 3, "loss": "l1"},
           "validation": {"every": 3, "size": 32}, "checkpoint": {"dir": str(tmp_path / "run"), "every": 2},
           "seed": 0, "threads": 1}
    before = RidgeStack(blocks=2, **SMALL)
    summary = train(TrainConfig.from_dict(cfg), progress=False)
    model = load_checkpoint(summary["model"])
    assert isinstance(model, RidgeStack) and len(model.blocks) == 2
    cert = model.certificate()
    assert cert.lipschitz == 1.0 and cert.alpha is not None and cert.alpha < 1
    moved = [not torch.allclose(a, b) for a, b in zip(model.state_dict().values(), before.state_dict().values())
             if a.dtype.is_floating_point and a.shape == b.shape]
    assert any(moved)


def test_shipped_stack_holds_its_certificate_and_records_its_data():
    import json
    from pathlib import Path

    from priors.pretrained import WEIGHTS_DIR, load_pretrained

    net = load_pretrained("ridge_stack_gray")  # certificate recomputed on load
    cert = net.certificate()
    alphas = [b.certificate().alpha for b in net.blocks]
    assert cert.lipschitz == 1.0 and cert.alpha == pytest.approx(composed_alpha(alphas)) and cert.alpha < 1
    lo, hi = net.config.sigma_range
    emp = empirical_lipschitz(net, sigmas=(lo, hi), shape=(2, 1, 24, 24), power_iters=10, ascent_steps=10)
    assert emp["max"] <= 1.0 + 1e-5
    photos = json.loads(Path(WEIGHTS_DIR / "ridge_stack_gray.photos.json").read_text())
    assert photos and all(len(p["sha256"]) == 64 for p in photos)
    assert net.training_info["data"]["folders"] == {"data/photos": len(photos)}


def test_solve_with_the_shipped_stack_is_a_guaranteed_pnp_run_at_its_default_level(tmp_path):
    import json

    from pnp.cli import main

    rec = tmp_path / "r.json"
    assert main(["solve", "--prior", "ridge_stack", "--lam", "default", "--size", "32", "--max-iter", "20",
                 "--no-figure", "-q", "--json", str(rec)]) == 0
    data = json.loads(rec.read_text())
    assert data["guarantee"]["verdict"] == "guaranteed"
    assert "averaged" in data["guarantee"]["line"]
    assert data["denoiser_sigma"] == pytest.approx(0.25 * 0.01)  # the registry's level: 0.25 x noise
    assert data["denoiser_strength"] in (None, 1.0)  # inside the trained range: no relaxation
