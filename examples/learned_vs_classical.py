"""Learned vs classical priors on your images: one deblurring job per image and prior, a bar chart.

    python examples/learned_vs_classical.py
    python examples/learned_vs_classical.py --images a.png b.png --priors tv ridge ridge_stack

Each job is ``pnp.solve.solve(SolveConfig.from_dict(...))``, the same job as ``stablepnp solve``:
the prior's weight (or the denoiser's level) is its default for the noise level, the algorithm
and step follow the prior, and the record holds the PSNR and the convergence verdict. Classical:
total variation and l1 on wavelets. Learned: the convex ridge regularizer (``ridge``), and the
certified Plug-and-Play denoisers ``ridge_stack`` and ``averaged``. Writes comparison.png and the
reconstructions (runs/) to --out.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pnp.solve import SolveConfig, solve  # noqa: E402

ALGORITHM = {"tv": "fista", "wavelet": "fista"}  # the others: proximal gradient ("pgd")

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--images", nargs="+", default=["camera", "coffee"], help="files or bundled names")
parser.add_argument("--priors", nargs="+", default=["tv", "wavelet", "ridge", "ridge_stack", "averaged"])
parser.add_argument("--size", type=int, default=128, help="crop/resize to N x N (default 128)")
parser.add_argument("--kernel", default="gaussian:1.6", help="blur kernel spec (default gaussian:1.6)")
parser.add_argument("--noise", type=float, default=0.01, help="Gaussian noise std (default 0.01)")
parser.add_argument("--max-iter", type=int, default=300)
parser.add_argument("--out", default="examples_out/learned_vs_classical", help="output folder")
parser.add_argument("--smoke", action="store_true", help="tiny size and few iterations (for CI)")
args = parser.parse_args()
if args.smoke:
    args.size, args.max_iter = 32, 20
out = Path(args.out)
if out.exists() and not out.is_dir():
    parser.error(f"--out '{out}' is a file; give a folder")
out.mkdir(parents=True, exist_ok=True)

# One job per image and prior; every record holds scores, status and the verdict.
psnr = {prior: [] for prior in args.priors}
verdicts = {prior: set() for prior in args.priors}
observed = []
for image in args.images:
    for prior in args.priors:
        config = SolveConfig.from_dict({
            "problem": {"image": image, "size": args.size, "kernel": args.kernel, "sigma": args.noise},
            "solver": {"prior": prior, "algorithm": ALGORITHM.get(prior, "pgd"), "max_iter": args.max_iter},
            "output": {"dir": str(out / "runs"), "figure": False},
        })
        record = solve(config, quiet=True)
        psnr[prior].append(record["psnr"])
        verdicts[prior].add(str(record.verdict))
        print(f"{Path(image).stem:>10s} {prior:<12s} PSNR {record['psnr']:6.2f} dB  {record['status']:<9s} "
              f"{record.verdict}")
    observed.append(record["psnr_observed"])

print(f"PSNR observation: {np.mean(observed):.2f} dB (mean over the images)")
for prior in args.priors:
    print(f"PSNR {prior}: {np.mean(psnr[prior]):.2f} dB (mean over the images)")

# Bar chart: PSNR gain over the observation per prior and image (PSNR on the bars, verdicts below).
fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(args.priors) * len(args.images) / 2, 4.2))
width = 0.8 / len(args.images)
gains = np.array([psnr[p] for p in args.priors]) - np.array(observed)  # (priors, images)
for i, image in enumerate(args.images):
    bars = ax.bar(np.arange(len(args.priors)) + (i - (len(args.images) - 1) / 2) * width, gains[:, i], width,
                  label=f"{Path(image).stem} (observation {observed[i]:.2f} dB)")
    ax.bar_label(bars, labels=[f"{psnr[p][i]:.1f}" for p in args.priors], fontsize=7)
ax.set_xticks(np.arange(len(args.priors)), [f"{p}\n{' / '.join(sorted(verdicts[p]))}" for p in args.priors])
ax.set_ylabel("PSNR gain over the observation (dB)")
ax.set_title(f"deblurring {args.kernel}, noise {args.noise:g}, {args.size}x{args.size}")
ax.set_ylim(top=1.3 * gains.max())  # room for the legend
ax.legend(fontsize=8, loc="upper right")
fig.tight_layout()
fig.savefig(out / "comparison.png", dpi=100)
print(f"figure {out / 'comparison.png'}")
