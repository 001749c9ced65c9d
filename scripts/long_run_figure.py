"""Long PnP-PGD runs (1000+ iterations) with the averaged prior and the unconstrained baseline.

Both denoisers run the same PnP-PGD (step 1/L, no early stopping, no divergence cut-off: the
loop stops only on NaN/overflow) on one blur problem. For each the script records the absolute
step lengths ``‖x_{k+1} − x_k‖`` with the averaged-iteration envelope where a theorem gives one
(see :mod:`pnp.convergence`), the PSNR at every iteration, the final fixed-point residual and
the denoiser's local Lipschitz constant along the iterates, then writes a figure and a JSON
file and prints what happened — peak vs final PSNR, whether the steps ever increased — without
interpreting beyond the numbers.

Usage::

    python scripts/long_run_figure.py                                  # shipped averaged_gray vs dncnn_gray
    python scripts/long_run_figure.py --averaged runs/a/model.pt --baseline runs/b/model.pt --iters 2000
    nohup python scripts/long_run_figure.py --out long_run > long_run.log 2>&1 &   # ~1-2 h at 256x256 on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch


def _load(spec: str):
    from priors import load_checkpoint, load_pretrained

    p = Path(spec)
    return (load_checkpoint(p) if p.suffix in (".pt", ".pth") or p.exists() else load_pretrained(spec)).eval()


def _describe(label: str, result, diag) -> dict:
    psnr = result.history.get("psnr", [])
    k_best = max(range(len(psnr)), key=psnr.__getitem__) if psnr else None
    return {
        "label": label,
        "status": result.status,
        "iterations": result.iterations,
        "seconds": result.seconds,
        "verdict": result.report.verdict if result.report is not None else None,
        "alpha": diag.alpha,
        "psnr_first": psnr[0] if psnr else None,
        "psnr_peak": psnr[k_best] if psnr else None,
        "psnr_peak_iteration": None if k_best is None else k_best + 1,
        "psnr_final": psnr[-1] if psnr else None,
        "steps_monotone": diag.steps_monotone,
        "max_step_increase": diag.max_step_increase,
        "envelope_violations": diag.envelope_violations if diag.envelope is not None else None,
        "fixed_point_residual": diag.fixed_point_residual,
        "relative_fixed_point_residual": diag.relative_fixed_point_residual,
        "sqrt_k_times_last_step": diag.scaled_tail,
        "max_local_lipschitz": diag.max_local_lipschitz,
        "theory": diag.theory,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--averaged", default="averaged_gray", help="shipped name or model path of the averaged prior")
    ap.add_argument("--baseline", default="dncnn_gray", help="shipped name or model path of the unconstrained baseline")
    ap.add_argument("--image", default="camera")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--kernel", default="gaussian:2.0")
    ap.add_argument("--noise", type=float, default=0.03)
    ap.add_argument("--sigma", type=float, default=None,
                    help="denoiser level for both (default: the noise level, clipped into each model's trained range)")
    ap.add_argument("--iters", type=int, default=1000)
    ap.add_argument("--lipschitz-points", type=int, default=6)
    ap.add_argument("--power-iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="long_run")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from pnp import PGD
    from pnp.convergence import plot_diagnostics, run_with_diagnostics
    from priors import DenoiserPrior
    from problems import ProblemSpec

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    problem = ProblemSpec(image=args.image, size=args.size, kernel=args.kernel, sigma=args.noise).build()
    runs, diags, psnrs, records = {}, {}, {}, []
    for label, spec in (("averaged", args.averaged), ("baseline", args.baseline)):
        den = _load(spec)
        sigma = args.sigma
        if sigma is None:
            lo, hi = getattr(den.config, "sigma_range", (0.0, float("inf")))
            sigma = min(max(args.noise, lo), hi)
        alg = PGD(problem, DenoiserPrior(den, sigma=sigma))
        t0 = time.perf_counter()
        result, diag = run_with_diagnostics(alg, max_iter=args.iters, tol=None, divergence=None,
                                            lipschitz_points=args.lipschitz_points, power_iters=args.power_iters)
        name = f"{label} ({type(den).__name__}, sigma={sigma:.4g})"
        runs[name], diags[name], psnrs[name] = result, diag, result.history.get("psnr", [])
        rec = {**_describe(name, result, diag), "model": spec, "sigma": sigma,
               "wall_seconds": time.perf_counter() - t0}
        records.append(rec)
        print(f"{name}: {result.status} after {result.iterations} it; PSNR first {rec['psnr_first']:.2f}, "
              f"peak {rec['psnr_peak']:.2f} at it {rec['psnr_peak_iteration']}, final {rec['psnr_final']:.2f}; "
              f"{diag.summary()}; verdict {rec['verdict']}", flush=True)
    fig = plot_diagnostics(diags, out / "long_run.png", psnr=psnrs,
                           title=f"PnP-PGD, {args.image} {args.size}x{args.size}, {args.kernel}, noise {args.noise:g}, "
                                 f"{args.iters} iterations")
    data = {"setup": vars(args), "summary": records,
            "runs": {k: {"history": runs[k].history, "diagnostics": diags[k].to_dict(),
                         "report": runs[k].report.to_dict() if runs[k].report is not None else None} for k in runs}}
    (out / "long_run.json").write_text(json.dumps(data, indent=1, default=lambda o: None))
    print(f"wrote {fig} and {out / 'long_run.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
