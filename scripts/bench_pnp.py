"""Cost of one PnP-PGD iteration: ours vs the raw operations vs deepinv's PGD, side by side in one run.

Three timings on the same blur operator, data, denoiser and noise level:

* **raw** — one call each of ``A(x)``, ``Aᵀ(r)`` and ``D(z, σ)`` (the unavoidable work of one
  forward–backward step), timed back to back;
* **ours** — :class:`pnp.PGD` with a :class:`priors.DenoiserPrior`, ``run(max_iter=N, tol=None)``
  (the full loop: residual bookkeeping, divergence monitor, no PSNR), divided by ``N``;
  also ``update`` alone;
* **deepinv** — ``deepinv.optim.optim_builder("PGD", prior=PnP(D), data_fidelity=L2())`` on
  ``operators.to_deepinv(A)`` (the same operator object), ``early_stop=False``, divided by ``N``.

Each number is the median over ``--repeats`` repeats (after one warm-up). The ratios ours/raw
and ours/deepinv are printed and written to JSON with the machine description; both solvers
start from ``y`` and the relative difference of their final iterates is reported as a check that
they compute the same thing.

Targets (issue 4): ours/raw <= 1.05 and ours/deepinv <= 1.0.

Usage::

    python scripts/bench_pnp.py                        # shipped averaged_gray, 256x256, 1 thread
    python scripts/bench_pnp.py --denoiser untrained   # the shipped architecture with random weights
    python scripts/bench_pnp.py --denoiser runs/x/model.pt --size 128 --iters 10 --json bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch


def _load_denoiser(spec: str) -> torch.nn.Module:
    from priors import AveragedResNet, load_checkpoint, load_pretrained

    if spec == "untrained":
        return AveragedResNet(width=32, depth=8).eval()
    if Path(spec).suffix in (".pt", ".pth") or Path(spec).exists():
        return load_checkpoint(spec).eval()
    return load_pretrained(spec).eval()


def _median_time(fn, repeats: int) -> tuple[float, list[float]]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--denoiser", default="averaged_gray", help="shipped name, model path, or 'untrained'")
    ap.add_argument("--image", default="camera")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--kernel", default="gaussian:2.0")
    ap.add_argument("--noise", type=float, default=0.03)
    ap.add_argument("--sigma", type=float, default=0.03, help="denoiser noise level")
    ap.add_argument("--iters", type=int, default=20, help="iterations per timed run")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="write the numbers here")
    return ap.parse_args(argv)


def measure(args: argparse.Namespace) -> dict:
    """Time one PnP-PGD iteration: raw operations, ours, deepinv (see the module docstring)."""
    import deepinv as dinv

    from operators import to_deepinv
    from pnp import PGD
    from priors import DenoiserPrior
    from problems import ProblemSpec

    problem = ProblemSpec(image=args.image, size=args.size, kernel=args.kernel, sigma=args.noise).build()
    A, y = problem.operator, problem.y
    den = _load_denoiser(args.denoiser)
    # a denoiser's certificate is computed at construction of the algorithm; do it once, outside the timings
    prior = DenoiserPrior(den, sigma=args.sigma)
    alg = PGD(problem.fidelity, prior)
    tau, n = alg.step, args.iters

    # -- raw: blur + adjoint + denoiser
    x = y.clone()

    @torch.no_grad()
    def raw() -> None:
        r = A(x) - y
        g = A.adjoint(r)
        den(x - tau * g, args.sigma)

    t_raw, raw_all = _median_time(raw, args.repeats)

    # -- ours
    ours_x: list[torch.Tensor] = []

    def ours() -> None:
        res = alg.run(y.clone(), max_iter=n, tol=None, progress=False)
        ours_x[:] = [res.x]

    t_ours_run, ours_all = _median_time(ours, args.repeats)
    state = alg.init(y.clone())
    t_update, _ = _median_time(lambda: alg.update(state), args.repeats)

    # -- deepinv, same operator object and denoiser
    physics = to_deepinv(A)
    model = dinv.optim.optim_builder(
        iteration="PGD", prior=dinv.optim.PnP(denoiser=den), data_fidelity=dinv.optim.L2(), max_iter=n,
        params_algo={"stepsize": tau, "g_param": args.sigma, "lambda": 1.0}, early_stop=False, verbose=False,
    )
    dinv_x: list[torch.Tensor] = []

    @torch.no_grad()
    def deepinv_run() -> None:
        dinv_x[:] = [model(y, physics, init=y.clone())]

    t_dinv_run, dinv_all = _median_time(deepinv_run, args.repeats)

    t_ours, t_dinv = t_ours_run / n, t_dinv_run / n
    diff = float((ours_x[0] - dinv_x[0]).norm() / ours_x[0].norm())
    rec = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "deepinv": dinv.__version__},
        "setup": {**vars(args), "step": tau, "denoiser_class": type(den).__name__},
        "seconds_per_iteration": {"raw_blur_adjoint_denoiser": t_raw, "ours_run": t_ours, "ours_update_only": t_update,
                                  "deepinv_pgd": t_dinv},
        "ratios": {"ours_over_raw": t_ours / t_raw, "ours_over_deepinv": t_ours / t_dinv,
                   "update_over_raw": t_update / t_raw},
        "targets_met": {"ours_over_raw<=1.05": t_ours / t_raw <= 1.05, "ours_over_deepinv<=1.0": t_ours / t_dinv <= 1.0},
        "same_result_relative_difference": diff,
        "repeats_seconds": {"raw": raw_all, "ours_run": ours_all, "deepinv_run": dinv_all},
    }
    return rec


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    rec = measure(args)
    sec = rec["seconds_per_iteration"]
    t_raw, t_ours, t_update, t_dinv = (sec["raw_blur_adjoint_denoiser"], sec["ours_run"], sec["ours_update_only"],
                                       sec["deepinv_pgd"])
    diff, n, den_name = rec["same_result_relative_difference"], args.iters, rec["setup"]["denoiser_class"]
    print(f"{args.size}x{args.size} {args.kernel}, denoiser {den_name} ({args.denoiser}), "
          f"{torch.get_num_threads()} thread(s), median of {args.repeats}, {n} iterations per run")
    print(f"  raw (blur + adjoint + denoiser) : {t_raw * 1e3:9.2f} ms")
    print(f"  ours PGD.run per iteration      : {t_ours * 1e3:9.2f} ms   ratio to raw {t_ours / t_raw:.3f} (target <= 1.05)")
    print(f"  ours PGD.update only            : {t_update * 1e3:9.2f} ms   ratio to raw {t_update / t_raw:.3f}")
    print(f"  deepinv PGD per iteration       : {t_dinv * 1e3:9.2f} ms   ours/deepinv {t_ours / t_dinv:.3f} (target <= 1.0)")
    print(f"  final iterates ours vs deepinv  : relative difference {diff:.2e}")
    if args.json:
        Path(args.json).write_text(json.dumps(rec, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
