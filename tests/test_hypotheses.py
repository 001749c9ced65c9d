"""Hypotheses fail closed, inputs are checked before work (issue 24, items 2 and 5).

* the data term's operator is tested (linear, adjoint) before a theorem is applied: a nonlinear
  ``FunctionOperator`` or a deepinv physics with a wrong adjoint gets "no guarantee" naming the test;
  the built-in operators that skip the test at run time pass it here (they declare
  ``verified_by_tests``);
* an algorithm subclass that overrides ``update()`` does not inherit its parent's theorem;
* image headers are read before decoding, against a pixel cap; 16-bit colour PNGs are decoded by Pillow;
* a training checkpoint with non-finite weights is never resumed, never written;
* robustness and compare configs: out-of-range counts and radii, non-finite numbers, non-model
  checkpoints, duplicates and a figure that matches no cell are refused in one line (exit code 2).
"""

from __future__ import annotations

import contextlib
import io
import math
import struct
import sys
import time
import zlib
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
import yaml

from operators import Blur, Downsampling, FunctionOperator, Identity, Inpainting, LinearOperator, box, gaussian
from operators.blur import BOUNDARIES
from operators.fidelity import L2Fidelity
from pnp import ADMM, FISTA, PGD, check_assumptions
from pnp.algorithms import PGDState
from pnp.assumptions import ForwardBackward, Theory
from pnp.assumptions_registry import _CLASSES, _THEORIES
from priors.classical import TV, Tikhonov

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (1, 1, 16, 16)
HYP = "A linear with A* its adjoint"


def _y(dtype=torch.float64) -> torch.Tensor:
    return torch.rand(SHAPE, generator=torch.Generator().manual_seed(0), dtype=dtype)


def _no_guarantee(report, *fragments: str) -> None:
    assert report.verdict == "no guarantee", str(report)
    assert not report.ok and report.conclusion == ""
    for fragment in fragments:
        assert fragment in report.reason, report.reason


# ---------------------------------------------------------------------------- 1. linearity, adjointness
NONLINEAR = {
    "square": (lambda x: x ** 2, "is not linear"),
    "bias": (lambda x: x + 1, "is not linear"),
    "relu": (torch.relu, "is not linear"),
    "clip": (lambda x: x.clamp(0, 1), "is not linear"),
    "detach": (lambda x: x.detach(), "A* is not the adjoint"),  # linear, but its autograd adjoint is zero
    "detach-blur": (lambda x: Blur(gaussian(1.0))(x).detach(), "A* is not the adjoint"),
}


@pytest.mark.parametrize("name", list(NONLINEAR))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_function_operator_that_is_not_linear_gets_no_guarantee(name, dtype):
    fn, fragment = NONLINEAR[name]
    A = FunctionOperator(fn, in_shape=SHAPE, name=name)
    fid = L2Fidelity(A, _y(dtype))
    for alg in (PGD(fid, 0.1 * Tikhonov()), FISTA(fid, 0.1 * Tikhonov()), ADMM(fid, 0.1 * Tikhonov(), step=1.0)):
        report = alg.check_assumptions()
        _no_guarantee(report, name, fragment)
        assert report.hypotheses[0].name == HYP and not report.hypotheses[0].holds
        assert report.hypotheses[0].value is None or report.hypotheses[0].value > 1e-3  # far above the tolerance
    tol = "0.00012" if dtype == torch.float32 else "2.2e-13"
    assert f"> {tol}" in report.reason  # the stated tolerance, scaled to the dtype
    # the module-level lookup by name applies the same test
    _no_guarantee(check_assumptions("PGD", fid, 0.1 * Tikhonov(), step=0.5), fragment)


def test_a_nonlinear_operator_runs_but_never_converges_with_a_guarantee():
    A = FunctionOperator(lambda x: x ** 2, in_shape=SHAPE, name="square")
    res = PGD(L2Fidelity(A, _y()), 0.1 * Tikhonov()).run(max_iter=5, progress=False)
    assert res.report.verdict == "no guarantee" and "(square, in_shape=(1, 1, 16, 16)) is not linear" in res.report.reason


@pytest.mark.parametrize("fn", [lambda x: x.mean(dim=-2, keepdim=True),
                                lambda x: x + torch.roll(x, shifts=(2, 3), dims=(-2, -1)),
                                lambda x: torch.nn.functional.avg_pool2d(x, 2)], ids=["colmean", "shiftadd", "pool"])
def test_linear_function_operators_keep_their_guarantee(fn):
    A = FunctionOperator(fn, in_shape=SHAPE)
    report = PGD(L2Fidelity(A, _y()), 0.1 * Tikhonov()).check_assumptions()
    assert report.verdict == "guaranteed", str(report)
    hyp = report.hypotheses[0]
    assert hyp.name == HYP and hyp.holds and "randomised test in float64" in hyp.detail
    assert hyp.value < 1e-13


def test_a_function_autograd_cannot_differentiate_is_refused_in_one_line():
    A = FunctionOperator(lambda x: torch.from_numpy(x.numpy() * 2.0), in_shape=SHAPE, name="numpy")
    with pytest.raises(ValueError, match=r"^FunctionOperator\(numpy.*cannot be derived by automatic differentiation"):
        PGD(L2Fidelity(A, _y()), 0.1 * Tikhonov())


def test_the_check_runs_once_per_operator_and_shape():
    calls = []

    def fn(x):
        calls.append(1)
        return 2 * x

    A = FunctionOperator(fn, in_shape=SHAPE)
    first = A.check_linearity(dtype=torch.float64)
    n = len(calls)
    assert first.holds and first is A.check_linearity(dtype=torch.float64) and len(calls) == n
    PGD(L2Fidelity(A, _y()), 0.1 * Tikhonov())  # the same shape and dtype: cached, no new call for the test
    assert first.norm == pytest.approx(2.0, rel=1e-3)


def _blurfft():
    dinv = pytest.importorskip("deepinv")
    return dinv.physics.BlurFFT((1, 16, 16), filter=torch.ones(1, 1, 3, 3) / 9)


@pytest.mark.parametrize("scale", [0.5, 2.0, -1.0])
def test_deepinv_physics_with_a_wrong_adjoint_gets_no_guarantee(scale):
    from operators import from_deepinv

    true = _blurfft()
    import deepinv as dinv

    wrong = dinv.physics.LinearPhysics(A=true.A, A_adjoint=lambda y: scale * true.A_adjoint(y))
    A = from_deepinv(wrong, in_shape=SHAPE)
    fid = L2Fidelity(A, _y(torch.float32))
    if scale < 0:  # <v, A*(Av)> < 0: no norm exists, the step cannot be derived (refused, one line)
        with pytest.raises(ValueError, match="is not the adjoint"):
            PGD(fid, 0.1 * Tikhonov())
        _no_guarantee(check_assumptions("PGD", fid, 0.1 * Tikhonov(), step=0.5), "A* is not the adjoint")
        return
    _no_guarantee(PGD(fid, 0.1 * Tikhonov()).check_assumptions(), "A* is not the adjoint of from_deepinv(LinearPhysics)")


def test_deepinv_blur_with_its_true_adjoint_keeps_its_guarantee():
    from operators import from_deepinv

    A = from_deepinv(_blurfft())
    report = PGD(L2Fidelity(A, _y(torch.float32)), 0.1 * Tikhonov()).check_assumptions()
    assert report.verdict == "guaranteed"
    assert "randomised test in float32" in report.hypotheses[0].detail  # the physics' own dtype


# ---------------------------------------------------------------------------- verified_by_tests: the contract
def _builders() -> dict[type, list]:
    mask = (torch.rand(16, 16, generator=torch.Generator().manual_seed(1)) > 0.5).double()
    return {
        Blur: [Blur(gaussian(1.2), boundary=b) for b in BOUNDARIES] + [Blur(box(4), boundary="zero")],
        Downsampling: [Downsampling(2, filter=f) for f in ("gaussian", "box", None)],
        Inpainting: [Inpainting(mask)],
        Identity: [Identity()],
    }


def _verified_classes() -> list[type]:
    import operators

    seen, todo = [], [LinearOperator]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("operators") and sub.__dict__.get("verified_by_tests"):
                seen.append(sub)
    assert operators  # imported: every built-in class is defined
    return seen


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_every_operator_class_verified_by_tests_passes_the_runtime_test(dtype):
    builders = _builders()
    composites = {"AdjointOperator", "ComposedOperator", "SumOperator", "ScaledOperator", "GramOperator"}
    for cls in _verified_classes():
        if cls.__name__ in composites:
            continue
        assert cls in builders, f"{cls.__name__} declares verified_by_tests: add it to this test"
        for A in builders[cls]:
            r = A.check_linearity(SHAPE, dtype=dtype, force=True)
            assert r.holds and not r.verified_by_tests, r.detail
            assert math.isfinite(r.norm) and r.worst <= r.tol
    # the algebra of verified operators (verified structurally) passes the test as well
    A, M = Blur(gaussian(1.0)), Inpainting(torch.ones(16, 16))
    for op in (A.T, M @ A, A + M, 2.5 * A, A.gram(), -(A.T @ A)):
        assert op.check_linearity(SHAPE).verified_by_tests
        assert op.check_linearity(SHAPE, dtype=dtype, force=True).holds


def test_a_subclass_of_a_verified_operator_is_tested_again():
    class Shifted(Blur):
        def forward(self, x):
            return super().forward(x) + 0.1

    r = Shifted(gaussian(1.0)).check_linearity(SHAPE)
    assert not r.verified_by_tests and not r.holds and "is not linear" in r.failure
    assert (Shifted(gaussian(1.0)) @ Identity()).check_linearity(SHAPE).holds is False


def test_a_nan_norm_is_refused_in_one_line():
    class NaNNorm(Identity):
        def _exact_norm(self, shape, dtype):
            return float("nan")

    with pytest.raises(ValueError, match=r"\.norm\(\) is nan") as info:
        PGD(L2Fidelity(NaNNorm(), _y()), 0.1 * Tikhonov())
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"\.norm\(\) is nan"):
        (float("nan") * Blur(gaussian(1.0))).norm(SHAPE)


# ---------------------------------------------------------------------------- 2. update() overridden
class Damped(PGD):
    """A subclass that changes the iteration and declares nothing."""

    def update(self, state: PGDState) -> PGDState:
        new = super().update(state)
        return PGDState(x=0.5 * (state.x + new.x), iteration=new.iteration)


class DampedWithTheory(Damped):
    theory: ClassVar[Theory] = ForwardBackward()  # the subclass vouches for its own iteration


class Renamed(PGD):
    """A subclass that changes nothing of the iteration (only the step's default): keeps PGD's theorem."""

    def _resolve_step(self, step):
        return super()._resolve_step(step if step is not None else 0.5)


def test_overriding_update_drops_the_parents_theorem():
    fid = L2Fidelity(Blur(gaussian(1.0)), _y())
    report = Damped(fid, 0.1 * Tikhonov()).check_assumptions()
    _no_guarantee(report, "update() overridden by Damped", "theorem of PGD")
    assert report.hypotheses[0].name == "the iteration is the one the theorem covers"
    res = Damped(fid, 0.1 * Tikhonov()).run(max_iter=3, progress=False)
    assert res.report.verdict == "no guarantee"
    assert Damped(fid, 0.1 * Tikhonov(), accelerate="auto").acceleration is None  # nothing to keep
    assert DampedWithTheory(fid, 0.1 * Tikhonov()).check_assumptions().verdict == "guaranteed"
    assert Renamed(fid, 0.1 * Tikhonov()).check_assumptions().verdict == "guaranteed"


def test_a_registered_name_that_overrides_update_gets_no_guarantee_by_name():
    class Sneaky(PGD):
        name: ClassVar[str] = "Sneaky"

        def update(self, state):
            return state

    try:
        fid = L2Fidelity(Blur(gaussian(1.0)), _y())
        _no_guarantee(check_assumptions("sneaky", fid, 0.1 * TV(), step=1.0), "update() overridden by Sneaky")
    finally:
        _THEORIES.pop("SNEAKY", None)
        _CLASSES.pop("SNEAKY", None)


# ---------------------------------------------------------------------------- 3. image headers, 16-bit PNG
def _bomb_png(path: Path, width: int, height: int) -> Path:
    """A small valid PNG whose IHDR is patched (with its CRC) to declare ``width x height``."""
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def _bomb_bmp(path: Path, width: int, height: int) -> Path:
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    struct.pack_into("<ii", data, 18, width, height)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("kind,dims", [("png", (9000, 9000)), ("png", (100000, 100000)), ("png", (70000, 1000)),
                                       ("bmp", (9000, 9000)), ("bmp", (30000, 30000))])
def test_a_huge_header_is_refused_before_decoding(tmp_path, kind, dims):
    from problems import load_image
    from problems.images import MAX_IMAGE_PIXELS

    path = (_bomb_png if kind == "png" else _bomb_bmp)(tmp_path / f"big.{kind}", *dims)
    assert dims[0] * dims[1] > MAX_IMAGE_PIXELS
    t0 = time.perf_counter()
    for size in (None, 32):
        with pytest.raises(ValueError, match=r"big\.%s' declares .*pixels in its header.*downscale or crop" % kind):
            load_image(path, size=size)
    assert time.perf_counter() - t0 < 2.0  # nothing decoded


def test_huge_npy_and_tiff_headers_are_refused(tmp_path):
    import tifffile

    from problems import load_image

    npy = tmp_path / "big.npy"
    np.lib.format.open_memmap(npy, mode="w+", dtype=np.uint8, shape=(9000, 9000)).flush()
    with pytest.raises(ValueError, match=r"big\.npy' holds an array of shape \(9000, 9000\)"):
        load_image(npy)
    tif = tmp_path / "big.tif"
    tifffile.imwrite(tif, np.zeros((9000, 9000), np.uint8), compression="zlib")
    with pytest.raises(ValueError, match=r"big\.tif' declares 9000 x 9000"):
        load_image(tif)


def test_pillow_limit_is_the_projects_cap():
    from PIL import Image

    from problems.images import MAX_IMAGE_PIXELS

    assert Image.MAX_IMAGE_PIXELS == MAX_IMAGE_PIXELS


def run_cli(argv: list[str]) -> tuple[int, str]:
    from pnp.cli import main

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


def assert_one_line(code: int, err: str, *fragments: str) -> None:
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and ": error: " in lines[0], err
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], lines[0]


def test_cli_refuses_a_huge_header_alone_and_in_a_folder(tmp_path):
    from PIL import Image

    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(folder / "a_ok.png")
    _bomb_png(folder / "b_big.png", 9000, 9000)
    code, err = run_cli(["solve", "--input-dir", str(folder), "--out", str(tmp_path / "out"), "--quiet", "--no-figure"])
    assert_one_line(code, err, "b_big.png", "81,000,000 pixels")
    assert not (tmp_path / "out" / "a_ok.json").exists()  # refused before any image was solved
    for size in ([], ["--size", "32"]):
        code, err = run_cli(["solve", "--image", str(folder / "b_big.png"), *size, "--out", str(tmp_path / "o2"),
                             "--quiet", "--no-figure"])
        assert_one_line(code, err, "b_big.png", "MAX_IMAGE_PIXELS")


def _write_png16(path: Path, array: np.ndarray) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from test_problems import write_png16  # the test suite's own encoder, every row filter

    write_png16(path, array)


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_16bit_colour_png_decoded_by_pillow_to_every_bit(tmp_path, channels):
    from problems.images import _read_png16, _read_file

    data = np.random.default_rng(channels).integers(0, 65536, size=(11, 7, channels), dtype=np.uint16)
    path = tmp_path / "c16.png"
    _write_png16(path, data)
    np.testing.assert_array_equal(_read_png16(path), data)  # alpha too, every bit
    np.testing.assert_array_equal(_read_file(path), data)


def test_no_hand_written_png_decoder_is_left():
    source = (ROOT / "problems" / "images.py").read_text()
    assert "zlib.decompress" not in source and "import png" not in source and "Paeth" not in source


# ---------------------------------------------------------------------------- 4. training checkpoints
def _tiny_train(tmp_path: Path) -> tuple[dict, Path]:
    sys.path.insert(0, str(Path(__file__).parent))
    from test_training import tiny

    cfg = tiny(tmp_path)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return cfg, path


def _train_main(argv: list[str]) -> tuple[int, str]:
    from priors.training import main

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


@pytest.mark.parametrize("poison", ["nan", "inf", "optimizer", "forged"])
def test_resume_from_a_broken_checkpoint_is_refused(tmp_path, poison):
    from priors.training import TrainConfig, train

    cfg, path = _tiny_train(tmp_path)
    train(TrainConfig.from_dict(cfg), progress=False, max_steps=2)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)
    if poison in ("nan", "inf"):
        key = next(k for k, v in state["state_dict"].items() if v.is_floating_point())
        state["state_dict"][key] = state["state_dict"][key] * float(poison)
    elif poison == "optimizer":
        for slot in state["optimizer"]["state"].values():
            slot["exp_avg"] = slot["exp_avg"] * float("nan")
    else:
        del state["ranks"]
    torch.save(state, ckpt)
    before = ckpt.read_bytes()
    code, err = _train_main([str(path), "--resume", "--quiet"])
    fragment = "non-finite" if poison != "forged" else "missing ranks"
    assert_one_line(code, err, "checkpoint.pt", fragment)
    assert not (tmp_path / "run" / "model.pt").exists() and ckpt.read_bytes() == before


def test_weights_that_turn_nan_never_reach_a_checkpoint(tmp_path, monkeypatch):
    import priors.training as training

    cfg, path = _tiny_train(tmp_path)
    original = training._Session.after_step

    def poisoned(self, outcome):
        if outcome.step == 3:
            with torch.no_grad():
                next(self.model.parameters()).fill_(float("nan"))
        return original(self, outcome)

    monkeypatch.setattr(training._Session, "after_step", poisoned)
    code, err = _train_main([str(path), "--quiet"])
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 1 and len(lines) == 1 and "non-finite" in lines[0] and "last good checkpoint" in lines[0], err
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 2  # the checkpoint of step 2, not overwritten
    assert all(bool(torch.isfinite(v).all()) for v in state["state_dict"].values() if v.is_floating_point())
    assert not (tmp_path / "run" / "model.pt").exists()


# ---------------------------------------------------------------------------- 5. robustness configs
TINY = ROOT / "priors" / "robustness" / "configs" / "tiny.yaml"


def _robustness(tmp_path: Path, edit) -> tuple[int, str, Path]:
    from priors.robustness.run import main

    cfg = yaml.safe_load(TINY.read_text())
    cfg.pop("prior_eval")
    out = tmp_path / "out"
    cfg["output_dir"] = str(out)
    edit(cfg)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main([str(path), "--no-progress"])
    return code, err.getvalue(), out


def _train(key, value):
    return lambda c: c["models"][0]["train"].__setitem__(key, value)


def _section(section, key, value):
    return lambda c: c.setdefault(section, {}).__setitem__(key, value)


def _prior_eval(key, value):
    def edit(c):
        c["prior_eval"] = {"denoisers": ["averaged"], "images": ["camera"], key: value}
    return edit


ROBUSTNESS_CASES = {
    "epochs-inf": (_train("epochs", math.inf), "train.epochs must be a finite number > 0"),
    "epochs-nan": (_train("epochs", math.nan), "train.epochs"),
    "epochs-zero": (_train("epochs", 0), "train.epochs"),
    "epochs-negative": (_train("epochs", -1.0), "train.epochs"),
    "epochs-huge": (_train("epochs", 1e300), "lower epochs"),
    "lr-inf": (_train("lr", math.inf), "train.lr"),
    "batch-zero": (_train("batch_size", 0), "train.batch_size must be an integer >= 1"),
    "checkpoint-every-zero": (_train("checkpoint_every", 0), "train.checkpoint_every"),
    "margin-negative": (_train("margin_eps", -0.1), "train.margin_eps"),
    "budget-nan": (_train("time_budget_s", math.nan), "train.time_budget_s"),
    "test-limit-zero": (_section("data", "test_limit", 0), "data.test_limit must be an integer >= 1"),
    "train-limit-negative": (_section("data", "train_limit", -5), "data.train_limit"),
    "attack-limit-zero": (_section("data", "attack_limit", 0), "data.attack_limit"),
    "eps-negative": (_section("evaluation", "eps", [-0.1]), "evaluation.eps must be a finite number > 0"),
    "eps-zero": (_section("evaluation", "eps", [0.0]), "evaluation.eps"),
    "eps-inf": (_section("evaluation", "eps", [math.inf]), "evaluation.eps"),
    "eps-empty": (_section("evaluation", "eps", []), "evaluation.eps must hold at least one radius"),
    "curve-negative": (_section("evaluation", "curve_eps_l2", [-0.5, 0.5]), "evaluation.curve_eps_l2"),
    "curve-inf": (_section("evaluation", "curve_eps_linf", [0.0, math.inf]), "evaluation.curve_eps_linf"),
    "pgd-steps-zero": (_section("evaluation", "pgd_steps", 0), "evaluation.pgd_steps"),
    "restarts-negative": (_section("evaluation", "pgd_restarts", -1), "evaluation.pgd_restarts"),
    "gaussian-negative": (_section("evaluation", "gaussian_std", [-0.1]), "evaluation.gaussian_std"),
    "salt-above-one": (_section("evaluation", "salt_pepper", [1.5]), "evaluation.salt_pepper"),
    "eval-batch-zero": (_section("evaluation", "batch_size", 0), "evaluation.batch_size"),
    "prior-eps-zero": (_prior_eval("eps", 0.0), "prior_eval.eps"),
    "prior-sigma-inf": (_prior_eval("sigma", math.inf), "prior_eval.sigma"),
    "prior-iterations-zero": (_prior_eval("pnp_iterations", 0), "prior_eval.pnp_iterations"),
    "prior-trials-negative": (_prior_eval("random_trials", -2), "prior_eval.random_trials"),
    "prior-noise-negative": (_prior_eval("noise_std", -0.01), "prior_eval.noise_std"),
    "prior-missing-checkpoint": (_prior_eval("averaged_checkpoint", "/nonexistent/den.pt"), "does not exist"),
    "threads-zero": (lambda c: c.__setitem__("threads", 0), "config.threads"),
    "threads-huge": (lambda c: c.__setitem__("threads", 100000), "config.threads"),
    "seed-negative": (lambda c: c.__setitem__("seed", -1), "config.seed"),
    "missing-checkpoint": (lambda c: c["models"][0].__setitem__("checkpoint", "/nonexistent/x.pt"), "does not exist"),
}


@pytest.mark.parametrize("case", list(ROBUSTNESS_CASES))
def test_robustness_values_are_refused_in_one_line_before_any_work(tmp_path, case):
    edit, fragment = ROBUSTNESS_CASES[case]
    code, err, out = _robustness(tmp_path, edit)
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and fragment in lines[0], err
    assert not out.exists()  # refused before the output folder, let alone a training


@pytest.mark.parametrize("kind", ["text", "dict", "training-checkpoint", "nan-weights"])
def test_a_non_model_checkpoint_is_refused_before_training(tmp_path, kind):
    from priors.robustness.models import ClassifierConfig, build_classifier

    path = tmp_path / "given.pt"
    if kind == "text":
        path.write_text("not a checkpoint\n")
    elif kind == "dict":
        torch.save({"weights": torch.zeros(3)}, path)
    elif kind == "training-checkpoint":
        torch.save({"format": "stable-pnp-checkpoint", "state_dict": {}}, path)
    else:
        cfg = yaml.safe_load(TINY.read_text())["models"][0]["model"]
        model = build_classifier(ClassifierConfig.from_dict(cfg))
        state = {k: v * float("nan") if v.is_floating_point() else v for k, v in model.state_dict().items()}
        torch.save({"config": model.config.to_dict(), "model": state}, path)
    code, err, out = _robustness(tmp_path, lambda c: c["models"][0].__setitem__("checkpoint", str(path)))
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and "given.pt" in lines[0], err
    assert not out.exists()


# ---------------------------------------------------------------------------- compare configs
COMPARE_BASE = {"images": ["camera", "astronaut"], "size": 32, "kernels": ["gaussian:1.6", "box:3"],
                "noise": [0.01, 0.02], "priors": [{"prior": "tv"}]}
COMPARE_CASES = {
    "image-twice": ({"images": ["camera", "camera"]}, "'images' lists 'camera' twice"),
    "kernel-twice": ({"kernels": ["box:3", "box:3"]}, "'kernels' lists 'box:3' twice"),
    "noise-twice": ({"noise": [0.01, 0.01]}, "'noise' lists 0.01 twice"),
    "algorithm-twice": ({"priors": [{"prior": "tv", "algorithms": ["pgd", "pgd"]}]}, "'algorithms' lists 'pgd'"),
    "step-factor-twice": ({"priors": [{"prior": "tv", "step_factors": [1.0, 1.0]}]}, "'step_factors'"),
    "entry-twice": ({"priors": [{"prior": "tv", "label": "A"}, {"prior": "tv", "label": "B"}]}, "under two labels"),
    "tuning-kernel-twice": ({"tuning": {"kernels": ["box:3", "box:3"]}}, "'tuning.kernels'"),
    "figure-kernel": ({"figure": {"kernel": "gaussian:2"}}, "'figure.kernel' is 'gaussian:2', which matches no cell"),
    "figure-noise": ({"figure": {"noise": 0.05}}, "'figure.noise' is 0.05, which matches no cell"),
}


@pytest.mark.parametrize("case", list(COMPARE_CASES))
def test_compare_config_duplicates_and_orphan_figures_are_refused(case):
    from pnp.compare_config import CompareConfig

    change, fragment = COMPARE_CASES[case]
    with pytest.raises(ValueError) as info:
        CompareConfig.from_dict({**COMPARE_BASE, **change})
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_compare_cli_refuses_a_figure_kernel_that_matches_no_cell(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**COMPARE_BASE, "figure": {"kernel": "disk:2"}}))
    code, err = run_cli(["compare", str(path), "--out", str(tmp_path / "out"), "--no-progress"])
    assert_one_line(code, err, "figure.kernel")
    assert not (tmp_path / "out").exists()


def test_a_valid_compare_config_still_loads():
    from pnp.compare_config import CompareConfig

    cfg = CompareConfig.from_dict({**COMPARE_BASE, "figure": {"kernel": "box:3", "noise": 0.02},
                                   "priors": [{"prior": "tv", "label": "A"}, {"prior": "tv", "label": "B", "lam": 0.1}]})
    assert len(cfg.priors) == 2 and cfg.figure.kernel == "box:3"
