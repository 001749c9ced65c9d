"""Benchmark of ``lam: auto`` on a held-out kernel family: oracle strength vs the data-driven choice vs the default rule.

For every cell (test image x held-out kernel x noise level x prior) the script records

* the **oracle** strength: the best PSNR over a log grid walked from the default strength in steps
  of 2 (weights; sqrt(2) for denoiser levels) until the PSNR has dropped on both sides, then refined
  with half steps around the best point (each solve warm-started from its neighbour);
* ``lam: auto`` (:func:`pnp.parameters.choose_lam`, rule SURE unless ``--rule``): the value, the
  PSNR of the final solve at tol 1e-5 from its warm start, the seconds of the choice plus that solve;
* the **default rule** (what ``stablepnp solve`` does without ``--lam``), from a cold start, whose
  seconds are the "one solve at a fixed lam" of the cost bound (measured right before ``auto``).

The held-out family is written here and was used by no rule before (seeded): motion blurs of
lengths 9-31 at seeded angles, deepinv camera-shake kernels of sides 13-31 (seeds 1001-1004),
defocus disks, anisotropic Gaussians at seeded angles -- 14 kernels. Cells are cached one JSON line
each in ``--cache`` (a rerun skips finished cells), so a killed run resumes.

    # the run committed in priors/results/lam_auto/ (reduced grid, see README.md there)
    OMP_NUM_THREADS=1 python scripts/bench_lam_auto.py --size 128 --images camera,astronaut \\
        --priors ridge,tv --cache priors/results/lam_auto/cells_128.jsonl
    python scripts/bench_lam_auto.py --report --cache priors/results/lam_auto/cells_128.jsonl \\
        --out priors/results/lam_auto/summary_128.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

#: Test split images (problems.images.TEST_SPLIT).
IMAGES = ("camera", "astronaut", "coffee", "chelsea", "rocket")
NOISE = (0.01, 0.03)
#: prior name -> algorithm (TV with FISTA: the classical baseline of issue 23).
PRIORS = {"ridge": "pgd", "crr": "pgd", "ridge_stack": "pgd", "tv": "fista"}
FAMILY_SEED = 2306


def held_out_kernels(seed: int = FAMILY_SEED) -> list[str]:
    """The 14 kernel specs of the held-out family (reproducible from ``seed``)."""
    rng = np.random.default_rng(seed)
    specs = []
    for length in (9, 15, 23, 31):  # linear motion
        specs.append(f"motion:{length}:{rng.uniform(0, 180):.1f}")
    for i, side in enumerate((13, 19, 25, 31)):  # camera shake (deepinv trajectories)
        specs.append(f"shake:{1001 + i}:{side}")
    for radius in (2.0, 3.0, 4.5):  # defocus
        specs.append(f"disk:{radius:g}")
    for _ in range(3):  # anisotropic Gaussian
        sx, sy = sorted(rng.uniform(0.8, 3.5, size=2), reverse=True)
        specs.append(f"gaussian:{sx:.2f}:{sy:.2f}:{rng.uniform(0, 180):.1f}")
    return specs


# ============================================================================ one cell
def _solver(prior: str, algorithm: str, max_iter: int):
    from pnp.spec import SolverSpec

    return SolverSpec(prior=prior, algorithm=algorithm, max_iter=max_iter, tol=1e-5)


def _solve_at(make, value, spec, problem, x0, tol, max_iter):
    """``(psnr, x, iterations, seconds)`` of one solve at strength ``value``."""
    from pnp.build import build_algorithm

    prior = make(value)
    algorithm = build_algorithm(dataclasses.replace(spec, lam=None, denoiser_sigma=None), problem, prior)
    t = time.perf_counter()
    with torch.inference_mode():
        r = algorithm.run(x0=x0, max_iter=max_iter, tol=tol, progress=False)
    seconds = time.perf_counter() - t
    psnr = problem.psnr(r.x) if bool(torch.isfinite(r.x).all()) else -math.inf
    return psnr, r.x, r.iterations, seconds


def _oracle(make, param, initial, upper, spec, problem, x_default, psnr_default, max_iter):
    """Best PSNR over a log grid walked from the default strength (warm starts), refined by half steps."""
    from pnp.parameters import SEARCH_RATIO

    h = math.log(SEARCH_RATIO[param])
    t0 = math.log(initial)
    tmax = math.log(upper) if math.isfinite(upper) else math.inf
    points = {0.0: (psnr_default, x_default)}  # offset in units of h -> (psnr, x)

    def at(k: float) -> float:
        if k not in points:
            near = min(points, key=lambda s: abs(s - k))
            psnr, x, _, _ = _solve_at(make, math.exp(t0 + k * h), spec, problem, points[near][1], 1e-5, max_iter)
            points[k] = (psnr, x)
        return points[k][0]

    for direction in (1, -1):
        k, drops = 0, 0
        while drops < 1 and abs(k) < 8 and t0 + (k + direction) * h <= tmax + 1e-9:
            k += direction
            drops = drops + 1 if at(k) < at(k - direction) else 0
    best = max(points, key=lambda s: points[s][0])
    for k in (best - 0.5, best + 0.5):
        if t0 + k * h <= tmax + 1e-9:
            at(k)
    best = max(points, key=lambda s: points[s][0])
    grid = sorted((math.exp(t0 + s * h), points[s][0]) for s in points)
    return {"value": math.exp(t0 + best * h), "psnr": points[best][0], "solves": len(points) - 1,
            "grid": [[v, p] for v, p in grid],
            "at_edge": best in (min(points), max(points))}


def run_cell(image: str, kernel: str, noise: float, prior: str, size: int, rule: str, max_iter: int) -> dict:
    """Default rule, ``auto`` and the oracle on one problem."""
    from pnp.parameters import choose_lam, prior_family
    from problems import ProblemSpec

    algorithm = PRIORS[prior]
    pspec = ProblemSpec(image=image, size=size, kernel=kernel, sigma=noise, seed=0)
    torch.manual_seed(0)
    problem = pspec.build()
    spec = _solver(prior, algorithm, max_iter)
    make, param, initial, upper = prior_family(spec, pspec, None, problem.y)
    # the default rule from a cold start: the reference solve of the cost bound
    d_psnr, d_x, d_it, d_sec = _solve_at(make, initial, spec, problem, None, 1e-5, max_iter)
    # lam: auto = the choice, then the final solve at the user's tolerance from its warm start
    t = time.perf_counter()
    choice = choose_lam(problem, spec, noise=noise, problem_spec=pspec, rule=rule)
    a_psnr, _, a_it, a_final = _solve_at(make, choice.value, spec, problem, choice.x, 1e-5, max_iter)
    a_sec = time.perf_counter() - t
    oracle = _oracle(make, param, initial, upper, spec, problem, d_x, d_psnr, max_iter)
    return {
        "image": image, "kernel": kernel, "noise": noise, "prior": prior, "algorithm": algorithm, "size": size,
        "rule": rule, "param": param, "psnr_observed": problem.psnr(problem.y),
        "default": {"value": initial, "psnr": d_psnr, "iterations": d_it, "seconds": d_sec},
        "auto": {"value": choice.value, "psnr": a_psnr, "rule_used": choice.rule, "fallback": choice.fallback,
                 "at_edge": choice.at_edge, "evaluations": len(choice.evaluations),
                 "search_iterations": choice.iterations, "final_iterations": a_it, "search_seconds": choice.seconds,
                 "final_seconds": a_final, "seconds": a_sec, "cost_ratio": a_sec / d_sec,
                 "record": choice.to_dict()},
        "oracle": oracle,
        "versions": {"torch": torch.__version__},
    }


# ============================================================================ the residual and SURE along a grid
#: The fitting set of the tau measurement: the validation image (never the test split) and the kernels
#: the default rules were tuned on -- not the held-out family.
FIT_IMAGE = "motorcycle"
FIT_KERNELS = ("gaussian:1.6", "gaussian:3", "motion:15:30", "shake:1", "disk:3", "motion:25:100")


def run_grid(image: str, kernel: str, noise: float, prior: str, size: int, max_iter: int) -> dict:
    """PSNR, residual ratio ``||Ax - y||^2 / (m sigma^2)`` and SURE at 13 strengths (default x 2^(k/2), k = -4..8)."""
    from pnp.parameters import PROBE_SEED_OFFSET, SETTLE_ETA, _Evaluator, prior_family
    from problems import ProblemSpec

    pspec = ProblemSpec(image=image, size=size, kernel=kernel, sigma=noise, seed=0)
    torch.manual_seed(0)
    problem = pspec.build()
    spec = _solver(prior, PRIORS[prior], max_iter)
    make, param, initial, _ = prior_family(spec, pspec, None, problem.y)
    ev = _Evaluator(problem, spec, make, noise, max_iter, SETTLE_ETA, pspec.seed + PROBE_SEED_OFFSET)
    rows = []
    for k in range(-4, 9):
        t = math.log(initial) + 0.5 * k * math.log(2.0)
        e = ev.evaluate(t, sure=True)
        psnr, _, _, _ = _solve_at(make, e.value, spec, problem, ev.xs[t], 1e-5, max_iter)
        rows.append({"value": e.value, "psnr": psnr, "residual": e.residual, "sure": e.sure})
    return {"image": image, "kernel": kernel, "noise": noise, "prior": prior, "size": size, "rows": rows}


def grid_report(cells: list[dict]) -> str:
    """Loss to the grid's best PSNR of the discrepancy principle at several tau, and of SURE's minimum."""
    out = ["| rule | mean loss to the grid's best PSNR [dB] | worst [dB] |", "|---|---|---|"]
    for tau in (0.7, 0.8, 0.9, 1.0, 1.1):
        gaps = []
        for c in cells:
            best = max(r["psnr"] for r in c["rows"])
            pick = next((r for r in c["rows"] if r["residual"] >= tau), c["rows"][-1])  # the grid's root
            gaps.append(pick["psnr"] - best)
        out.append(f"| discrepancy, tau {tau:g} | {statistics.mean(gaps):+.2f} | {min(gaps):+.2f} |")
    gaps = [min(c["rows"], key=lambda r: r["sure"])["psnr"] - max(r["psnr"] for r in c["rows"]) for c in cells]
    out.append(f"| SURE (grid minimum) | {statistics.mean(gaps):+.2f} | {min(gaps):+.2f} |")
    out += ["", "Residual ratio ||Ax - y||^2 / (m sigma^2) at the best grid point (the tau that would have been "
            "right):", ""]
    for c in cells:
        best = max(c["rows"], key=lambda r: r["psnr"])
        out.append(f"- {c['prior']} {c['image']} {c['kernel']} noise {c['noise']}: {best['residual']:.3f}")
    return "\n".join(out) + "\n"


# ============================================================================ cache and report
def _key(cell: dict) -> tuple:
    return (cell["image"], cell["kernel"], float(cell["noise"]), cell["prior"], int(cell["size"]), cell["rule"])


def read_cells(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    cells = []
    for line in path.read_text().splitlines():
        if line.strip():
            cells.append(json.loads(line))
    return cells


def report(cells: list[dict]) -> str:
    """Markdown summary: per prior and noise, the gaps to the oracle and the cost ratios."""
    out = ["| prior | noise | cases | auto - oracle mean [dB] | min [dB] | default rule - oracle mean [dB] | min [dB] "
           "| cost auto / one solve: median | max | fallbacks |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list[dict]] = {}
    for c in cells:
        groups.setdefault((c["prior"], c["noise"]), []).append(c)
        groups.setdefault((c["prior"], "all"), []).append(c)
    order = {p: i for i, p in enumerate(PRIORS)}
    for (prior, noise), cs in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 99), str(kv[0][1]))):
        ga = [c["auto"]["psnr"] - c["oracle"]["psnr"] for c in cs]
        gd = [c["default"]["psnr"] - c["oracle"]["psnr"] for c in cs]
        cost = [c["auto"]["cost_ratio"] for c in cs]
        fb = sum(1 for c in cs if c["auto"]["fallback"])
        out.append(f"| {prior} | {noise} | {len(cs)} | {statistics.mean(ga):+.2f} | {min(ga):+.2f} | "
                   f"{statistics.mean(gd):+.2f} | {min(gd):+.2f} | {statistics.median(cost):.2f} | {max(cost):.2f} "
                   f"| {fb} |")
    # the default solve (ridge) against TV-FISTA at its oracle lam, on the cases both have
    by = {(c["image"], c["kernel"], c["noise"], c["prior"]): c for c in cells}
    pairs = [(by[k], by[(k[0], k[1], k[2], "tv")]) for k in by if k[3] == "ridge" and (k[0], k[1], k[2], "tv") in by]
    if pairs:
        auto = [r["auto"]["psnr"] - t["oracle"]["psnr"] for r, t in pairs]
        rule = [r["default"]["psnr"] - t["oracle"]["psnr"] for r, t in pairs]
        out += ["", f"Default prior (ridge, PGD) vs TV-FISTA at its oracle lam, {len(pairs)} cases: with lam auto "
                f"{statistics.mean(auto):+.2f} dB on the mean (min {min(auto):+.2f}); with the default rule "
                f"{statistics.mean(rule):+.2f} dB (min {min(rule):+.2f}). Issue 23 asks for at least +0.5 dB on the mean."]
    worst = sorted(cells, key=lambda c: c["auto"]["psnr"] - c["oracle"]["psnr"])[:5]
    if worst:
        out += ["", "Largest auto - oracle gaps:", ""]
        for c in worst:
            out.append(f"- {c['prior']} {c['image']} {c['kernel']} noise {c['noise']}: auto {c['auto']['value']:.4g} "
                       f"({c['auto']['psnr']:.2f} dB), oracle {c['oracle']['value']:.4g} ({c['oracle']['psnr']:.2f} dB), "
                       f"default {c['default']['value']:.4g} ({c['default']['psnr']:.2f} dB)")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="image side (the full protocol: 256)")
    ap.add_argument("--images", default=",".join(IMAGES))
    ap.add_argument("--kernels", default=None, help="comma-separated indices into the held-out family (default all)")
    ap.add_argument("--noise", default=",".join(map(str, NOISE)))
    ap.add_argument("--priors", default=",".join(PRIORS))
    ap.add_argument("--rule", default="sure", choices=["sure", "discrepancy"])
    ap.add_argument("--max-iter", type=int, default=1000)
    ap.add_argument("--cache", required=True, help="JSON-lines file of finished cells (appended; resumes); with --report, a comma-separated list")
    ap.add_argument("--report", action="store_true", help="only summarise the cache")
    ap.add_argument("--grid", action="store_true", help="the tau measurement: residual and SURE along a grid on the "
                    f"fitting set ({FIT_IMAGE}, kernels {', '.join(FIT_KERNELS)}) instead of the held-out cells")
    ap.add_argument("--out", default=None, help="with --report: write the markdown summary here")
    args = ap.parse_args(argv)
    cache = Path(args.cache)
    if args.report:  # --cache may list several files (runs split over processes)
        cells = [c for part in args.cache.split(",") for c in read_cells(Path(part))]
        text = grid_report(cells) if args.grid else report(cells)
        if args.out:
            Path(args.out).write_text(text)
        print(text)
        return 0
    torch.set_num_threads(1)
    if args.grid:
        done = {(c["kernel"], c["noise"], c["prior"], c["size"]) for c in read_cells(cache)}
        cache.parent.mkdir(parents=True, exist_ok=True)
        for prior in args.priors.split(","):
            for noise in (float(v) for v in args.noise.split(",")):
                for kernel in FIT_KERNELS:
                    if (kernel, noise, prior, args.size) in done:
                        continue
                    cell = run_grid(FIT_IMAGE, kernel, noise, prior, args.size, args.max_iter)
                    with open(cache, "a") as fh:
                        fh.write(json.dumps(cell) + "\n")
                    print(f"grid {prior} {kernel} {noise}", flush=True)
        return 0
    family = held_out_kernels()
    kernels = family if args.kernels is None else [family[int(i)] for i in args.kernels.split(",")]
    done = {_key(c) for c in read_cells(cache)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    for prior in args.priors.split(","):
        if prior not in PRIORS:
            raise SystemExit(f"unknown prior {prior!r}; choose from {', '.join(PRIORS)}")
    for noise in (float(v) for v in args.noise.split(",")):
        for kernel in kernels:
            for image in args.images.split(","):
                for prior in args.priors.split(","):
                    key = (image, kernel, noise, prior, args.size, args.rule)
                    if key in done:
                        continue
                    cell = run_cell(image, kernel, noise, prior, args.size, args.rule, args.max_iter)
                    with open(cache, "a") as fh:
                        fh.write(json.dumps(cell) + "\n")
                    a, o, d = cell["auto"], cell["oracle"], cell["default"]
                    print(f"{prior:11s} {image:9s} {kernel:22s} {noise:.2f}: auto {a['psnr']:.2f} "
                          f"({a['value']:.3g}, x{a['cost_ratio']:.2f} cost) oracle {o['psnr']:.2f} ({o['value']:.3g}) "
                          f"default {d['psnr']:.2f} ({d['value']:.3g})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
