"""Deblur your own photo with your own blur kernel, using the shipped convex ridge prior.

    python examples/deblur_your_photo.py                                   # bundled cameraman
    python examples/deblur_your_photo.py --image photo.png --kernel motion:15:30 --noise 0.01
    python examples/deblur_your_photo.py --image blurred.png --observed --kernel psf.npy

Without --observed the blurred, noisy image is simulated from --image (so the PSNR is known);
with --observed the image *is* the measurement y and no PSNR is printed. The prior is the learned
convex ridge regularizer ``ridge_gray`` (lam R_mu, weights chosen for the noise level), solved by
proximal gradient with safeguarded Anderson acceleration. Writes deblur.png to --out.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from operators import Blur, Gaussian, parse_kernel_spec  # noqa: E402
from pnp import PGD  # noqa: E402
from pnp.report import verdict_line  # noqa: E402
from priors import load_pretrained  # noqa: E402
from priors.ridge import RidgePrior, ridge_weights  # noqa: E402
from problems import InverseProblem, load_image  # noqa: E402
from problems.images import load_observation  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--image", default="camera", help="image file or bundled name (default camera)")
parser.add_argument("--kernel", default="motion:15:30", help="kernel spec or .npy/.png file (default motion:15:30)")
parser.add_argument("--noise", type=float, default=0.01, help="Gaussian noise std, images in [0, 1] (default 0.01)")
parser.add_argument("--color", action="store_true", help="keep RGB (the grey prior runs on each channel)")
parser.add_argument("--observed", action="store_true", help="--image is already the blurred, noisy measurement")
parser.add_argument("--size", type=int, default=256, help="crop/resize a simulated image to N x N (0: native)")
parser.add_argument("--max-iter", type=int, default=300)
parser.add_argument("--out", default="examples_out/deblur_your_photo", help="output folder")
parser.add_argument("--smoke", action="store_true", help="tiny size and few iterations (for CI)")
args = parser.parse_args()
if args.smoke:
    args.size, args.max_iter = 48, 30
out = Path(args.out)
if out.exists() and not out.is_dir():
    parser.error(f"--out '{out}' is a file; give a folder")
out.mkdir(parents=True, exist_ok=True)

# 1. The forward model: a blur with your kernel (reflected boundary suits real photos).
A = Blur(parse_kernel_spec(args.kernel), boundary="reflect")
noise = Gaussian(args.noise)

# 2. The data: a measured y, or y = A x + noise simulated from a sharp image x.
if args.observed:
    y = load_observation(args.image, gray=not args.color)  # (1, C, H, W), kept at its native size
    problem = InverseProblem(A, noise, y)
else:
    x = load_image(args.image, size=args.size or None, gray=not args.color)  # (1, C, H, W) in [0, 1]
    problem = InverseProblem.simulate(x, A, noise, seed=0)

# 3. The prior: the shipped convex ridge regularizer, weighted for this noise level.
model = load_pretrained("ridge_gray")                     # its certificate is recomputed on load
lam, mu, _ = ridge_weights(model, args.noise, "ridge_gray")
prior = RidgePrior(model, weight=lam, mu=mu)

# 4. Solve: proximal gradient, step from ||A||, safeguarded Anderson acceleration.
solver = PGD(problem, prior, accelerate="anderson")
result = solver.run(max_iter=args.max_iter, tol=1e-5, progress=False)

print(f"kernel {args.kernel}, noise {args.noise:g}, prior ridge_gray (lam {lam:.4g}, mu {mu:.3g})")
if problem.truth is not None:
    print(f"PSNR observation: {problem.psnr(problem.y):.2f} dB")
    print(f"PSNR reconstruction: {problem.psnr(result.x):.2f} dB")
print(f"status {result.status} after {result.iterations} iterations, {result.seconds:.1f} s")
print("guarantee", verdict_line(result.report))

# 5. Figure: observation, reconstruction, truth (when known) and the residual curve.
panels = [("observation", problem.y), ("reconstruction", result.x)]
if problem.truth is not None:
    panels.append(("truth", problem.truth))
fig, axes = plt.subplots(1, len(panels) + 1, figsize=(4 * (len(panels) + 1), 4))
for ax, (title, img) in zip(axes, panels):
    ax.imshow(img[0].permute(1, 2, 0).clamp(0, 1).squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1)
    scored = problem.truth is not None and title != "truth"
    ax.set_title(f"{title} ({problem.psnr(img):.2f} dB)" if scored else title)
    ax.axis("off")
axes[-1].semilogy(result.history["residual"])
axes[-1].set_xlabel("iteration")
axes[-1].set_title("relative fixed-point residual")
fig.tight_layout()
fig.savefig(out / "deblur.png", dpi=100)
print(f"figure {out / 'deblur.png'}")
