#!/usr/bin/env python
"""What stops certified training? Learning curves of the ridge one-step denoiser, one lever at a time.

Every variant is the shipped recipe (``priors/configs/ridge_gray.yaml``) with one change, trained
for the same short budget (default 600 steps of 32 patches, one thread each) from the same seed;
the curve is the validation PSNR on the held-out image (never the test split) every 100 steps.
Levers: the constraint itself (all three parts off, and each part alone: tied adjoint, monotone
splines, step cap), learning rate, per-group learning rates, frozen splines (a clip activation),
filter size, width, loss, data.  Runs are resumable (rerun the command) and run ``--jobs`` at a time::

    python scripts/ablate_ridge.py --out reports/ablate_ridge --jobs 2
    python scripts/ablate_ridge.py --out reports/ablate_ridge --only baseline constraint_off

Writes ``ablation.md`` (table) and ``ablation.json`` (curves) in ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

#: variant -> (what changes, overrides applied to the recipe: {"section.key": value})
VARIANTS: dict[str, tuple[str, dict]] = {
    "baseline": ("shipped recipe (tied, monotone splines, step cap 0.95, 13x13, 32 ridges)", {}),
    "constraint_off": ("all three constraints off (untied adjoint, free slopes, uncapped step)",
                       {"model.tied": False, "model.monotone": False, "model.step_cap": False}),
    "untied": ("adjoint kernel learned apart from W", {"model.tied": False}),
    "free_slopes": ("spline slopes not clamped to [0, 1]", {"model.monotone": False}),
    "no_step_cap": ("step fraction c(sigma) not capped at 0.95", {"model.step_cap": False}),
    "lr_x0.3": ("learning rate x 0.3", {"optim.lr": 3e-4}),
    "lr_x3": ("learning rate x 3", {"optim.lr": 3e-3}),
    "equal_group_lr": ("one learning rate for kernels, splines and scalars",
                       {"model.spline_lr_factor": 1.0, "model.scalar_lr_factor": 1.0}),
    "frozen_splines": ("splines frozen at slope 1/2 (a clip: Huber potentials)", {"model.spline_lr_factor": 0.0}),
    "kernel_7": ("one 7x7 factor instead of 7x7 o 7x7", {"model.factors": 1}),
    "ridges_64": ("64 ridges instead of 32", {"model.channels": 64}),
    "mse": ("MSE loss instead of L1", {"optim.loss": "mse"}),
    "dead_leaves_only": ("dead-leaves images only (no photos)",
                         {"data.photos": False, "data.folders": [], "data.dead_leaves_fraction": 1.0}),
}


def variant_config(recipe: dict, name: str, out: Path, steps: int, batch: int) -> dict:
    cfg = copy.deepcopy(recipe)
    cfg["optim"]["steps"] = steps
    cfg["data"]["batch_size"] = batch
    cfg["validation"] = {**cfg["validation"], "every": 100}
    cfg["checkpoint"] = {"dir": str(out / name), "every": 100}
    cfg["threads"] = 1
    for key, value in VARIANTS[name][1].items():
        section, field = key.split(".")
        cfg[section][field] = value
    return cfg


def curve(run_dir: Path) -> dict:
    import torch

    path = run_dir / "checkpoint.pt"
    if not path.is_file():
        return {}
    state = torch.load(path, map_location="cpu", weights_only=True)
    log = state["log"]
    vals = {e["step"]: e["val_psnr"] for e in log if "val_psnr" in e}
    secs = sorted(e["seconds"] for e in log)
    return {"steps": int(state["step"]), "val": vals, "seconds_per_step": secs[len(secs) // 2] if secs else None,
            "lipschitz": state.get("certificate", {}).get("lipschitz"), "alpha": state.get("certificate", {}).get("alpha")}


def table(results: dict, steps: int) -> str:
    marks = [s for s in range(100, steps + 1, 100)]
    head = "| variant | change | " + " | ".join(f"σ25 @{m}" for m in marks) + " | σ5 / σ50 final | plateau step | s/step | certificate |"
    lines = [head, "|---|---|" + "---|" * len(marks) + "---|---|---|---|"]
    base = results.get("baseline", {}).get("val", {})
    for name, r in results.items():
        val = r.get("val", {})
        cells = [f"{val[m]['25']:.2f}" if m in val else "–" for m in marks]
        last = val[max(val)] if val else None
        final = f"{last['5']:.2f} / {last['50']:.2f}" if last else "–"
        # first logged step within 0.05 dB of the best sigma-25 value of the run
        best = max((v["25"] for v in val.values()), default=None)
        plateau = next((m for m in sorted(val) if best is not None and val[m]["25"] >= best - 0.05), None)
        cert = "–" if r.get("lipschitz") is None else (f"α {r['alpha']:.3f}" if r.get("alpha") else f"Lip ≤ {r['lipschitz']:.3g}, none")
        delta = ""
        if base and val and max(val) in base:
            delta = f" ({val[max(val)]['25'] - base[max(val)]['25']:+.2f})"
        cells[-1] = cells[-1] + delta if cells else delta
        sps = "–" if r.get("seconds_per_step") is None else f"{r['seconds_per_step']:.2f}"
        lines.append(f"| {name} | {VARIANTS[name][0]} | " + " | ".join(cells) + f" | {final} | {plateau or '–'} | {sps} | {cert} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="reports/ablate_ridge")
    ap.add_argument("--recipe", default=str(ROOT / "priors/configs/ridge_gray.yaml"))
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--jobs", type=int, default=1, help="variants trained at the same time (one thread each)")
    ap.add_argument("--only", nargs="+", choices=list(VARIANTS), help="a subset of the variants")
    ap.add_argument("--report-only", action="store_true", help="write the table from the runs so far")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    recipe = yaml.safe_load(Path(args.recipe).read_text())
    names = args.only or list(VARIANTS)
    if not args.report_only:
        pending = []
        for name in names:
            cfg_path = out / f"{name}.yaml"
            cfg_path.write_text(yaml.safe_dump(variant_config(recipe, name, out, args.steps, args.batch_size), sort_keys=False))
            if not (out / name / "model.pt").is_file():
                pending.append((name, cfg_path))
        procs: list[tuple[str, subprocess.Popen]] = []
        while pending or procs:
            while pending and len(procs) < args.jobs:
                name, cfg_path = pending.pop(0)
                log = open(out / f"{name}.log", "a")
                cmd = [sys.executable, "-c", "import sys; from pnp.cli import main; sys.exit(main(sys.argv[1:]))",
                       "train", str(cfg_path), "--resume", "--quiet"]
                procs.append((name, subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)))
                print(f"started {name}", flush=True)
            for name, proc in list(procs):
                if proc.poll() is not None:
                    procs.remove((name, proc))
                    print(f"finished {name} (exit {proc.returncode})", flush=True)
            time.sleep(5)
    results = {name: curve(out / name) for name in names}
    md = table(results, args.steps)
    (out / "ablation.md").write_text(md + "\n")
    (out / "ablation.json").write_text(json.dumps({"steps": args.steps, "batch_size": args.batch_size,
                                                   "recipe": args.recipe, "results": results}, indent=2, default=str))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
