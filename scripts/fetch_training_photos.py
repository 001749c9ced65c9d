"""Fetch natural training photos from Debian packages, offline afterwards; record every file.

    python scripts/fetch_training_photos.py --out data/photos

Downloads two registry packages with ``apt-get download`` (no installation, no root needed for
the unpacking), unpacks them with ``dpkg-deb -x``, and writes grey PNG copies of a curated list of
natural photographs into ``--out``:

* ``opencv-doc``: the sample photographs of ``usr/share/doc/opencv-doc/examples/data`` (synthetic
  drawings, renders, logos, paintings, calibration boards and motion-blurred shots are left out:
  see :data:`OPENCV_PHOTOS`);
* ``mate-backgrounds``: the 12 nature photos of ``usr/share/backgrounds/mate/nature``, downscaled
  by an integer factor to about 500 pixels on the short side (BSD-like scale; the originals are
  wallpapers whose fine detail is smoothed by the camera pipeline).

None of these is in the project's test split (camera, astronaut, coffee, chelsea, rocket).  A
manifest ``MANIFEST.json`` (package version, source path, SHA-256 of the written file, size) goes
next to the images; training configs point ``data.folders`` at ``--out`` and the trained model file
records the folder's file count.  ``--from DIR`` uses an already unpacked tree instead of
downloading.  Tests never need these files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

PACKAGES = ("opencv-doc", "mate-backgrounds")
OPENCV_DIR = "usr/share/doc/opencv-doc/examples/data"
MATE_DIR = "usr/share/backgrounds/mate/nature"
#: natural photographs among the opencv samples (curated by eye from the file list).
OPENCV_PHOTOS = (
    "aero1.jpg", "aero3.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg", "basketball1.png", "board.jpg",
    "box_in_scene.png", "building.jpg", "butterfly.jpg", "ela_original.jpg", "fruits.jpg", "graf1.png",
    "HappyFish.jpg", "home.jpg", "leuvenA.jpg", "messi5.jpg", "orange.jpg", "rubberwhale1.png",
    "smarties.png", "squirrel_cls.jpg", "stuff.jpg", "sudoku.png",
)
SHORT_SIDE = 500


def _unpack(tree: Path) -> dict[str, str]:
    """apt-get download + dpkg-deb -x into ``tree``; returns {package: .deb file name}."""
    debs = {}
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", *PACKAGES], cwd=tmp, check=True)
        for deb in sorted(Path(tmp).glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
            debs[deb.name.split("_")[0]] = deb.name
    return debs


def _grey(path: Path) -> np.ndarray:
    from skimage import io
    from skimage.color import rgb2gray, rgba2rgb

    img = io.imread(path)
    if img.ndim == 3 and img.shape[-1] == 4:
        img = rgba2rgb(img)
    if img.ndim == 3:
        img = rgb2gray(img)
    img = img.astype(np.float64)
    return img / 255.0 if img.max() > 1.0 else img


def _downscale(img: np.ndarray) -> np.ndarray:
    from skimage.transform import downscale_local_mean

    f = max(1, min(img.shape) // SHORT_SIDE)
    return downscale_local_mean(img, (f, f)) if f > 1 else img


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="data/photos", help="folder for the grey PNGs and MANIFEST.json")
    ap.add_argument("--from", dest="tree", default=None, help="already unpacked tree (skip the download)")
    args = ap.parse_args(argv)
    from skimage import io

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(args.tree) if args.tree else Path(tmp)
        debs = {} if args.tree else _unpack(tree)
        sources = [(tree / OPENCV_DIR / n, "opencv-doc", False) for n in OPENCV_PHOTOS]
        sources += [(p, "mate-backgrounds", True) for p in sorted((tree / MATE_DIR).glob("*.jpg"))]
        manifest = []
        for src, pkg, big in sources:
            if not src.is_file():
                print(f"fetch_training_photos: missing {src} (package {pkg}); skipped", file=sys.stderr)
                continue
            img = _grey(src)
            if big:
                img = _downscale(img)
            name = f"{pkg}__{src.stem}.png"
            io.imsave(out / name, (np.clip(img, 0, 1) * 255).round().astype(np.uint8), check_contrast=False)
            manifest.append({"file": name, "package": pkg, "deb": debs.get(pkg), "source": str(src.relative_to(tree)),
                             "shape": list(img.shape),
                             "sha256": hashlib.sha256((out / name).read_bytes()).hexdigest()})
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1))
    print(f"wrote {len(manifest)} photos to {out} (manifest: {out / 'MANIFEST.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
