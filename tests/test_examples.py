"""Every script in examples/ runs at smoke size, writes a valid PNG figure and beats its baseline.

Each script prints ``PSNR <label>: <value> dB`` lines; :data:`EXAMPLES` says which figure it writes,
which label is the baseline (the observation, or FBP for CT) and which results must beat it. A
script without an entry here fails :func:`test_every_example_has_an_entry` and its own run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "examples"

#: script -> figure it writes, the baseline PSNR label, labels that must beat it ("better") or not
#: ("worse"), and text its output must hold ("says") or must not ("never").
EXAMPLES: dict[str, dict] = {
    "deblur_your_photo.py": {"figure": "deblur.png", "baseline": "observation", "better": ["reconstruction"]},
    "ct_with_deepinv.py": {"figure": "ct.png", "baseline": "FBP", "better": ["TV-FISTA"]},
    "inpainting_color.py": {"figure": "inpainting.png", "baseline": "observation",
                            "better": ["TV-FISTA", "PnP ridge_stack"]},
    "convergence_diagnostics.py": {"figure": "diagnostics.png", "baseline": "observation", "better": ["step 1/L"],
                                   "worse": ["step 2.5/L"],  # the step above the bound diverges, flagged
                                   "says": ["PGD: guaranteed", "PGD: not guaranteed", "(diverged after"]},
    "learned_vs_classical.py": {"figure": "comparison.png", "baseline": "observation",
                                "better": ["tv", "wavelet", "ridge", "ridge_stack", "averaged"]},
    "certify_and_attack.py": {"figure": "attack.png", "baseline": "noisy input",
                              "better": ["averaged_gray", "averaged_unconstrained_gray"],
                              "says": ["averaged_gray: adversarial search finds"], "never": ["ABOVE THE CERTIFICATE"]},
    "train_small_prior.py": {"figure": "train.png", "baseline": "observation",
                             "better": ["PnP with the trained prior"]},
}

PSNR_LINE = re.compile(r"^PSNR (?P<label>.+?): (?P<value>-?\d+(?:\.\d+)?) dB", re.MULTILINE)


def scripts() -> list[str]:
    return sorted(p.name for p in FOLDER.glob("*.py"))


def run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(FOLDER / script), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


def psnrs(stdout: str) -> dict[str, float]:
    return {m["label"]: float(m["value"]) for m in PSNR_LINE.finditer(stdout)}


def assert_png(path: Path) -> None:
    assert path.is_file(), f"no figure {path}"
    with Image.open(path) as img:
        assert img.format == "PNG"
        img.verify()
    with Image.open(path) as img:  # verify() leaves the file unusable: open it again to read pixels
        pixels = np.asarray(img.convert("L"), dtype=float)
    assert min(pixels.shape) >= 100 and pixels.std() > 1.0, "the figure is blank or tiny"


def test_every_example_has_an_entry():
    assert scripts(), "no scripts found in examples/"
    missing, stale = sorted(set(scripts()) - set(EXAMPLES)), sorted(set(EXAMPLES) - set(scripts()))
    assert not missing and not stale, f"add a test entry to EXAMPLES for {missing}; drop the entries {stale}"
    readme = (FOLDER / "README.md").read_text(encoding="utf-8")
    assert all(name in readme for name in scripts()), "examples/README.md must list every script"


@pytest.mark.parametrize("script", scripts())
def test_example_runs_at_smoke_size(script, tmp_path):
    assert script in EXAMPLES, f"examples/{script} has no entry in tests/test_examples.py EXAMPLES"
    spec = EXAMPLES[script]
    out = tmp_path / "out"
    proc = run(script, "--smoke", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert_png(out / spec["figure"])
    assert not (tmp_path / "examples_out").exists(), "the script wrote outside --out"
    found = psnrs(proc.stdout)
    assert spec["baseline"] in found, f"no 'PSNR {spec['baseline']}:' line in\n{proc.stdout}"
    base = found[spec["baseline"]]
    for label in spec["better"]:
        assert label in found, f"no 'PSNR {label}:' line in\n{proc.stdout}"
        assert found[label] > base + 0.1, f"{script}: {label} {found[label]:.2f} dB does not beat {base:.2f} dB"
    for label in spec.get("worse", []):
        assert found[label] < base, f"{script}: {label} {found[label]:.2f} dB should be below {base:.2f} dB"
    for text in spec.get("says", []):
        assert text in proc.stdout, f"{script}: '{text}' missing from\n{proc.stdout}"
    for text in spec.get("never", []):
        assert text not in proc.stdout, f"{script}: '{text}' in\n{proc.stdout}"
    assert "guaranteed" in proc.stdout or "certificate" in proc.stdout  # a verdict or a certificate check


def test_deblur_a_measured_image_and_keep_user_files(tmp_path):
    """--observed: no truth, so no PSNR; an --out that is a file is refused and left as it was."""
    from operators import Blur, Gaussian, parse_kernel_spec
    from problems import InverseProblem, load_image

    x = load_image("camera", size=40)
    y = InverseProblem.simulate(x, Blur(parse_kernel_spec("motion:15:30")), Gaussian(0.01), seed=0).y
    np.save(tmp_path / "y.npy", y[0, 0].numpy())
    before = (tmp_path / "y.npy").read_bytes()
    proc = run("deblur_your_photo.py", "--smoke", "--observed", "--image", str(tmp_path / "y.npy"),
               "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert psnrs(proc.stdout) == {} and "guarantee guaranteed" in proc.stdout
    assert_png(tmp_path / "out" / "deblur.png")
    assert (tmp_path / "y.npy").read_bytes() == before  # the input file is untouched

    mine = tmp_path / "notes.txt"
    mine.write_text("my notes")
    proc = run("deblur_your_photo.py", "--smoke", "--out", str(mine), cwd=tmp_path)
    assert proc.returncode == 2 and "is a file" in proc.stderr
    assert mine.read_text() == "my notes"
