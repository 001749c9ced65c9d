"""Safeguarded Anderson acceleration vs plain PnP-PGD with the shipped certified prior, side by side.

For a few deblurring problems of the default comparison suite (``pnp/configs/compare_default.yaml``:
its images, kernels, noise levels, boundary and seed, at a small size) the default solve job
(``stablepnp solve`` settings: PnP-PGD, ``averaged_gray`` at its default level, the default
tolerance and iteration cap) is run twice in one process, with ``accelerate: none`` and with
``accelerate: anderson``, and the script reports per problem

* the iterations to the default tolerance (and the applications of the iteration map, which
  differ from the iterations when the safeguard refuses a candidate after evaluating it);
* the final PSNR of each and their difference (Anderson − plain);
* the wall time of the iteration loops and their ratio (Anderson / plain);
* the accepted / refused Anderson steps,

then the median and the worst case of the ratios and differences. A plain run stopped by the
iteration cap is reported as ``>= cap`` (its ratio is then a lower bound).

Usage::

    python scripts/bench_anderson.py --size 64 --problems 6 --threads 1 --json bench_anderson.json
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
sys.path.insert(0, str(ROOT / "scripts"))

from measure_tolerance import suite_problems  # noqa: E402


def run(problem: dict, accelerate: str, *, prior: str, tol: float | None, max_iter: int | None) -> dict:
    from pnp.solve import SolveConfig, SolverSpec, build_algorithm, build_prior

    solver = {"prior": prior, "accelerate": accelerate}
    if tol is not None:
        solver["tol"] = tol
    if max_iter is not None:
        solver["max_iter"] = max_iter
    cfg = SolveConfig.from_dict({"problem": problem, "solver": solver})
    torch.manual_seed(cfg.problem.seed)
    prob = cfg.problem.build()
    prior_obj, _ = build_prior(cfg.solver, cfg.problem, channels=int(prob.truth.shape[1]))
    alg = build_algorithm(cfg.solver, prob, prior_obj)
    t0 = time.perf_counter()
    with torch.inference_mode():
        res = alg.run(max_iter=cfg.solver.max_iter, tol=cfg.solver.tol, progress=False)
    seconds = time.perf_counter() - t0
    acc = res.diagnostics.get("acceleration") or {}
    return {"status": res.status, "iterations": res.iterations, "evaluations": acc.get("evaluations", res.iterations),
            "accepted": acc.get("accepted"), "rejected": acc.get("rejected"), "psnr": problem_psnr(prob, res.x),
            "seconds": seconds, "final_residual": res.final_residual, "verdict": res.report.verdict,
            "tol": cfg.solver.tol, "max_iter": cfg.solver.max_iter, "default_tol": SolverSpec().tol}


def problem_psnr(prob, x) -> float:
    return float(prob.psnr(x))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "pnp/configs/compare_default.yaml"))
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--problems", type=int, default=6)
    p.add_argument("--prior", default="averaged", help="shipped prior name (default the certified averaged_gray)")
    p.add_argument("--tol", type=float, help="tolerance (default: the solve default, SolverSpec().tol)")
    p.add_argument("--max-iter", type=int, help="iteration cap (default: the solve default)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="write the rows and the summary here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    rows = []
    header = (f"{'image':10s} {'kernel':13s} {'noise':>5s} | {'plain it':>8s} {'AA it':>6s} {'AA ev':>6s} "
              f"{'it ratio':>8s} | {'PSNR plain':>10s} {'PSNR AA':>8s} {'diff':>6s} | {'t plain':>7s} {'t AA':>6s} "
              f"{'t AA/plain':>10s} | acc/ref")
    print(header)
    for prob in suite_problems(args.config, args.problems, args.size):
        plain = run(prob, "none", prior=args.prior, tol=args.tol, max_iter=args.max_iter)
        fast = run(prob, "anderson", prior=args.prior, tol=args.tol, max_iter=args.max_iter)
        capped = plain["status"] != "converged"
        row = {"problem": prob, "plain": plain, "anderson": fast,
               "iteration_ratio": plain["iterations"] / max(fast["iterations"], 1),
               "evaluation_ratio": plain["evaluations"] / max(fast["evaluations"], 1),
               "psnr_difference": fast["psnr"] - plain["psnr"],
               "time_ratio": fast["seconds"] / plain["seconds"], "plain_capped": capped}
        rows.append(row)
        print(f"{prob['image']:10s} {prob['kernel']:13s} {prob['sigma']:5g} | "
              f"{('>=' if capped else '') + str(plain['iterations']):>8s} {fast['iterations']:6d} "
              f"{fast['evaluations']:6d} {row['iteration_ratio']:8.2f} | {plain['psnr']:10.3f} {fast['psnr']:8.3f} "
              f"{row['psnr_difference']:+6.3f} | {plain['seconds']:7.1f} {fast['seconds']:6.1f} "
              f"{row['time_ratio']:10.3f} | {fast['accepted']}/{fast['rejected']}"
              + ("" if fast["status"] == "converged" else f"  (Anderson: {fast['status']})"), flush=True)

    def stats(key: str, worst) -> tuple[float, float]:
        vals = [r[key] for r in rows]
        return statistics.median(vals), worst(vals)

    it_med, it_worst = stats("iteration_ratio", min)
    ev_med, ev_worst = stats("evaluation_ratio", min)
    d_med, d_worst = stats("psnr_difference", min)
    t_med, t_worst = stats("time_ratio", max)
    mean_it = statistics.mean(r["iteration_ratio"] for r in rows)
    worse = sum(1 for r in rows if r["psnr_difference"] < -0.05)
    tol = rows[0]["plain"]["tol"] if rows else None
    print(f"\n{len(rows)} problems, {args.size}x{args.size}, prior {args.prior}, tol {tol:g}, "
          f"{args.threads} thread(s); plain capped at {rows[0]['plain']['max_iter'] if rows else '-'} iterations "
          f"in {sum(r['plain_capped'] for r in rows)} problem(s) (ratios there are lower bounds)")
    print(f"{'':28s} {'median':>9s} {'worst':>9s}")
    print(f"{'iterations plain / Anderson':28s} {it_med:9.2f} {it_worst:9.2f}   (mean {mean_it:.2f})")
    print(f"{'map evaluations plain / AA':28s} {ev_med:9.2f} {ev_worst:9.2f}")
    print(f"{'PSNR Anderson - plain (dB)':28s} {d_med:+9.3f} {d_worst:+9.3f}   "
          f"({worse} problem(s) more than 0.05 dB worse)")
    print(f"{'wall time Anderson / plain':28s} {t_med:9.3f} {t_worst:9.3f}")
    if args.json:
        summary = {"iteration_ratio": {"median": it_med, "worst": it_worst, "mean": mean_it},
                   "evaluation_ratio": {"median": ev_med, "worst": ev_worst},
                   "psnr_difference": {"median": d_med, "worst": d_worst, "worse_than_0.05": worse},
                   "time_ratio": {"median": t_med, "worst": t_worst}}
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows, "summary": summary}, indent=1,
                                              default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
