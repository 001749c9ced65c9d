"""Train a small certified denoiser, certify it, and use it in Plug-and-Play deblurring.

    python examples/train_small_prior.py
    python examples/train_small_prior.py --steps 2000 --width 32 --depth 6

The averaged ResNet is averaged by construction (each block is a gradient step on a convex
function with a step inside its bound), so the certificate holds whatever the weights are after
any number of training steps. Training patches are synthetic dead-leaves images: nothing is
downloaded and no image files are needed. The config is the dict form of a YAML training config
(``priors/configs/*.yaml``, ``stablepnp train``). Writes the run (run/, replaced on each call) and
train.png to --out.
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from operators import Blur, Gaussian, parse_kernel_spec  # noqa: E402
from pnp import PGD  # noqa: E402
from pnp.report import verdict_line  # noqa: E402
from priors import denoiser_at_level, load_checkpoint, trained_sigma_range  # noqa: E402
from priors.training import TrainConfig, train  # noqa: E402
from problems import InverseProblem, load_image, psnr  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
parser.add_argument("--width", type=int, default=16, help="channels of each block (default 16)")
parser.add_argument("--depth", type=int, default=4, help="number of blocks (default 4)")
parser.add_argument("--out", default="examples_out/train_small_prior", help="output folder")
parser.add_argument("--smoke", action="store_true", help="a few steps of a tiny model (for CI)")
args = parser.parse_args()
if args.smoke:
    args.steps, args.width, args.depth = 8, 4, 2
size = 32 if args.smoke else 96
out = Path(args.out)
if out.exists() and not out.is_dir():
    parser.error(f"--out '{out}' is a file; give a folder")
out.mkdir(parents=True, exist_ok=True)

# 1. Train: dead-leaves patches, noise levels 5/255 to 55/255, Adam with a cosine schedule.
config = TrainConfig.from_dict({
    "arch": "averaged",
    "model": {"width": args.width, "depth": args.depth},
    "data": {"patch_size": 32, "batch_size": 8, "dead_leaves_fraction": 1.0, "photos": False, "pool_size": 16},
    "noise": {"sigma_min": "5/255", "sigma_max": "55/255"},
    "optim": {"name": "adam", "lr": 2e-3, "steps": args.steps},
    "validation": {"every": max(args.steps // 10, 1), "size": 48},
    "checkpoint": {"dir": str(out / "run"), "every": args.steps},
    "seed": 0,
})
summary = train(config, progress=False, overwrite=True)
log = [json.loads(line) for line in (out / "run" / "train_log.jsonl").read_text().splitlines()]

# 2. Load the model file; loading recomputes the certificate from the weights.
model = load_checkpoint(summary["model"]).eval()
cert, (lo, hi) = model.certificate(), trained_sigma_range(model)
print(f"trained {summary['step']} steps; certificate: Lipschitz {cert.lipschitz:.4g}, "
      f"{cert.alpha:.4f}-averaged, for every sigma in [{lo * 255:.3g}/255, {hi * 255:.3g}/255]")

# 3. Denoise a noisy photo (the model has only seen dead leaves).
x = load_image("camera", size=size)
noisy = x + 25 / 255 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    denoised = model(noisy, 25 / 255)
print(f"denoising at 25/255: noisy {psnr(noisy, x).item():.2f} dB, denoised {psnr(denoised, x).item():.2f} dB")

# 4. Plug-and-Play deblurring with the new denoiser (a level below its trained range is relaxed).
problem = InverseProblem.simulate(x, Blur(parse_kernel_spec("gaussian:1.6")), Gaussian(0.01), seed=0)
prior = denoiser_at_level(model, 0.01, trained_sigma_range(model))
result = PGD(problem, prior, accelerate="anderson").run(max_iter=30 if args.smoke else 300, tol=1e-5, progress=False)
print(f"PSNR observation: {problem.psnr(problem.y):.2f} dB")
print(f"PSNR PnP with the trained prior: {problem.psnr(result.x):.2f} dB ({result.status}, {result.iterations} it)")
print("guarantee", verdict_line(result.report))

# 5. Figure: learning curve, a denoised sample and the PnP reconstruction.
fig, axes = plt.subplots(1, 4, figsize=(17, 4))
window = min(20, len(log))  # running mean over the noisy per-batch PSNRs
smooth = np.convolve([e["psnr"] for e in log], np.ones(window) / window, mode="valid")
axes[0].plot([e["step"] for e in log][window - 1:], smooth, label=f"training batches (mean of {window})")
val = [(e["step"], sum(e["val_psnr"].values()) / len(e["val_psnr"])) for e in log if "val_psnr" in e]
axes[0].plot(*zip(*val), "o-", label="validation (mean over levels)")
axes[0].set(xlabel="step", ylabel="denoising PSNR (dB)", title="learning curve")
axes[0].legend(fontsize=8)
panels = [(f"noisy ({psnr(noisy, x).item():.2f} dB)", noisy),
          (f"denoised ({psnr(denoised, x).item():.2f} dB)", denoised),
          (f"PnP deblurred ({problem.psnr(result.x):.2f} dB)", result.x)]
for ax, (title, img) in zip(axes[1:], panels):
    ax.imshow(img[0, 0].clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title)
    ax.axis("off")
fig.tight_layout()
fig.savefig(out / "train.png", dpi=100)
print(f"figure {out / 'train.png'}")
