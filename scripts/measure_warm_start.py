"""Does a closed-form Wiener/Tikhonov warm start save iterations? (It did not: see the README.)

For circulant blurs ``(AᵀA + ρI)⁻¹`` is one FFT pair, so the minimiser of
``½‖Ax − y‖² + (ρ/2)‖x − y‖²``, ``x₀ = (AᵀA + ρI)⁻¹(Aᵀy + ρy)`` (a Wiener-type deconvolution that
keeps the mean of ``y``), costs less than one PnP iteration. This script starts the default solve
job (PnP-PGD, ``averaged_gray`` at its default level, default tolerance) from ``y`` (the default)
and from ``x₀`` for a few ``ρ``, on problems of the comparison suite, with and without
Anderson acceleration, and prints the iterations / map evaluations to the tolerance and the final
PSNR.

Usage::

    python scripts/measure_warm_start.py --size 64 --problems 4 --threads 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from measure_tolerance import suite_problems  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from pnp.solve import SolveConfig, build_algorithm, build_prior

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "pnp/configs/compare_default.yaml"))
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--problems", type=int, default=4)
    p.add_argument("--rho", type=float, nargs="+", default=[1e-2, 1e-1])
    p.add_argument("--accelerate", nargs="+", default=["anderson", "none"])
    p.add_argument("--max-iter", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    rows = []
    print(f"{'image':10s} {'kernel':13s} {'noise':>5s} {'stepping':9s} {'start':>10s} {'x0 PSNR':>8s} "
          f"{'iters':>6s} {'evals':>6s} {'PSNR':>7s} status")
    for prob in suite_problems(args.config, args.problems, args.size):
        for acc in args.accelerate:
            cfg = SolveConfig.from_dict({"problem": prob, "solver": {"accelerate": acc, "max_iter": args.max_iter}})
            torch.manual_seed(cfg.problem.seed)
            problem = cfg.problem.build()
            prior, _ = build_prior(cfg.solver, cfg.problem, channels=int(problem.truth.shape[1]))
            alg = build_algorithm(cfg.solver, problem, prior)
            A, y = problem.operator, problem.y
            for rho in [None, *args.rho]:
                x0 = y.clone() if rho is None else A.solve_normal(A.adjoint(y) + rho * y, rho)
                with torch.inference_mode():
                    res = alg.run(x0, max_iter=cfg.solver.max_iter, tol=cfg.solver.tol, progress=False)
                evals = (res.diagnostics.get("acceleration") or {}).get("evaluations", res.iterations)
                row = {"problem": prob, "accelerate": acc, "rho": rho, "x0_psnr": float(problem.psnr(x0)),
                       "iterations": res.iterations, "evaluations": evals, "psnr": float(problem.psnr(res.x)),
                       "status": res.status}
                rows.append(row)
                print(f"{prob['image']:10s} {prob['kernel']:13s} {prob['sigma']:5g} {acc:9s} "
                      f"{'y' if rho is None else f'rho={rho:g}':>10s} {row['x0_psnr']:8.2f} {res.iterations:6d} "
                      f"{evals:6d} {row['psnr']:7.3f} {res.status}", flush=True)
    print("\nmedian map evaluations to the tolerance (start from y = 1.00):")
    for acc in args.accelerate:
        base = {json.dumps(r["problem"], sort_keys=True): r["evaluations"] for r in rows
                if r["accelerate"] == acc and r["rho"] is None}
        for rho in args.rho:
            ratios = [r["evaluations"] / base[json.dumps(r["problem"], sort_keys=True)] for r in rows
                      if r["accelerate"] == acc and r["rho"] == rho]
            print(f"  {acc:9s} rho={rho:<6g} {statistics.median(ratios):.2f} (min {min(ratios):.2f}, "
                  f"max {max(ratios):.2f})")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
