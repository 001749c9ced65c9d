#!/usr/bin/env python
"""Copy a finished training run into ``priors/weights/`` as a shipped model.

Writes ``<name>.pt`` (the run's model file, certificate recomputed and checked on load),
``<name>.yaml`` (the run's config), ``<name>.log.jsonl.gz`` (the training log) and
``<name>.data.json`` (every training file the model saw: folder, name, SHA-256).  Refuses to
replace an existing shipped file unless ``--replace``.

Usage::

    python scripts/ship_model.py runs/crr_bsd400 crr_bsd400
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from priors.pretrained import WEIGHTS_DIR, load_checkpoint  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="training run folder (holds model.pt, config.yaml, train_log.jsonl)")
    ap.add_argument("name", help="name of the shipped model (priors/weights/<name>.pt)")
    ap.add_argument("--replace", action="store_true", help="replace an existing shipped model of that name")
    args = ap.parse_args(argv)
    run = Path(args.run)
    model_file = run / "model.pt"
    if not model_file.is_file():
        raise SystemExit(f"ship_model: '{model_file}' does not exist; the run has not finished")
    targets = {s: WEIGHTS_DIR / f"{args.name}{s}" for s in (".pt", ".yaml", ".log.jsonl.gz", ".data.json")}
    taken = [str(p) for p in targets.values() if p.exists()]
    if taken and not args.replace:
        raise SystemExit(f"ship_model: {', '.join(taken)} exist; pass --replace to overwrite them")
    model = load_checkpoint(model_file)  # recomputes the certificate: a broken model is refused here
    import torch

    record = torch.load(model_file, map_location="cpu", weights_only=True)
    data = record.get("training", {}).get("data", {})
    shutil.copyfile(model_file, targets[".pt"])
    shutil.copyfile(run / "config.yaml", targets[".yaml"])
    with open(run / "train_log.jsonl", "rb") as src, gzip.open(targets[".log.jsonl.gz"], "wb") as dst:
        shutil.copyfileobj(src, dst)
    targets[".data.json"].write_text(json.dumps({
        "folders": data.get("folder_files", {}), "bundled_photos": data.get("photo_names", []),
        "sampler": data.get("sampler", {}), "validation_image": data.get("validation_image")}, indent=1))
    cert = model.certificate()
    print(f"shipped {args.name}: Lipschitz {cert.lipschitz:.4g}, alpha {cert.alpha}, "
          f"{sum(len(v) for v in data.get('folder_files', {}).values())} training files recorded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
