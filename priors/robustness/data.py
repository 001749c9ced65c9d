"""Offline image-classification data: Fashion-MNIST idx files, the committed subset, CIFAR-10.

Fashion-MNIST (Xiao, Rasul, Vollgraf 2017, Zalando Research; MIT licence) is read from the
standard idx files, gzipped or not, in any of these layouts under ``data_dir``:

* the files themselves (``train-images-idx3-ubyte[.gz]`` etc.) directly in ``data_dir`` -- this
  is also the layout of Debian's ``dataset-fashion-mnist`` package
  (``/usr/share/datasets/fashion-mnist``);
* torchvision's layout ``data_dir/FashionMNIST/raw/``.

Nothing is downloaded.  Tests use the committed subset ``tests/fixtures/fashion_mnist_subset.npz``
made by ``scripts/make_fashion_subset.py``.  CIFAR-10 goes through ``torchvision.datasets.CIFAR10``
with ``download=False``, so it works only when the files are already present.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "ImageDataset",
    "DEBIAN_FASHION_DIR",
    "FASHION_CLASSES",
    "read_idx",
    "load_fashion_mnist",
    "load_npz_subset",
    "load_cifar10",
    "load_dataset",
    "default_subset_path",
]

DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


@dataclass(frozen=True)
class ImageDataset:
    """Images and labels of one split, kept as uint8 until asked for as floats.

    Attributes
    ----------
    images : Tensor
        uint8, shape (N, C, H, W).
    labels : Tensor
        int64, shape (N,).
    num_classes : int
        Number of classes.
    name : str
        Where the data came from (for reports).

    Examples
    --------
    >>> ds = ImageDataset(torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.arange(4), 10, "toy")
    >>> ds.float_images().dtype, len(ds)
    (torch.float32, 4)
    """

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    name: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def float_images(self) -> torch.Tensor:
        """Images in [0, 1] as float32."""
        return self.images.to(torch.float32) / 255.0

    def subset(self, n: int | None) -> "ImageDataset":
        """The first ``n`` samples (all when ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        return ImageDataset(self.images[:n], self.labels[:n], self.num_classes, self.name)


def read_idx(path: str | Path) -> np.ndarray:
    """Read one idx file (LeCun's format; ``.gz`` is decompressed transparently)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an idx file (bad magic number); point --data-dir at the raw idx files")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown idx element type 0x{code:02x}")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=_IDX_DTYPES[code], offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} but the file holds {arr.size} elements (truncated?)")
    return arr.reshape(dims)


def _find(data_dir: Path, stem: str) -> Path:
    for folder in (data_dir, data_dir / "FashionMNIST" / "raw", data_dir / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    raise FileNotFoundError(
        f"{stem}[.gz] not found under {data_dir} (looked in ., FashionMNIST/raw, raw); "
        "set data_dir to the idx files (e.g. /usr/share/datasets/fashion-mnist from Debian's dataset-fashion-mnist)"
    )


def load_fashion_mnist(data_dir: str | Path, split: str = "train") -> ImageDataset:
    """Fashion-MNIST ``split`` ("train" or "test") from idx files under ``data_dir``."""
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    data_dir = Path(data_dir)
    img_stem, lab_stem = _FILES[split]
    images = read_idx(_find(data_dir, img_stem))
    labels = read_idx(_find(data_dir, lab_stem))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"inconsistent idx files in {data_dir}: images {images.shape}, labels {labels.shape}")
    return ImageDataset(
        torch.from_numpy(images.copy()).unsqueeze(1),
        torch.from_numpy(labels.astype(np.int64)),
        10,
        f"fashion-mnist:{split}:{data_dir}",
    )


def default_subset_path() -> Path:
    """Path of the committed Fashion-MNIST subset (in the repository's tests/fixtures)."""
    return Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "fashion_mnist_subset.npz"


def load_npz_subset(path: str | Path | None = None, split: str = "train") -> ImageDataset:
    """The committed subset (or any npz with ``{split}_images`` uint8 (N,H,W) and ``{split}_labels``)."""
    path = Path(path) if path is not None else default_subset_path()
    if not path.is_file():
        raise FileNotFoundError(f"subset file {path} not found; make it with scripts/make_fashion_subset.py")
    with np.load(path) as z:
        key_i, key_l = f"{split}_images", f"{split}_labels"
        if key_i not in z or key_l not in z:
            raise ValueError(f"{path} has no {key_i!r}/{key_l!r} arrays")
        images, labels = z[key_i], z[key_l]
    if images.ndim == 3:
        images = images[:, None]
    return ImageDataset(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)), 10,
                        f"subset:{split}:{path.name}")


def load_cifar10(data_dir: str | Path, split: str = "train") -> ImageDataset:
    """CIFAR-10 through torchvision, only when its files already exist under ``data_dir``."""
    try:
        from torchvision.datasets import CIFAR10
    except ImportError as exc:  # pragma: no cover - torchvision is optional
        raise ImportError("CIFAR-10 needs torchvision: pip install torchvision") from exc
    try:
        ds = CIFAR10(str(data_dir), train=(split == "train"), download=False)
    except RuntimeError as exc:
        raise FileNotFoundError(
            f"CIFAR-10 files not found under {data_dir}; place torchvision's cifar-10-batches-py there (no download)"
        ) from exc
    images = torch.from_numpy(np.asarray(ds.data)).permute(0, 3, 1, 2).contiguous()
    return ImageDataset(images, torch.as_tensor(ds.targets, dtype=torch.int64), 10, f"cifar10:{split}:{data_dir}")


def load_dataset(name: str, *, split: str, data_dir: str | Path | None = None) -> ImageDataset:
    """Dispatch on ``name``: "fashion_mnist" (idx files), "fashion_mnist_subset" (npz), "cifar10"."""
    if name == "fashion_mnist":
        return load_fashion_mnist(data_dir if data_dir is not None else DEBIAN_FASHION_DIR, split)
    if name == "fashion_mnist_subset":
        return load_npz_subset(data_dir, split)
    if name == "cifar10":
        if data_dir is None:
            raise ValueError("dataset cifar10 needs data_dir pointing at torchvision's CIFAR-10 files")
        return load_cifar10(data_dir, split)
    raise ValueError(f"dataset {name!r} unknown; valid: fashion_mnist, fashion_mnist_subset, cifar10")
