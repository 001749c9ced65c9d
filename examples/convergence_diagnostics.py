"""Convergence diagnostics: the same PnP problem with a step inside the bound and one above it.

    python examples/convergence_diagnostics.py
    python examples/convergence_diagnostics.py --bad-step 2.2

PnP proximal gradient with the certified denoiser ``ridge_stack_gray`` converges when the step is
below 2/||A||^2 (an averaged iteration map). ``check_assumptions()`` says so before the first
iteration, and refuses a larger step unless ``unsafe=True``. ``run_with_diagnostics`` then checks
what the theorem predicts along the run: the step lengths ||x_{k+1} - x_k|| must not increase and
must stay under the o(1/sqrt(k)) envelope of averaged iterations. Writes diagnostics.png to --out.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from operators import Blur, Gaussian, parse_kernel_spec  # noqa: E402
from pnp import PGD  # noqa: E402
from pnp.convergence import run_with_diagnostics  # noqa: E402
from priors import denoiser_at_level, load_pretrained, trained_sigma_range  # noqa: E402
from problems import InverseProblem, load_image  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--image", default="camera", help="image file or bundled name (default camera)")
parser.add_argument("--size", type=int, default=128, help="crop/resize to N x N (default 128)")
parser.add_argument("--good-step", type=float, default=1.0, help="step, in units of 1/||A||^2 (default 1.0)")
parser.add_argument("--bad-step", type=float, default=2.5, help="step above the bound 2, same units (default 2.5)")
parser.add_argument("--max-iter", type=int, default=200)
parser.add_argument("--out", default="examples_out/convergence_diagnostics", help="output folder")
parser.add_argument("--smoke", action="store_true", help="tiny size and few iterations (for CI)")
args = parser.parse_args()
if args.smoke:
    args.size, args.max_iter = 32, 40
out = Path(args.out)
if out.exists() and not out.is_dir():
    parser.error(f"--out '{out}' is a file; give a folder")
out.mkdir(parents=True, exist_ok=True)

# 1. One problem: Gaussian blur and noise 0.01; PnP prior: the certified ridge stack.
x = load_image(args.image, size=args.size)
A = Blur(parse_kernel_spec("gaussian:1.6"))
problem = InverseProblem.simulate(x, A, Gaussian(0.01), seed=0)
model = load_pretrained("ridge_stack_gray")
prior = denoiser_at_level(model, 0.0025, trained_sigma_range(model))  # level 0.25 x noise
unit = 1 / problem.fidelity.lipschitz_grad()                         # 1/L = 1/||A||^2
print(f"PSNR observation: {problem.psnr(problem.y):.2f} dB")

# 2. Two runs of the plain iteration (no acceleration, so the envelope applies).
runs = {}
for label, factor in [("good", args.good_step), ("bad", args.bad_step)]:
    solver = PGD(problem, prior, step=factor * unit, unsafe=factor >= 2)
    print(f"\n--- step {factor:g}/||A||^2 ({label}) ---")
    print(solver.check_assumptions().summary())
    result, diag = run_with_diagnostics(solver, max_iter=args.max_iter, tol=1e-5, truth=x)
    name = f"step {factor:g}/L"
    runs[name] = (result, diag)
    print(f"PSNR {name}: {problem.psnr(result.x):.2f} dB   ({result.status} after {result.iterations} iterations)")
    print("diagnostics:", diag.summary())
    print("theory:", diag.theory)

# 3. Figure: residual curves of both runs, and the step lengths against the envelope.
fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 4.4))
for i, (name, (result, diag)) in enumerate(runs.items()):
    ax1.semilogy(result.history["residual"], color=f"C{i}", label=f"{name} ({result.status})")
    k = range(1, len(diag.step_lengths) + 1)
    ax2.loglog(k, diag.step_lengths, color=f"C{i}", label=f"{name}: ||x_k+1 - x_k||")
    if diag.envelope is not None:
        ax2.loglog(k, diag.envelope, "--", color=f"C{i}", label=f"{name}: averaged-iteration envelope")
    ax3.plot(result.history["psnr"], color=f"C{i}", label=name)
ax1.set(title="relative fixed-point residual", xlabel="iteration")
ax2.set(title="step lengths", xlabel="iteration")
ax3.set(title="PSNR (dB)", xlabel="iteration")
ax3.axhline(problem.psnr(problem.y), color="gray", ls=":", label="observation")
for ax in (ax1, ax2, ax3):
    ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(out / "diagnostics.png", dpi=100)
print(f"\nfigure {out / 'diagnostics.png'}")
