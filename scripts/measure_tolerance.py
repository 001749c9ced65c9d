"""At which relative residual does the PSNR stop moving? Evidence for the default tolerance.

Runs PnP / proximal deblurring problems of the default comparison suite
(``pnp/configs/compare_default.yaml``: its images, kernels, noise levels, boundary and seed, at a
small size) far past any practical tolerance, with the solve defaults for everything else (the
prior's default level, PGD, the default stepping), and records for every candidate tolerance
``t`` where a run stopped at ``t`` would have ended: the first iteration whose relative residual
is ``<= t``, and how far its PSNR is from the *converged* PSNR (the PSNR at the end of the long
run, which reaches ``--final-tol``; a plain run that does not reach it is compared with the
accelerated run's converged PSNR of the same problem, the same fixed point).

A tolerance is *safe* for a problem when stopping at it, and at every tighter candidate, ends
within ``--within`` dB (default 0.02) of the converged PSNR. The table gives, per prior and
stepping, the fraction of problems for which each candidate is safe, the worst PSNR distance
and the median number of iterations; the recommendation is the largest candidate safe on every
problem for the default stepping.

Usage::

    python scripts/measure_tolerance.py --size 64 --threads 1 --json tol.json
    python scripts/measure_tolerance.py --priors averaged --accelerate anderson none --plain-problems 4
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CANDIDATES = (1e-3, 5e-4, 2e-4, 1e-4, 5e-5, 2e-5, 1e-5, 5e-6, 2e-6, 1e-6)


def suite_problems(config: str, n: int, size: int) -> list[dict]:
    """``n`` problems of the comparison suite, spread over images, kernels and noise levels."""
    from pnp.compare import CompareConfig

    cfg = CompareConfig.from_yaml(config)
    settings = list(itertools.product(cfg.kernels, cfg.noise))
    out = []
    for i in range(n):
        image = cfg.images[i % len(cfg.images)]
        kernel, noise = settings[(i * 3) % len(settings)]  # a stride coprime with 8 visits every setting
        out.append({"image": image, "kernel": kernel, "sigma": float(noise), "size": size, "gray": cfg.gray,
                    "boundary": cfg.boundary, "seed": cfg.seed})
    return out


def run_one(problem: dict, prior: str, accelerate: str, *, max_iter: int, final_tol: float) -> dict:
    """One long run with the solve defaults; the per-iteration residual, PSNR and evaluation count."""
    from pnp.solve import SolveConfig, build_algorithm, build_prior

    cfg = SolveConfig.from_dict({"problem": problem, "solver": {"prior": prior, "accelerate": accelerate}})
    torch.manual_seed(cfg.problem.seed)
    prob = cfg.problem.build()
    prior_obj, _ = build_prior(cfg.solver, cfg.problem, channels=int(prob.truth.shape[1]))
    alg = build_algorithm(cfg.solver, prob, prior_obj)
    t0 = time.perf_counter()
    with torch.inference_mode():
        res = alg.run(max_iter=max_iter, tol=final_tol, progress=False)
    seconds = time.perf_counter() - t0
    evals = res.history.get("evaluations") or [float(k + 1) for k in range(res.iterations)]
    return {"problem": problem, "prior": prior, "accelerate": accelerate, "status": res.status,
            "iterations": res.iterations, "seconds": seconds, "residual": list(res.history["residual"]),
            "psnr": list(res.history["psnr"]), "evaluations": [float(e) for e in evals],
            "verdict": res.report.verdict}


def stop_points(run: dict, reference: float, within: float) -> dict[float, dict]:
    """For every candidate tolerance: where the run stops, its PSNR distance, whether it is safe."""
    out: dict[float, dict] = {}
    for t in CANDIDATES:
        k = next((i for i, r in enumerate(run["residual"]) if r <= t), None)
        if k is None:
            out[t] = {"iteration": None, "evaluations": None, "distance": None}
        else:
            out[t] = {"iteration": k + 1, "evaluations": run["evaluations"][k],
                      "distance": abs(run["psnr"][k] - reference)}
    safe = True
    for t in reversed(CANDIDATES):  # tightest first: safe only if every tighter one (reached) is safe too
        d = out[t]["distance"]
        if d is None:  # never reached (the run ended above it): no evidence either way
            out[t]["safe"] = None
            continue
        safe = safe and d <= within
        out[t]["safe"] = safe
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "pnp/configs/compare_default.yaml"))
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--problems", type=int, default=8, help="problems of the suite (spread over its settings)")
    p.add_argument("--plain-problems", type=int, default=4, help="how many of them also run without acceleration")
    p.add_argument("--priors", nargs="+", default=["averaged", "tv"])
    p.add_argument("--accelerate", nargs="+", default=["anderson", "none"], choices=["anderson", "none"])
    p.add_argument("--max-iter", type=int, default=400, help="iteration cap of the accelerated runs")
    p.add_argument("--plain-max-iter", type=int, default=1500, help="iteration cap of the plain runs")
    p.add_argument("--final-tol", type=float, default=1e-7)
    p.add_argument("--within", type=float, default=0.02, help="PSNR distance (dB) that counts as converged")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="write every run and the table here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    problems = suite_problems(args.config, args.problems, args.size)
    runs: list[dict] = []
    converged_psnr: dict[tuple, float] = {}
    for prior in args.priors:
        for acc in args.accelerate:
            subset = problems if acc == "anderson" else problems[: args.plain_problems]
            for prob in subset:
                r = run_one(prob, prior, acc, max_iter=args.max_iter if acc == "anderson" else args.plain_max_iter,
                            final_tol=args.final_tol)
                key = (prior, prob["image"], prob["kernel"], prob["sigma"])
                if r["status"] == "converged":
                    converged_psnr.setdefault(key, r["psnr"][-1])
                r["reference_psnr"] = converged_psnr.get(key, r["psnr"][-1])
                r["reference"] = "own end" if r["status"] == "converged" else (
                    "accelerated run's converged PSNR" if key in converged_psnr else "own end (not converged)")
                r["stops"] = {str(t): v for t, v in stop_points(r, r["reference_psnr"], args.within).items()}
                runs.append(r)
                print(f"{prior:9s} {acc:9s} {prob['image']:10s} {prob['kernel']:13s} {prob['sigma']:<5g} "
                      f"{r['status']:9s} it {r['iterations']:5d} {r['seconds']:7.1f} s  final residual "
                      f"{r['residual'][-1]:.1e}  PSNR {r['psnr'][-1]:.3f} (ref {r['reference_psnr']:.3f})", flush=True)

    table = []
    print(f"\nSafe tolerance: stopping there (and at every tighter one) ends within {args.within} dB of the "
          f"converged PSNR; size {args.size}, {args.threads} thread(s)")
    print(f"{'prior':9s} {'stepping':9s} {'tol':>7s} {'safe':>7s} {'worst dB':>9s} {'median it':>10s} {'median ev':>10s}")
    for prior in args.priors:
        for acc in args.accelerate:
            group = [r for r in runs if r["prior"] == prior and r["accelerate"] == acc]
            for t in CANDIDATES:
                stops = [r["stops"][str(t)] for r in group]
                reached = [s for s in stops if s["iteration"] is not None]
                safe = sum(1 for s in stops if s["safe"] is True)
                worst = max((s["distance"] for s in reached), default=math.nan)
                med_it = statistics.median([s["iteration"] for s in reached]) if reached else math.nan
                med_ev = statistics.median([s["evaluations"] for s in reached]) if reached else math.nan
                row = {"prior": prior, "accelerate": acc, "tol": t, "safe": safe, "problems": len(group),
                       "reached": len(reached), "worst_db": worst, "median_iterations": med_it,
                       "median_evaluations": med_ev}
                table.append(row)
                print(f"{prior:9s} {acc:9s} {t:7.0e} {safe:>3d}/{len(group):<3d} {worst:9.3f} {med_it:10.1f} "
                      f"{med_ev:10.1f}" + ("" if len(reached) == len(group) else f"  ({len(reached)} reached it)"))
    rec = {}
    for prior in args.priors:
        for acc in args.accelerate:
            rows = [r for r in table if r["prior"] == prior and r["accelerate"] == acc]
            ok = [r["tol"] for r in rows if r["safe"] == r["problems"] == r["reached"]]
            rec[f"{prior}/{acc}"] = max(ok) if ok else None
    print("\nlargest tolerance safe on every problem: " + ", ".join(f"{k} {v:g}" if v else f"{k} none"
                                                               for k, v in rec.items()))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "runs": runs, "table": table,
                                               "recommendation": rec}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
