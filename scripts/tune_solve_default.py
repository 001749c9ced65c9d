"""Tune the denoiser level that ``stablepnp solve`` uses by default with a shipped denoiser.

PnP-PGD for deblurring works best with a denoiser level above the noise level of the data.
This script searches that level on the held-out validation image (``motorcycle``, never the
test split) with the comparison suite's tuner (log-spaced grid + golden-section refinement),
for each noise level given, and prints the ratio ``sigma / noise`` that ``pnp/registry.py`` stores as the
prior's ``sigma_scale``.

    python scripts/tune_solve_default.py --prior averaged --noise 0.01 0.03 --threads 2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior", default="averaged", help="averaged or dncnn (shipped names)")
    ap.add_argument("--kernel", default="gaussian:1.6", help="blur of the default solve job")
    ap.add_argument("--noise", type=float, nargs="+", default=[0.01, 0.03])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--grid-points", type=int, default=4)
    ap.add_argument("--refine-steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="write the evaluations here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from pnp.compare import CompareConfig, build_prior_handle, tune

    config = CompareConfig.from_dict({
        "images": ["camera"],  # unused by the tuner; the tuning image is tuning.image
        "kernels": [args.kernel], "noise": list(args.noise), "size": args.size,
        "solver": {"max_iter": args.max_iter, "tol": 1e-4},
        "tuning": {"image": "motorcycle", "kernels": [args.kernel], "grid_points": args.grid_points,
                   "refine_steps": args.refine_steps, "max_iter": args.max_iter},
        "priors": [{"prior": args.prior, "algorithms": ["pgd"]}],
    })
    handle = build_prior_handle(config.priors[0])
    rows = []
    for noise in args.noise:
        res = tune(handle, "pgd", noise, config)
        rows.append({"noise": noise, "sigma": res["value"], "scale": res["value"] / noise,
                     "psnr": res["psnr"], "at_boundary": res["at_boundary"], "evaluations": res["evaluations"]})
        print(f"noise {noise:g}: best denoiser sigma {res['value']:.4g} (= {res['value'] / noise:.2f} x noise), "
              f"validation PSNR {res['psnr']:.2f} dB{' (at the edge of the search range)' if res['at_boundary'] else ''}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
