"""Reading numeric array files safely: the ``.npy`` loader shared by kernel and image files.

``numpy.load`` is only ever called with ``allow_pickle=False`` and after the file's magic bytes
are checked, so a pickled or mislabelled file fails with one line instead of running code or
printing a traceback.  Used by :func:`operators.kernels.load_kernel` and
:func:`problems.images.load_image`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["read_npy", "first_line"]

_NPY_MAGIC = b"\x93NUMPY"


def read_npy(path: str | Path) -> np.ndarray:
    """The array saved in the ``.npy`` file ``path`` (never a pickle).

    Raises
    ------
    ValueError
        The file does not start with the ``.npy`` magic bytes, or holds pickled objects.

    Examples
    --------
    >>> import os, tempfile
    >>> f = os.path.join(tempfile.mkdtemp(), "a.npy"); np.save(f, np.arange(3))
    >>> read_npy(f).tolist()
    [0, 1, 2]
    """
    with open(path, "rb") as fh:
        if fh.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
            raise ValueError("not a NumPy .npy file")
    return np.load(path, allow_pickle=False)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type name when the message is empty.

    Examples
    --------
    >>> first_line(ValueError("bad header\\nmore detail")), first_line(KeyError())
    ('bad header', 'KeyError')
    """
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
