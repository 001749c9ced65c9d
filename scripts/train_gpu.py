#!/usr/bin/env python
"""Train a shipped recipe on a GPU within a time budget; write weights, log and a report.

The recipe is a training config of ``priors/configs`` (default: the prox ridge prior); only the
execution changes: ``device`` (cuda), the checkpoint folder (``OUT/run``), and optionally the
batch size.  Training runs in chunks and stops at the budget with its checkpoint kept (rerun the
same command to resume).  At the end ``OUT`` holds ``model.pt``, ``train_log.jsonl``,
``config.yaml`` and ``report.json`` / ``report.md`` (device, steps, seconds per step, the
certificate recomputed from the weights, test-split denoising PSNR at sigma 15/25/50)::

    python scripts/fetch_training_photos.py --out data/photos        # training photos (once)
    python scripts/train_gpu.py --out reports/gpu_ridge_prox            # <= 8 minutes on one GPU
    python scripts/train_gpu.py --out /tmp/smoke --device cpu --config priors/configs/tiny.yaml --max-steps 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from priors.pretrained import load_checkpoint  # noqa: E402
from priors.training import TrainConfig, train  # noqa: E402
from problems.images import TEST_SPLIT, load_image  # noqa: E402
from problems.metrics import psnr  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
from report_denoising import SIGMAS, noisy  # noqa: E402  (the same seeded noise as the denoising report)


def _config(args: argparse.Namespace, run_dir: Path) -> TrainConfig:
    raw = yaml.safe_load(Path(args.config).read_text()) or {}
    raw = dict(raw)
    raw["device"] = args.device
    raw["threads"] = 0
    raw["checkpoint"] = {**(raw.get("checkpoint") or {}), "dir": str(run_dir)}
    if args.batch_size:
        raw["data"] = {**(raw.get("data") or {}), "batch_size": args.batch_size}
    if raw.get("init_from") and not Path(raw["init_from"]).is_absolute():
        raw["init_from"] = str(ROOT / raw["init_from"])
    return TrainConfig.from_dict(raw)


def _denoising(model_path: Path, size: int) -> dict[str, float]:
    model = load_checkpoint(model_path).eval()
    images = [load_image(n, size=size) for n in TEST_SPLIT]
    out = {}
    for s in SIGMAS:
        ps = []
        for i, img in enumerate(images):
            y = noisy(img, s / 255, seed=1000 * s + i)
            with torch.no_grad():
                ps.append(float(psnr(model(y, s / 255), img)[0]))
        out[str(s)] = statistics.mean(ps)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for weights, log and report")
    ap.add_argument("--config", default=str(ROOT / "priors/configs/ridge_prox_gray.yaml"))
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--minutes", type=float, default=8.0, help="wall-clock budget of the training loop")
    ap.add_argument("--batch-size", type=int, default=0, help="override data.batch_size (0: the recipe's)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (smoke runs)")
    ap.add_argument("--chunk", type=int, default=50, help="steps between budget checks")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("train_gpu: no CUDA device here; use --device cpu for a smoke run", file=sys.stderr)
        return 2
    out = Path(args.out)
    run_dir = out / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = _config(args, run_dir)
    device_name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    t0 = time.perf_counter()
    budget = 60 * args.minutes
    summary: dict = {}
    done = 0
    while True:
        chunk = args.chunk if not args.max_steps else min(args.chunk, args.max_steps - done)
        summary = train(cfg, resume=True, progress=False, max_steps=chunk)
        done += chunk
        if summary["finished"] or time.perf_counter() - t0 > budget or (args.max_steps and done >= args.max_steps):
            break
    seconds = time.perf_counter() - t0
    ckpt = torch.load(summary["checkpoint"], map_location="cpu", weights_only=True)
    log = ckpt["log"]
    record = {"device": device_name, "config": str(args.config), "steps": summary["step"],
              "finished": summary["finished"], "train_seconds": seconds,
              "seconds_per_step": statistics.median(e["seconds"] for e in log) if log else None,
              "final_val_psnr": next((e["val_psnr"] for e in reversed(log) if "val_psnr" in e), None)}
    model_path = Path(summary.get("model") or summary["checkpoint"])
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    with open(out / "train_log.jsonl", "w") as fh:
        for e in log:
            fh.write(json.dumps(e) + "\n")
    if summary["finished"]:
        (out / "model.pt").write_bytes(model_path.read_bytes())
        model_path = out / "model.pt"
    model = load_checkpoint(model_path)  # the certificate is recomputed from the weights on load
    record["certificate"] = {k: model.stored_certificate.get(k) for k in ("lipschitz", "alpha", "method")}
    record["test_psnr"] = _denoising(model_path, size=48 if args.max_steps else 256)
    (out / "report.json").write_text(json.dumps(record, indent=2))
    lines = [f"# {Path(args.config).name} on {device_name}", "",
             f"- steps: {record['steps']} ({'finished' if record['finished'] else 'budget reached; rerun to resume'})",
             f"- training wall time: {seconds:.0f} s, median {record['seconds_per_step']:.3f} s per step",
             f"- certificate (recomputed): Lipschitz {record['certificate']['lipschitz']}, alpha {record['certificate']['alpha']}",
             "- test split PSNR (dB): " + ", ".join(f"sigma {k}: {v:.2f}" for k, v in record["test_psnr"].items())]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
