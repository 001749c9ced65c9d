"""``stablepnp solve --input-dir`` against one image: the model and its certificate are loaded once for a
folder, and the folder costs at most ~10x one image.

Writes 10 grey 256x256 crops of bundled scikit-image photos (none of the test split) to a temporary
folder, times one single-image solve (:func:`pnp.solve.solve`) and the folder run
(:func:`pnp.batch.solve_batch`, ``--batch-size`` images per run), counts the model loads and the certificate
computations, and prints a table.

    python scripts/bench_batch.py [--prior ridge] [--max-iter 50] [--threads 1] [--batch-size 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

import numpy as np  # noqa: E402
import torch  # noqa: E402

SOURCES = ("moon", "brick", "grass", "gravel", "text")  # bundled photos outside the test split


def write_images(folder: Path, n: int = 10, size: int = 256) -> list[Path]:
    """``n`` grey ``size``x``size`` crops (two per source photo, different corners) as .npy in [0, 1]."""
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        img = getattr(data, SOURCES[i % len(SOURCES)])().astype(np.float64)
        img = img.mean(axis=-1) if img.ndim == 3 else img
        img = (img - img.min()) / max(np.ptp(img), 1e-12)
        top = 0 if i < len(SOURCES) else img.shape[0] - size
        crop = img[top:top + size, :size]
        if crop.shape != (size, size):
            crop = np.pad(crop, ((0, size - crop.shape[0]), (0, size - crop.shape[1])), mode="reflect")
        paths.append(folder / f"img{i:02d}.npy")
        np.save(paths[-1], crop.astype(np.float32))
    return paths


def counting_load(name: str) -> dict[str, int]:
    """Wrap the registered prior's loader and its model's certificate to count what runs."""
    from pnp.registry import PRIORS

    counts = {"loads": 0, "certificates": 0}
    entry = PRIORS[name]
    inner = entry.load

    def load(path, channels):
        counts["loads"] += 1
        model = inner(path, channels)
        cert = getattr(model, "certificate", None)
        if callable(cert):
            seen: list = []

            def certificate(*args, **kwargs):
                c = cert(*args, **kwargs)
                if not any(c is s for s in seen):  # a new object: computed, not taken from the cache
                    seen.append(c)
                    counts["certificates"] += 1
                return c

            model.certificate = certificate
        return model

    PRIORS[name] = dataclasses.replace(entry, load=load)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", default="ridge")
    parser.add_argument("--max-iter", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1, help="images stacked per run (the solve default: 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from pnp.batch import solve_batch
    from pnp.solve import SolveConfig, solve

    counts = counting_load(args.prior)
    with tempfile.TemporaryDirectory() as tmp:
        files = write_images(Path(tmp) / "in")
        cfg = SolveConfig.from_dict({"problem": {"image": str(files[0]), "size": 256},
                                     "solver": {"prior": args.prior, "max_iter": args.max_iter, "tol": 0},
                                     "output": {"dir": str(Path(tmp) / "one"), "figure": False}})
        t0 = time.perf_counter()
        solve(cfg, quiet=True)
        single = time.perf_counter() - t0
        single_counts = dict(counts)
        print(f"single image: {single:.2f} s, {single_counts['loads']} model load(s), "
              f"{single_counts['certificates']} certificate computation(s)", flush=True)
        counts.update(loads=0, certificates=0)
        batch_cfg = cfg.updated(output={"dir": str(Path(tmp) / "many")})
        t0 = time.perf_counter()
        summary = solve_batch(batch_cfg, Path(tmp) / "in", quiet=True, batch_size=args.batch_size)
        batch = time.perf_counter() - t0
    print(f"prior {args.prior}, {args.max_iter} iterations, {len(summary['images'])} images of 256x256, "
          f"{args.threads} thread(s), {args.batch_size} image(s) per run")
    print(f"{'run':<22s}{'time [s]':>10s}{'model loads':>13s}{'certificates':>14s}")
    print(f"{'single image':<22s}{single:10.2f}{single_counts['loads']:13d}{single_counts['certificates']:14d}")
    print(f"{'folder (10 images)':<22s}{batch:10.2f}{counts['loads']:13d}{counts['certificates']:14d}")
    print(f"ratio folder / single: {batch / single:.2f} (target <= 10)")


if __name__ == "__main__":
    main()
