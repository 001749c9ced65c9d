"""The reconstruction files a solve writes, for ``solve`` and ``solve --input-dir`` alike.

Beside the ``.npy`` array (float32, ``(C, H, W)``, exactly what the solver returned), every
reconstruction is written as

* ``<stem>_reconstruction.png`` -- 8-bit, values **clipped to [0, 1]** then ``round(255 x)``:
  for viewing;
* ``<stem>_reconstruction.tif`` -- float32 (tifffile), values **not clipped**: for analysis.

Rules for existing files (the same for the three files, the figure and the records): a run
writes into its ``--out`` folder and replaces the files of the same names there -- the outputs
of an earlier run with the same image, algorithm and prior, as the ``.npy`` always was. Every
file is written to a temporary name and renamed, so a crash never leaves half a file. A target
that is not a regular file (a folder, a device, a FIFO, a symbolic link, which a rename would
replace or a write would follow) and a target that is one of the run's input files are refused
before anything is written. A folder run gives every input its own output stem
(:func:`output_stems`), so that no two inputs, and no input and the summary, share an output name.

Examples
--------
>>> import tempfile, torch
>>> paths = write_reconstruction(torch.zeros(1, 1, 8, 8), tempfile.mkdtemp(), "camera_pgd_tv")
>>> sorted(p.name for p in paths.values())
['camera_pgd_tv_reconstruction.npy', 'camera_pgd_tv_reconstruction.png', 'camera_pgd_tv_reconstruction.tif']
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

__all__ = ["RECONSTRUCTION_SUFFIXES", "reconstruction_paths", "check_output_targets", "write_reconstruction", "save_png8",
           "save_tiff32", "output_stems"]

#: What follows the stem in the names of the reconstruction files, by kind.
RECONSTRUCTION_SUFFIXES: dict[str, str] = {"npy": "_reconstruction.npy", "png": "_reconstruction.png",
                                           "tiff": "_reconstruction.tif"}


def _as_hwc(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(C, H, W)`` or ``(1, C, H, W)`` with C in {1, 3} as ``(H, W)`` or ``(H, W, 3)`` float64."""
    a = image.detach().cpu().double().numpy() if isinstance(image, torch.Tensor) else np.asarray(image, np.float64)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 3 or a.shape[0] not in (1, 3):
        raise ValueError(f"expected an image (C, H, W) or (1, C, H, W) with C = 1 or 3, got shape {a.shape}")
    return a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1)


def _replace_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """``write`` a temporary file beside ``path``, then rename it over ``path`` (no half-written file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def save_png8(image: torch.Tensor | np.ndarray, path: str | Path) -> Path:
    """Write an image as an 8-bit PNG: values **clipped to [0, 1]**, then ``round(255 x)``.

    Examples
    --------
    >>> import os, tempfile
    >>> p = save_png8(np.array([[[-0.5, 0.5], [1.0, 2.0]]]), os.path.join(tempfile.mkdtemp(), "x.png"))
    >>> import imageio.v3 as iio; iio.imread(p).tolist()
    [[0, 128], [255, 255]]
    """
    import imageio.v3 as iio

    data = np.round(np.clip(_as_hwc(image), 0.0, 1.0) * 255.0).astype(np.uint8)
    return _replace_atomically(Path(path), lambda tmp: iio.imwrite(tmp, data, extension=".png", plugin="pillow"))


def save_tiff32(image: torch.Tensor | np.ndarray, path: str | Path) -> Path:
    """Write an image as a float32 TIFF (tifffile), values **not clipped**: what the solver returned.

    Examples
    --------
    >>> import os, tempfile, tifffile
    >>> p = save_tiff32(np.array([[[-0.5, 0.5], [1.0, 2.0]]]), os.path.join(tempfile.mkdtemp(), "x.tif"))
    >>> tifffile.imread(p).dtype.name, tifffile.imread(p).tolist()
    ('float32', [[-0.5, 0.5], [1.0, 2.0]])
    """
    import tifffile

    data = _as_hwc(image).astype(np.float32)
    photometric = "rgb" if data.ndim == 3 else "minisblack"
    return _replace_atomically(Path(path), lambda tmp: tifffile.imwrite(tmp, data, photometric=photometric))


def reconstruction_paths(out: str | Path, stem: str) -> dict[str, Path]:
    """``{"npy": ..., "png": ..., "tiff": ...}``: the reconstruction files of ``stem`` in ``out``."""
    out = Path(out).expanduser()
    return {kind: out / f"{stem}{suffix}" for kind, suffix in RECONSTRUCTION_SUFFIXES.items()}


def check_output_targets(paths: Iterable[Path], inputs: Iterable[str | Path] = ()) -> None:
    """Refuse output paths that are not regular files, or that are one of the run's input files."""
    from problems.config import check_output_file

    sources = set()
    for p in inputs:
        q = Path(p).expanduser()
        if q.exists():
            sources.add(q.resolve())
    for path in paths:
        check_output_file(path, "--out")
        if path.exists() and path.resolve() in sources:
            raise ValueError(f"--out: the output '{path}' is an input file of this run; it would be replaced; "
                             "choose another --out")


def write_reconstruction(x: torch.Tensor, out: str | Path, stem: str, *,
                         inputs: Iterable[str | Path] = ()) -> dict[str, Path]:
    """Write ``x`` (``(C, H, W)`` or ``(1, C, H, W)``) as ``.npy``, 8-bit PNG and float32 TIFF; return the paths.

    Raises
    ------
    ValueError
        A target is not a regular file or is one of ``inputs`` (checked before any write).
    """
    image = x.detach().cpu().to(torch.float32)
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise ValueError(f"write_reconstruction writes one image, got a batch of {image.shape[0]}")
        image = image[0]
    paths = reconstruction_paths(out, stem)
    check_output_targets(paths.values(), inputs)
    paths["npy"].parent.mkdir(parents=True, exist_ok=True)
    array = image.numpy()

    def save_npy(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.save would append .npy to a name
            np.save(fh, array)

    _replace_atomically(paths["npy"], save_npy)
    save_png8(array, paths["png"])
    save_tiff32(array, paths["tiff"])
    return paths


def output_stems(files: list[Path]) -> dict[Path, str]:
    """A distinct output stem per input: the file's stem, or ``stem_suffix`` when two inputs share a stem
    (``a.png`` and ``a.npy`` must not write over each other's results).

    A stem whose output names would meet another input's (``a.png`` writes ``a_reconstruction.png``, the
    figure of an input ``a_reconstruction.tif``) or the summary files gets a number: ``stem_2``, ...

    >>> sorted(output_stems([Path("a.png"), Path("a.npy"), Path("b.tif")]).values())
    ['a_npy', 'a_png', 'b']
    >>> list(output_stems([Path("a.png"), Path("a_reconstruction.tif"), Path("summary.png")]).values())
    ['a', 'a_reconstruction_2', 'summary_2']
    """
    counts: dict[str, int] = {}
    for p in files:
        counts[p.stem] = counts.get(p.stem, 0) + 1
    taken = {f"summary{ext}" for ext in (".md", ".csv", ".json")}
    stems: dict[Path, str] = {}
    for p in files:
        base = p.stem if counts[p.stem] == 1 else f"{p.stem}_{p.suffix.lstrip('.').lower()}"
        stem, k = base, 2
        while _output_names(stem) & taken:
            stem, k = f"{base}_{k}", k + 1
        taken |= _output_names(stem)
        stems[p] = stem
    return stems


def _output_names(stem: str) -> set[str]:
    """The file names a folder run writes for the output stem ``stem``."""
    return {f"{stem}.json", f"{stem}.png", *(f"{stem}{s}" for s in RECONSTRUCTION_SUFFIXES.values())}
