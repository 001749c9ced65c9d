#!/usr/bin/env python
"""Learning curves of training runs: validation PSNR per sigma and the smoothed training PSNR vs step.

Reads the training logs that ship beside the weights (``priors/weights/<name>.log.jsonl.gz``) or a
run's ``train_log.jsonl`` / ``checkpoint.pt``, and writes one figure.

Usage::

    python scripts/plot_learning_curves.py --out priors/results/bsd68/learning_curves.png \
        crr_bsd400=priors/weights/crr_bsd400.log.jsonl.gz wcrr_bsd400=priors/weights/wcrr_bsd400.log.jsonl.gz
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path


def read_log(path: str) -> list[dict]:
    p = Path(path)
    if p.suffix == ".pt":
        import torch

        return list(torch.load(p, map_location="cpu", weights_only=True)["log"])
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def smooth(values: list[float], width: int = 50) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= width:
            acc -= values[i - width]
        out.append(acc / min(i + 1, width))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", metavar="LABEL=LOG")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_train, ax_val) = plt.subplots(1, 2, figsize=(11, 4))
    for spec in args.runs:
        label, _, path = spec.partition("=")
        log = read_log(path)
        steps = [e["step"] for e in log]
        ax_train.plot(steps, smooth([e["psnr"] for e in log]), label=label)
        for sigma, style in (("5", ":"), ("25", "-"), ("50", "--")):
            pts = [(e["step"], e["val_psnr"][sigma]) for e in log if sigma in (e.get("val_psnr") or {})]
            if pts:
                ax_val.plot(*zip(*pts), style, marker="o", label=f"{label} σ={sigma}")
    ax_train.set(xlabel="step", ylabel="training PSNR (dB, 50-step mean)", title="training batches")
    ax_val.set(xlabel="step", ylabel="PSNR (dB)", title="held-out validation image")
    for ax in (ax_train, ax_val):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
