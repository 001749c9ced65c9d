"""TV-PGD / TV-FISTA with the inexact-prox schedule: PSNR, time and verdict on a few deblurring problems.

Runs the compare suite's classical cells (``lam * TV()`` with the suite's reference weight
``1e-3 (noise / 0.01)^1.5``, 300 iterations, tol 1e-5, one thread) on a subset of its problems and
prints one JSON line per cell. ``--root`` points at another checkout (e.g. an export of the
previous commit) to measure the same cells before a change:

    git archive HEAD | tar -x -C /tmp/before
    python scripts/bench_inexact.py --root /tmp/before > before.jsonl
    python scripts/bench_inexact.py > after.jsonl
    python scripts/bench_inexact.py --compare before.jsonl after.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def run_cells(images: list[str], kernels: list[str], noises: list[float], size: int, repeats: int) -> None:
    import torch

    from operators import Blur, Gaussian, parse_kernel_spec
    from pnp import FISTA, PGD
    from priors import TV
    from problems import InverseProblem, load_image

    torch.set_num_threads(1)
    for image in images:
        truth = load_image(image, size=size)
        for kernel in kernels:
            A = Blur(parse_kernel_spec(kernel))
            for noise in noises:
                problem = InverseProblem.simulate(truth, A, Gaussian(noise), seed=0)
                lam = 1e-3 * (max(noise, 1e-3) / 0.01) ** 1.5
                for cls in (PGD, FISTA):
                    best = cpu = None
                    for _ in range(repeats):
                        alg = cls(problem, lam * TV())
                        t0, c0 = time.perf_counter(), time.process_time()
                        res = alg.run(max_iter=300, tol=1e-5, progress=False)
                        seconds, cpu_s = time.perf_counter() - t0, time.process_time() - c0
                        best = seconds if best is None else min(best, seconds)
                        cpu = cpu_s if cpu is None else min(cpu, cpu_s)
                    inexact = res.diagnostics.get("inexact_prox") or {}
                    print(json.dumps({
                        "cell": f"{image}/{kernel}/{noise:g}/{cls.name}", "psnr": problem.psnr(res.x),
                        "seconds": best, "cpu_seconds": cpu, "iterations": res.iterations, "status": res.status,
                        "verdict": None if res.report is None else res.report.verdict,
                        "reason": None if res.report is None else res.report.reason,
                        "max_ratio": inexact.get("max_ratio"), "inner": inexact.get("inner_iterations_total"),
                    }), flush=True)


def compare(before: Path, after: Path) -> None:
    rows_b = {r["cell"]: r for r in map(json.loads, before.read_text().splitlines())}
    rows_a = {r["cell"]: r for r in map(json.loads, after.read_text().splitlines())}
    # CPU seconds of the (single-threaded) loop: wall-clock time on a shared machine mostly measures the neighbours
    key = "cpu_seconds" if all("cpu_seconds" in r for r in (*rows_a.values(), *rows_b.values())) else "seconds"
    print(f"{'cell':34s} {'PSNR before':>11s} {'after':>8s} {'dPSNR':>7s} {'s before':>9s} {'after':>7s} "
          f"{'ratio':>6s} {'worst b/sched':>13s}  verdict  ({key})")
    dps, tb, ta = [], 0.0, 0.0
    for cell, a in rows_a.items():
        b = rows_b.get(cell)
        if b is None:
            continue
        dp = a["psnr"] - b["psnr"]
        dps.append(abs(dp))
        tb += b[key]
        ta += a[key]
        ratio = a.get("max_ratio")
        print(f"{cell:34s} {b['psnr']:11.3f} {a['psnr']:8.3f} {dp:+7.3f} {b[key]:9.2f} {a[key]:7.2f} "
              f"{a[key] / b[key]:6.2f} {ratio if ratio is None else format(ratio, '13.3g'):>13}  "
              f"{a['verdict']}")
    print(f"max |dPSNR| {max(dps):.4f} dB over {len(dps)} cells; total time {tb:.1f} s -> {ta:.1f} s "
          f"(x{ta / tb:.3f})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", help="checkout to import the packages from (default: this one)")
    ap.add_argument("--images", nargs="+", default=["camera", "astronaut"])
    ap.add_argument("--kernels", nargs="+", default=["gaussian:1.6", "shake:1"])
    ap.add_argument("--noise", nargs="+", type=float, default=[0.01, 0.03])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=1, help="time is the best of this many runs")
    ap.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="print the table of two runs")
    args = ap.parse_args(argv)
    if args.compare:
        compare(Path(args.compare[0]), Path(args.compare[1]))
        return 0
    sys.path.insert(0, str(Path(args.root).resolve()) if args.root else str(Path(__file__).resolve().parents[1]))
    run_cells(args.images, args.kernels, args.noise, args.size, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
