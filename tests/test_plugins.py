"""Plugins from outside the package: an installed distribution (entry point), ``--plugin`` and
``$STABLEPNP_PLUGINS`` register a prior, an algorithm and an operator that then run through the jobs.

The plugin is "installed" the way pip leaves a package: its module and a ``*.dist-info`` folder with
``entry_points.txt`` on the path (here PYTHONPATH of a fresh ``stablepnp`` process), so
``importlib.metadata`` finds its entry point exactly as for a pip-installed one.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

PLUGIN = textwrap.dedent('''
    """A lab's extension of stable-pnp: a prior, an algorithm and an operator."""
    import torch

    from pnp import PGD
    from pnp.registry import register_algorithm, register_prior
    from problems.spec import register_operator


    def _l2(lam, model):
        from priors import Tikhonov

        return lam * Tikhonov(gradient=True)


    class LabPGD(PGD):
        """PGD under the lab's own name (same map and theorem)."""

        name = "LABPGD"


    def _row_blur(spec, shape, dtype=torch.float32):
        from operators import Blur

        kernel = torch.tensor([[1.0, 2.0, 3.0, 2.0, 1.0]], dtype=torch.float64) / 9.0
        return Blur(kernel, boundary=spec.boundary, in_shape=shape)


    register_prior("lab_l2", kind="classical", make=_l2, lam_at_reference=1e-2,
                   description="the lab's gradient-l2 prior")
    register_algorithm("lab_pgd", LabPGD, description="the lab's PGD")
    register_operator("lab_rowblur", _row_blur)
''')


def _install(root: Path, *, entry_point: bool) -> None:
    (root / "lab_pnp").mkdir(parents=True)
    (root / "lab_pnp" / "__init__.py").write_text(PLUGIN)
    if entry_point:
        info = root / "lab_pnp-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-pnp\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text("[stablepnp.plugins]\nlab = lab_pnp\n")


def _stablepnp(args: list[str], root: Path, **env_extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", **env_extra}
    env.pop("STABLEPNP_PLUGINS", None) if "STABLEPNP_PLUGINS" not in env_extra else None
    return subprocess.run([sys.executable, "-m", "pnp.cli", *args], env=env, capture_output=True, text=True,
                          timeout=600, cwd=root)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    _install(root, entry_point=True)
    return root


def test_installed_plugin_appears_in_help(installed):
    out = _stablepnp(["solve", "--help"], installed)
    assert out.returncode == 0, out.stderr
    assert "lab_l2" in out.stdout and "lab_pgd" in out.stdout


def test_installed_plugin_prior_algorithm_operator_through_solve(installed):
    (installed / "job.yaml").write_text("problem: {operator: lab_rowblur, size: 32, sigma: 0.02}\n")
    out = _stablepnp(["solve", "job.yaml", "--prior", "lab_l2", "--algorithm", "lab_pgd", "--max-iter", "200",
                      "--quiet", "--no-figure", "--out", "o", "--json", "r.json", "--threads", "1"], installed)
    assert out.returncode == 0, out.stderr
    record = json.loads((installed / "r.json").read_text())
    assert record["solver"]["algorithm"] == "lab_pgd" and record["solver"]["prior"] == "lab_l2"
    assert record["problem"]["operator"] == "lab_rowblur"
    assert math.isfinite(record["psnr"]) and record["psnr"] > record["psnr_observed"]
    # the plugin algorithm keeps PGD's map, so it is accelerated like PGD and keeps the theorem
    assert record["accelerate"] == "auto" and record["acceleration"] is not None
    assert record["guarantee"]["verdict"] == "guaranteed", record["guarantee"]["line"]


def test_installed_plugin_through_folder_and_compare(installed):
    folder = installed / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        smooth = np.cumsum(np.cumsum(rng.random((24, 24)), 0), 1)
        Image.fromarray((255 * smooth / smooth.max()).astype(np.uint8)).save(folder / f"{name}.png")
    out = _stablepnp(["solve", "--input-dir", "photos", "--out", "folder_out", "--prior", "lab_l2",
                      "--algorithm", "lab_pgd", "--max-iter", "40", "--quiet", "--threads", "1"], installed)
    assert out.returncode == 0, out.stderr
    records = sorted((installed / "folder_out").glob("*.json"))
    per_image = [json.loads(p.read_text()) for p in records if p.stem in ("a", "b")]
    assert len(per_image) == 2, [p.name for p in records]
    assert all(r["algorithm"] == "lab_pgd" and r["prior"] == "lab_l2" and r["verdict"] == "guaranteed"
               for r in per_image), per_image

    (installed / "suite.yaml").write_text(textwrap.dedent("""\
        images: [camera]
        size: 32
        kernels: [gaussian:1.6]
        noise: [0.03]
        threads: 1
        solver: {max_iter: 30, tol: 1.0e-4}
        tuning: {image: motorcycle, grid_points: 3, refine_steps: 0, max_iter: 20}
        priors:
          - {prior: lab_l2, algorithms: [lab_pgd]}
        """))
    out = _stablepnp(["compare", "suite.yaml", "--out", "suite_out"], installed)
    assert out.returncode == 0, out.stderr
    (cell,) = json.loads((installed / "suite_out" / "results.json").read_text())["cells"]
    assert cell["prior"] == "lab_l2" and cell["algorithm"] == "lab_pgd"
    assert cell["verdict"] == "guaranteed" and "Anderson" in cell["theorem"]  # accelerated, theorem kept
    assert cell["psnr"] > cell["psnr_observed"]


def test_plugin_flag_and_environment_variable(tmp_path):
    _install(tmp_path, entry_point=False)
    base = ["solve", "--prior", "lab_l2", "--size", "24", "--max-iter", "5", "--quiet", "--no-figure",
            "--out", "o", "--threads", "1"]
    missing = _stablepnp(base, tmp_path)
    assert missing.returncode == 2 and "lab_l2" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    assert _stablepnp(["--plugin", "lab_pnp", *base], tmp_path).returncode == 0
    assert _stablepnp([*base, "--plugin=lab_pnp"], tmp_path).returncode == 0
    assert _stablepnp(base, tmp_path, STABLEPNP_PLUGINS="lab_pnp").returncode == 0
    bad = _stablepnp(["--plugin", "no_such_lab", *base], tmp_path)
    assert bad.returncode == 2 and "no_such_lab" in bad.stderr and "Traceback" not in bad.stderr


def test_help_and_argument_errors_import_no_torch():
    code = ("import sys; from pnp.cli import main; "
            "rc = [main(a) for a in (['--help'], ['solve', '--size', '-3'])]; "
            "print(rc, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().endswith("[0, 2] False"), out.stdout + out.stderr
    code = ("import contextlib, io, sys; from pnp.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        main(['solve', '--help'])\n    except SystemExit:\n        pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stdout + out.stderr


def test_packages_import_lazily():
    code = ("import sys; import pnp, priors, problems, operators; before = 'torch' in sys.modules; "
            "from pnp import PGD; from priors import certify; import priors.certify; "
            "from priors import certify as again; "
            "print(before, PGD.__name__, callable(certify) and certify is again, sorted(set(pnp.__all__) - set(dir(pnp))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False PGD True []", out.stdout + out.stderr
