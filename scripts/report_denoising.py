#!/usr/bin/env python
"""Denoising report for the README: averaged prior vs baselines vs BM3D vs TV on the test split.

For sigma in {15, 25, 50}/255 and the test images (camera, astronaut, coffee, chelsea, rocket;
grey, 256x256 centre crops), adds seeded Gaussian noise and denoises with every available model.
TV's strength is tuned per sigma on the held-out validation image (never on the test split).
Prints a Markdown table (mean PSNR / SSIM over the images, seconds per image) and the
certificates, and writes JSON.

Usage::

    python scripts/report_denoising.py --out reports/denoising \
        [--averaged priors/weights/averaged_gray.pt] [--dncnn priors/weights/dncnn_gray.pt] \
        [--ridge priors/weights/ridge_gray.pt] [--ridge-prox priors/weights/ridge_prox_gray.pt] \
        [--ridge-stack priors/weights/ridge_stack_gray.pt] \
        [--unconstrained priors/weights/averaged_unconstrained_gray.pt] [--no-bm3d]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from priors.data import VALIDATION_IMAGE  # noqa: E402
from priors.denoisers import TVDenoiser  # noqa: E402
from priors.pretrained import WEIGHTS_DIR, load_checkpoint  # noqa: E402
from problems.images import TEST_SPLIT, load_image  # noqa: E402
from problems.metrics import psnr, ssim  # noqa: E402

SIGMAS = (15, 25, 50)


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="reports/denoising")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--averaged", default=str(WEIGHTS_DIR / "averaged_gray.pt"))
    ap.add_argument("--dncnn", default=str(WEIGHTS_DIR / "dncnn_gray.pt"))
    ap.add_argument("--ridge", default=str(WEIGHTS_DIR / "ridge_gray.pt"), help="convex ridge model (one-step denoiser)")
    ap.add_argument("--ridge-prox", default=str(WEIGHTS_DIR / "ridge_prox_gray.pt"),
                    help="convex ridge model whose denoiser is the prox of lam(sigma) R")
    ap.add_argument("--ridge-stack", default=str(WEIGHTS_DIR / "ridge_stack_gray.pt"),
                    help="composition of averaged ridge steps (priors/ridge_stack.py)")
    ap.add_argument("--unconstrained", default=str(WEIGHTS_DIR / "averaged_unconstrained_gray.pt"),
                    help="the averaged architecture trained without the constraint")
    ap.add_argument("--no-bm3d", action="store_true")
    ap.add_argument("--images", nargs="+", default=list(TEST_SPLIT))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    methods: dict[str, object] = {}
    certs: dict[str, dict] = {}
    for name, path in (("averaged (ours)", args.averaged), ("convex ridge, one step (ours)", args.ridge),
                       ("convex ridge, prox (ours)", args.ridge_prox), ("ridge stack (ours)", args.ridge_stack),
                       ("averaged, constraint off", args.unconstrained), ("DnCNN (unconstrained)", args.dncnn)):
        if path and Path(path).is_file():
            model = load_checkpoint(path)
            methods[name] = model
            certs[name] = {k: model.stored_certificate.get(k) for k in ("lipschitz", "alpha", "method")}
            certs[name]["path"] = str(path)
    if not args.no_bm3d:
        try:
            from priors.denoisers import BM3DDenoiser

            methods["BM3D"] = BM3DDenoiser()
            certs["BM3D"] = {"lipschitz": None, "alpha": None, "method": "none (no certificate)"}
        except ImportError as exc:
            print(f"# BM3D skipped: {exc}")
    tv_strength = {s: tune_tv(s / 255, args.size) for s in SIGMAS}
    certs["TV"] = {"lipschitz": 1.0, "alpha": 0.5, "method": "prox of a convex function (firmly nonexpansive), to tolerance"}

    images = {n: load_image(n, size=args.size) for n in args.images}
    rows = []
    for s in SIGMAS:
        sigma = s / 255
        for mname in [*methods, "TV"]:
            den = methods.get(mname) or TVDenoiser(strength=tv_strength[s])
            ps, ss, ts = [], [], []
            for i, (iname, img) in enumerate(images.items()):
                y = noisy(img, sigma, seed=1000 * s + i)
                t0 = time.perf_counter()
                with torch.no_grad():
                    x = den(y, sigma)
                ts.append(time.perf_counter() - t0)
                ps.append(float(psnr(x, img)[0]))
                ss.append(float(ssim(x, img)[0]))
            rows.append({"sigma": s, "method": mname, "psnr": statistics.mean(ps), "ssim": statistics.mean(ss),
                         "seconds": statistics.median(ts), "per_image_psnr": dict(zip(images, ps))})
            print(f"sigma={s:>2} {mname:<26} PSNR {rows[-1]['psnr']:.2f}  SSIM {rows[-1]['ssim']:.4f}  "
                  f"{rows[-1]['seconds']:.3f} s", flush=True)

    lines = ["| method | " + " | ".join(f"σ={s}: PSNR / SSIM" for s in SIGMAS) + " | s / image (256²) | Lipschitz | α |",
             "|---|" + "---|" * len(SIGMAS) + "---|---|---|"]
    for mname in [*methods, "TV"]:
        cells = []
        for s in SIGMAS:
            r = next(r for r in rows if r["sigma"] == s and r["method"] == mname)
            cells.append(f"{r['psnr']:.2f} / {r['ssim']:.3f}")
        sec = statistics.median(r["seconds"] for r in rows if r["method"] == mname)
        c = certs.get(mname, {})
        lip = "—" if c.get("lipschitz") is None else f"{c['lipschitz']:.4g}"
        alpha = "none" if c.get("alpha") is None else f"{c['alpha']:.4f}"
        lines.append(f"| {mname} | " + " | ".join(cells) + f" | {sec:.3f} | {lip} | {alpha} |")
    table = "\n".join(lines)
    print()
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "denoising.md").write_text(table + "\n")
    (out / "denoising.json").write_text(json.dumps({"rows": rows, "certificates": certs, "tv_strength": tv_strength,
                                                    "images": list(images), "size": args.size}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
