"""Make the committed Fashion-MNIST subset used by the tests (tests/fixtures/fashion_mnist_subset.npz).

Source: Debian's ``dataset-fashion-mnist`` package (``apt-get install dataset-fashion-mnist``;
files in /usr/share/datasets/fashion-mnist), i.e. Zalando Research's Fashion-MNIST, MIT licence.
The subset is class-balanced and deterministic: the first ``n/10`` images of each class, in file
order, from the train and test splits.

Usage::

    python scripts/make_fashion_subset.py --data-dir /usr/share/datasets/fashion-mnist \
        --train 3000 --test 1000 --out tests/fixtures/fashion_mnist_subset.npz
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from priors.robustness.data import DEBIAN_FASHION_DIR, load_fashion_mnist


def balanced(images: np.ndarray, labels: np.ndarray, n: int, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    per = n // classes
    idx = np.sort(np.concatenate([np.flatnonzero(labels == c)[:per] for c in range(classes)]))
    return images[idx], labels[idx]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(DEBIAN_FASHION_DIR))
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--out", default="tests/fixtures/fashion_mnist_subset.npz")
    args = ap.parse_args(argv)
    arrays = {}
    for split, n in (("train", args.train), ("test", args.test)):
        ds = load_fashion_mnist(args.data_dir, split)
        imgs, labs = balanced(ds.images[:, 0].numpy(), ds.labels.numpy().astype(np.uint8), n)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = imgs, labs
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, sha256 {digest[:16]}...): "
          + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
