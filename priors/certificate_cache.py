"""On-disk cache of the certificate recomputed when a model file is loaded.

Loading a learned denoiser recomputes the rigorous part of its certificate from the weights
(about a second for the shipped averaged network) so that a file edited after certification is
refused. The result depends only on the file's bytes and on the certifying code, so it is cached
under a key made of both hashes:

* ``file_sha256``: SHA-256 of the model file;
* ``code_sha256``: SHA-256 of the sources that compute a certificate (:data:`CERTIFYING_SOURCES`:
  the certifier, the spectral bounds, the model builder; and the module of every architecture in
  :data:`priors.registry.ARCHITECTURES`) and of the torch version; a change to any of them
  invalidates every entry.

An entry is used only when both hashes stored *inside* it equal the ones just computed; any
other entry (another file, other code, a damaged or hand-edited entry) is ignored and
overwritten by a fresh computation. The cache lives in ``$STABLEPNP_CACHE_DIR`` when set, else
``$XDG_CACHE_HOME/stablepnp/certificates`` or ``~/.cache/stablepnp/certificates``; when that
folder cannot be written the certificate is simply recomputed every time, and
``STABLEPNP_CERTIFICATE_CACHE=0`` turns the cache off (the test suite does, so that tests which
simulate another machine's certifier really recompute).

Examples
--------
>>> import tempfile, pathlib
>>> f = pathlib.Path(tempfile.mkdtemp()) / "m.pt"
>>> _ = f.write_bytes(b"weights")
>>> calls = []
>>> def compute():
...     calls.append(1)
...     return {"lipschitz": 1.0, "alpha": 0.5}
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> certificate_for_file(f, compute, cache_dir=d)[1], certificate_for_file(f, compute, cache_dir=d)[1]
(False, True)
>>> len(calls)
1
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from .base import Certificate
from .registry import ARCHITECTURES

__all__ = ["cache_dir", "cache_enabled", "certificate_for_file", "certificate_object", "code_sha256", "file_sha256",
           "CACHE_FORMAT", "CERTIFYING_SOURCES"]

CACHE_FORMAT = "stablepnp-certificate-cache/1"

#: ``priors`` modules whose code determines every recomputed certificate; the modules of the
#: registered architectures are added to them (:func:`code_sha256`).
CERTIFYING_SOURCES: tuple[str, ...] = ("_config.py", "base.py", "certify.py", "integrators.py", "registry.py",
                                       "spectral.py")


def cache_enabled() -> bool:
    """False when ``$STABLEPNP_CERTIFICATE_CACHE`` is ``0``, ``off``, ``false`` or ``no``."""
    return os.environ.get("STABLEPNP_CERTIFICATE_CACHE", "1").strip().lower() not in ("0", "off", "false", "no")


def cache_dir() -> Path:
    """Folder of the cache entries (see the module docstring for the order of the choices)."""
    env = os.environ.get("STABLEPNP_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "stablepnp" / "certificates"


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _certifying_files() -> tuple[tuple[str, str], ...]:
    """(name, file) of :data:`CERTIFYING_SOURCES` and of the modules defining each registered
    architecture's model and config (named by module, so an architecture defined outside the
    package counts too)."""
    files = [(name, str(Path(__file__).with_name(name))) for name in CERTIFYING_SOURCES]
    modules = {cls.__module__ for arch in ARCHITECTURES.values() for cls in (arch.model, arch.config)}
    for module in sorted(modules):
        files.append((module, getattr(sys.modules.get(module), "__file__", None) or ""))
    return tuple(files)


def code_sha256() -> str:
    """SHA-256 over the certifying sources (names and bytes, see :func:`_certifying_files`) and the
    torch version."""
    return _sources_sha256(_certifying_files())


@functools.lru_cache(maxsize=8)
def _sources_sha256(files: tuple[tuple[str, str], ...]) -> str:
    h = hashlib.sha256(torch.__version__.encode())
    for name, file in files:
        src = Path(file)
        h.update(name.encode())
        h.update(src.read_bytes() if file and src.is_file() else b"<missing>")
    return h.hexdigest()


def _entry_path(folder: Path, fhash: str, chash: str) -> Path:
    return folder / f"{fhash[:32]}-{chash[:16]}.json"


def _read_entry(path: Path, fhash: str, chash: str) -> dict | None:
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT:
        return None
    if entry.get("file_sha256") != fhash or entry.get("code_sha256") != chash:
        return None  # never trust an entry made for other bytes or other code
    cert = entry.get("certificate")
    if not isinstance(cert, dict) or not isinstance(cert.get("lipschitz"), (int, float)):
        return None
    return cert


def _write_entry(path: Path, fhash: str, chash: str, cert: dict) -> None:
    entry = {"format": CACHE_FORMAT, "file_sha256": fhash, "code_sha256": chash, "certificate": cert}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(entry, fh)
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old entry or the new one
    except OSError:
        pass  # an unwritable cache only costs the recomputation next time


def certificate_for_file(path: str | Path, compute: Callable[[], dict], *,
                         cache_dir: str | Path | None = None) -> tuple[dict, bool]:
    """The certificate dictionary of the model file ``path``: from the cache, or ``compute()``.

    Parameters
    ----------
    path : str or Path
        The model file whose weights the certificate is about.
    compute : callable
        Recomputes the certificate from the loaded weights (returns a JSON-able dict).
    cache_dir : str or Path, optional
        Overrides :func:`cache_dir`.

    Returns
    -------
    (dict, bool)
        The certificate and whether it came from the cache.
    """
    if cache_dir is None and not cache_enabled():
        return compute(), False
    folder = Path(cache_dir) if cache_dir is not None else globals()["cache_dir"]()
    try:
        fhash = file_sha256(path)
    except OSError:
        return compute(), False
    chash = code_sha256()
    entry = _entry_path(folder, fhash, chash)
    cert = _read_entry(entry, fhash, chash)
    if cert is not None:
        return cert, True
    cert = compute()
    _write_entry(entry, fhash, chash, json.loads(json.dumps(cert, default=float)))
    return cert, False


def certificate_object(cert: dict) -> Any:
    """A :class:`priors.base.Certificate` from its ``to_dict()`` form (None when it does not parse)."""
    try:
        return Certificate(**cert)
    except (TypeError, ValueError):
        return None
