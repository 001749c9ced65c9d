#!/usr/bin/env python
"""Denoising benchmark: every shipped prior, BM3D and TV on the same seeded noisy images.

Two image sets:

* ``--dataset DIR``: every image of a folder at its native size (the standard one is BSD68, the 68
  grey Berkeley test photos of the denoising literature); the published BSD68 figures of BM3D,
  DnCNN, CRR-NN and WCRR-NN are printed beside the measured rows, with their sources.
* default: the project's test split (camera, astronaut, coffee, chelsea, rocket; grey 256x256
  centre crops), kept for continuity with earlier reports.

Protocol: Gaussian noise of level sigma in {15, 25, 50}/255 on the [0, 1] scale, seeded per
(sigma, image index), no clipping of the noisy image; PSNR with peak 1.  TV's strength is tuned
per sigma on the held-out validation image of the training side (never on the test images).
Each (method, image, sigma) result is cached in ``OUT/cells.jsonl`` (keyed by the model file's
SHA-256, the image's SHA-256, sigma and the noise seed), so a rerun or a new model only computes
what is missing.  Seconds are per image on ``--threads`` threads (default 1).

Usage::

    python scripts/report_denoising.py --dataset PATH/TO/BSD68 --out priors/results/bsd68
    python scripts/report_denoising.py --out priors/results/denoising          # the 5-image split
    ... [--model LABEL=PATH ...] [--only-models] [--no-bm3d] [--sigmas 15 25 50] [--limit N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from priors.data import VALIDATION_IMAGE, folder_files  # noqa: E402
from priors.denoisers import TVDenoiser  # noqa: E402
from priors.pretrained import WEIGHTS_DIR, load_checkpoint  # noqa: E402
from problems.images import TEST_SPLIT, load_image  # noqa: E402
from problems.metrics import psnr, ssim  # noqa: E402

SIGMAS = (15, 25, 50)

#: Shipped models reported by default, in table order (label, file name in priors/weights).
SHIPPED = (
    ("weakly convex ridge, prox (ours)", "wcrr_bsd400.pt"),
    ("convex ridge, prox (ours)", "crr_bsd400.pt"),
    ("ridge stack (ours)", "ridge_stack_gray.pt"),
    ("convex ridge, one step (ours)", "ridge_gray.pt"),
    ("averaged ResNet, splines (ours)", "averaged_bsd400.pt"),
    ("averaged ResNet (ours)", "averaged_gray.pt"),
    ("averaged, constraint off", "averaged_unconstrained_gray.pt"),
    ("DnCNN (unconstrained)", "dncnn_gray.pt"),
)

#: Published mean PSNR on BSD68 (grey, peak 255 = our peak 1), by sigma; None where not reported.
PUBLISHED_BSD68 = (
    ("BM3D (published)", {15: 31.07, 25: 28.57, 50: 25.62},
     "Zhang et al., DnCNN, IEEE TIP 2017 (arXiv 1608.03981), Table II"),
    ("DnCNN-S (published)", {15: 31.73, 25: 29.23, 50: 26.23},
     "Zhang et al., DnCNN, IEEE TIP 2017 (arXiv 1608.03981), Table II"),
    ("CRR-NN (published)", {15: 30.55, 25: 28.10, 50: None},
     "Goujon, Neumayer, Bohra, Unser, arXiv 2211.12461 (convex ridge regularizer)"),
    ("WCRR-NN (published)", {15: 31.21, 25: 28.68, 50: None},
     "Goujon, Neumayer, Unser, arXiv 2308.10542 (weakly convex ridge regularizer)"),
)


def noisy(img: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return img + sigma * torch.randn(img.shape, generator=gen)


def tune_tv(sigma: float, size: int) -> float:
    """Strength of the TV denoiser maximising PSNR on the validation image (small grid)."""
    val = load_image(VALIDATION_IMAGE, size=size)
    y = noisy(val, sigma, seed=123)
    best = (-1.0, 1.0)
    for strength in (0.3, 0.5, 0.7, 1.0, 1.4):
        with torch.no_grad():
            p = float(psnr(TVDenoiser(strength=strength)(y, sigma), val)[0])
        best = max(best, (p, strength))
    return best[1]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_images(dataset: str | None, size: int, names: list[str], limit: int | None) -> dict[str, dict]:
    """name -> {"image": (1, 1, H, W) tensor, "sha256": ...}; the folder's files in sorted order."""
    out = {}
    if dataset:
        for p in folder_files(dataset)[:limit]:
            out[p.name] = {"image": load_image(p), "sha256": _sha(p.read_bytes())}
    else:
        for n in names[:limit]:
            img = load_image(n, size=size)
            out[n] = {"image": img, "sha256": _sha(img.numpy().tobytes())}
    return out


def build_methods(args: argparse.Namespace) -> tuple[dict[str, object], dict[str, dict], dict[str, str]]:
    """label -> denoiser, label -> certificate summary, label -> cache key."""
    entries = [] if args.only_models else [(label, WEIGHTS_DIR / f) for label, f in SHIPPED]
    for spec in args.model or []:
        label, _, path = spec.partition("=")
        if not path:
            raise SystemExit(f"--model: expected LABEL=PATH, got {spec!r}")
        entries.append((label, Path(path)))
    methods, certs, keys = {}, {}, {}
    for label, path in entries:
        if not Path(path).is_file():
            continue
        model = load_checkpoint(path)
        methods[label] = model
        certs[label] = {k: model.stored_certificate.get(k) for k in ("lipschitz", "alpha", "method")}
        certs[label]["path"] = str(path)
        keys[label] = f"model:{_sha(Path(path).read_bytes())[:16]}"
    if not args.no_bm3d:
        try:
            import bm3d

            from priors.denoisers import BM3DDenoiser

            methods["BM3D"] = BM3DDenoiser()
            certs["BM3D"] = {"lipschitz": None, "alpha": None, "method": "none (no certificate)"}
            keys["BM3D"] = f"bm3d:{getattr(bm3d, '__version__', '?')}"
        except ImportError as exc:
            print(f"# BM3D skipped: {exc}")
    return methods, certs, keys


class CellCache:
    """Results per (method key, image SHA-256, sigma, seed), appended to a JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cells: dict[str, dict] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.strip():
                    rec = json.loads(line)
                    self.cells[rec["key"]] = rec

    def get(self, key: str) -> dict | None:
        return self.cells.get(key)

    def put(self, key: str, rec: dict) -> None:
        rec = {"key": key, **rec}
        self.cells[key] = rec
        with open(self.path, "a") as fh:
            fh.write(json.dumps(rec) + "\n")


def run(methods: dict, keys: dict, images: dict, sigmas: tuple[int, ...], cache: CellCache) -> list[dict]:
    rows = []
    for s in sigmas:
        sigma = s / 255
        for mname, den in methods.items():
            ps, ss, ts = [], [], []
            for i, (iname, rec) in enumerate(images.items()):
                seed = 1000 * s + i
                key = f"{keys[mname]}|{rec['sha256'][:16]}|{s}|{seed}"
                cell = cache.get(key)
                if cell is None:
                    img = rec["image"]
                    y = noisy(img, sigma, seed=seed)
                    t0 = time.perf_counter()
                    with torch.no_grad():
                        x = den(y, sigma)
                    cell = {"seconds": time.perf_counter() - t0, "psnr": float(psnr(x, img)[0]),
                            "ssim": float(ssim(x, img)[0]), "image": iname, "sigma": s, "method": mname}
                    cache.put(key, cell)
                ps.append(cell["psnr"])
                ss.append(cell["ssim"])
                ts.append(cell["seconds"])
            rows.append({"sigma": s, "method": mname, "psnr": statistics.mean(ps), "ssim": statistics.mean(ss),
                         "seconds": statistics.median(ts), "per_image_psnr": dict(zip(images, ps))})
            print(f"sigma={s:>2} {mname:<34} PSNR {rows[-1]['psnr']:.2f}  SSIM {rows[-1]['ssim']:.4f}  "
                  f"{rows[-1]['seconds']:.3f} s", flush=True)
    return rows


def table(rows: list[dict], methods: list[str], certs: dict, sigmas: tuple[int, ...], published: bool,
          size_note: str) -> str:
    lines = ["| method | " + " | ".join(f"σ={s}: PSNR / SSIM" for s in sigmas)
             + f" | s / image ({size_note}) | Lipschitz | α |",
             "|---|" + "---|" * len(sigmas) + "---|---|---|"]
    for mname in methods:
        cells = []
        for s in sigmas:
            r = next(r for r in rows if r["sigma"] == s and r["method"] == mname)
            cells.append(f"{r['psnr']:.2f} / {r['ssim']:.3f}")
        sec = statistics.median(r["seconds"] for r in rows if r["method"] == mname)
        c = certs.get(mname, {})
        lip = "—" if c.get("lipschitz") is None else f"{c['lipschitz']:.4g}"
        alpha = "none" if c.get("alpha") is None else f"{c['alpha']:.4f}"
        lines.append(f"| {mname} | " + " | ".join(cells) + f" | {sec:.3f} | {lip} | {alpha} |")
    if published:
        for name, figures, source in PUBLISHED_BSD68:
            cells = ["–" if figures.get(s) is None else f"{figures[s]:.2f}" for s in sigmas]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | – | – | {source} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="reports/denoising")
    ap.add_argument("--dataset", default=None, help="folder of test images at native size (e.g. BSD68)")
    ap.add_argument("--size", type=int, default=256, help="crop size of the bundled test split (no --dataset)")
    ap.add_argument("--model", action="append", metavar="LABEL=PATH", help="another model file to report")
    ap.add_argument("--only-models", action="store_true", help="only the --model files, not the shipped ones")
    ap.add_argument("--no-bm3d", action="store_true")
    ap.add_argument("--images", nargs="+", default=list(TEST_SPLIT), help="bundled images (no --dataset)")
    ap.add_argument("--limit", type=int, default=None, help="first N images only (smoke runs)")
    ap.add_argument("--sigmas", type=int, nargs="+", default=list(SIGMAS))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sigmas = tuple(args.sigmas)

    methods, certs, keys = build_methods(args)
    tv_strength = {s: tune_tv(s / 255, 256) for s in sigmas}
    certs["TV"] = {"lipschitz": 1.0, "alpha": 0.5, "method": "prox of a convex function (firmly nonexpansive), to tolerance"}
    images = load_images(args.dataset, args.size, args.images, args.limit)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = CellCache(out / "cells.jsonl")
    rows = run(methods, keys, images, sigmas, cache)
    for s in sigmas:
        tv = {"TV": TVDenoiser(strength=tv_strength[s])}
        rows += run(tv, {"TV": f"tv:{tv_strength[s]:g}"}, images, (s,), cache)

    size_note = "native size" if args.dataset else f"{args.size}²"
    md = table(rows, [*methods, "TV"], certs, sigmas, published=bool(args.dataset), size_note=size_note)
    print()
    print(md)
    command = "python scripts/report_denoising.py " + " ".join(sys.argv[1:] if argv is None else argv)
    header = (f"Mean over {len(images)} images ({'folder ' + Path(args.dataset).name if args.dataset else 'test split'}),"
              f" Gaussian noise seeded per image, no clipping, PSNR peak 1; TV strength tuned on the validation "
              f"image.\n\nCommand: `{command}`\n\n")
    (out / "denoising.md").write_text(header + md + "\n")
    (out / "denoising.json").write_text(json.dumps({
        "rows": rows, "certificates": certs, "tv_strength": tv_strength, "images": list(images),
        "image_sha256": {n: r["sha256"] for n, r in images.items()},
        "dataset": Path(args.dataset).name if args.dataset else None, "size": None if args.dataset else args.size,
        "published": [{"method": n, "psnr": f, "source": src} for n, f, src in PUBLISHED_BSD68] if args.dataset else [],
        "command": command}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
