#!/usr/bin/env python
"""Start-up and default-solve cost, from a fresh interpreter each time, with the breakdown.

Measures (wall seconds, median of ``--repeats`` fresh processes):

* ``python -c "import torch"`` (the floor every torch program pays);
* ``python -c "import pnp, priors, problems, operators"`` (the packages load their parts lazily);
* ``stablepnp --help`` and ``stablepnp solve --help`` (no torch is imported for help or argument errors);
* the default ``stablepnp solve`` (``--quiet --no-figure``), split with its JSON record into
  start-up and imports (wall minus the solve's own total), model load + certificate + output
  (``seconds_total - seconds``) and iterations (``seconds``).

The machine may be shared: read the numbers of one run against each other.

Usage::

    python scripts/bench_startup.py --repeats 3 [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _wall(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the solve (default: its own)")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    exe = shutil.which("stablepnp") or str(Path(sys.executable).with_name("stablepnp"))
    py = sys.executable
    rows: list[tuple[str, float]] = []
    for label, cmd in (("python -c 'import torch'", [py, "-c", "import torch"]),
                       ("python -c 'import pnp, priors, problems, operators'",
                        [py, "-c", "import pnp, priors, problems, operators"]),
                       ("stablepnp --help", [exe, "--help"]),
                       ("stablepnp solve --help", [exe, "solve", "--help"])):
        rows.append((label, statistics.median(_wall(cmd, env) for _ in range(args.repeats))))
    solves = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            record = Path(tmp) / f"r{i}.json"
            cmd = [exe, "solve", "--quiet", "--no-figure", "--out", tmp, "--json", str(record)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            wall = _wall(cmd, env)
            data = json.loads(record.read_text())
            solves.append((wall, wall - data["seconds_total"], data["seconds_total"] - data["seconds"],
                           data["seconds"], data["psnr"], data["iterations"]))
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores\n")
    print("| command | wall s (median of %d) |" % args.repeats)
    print("|---|---:|")
    for label, t in rows:
        print(f"| {label} | {t:.2f} |")
    med = [statistics.median(s[k] for s in solves) for k in range(4)]
    print(f"| default `stablepnp solve` | {med[0]:.2f} |")
    print(f"| - start-up and imports | {med[1]:.2f} |")
    print(f"| - model load, certificate, output | {med[2]:.2f} |")
    print(f"| - iterations ({solves[0][5]}) | {med[3]:.2f} |")
    print(f"\nPSNR of the default solve: {solves[0][4]:.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
