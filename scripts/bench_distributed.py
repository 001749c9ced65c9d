"""Throughput of ``stablepnp solve --input-dir`` sharded over torchrun ranks.

Writes a folder of grey crops of bundled scikit-image photos (outside the test split), then times
three runs of the same folder solve, each into a fresh output folder, each process on one thread
(``OMP_NUM_THREADS=1``, ``--threads 1``):

1. ``python -m pnp.cli solve --input-dir ...``               one process (the baseline)
2. ``torchrun --nproc_per_node 1 -m pnp.cli solve ...``       the torchrun overhead
3. ``torchrun --nproc_per_node N -m pnp.cli solve ...``       N processes (default 2)

Each is timed end to end (wall clock of the command, start-up included), inside the job (the
``seconds`` of ``summary.json``: solving and merging, without the interpreter start), and in CPU
seconds of all its processes (which other jobs on the machine do not change much). Every image
runs exactly ``--max-iter`` iterations (``--tol 0``), so the images cost the same. The PSNR of every
image is compared between the runs (they must agree). The machine's core count and load average
are printed with the numbers: on a shared machine the ratios measure the cores that were free.

    python scripts/bench_distributed.py [--images 8] [--size 128] [--prior tv] [--max-iter 300] [--nproc 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("moon", "brick", "grass", "gravel", "text", "coins")  # bundled photos outside the test split


def write_images(folder: Path, n: int, size: int) -> None:
    """``n`` grey ``size`` x ``size`` crops, cycling through :data:`SOURCES` and their corners, as PNG."""
    import numpy as np
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = getattr(data, SOURCES[i % len(SOURCES)])()
        img = img.mean(axis=-1) if img.ndim == 3 else img.astype(np.float64)
        corner = (i // len(SOURCES)) % 4
        top = 0 if corner in (0, 1) else img.shape[0] - size
        left = 0 if corner in (0, 2) else img.shape[1] - size
        crop = img[top:top + size, left:left + size]
        crop = (crop - crop.min()) / max(float(np.ptp(crop)), 1e-12)
        Image.fromarray((crop * 255).round().astype(np.uint8)).save(folder / f"img{i:03d}.png")


def run(label: str, prefix: list[str], solve_args: list[str], out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    cmd = [sys.executable, *prefix, "solve", *solve_args, "--out", str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the command's processes, torchrun's workers included
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if proc.returncode != 0:
        sys.exit(f"{label} failed (exit {proc.returncode}):\n" + "\n".join(proc.stderr.strip().splitlines()[-25:]))
    summary = json.loads((out / "summary.json").read_text())
    return {"label": label, "wall": wall, "cpu": cpu, "job": summary["seconds"], "n": len(summary["images"]),
            "psnr": {Path(r["file"]).name: r["psnr"] for r in summary["images"]}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=8, help="number of images (default 8)")
    p.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    p.add_argument("--prior", default="tv", help="prior (default tv)")
    p.add_argument("--max-iter", type=int, default=300, help="iterations per image (default 300)")
    p.add_argument("--nproc", type=int, default=2, help="processes of the sharded run (default 2)")
    args = p.parse_args(argv)
    if args.images < 1 or args.size < 16 or args.nproc < 1 or args.max_iter < 1:
        p.error("--images, --nproc and --max-iter must be >= 1 and --size >= 16")

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_distributed_") as tmp:
        src = Path(tmp) / "in"
        write_images(src, args.images, args.size)
        solve_args = ["--input-dir", str(src), "--prior", args.prior, "--max-iter", str(args.max_iter), "--tol", "0",
                      "--no-figure", "--quiet", "--threads", "1"]
        torchrun = ["-m", "torch.distributed.run", "--standalone"]
        runs = [
            run("1 process x 1 thread", ["-m", "pnp.cli"], solve_args, Path(tmp) / "plain"),
            run("torchrun, 1 process", [*torchrun, "--nproc_per_node=1", "-m", "pnp.cli"], solve_args,
                Path(tmp) / "tr1"),
            run(f"torchrun, {args.nproc} processes x 1 thread", [*torchrun, f"--nproc_per_node={args.nproc}", "-m",
                                                                  "pnp.cli"], solve_args, Path(tmp) / "trn"),
        ]
    load_after = os.getloadavg()[0]

    base, one, many = runs
    worst = max(abs(r["psnr"][k] - base["psnr"][k]) for r in runs[1:] for k in base["psnr"])
    print(f"folder: {args.images} images {args.size}x{args.size}, prior {args.prior}, {args.max_iter} iterations "
          f"each; machine: {cores} cores, load average {load_before:.2f} before, {load_after:.2f} after")
    print(f"{'run':34s} {'wall s':>8s} {'images/s':>9s} {'in-job s':>9s} {'images/s':>9s} {'CPU s':>8s}")
    for r in runs:
        print(f"{r['label']:34s} {r['wall']:8.2f} {r['n'] / r['wall']:9.3f} {r['job']:9.2f} {r['n'] / r['job']:9.3f} "
              f"{r['cpu']:8.2f}")
    print(f"throughput, {args.nproc} processes / 1 process: {base['wall'] / many['wall']:.2f}x end to end, "
          f"{base['job'] / many['job']:.2f}x in the job")
    print(f"torchrun overhead, 1 process: {100 * (one['wall'] / base['wall'] - 1):+.1f} % end to end, "
          f"{100 * (one['job'] / base['job'] - 1):+.1f} % in the job, {100 * (one['cpu'] / base['cpu'] - 1):+.1f} % "
          "in CPU time (all processes)")
    print(f"largest PSNR difference between the runs: {worst:.2e} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
