#!/usr/bin/env python
"""Benchmark of the solver core against deepinv, printed as Markdown tables.

Sections (all in one run):

1. blur: ``A``, ``A^T`` and ``A^T A`` of our circular ``Blur`` vs deepinv ``BlurFFT``, and of our
   padded ``Blur`` vs deepinv ``Blur`` (direct convolution with padding), on each image size.
   Our ``"mirror"`` boundary is the same extension as deepinv's ``padding="reflect"`` (torch
   convention), so that pair does identical work; our ``"reflect"`` (half-sample symmetric)
   is timed as well.
2. TV prox at equal accuracy vs deepinv's TVPrior (:func:`bench_tv`, measured by bench_tv.py);
3. one PnP-PGD iteration vs the raw operations and vs deepinv's PGD with the same denoiser
   (:func:`bench_pgd`, measured by bench_pnp.py).

Times are medians over ``--repeats`` runs after one warm-up, with a fixed number of torch
threads, on grey ``(1, 1, N, N)`` float32 images and a 17x17 Gaussian kernel (``gaussian:2.0``).
A ratio above 1 means ours is faster.

Usage::

    python scripts/bench_core.py --sizes 256 512 --repeats 5 --threads 1
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install
sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling benchmark modules

import operators  # noqa: E402


@dataclass
class Section:
    """One Markdown table of the report."""

    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    note: str = ""

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        if self.rows:
            lines.append("| " + " | ".join(self.header) + " |")
            lines.append("|" + "|".join("---" for _ in self.header) + "|")
            lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        if self.note:
            lines += (["", self.note] if self.rows else [self.note])
        return "\n".join(lines)


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` runs after one warm-up."""
    with torch.no_grad():
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _ms(t: float) -> str:
    return f"{1e3 * t:.2f}"


def _ratio(theirs: float, ours: float) -> str:
    return f"{theirs / ours:.2f}x"


def bench_blur(sizes: list[int], repeats: int) -> Section:
    """A / A^T / A^T A: ours vs deepinv BlurFFT (circular) and deepinv Blur (padded)."""
    import deepinv

    kernel = operators.parse_kernel_spec("gaussian:2.0")
    filt = kernel.to(torch.float32)[None, None]
    sec = Section(
        "Blur operators (ms per call, median; ratio = deepinv / ours)",
        ["size", "op", "ours circular", "deepinv BlurFFT", "ratio",
         "ours mirror", "deepinv Blur reflect", "ratio", "ours reflect (half-sample)"],
    )
    for n in sizes:
        x = torch.rand(1, 1, n, n, generator=torch.Generator().manual_seed(0))
        ours_c = operators.Blur(kernel, boundary="circular")
        ours_m = operators.Blur(kernel, boundary="mirror")
        ours_r = operators.Blur(kernel, boundary="reflect")
        d_fft = deepinv.physics.BlurFFT((1, n, n), filter=filt)
        d_blur = deepinv.physics.Blur(filter=filt, padding="reflect")
        # sanity: the pairs compute the same thing
        assert torch.allclose(ours_c(x), d_fft.A(x), atol=1e-5)
        assert torch.allclose(ours_m(x), d_blur.A(x), atol=1e-5)
        ops = {
            "A": (ours_c.forward, d_fft.A, ours_m.forward, d_blur.A, ours_r.forward),
            "A^T": (ours_c.adjoint, d_fft.A_adjoint, ours_m.adjoint, d_blur.A_adjoint, ours_r.adjoint),
            "A^T A": (ours_c.gram().forward, d_fft.A_adjoint_A, ours_m.gram().forward, d_blur.A_adjoint_A,
                      ours_r.gram().forward),
        }
        for name, (oc, dc, om, db, orf) in ops.items():
            t = [median_time(lambda f=f: f(x), repeats) for f in (oc, dc, om, db, orf)]
            sec.rows.append([f"{n}x{n}", name, _ms(t[0]), _ms(t[1]), _ratio(t[1], t[0]),
                             _ms(t[2]), _ms(t[3]), _ratio(t[3], t[2]), _ms(t[4])])
    sec.note = ("Kernel gaussian:2.0 (17x17), grey float32 (1, 1, N, N). deepinv `padding=\"reflect\"` is our "
                "`\"mirror\"` (torch's whole-sample reflection); our `\"reflect\"` is half-sample symmetric "
                "(scipy's \"reflect\").")
    return sec


# ----------------------------------------------------------------------------------------------
# TV prox and one PGD iteration: the measurements live in bench_tv.py / bench_pnp.py; reused here.
# ----------------------------------------------------------------------------------------------


def bench_tv(sizes: list[int], repeats: int) -> Section:
    """TV prox time and accuracy: ours (priors.TV) vs deepinv's TVPrior at equal accuracy."""
    from bench_tv import bench_tv_prox

    sec = Section("TV prox at equal accuracy (ours vs deepinv TVPrior default)",
                  ["size", "weight", "deepinv s", "deepinv rel. error", "ours s", "ours rel. error", "speed-up"])
    for n in sizes:
        rows = bench_tv_prox(n, repeats, weights=(0.02, 0.1, 0.3))
        for w in sorted({r["weight"] for r in rows}):
            d = next(r for r in rows if r["weight"] == w and r["method"].startswith("deepinv"))
            eq = [r for r in rows if r["weight"] == w and "equal" in r["method"]]
            o = eq[0] if eq else next(r for r in rows if r["weight"] == w and not r["method"].startswith("deepinv"))
            sec.rows.append([f"{n}x{n}", f"{w:g}", f"{d['seconds']:.3f}", f"{d['rel_error']:.1e}",
                             f"{o['seconds']:.3f}", f"{o['rel_error']:.1e}", f"{d['seconds'] / o['seconds']:.1f}x"])
    sec.note = ("prox of t*TV on a noisy camera crop (float32); errors relative to a float64 reference; "
                "ours at the loosest tolerance whose error is <= deepinv's (see scripts/bench_tv.py).")
    return sec


def bench_pgd(sizes: list[int], repeats: int) -> Section:
    """One PGD iteration with a fixed denoiser: ours (pnp.PGD) vs deepinv's PGD (ratio)."""
    from bench_pnp import measure, parse_args

    sec = Section("One PnP-PGD iteration, same operator and denoiser (ms per iteration)",
                  ["size", "raw A + A^T + D", "ours", "deepinv PGD", "ours / raw", "ours / deepinv"])
    for n in sizes:
        rec = measure(parse_args(["--denoiser", "untrained", "--size", str(n), "--iters", "10",
                                  "--repeats", str(repeats)]))
        t = rec["seconds_per_iteration"]
        sec.rows.append([f"{n}x{n}", _ms(t["raw_blur_adjoint_denoiser"]), _ms(t["ours_run"]), _ms(t["deepinv_pgd"]),
                         f"{rec['ratios']['ours_over_raw']:.3f}", f"{rec['ratios']['ours_over_deepinv']:.3f}"])
    sec.note = ("Denoiser: the averaged network's architecture (32 channels, 8 blocks) with fixed random weights; "
                "circular gaussian:2.0 blur; deepinv runs on operators.to_deepinv of the same operator.")
    return sec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="image sides N (N x N)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads value")
    args = parser.parse_args(argv)
    if args.repeats < 1 or min(args.sizes) < 17:
        parser.error("--repeats must be >= 1 and every size >= 17 (the kernel is 17x17)")
    torch.set_num_threads(args.threads)

    import deepinv

    print("## stable-pnp core benchmark\n")
    print(f"torch {torch.__version__}, deepinv {deepinv.__version__}, {platform.processor() or platform.machine()}, "
          f"threads={args.threads}, repeats={args.repeats} (median)\n")
    for bench in (bench_blur, bench_tv, bench_pgd):
        print(bench(args.sizes, args.repeats).markdown())
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
