"""Inpainting in colour: half of the pixels missing, TV against a certified learned denoiser.

    python examples/inpainting_color.py
    python examples/inpainting_color.py --image photo.png --missing 0.7

A random mask removes --missing of the pixels (all three colours of a pixel together) and the
rest gets Gaussian noise. Two reconstructions:

* TV: ``min 1/2 ||M x - y||^2 + lam TV(x)`` by FISTA;
* PnP: proximal gradient with the shipped grey denoiser ``ridge_stack_gray`` applied to each colour
  channel (``ChannelwiseDenoiser``). The grey denoiser is certified averaged, and so is its
  channel-wise version with the same constant, so the run keeps its convergence guarantee.

Writes inpainting.png to --out.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from operators import Gaussian, Inpainting  # noqa: E402
from pnp import FISTA, PGD  # noqa: E402
from pnp.report import verdict_line  # noqa: E402
from priors import TV, denoiser_at_level, load_pretrained, trained_sigma_range  # noqa: E402
from priors.channelwise import ChannelwiseDenoiser  # noqa: E402
from problems import InverseProblem, load_image  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--image", default="astronaut", help="image file or bundled name (default astronaut)")
parser.add_argument("--size", type=int, default=128, help="crop/resize to N x N (default 128)")
parser.add_argument("--missing", type=float, default=0.5, help="fraction of missing pixels (default 0.5)")
parser.add_argument("--noise", type=float, default=0.01, help="Gaussian noise std (default 0.01)")
parser.add_argument("--tv-weight", type=float, default=3e-3, help="TV weight lam (default 3e-3)")
parser.add_argument("--sigma", type=float, default=0.01, help="denoiser level of the PnP prior (default 0.01)")
parser.add_argument("--max-iter", type=int, default=300)
parser.add_argument("--out", default="examples_out/inpainting_color", help="output folder")
parser.add_argument("--smoke", action="store_true", help="tiny size and few iterations (for CI)")
args = parser.parse_args()
if args.smoke:
    args.size, args.max_iter = 32, 30
if not 0 <= args.missing < 1:
    parser.error(f"--missing must lie in [0, 1), got {args.missing}")
out = Path(args.out)
if out.exists() and not out.is_dir():
    parser.error(f"--out '{out}' is a file; give a folder")
out.mkdir(parents=True, exist_ok=True)

# 1. The problem: a colour image, a random pixel mask (1 = observed), Gaussian noise.
x = load_image(args.image, size=args.size, gray=False)            # (1, 3, N, N) in [0, 1]
keep = torch.rand(1, 1, *x.shape[-2:], generator=torch.Generator().manual_seed(1)) >= args.missing
A = Inpainting(keep.expand_as(x))
problem = InverseProblem.simulate(x, A, Gaussian(args.noise), seed=0)

# 2. TV by FISTA.
tv = FISTA(problem, args.tv_weight * TV()).run(max_iter=args.max_iter, tol=1e-5, progress=False)

# 3. PnP with the certified ridge stack, run on each colour channel.
grey = load_pretrained("ridge_stack_gray")                          # certificate recomputed on load
denoiser = ChannelwiseDenoiser(grey, channels=3)
prior = denoiser_at_level(denoiser, args.sigma, trained_sigma_range(grey))
pnp = PGD(problem, prior, accelerate="anderson").run(max_iter=args.max_iter, tol=1e-5, progress=False)

print(f"{args.image}: {args.missing:.0%} of the pixels missing, noise {args.noise:g}")
print(f"PSNR observation: {problem.psnr(problem.y):.2f} dB   (missing pixels are 0)")
print(f"PSNR TV-FISTA: {problem.psnr(tv.x):.2f} dB   ({tv.status}, {tv.iterations} iterations)")
print(f"PSNR PnP ridge_stack: {problem.psnr(pnp.x):.2f} dB   ({pnp.status}, {pnp.iterations} iterations)")
print("guarantee TV-FISTA:", verdict_line(tv.report))
print("guarantee PnP ridge_stack:", verdict_line(pnp.report))

# 4. Figure: truth, observation and both reconstructions with their PSNRs.
panels = [("truth", x), (f"observed ({problem.psnr(problem.y):.2f} dB)", problem.y),
          (f"TV-FISTA ({problem.psnr(tv.x):.2f} dB)", tv.x),
          (f"PnP ridge_stack ({problem.psnr(pnp.x):.2f} dB)", pnp.x)]
fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
for ax, (title, img) in zip(axes, panels):
    ax.imshow(img[0].permute(1, 2, 0).clamp(0, 1).numpy())
    ax.set_title(title)
    ax.axis("off")
fig.tight_layout()
fig.savefig(out / "inpainting.png", dpi=100)
print(f"figure {out / 'inpainting.png'}")
