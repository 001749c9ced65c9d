"""Training data for denoisers: dead-leaves images, bundled training photos, user folders.

Everything is generated or read offline.  The project's test split (camera, astronaut, coffee,
chelsea, rocket) is never used for training; :data:`VALIDATION_IMAGE` is held out of training too.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from problems.images import TEST_SPLIT, load_image, training_pool_names

__all__ = ["dead_leaves", "PatchSampler", "VALIDATION_IMAGE", "training_photo_names", "training_photos", "folder_files", "folder_images"]

#: bundled photo held out of training, used for validation PSNR and for parameter tuning.
VALIDATION_IMAGE = "motorcycle"
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy"}


def dead_leaves(
    size: int,
    rng: np.random.Generator,
    *,
    alpha: float = 3.0,
    r_min: float = 1.0,
    r_max: float | None = None,
    max_disks: int = 20000,
) -> np.ndarray:
    """One grey dead-leaves image (Achddou, Gousseau, Ladjal, SSVM 2021).

    Disks with uniform centres and radius density proportional to ``r^(-alpha)`` on
    ``[r_min, r_max]`` fall one after the other; each pixel keeps the grey level (uniform in
    [0, 1]) of the first disk that covers it.  Generation stops when every pixel is covered.

    Parameters
    ----------
    size : int
        Side of the square image.
    rng : numpy.random.Generator
        Source of randomness (seeded by the caller).
    alpha : float
        Power-law exponent of the radius density.
    r_min, r_max : float
        Radius range in pixels (``r_max`` defaults to ``size / 2``).

    Returns
    -------
    ndarray
        float32 image of shape (size, size) in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> img = dead_leaves(32, np.random.default_rng(0))
    >>> img.shape, float(img.min()) >= 0.0, float(img.max()) <= 1.0
    ((32, 32), True, True)
    """
    r_max = size / 2 if r_max is None else r_max
    img = np.full((size, size), np.nan, dtype=np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    uncovered = size * size
    # inverse-CDF sampling of r^(-alpha) on [r_min, r_max] (alpha != 1)
    a1 = 1.0 - alpha
    lo, hi = r_min**a1, r_max**a1
    drawn = 0
    while uncovered > 0 and drawn < max_disks:
        batch = 256
        u = rng.random(batch)
        radii = (lo + u * (hi - lo)) ** (1.0 / a1)
        cx = rng.uniform(-r_max, size + r_max, batch)
        cy = rng.uniform(-r_max, size + r_max, batch)
        grey = rng.random(batch).astype(np.float32)
        for r, x0, y0, g in zip(radii, cx, cy, grey):
            x_lo, x_hi = max(int(x0 - r), 0), min(int(math.ceil(x0 + r)) + 1, size)
            y_lo, y_hi = max(int(y0 - r), 0), min(int(math.ceil(y0 + r)) + 1, size)
            if x_lo >= x_hi or y_lo >= y_hi:
                continue
            sub = img[y_lo:y_hi, x_lo:x_hi]
            inside = (xx[y_lo:y_hi, x_lo:x_hi] - x0) ** 2 + (yy[y_lo:y_hi, x_lo:x_hi] - y0) ** 2 <= r * r
            new = inside & np.isnan(sub)
            n_new = int(new.sum())
            if n_new:
                sub[new] = g
                uncovered -= n_new
        drawn += batch
    img[np.isnan(img)] = rng.random()
    return img


def training_photo_names() -> list[str]:
    """Names of the bundled photos used for training (pool minus test split and validation image)."""
    return [n for n in training_pool_names() if n not in TEST_SPLIT and n != VALIDATION_IMAGE]


def training_photos(gray: bool = True) -> list[torch.Tensor]:
    """Bundled training-pool photos (never the test split, never :data:`VALIDATION_IMAGE`)."""
    return [load_image(n, gray=gray)[0] for n in training_photo_names()]


def folder_files(folder: str | Path) -> list[Path]:
    """The image files :func:`folder_images` reads from ``folder`` (sorted, recursive)."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder '{folder}' does not exist or is not a directory")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"image folder '{folder}' contains no PNG/JPG/TIFF/BMP/.npy images")
    return files


def folder_manifest(folder: str | Path) -> list[dict]:
    """Every file :func:`folder_images` reads from ``folder``: its path relative to the folder and SHA-256."""
    root = Path(folder)
    return [{"file": p.relative_to(root).as_posix(), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
            for p in folder_files(root)]


def folder_images(folder: str | Path, gray: bool = True) -> list[torch.Tensor]:
    """Every readable image in ``folder`` (recursively), as (C, H, W) tensors in [0, 1]."""
    return [load_image(p, gray=gray)[0] for p in folder_files(folder)]


@dataclass
class PatchSampler:
    """Draws random training patches from dead-leaves images and a list of photos.

    The dead-leaves pool is regenerated deterministically from ``(seed, refresh index)`` every
    ``refresh_every`` batches, and patches are drawn with a ``torch.Generator``, so the stream of
    batches is reproducible and resumable from :meth:`state_dict`.
    """

    photos: list[torch.Tensor]
    patch_size: int = 40
    batch_size: int = 16
    dead_leaves_fraction: float = 0.5
    pool_size: int = 64
    pool_image_size: int = 128
    refresh_every: int = 200
    seed: int = 0
    channels: int = 1

    def __post_init__(self) -> None:
        if not self.photos and self.dead_leaves_fraction < 1.0:
            raise ValueError("no training photos: set dead_leaves_fraction to 1.0 or add an image folder")
        for p in self.photos:
            if min(p.shape[-2:]) < self.patch_size:
                raise ValueError(f"a training image ({tuple(p.shape)}) is smaller than patch_size={self.patch_size}")
        self.generator = torch.Generator().manual_seed(self.seed)
        self.batches = 0
        self._pool_index = -1
        self._pool: torch.Tensor | None = None

    def _ensure_pool(self) -> torch.Tensor:
        index = self.batches // self.refresh_every
        if index != self._pool_index or self._pool is None:
            rng = np.random.default_rng([self.seed, index])
            imgs = [dead_leaves(self.pool_image_size, rng) for _ in range(self.pool_size)]
            pool = torch.from_numpy(np.stack(imgs))[:, None]
            self._pool = pool.expand(-1, self.channels, -1, -1).contiguous()
            self._pool_index = index
        return self._pool

    def _crop(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        p = self.patch_size
        i = int(torch.randint(0, h - p + 1, (1,), generator=self.generator))
        j = int(torch.randint(0, w - p + 1, (1,), generator=self.generator))
        patch = img[..., i : i + p, j : j + p]
        k = int(torch.randint(0, 8, (1,), generator=self.generator))
        patch = torch.rot90(patch, k % 4, dims=(-2, -1))
        return patch.flip(-1) if k >= 4 else patch

    def sample(self) -> torch.Tensor:
        """A batch (batch_size, C, patch, patch) of clean patches in [0, 1]."""
        pool = self._ensure_pool() if self.dead_leaves_fraction > 0 else None
        out = []
        for _ in range(self.batch_size):
            use_dl = float(torch.rand((), generator=self.generator)) < self.dead_leaves_fraction
            if use_dl:
                idx = int(torch.randint(0, pool.shape[0], (1,), generator=self.generator))
                out.append(self._crop(pool[idx]))
            else:
                idx = int(torch.randint(0, len(self.photos), (1,), generator=self.generator))
                out.append(self._crop(self.photos[idx]))
        self.batches += 1
        return torch.stack(out).contiguous()

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "batches": self.batches}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.batches = int(state["batches"])
        self._pool = None

    def describe(self) -> dict:
        return {
            "patch_size": self.patch_size,
            "batch_size": self.batch_size,
            "dead_leaves_fraction": self.dead_leaves_fraction,
            "dead_leaves": {"alpha": 3.0, "r_min": 1.0, "r_max": self.pool_image_size / 2,
                            "pool_size": self.pool_size, "image_size": self.pool_image_size,
                            "refresh_every": self.refresh_every},
            "photos": len(self.photos),
            "seed": self.seed,
        }
