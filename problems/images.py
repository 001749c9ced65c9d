"""Test images: scikit-image's bundled photographs and image files, as (1, C, H, W) tensors in [0, 1].

:func:`load_image` is the single entry point. It accepts either the name of an image bundled
with scikit-image (see :func:`available_images`) or a path to a PNG / JPEG / TIFF / ``.npy`` file,
and always returns a float tensor of shape ``(1, C, H, W)`` with values in ``[0, 1]``, ``C = 1``
when ``gray=True`` and ``C = 3`` otherwise.

:func:`load_observation` reads a measured observation ``y`` by the same rules, except that float
values are kept as they are (noise takes them outside [0, 1]) and nothing is resized;
:func:`image_shape` reads a file's dimensions from its header.

The bundled photographs are split once for the whole project:

* :data:`TEST_SPLIT` -- camera, astronaut, coffee, chelsea, rocket: used for evaluation only;
* :data:`TRAINING_POOL` -- the other bundled *natural photographs* that ship inside the
  scikit-image wheel (no download needed): material for training learned priors.

The two are disjoint by content, not only by name: ``skimage.data.cat()`` is the same picture as
``chelsea`` and is therefore excluded from everything.

Conversion rules (applied in this order)
----------------------------------------
1. Integer pixel values are scaled by the full range of their *dtype*, never by the image maximum:
   ``uint8 / 255``, ``uint16 / 65535``, ``bool`` to {0, 1}. Other integer dtypes are refused,
   because their range is ambiguous (save them as uint8/uint16 or as floats in [0, 1]).
2. Floating-point images are assumed to already lie in [0, 1]. Values within ``1e-6`` of the
   interval are clipped silently (rounding noise); anything further out is refused with a
   ``ValueError`` rather than silently rescaled, so that the data a problem is built on is never
   changed behind the user's back. NaN or Inf values are always refused.
3. An alpha channel (RGBA, or grey + alpha) is removed by compositing over a white background,
   i.e. the image looks as a viewer would display it.
4. ``gray=True`` converts colour to luminance with :func:`skimage.color.rgb2gray`
   (ITU-R BT.709 weights); ``gray=False`` replicates a grey image into three identical channels,
   so the channel count depends only on the flag.
5. ``size`` centre-crops to the requested aspect ratio (a square for an int) and then resizes with
   :func:`skimage.transform.resize` (bicubic, anti-aliased when shrinking, clipped to the input
   range). Nothing is resampled when the crop already has the requested size. Upsampling is
   allowed but warned about.
"""

from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from operators.io import first_line, read_npy

__all__ = [
    "TEST_SPLIT",
    "TRAINING_POOL",
    "OTHER_IMAGES",
    "available_images",
    "training_pool_names",
    "load_image",
    "available_memory",
    "check_memory",
    "load_observation",
    "image_shape",
    "check_image_file",
    "MAX_IMAGE_PIXELS",
]

#: Evaluation images; never used for training.
TEST_SPLIT: tuple[str, ...] = ("camera", "astronaut", "coffee", "chelsea", "rocket")

#: The other natural photographs bundled in the scikit-image wheel (load offline).
#: Deliberately left out: ``cat`` (the same picture as ``chelsea``), ``clock`` (motion blurred on
#: purpose), ``cell`` (a quantitative phase image with banding artefacts), ``page`` and ``text``
#: (documents, not natural scenes), ``microaneurysms`` (102 x 102, too small), the right view of
#: ``stereo_motorcycle`` (nearly a duplicate of the left one), synthetic images (binary_blobs,
#: checkerboard, colorwheel, horse, logo, shepp_logan_phantom), and the photographs that scikit-image
#: only provides through a ``pooch`` download (eagle, lily, skin, palisades_of_vogt, ...), which
#: are unavailable offline.
TRAINING_POOL: tuple[str, ...] = (
    "brick",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "motorcycle",
    "retina",
)

#: Further bundled images accepted by :func:`load_image` (demos, sanity checks); in no split.
OTHER_IMAGES: tuple[str, ...] = (
    "cell",
    "checkerboard",
    "clock",
    "microaneurysms",
    "page",
    "shepp_logan_phantom",
    "text",
)

_FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy")
# Explicit imageio plugins for the common formats (no probing of every plugin on a bad file).
_PLUGINS = {".png": "pillow", ".jpg": "pillow", ".jpeg": "pillow", ".tif": "tifffile", ".tiff": "tifffile"}
# Values this close outside [0, 1] are treated as rounding noise and clipped.
_FLOAT_TOLERANCE = 1e-6


def available_images() -> tuple[str, ...]:
    """Names accepted by :func:`load_image`: test split, training pool, then the others.

    Examples
    --------
    >>> "camera" in available_images()
    True
    """
    return TEST_SPLIT + TRAINING_POOL + OTHER_IMAGES


def training_pool_names() -> tuple[str, ...]:
    """Names of the training-pool photographs (disjoint from :data:`TEST_SPLIT`).

    Examples
    --------
    >>> set(training_pool_names()).isdisjoint(TEST_SPLIT)
    True
    """
    return TRAINING_POOL


def _bundled(name: str) -> np.ndarray:
    import skimage.data

    if name == "motorcycle":
        # stereo_motorcycle() returns (left, right, disparity); the left view is the photograph.
        return skimage.data.stereo_motorcycle()[0]
    getter: Callable[[], np.ndarray] = getattr(skimage.data, name)
    return np.asarray(getter())


def load_image(
    name_or_path: str | Path,
    *,
    size: int | tuple[int, int] | None = None,
    gray: bool = True,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Load a bundled image by name, or an image file, as a ``(1, C, H, W)`` tensor in [0, 1].

    Parameters
    ----------
    name_or_path : str or pathlib.Path
        A name from :func:`available_images` (case-insensitive) or the path of a PNG, JPEG,
        TIFF or ``.npy`` file. ``.npy`` arrays must be ``(H, W)`` or ``(H, W, C)`` with
        ``C`` in 1..4. An existing file always wins over a name.
    size : int or (int, int) or None
        Output size: an int gives a ``size x size`` square, a pair gives ``(H, W)``. The image is
        first centre-cropped to the target aspect ratio, then resized (see the module notes).
        ``None`` keeps the native size.
    gray : bool
        ``True``: one luminance channel. ``False``: three channels (grey images are replicated).
    dtype : torch.dtype
        Floating-point dtype of the result.

    Returns
    -------
    Tensor
        Shape ``(1, 1, H, W)`` if ``gray`` else ``(1, 3, H, W)``, values in [0, 1].

    Raises
    ------
    FileNotFoundError
        The path does not exist.
    ValueError
        Unknown name, unreadable file, unsupported layout or dtype, NaN/Inf values, float values
        outside [0, 1], or an invalid ``size``. Every message is one line naming the image.

    Examples
    --------
    >>> x = load_image("camera", size=64)
    >>> tuple(x.shape), float(x.min()) >= 0.0, float(x.max()) <= 1.0
    ((1, 1, 64, 64), True, True)
    >>> load_image("astronaut", size=(32, 48), gray=False).shape
    torch.Size([1, 3, 32, 48])
    """
    if not isinstance(name_or_path, (str, Path)):
        raise TypeError(
            f"load_image expects an image name or a path, got {type(name_or_path).__name__}"
        )
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"load_image dtype must be a floating torch dtype, got {dtype!r}")
    target = _check_size(size)
    if target is not None:  # estimated before anything is allocated
        check_memory(target[0] * target[1] * (1 if gray else 3) * _LOAD_BYTES_PER_VALUE,
                     f"load_image size {target[0]} x {target[1]}", "choose a smaller size")

    label, array = _read(name_or_path)
    image = _to_unit_float(array, label)
    image = _drop_alpha(image)
    image = _convert_channels(image, gray)
    if target is not None:
        image = _crop_resize(image, target, label)
    tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    return tensor.unsqueeze(0).to(dtype)


def load_observation(
    name_or_path: str | Path,
    *,
    gray: bool = True,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Load a measured observation ``y`` (not a ground truth) as a ``(1, C, H, W)`` tensor, at its native size.

    The rules of :func:`load_image` apply (reading, integer scaling by the dtype's range, alpha,
    channels) with two differences, both because ``y`` is data, not an image to be displayed:

    * floating-point values are kept as they are: a noisy measurement holds values outside
      [0, 1] (only NaN and Inf are refused);
    * nothing is cropped or resized: resampling would change the blur and the noise the solver
      models.

    Parameters
    ----------
    name_or_path : str or pathlib.Path
        PNG / JPEG / TIFF (8- or 16-bit, or float) / ``.npy`` file, or a bundled image name.
    gray, dtype
        As in :func:`load_image`.

    Examples
    --------
    >>> import os, tempfile
    >>> f = os.path.join(tempfile.mkdtemp(), "y.npy")
    >>> np.save(f, np.array([[-0.02, 0.5], [1.03, 0.7]]))
    >>> load_observation(f).flatten().tolist()[:3]  # doctest: +ELLIPSIS
    [-0.0199..., 0.5, 1.0299...]
    """
    if not isinstance(name_or_path, (str, Path)):
        raise TypeError(
            f"load_observation expects an image name or a path, got {type(name_or_path).__name__}"
        )
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"load_observation dtype must be a floating torch dtype, got {dtype!r}")
    label, array = _read(name_or_path)
    image = _to_unit_float(array, label, keep_float=True)
    image = _convert_channels(_drop_alpha(image), gray)
    tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    return tensor.unsqueeze(0).to(dtype)


def image_shape(name_or_path: str | Path) -> tuple[int, int, int]:
    """``(H, W, C)`` of an image file as stored, read from its header where the format allows (nothing decoded).

    Used to refuse an image too large to solve before it is loaded. ``C`` counts stored channels
    (alpha included). Bundled images are loaded (they are small).

    Examples
    --------
    >>> image_shape("camera")
    (512, 512, 1)
    """
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        _, array = _read(name_or_path)  # a bundled name, or the one-line error of a missing file
        return int(array.shape[0]), int(array.shape[1]), int(array.shape[2]) if array.ndim == 3 else 1
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
            height, width = shape[:2]
            channels = shape[2] if len(shape) == 3 else 1
        elif suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                height, width, channels = page.imagelength, page.imagewidth, page.samplesperpixel
        elif suffix == ".png" and _png_header(path) is not None:  # IHDR: no decompression-bomb check needed
            width, height, _, colour, _ = _png_header(path)  # type: ignore[misc]
            channels = _PNG_CHANNELS.get(colour, 4)
        else:
            from PIL import Image

            with warnings.catch_warnings():  # a header read: the callers weigh the size themselves
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    (width, height), channels = im.size, len(im.getbands())
    except Exception as exc:  # any header failure becomes one line naming the file
        if type(exc).__name__ == "DecompressionBombError":  # Pillow refuses above twice its limit
            raise ValueError(f"image file '{path}' declares more than {2 * MAX_IMAGE_PIXELS:,} pixels in its header, "
                             f"above the limit of {MAX_IMAGE_PIXELS:,} (problems.images.MAX_IMAGE_PIXELS); downscale "
                             "or crop the file") from None
        raise ValueError(f"cannot read image file '{path}': {first_line(exc)}") from None
    return int(height), int(width), int(channels)


# ----------------------------------------------------------------------------------------------
# reading


def available_memory() -> int | None:
    """Bytes of memory the process can still allocate (``MemAvailable``), or None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


#: Share of the available memory one job may plan to use.
MEMORY_FRACTION = 0.8


def check_memory(needed: float, what: str, fix: str) -> None:
    """Refuse a job whose estimated memory ``needed`` (bytes) exceeds 80 % of the available memory.

    Examples
    --------
    >>> check_memory(1e20, "image size 100000 x 100000", "choose a smaller --size")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: image size 100000 x 100000 needs about 9.31e+10 GiB of memory, above the limit of ... GiB (80 % of the available memory); choose a smaller --size
    """
    avail = available_memory()
    if avail is None:
        return
    limit = MEMORY_FRACTION * avail
    if needed > limit:
        gib = 1024.0**3
        raise ValueError(f"{what} needs about {needed / gib:.3g} GiB of memory, above the limit of "
                         f"{limit / gib:.3g} GiB (80 % of the available memory); {fix}")


# bytes per output pixel and channel while loading: float64 crop + resize (input, output, spline work
# array) and the float tensor
_LOAD_BYTES_PER_VALUE = 4 * 8

#: Most pixels (height x width) an image file may declare: a larger file is refused from its header,
#: before anything is decoded (a 79 kB PNG can declare 81 megapixels). 67 megapixels, e.g. 8192 x 8192;
#: Pillow's decompression-bomb limit is set to the same number, so no Pillow decode goes beyond it.
MAX_IMAGE_PIXELS = 2**26


def _set_pillow_limit() -> None:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


_set_pillow_limit()

_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # colour type -> channels once decoded (palette: RGB)


def check_image_file(path: str | Path) -> tuple[int, int, int]:
    """``(H, W, C)`` of an image file from its header; refused in one line when it is too large to load.

    Nothing is decoded: PNG dimensions come from the IHDR chunk, the others from
    :func:`image_shape` (Pillow's lazy ``Image.open``, tifffile's page tags, the ``.npy`` header).
    Refused (``ValueError`` naming the file and the fix) above :data:`MAX_IMAGE_PIXELS`, or when
    decoding and converting it would not fit in memory (:func:`check_memory`).

    Examples
    --------
    >>> import os, tempfile
    >>> f = os.path.join(tempfile.mkdtemp(), "a.npy"); np.save(f, np.zeros((3, 5)))
    >>> check_image_file(f)
    (3, 5, 1)
    """
    path = Path(path)
    fix = "downscale or crop the file"
    if path.suffix.lower() == ".npy":
        return _check_npy_header(path, fix)
    height, width, channels = image_shape(path)
    pixels = int(height) * int(width)
    if pixels > MAX_IMAGE_PIXELS:
        raise ValueError(f"image file '{path}' declares {width} x {height} = {pixels:,} pixels in its header, above "
                         f"the limit of {MAX_IMAGE_PIXELS:,} (problems.images.MAX_IMAGE_PIXELS); {fix}")
    check_memory(float(pixels) * max(int(channels), 1) * _LOAD_BYTES_PER_VALUE,
                 f"decoding image file '{path}' ({width} x {height}, {channels} channel{'s' if channels != 1 else ''})",
                 fix)
    return int(height), int(width), int(channels)


def _check_npy_header(path: Path, fix: str) -> tuple[int, int, int]:
    """:func:`check_image_file` for a ``.npy`` file: its header's shape (a pickle is refused when it is read)."""
    try:
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape  # the header only: nothing is read
    except Exception:  # not an .npy file, a pickle, a broken header: the reader says so in one line
        return 0, 0, 0
    values = int(np.prod(shape)) if shape else 1
    height, width = (shape[0], shape[1]) if len(shape) >= 2 else (values, 1)
    channels = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    if height * width > MAX_IMAGE_PIXELS or values > 4 * MAX_IMAGE_PIXELS:
        raise ValueError(f"image file '{path}' holds an array of shape {tuple(shape)}, above the limit of "
                         f"{MAX_IMAGE_PIXELS:,} pixels (problems.images.MAX_IMAGE_PIXELS); {fix}")
    check_memory(float(values) * _LOAD_BYTES_PER_VALUE, f"decoding image file '{path}' (shape {tuple(shape)})", fix)
    return int(height), int(width), channels


def _check_size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        pair: tuple = (size, size)
    elif isinstance(size, (tuple, list)) and len(size) == 2:
        pair = tuple(size)
    else:
        raise ValueError(f"size must be a positive int, a pair (H, W) or None, got {size!r}")
    for s in pair:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
            raise ValueError(f"size must be a positive int, a pair (H, W) or None, got {size!r}")
    return int(pair[0]), int(pair[1])


def _read(name_or_path: str | Path) -> tuple[str, np.ndarray]:
    """Return a label used in error messages and the raw array."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return f"'{path}'", _read_file(path)
    text = str(name_or_path)
    key = text.strip().lower()
    if isinstance(name_or_path, str) and key in available_images():
        return f"'{key}'", _bundled(key)
    looks_like_path = (
        isinstance(name_or_path, Path)
        or "/" in text
        or "\\" in text
        or path.suffix.lower() in _FILE_SUFFIXES
    )
    if looks_like_path:
        if path.exists():
            raise ValueError(f"image path '{path}' is not a regular file")
        raise FileNotFoundError(f"image file '{path}' does not exist")
    raise ValueError(
        f"unknown image name {text!r}; use a file path or one of: {', '.join(available_images())}"
    )


def _read_file(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    check_image_file(path)  # dimensions from the header, refused before anything is decoded
    try:
        if suffix == ".npy":
            array = read_npy(path)
        elif suffix == ".png" and _is_16bit_colour_png(path):
            array = _read_png16(path)
        else:
            import imageio.v3 as iio

            array = iio.imread(path, plugin=_PLUGINS.get(suffix))
    except Exception as exc:  # any decoder failure becomes one line naming the file
        reason = first_line(exc)
        if "can not handle" in reason:
            reason = f"not a readable {suffix.lstrip('.').upper() or 'image'} file"
        raise ValueError(f"cannot read image file '{path}': {reason}") from None
    array = np.asarray(array)
    if array.dtype == object or array.dtype.kind not in "biuf":
        raise ValueError(f"image '{path}' has unsupported dtype {array.dtype}")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (2, 3, 4))):
        raise ValueError(
            f"image '{path}' has shape {array.shape}; expected (H, W) or (H, W, C) with C in 1..4"
        )
    if min(array.shape[:2]) < 1:
        raise ValueError(f"image '{path}' is empty (shape {array.shape})")
    return array


def _png_header(path: Path) -> tuple[int, int, int, int, int] | None:
    """Width, height, bit depth, colour type, interlace of a PNG, or None if not a PNG."""
    with open(path, "rb") as fh:
        head = fh.read(33)
    if len(head) < 33 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    return width, height, depth, colour, interlace


def _is_16bit_colour_png(path: Path) -> bool:
    header = _png_header(path)
    # Pillow reads 16-bit grey PNGs exactly but truncates 16-bit colour PNGs to 8 bits.
    return header is not None and header[2] == 16 and header[3] in (2, 4, 6)


# Pillow unpacks a 16-bit colour PNG to 8 bits (it has no 16-bit colour mode). Its decoder (zlib, the
# PNG row filters, Adam7 interlacing) works on whole pixels, so it runs as well with any raw mode of the
# same bits per pixel: a pair of them that keep either byte of every sample gives all 16 bits.
_PNG16_RAWMODES = {
    2: ("RGB;16B", "RGB;16L"),  # RGB: high bytes (big-endian read), low bytes (the same bytes read little-endian)
    6: ("RGBA;16B", "RGBA;16L"),  # RGBA: likewise
    4: ("RGBA",),  # grey + alpha, 32 bits per pixel: the four bytes verbatim (L high, L low, A high, A low)
}


def _pillow_decode(path: Path, rawmode: str) -> np.ndarray:
    """The pixels of a PNG as Pillow's decoder unpacks them with the raw mode ``rawmode``."""
    from PIL import Image

    with Image.open(path) as im:
        im.tile = [t._replace(args=rawmode) for t in im.tile]
        im.load()
        return np.asarray(im)


def _read_png16(path: Path) -> np.ndarray:
    """Decode a 16-bit colour PNG (colour types 2, 4, 6) to a uint16 ``(H, W, C)`` array with Pillow.

    Pillow's own decoder does the work (see ``_PNG16_RAWMODES``): twice with raw modes that keep
    the high and the low byte of every sample (RGB, RGBA), or once byte for byte (grey + alpha).
    """
    colour = _png_header(path)[3]  # type: ignore[index]
    modes = _PNG16_RAWMODES[colour]
    if len(modes) == 2:
        high, low = (_pillow_decode(path, m).astype(np.uint16) for m in modes)
        return (high << 8) | low
    raw = _pillow_decode(path, modes[0]).astype(np.uint16)
    return np.stack([(raw[..., 0] << 8) | raw[..., 1], (raw[..., 2] << 8) | raw[..., 3]], axis=-1)


# ----------------------------------------------------------------------------------------------
# conversion


def _to_unit_float(array: np.ndarray, label: str, *, keep_float: bool = False) -> np.ndarray:
    """Scale to float64 in [0, 1] by dtype range; refuse non-finite or out-of-range floats.

    ``keep_float``: float values are returned unchanged (an observation; only non-finite refused).
    """
    if array.dtype == np.bool_:
        return array.astype(np.float64)
    if array.dtype == np.uint8:
        return array.astype(np.float64) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float64) / 65535.0
    if array.dtype.kind in "iu":
        raise ValueError(
            f"image {label} has integer dtype {array.dtype} with no fixed range; "
            "save it as uint8, uint16 or float in [0, 1]"
        )
    image = array.astype(np.float64)
    if not np.isfinite(image).all():
        raise ValueError(f"image {label} contains NaN or Inf values")
    if keep_float:
        return image
    lo, hi = float(image.min()), float(image.max())
    if lo < -_FLOAT_TOLERANCE or hi > 1.0 + _FLOAT_TOLERANCE:
        raise ValueError(
            f"image {label} has float values in [{lo:.4g}, {hi:.4g}], outside [0, 1]; "
            "rescale it to [0, 1] before loading"
        )
    return np.clip(image, 0.0, 1.0)


def _drop_alpha(image: np.ndarray) -> np.ndarray:
    """Composite grey+alpha or RGBA over white; always return (H, W, C) with C in {1, 3}."""
    if image.ndim == 2:
        return image[..., None]
    if image.shape[-1] in (2, 4):
        alpha = image[..., -1:]
        image = image[..., :-1] * alpha + (1.0 - alpha)
    return image


def _convert_channels(image: np.ndarray, gray: bool) -> np.ndarray:
    channels = image.shape[-1]
    if gray and channels == 3:
        from skimage.color import rgb2gray

        return rgb2gray(image)[..., None]
    if not gray and channels == 1:
        return np.repeat(image, 3, axis=-1)
    return image


def _crop_resize(image: np.ndarray, target: tuple[int, int], label: str) -> np.ndarray:
    height, width = image.shape[:2]
    th, tw = target
    # Largest centred window with the target aspect ratio.
    if width * th >= height * tw:
        ch, cw = height, max(1, min(width, round(height * tw / th)))
    else:
        ch, cw = max(1, min(height, round(width * th / tw))), width
    top, left = (height - ch) // 2, (width - cw) // 2
    image = image[top : top + ch, left : left + cw]
    if (ch, cw) == (th, tw):
        return image
    if th > ch or tw > cw:
        warnings.warn(
            f"image {label}: upsampling the {ch}x{cw} crop to {th}x{tw}", stacklevel=3
        )
    from skimage.transform import resize

    shrinking = th < ch or tw < cw
    out = resize(image, (th, tw, image.shape[-1]), order=3, mode="reflect", anti_aliasing=shrinking)
    return np.clip(out, 0.0, 1.0)
