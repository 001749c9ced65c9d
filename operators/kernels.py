"""Blur kernels (point spread functions): generators, loading, validation, CLI specs.

Every function returns a 2-D ``torch.float64`` tensor ``(h, w)``, nonnegative and summing to 1.
Kernels are stored in double precision so that float64 computations stay exact; :class:`Blur`
casts them to the dtype of the image.

Conventions
-----------
* Geometry: the image row index grows downwards. Angles are in degrees, measured
  counterclockwise *as displayed* from the horizontal axis (so ``motion(9, 90)`` is vertical and
  ``motion(9, 45)`` goes from the lower left to the upper right).
* The kernel centre (zero shift) is the pixel ``(h // 2, w // 2)``; for an even size this is the
  lower-right of the four central pixels (the convention of ``scipy.ndimage.convolve``).
* Validation (:func:`validate_kernel`): a kernel with a NaN / Inf, a negative entry or a
  non-positive sum is refused (``ValueError``); a kernel whose sum is not 1 is **normalised with a
  warning**; a kernel larger than the image is refused.

CLI specs (:func:`parse_kernel_spec`): ``gaussian:STD``, ``gaussian:STD_X:STD_Y:ANGLE``,
``motion:LENGTH:ANGLE``, ``box:SIZE``, ``disk:RADIUS``, ``shake:SEED`` (or ``shake:SEED:SIZE``), or
a path to a ``.npy`` / image file.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .io import first_line, read_npy

__all__ = [
    "gaussian",
    "box",
    "disk",
    "motion",
    "shake",
    "load_kernel",
    "parse_kernel_spec",
    "validate_kernel",
    "KERNEL_SPEC_FORMS",
]

KERNEL_SPEC_FORMS = (
    "gaussian:STD, gaussian:STD_X:STD_Y:ANGLE, motion:LENGTH:ANGLE, box:SIZE, disk:RADIUS, "
    "shake:SEED[:SIZE], or a path to a .npy/.png kernel file"
)

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
_IMAGE_PLUGINS = {".tif": "tifffile", ".tiff": "tifffile"}  # the others through pillow


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite positive number, got {value}")
    return value


def _odd_size(extent: float) -> int:
    """Smallest odd size ``2 m + 1`` with ``m >= extent``."""
    return 2 * int(math.ceil(extent - 1e-9)) + 1


def validate_kernel(
    kernel, image_shape: tuple[int, ...] | None = None, *, name: str = "kernel"
) -> Tensor:
    """Check a blur kernel and return it as a normalised 2-D float64 tensor.

    Parameters
    ----------
    kernel : array_like or Tensor
        ``(h, w)`` kernel; leading singleton axes (``(1, 1, h, w)``) are dropped.
    image_shape : tuple of int, optional
        ``(H, W)`` or ``(B, C, H, W)``; when given, a kernel larger than the image is refused.
    name : str
        Name used in error messages.

    Returns
    -------
    Tensor
        The kernel, float64, nonnegative, summing to 1.

    Raises
    ------
    ValueError
        Not 2-D, empty, NaN/Inf, negative entries, non-positive sum, or larger than the image.

    Warns
    -----
    UserWarning
        When the kernel does not sum to 1 (it is then normalised).

    Examples
    --------
    >>> import torch
    >>> validate_kernel(torch.ones(2, 2) / 4).sum().item()
    1.0
    """
    if isinstance(kernel, Tensor):
        k = kernel.detach().to("cpu", torch.float64)
    else:
        k = torch.as_tensor(np.asarray(kernel, dtype=np.float64))
    while k.dim() > 2 and k.shape[0] == 1:
        k = k[0]
    if k.dim() != 2 or k.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (h, w), got shape {tuple(k.shape)}")
    if not torch.isfinite(k).all():
        raise ValueError(f"{name} contains NaN or Inf values: pass a finite kernel")
    peak = float(k.abs().max())
    if float(k.min()) < -1e-12 * peak:
        raise ValueError(f"{name} has negative entries (min {float(k.min()):.3g}): blur kernels must be nonnegative")
    k = k.clamp_min(0.0)
    total = float(k.sum())
    if not total > 0:
        raise ValueError(f"{name} sums to {total:.3g}: a blur kernel needs a positive sum")
    if abs(total - 1.0) > 1e-6:
        warnings.warn(f"{name} sums to {total:.6g}, not 1: normalising it to sum 1", stacklevel=2)
    k = k / total
    if image_shape is not None:
        check_kernel_fits(k.shape, image_shape, name=name)
    return k.contiguous()


def check_kernel_fits(kernel_shape, image_shape, *, name: str = "kernel") -> None:
    """Raise ``ValueError`` when a kernel is larger than the image (either dimension)."""
    kh, kw = kernel_shape[-2:]
    H, W = tuple(image_shape)[-2:]
    if kh > H or kw > W:
        raise ValueError(
            f"{name} of size {kh}x{kw} is larger than the {H}x{W} image: use a smaller kernel or a larger image"
        )


def gaussian(
    std: float,
    *,
    std_y: float | None = None,
    angle: float = 0.0,
    size: int | tuple[int, int] | None = None,
) -> Tensor:
    """Gaussian kernel, isotropic or anisotropic and rotated.

    Parameters
    ----------
    std : float
        Standard deviation (pixels) along the kernel's own x axis (horizontal when ``angle=0``).
    std_y : float, optional
        Standard deviation along the kernel's y axis; ``std`` when omitted (isotropic).
    angle : float
        Rotation of the kernel axes in degrees, counterclockwise as displayed.
    size : int or (int, int), optional
        Kernel size; default odd ``2 ceil(4 max(std, std_y)) + 1`` (truncation at 4 sigma).

    Returns
    -------
    Tensor
        ``(h, w)`` float64 kernel summing to 1, centred at ``(h // 2, w // 2)``.

    Examples
    --------
    >>> k = gaussian(2.0)
    >>> tuple(k.shape), round(k.sum().item(), 12)
    ((17, 17), 1.0)
    """
    import deepinv.physics.functional as dF

    std = _positive("std", std)
    std_y = std if std_y is None else _positive("std_y", std_y)
    if size is None:
        size = _odd_size(4 * max(std, std_y))
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    # deepinv's generator takes sigma as (rows, cols) and rotates counterclockwise as displayed.
    k = dF.gaussian_blur(psf_size=(h, w), sigma=(std_y, std), angle=float(angle), dtype=torch.float64)
    return validate_kernel(k[0, 0], name="gaussian kernel")


def box(size: int | tuple[int, int]) -> Tensor:
    """Uniform (box / moving-average) kernel.

    Parameters
    ----------
    size : int or (int, int)
        Side length(s) in pixels.

    Returns
    -------
    Tensor
        ``(h, w)`` kernel with all entries ``1 / (h w)``.

    Examples
    --------
    >>> box(3)[0, 0].item() == 1 / 9
    True
    """
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if int(h) < 1 or int(w) < 1:
        raise ValueError(f"box size must be a positive integer, got {size}")
    return torch.full((int(h), int(w)), 1.0 / (int(h) * int(w)), dtype=torch.float64)


def _supersampled(size: int, inside, oversample: int = 8) -> Tensor:
    """Fraction of each pixel's area where ``inside(dx, dy)`` holds (centred coordinates)."""
    c = size // 2
    sub = (torch.arange(oversample, dtype=torch.float64) + 0.5) / oversample - 0.5
    coords = torch.arange(size, dtype=torch.float64) - c
    fine = (coords[:, None] + sub[None, :]).reshape(-1)
    yy, xx = torch.meshgrid(fine, fine, indexing="ij")
    mask = inside(xx, yy).to(torch.float64)
    return mask.reshape(size, oversample, size, oversample).mean(dim=(1, 3))


def disk(radius: float) -> Tensor:
    """Uniform disk (out-of-focus / defocus) kernel, with anti-aliased edges.

    Parameters
    ----------
    radius : float
        Radius in pixels.

    Returns
    -------
    Tensor
        Odd-sized kernel of side ``2 ceil(radius) + 1`` summing to 1 (pixel values are the
        covered fraction of each pixel, from 8x8 supersampling).

    Examples
    --------
    >>> tuple(disk(4).shape)
    (9, 9)
    """
    radius = _positive("radius", radius)
    size = _odd_size(radius)
    k = _supersampled(size, lambda x, y: x**2 + y**2 <= radius**2)
    return validate_kernel(k / k.sum(), name="disk kernel") if k.sum() > 0 else _delta()


def _delta() -> Tensor:
    return torch.ones(1, 1, dtype=torch.float64)


def motion(length: float, angle: float = 0.0) -> Tensor:
    """Linear (uniform-velocity) motion blur kernel.

    A segment of ``length`` pixels through the centre, rasterised with bilinear weights
    (anti-aliased), 16 samples per pixel of length.

    Parameters
    ----------
    length : float
        Length of the motion in pixels.
    angle : float
        Direction in degrees, counterclockwise as displayed (0 = horizontal, 90 = vertical).

    Returns
    -------
    Tensor
        Odd square kernel just large enough for the segment, summing to 1.

    Examples
    --------
    >>> k = motion(15, 0)
    >>> tuple(k.shape), int((k.sum(dim=1) > 0).sum())
    ((17, 17), 1)
    """
    # deepinv has no deterministic linear-motion kernel, hence this one.
    length = _positive("length", length)
    theta = math.radians(float(angle))
    half = length / 2.0
    size = _odd_size(half)
    c = size // 2
    n = max(int(math.ceil(16 * length)), 2)
    t = torch.linspace(-half, half, n, dtype=torch.float64)
    x = c + t * math.cos(theta)
    y = c - t * math.sin(theta)  # rows grow downwards
    k = torch.zeros(size, size, dtype=torch.float64)
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = x - x0, y - y0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            rows = (y0 + dy).long().clamp(0, size - 1)
            cols = (x0 + dx).long().clamp(0, size - 1)
            k.index_put_((rows, cols), wy * wx, accumulate=True)
    # Snap values at round-off level (from exact-integer positions) to zero.
    k[k < 1e-12 * k.max()] = 0.0
    return validate_kernel(k / k.sum(), name="motion kernel")


def shake(seed: int, *, size: int = 25) -> Tensor:
    """Random camera-shake kernel (a random smooth trajectory), reproducible from ``seed``.

    Uses deepinv's :class:`~deepinv.physics.generator.MotionBlurGenerator` (trajectory sampled
    from a Gaussian process with a Matern covariance; Schuler et al., 2016) driven by a
    ``torch.Generator`` seeded with ``seed``.

    Parameters
    ----------
    seed : int
        Seed; the same seed always gives the same kernel.
    size : int
        Side of the square kernel.

    Returns
    -------
    Tensor
        ``(size, size)`` kernel summing to 1.

    Examples
    --------
    >>> bool(torch.equal(shake(3), shake(3)))
    True
    """
    from deepinv.physics.generator import MotionBlurGenerator

    size = int(size)
    if size < 3:
        raise ValueError(f"shake size must be at least 3, got {size}")
    gen = torch.Generator().manual_seed(int(seed))
    k = MotionBlurGenerator((size, size), rng=gen, dtype=torch.float64).step()["filter"][0, 0]
    if not k.sum() > 0:  # a trajectory entirely outside the grid (practically never)
        return _pad_delta(size)
    # deepinv normalises with +1e-6 in the denominator: renormalise exactly, silently.
    return validate_kernel(k / k.sum(), name="shake kernel")


def _pad_delta(size: int) -> Tensor:
    k = torch.zeros(size, size, dtype=torch.float64)
    k[size // 2, size // 2] = 1.0
    return k


def load_kernel(path: str | os.PathLike) -> Tensor:
    """Load a kernel from a ``.npy`` file or an image (PNG, JPEG, TIFF, BMP).

    Images are converted to grey (mean over colour channels, alpha dropped); integer images are
    used as they are since the kernel is normalised to sum 1 anyway (with a warning when its sum
    is not 1; see :func:`validate_kernel`).

    Parameters
    ----------
    path : str or PathLike
        File to read.

    Returns
    -------
    Tensor
        Validated float64 kernel.

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    ValueError
        Unsupported extension, unreadable file, or an invalid kernel.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "k.npy"); np.save(f, np.ones((3, 3)) / 9)
    >>> tuple(load_kernel(f).shape)
    (3, 3)
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"kernel path '{p}' is a folder; give a .npy or image kernel file")
    if not p.is_file():
        raise FileNotFoundError(f"kernel file not found: {p}")
    suffix = p.suffix.lower()
    if suffix != ".npy" and suffix not in _IMAGE_SUFFIXES:
        raise ValueError(f"unsupported kernel file type '{suffix}': use .npy or an image (.png, .tif, ...)")
    try:
        if suffix == ".npy":
            arr = read_npy(p)
        else:
            import imageio.v3 as iio

            # an explicit plugin per format: no probing of every backend, no "pip install" hints
            arr = np.asarray(iio.imread(p, plugin=_IMAGE_PLUGINS.get(suffix, "pillow")))
            if arr.ndim == 3:
                if arr.shape[-1] in (2, 4):  # drop alpha
                    arr = arr[..., :-1]
                arr = arr.astype(np.float64).mean(axis=-1)
    except Exception as exc:  # unreadable / corrupt / pickled file: one line naming the file
        text = first_line(exc)
        if "pickle" in text.lower() or "object arrays" in text.lower():
            text = "it holds pickled Python objects, which are never loaded; save a numeric array with numpy.save"
        elif suffix != ".npy" and ("cannot identify" in text or "can not handle" in text or "backend" in text):
            text = f"not a readable {suffix.lstrip('.').upper()} image"
        raise ValueError(f"cannot read kernel file '{p}': {text}") from None
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise ValueError(f"cannot read kernel file '{p}': unsupported dtype {arr.dtype}; save a float array")
    return validate_kernel(np.asarray(arr, dtype=np.float64), name=f"kernel from {p.name}")


def parse_kernel_spec(spec: str) -> Tensor:
    """Build a kernel from a command-line specification.

    Parameters
    ----------
    spec : str
        One of ``gaussian:STD``, ``gaussian:STD_X:STD_Y:ANGLE``, ``motion:LENGTH:ANGLE``,
        ``box:SIZE``, ``disk:RADIUS``, ``shake:SEED`` / ``shake:SEED:SIZE``, or a path to a
        ``.npy`` / image file.

    Returns
    -------
    Tensor
        The validated float64 kernel.

    Raises
    ------
    ValueError
        Unknown or malformed spec (the message lists the valid forms).
    FileNotFoundError
        A path that does not exist.

    Examples
    --------
    >>> tuple(parse_kernel_spec("box:7").shape)
    (7, 7)
    >>> tuple(parse_kernel_spec("gaussian:2.0:1.0:30").shape)
    (17, 17)
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"empty kernel spec: valid forms are {KERNEL_SPEC_FORMS}")
    spec = spec.strip()
    name, *args = spec.split(":")
    name = name.lower()
    builders = {
        "gaussian": ((1, 3), lambda a: gaussian(float(a[0])) if len(a) == 1
                     else gaussian(float(a[0]), std_y=float(a[1]), angle=float(a[2]))),
        "motion": ((2,), lambda a: motion(float(a[0]), float(a[1]))),
        "box": ((1,), lambda a: box(_int(a[0]))),
        "disk": ((1,), lambda a: disk(float(a[0]))),
        "shake": ((1, 2), lambda a: shake(_int(a[0])) if len(a) == 1 else shake(_int(a[0]), size=_int(a[1]))),
    }
    if name in builders and args:
        counts, build = builders[name]
        if len(args) not in counts:
            raise ValueError(f"malformed kernel spec '{spec}': valid forms are {KERNEL_SPEC_FORMS}")
        try:
            side = _spec_side(name, args)
            if not side <= MAX_KERNEL_SIDE:  # checked before anything is allocated (NaN fails too)
                raise OverflowError
            return build(args)
        except OverflowError:
            raise ValueError(f"kernel spec '{spec}' asks for a kernel of side about {side:.0f} pixels, above the "
                             f"limit {MAX_KERNEL_SIDE}; use a smaller size") from None
        except ValueError as exc:
            if "could not convert" in str(exc) or "invalid literal" in str(exc):
                raise ValueError(f"malformed kernel spec '{spec}': valid forms are {KERNEL_SPEC_FORMS}") from None
            raise
    suffix = Path(spec).suffix.lower()
    if suffix == ".npy" or suffix in _IMAGE_SUFFIXES or os.path.exists(spec):
        return load_kernel(spec)
    raise ValueError(f"unknown kernel spec '{spec}': valid forms are {KERNEL_SPEC_FORMS}")


#: Largest kernel side a spec may ask for (pixels); larger ones are refused before allocation.
MAX_KERNEL_SIDE = 1025


def _spec_side(name: str, args: list[str]) -> float:
    """The side of the kernel a spec asks for, from its numbers alone (no allocation)."""
    a = [abs(float(x)) for x in args]
    if name == "gaussian":
        return 2 * math.ceil(4 * max(a[:2])) + 1 if all(math.isfinite(v) for v in a) else math.inf
    if name == "motion":
        return a[0] + 2
    if name == "disk":
        return 2 * a[0] + 1
    if name == "shake":
        return a[1] if len(a) == 2 else 25.0
    return a[0]  # box


def _int(text: str) -> int:
    value = float(text)
    if not value.is_integer():
        raise ValueError(f"could not convert '{text}' to an integer")
    return int(value)
