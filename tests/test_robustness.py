"""Tests of priors.robustness: Lipschitz bounds vs adversarial search, certification, attacks, data, job."""

from __future__ import annotations

import gzip
import json
import math
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pnp.robustness import main as robustness_main
from pnp.robustness import pgd_map, registry_denoiser
from priors.robustness import attacks, certified, data, models, prior_eval
from priors.robustness.models import (
    ChannelLift,
    ContractiveODEBlock,
    GershgorinResidualBlock,
    GradientStepLayer,
    NormedConv1x1,
    NormedLinear,
    PixelUnshuffle,
    ScaledAvgPool,
    ScaledGlobalPool,
    build_classifier,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "priors" / "robustness" / "configs" / "tiny.yaml"


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def adversarial_lipschitz(f, shape, *, points=3, power_iters=15, ascent_steps=25, seed=0) -> float:
    """Lower estimate of Lip(f): power iteration on J^T J at random points + gradient ascent on pairs."""
    gen = torch.Generator().manual_seed(seed)
    best = 0.0
    for _ in range(points):
        x = torch.rand(shape, generator=gen, dtype=torch.float64)
        v = torch.randn(shape, generator=gen, dtype=torch.float64)
        v = v / v.norm()
        for _ in range(power_iters):
            _, jv = torch.func.jvp(f, (x,), (v,))
            _, vjp = torch.func.vjp(f, x)
            (w,) = vjp(jv)
            est = float(w.detach().norm())
            best = max(best, math.sqrt(est))
            v = w / max(est, 1e-30)
    x = torch.rand(shape, generator=gen, dtype=torch.float64).requires_grad_(True)
    d = (0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)).requires_grad_(True)
    opt = torch.optim.Adam([x, d], lr=2e-2)
    for _ in range(ascent_steps):
        ratio = (f(x + d) - f(x)).norm() / d.norm()
        best = max(best, float(ratio.detach()))
        opt.zero_grad()
        (-ratio).backward()
        opt.step()
    return best


# ---------------------------------------------------------------------------------------------
# layer norms


def _dense_matrix(layer, shape):
    n = int(np.prod(shape))
    eye = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    with torch.no_grad():
        return layer(eye).reshape(n, -1).T


def test_avg_pool_has_norm_exactly_half_and_scaled_pool_one():
    mat = _dense_matrix(lambda x: torch.nn.functional.avg_pool2d(x, 2), (2, 4, 6))
    assert torch.linalg.matrix_norm(mat, ord=2).item() == pytest.approx(0.5, abs=1e-12)
    mat = _dense_matrix(ScaledAvgPool(), (2, 4, 6))
    assert torch.linalg.matrix_norm(mat, ord=2).item() == pytest.approx(ScaledAvgPool().lipschitz_bound(), abs=1e-12)


def test_global_pool_norms():
    mean = _dense_matrix(lambda x: x.mean(dim=(-2, -1)), (3, 5, 4))
    assert torch.linalg.matrix_norm(mean, ord=2).item() == pytest.approx(1 / math.sqrt(20), abs=1e-12)
    scaled = _dense_matrix(ScaledGlobalPool(), (3, 5, 4))
    assert torch.linalg.matrix_norm(scaled, ord=2).item() == pytest.approx(1.0, abs=1e-12)


def test_unshuffle_is_orthogonal():
    mat = _dense_matrix(PixelUnshuffle(), (2, 4, 6))
    assert torch.allclose(mat.T @ mat, torch.eye(48, dtype=torch.float64))  # a permutation: norm exactly 1
    assert PixelUnshuffle().lipschitz_bound() == 1.0
    with pytest.raises(ValueError, match="even image sizes"):
        PixelUnshuffle()(torch.zeros(1, 1, 5, 4))


def test_lift_and_normed_linear_layers_are_exact():
    lift = _dense_matrix(ChannelLift(1, 3), (1, 3, 3))
    assert torch.allclose(lift.T @ lift, torch.eye(9, dtype=torch.float64))
    torch.manual_seed(0)
    conv = NormedConv1x1(3, 5).double()
    with torch.no_grad():
        conv.weight.mul_(10)
    mat = _dense_matrix(conv, (3, 4, 4))
    true = torch.linalg.matrix_norm(mat, ord=2).item()
    assert true <= conv.lipschitz_bound() <= 1 + 1e-6 and true == pytest.approx(1.0, rel=1e-6)
    lin = NormedLinear(6, 4).double()
    with torch.no_grad():
        lin.weight.mul_(0.3)
    assert lin.lipschitz_bound() == pytest.approx(torch.linalg.matrix_norm(lin.matrix(), ord=2).item(), rel=1e-6)


# ---------------------------------------------------------------------------------------------
# blocks and whole networks: empirical <= certified


def test_gradient_step_layer_bound_holds_with_substeps():
    torch.manual_seed(1)
    layer = GradientStepLayer(width=4, max_substeps=3).double().eval()
    with torch.no_grad():
        layer.block.time_raw.fill_(3.0)  # long integration time -> several sub-steps
    info = layer.bound_details()
    assert info["substeps"] > 1
    emp = adversarial_lipschitz(layer, (1, 4, 6, 6))
    assert emp <= layer.lipschitz_bound() * (1 + 1e-6)


@pytest.mark.parametrize("scale", [0.5, 3.0])
def test_ode_block_bound_holds_contractive_or_not(scale):
    torch.manual_seed(2)
    block = ContractiveODEBlock(width=3, gamma=1.0, time=1.0, steps=2).double().eval()
    with torch.no_grad():
        block.weight.mul_(scale)
        block.bias.normal_()
    info = block.bound_details()
    assert info["contractive"] == (info["norm_upper"] < 1.0)
    emp = adversarial_lipschitz(block, (1, 3, 6, 6))
    assert emp <= info["lipschitz"] * (1 + 1e-6)
    if info["contractive"]:
        assert info["lipschitz"] < 1


def test_ode_regularisers_promote_the_condition():
    torch.manual_seed(3)
    block = ContractiveODEBlock(width=3, gamma=1.0)
    assert float(block.weight_regulariser(rho=0.1)) == 0.0  # initialised inside the region
    with torch.no_grad():
        block.weight.mul_(5.0)
    reg = block.weight_regulariser(rho=0.1)
    assert float(reg) > 0
    reg.backward()
    assert block.weight.grad is not None and block.weight.grad.abs().sum() > 0
    block.train()
    block(torch.rand(2, 3, 6, 6))
    jac = block.jacobian_regulariser(rho=0.1, power_iters=10)
    # v^T J v <= mu_2(J) <= -gamma + ||K||: the penalty can never exceed relu(||K|| - gamma + rho)
    bound = block.bound_details()["norm_upper"] - block.gamma + 0.1
    assert 0.0 <= float(jac) <= max(bound, 0.0) + 1e-5


@pytest.mark.parametrize("lipschitz", [1.0, 3.0])
def test_gershgorin_block_bound_holds(lipschitz):
    torch.manual_seed(4)
    block = GershgorinResidualBlock(width=3, hidden=5, lipschitz=lipschitz, negative_slope=0.1).double().eval()
    with torch.no_grad():
        block.c_raw.fill_(6.0)  # c close to 1 + lipschitz
        block.q_raw.normal_()
        block.bias.normal_()
    bound = block.lipschitz_bound()
    assert bound == pytest.approx(max(1.0, float(block.coefficient()) - 1.0), rel=1e-6)
    emp = adversarial_lipschitz(block, (1, 3, 6, 6))
    assert emp <= bound * (1 + 1e-6)


def test_gershgorin_bound_is_attained_in_the_expansive_regime():
    # W = identity (centre tap), linear activation, q = 1: T = 1 and the layer is (1 - c) x, so
    # its Lipschitz constant is exactly c - 1 = the bound; the search must find it (a bound that
    # were 2x too large, or too small, would fail here)
    block = GershgorinResidualBlock(width=3, hidden=3, lipschitz=3.0, negative_slope=1.0).double().eval()
    with torch.no_grad():
        block.weight.zero_()
        block.weight[:, :, 1, 1] = torch.eye(3, dtype=torch.float64)
        block.q_raw.zero_()
        block.c_raw.fill_(6.0)
    bound = block.lipschitz_bound()
    assert bound > 2.9
    emp = adversarial_lipschitz(block, (1, 3, 6, 6))
    assert bound * (1 - 1e-3) <= emp <= bound * (1 + 1e-6)


def test_gershgorin_diagonal_dominates_w_wT():
    torch.manual_seed(5)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    q = torch.rand(4, dtype=torch.float64) + 0.5
    t = models.gershgorin_diagonal(w, q)
    conv = lambda x: torch.nn.functional.conv2d(x, w, padding=1)  # noqa: E731
    W = _dense_matrix(conv, (3, 5, 5))  # (4*25, 3*25)
    T = torch.diag(t.repeat_interleave(25))
    assert torch.linalg.eigvalsh(T - W @ W.T).min() >= -1e-10


@pytest.mark.parametrize("layout", [("avgpool", "mean"), ("unshuffle", "flatten")])
@pytest.mark.parametrize("arch", models.ARCHITECTURES)
def test_every_architecture_bound_holds(arch, layout):
    torch.manual_seed(6)
    net = build_classifier(arch=arch, widths=(3, 5), depth=1, num_classes=4, downsample=layout[0],
                           pooling=layout[1], image_size=8).double().eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "bias" in name:
                p.normal_(0, 0.3)
    report = net.lipschitz_report()
    assert len(report) == len(net.layers)  # every layer has its own bound in the product
    bound = net.lipschitz_bound()
    assert bound == pytest.approx(math.prod(r["lipschitz"] for r in report))
    emp = adversarial_lipschitz(net, (1, 1, 8, 8))
    assert 0 < emp <= bound * (1 + 1e-6)
    if arch in ("nonexpansive", "gershgorin"):
        assert bound <= 1 + 1e-5


def test_bound_survives_save_and_load(tmp_path):
    torch.manual_seed(7)
    net = build_classifier(arch="nonexpansive", widths=(3,), depth=1)
    torch.save(net.state_dict(), tmp_path / "m.pt")
    other = build_classifier(arch="nonexpansive", widths=(3,), depth=1)
    other.load_state_dict(torch.load(tmp_path / "m.pt"))
    x = torch.rand(2, 1, 8, 8)
    assert torch.allclose(net.eval()(x), other.eval()(x))
    assert other.lipschitz_bound() == pytest.approx(net.lipschitz_bound())


def test_config_is_strict():
    with pytest.raises(ValueError, match="unknown model key 'widht'"):
        models.ClassifierConfig.from_dict({"widht": 3})
    with pytest.raises(ValueError, match="arch"):
        models.ClassifierConfig(arch="vit")
    with pytest.raises(ValueError, match="downsample 'maxpool' unknown"):
        models.ClassifierConfig(downsample="maxpool")
    with pytest.raises(ValueError, match="image_size divisible by 2"):
        models.ClassifierConfig(pooling="flatten", widths=(4, 8, 16), image_size=30)


# ---------------------------------------------------------------------------------------------
# certification


def test_margins_and_certified_accuracy():
    z = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.5], [1.0, 2.0, 0.0]])
    y = torch.tensor([0, 1, 0])
    assert certified.margins(z, y).tolist() == [2.0, 0.5, -1.0]
    assert certified.certified_accuracy(z, y, lipschitz=1.0, eps=0.0) == pytest.approx(2 / 3)
    # margin 2 > sqrt(2)*1*1 = 1.414 but 0.5 is not
    assert certified.certified_accuracy(z, y, lipschitz=1.0, eps=1.0, num_classes=3) == pytest.approx(1 / 3)
    assert certified.certified_accuracy(z, y, lipschitz=2.0, eps=1.0) == 0.0
    r = certified.certified_radius(z, y, lipschitz=1.0)
    assert r.tolist() == pytest.approx([2 / math.sqrt(2), 0.5 / math.sqrt(2), 0.0])
    with pytest.raises(ValueError, match="num_classes"):
        certified.certified_accuracy(z, y, lipschitz=1.0, eps=0.1, num_classes=10)
    two = torch.tensor([[1.0, 0.0]])
    assert certified.certified_accuracy(two, torch.tensor([0]), lipschitz=1.0, eps=0.7, num_classes=2) == 1.0


def test_certified_samples_resist_pgd():
    torch.manual_seed(8)
    net = build_classifier(arch="gershgorin", widths=(4,), depth=1, num_classes=3).eval()
    x = torch.rand(32, 1, 8, 8)
    with torch.no_grad():
        logits = net(x)
    y = logits.argmax(1)  # correct by construction: certification is about stability
    lip = net.lipschitz_bound()
    radius = certified.certified_radius(logits, y, lipschitz=lip)
    eps = float(radius.median())
    ok = radius > eps
    adv = attacks.pgd(net, x, y, eps=eps, steps=20, restarts=2, clip=None, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        still = net(adv).argmax(1) == y
    assert still[ok].all()


# ---------------------------------------------------------------------------------------------
# attacks


def _small_cnn():
    torch.manual_seed(9)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 8 * 8, 3))
    x = torch.rand(64, 1, 8, 8)
    with torch.no_grad():
        y = net(x).argmax(1)
        y[::4] = (y[::4] + 1) % 3  # some misclassified points
    return net.eval(), x, y


@pytest.mark.parametrize("norm,eps", [("l2", 1.5), ("linf", 0.1)])
def test_pgd_matches_torchattacks(norm, eps):
    import torchattacks  # in the test extra: a missing install fails here instead of skipping
    net, x, y = _small_cnn()
    steps, alpha = 5, eps / 4
    ours = attacks.pgd(net, x, y, eps=eps, norm=norm, steps=steps, step_size=alpha, random_start=False)
    cls = torchattacks.PGDL2 if norm == "l2" else torchattacks.PGD
    theirs = cls(net, eps=eps, alpha=alpha, steps=steps, random_start=False)(x, y)
    with torch.no_grad():
        acc_ours = float((net(ours).argmax(1) == y).float().mean())
        acc_theirs = float((net(theirs).argmax(1) == y).float().mean())
        clean = float((net(x).argmax(1) == y).float().mean())
    assert abs(acc_ours - acc_theirs) <= 2 / 64
    assert acc_ours < clean
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_fgsm_matches_torchattacks():
    import torchattacks  # in the test extra: a missing install fails here instead of skipping
    net, x, y = _small_cnn()
    ours = attacks.fgsm(net, x, y, eps=0.05)
    theirs = torchattacks.FGSM(net, eps=0.05)(x, y)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_pgd_stays_in_ball_and_box_with_restarts():
    net, x, y = _small_cnn()
    gen = torch.Generator().manual_seed(0)
    for norm, eps in (("l2", 0.5), ("linf", 0.05)):
        adv = attacks.pgd(net, x, y, eps=eps, norm=norm, steps=3, restarts=2, generator=gen)
        d = (adv - x).flatten(1)
        size = d.norm(dim=1) if norm == "l2" else d.abs().amax(dim=1)
        assert (size <= eps + 1e-5).all() and adv.min() >= 0 and adv.max() <= 1
    single = attacks.robust_accuracy(net, x, y, eps=0.5, steps=3, restarts=1, generator=torch.Generator().manual_seed(1))
    more = attacks.robust_accuracy(net, x, y, eps=0.5, steps=3, restarts=3, generator=torch.Generator().manual_seed(1))
    assert more <= single + 1e-12  # restarts keep the worst case per sample


def test_corruptions_and_auc():
    gen = torch.Generator().manual_seed(0)
    x = torch.full((1, 1, 100, 100), 0.5)
    sp = attacks.salt_and_pepper(x, 0.2, generator=gen)
    hit = (sp != 0.5).float().mean().item()
    assert hit == pytest.approx(0.2, abs=0.02)
    assert set(sp[sp != 0.5].unique().tolist()) <= {0.0, 1.0}
    g = attacks.gaussian_noise(x, 1.0, generator=gen)
    assert g.min() >= 0 and g.max() <= 1
    assert attacks.curve_auc([0, 0.5, 1.0], [1.0, 1.0, 1.0]) == pytest.approx(1.0)
    assert attacks.curve_auc([0, 1, 3], [1.0, 0.5, 0.5]) == pytest.approx((0.75 + 1.0) / 3)
    with pytest.raises(ValueError):
        attacks.curve_auc([0, 0], [1, 1])


# ---------------------------------------------------------------------------------------------
# data


def _write_idx(path: Path, arr: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    payload = header + arr.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)


@pytest.mark.parametrize("layout,gz", [("flat", True), ("torchvision", False)])
def test_idx_reader_layouts(tmp_path, layout, gz):
    folder = tmp_path if layout == "flat" else tmp_path / "FashionMNIST" / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 28, 28))
    labs = rng.integers(0, 10, 5)
    _write_idx(folder / "t10k-images-idx3-ubyte", imgs, gz)
    _write_idx(folder / "t10k-labels-idx1-ubyte", labs, gz)
    ds = data.load_fashion_mnist(tmp_path, "test")
    assert ds.images.shape == (5, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert ds.labels.tolist() == labs.tolist()
    assert np.array_equal(ds.images[:, 0].numpy(), imgs)
    with pytest.raises(FileNotFoundError, match="data_dir"):
        data.load_fashion_mnist(tmp_path, "train")


def test_idx_reader_rejects_garbage(tmp_path):
    bad = tmp_path / "x"
    bad.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="idx"):
        data.read_idx(bad)


def test_committed_subset_fixture():
    path = data.default_subset_path()
    assert path.stat().st_size < 3e6
    assert (path.parent / "fashion_mnist_subset.PROVENANCE.md").is_file()
    train, test = data.load_npz_subset(split="train"), data.load_npz_subset(split="test")
    assert train.images.shape == (3000, 1, 28, 28) and test.images.shape == (1000, 1, 28, 28)
    assert torch.bincount(train.labels).tolist() == [300] * 10
    assert train.float_images().max() <= 1.0


def test_debian_files_when_installed():
    if not (data.DEBIAN_FASHION_DIR / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    test = data.load_fashion_mnist(data.DEBIAN_FASHION_DIR, "test")
    assert len(test) == 10000


# ---------------------------------------------------------------------------------------------
# prior evaluation


def test_amplification_attacks_on_linear_maps():
    from operators import Blur, gaussian

    A = Blur(gaussian(1.0), boundary="circular")
    u = torch.rand(2, 1, 12, 12)
    res = prior_eval.amplification_pgd(A, u, eps=0.5, steps=15)
    assert res["max"] <= 1 + 1e-5 and res["max"] > 0.9  # ascent approaches ||A|| = 1 (the DC mode)
    rnd = prior_eval.amplification_random(lambda x: 0.5 * x, u, eps=0.5, trials=4)
    assert rnd["max"] == pytest.approx(0.5, rel=1e-5)


def test_pnp_bound_formula_and_soundness():
    from operators import Blur, gaussian

    from priors.averaged import AveragedResNet
    from priors.certify import rigorous_bounds

    assert prior_eval.pnp_lipschitz_bound(1.0, 1.0, 1.0, 10) == pytest.approx(11.0)
    assert prior_eval.pnp_lipschitz_bound(0.5, 1.0, 1.0, 2) == pytest.approx(0.25 + 0.5 * (1 + 0.5))
    assert prior_eval.pnp_lipschitz_bound(None, 1.0, 1.0, 3) is None
    # tau > 2/||A||^2: c = tau||A||^2 - 1 > 1 enters the bound
    assert prior_eval.pnp_lipschitz_bound(1.0, 1.0, 3.0, 1) == pytest.approx(2.0 + 3.0)
    torch.manual_seed(0)
    den = AveragedResNet(width=4, depth=2).eval()
    A = Blur(gaussian(1.2), boundary="circular")
    lip = rigorous_bounds(den)["lipschitz"]
    f = pgd_map(den, A, sigma=0.05, step=1.5, iterations=3)
    bound = prior_eval.pnp_lipschitz_bound(lip, 1.0, 1.5, 3)
    emp = prior_eval.amplification_pgd(f, torch.rand(1, 1, 12, 12), eps=0.5, steps=5)["max"]
    assert emp <= bound


# ---------------------------------------------------------------------------------------------
# the job


def test_bad_config_exit_code_2(tmp_path, capsys):
    from priors.robustness.run import main

    cfg = tmp_path / "bad.yaml"
    cfg.write_text(TINY.read_text().replace("seed: 0", "seed: 0\nsede: 1"))
    assert main([str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "sede" in err and "valid keys" in err
    cfg.write_text(TINY.read_text().replace("train_limit: 256", "train_limit: 256\n  bogus: 1"))
    assert main([str(cfg)]) == 2
    assert "bogus" in capsys.readouterr().err
    for old, new, expected in [("train_limit: 256", "train_limit: abc", "data.train_limit must be int or null"),
                               ("threads: 1", "threads: [1]", "config.threads must be int")]:
        cfg.write_text(TINY.read_text().replace(old, new))
        assert main([str(cfg)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and expected in err
    assert main([str(tmp_path / "missing.yaml")]) == 2


def test_tiny_job_end_to_end_and_resume(tmp_path):
    main = robustness_main  # stablepnp robustness: the job with the solver's PnP map and the prior registry

    t0 = time.perf_counter()
    assert main([str(TINY), "--output-dir", str(tmp_path)]) == 0
    elapsed = time.perf_counter() - t0
    assert elapsed < 60
    for name in ("results.json", "results.md", "results.csv", "prior_robustness.md", "prior_robustness.csv",
                 "acc_vs_eps_l2.png", "acc_vs_eps_linf.png"):
        assert (tmp_path / name).is_file(), name
    res = json.loads((tmp_path / "results.json").read_text())
    assert set(res["models"]) == {"nonexpansive", "resnet", "node", "gershgorin"}
    for r in res["models"].values():
        assert 0 <= r["clean"] <= 1 and len(r["certified"]) == 3
        assert all(c <= r["clean"] + 1e-12 for c in r["certified"])
    for row in res["prior_eval"]["rows"]:
        if row["certified"] is not None:
            assert row["empirical_max"] <= row["certified"] * (1 + 1e-4)
    ck = torch.load(tmp_path / "checkpoints" / "nonexpansive.pt", weights_only=True)
    assert ck["finished"]
    # a second run loads the finished checkpoints instead of training again
    before = (tmp_path / "checkpoints" / "nonexpansive.pt").stat().st_mtime_ns
    assert main([str(TINY), "--output-dir", str(tmp_path)]) == 0
    assert (tmp_path / "checkpoints" / "nonexpansive.pt").stat().st_mtime_ns == before
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "robustness_report.py"), str(tmp_path / "results.json")],
                         capture_output=True, text=True, check=True).stdout
    assert "certified 36/255" in out and "nonexpansive" in out and "Robustness of the priors" in out


def test_training_resumes_mid_run(tmp_path):
    from priors.robustness.run import ModelSpec, TrainSpec, train_classifier

    ds = data.load_npz_subset(split="train").subset(64)
    spec = ModelSpec(name="m", model=models.ClassifierConfig(arch="gershgorin", widths=(3,), depth=1),
                     train=TrainSpec(epochs=4, batch_size=16, checkpoint_every=2, time_budget_s=1e9))
    ck = tmp_path / "checkpoints" / "m.pt"
    # simulate an interrupted run: train the first 6 steps, then mark the checkpoint unfinished
    short = ModelSpec(name="m", model=spec.model, train=TrainSpec(epochs=4, batch_size=16, checkpoint_every=2, time_budget_s=0.0))
    train_classifier(short, ds, out_dir=tmp_path, log=lambda *_: None)
    state = torch.load(ck, weights_only=True)
    assert state["step"] == 1
    state["finished"] = False
    torch.save(state, ck)
    logs = []
    _, info = train_classifier(spec, ds, out_dir=tmp_path, log=logs.append)
    assert any("resumed" in line and "step 1/16" in line for line in logs)
    assert info["steps"] == 16


@pytest.mark.parametrize("path", sorted((ROOT / "priors" / "robustness" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_bundled_configs_validate_and_build(path):
    from priors.robustness.run import load_config

    cfg = load_config(path)
    for spec in cfg.models:
        net = build_classifier(spec.model)
        assert net(torch.rand(1, spec.model.in_channels, 28, 28)).shape == (1, spec.model.num_classes)


def test_prior_evaluation_loads_the_shipped_denoiser_as_trained():
    # regression: the loader once ignored model_config and built the default architecture (leaky
    # ReLU) around the tanh weights, so the prior table measured another map
    from priors.pretrained import WEIGHTS_DIR, load_pretrained
    from priors.robustness.prior_eval import _load_denoiser

    den = _load_denoiser(str(WEIGHTS_DIR / "averaged_gray.pt"))
    ref = load_pretrained("averaged_gray")
    assert den.config == ref.config and den.config.activation == "tanh"
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(den(x, 0.1), ref(x, 0.1))


def test_prior_evaluation_attacks_the_pnp_map_it_is_given(tmp_path):
    # the evaluation builds no PnP iteration of its own: the reconstruction map comes from the caller
    from priors.robustness.run import PriorEvalSpec

    calls = []

    def factory(denoiser, operator, *, sigma, step, iterations):
        calls.append((sigma, step, iterations))
        return lambda y: 0.5 * y

    spec = PriorEvalSpec(denoisers=("tv",), images=("camera",), image_size=16, eps=0.5, random_trials=2,
                         pnp_iterations=2)
    out = prior_eval.evaluate_priors(spec, out_dir=tmp_path, pnp_map=factory, resolved={"tv": registry_denoiser("tv")},
                                     log=lambda *_: None)
    assert calls == [(spec.pnp_sigma, out["pnp"]["step"], 2)]
    row = next(r for r in out["rows"] if r["map"] == "pnp")
    assert row["empirical_max"] == pytest.approx(0.5, rel=1e-5)


# ---------------------------------------------------------------------------------------------
# what the job receives from pnp: the solver's PnP-PGD map and the prior registry


def test_pgd_map_is_the_solvers_iteration_and_differentiable():
    from operators.fidelity import L2Fidelity
    from pnp.algorithms import PGD
    from priors import DenoiserPrior
    from priors.averaged import AveragedResNet
    from operators import Blur, gaussian

    torch.manual_seed(0)
    den = AveragedResNet(width=4, depth=2).eval()
    for p in den.parameters():
        p.requires_grad_(False)
    A = Blur(gaussian(1.2), boundary="circular")
    y = torch.rand(1, 1, 12, 12)
    out = pgd_map(den, A, sigma=0.05, step=1.0, iterations=4)(y)
    ref = PGD(L2Fidelity(A, y), DenoiserPrior(den, sigma=0.05), step=1.0).run(
        x0=A.adjoint(y), max_iter=4, tol=None, progress=False)
    assert ref.iterations == 4
    torch.testing.assert_close(out, ref.x, rtol=1e-5, atol=1e-6)
    yg = y.clone().requires_grad_(True)
    pgd_map(den, A, sigma=0.05, step=1.0, iterations=4)(yg).square().sum().backward()
    assert yg.grad is not None and float(yg.grad.abs().sum()) > 0
    # the solver itself never builds a graph
    assert not PGD(L2Fidelity(A, yg.detach()), DenoiserPrior(den, sigma=0.05)).run(max_iter=2, progress=False).x.requires_grad


def test_registry_denoisers_carry_their_bounds():
    from pnp.registry import register_prior, unregister_prior
    from priors.classical import Tikhonov
    from priors.pretrained import WEIGHTS_DIR

    tv = registry_denoiser("tv")
    assert tv.lipschitz == 1.0 and not tv.differentiable
    x = torch.rand(1, 1, 16, 16)
    from priors.denoisers import TVDenoiser

    torch.testing.assert_close(tv.denoiser(x, 0.1), TVDenoiser(tol=1e-6, max_iter=5000)(x, 0.1), atol=2e-3, rtol=0)
    ridge = registry_denoiser("ridge")
    assert ridge.differentiable and ridge.lipschitz is not None and ridge.lipschitz <= 1.0 + 1e-6
    ck = registry_denoiser(str(WEIGHTS_DIR / "averaged_gray.pt"))
    assert ck.differentiable and ck.lipschitz <= 1.0 + 1e-6
    register_prior("half_l2", kind="classical", make=lambda lam, _: lam * Tikhonov())
    try:
        ev = registry_denoiser("half_l2")  # a user's prior: prox of 0.1 ||x||^2 / 2 is x / 1.1
        torch.testing.assert_close(ev.denoiser(x, 0.1), x / 1.1)
    finally:
        unregister_prior("half_l2")
    with pytest.raises(ValueError, match="unknown prior 'nope'"):
        registry_denoiser("nope")


def test_prior_eval_without_the_solver_is_refused_before_training(tmp_path, capsys):
    from priors.robustness.run import main

    assert main([str(TINY), "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "stablepnp robustness" in err
    assert not (tmp_path / "checkpoints").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.read_text().replace("denoisers: [averaged, unconstrained, tv]", "denoisers: [averaged, nope]"))
    assert robustness_main([str(bad), "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown prior 'nope'" in err
    assert not (tmp_path / "o" / "checkpoints").exists()


def test_a_job_may_evaluate_priors_only(tmp_path, capsys):
    cfg = tmp_path / "priors.yaml"
    cfg.write_text(f"output_dir: {tmp_path / 'out'}\nprogress: false\nprior_eval:\n  denoisers: [tv, ridge]\n"
                   "  images: [camera]\n  image_size: 16\n  eps: 0.5\n  attack_steps: 2\n  random_trials: 2\n"
                   "  pnp_iterations: 2\n")
    assert robustness_main([str(cfg)]) == 0
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["models"] == {} and res["dataset"] is None  # no classifier data loaded
    rows = res["prior_eval"]["rows"]
    assert {(r["denoiser"], r["map"]) for r in rows} == {(d, m) for d in ("tv", "ridge") for m in ("denoiser", "pnp")}
    assert all(r["empirical_max"] <= r["certified"] * (1 + 1e-4) for r in rows)
    assert "Prior robustness" in (tmp_path / "out" / "results.md").read_text()
    cfg.write_text(f"output_dir: {tmp_path / 'out2'}\n")
    assert robustness_main([str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "prior_eval section alone" in err
