"""Benchmark: TV prox of stable-pnp (dual FISTA, then over-relaxed primal-dual) against deepinv's default TVPrior, at equal accuracy.

For each image size and TV weight ``t`` the script

1. builds a noisy camera image (scikit-image's ``camera`` resized, Gaussian noise 0.1, seed 0),
2. computes a float64 reference prox with stable-pnp's solver run far past its default
   tolerance (``tol=1e-10``, ``ref_max_iter`` iterations),
3. times deepinv's ``TVPrior().prox(v, gamma=t)`` with its defaults (over-relaxed
   Chambolle-Pock, ``n_it_max=1000``, ``crit=1e-8``; a fresh object per call, so no warm
   restart) and measures its relative error ``‖x − x_ref‖ / ‖x_ref‖``,
4. times stable-pnp's :func:`priors.tv.tv_prox` at the default ``tol=1e-4`` and at the
   largest tolerance of a ladder whose error is <= deepinv's ("equal accuracy"), and
   reports the speed ratio.

Both run in float32 on the CPU with the same thread count; times are medians over
``repeats`` interleaved runs. Run: ``python scripts/bench_tv.py [--sizes 256 512] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from priors.tv import tv_prox

# four tolerances per decade, 1e-3 down to 1e-7, so the matched accuracy is not overshot by much
TOL_LADDER = tuple(10.0 ** (-k / 4) for k in range(12, 29))


def _noisy_camera(size: int, *, sigma: float = 0.1, seed: int = 0) -> torch.Tensor:
    import skimage.data
    from skimage.transform import resize

    img = resize(skimage.data.camera().astype(np.float64) / 255.0, (size, size), anti_aliasing=True)
    x = torch.from_numpy(img)[None, None]
    gen = torch.Generator().manual_seed(seed)
    return x + sigma * torch.randn(x.shape, generator=gen, dtype=torch.float64)


def _rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float((x.double() - ref).norm() / ref.norm())


def _median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def bench_tv_prox(
    size: int = 256,
    repeats: int = 3,
    *,
    weights: tuple[float, ...] = (0.02, 0.05, 0.1, 0.3),
    ref_max_iter: int = 20000,
) -> list[dict]:
    """Time and accuracy of the TV prox, stable-pnp vs deepinv's default TVPrior.

    Parameters
    ----------
    size : int
        Image side (square grey image).
    repeats : int
        Timed runs per method (median reported).
    weights : tuple of float
        TV weights ``t`` of ``argmin ½‖x − v‖² + t TV(x)``.
    ref_max_iter : int
        Iterations of the float64 reference solve.

    Returns
    -------
    list of dict
        One row per (weight, method) with keys ``size, weight, method, seconds, iterations,
        rel_error, speedup_vs_deepinv`` (``speedup`` = deepinv seconds / these seconds), plus
        ``ref_change`` (relative change of the reference over its last 10 iterations).
    """
    from deepinv.optim import TVPrior

    v64 = _noisy_camera(size)
    v = v64.float()
    rows: list[dict] = []
    for t in weights:
        ref, ref_dual, ref_info = tv_prox(v64, t, tol=1e-10, max_iter=ref_max_iter, check_every=50)
        # a second short run estimates how far the reference still moves
        ref_more, _, _ = tv_prox(v64, t, tol=1e-12, max_iter=10, dual=ref_dual, check_every=10)
        ref_change = _rel_err(ref_more, ref)

        t_dpi, x_dpi = _median_time(lambda: TVPrior().prox(v, gamma=t), repeats)
        err_dpi = _rel_err(x_dpi, ref)
        rows.append(dict(size=size, weight=t, method="deepinv TVPrior (defaults: 1000 it, crit 1e-8)",
                         seconds=t_dpi, iterations=1000, rel_error=err_dpi, speedup_vs_deepinv=1.0,
                         ref_change=ref_change, ref_iterations=ref_info.iterations))

        t_def, (x_def, _, info_def) = _median_time(lambda: tv_prox(v, t, tol=1e-4), repeats)
        rows.append(dict(size=size, weight=t, method="stable-pnp tv_prox (default tol=1e-4)",
                         seconds=t_def, iterations=info_def.iterations, rel_error=_rel_err(x_def, ref),
                         speedup_vs_deepinv=t_dpi / t_def, ref_change=ref_change,
                         ref_iterations=ref_info.iterations))

        chosen = None
        for tol in TOL_LADDER:  # largest tolerance that is at least as accurate as deepinv
            x, _, info = tv_prox(v, t, tol=tol, max_iter=20000)
            if _rel_err(x, ref) <= err_dpi:
                chosen = tol
                break
        if chosen is None:
            chosen = TOL_LADDER[-1]
        t_eq, (x_eq, _, info_eq) = _median_time(lambda: tv_prox(v, t, tol=chosen, max_iter=20000), repeats)
        rows.append(dict(size=size, weight=t, method=f"stable-pnp tv_prox (equal accuracy, tol={chosen:.2g})",
                         seconds=t_eq, iterations=info_eq.iterations, rel_error=_rel_err(x_eq, ref),
                         speedup_vs_deepinv=t_dpi / t_eq, ref_change=ref_change,
                         ref_iterations=ref_info.iterations))
    return rows


def _print(rows: list[dict]) -> None:
    print(f"{'size':>5} {'weight':>6}  {'method':<52} {'seconds':>8} {'iters':>6} {'rel.err':>9} {'speedup':>8}")
    for r in rows:
        print(
            f"{r['size']:>5} {r['weight']:>6g}  {r['method']:<52} {r['seconds']:>8.3f} {r['iterations']:>6} "
            f"{r['rel_error']:>9.2e} {r['speedup_vs_deepinv']:>7.1f}x"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.02, 0.05, 0.1, 0.3])
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both libraries")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"TV prox, camera + noise 0.1, float32, CPU, {args.threads} thread(s); errors vs a float64 reference")
    for size in args.sizes:
        rows = bench_tv_prox(size, args.repeats, weights=tuple(args.weights))
        _print(rows)
        print(f"      reference moved by <= {max(r['ref_change'] for r in rows):.1e} over 10 more iterations")


if __name__ == "__main__":
    main()
