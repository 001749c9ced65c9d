"""Benchmark: the noise level estimated from a blurred observation, and what it costs the reconstruction.

For every test photograph (camera, astronaut, coffee, chelsea, rocket; grey, ``--size`` square),
kernel (gaussian:1.6, motion:15:30, disk:3) and noise level (0.01, 0.03) the script

1. simulates the observation ``y = A x + n`` (each cell its own noise seed, so the cells do not share a
   noise realisation),
2. estimates sigma from ``y`` with :func:`problems.noise_estimate.estimate_noise` (wavelet MAD,
   ``skimage.restoration.estimate_sigma``), and again from ``y`` saved as an 8-bit PNG would hold it
   (clipped to [0, 1], rounded to 1/255: what a user's file holds), and records the relative error and
   whether the true sigma lies within 2 reported standard errors,
3. runs the default ``stablepnp solve`` (default prior, algorithm and weight rule) twice: with the true
   sigma and with the estimate (``noise_estimate: true``), and records both PSNRs.

Results: one JSON line per cell in ``<out>/cells.jsonl`` (a rerun skips the cells already there),
``<out>/results.json`` and ``<out>/README.md`` (tables and the command).

Run (about 5 minutes at size 128 on one thread of the shared machine)::

    OMP_NUM_THREADS=1 python scripts/bench_sigma_estimate.py --size 128

``--no-solve`` measures the estimator only (seconds).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

IMAGES = ("camera", "astronaut", "coffee", "chelsea", "rocket")
KERNELS = ("gaussian:1.6", "motion:15:30", "disk:3")
NOISES = (0.01, 0.03)
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "priors" / "results" / "sigma_estimate"


def _cell_id(image: str, kernel: str, noise: float, size: int, seed: int) -> str:
    return f"{image}|{kernel}|{noise:g}|{size}|seed {seed}"


def _solve(spec, out_dir: str) -> dict:
    from pnp.solve import SolveConfig, solve

    cfg = SolveConfig(problem=spec).updated(output={"dir": out_dir, "figure": False})
    rec = solve(cfg, quiet=True)
    return {"psnr": rec["psnr"], "lam": rec["lam"], "lam_source": rec["lam_source"], "prior": rec["prior"],
            "iterations": rec["iterations"], "status": rec["status"], "seconds": rec["seconds_total"],
            "noise_sigma": rec["noise_sigma"]}


def run_cell(image: str, kernel: str, noise: float, size: int, seed: int, *, solve: bool, out_dir: str) -> dict:
    """One cell: the estimates (float and 8-bit data) and, with ``solve``, both reconstructions."""
    from problems import ProblemSpec
    from problems.noise_estimate import estimate_noise

    spec = ProblemSpec(image=image, size=size, kernel=kernel, sigma=noise, seed=seed)
    y = spec.build().y
    est = estimate_noise(y)
    est8 = estimate_noise(np.round(np.clip(y.double().numpy(), 0.0, 1.0) * 255.0) / 255.0)
    row = {"image": image, "kernel": kernel, "noise": noise, "size": size, "seed": seed,
           "sigma_hat": est.sigma, "uncertainty": est.uncertainty, "standard_error": est.standard_error,
           "tile_error": est.tile_error, "rel_error": est.sigma / noise - 1.0,
           "covered_2u": abs(est.sigma - noise) <= 2.0 * est.uncertainty,
           "covered_2se": abs(est.sigma - noise) <= 2.0 * est.standard_error,
           "sigma_hat_png8": est8.sigma, "rel_error_png8": est8.sigma / noise - 1.0}
    if solve:
        known = _solve(spec, out_dir)
        estimated = _solve(spec.updated(noise_estimate=True), out_dir)
        row.update(known=known, estimated=estimated, psnr_gap=estimated["psnr"] - known["psnr"])
    return row


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def summarise(rows: list[dict]) -> dict:
    """Per (kernel, noise) group and overall: bias, spread, coverage, PSNR gaps."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(f"{r['kernel']} / {r['noise']:g}", []).append(r)
    groups["all"] = rows
    out = {}
    for name, rs in groups.items():
        rel = [r["rel_error"] for r in rs]
        gaps = [r["psnr_gap"] for r in rs if "psnr_gap" in r]
        out[name] = {
            "cells": len(rs),
            "mean_rel_error": _mean(rel), "max_abs_rel_error": max(abs(v) for v in rel),
            "mean_rel_error_png8": _mean([r["rel_error_png8"] for r in rs]),
            "mean_rel_uncertainty": _mean([r["uncertainty"] / r["noise"] for r in rs]),
            "coverage_2u": _mean([float(r["covered_2u"]) for r in rs]),
            "coverage_2se": _mean([float(r["covered_2se"]) for r in rs]),
            "mean_psnr_known": _mean([r["known"]["psnr"] for r in rs if "known" in r]),
            "mean_psnr_estimated": _mean([r["estimated"]["psnr"] for r in rs if "estimated" in r]),
            "mean_psnr_gap": _mean(gaps), "worst_psnr_gap": min(gaps) if gaps else math.nan,
        }
    return out


def _fmt(v: float, spec: str) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _findings(rows: list[dict], summary: dict) -> list[str]:
    """Sentences computed from the numbers (a rerun rewrites them)."""
    groups = {k: v for k, v in summary.items() if k != "all"}
    worst = max(groups, key=lambda k: abs(groups[k]["mean_rel_error"]))
    a = summary["all"]
    cell8 = max(rows, key=lambda r: abs(r["rel_error_png8"] - r["rel_error"]))
    out = [f"- Bias: {a['mean_rel_error']:+.2%} on the mean over all cells; the largest group bias is "
           f"{groups[worst]['mean_rel_error']:+.2%} ({worst}): image structure left at the finest scale by a blur "
           "that keeps high frequencies in some directions is read as noise (an overestimate).",
           f"- Uncertainty: the true sigma lies within 2 reported standard errors in {a['coverage_2u']:.0%} of the "
           f"cells ({groups[worst]['coverage_2u']:.0%} in {worst}): the reported error covers the sampling spread "
           "and the variation between tiles, not a bias common to the whole image.",
           f"- 8-bit data: {a['mean_rel_error_png8']:+.2%} on the mean; the largest change from the float data is "
           f"{cell8['rel_error']:+.2%} -> {cell8['rel_error_png8']:+.2%} ({cell8['image']}, {cell8['kernel']}, "
           f"{cell8['noise']:g}), where clipping at 0 and 1 removes noise from saturated regions."]
    if not math.isnan(a["mean_psnr_gap"]):
        gaps = [r["psnr_gap"] for r in rows]
        out.append(f"- Reconstruction: the estimated sigma changes the default solve's PSNR by {a['mean_psnr_gap']:+.3f} "
                   f"dB on the mean (range {min(gaps):+.3f} to {max(gaps):+.3f} dB). Positive gaps come with "
                   "overestimates: the larger sigma raises the weight, which helped where the default weight rule "
                   "(fitted on Gaussian blur) is below the best weight.")
    return out


def write_report(out: Path, rows: list[dict], summary: dict, command: str, seconds: float) -> None:
    (out / "results.json").write_text(json.dumps({"command": command, "summary": summary, "cells": rows},
                                                 indent=1) + "\n")
    solved = any("known" in r for r in rows)
    lines = ["# Noise level estimated from a blurred observation", "",
             f"Command: `{command}` ({len(rows)} cells; {seconds:.0f} s of solves in all, one thread of the shared "
             "2-core machine under load).", "",
             "Estimator: `problems.noise_estimate.estimate_noise` = `skimage.restoration.estimate_sigma` (median "
             "absolute finest diagonal db2 coefficient / 0.6745), reported with one standard error "
             "`u = max(asymptotic MAD standard error, spread of a 4 x 4 tile grid / 4)`. "
             "Relative error = sigma_hat / sigma - 1 on the float observation; `8-bit` = the same on the "
             "observation clipped to [0, 1] and rounded to 1/255 (as a PNG holds it). Coverage = share of cells "
             "with |sigma_hat - sigma| <= 2u (and <= 2 asymptotic standard errors alone).", ""]
    head = ("| kernel / noise | cells | mean rel. error | max abs rel. error | mean rel. error 8-bit | mean u / sigma "
            "| coverage 2u | coverage 2 SE |")
    if solved:
        head += " PSNR known sigma | PSNR estimated | mean gap | worst gap |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for name, s in summary.items():
        line = (f"| {name} | {s['cells']} | {s['mean_rel_error']:+.2%} | {s['max_abs_rel_error']:.2%} | "
                f"{s['mean_rel_error_png8']:+.2%} | {s['mean_rel_uncertainty']:.2%} | {s['coverage_2u']:.0%} | "
                f"{s['coverage_2se']:.0%} |")
        if solved:
            line += (f" {_fmt(s['mean_psnr_known'], '.2f')} | {_fmt(s['mean_psnr_estimated'], '.2f')} | "
                     f"{_fmt(s['mean_psnr_gap'], '+.3f')} | {_fmt(s['worst_psnr_gap'], '+.3f')} |")
        lines.append(line)
    if solved:
        first = next(r for r in rows if "known" in r)
        lines += ["", f"Reconstructions: the default solve (prior {first['known']['prior']}, weight rule "
                  f"'{first['known']['lam_source']}' at the first cell), PSNR in dB against the truth; gap = "
                  "PSNR with the estimated sigma - PSNR with the true sigma."]
    lines += ["", "## Findings", ""] + _findings(rows, summary)
    lines += ["", "## Cells", "",
              "| image | kernel | sigma | sigma_hat | rel. error | u | 8-bit rel. error |"
              + (" PSNR known | PSNR estimated | gap |" if solved else ""),
              "|---|---|---|---|---|---|---|" + ("---|---|---|" if solved else "")]
    for r in rows:
        line = (f"| {r['image']} | {r['kernel']} | {r['noise']:g} | {r['sigma_hat']:.5f} | {r['rel_error']:+.2%} | "
                f"{r['uncertainty']:.2g} | {r['rel_error_png8']:+.2%} |")
        if solved:
            line += f" {r['known']['psnr']:.2f} | {r['estimated']['psnr']:.2f} | {r['psnr_gap']:+.3f} |"
        lines.append(line)
    (out / "README.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=128, help="square image size (default 128)")
    p.add_argument("--images", nargs="+", default=list(IMAGES))
    p.add_argument("--kernels", nargs="+", default=list(KERNELS))
    p.add_argument("--noise", nargs="+", type=float, default=list(NOISES))
    p.add_argument("--no-solve", action="store_true", help="measure the estimator only")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default %(default)s)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "cells.jsonl"
    done = {}
    if cache.is_file():
        for line in cache.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[_cell_id(row["image"], row["kernel"], row["noise"], row["size"], row["seed"])] = row
    rows, t0 = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        index = 0
        for image in args.images:
            for kernel in args.kernels:
                for noise in args.noise:
                    index += 1  # the noise seed: the cell's place in the grid (no two cells share a realisation)
                    key = _cell_id(image, kernel, noise, args.size, 1000 + index)
                    row = done.get(key)
                    if row is None or (not args.no_solve and "known" not in row):
                        row = run_cell(image, kernel, noise, args.size, seed=1000 + index, solve=not args.no_solve,
                                       out_dir=tmp)
                        with open(cache, "a") as fh:
                            fh.write(json.dumps(row) + "\n")
                    rows.append(row)
                    gap = f", PSNR gap {row['psnr_gap']:+.3f} dB" if "psnr_gap" in row else ""
                    print(f"{key}: sigma_hat {row['sigma_hat']:.5f} ({row['rel_error']:+.2%}){gap}", flush=True)
    command = "OMP_NUM_THREADS=1 python scripts/bench_sigma_estimate.py " + " ".join(sys.argv[1:] if argv is None
                                                                                      else argv)
    summary = summarise(rows)
    solve_seconds = sum(r[k]["seconds"] for r in rows for k in ("known", "estimated") if k in r)
    write_report(args.out, rows, summary, command.strip(), solve_seconds or time.perf_counter() - t0)
    s = summary["all"]
    print(f"all: mean rel. error {s['mean_rel_error']:+.2%}, coverage 2u {s['coverage_2u']:.0%}, "
          f"mean PSNR gap {_fmt(s['mean_psnr_gap'], '+.3f')} dB, worst {_fmt(s['worst_psnr_gap'], '+.3f')} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
