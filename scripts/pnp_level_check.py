#!/usr/bin/env python
"""PSNR along a PnP-PGD run at given denoiser levels: is a tuned level a fixed-point result or
an early-stopping one?

Runs the comparison suite's solver (``pnp.compare``; levels below a learned denoiser's trained
floor run relaxed, ``priors.denoiser_at_level``) on the held-out validation image and prints the
PSNR and relative residual at a few iterations, with the final status and verdict.

    python scripts/pnp_level_check.py --prior averaged --levels 0.00158 --noise 0.01 --iters 300
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior", default="averaged", help="averaged, dncnn, bm3d or a model file (compare prior names)")
    ap.add_argument("--levels", type=float, nargs="+", required=True, help="denoiser levels (sigma)")
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--kernel", default="gaussian:1.6")
    ap.add_argument("--image", default="motorcycle")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--report", type=int, nargs="+", default=[10, 50, 100, 150, 200, 300, 500, 1000])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from pnp.compare import PriorEntry, build_prior_handle
    from pnp.compare_runs import _solve
    from pnp.compare_config import suite_problem as _problem

    handle = build_prior_handle(PriorEntry(prior=args.prior, algorithms=("pgd",)))
    problem = _problem(args.image, args.kernel, args.noise, size=args.size, gray=True, boundary="circular", seed=0)
    rows = []
    for level in args.levels:
        res, _, info = _solve(handle, level, "pgd", 1.0, problem, max_iter=args.iters, tol=None)  # no early stop
        psnr, resid = res.history["psnr"], res.history["residual"]
        at = {k: {"psnr": psnr[k - 1], "residual": resid[k - 1]} for k in args.report if k <= len(psnr)}
        lvl = handle.level(level)
        rows.append({"prior": args.prior, "level": level, "denoiser": lvl, "noise": args.noise, "at": at,
                     "verdict": info["verdict"]})
        strength = "" if not lvl or lvl["strength"] == 1.0 else f" (relaxed, strength {lvl['strength']:.3g})"
        print(f"{args.prior} level {level:g}{strength}, {args.image} {args.kernel} noise {args.noise:g}, "
              f"verdict {info['verdict']}")
        for k, v in at.items():
            print(f"  it {k:5d}  PSNR {v['psnr']:.2f} dB  residual {v['residual']:.2e}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
