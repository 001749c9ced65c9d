"""Certify a shipped denoiser, then attack it: no perturbation is amplified beyond the certificate.

    python examples/certify_and_attack.py
    python examples/certify_and_attack.py --model my_run/model.pt --baseline none

``priors.certify`` bounds the Lipschitz constant of x -> D(x, sigma) from the weights (valid for
every image size and every sigma in the trained range) and gives its averagedness constant.
Two searches try to beat the bound: ``empirical_lipschitz`` (Jacobian power iteration and
gradient ascent on ||D(x) - D(y)|| / ||x - y||) and the worst-case amplification
max ||D(u + d) - D(u)|| / ||d|| over ||d|| <= eps around a noisy image (projected gradient ascent,
``priors.robustness.prior_eval.amplification_pgd``). The same architecture trained without its
constraint (``averaged_unconstrained_gray``) is attacked for comparison. Writes attack.png to --out.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from priors import AveragedResNet, certify, empirical_lipschitz, load_checkpoint, load_pretrained  # noqa: E402
from priors import pretrained_names  # noqa: E402
from priors.robustness.prior_eval import amplification_pgd  # noqa: E402
from problems import load_image, psnr  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", default="averaged_gray", help="shipped name or model file (default averaged_gray)")
parser.add_argument("--baseline", default="averaged_unconstrained_gray", help="model without certificate, or 'none'")
parser.add_argument("--image", default="camera", help="image whose noisy version is attacked (default camera)")
parser.add_argument("--size", type=int, default=64, help="crop/resize to N x N (default 64)")
parser.add_argument("--out", default="examples_out/certify_and_attack", help="output folder")
parser.add_argument("--smoke", action="store_true", help="tiny sizes and few search steps (for CI)")
args = parser.parse_args()
# image side, side of the search patches, search steps, perturbation radii
size, patch, iters, radii = (16, 16, 3, [0.01, 1.0]) if args.smoke else (args.size, 32, 20, np.logspace(-3, 0, 7))
out = Path(args.out)
if out.exists() and not out.is_dir():
    parser.error(f"--out '{out}' is a file; give a folder")
out.mkdir(parents=True, exist_ok=True)
names = [args.model] + ([] if args.baseline == "none" else [args.baseline])
# a shipped name, or a model file of your own; loading recomputes the certificate from the weights
models = {n: (load_pretrained(n) if n in pretrained_names() else load_checkpoint(n)).eval() for n in names}

# A noisy image to denoise and to attack around, at the middle of the models' trained range.
sigma = 25 / 255
x = load_image(args.image, size=size)
noisy = x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
print(f"PSNR noisy input: {psnr(noisy, x).item():.2f} dB (sigma 25/255)")

curves = {}
for name, model in models.items():
    # 1. The certificate, from the weights alone (priors.certify for the averaged ResNet; other
    #    architectures, e.g. ridge_stack_gray, compute their own with model.certificate()).
    cert = certify(model, adversarial=False) if isinstance(model, AveragedResNet) else model.certificate()
    alpha = "not averaged" if cert.alpha is None else f"{cert.alpha:.4f}-averaged"
    print(f"\n{name}: certified Lipschitz bound {cert.lipschitz:.4g}, {alpha}")
    # 2. Adversarial search for the Lipschitz constant (a lower estimate: it must stay below the bound).
    search = empirical_lipschitz(model, sigmas=model.config.sigma_range, shape=(2, 1, patch, patch),
                                 power_iters=iters, ascent_steps=iters + 10)
    verdict = "below the certificate" if search["max"] <= cert.lipschitz * (1 + 1e-4) else "ABOVE THE CERTIFICATE"
    print(f"{name}: adversarial search finds {search['max']:.4f} ({verdict})")
    # 3. Worst-case amplification of perturbations of radius eps around the noisy image.
    with torch.no_grad():
        print(f"PSNR {name}: {psnr(model(noisy, sigma), x).item():.2f} dB (denoised)")
    gen = torch.Generator().manual_seed(0)
    curves[name] = ([amplification_pgd(lambda u: model(u, sigma), noisy, eps=float(eps), steps=iters,
                                       generator=gen)["max"] for eps in radii], cert.lipschitz)
    print(f"{name}: worst amplification {max(curves[name][0]):.4f} over radii {radii[0]:g} to {radii[-1]:g}")

# 4. Figure: amplification against the perturbation radius, with each certified bound.
fig, ax = plt.subplots(figsize=(6.5, 4.4))
for i, (name, (amp, bound)) in enumerate(curves.items()):
    ax.semilogx(radii, amp, "o-", color=f"C{i}", label=f"{name}: worst amplification found")
    if bound < 10:
        ax.axhline(bound, color=f"C{i}", ls="--", label=f"{name}: certified bound {bound:.3g}")
    else:
        ax.plot([], [], " ", label=f"{name}: bound {bound:.2g} (off the chart, uninformative)")
ax.set(xlabel="perturbation radius eps (l2)", ylabel="||D(u+d) - D(u)|| / ||d||",
       title=f"worst-case amplification around a noisy {args.image}, sigma 25/255")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(out / "attack.png", dpi=100)
print(f"\nfigure {out / 'attack.png'}")
