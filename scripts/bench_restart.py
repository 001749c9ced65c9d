"""FISTA with adaptive restart vs plain FISTA on a few deblurring problems, side by side.

Problems: test-split images (evaluation only) at ``--size`` (default 128), Gaussian blur of width
1.6 (``gaussian:1.6``), Gaussian noise 0.01, seed 0. Priors:

* ``tv``: ``lam · TV`` with ``lam = 1e-3`` (the registry's TV weight at noise 0.01), prox by its
  inner dual solver (inexact, on FISTA's summable schedule);
* ``ridge``: the shipped convex ridge regulariser ``priors/weights/ridge_gray.pt`` as a smooth
  prior (``RidgePrior``; ``lam``, ``mu`` from ``priors.ridge.ridge_weights(model, 0.01,
  "ridge_gray")``), which FISTA takes into its smooth part (gradient steps on ``f + lam R_mu``).

Each problem is solved by FISTA with ``restart`` "none", "gradient" and "function" to the same
relative tolerance (``‖x_k − x_(k−1)‖/‖x_(k−1)‖ <= --tol``) under the same iteration cap; the table
gives the iterations (``>= cap`` when the cap stopped the run), the restarts, the final objective
relative to the plain run's, the final PSNR and the wall time, then the median iteration ratio
(plain / restart) per prior.

Usage::

    python scripts/bench_restart.py --size 128 --tol 1e-5 --max-iter 1500 --json bench_restart.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCHEMES = ("none", "gradient", "function")
TV_LAM = 1e-3  # pnp.registry: TV's lam_at_reference at the reference noise 0.01
RIDGE_WEIGHTS = ROOT / "priors" / "weights" / "ridge_gray.pt"


def make_prior(name: str, noise: float):
    from priors import TV
    from priors.pretrained import load_checkpoint
    from priors.ridge import RidgePrior, ridge_weights

    if name == "tv":
        return lambda: TV_LAM * TV(warm_start=True)
    model = load_checkpoint(RIDGE_WEIGHTS).eval()
    lam, mu, _ = ridge_weights(model, noise, "ridge_gray")
    return lambda: RidgePrior(model, weight=lam, mu=mu)


def solve(problem, prior, restart: str, *, tol: float, max_iter: int) -> dict:
    from pnp import FISTA

    alg = FISTA(problem, prior, restart=restart)
    t0 = time.perf_counter()
    with torch.inference_mode():
        res = alg.run(tol=tol, max_iter=max_iter, progress=False)
    seconds = time.perf_counter() - t0
    info = res.diagnostics.get("restart") or {}
    return {"restart": restart, "status": res.status, "iterations": res.iterations,
            "restarts": info.get("restarts", 0), "function_restarts": info.get("function_restarts", 0),
            "objective": res.history["objective"][-1] if "objective" in res.history else None,
            "psnr": float(problem.psnr(res.x)), "seconds": seconds, "verdict": res.report.verdict,
            "monotone": bool(res.diagnostics["monotone"].holds)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default="camera,astronaut,coffee")
    ap.add_argument("--priors", default="tv,ridge")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--max-iter", type=int, default=1500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from operators import Blur, Gaussian, gaussian
    from problems import InverseProblem, load_image

    rows = []
    print(f"| image | prior | restart | status | iterations | restarts | F / F_plain - 1 | PSNR (dB) | seconds |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for prior_name in args.priors.split(","):
        make = make_prior(prior_name, args.noise)
        for image in args.images.split(","):
            truth = load_image(image, size=args.size, dtype=torch.float64)
            problem = InverseProblem.simulate(truth, Blur(gaussian(1.6)), Gaussian(args.noise), seed=0)
            plain = None
            for scheme in SCHEMES:
                r = solve(problem, make(), scheme, tol=args.tol, max_iter=args.max_iter)
                r.update(image=image, prior=prior_name)
                plain = plain or r
                rel = (r["objective"] / plain["objective"] - 1) if plain["objective"] else float("nan")
                its = f">= {r['iterations']}" if r["status"] == "max_iter" else str(r["iterations"])
                print(f"| {image} | {prior_name} | {scheme} | {r['status']} | {its} | {r['restarts']} | {rel:+.2e} | "
                      f"{r['psnr']:.2f} | {r['seconds']:.1f} |", flush=True)
                rows.append(r)
    print()
    for prior_name in args.priors.split(","):
        for scheme in SCHEMES[1:]:
            ratios, dpsnr = [], []
            for image in args.images.split(","):
                p = next(r for r in rows if r["prior"] == prior_name and r["image"] == image and r["restart"] == "none")
                q = next(r for r in rows if r["prior"] == prior_name and r["image"] == image and r["restart"] == scheme)
                ratios.append(p["iterations"] / max(q["iterations"], 1))
                dpsnr.append(q["psnr"] - p["psnr"])
            print(f"{prior_name}, {scheme} restart: iterations plain/restart median {statistics.median(ratios):.2f} "
                  f"(min {min(ratios):.2f}); PSNR restart - plain: median {statistics.median(dpsnr):+.3f} dB, "
                  f"worst {min(dpsnr):+.3f} dB")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
