#!/usr/bin/env python
"""Tune the weights (lam, mu) of a trained convex ridge regularizer on the held-out validation image.

Two uses, each a coordinate search on a log grid (factor 2, then sqrt 2, then 2^(1/4)) from the
model's own one-step values (lam = 2c/L, mu = mu(sigma_ref)), always on ``motorcycle`` (never on
the test split):

* ``--task denoise``: the prox denoiser ``argmin_x 1/2 ||x - y||^2 + lam R_mu(x)`` at sigma
  15, 25, 50 / 255; prints the best (lam, mu) per sigma and the log-linear fit used by
  :data:`priors.ridge.PROX_LEVELS`;
* ``--task deblur``: ``1/2 ||A x - y||^2 + lam R_mu(x)`` by gradient descent with safeguarded
  Anderson acceleration (the solve default) at noise 0.01, 0.03, 0.05, scored by the mean PSNR
  over ``--kernels`` (default: a Gaussian blur and a camera shake whose seed is not one of the
  compare suite's); prints the best (lam, mu) per noise level and the fit used by the solve default.

Usage::

    python scripts/tune_ridge.py --model priors/weights/ridge_gray.pt --task denoise --out reports/ridge_tune
    python scripts/tune_ridge.py --model priors/weights/ridge_gray.pt --task deblur --out reports/ridge_tune
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from priors.data import VALIDATION_IMAGE  # noqa: E402
from priors.pretrained import load_checkpoint  # noqa: E402
from priors.ridge import RidgePrior, ridge_weights  # noqa: E402
from problems.images import load_image  # noqa: E402
from problems.metrics import psnr  # noqa: E402


def coordinate_search(score, lam0: float, mu0: float, *, rounds=(2.0, math.sqrt(2), 2 ** 0.25)):
    """Maximise ``score(lam, mu)`` by multiplicative coordinate moves; returns (best, lam, mu, n_evals)."""
    cache: dict[tuple[float, float], float] = {}

    def f(lam, mu):
        key = (round(math.log(lam), 6), round(math.log(mu), 6))
        if key not in cache:
            cache[key] = score(lam, mu)
        return cache[key]

    lam, mu = lam0, mu0
    best = f(lam, mu)
    for factor in rounds:
        improved = True
        while improved:
            improved = False
            for dl, dm in ((factor, 1), (1 / factor, 1), (1, factor), (1, 1 / factor)):
                val = f(lam * dl, mu * dm)
                if val > best + 1e-4:
                    best, lam, mu, improved = val, lam * dl, mu * dm, True
    return best, lam, mu, len(cache)


def fit_loglinear(levels: list[float], values: list[float], ref: float) -> tuple[float, float]:
    """Least-squares ``log v = a + b log(level / ref)``."""
    xs = [math.log(s / ref) for s in levels]
    ys = [math.log(v) for v in values]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx > 0 else 0.0
    return my - b * mx, b


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--task", choices=("denoise", "deblur"), default="denoise")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--out", default="reports/ridge_tune")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--kernels", nargs="+", default=["gaussian:1.6", "shake:3"],
                    help="blur kernels of the deblur task (operators.kernels.parse_kernel_spec)")
    ap.add_argument("--start-rule", default="", help="start the deblur search at this RIDGE_WEIGHTS rule (e.g. ridge_gray)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_checkpoint(args.model).eval()
    c = float(model.step_fraction(torch.tensor(model.config.sigma_ref)))
    lam0, mu0 = 2 * c / model.grad_lipschitz(), float(model.mu())
    img = load_image(VALIDATION_IMAGE, size=args.size)
    rows = []
    if args.task == "denoise":
        levels = [15 / 255, 25 / 255, 50 / 255]
        for s in levels:
            y = img + s * torch.randn(img.shape, generator=torch.Generator().manual_seed(7))

            def score(lam, mu, y=y):
                x = RidgePrior(model, weight=lam, mu=mu, tol=args.tol, max_iter=300).prox(y, 1.0)
                return float(psnr(x, img)[0])

            t0 = time.perf_counter()
            best, lam, mu, n = coordinate_search(score, lam0 * (s / model.config.sigma_ref) ** 0, mu0 * model.config.sigma_ref / s)
            rows.append({"level": s, "psnr": best, "lam": lam, "mu": mu, "evaluations": n,
                         "seconds": time.perf_counter() - t0})
            print(f"sigma {s * 255:.0f}/255: PSNR {best:.2f} lam {lam:.4g} mu {mu:.4g} ({n} solves)", flush=True)
        ref = model.config.sigma_ref
    else:
        from operators import Blur, Gaussian
        from operators.kernels import parse_kernel_spec
        from pnp import PGD
        from problems import InverseProblem

        levels = [0.01, 0.03, 0.05]
        ops = [Blur(parse_kernel_spec(k)) for k in args.kernels]
        for noise in levels:
            probs = [InverseProblem.simulate(img, A, Gaussian(noise), seed=0) for A in ops]

            def score(lam, mu, probs=probs):
                total = 0.0
                for prob in probs:
                    res = PGD(prob, RidgePrior(model, weight=lam, mu=mu), accelerate="anderson").run(
                        max_iter=500, tol=1e-5, progress=False)
                    total += float(psnr(res.x, img)[0])
                return total / len(probs)

            t0 = time.perf_counter()
            start = (ridge_weights(model, noise, args.start_rule)[:2] if args.start_rule
                     else (lam0 * (noise / 0.05) ** 2, mu0 * 0.1 / noise))
            best, lam, mu, n = coordinate_search(score, *start)
            rows.append({"level": noise, "psnr": best, "lam": lam, "mu": mu, "evaluations": n,
                         "seconds": time.perf_counter() - t0})
            print(f"noise {noise:g}: PSNR {best:.2f} lam {lam:.4g} mu {mu:.4g} ({n} solves)", flush=True)
        ref = 0.01
    lam_fit = fit_loglinear([r["level"] for r in rows], [r["lam"] for r in rows], ref)
    mu_fit = fit_loglinear([r["level"] for r in rows], [r["mu"] for r in rows], ref)
    print(f"fit (reference level {ref:.6g}): log lam = {lam_fit[0]:.4f} + {lam_fit[1]:.4f} log(level/ref); "
          f"log mu = {mu_fit[0]:.4f} + {mu_fit[1]:.4f} log(level/ref)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.task}.json").write_text(json.dumps({"model": args.model, "rows": rows, "reference": ref,
                                                       "lam_fit": lam_fit, "mu_fit": mu_fit,
                                                       "image": VALIDATION_IMAGE, "size": args.size,
                                                       "kernels": args.kernels if args.task == "deblur" else None},
                                                      indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
