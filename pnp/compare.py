"""``stablepnp compare CONFIG.yaml``: learned vs classical priors on a suite of deblurring problems.

The suite is the grid images x kernels x noise levels x priors x algorithms described by a
:class:`CompareConfig` (YAML, validated strictly). It runs in two phases:

1. **Tuning.** For every (prior, algorithm, noise level) the prior's parameter — the weight
   ``lam`` of a classical prior or the noise level ``sigma`` handed to a denoiser — is chosen by
   a small search on the validation image :data:`priors.data.VALIDATION_IMAGE` (held out of
   training and of the test split): a log-spaced grid, extended when the best point lies on
   its edge, refined by golden-section steps, and repeated for each step factor
   (``step = factor / L``) of the entry. The best value is frozen and recorded.
2. **Suite.** Every cell (image, kernel, noise, prior, algorithm) is solved with the frozen
   parameters. A finished cell is stored in ``OUT/cells/<hash>.json`` (+ ``.npz`` with the
   reconstruction) keyed by a hash of everything that determines it, and reused on a rerun
   (``--force`` recomputes), so a long comparison survives interruption.

Outputs in ``OUT``: ``results.md`` (summary, per-setting tables, tuned parameters, targets),
``results.csv`` (one row per cell), ``results.json`` (raw numbers, histories),
``recon_grid.png`` (reconstructions with zoomed insets), ``convergence.png`` (residual
curves per method) and ``tuning.json``.

PSNR and SSIM are computed on the reconstruction clipped to [0, 1] (peak 1).

Examples
--------
>>> from pnp.compare import CompareConfig
>>> cfg = CompareConfig.from_dict({"images": ["camera"], "size": 32, "priors": [{"prior": "tv"}]})
>>> cfg.priors[0].algorithms
('pgd',)
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

__all__ = [
    "PriorEntry",
    "TuningSpec",
    "SolverOptions",
    "FigureSpec",
    "CompareConfig",
    "PriorHandle",
    "build_prior_handle",
    "tune",
    "run_suite",
    "bundled_config",
    "main",
    "CLASSICAL",
    "LEARNED",
]

#: classical convex priors (parameter: weight ``lam``).
CLASSICAL: tuple[str, ...] = ("tv", "wavelet", "tikhonov")
#: denoiser priors known by name (parameter: denoiser ``sigma``); plus ``deepinv:NAME`` and checkpoint paths.
LEARNED: tuple[str, ...] = ("averaged", "dncnn")
#: learned convex regularizers used variationally (parameter: weight ``lam``; ``mu`` follows the
#: shipped rule, ``priors.ridge.ridge_mu_for_lam``).
VARIATIONAL: tuple[str, ...] = ("ridge",)
_SHIPPED = {"averaged": "averaged_gray", "dncnn": "dncnn_gray", "ridge": "ridge_gray"}
_ALGORITHMS: tuple[str, ...] = ("pgd", "fista", "admm", "drs", "hqs", "pdhg")
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
#: default weight of a classical prior at noise 0.01; scaled by (noise/0.01)**1.5 (centre of the search).
_LAM_AT_REF = {"tv": 1e-3, "wavelet": 2e-3, "tikhonov": 1e-2}
_CONFIG_DIR = Path(__file__).resolve().parent / "configs"
_FORMAT = "stable-pnp-compare/1"


# ============================================================================ strict config helpers
def _strict(cls: Any, data: Any, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a mapping of keys to values, got {type(data).__name__}")
    valid = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in valid:
            raise ValueError(f"unknown key {str(key)!r} in {where}; valid keys: {', '.join(valid)}")
    try:
        return cls(**dict(data))
    except TypeError as exc:  # pragma: no cover - defensive, every field has a default
        raise ValueError(f"{where}: {exc}") from None


def _num(value: Any, name: str, *, positive: bool = True, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, str):
        try:
            value = float(value) if "/" not in value else float(value.split("/")[0]) / float(value.split("/")[1])
        except (ValueError, ZeroDivisionError):
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ValueError(f"compare config field {name!r} must be a finite number, got {value!r}")
    value = float(value)
    if positive and value <= 0:
        raise ValueError(f"compare config field {name!r} must be > 0, got {value:g}")
    return value


def _int(value: Any, name: str, *, minimum: int, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"compare config field {name!r} must be an integer >= {minimum}, got {value!r}")
    return value


def _strs(value: Any, name: str, *, allowed: Sequence[str] | None = None) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError(f"compare config field {name!r} must be a non-empty list of strings, got {value!r}")
    if allowed is not None:
        for v in value:
            if v not in allowed:
                raise ValueError(f"compare config field {name!r}: unknown value {v!r}; valid: {', '.join(allowed)}")
    return tuple(value)


def _nums(value: Any, name: str) -> tuple[float, ...]:
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"compare config field {name!r} must be a non-empty list of numbers, got {value!r}")
    return tuple(_num(v, name) for v in value)


# ============================================================================ config dataclasses
@dataclass(frozen=True)
class PriorEntry:
    """One prior of the suite and the algorithms it is run with.

    Parameters
    ----------
    prior : str
        ``tv``, ``wavelet``, ``tikhonov``, ``bm3d``, ``averaged`` (shipped ``averaged_gray`` or
        ``path``), ``dncnn`` (shipped ``dncnn_gray`` or ``path``), ``deepinv:NAME`` (a
        ``deepinv.models`` denoiser that works offline; weights from ``path``), or a checkpoint
        file ``PATH.pt``.
    label : str, optional
        Display name (default from ``prior``: ``TV``, ``averaged``...).
    path : str, optional
        Model file for ``averaged`` / ``dncnn`` / ``deepinv:NAME``.
    algorithms : list of str
        Any of pgd, fista, admm, drs, hqs, pdhg.
    relaxation : float
        Krasnosel'skii–Mann relaxation of the algorithm (refused outside its theorem's range).
    lam, sigma : float, optional
        Fixed parameter (skips the tuning of this entry).
    range : [lo, hi], optional
        Search interval of the tuned parameter (default: around the noise level, see :func:`tune`).
    step_factors : list of float
        Steps ``factor / L`` tried by the tuning (``L = ‖A‖²``).
    max_iter, tol : optional
        Per-prior overrides of the solver options (e.g. a few iterations for BM3D).

    Examples
    --------
    >>> PriorEntry(prior="tv", algorithms=["fista"]).label
    'TV'
    """

    prior: str = "tv"
    label: str | None = None
    path: str | None = None
    algorithms: tuple[str, ...] = ("pgd",)
    relaxation: float = 1.0
    lam: float | None = None
    sigma: float | None = None
    range: tuple[float, float] | None = None
    step_factors: tuple[float, ...] = (1.0,)
    max_iter: int | None = None
    tol: float | None = None

    def __post_init__(self) -> None:
        s = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        if not isinstance(self.prior, str) or not self.prior.strip():
            raise ValueError(f"compare config field 'prior' must be a prior name or a checkpoint path, got {self.prior!r}")
        kind = _prior_kind(self.prior)
        s("algorithms", _strs(self.algorithms, "algorithms", allowed=_ALGORITHMS))
        s("relaxation", _num(self.relaxation, "relaxation"))
        s("lam", _num(self.lam, "lam", optional=True))
        s("sigma", _num(self.sigma, "sigma", optional=True))
        if self.lam is not None and self.sigma is not None:
            raise ValueError(f"prior {self.prior!r}: give at most one of lam and sigma")
        if kind in CLASSICAL and self.sigma is not None:
            raise ValueError(f"prior {self.prior!r} is a classical prior: fix its weight with lam, not sigma")
        if kind not in CLASSICAL and self.lam is not None:
            raise ValueError(f"prior {self.prior!r} is a denoiser: fix its level with sigma, not lam")
        if self.range is not None:
            r = _nums(self.range, "range")
            if len(r) != 2 or not r[0] < r[1]:
                raise ValueError(f"compare config field 'range' must be [lo, hi] with 0 < lo < hi, got {self.range!r}")
            s("range", r)
        s("step_factors", _nums(self.step_factors, "step_factors"))
        s("max_iter", _int(self.max_iter, "max_iter", minimum=1, optional=True))
        s("tol", _num(self.tol, "tol", optional=True))
        if self.path is not None:
            if not isinstance(self.path, str):
                raise ValueError(f"compare config field 'path' must be a file path, got {self.path!r}")
            if kind in CLASSICAL or kind == "bm3d":
                raise ValueError(f"prior {self.prior!r} takes no path; path is for averaged, dncnn or deepinv:NAME")
        if self.label is None:
            s("label", _default_label(self.prior, kind))
        elif not isinstance(self.label, str) or not self.label:
            raise ValueError(f"compare config field 'label' must be a non-empty string, got {self.label!r}")

    @property
    def kind(self) -> str:
        """``tv``, ``wavelet``, ``tikhonov``, ``bm3d``, ``averaged``, ``dncnn``, ``deepinv`` or ``checkpoint``."""
        return _prior_kind(self.prior)

    @property
    def param(self) -> str:
        """Name of the tuned parameter: ``lam`` (classical) or ``sigma`` (denoiser)."""
        return "lam" if self.kind in CLASSICAL or self.kind in VARIATIONAL else "sigma"

    @property
    def fixed(self) -> float | None:
        return self.lam if self.param == "lam" else self.sigma

    def method(self, algorithm: str) -> str:
        """Method name ``LABEL-ALGORITHM`` (e.g. ``TV-FISTA``)."""
        return f"{self.label}-{algorithm.upper()}"


def _prior_kind(prior: str) -> str:
    p = prior.strip()
    low = p.lower()
    if low in CLASSICAL or low == "bm3d" or low in LEARNED or low in VARIATIONAL:
        return low
    if low.startswith("deepinv:"):
        return "deepinv"
    if Path(p).suffix.lower() in _CHECKPOINT_SUFFIXES:
        return "checkpoint"
    raise ValueError(
        f"compare config field 'prior': unknown prior {prior!r}; valid: tv, wavelet, tikhonov, bm3d, averaged, dncnn, ridge, "
        "deepinv:NAME, or a checkpoint path ending in .pt/.pth/.ckpt"
    )


def _default_label(prior: str, kind: str) -> str:
    if kind in ("tv",):
        return "TV"
    if kind in ("wavelet", "tikhonov", "averaged", "dncnn", "ridge"):
        return kind
    if kind == "bm3d":
        return "BM3D"
    if kind == "deepinv":
        return prior.split(":", 1)[1]
    return Path(prior).stem


@dataclass(frozen=True)
class TuningSpec:
    """How the parameters are tuned.

    Parameters
    ----------
    image : str
        Validation image (default :data:`priors.data.VALIDATION_IMAGE`); must not be a test image.
    size : int, optional
        Its size (default: the suite's size).
    kernels : list of str, optional
        Kernels of the tuning problems (default: the suite's first kernel); the mean PSNR over
        them is maximised.
    grid_points : int
        Log-spaced grid points over the search range.
    refine_steps : int
        Golden-section refinements around the best grid point.
    max_iter : int, optional
        Iterations per tuning run, capped by the prior's own max_iter (default: the solver's / prior's max_iter).
    edge_extensions : int
        How many grid steps the search may take past an edge of its range while the best value
        sits on that edge (default 2).

    Examples
    --------
    >>> TuningSpec().grid_points
    5
    """

    image: str | None = None
    size: int | None = None
    kernels: tuple[str, ...] | None = None
    grid_points: int = 5
    refine_steps: int = 3
    max_iter: int | None = None
    edge_extensions: int = 2

    def __post_init__(self) -> None:
        from priors.data import VALIDATION_IMAGE
        from problems import TEST_SPLIT

        s = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        if self.image is None:
            s("image", VALIDATION_IMAGE)
        if not isinstance(self.image, str):
            raise ValueError(f"tuning field 'image' must be an image name or path, got {self.image!r}")
        if self.image in TEST_SPLIT:
            raise ValueError(f"tuning field 'image' is {self.image!r}, a test image; tune on "
                             f"{VALIDATION_IMAGE!r} (held out of training and testing)")
        s("size", _int(self.size, "tuning.size", minimum=8, optional=True))
        if self.kernels is not None:
            s("kernels", _strs(self.kernels, "tuning.kernels"))
        s("grid_points", _int(self.grid_points, "tuning.grid_points", minimum=1))
        s("refine_steps", _int(self.refine_steps, "tuning.refine_steps", minimum=0))
        s("max_iter", _int(self.max_iter, "tuning.max_iter", minimum=1, optional=True))
        s("edge_extensions", _int(self.edge_extensions, "tuning.edge_extensions", minimum=0))


@dataclass(frozen=True)
class SolverOptions:
    """Stopping rule of every run (per-prior ``max_iter``/``tol`` override it).

    Examples
    --------
    >>> SolverOptions().max_iter
    300
    """

    max_iter: int = 300
    tol: float = 1e-5

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_iter", _int(self.max_iter, "solver.max_iter", minimum=1))
        object.__setattr__(self, "tol", _num(self.tol, "solver.tol"))


@dataclass(frozen=True)
class FigureSpec:
    """The reconstruction grid: which setting it shows and the zoomed region.

    Parameters
    ----------
    kernel : str, optional
        Kernel of the shown setting (default: the first kernel).
    noise : float, optional
        Noise level of the shown setting (default: the first one).
    zoom : [top, left, side]
        Zoomed square as fractions of the image height/width.

    Examples
    --------
    >>> FigureSpec().zoom
    (0.35, 0.35, 0.25)
    """

    kernel: str | None = None
    noise: float | None = None
    zoom: tuple[float, float, float] = (0.35, 0.35, 0.25)

    def __post_init__(self) -> None:
        object.__setattr__(self, "noise", _num(self.noise, "figure.noise", optional=True))
        z = tuple(_num(v, "figure.zoom", positive=False) for v in self.zoom)
        if len(z) != 3 or not (0 <= z[0] < 1 and 0 <= z[1] < 1 and 0 < z[2] <= 1):
            raise ValueError(f"compare config field 'figure.zoom' must be [top, left, side] fractions, got {self.zoom!r}")
        object.__setattr__(self, "zoom", z)


@dataclass(frozen=True)
class CompareConfig:
    """A comparison suite (the YAML file of ``stablepnp compare``).

    Parameters
    ----------
    name : str
        Title of the report.
    out : str
        Output folder (``--out`` overrides it).
    images : list of str
        Test images (names or paths).
    size : int, optional
        Square size of the images (None: native).
    gray : bool
        Grey images.
    kernels : list of str
        Blur kernel specs (``operators.kernels.parse_kernel_spec``).
    noise : list of float
        Gaussian noise standard deviations.
    boundary : str
        Blur boundary condition.
    seed : int
        Noise seed of every problem.
    priors : list of PriorEntry
        The priors and their algorithms.
    solver, tuning, figure
        See :class:`SolverOptions`, :class:`TuningSpec`, :class:`FigureSpec`.
    threads : int, optional
        ``torch.set_num_threads`` for the run (None: leave as is).

    Examples
    --------
    >>> CompareConfig.from_dict({"priors": [{"prior": "tv"}], "colour": True})
    Traceback (most recent call last):
    ...
    ValueError: unknown key 'colour' in compare config; valid keys: name, out, images, size, gray, kernels, noise, boundary, seed, priors, solver, tuning, figure, threads
    """

    name: str = "compare"
    out: str = "compare_out"
    images: tuple[str, ...] = ("camera", "astronaut", "coffee", "chelsea", "rocket")
    size: int | None = 256
    gray: bool = True
    kernels: tuple[str, ...] = ("gaussian:1.6",)
    noise: tuple[float, ...] = (0.01,)
    boundary: str = "circular"
    seed: int = 0
    priors: tuple[PriorEntry, ...] = ()
    solver: SolverOptions = field(default_factory=SolverOptions)
    tuning: TuningSpec = field(default_factory=TuningSpec)
    figure: FigureSpec = field(default_factory=FigureSpec)
    threads: int | None = None

    def __post_init__(self) -> None:
        s = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        if not isinstance(self.name, str) or not isinstance(self.out, str):
            raise ValueError("compare config fields 'name' and 'out' must be strings")
        s("images", _strs(self.images, "images"))
        s("size", _int(self.size, "size", minimum=8, optional=True))
        if not isinstance(self.gray, bool):
            raise ValueError(f"compare config field 'gray' must be true or false, got {self.gray!r}")
        s("kernels", _strs(self.kernels, "kernels"))
        s("noise", _nums(self.noise, "noise"))
        if not isinstance(self.boundary, str):
            raise ValueError(f"compare config field 'boundary' must be a string, got {self.boundary!r}")
        s("seed", _int(self.seed, "seed", minimum=0))
        if isinstance(self.priors, Mapping) or not isinstance(self.priors, (list, tuple)) or not self.priors:
            raise ValueError("compare config field 'priors' must be a non-empty list of prior entries "
                             "(e.g. - {prior: tv, algorithms: [fista]})")
        entries = tuple(p if isinstance(p, PriorEntry) else
                        _strict(PriorEntry, {"prior": p} if isinstance(p, str) else p, f"priors[{i}]")
                        for i, p in enumerate(self.priors))
        labels = [e.label for e in entries]
        dup = {x for x in labels if labels.count(x) > 1}
        if dup:
            raise ValueError(f"compare config field 'priors': duplicate labels {sorted(dup)}; give each entry a label")
        s("priors", entries)
        for name, cls in (("solver", SolverOptions), ("tuning", TuningSpec), ("figure", FigureSpec)):
            v = getattr(self, name)
            if not isinstance(v, cls):
                s(name, _strict(cls, v or {}, name))
        if self.tuning.image in self.images:
            raise ValueError(f"tuning image {self.tuning.image!r} is also a suite image; tune on a held-out image")
        s("threads", _int(self.threads, "threads", minimum=1, optional=True))

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CompareConfig":
        """Build from a mapping; unknown keys raise a one-line ``ValueError`` listing the valid ones."""
        return _strict(cls, data, "compare config")

    @classmethod
    def from_yaml(cls, path: str | Path) -> "CompareConfig":
        """Read a YAML file (``yaml.safe_load``, one-line errors)."""
        from problems.spec import load_yaml_mapping

        return cls.from_dict(load_yaml_mapping(path))

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))

    def replace(self, **changes: Any) -> "CompareConfig":
        return dataclasses.replace(self, **changes)


def bundled_config(name: str = "default") -> Path:
    """Path of a bundled suite: ``default`` (pnp/configs/compare_default.yaml) or ``tiny``."""
    p = _CONFIG_DIR / f"compare_{name}.yaml"
    if not p.is_file():
        raise ValueError(f"no bundled compare config {name!r}; valid: default, tiny (or give a YAML path)")
    return p


# ============================================================================ priors
class _Certified(torch.nn.Module):
    """Wraps a denoiser; computes its certificate once (the assumption check asks for it per run)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self._cert: Any = None
        self._done = False

    def forward(self, x: torch.Tensor, sigma: Any = None, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.inner(x, sigma)

    def certificate(self) -> Any:
        if not self._done:
            fn = getattr(self.inner, "certificate", None)
            self._cert = fn() if callable(fn) else None
            self._done = True
        return self._cert


@dataclass
class PriorHandle:
    """A built prior entry: makes the prior for a given parameter value.

    Attributes
    ----------
    entry : PriorEntry
    denoiser : torch.nn.Module or None
        The denoiser (wrapped so that its certificate is computed once), None for classical priors.
    sigma_range : (float, float) or None
        The denoiser's trained noise range (tuning stays inside it).
    fingerprint : dict
        What identifies the prior in the cache keys (checkpoint file hash...).
    """

    entry: PriorEntry
    denoiser: Any = None
    sigma_range: tuple[float, float] | None = None
    fingerprint: dict[str, Any] = field(default_factory=dict)

    def make(self, value: float) -> Any:
        """The prior with parameter ``value`` (``lam`` or ``sigma``)."""
        from priors import TV, Tikhonov, Wavelet, denoiser_at_level

        kind = self.entry.kind
        if kind == "tv":
            return value * TV()
        if kind == "wavelet":
            return value * Wavelet()
        if kind == "tikhonov":
            return value * Tikhonov(gradient=True)
        if kind in VARIATIONAL:
            from priors.ridge import RidgePrior, ridge_mu_for_lam

            model = self.denoiser.inner
            return RidgePrior(model, weight=value, mu=ridge_mu_for_lam(model, value, _SHIPPED[kind]))
        prior = denoiser_at_level(self.denoiser, value, self.sigma_range)
        prior.name = f"pnp-{type(self.denoiser.inner).__name__}"
        return prior

    def level(self, value: float) -> dict[str, float] | None:
        """How a denoiser runs at parameter ``value``: its sigma and relaxation strength."""
        from priors.pnp_prior import relaxed_level

        if self.entry.kind in CLASSICAL or self.entry.kind in VARIATIONAL:
            return None
        sigma, strength = relaxed_level(value, self.sigma_range)
        return {"sigma": sigma, "strength": strength}

    def default_range(self, noise: float) -> tuple[float, float]:
        """Search interval of the parameter for noise level ``noise``."""
        if self.entry.range is not None:
            return self.entry.range
        kind = self.entry.kind
        if kind in CLASSICAL:
            c = _LAM_AT_REF[kind] * (max(noise, 1e-3) / 0.01) ** 1.5
            return (c / 10.0, c * 10.0)
        if kind in VARIATIONAL:
            from priors.ridge import ridge_weights

            c = ridge_weights(self.denoiser.inner, noise, _SHIPPED[kind])[0]
            return (c / 4.0, c * 4.0)
        lo, hi = 0.5 * noise, 5.0 * noise
        if self.sigma_range is not None:
            # below the trained floor the denoiser is relaxed (priors.denoiser_at_level); above it is refused
            rhi = self.sigma_range[1]
            hi = min(hi, rhi)
            if not lo < hi:  # the noise is above the trained range: search its top part
                lo, hi = rhi / 2.5, rhi
        return (lo, hi)


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _weights_hash(model: torch.nn.Module) -> str:
    """Hash of what a learned denoiser computes (config + weights), not of its file: re-storing a
    file's certificate or training notes keeps the finished cells of a comparison valid."""
    h = hashlib.sha256(repr(getattr(model, "config", type(model).__name__)).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _deepinv_denoiser(name: str, path: str | None) -> torch.nn.Module:
    import inspect

    import deepinv

    cls = getattr(deepinv.models, name, None)
    if cls is None or not isinstance(cls, type):
        raise ValueError(f"deepinv:{name}: deepinv.models has no class {name!r}; check the spelling")
    params = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {}
    if "pretrained" in params:
        if path is None:
            raise ValueError(f"deepinv:{name} needs pretrained weights, which would be downloaded (disabled: offline); "
                             f"give a local weights file with path: FILE.pth")
        if not Path(path).is_file():
            raise FileNotFoundError(f"deepinv:{name}: weights file '{path}' does not exist")
        kwargs["pretrained"] = str(path)
        for key, val in (("in_channels", 1), ("out_channels", 1)):
            if key in params:
                kwargs[key] = val
    elif path is not None:
        raise ValueError(f"deepinv:{name} takes no weights; remove path")
    try:
        model = cls(**kwargs)
    except Exception as exc:  # noqa: BLE001 - third-party constructors raise anything
        raise ValueError(f"deepinv:{name} could not be built offline: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    return model.eval()


def build_prior_handle(entry: PriorEntry) -> PriorHandle:
    """Load what an entry needs (denoiser weights, packages).

    Raises
    ------
    ImportError
        ``bm3d`` missing.
    ValueError, FileNotFoundError
        Missing shipped weights / checkpoint, or a deepinv model that would download weights.
    """
    kind = entry.kind
    if kind in CLASSICAL:
        return PriorHandle(entry, fingerprint={"prior": kind})
    if kind == "bm3d":
        from priors import BM3DDenoiser

        return PriorHandle(entry, _Certified(BM3DDenoiser()), None, {"prior": "bm3d"})
    if kind == "deepinv":
        name = entry.prior.split(":", 1)[1]
        model = _deepinv_denoiser(name, entry.path)
        fp = {"prior": entry.prior, "weights": _file_hash(Path(entry.path)) if entry.path else None}
        return PriorHandle(entry, _Certified(model), None, fp)
    from priors import load_checkpoint, load_pretrained, trained_sigma_range
    from priors.pretrained import WEIGHTS_DIR, pretrained_names

    if kind == "checkpoint" or entry.path is not None:
        p = Path(entry.path if entry.path is not None else entry.prior).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"prior {entry.label!r}: checkpoint '{p}' does not exist")
        model = load_checkpoint(p)
    else:
        shipped = _SHIPPED[kind]
        if shipped not in pretrained_names():
            raise FileNotFoundError(
                f"prior {entry.label!r}: no shipped weights {shipped!r} in {WEIGHTS_DIR} (not trained yet?); "
                f"train them (stablepnp train priors/configs/{shipped}.yaml) or give path: MODEL.pt")
        model = load_pretrained(shipped)
    model.eval()
    return PriorHandle(entry, _Certified(model), trained_sigma_range(model), {"prior": kind, "weights": _weights_hash(model)})


# ============================================================================ one run
def _problem(image: str, kernel: str, noise: float, *, size: int | None, gray: bool, boundary: str, seed: int) -> Any:
    from problems import ProblemSpec

    return ProblemSpec(image=image, size=size, gray=gray, kernel=kernel, boundary=boundary, sigma=noise,
                       seed=seed).build()


def _algorithm(handle: PriorHandle, value: float, algorithm: str, step_factor: float, problem: Any) -> Any:
    from pnp import ALGORITHMS
    from pnp.acceleration import SUPPORTED_ALGORITHMS

    prior = handle.make(value)
    L = problem.fidelity.lipschitz_grad()
    step = None if step_factor == 1.0 or not L else step_factor / L
    cls = ALGORITHMS[algorithm]
    # the same default as `stablepnp solve`: safeguarded Anderson wherever it keeps the theorem
    extra = {"accelerate": "auto"} if cls.name in SUPPORTED_ALGORITHMS else {}
    return cls(problem, prior, step=step, relaxation=handle.entry.relaxation, **extra)


def _scores(x: torch.Tensor, truth: torch.Tensor) -> tuple[float, float]:
    from problems.metrics import psnr, ssim

    xc = x.detach().clamp(0.0, 1.0)
    return float(psnr(xc, truth).mean()), float(ssim(xc, truth).mean())


def _solve(handle: PriorHandle, value: float, algorithm: str, step_factor: float, problem: Any,
           *, max_iter: int, tol: float) -> tuple[Any, Any, dict[str, Any]]:
    alg = _algorithm(handle, value, algorithm, step_factor, problem)
    res = alg.run(max_iter=max_iter, tol=tol, progress=False)
    p, s = _scores(res.x, problem.truth)
    report = res.report
    info = {
        "psnr": p, "ssim": s, "iterations": res.iterations, "seconds": res.seconds, "converged": res.converged,
        "status": res.status, "final_residual": res.final_residual, "step": res.step,
        "verdict": None if report is None else report.verdict,
        "guarantee": bool(report is not None and report.verdict == "guaranteed"),
        "alpha": None if report is None else report.alpha,
        "theorem": None if report is None else report.theorem,
        "reason": None if report is None else report.reason,
    }
    return res, alg, info


# ============================================================================ cache
def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, (np.floating, np.integer)):
        return _jsonable(obj.item())
    if hasattr(obj, "to_dict"):
        return _jsonable(obj.to_dict())
    return str(obj)


def _acceleration_key(algorithm: str) -> dict[str, str]:
    """Cells of accelerated algorithms are keyed by the acceleration (FISTA/PDHG cells keep their old keys)."""
    from pnp.acceleration import SUPPORTED_ALGORITHMS

    return {"accelerate": "auto"} if algorithm.upper() in SUPPORTED_ALGORITHMS else {}


def _key(d: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(_jsonable(d), sort_keys=True).encode()).hexdigest()[:20]


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_jsonable(data), indent=1))
    tmp.replace(path)  # atomic: an interrupted write never leaves a half cell behind


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ============================================================================ tuning
def _golden_refine(f: Callable[[float], float], a: float, b: float, steps: int) -> None:
    """Golden-section search for the max of ``f`` on [a, b] (log10 space), ``steps`` new evaluations."""
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(max(steps - 2, 0)):
        if fc >= fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)


def tune(
    handle: PriorHandle,
    algorithm: str,
    noise: float,
    config: CompareConfig,
    *,
    out: Path | None = None,
    force: bool = False,
    counter: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Choose the parameter (and step factor) of one (prior, algorithm, noise) on the validation image.

    Every evaluation is cached in ``out/tuning/evals`` when ``out`` is given.

    Returns
    -------
    dict
        ``param`` (``lam``/``sigma``), ``value``, ``step_factor``, ``psnr`` (validation),
        ``evaluations`` (every point tried), ``range``, ``at_boundary``, ``source``.
    """
    entry = handle.entry
    if entry.fixed is not None and len(entry.step_factors) == 1:
        return {"param": entry.param, "value": entry.fixed, "step_factor": entry.step_factors[0], "psnr": None,
                "evaluations": [], "range": None, "at_boundary": False, "source": "fixed in the config"}
    tcfg = config.tuning
    kernels = tcfg.kernels or (config.kernels[0],)
    size = tcfg.size if tcfg.size is not None else config.size
    # the tuning budget never exceeds the entry's own (BM3D runs 40 iterations, not the tuning's 100)
    budgets = [m for m in (tcfg.max_iter, entry.max_iter) if m]
    max_iter = min(budgets) if budgets else config.solver.max_iter
    tol = entry.tol or config.solver.tol
    problems = [_problem(tcfg.image, k, noise, size=size, gray=config.gray, boundary=config.boundary,
                         seed=config.seed) for k in kernels]
    base_key = {"format": _FORMAT, "fp": handle.fingerprint, "algorithm": algorithm, "noise": noise,
                "relaxation": entry.relaxation, "image": tcfg.image, "size": size, "gray": config.gray,
                "kernels": kernels, "boundary": config.boundary, "seed": config.seed, "max_iter": max_iter, "tol": tol,
                **_acceleration_key(algorithm)}
    evals: list[dict[str, Any]] = []

    def evaluate(value: float, factor: float) -> float:
        key = _key({**base_key, "value": round(value, 12), "step_factor": factor})
        path = None if out is None else out / "tuning" / "evals" / f"{key}.json"
        rec = None if (path is None or force) else _read_json(path)
        if rec is None:
            scores = []
            for prob in problems:
                try:
                    _, _, info = _solve(handle, value, algorithm, factor, prob, max_iter=max_iter, tol=tol)
                    ok = info["status"] not in ("diverged", "nan")
                    scores.append(info["psnr"] if ok else -math.inf)
                except ValueError as exc:  # the algorithm refused this setting
                    raise ValueError(f"tuning {entry.method(algorithm)}: {exc}") from None
            rec = {"value": value, "step_factor": factor, "psnr": float(np.mean(scores))}
            if path is not None:
                _write_json(path, rec)
            if counter is not None:
                counter["tuning_runs"] = counter.get("tuning_runs", 0) + 1
        evals.append(rec)
        return rec["psnr"] if rec["psnr"] is not None else -math.inf

    lo, hi = handle.default_range(noise)
    if entry.fixed is not None:
        lo = hi = entry.fixed
    # a denoiser's level may go below its trained floor (relaxed there), never above its ceiling
    hard = (0.02 * handle.sigma_range[0], handle.sigma_range[1]) if entry.param == "sigma" and handle.sigma_range else None
    best: tuple[float, float, float] | None = None  # (psnr, value, factor)
    any_boundary = False
    for factor in entry.step_factors:
        if lo == hi:
            v = lo
            score = evaluate(v, factor)
            cand = (score, v, factor)
            best = cand if best is None or cand[0] > best[0] else best
            continue
        n = tcfg.grid_points
        llo, lhi = math.log10(lo), math.log10(hi)
        h = (lhi - llo) / max(n - 1, 1)
        grid = [llo + i * h for i in range(n)] if n > 1 else [(llo + lhi) / 2]
        scores = {g: evaluate(10**g, factor) for g in grid}
        # extend (up to tuning.edge_extensions times) while the best point lies on the edge of the range
        for _ in range(tcfg.edge_extensions):
            gb = max(scores, key=scores.get)
            if n < 2:
                break
            if gb == min(scores):
                g_new = gb - h
            elif gb == max(scores):
                g_new = gb + h
            else:
                break
            if hard is not None and not (hard[0] <= 10**g_new <= hard[1]):
                break
            scores[g_new] = evaluate(10**g_new, factor)
        gb = max(scores, key=scores.get)
        at_edge = gb in (min(scores), max(scores)) and n > 1
        if tcfg.refine_steps and n > 1:
            def f(g: float) -> float:
                s = evaluate(10**g, factor)
                scores[g] = s
                return s

            a, b = max(gb - h, min(scores)), min(gb + h, max(scores))
            if b > a:
                _golden_refine(f, a, b, tcfg.refine_steps)
        gb = max(scores, key=scores.get)
        any_boundary = any_boundary or at_edge
        cand = (scores[gb], 10**gb, factor)
        best = cand if best is None or cand[0] > best[0] else best
    assert best is not None
    return {"param": entry.param, "value": best[1], "step_factor": best[2], "psnr": best[0], "evaluations": evals,
            "range": [lo, hi], "at_boundary": any_boundary,
            "source": f"search on {tcfg.image} ({', '.join(kernels)}, noise {noise:g}), {len(evals)} runs"}


# ============================================================================ the suite
@dataclass
class _Method:
    handle: PriorHandle
    algorithm: str

    @property
    def name(self) -> str:
        return self.handle.entry.method(self.algorithm)


def _load_handles(config: CompareConfig) -> tuple[list[PriorHandle], list[dict[str, str]]]:
    handles, skipped = [], []
    for entry in config.priors:
        try:
            handles.append(build_prior_handle(entry))
        except (ImportError, FileNotFoundError) as exc:
            skipped.append({"prior": entry.label, "reason": str(exc).splitlines()[0]})
    return handles, skipped


def run_suite(
    config: CompareConfig,
    out: str | Path | None = None,
    *,
    force: bool = False,
    progress: bool = True,
    figures: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Tune, run every cell (reusing stored ones unless ``force``), write the report.

    Parameters
    ----------
    config : CompareConfig
        The suite.
    out : str or Path, optional
        Output folder (default ``config.out``).
    force : bool
        Recompute cells and tuning runs even when stored.
    progress : bool
        tqdm progress bars.
    figures : bool
        Write ``recon_grid.png`` and ``convergence.png``.
    log : callable, optional
        Receives one-line messages (default: stderr).

    Returns
    -------
    dict
        ``cells`` (records), ``tuning``, ``skipped`` priors, ``summary``, ``targets``, ``counts``
        (``computed``, ``reused``, ``failed`` cells and ``tuning_runs``), ``out``.

    Raises
    ------
    ValueError
        A setting refused by an algorithm, or a deepinv model that needs downloaded weights.
    """
    from tqdm.auto import tqdm

    log = log or (lambda m: print(m, file=sys.stderr))
    out_dir = Path(out if out is not None else config.out)
    from pnp.solve import check_output_paths

    check_output_paths(out_dir, None)  # a file or a read-only place is refused in one line, before any work
    (out_dir / "cells").mkdir(parents=True, exist_ok=True)
    old_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    counts = {"computed": 0, "reused": 0, "failed": 0, "tuning_runs": 0}
    try:
        handles, skipped = _load_handles(config)
        for s in skipped:
            log(f"compare: skipping prior {s['prior']}: {s['reason']}")
        methods = [_Method(h, a) for h in handles for a in h.entry.algorithms]
        if not methods:
            raise ValueError("no prior of the config could be loaded (see the skipped list); nothing to compare")

        # ---- phase 1: tuning
        tuning: dict[str, dict[str, Any]] = {}
        tasks = [(m, nz) for m in methods for nz in config.noise]
        bar = tqdm(tasks, desc="tuning", disable=not progress, dynamic_ncols=True)
        for m, nz in bar:
            bar.set_postfix_str(f"{m.name} noise {nz:g}")
            t = tune(m.handle, m.algorithm, nz, config, out=out_dir, force=force, counter=counts)
            tuning[f"{m.name}|{nz:g}"] = {"method": m.name, "noise": nz, **t, "level": m.handle.level(t["value"])}
        bar.close()
        _write_json(out_dir / "tuning.json", tuning)

        # ---- phase 2: the grid
        cells: list[dict[str, Any]] = []
        total = len(config.images) * len(config.kernels) * len(config.noise) * len(methods)
        bar = tqdm(total=total, desc="compare", disable=not progress, dynamic_ncols=True)
        for image in config.images:
            for kernel in config.kernels:
                for nz in config.noise:
                    problem = None
                    for m in methods:
                        e = m.handle.entry
                        t = tuning[f"{m.name}|{nz:g}"]
                        max_iter = e.max_iter or config.solver.max_iter
                        tol = e.tol or config.solver.tol
                        cell_cfg = {"format": _FORMAT, "image": image, "size": config.size, "gray": config.gray,
                                    "kernel": kernel, "noise": nz, "boundary": config.boundary, "seed": config.seed,
                                    "fp": m.handle.fingerprint, "algorithm": m.algorithm,
                                    "relaxation": e.relaxation, "param": t["param"], "value": t["value"],
                                    "step_factor": t["step_factor"], "max_iter": max_iter, "tol": tol,
                                    **_acceleration_key(m.algorithm)}
                        key = _key(cell_cfg)
                        path = out_dir / "cells" / f"{key}.json"
                        rec = None if force else _read_json(path)
                        if rec is not None and (out_dir / "cells" / f"{key}.npz").is_file():
                            counts["reused"] += 1
                        else:
                            if problem is None:
                                problem = _problem(image, kernel, nz, size=config.size, gray=config.gray,
                                                   boundary=config.boundary, seed=config.seed)
                            bar.set_postfix_str(f"{image} {kernel} {nz:g} {m.name}")
                            try:
                                res, _, info = _solve(m.handle, t["value"], m.algorithm, t["step_factor"], problem,
                                                      max_iter=max_iter, tol=tol)
                            except (ValueError, RuntimeError) as exc:
                                counts["failed"] += 1
                                log(f"compare: cell {image} {kernel} {nz:g} {m.name} failed: {exc}")
                                bar.update(1)
                                continue
                            p_obs, s_obs = _scores(problem.y, problem.truth)
                            rec = {"key": key, "image": image, "kernel": kernel, "noise": nz, "method": m.name,
                                   "prior": e.label, "prior_kind": e.kind, "algorithm": m.algorithm,
                                   "param": t["param"], "value": t["value"], "step_factor": t["step_factor"],
                                   "relaxation": e.relaxation, "denoiser_level": t["level"],
                                   "psnr_observed": p_obs, "ssim_observed": s_obs,
                                   **info, "history": {k: res.history.get(k, []) for k in ("residual", "psnr")},
                                   "config": cell_cfg}
                            np.savez_compressed(out_dir / "cells" / f"{key}.npz",
                                                x=res.x.detach().clamp(0, 1).cpu().numpy().astype(np.float16))
                            _write_json(path, rec)
                            counts["computed"] += 1
                        cells.append(rec)
                        bar.update(1)
        bar.close()

        summary = _summarise(cells, methods)
        targets = _targets(cells, methods)
        report = {"format": _FORMAT, "name": config.name, "config": config.to_dict(), "skipped": skipped,
                  "tuning": tuning, "summary": summary, "targets": targets, "counts": counts, "cells": cells}
        _write_json(out_dir / "results.json", report)
        _write_csv(out_dir / "results.csv", cells)
        (out_dir / "results.md").write_text(_markdown(config, cells, methods, summary, tuning, skipped, targets, counts))
        if figures and cells:
            _recon_grid(config, cells, methods, out_dir)
            _convergence_figure(cells, methods, out_dir / "convergence.png")
        report["out"] = str(out_dir)
        return report
    finally:
        torch.set_num_threads(old_threads)


# ============================================================================ reporting
def _mean(xs: Sequence[float]) -> float | None:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return float(np.mean(xs)) if xs else None


def _summarise(cells: list[dict], methods: list[_Method]) -> dict[str, dict[str, Any]]:
    out = {}
    for m in methods:
        cs = [c for c in cells if c["method"] == m.name]
        if not cs:
            continue
        verdicts = sorted({c["verdict"] for c in cs if c.get("verdict")})
        out[m.name] = {
            "cells": len(cs), "psnr": _mean([c["psnr"] for c in cs]), "ssim": _mean([c["ssim"] for c in cs]),
            "iterations": _mean([c["iterations"] for c in cs]), "seconds": _mean([c["seconds"] for c in cs]),
            "converged": sum(bool(c["converged"]) for c in cs) / len(cs),
            "guarantee": all(c["guarantee"] for c in cs), "verdicts": verdicts,
            "alpha": _mean([c["alpha"] for c in cs if c.get("alpha") is not None]),
        }
    return out


def _paired_gap(cells: list[dict], a: str, b: str) -> tuple[float | None, int]:
    by = {}
    for c in cells:
        by.setdefault((c["image"], c["kernel"], c["noise"]), {})[c["method"]] = c["psnr"]
    diffs = [v[a] - v[b] for v in by.values() if a in v and b in v]
    return (float(np.mean(diffs)) if diffs else None), len(diffs)


def _targets(cells: list[dict], methods: list[_Method]) -> list[dict[str, Any]]:
    """The issue's targets, measured on the cells both methods share."""
    def find(kind: str, alg: str) -> str | None:
        return next((m.name for m in methods if m.handle.entry.kind == kind and m.algorithm == alg), None)

    avg, tv, base = find("averaged", "pgd"), find("tv", "fista"), find("dncnn", "pgd")
    out = []
    if avg and tv:
        gap, n = _paired_gap(cells, avg, tv)
        out.append({"target": f"{avg} >= {tv} + 1.5 dB (mean PSNR)", "gap_db": gap, "pairs": n,
                    "met": None if gap is None else gap >= 1.5})
    if avg and base:
        gap, n = _paired_gap(cells, avg, base)
        out.append({"target": f"{avg} within 0.3 dB of {base} (mean PSNR, {avg} - {base} >= -0.3)", "gap_db": gap,
                    "pairs": n, "met": None if gap is None else gap >= -0.3})
    return out


_CSV_FIELDS = ("image", "kernel", "noise", "method", "prior", "algorithm", "param", "value", "step_factor",
               "relaxation", "psnr", "ssim", "psnr_observed", "iterations", "seconds", "converged", "status",
               "final_residual", "guarantee", "verdict", "alpha", "key")


def _write_csv(path: Path, cells: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=_CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for c in cells:
            w.writerow({k: ("yes" if c[k] else "no") if k == "guarantee" else c.get(k) for k in _CSV_FIELDS})


def _f(x: Any, spec: str = ".2f") -> str:
    return "–" if x is None else format(x, spec)


def _markdown(config: CompareConfig, cells: list[dict], methods: list[_Method], summary: dict, tuning: dict,
              skipped: list[dict], targets: list[dict], counts: dict) -> str:
    buf = io.StringIO()
    w = lambda s="": buf.write(s + "\n")  # noqa: E731
    w(f"# {config.name}")
    w()
    w(f"{len(config.images)} images ({', '.join(config.images)}) at "
      f"{config.size if config.size else 'native size'}{' grey' if config.gray else ''}, kernels "
      f"{', '.join(config.kernels)}, Gaussian noise {', '.join(f'{n:g}' for n in config.noise)}, "
      f"{config.boundary} boundary, seed {config.seed}. Parameters tuned on '{config.tuning.image}' (not in the "
      f"test split), then frozen. PSNR/SSIM on the reconstruction clipped to [0, 1]. Guarantee = the solver's "
      f"assumption verdict is 'guaranteed' for every cell.")
    w()
    if skipped:
        for s in skipped:
            w(f"- **skipped {s['prior']}**: {s['reason']}")
        w()
    w("## Summary (mean over all cells)")
    w()
    w("| method | PSNR | SSIM | iterations | seconds | converged | guarantee | verdict |")
    w("|---|---|---|---|---|---|---|---|")
    for name, s in summary.items():
        w(f"| {name} | {_f(s['psnr'])} | {_f(s['ssim'], '.4f')} | {_f(s['iterations'], '.0f')} | "
          f"{_f(s['seconds'])} | {s['converged'] * 100:.0f}% | {'yes' if s['guarantee'] else 'no'} | "
          f"{', '.join(s['verdicts'])} |")
    w()
    if targets:
        w("## Targets")
        w()
        for t in targets:
            met = "not measurable" if t["met"] is None else ("met" if t["met"] else "NOT met")
            w(f"- {t['target']}: mean paired gap {_f(t['gap_db'], '+.2f')} dB over {t['pairs']} cells — **{met}**")
        w()
    w("## PSNR per setting (mean over images)")
    w()
    settings = [(k, n) for k in config.kernels for n in config.noise]
    w("| method | " + " | ".join(f"{k} / {n:g}" for k, n in settings) + " |")
    w("|---|" + "---|" * len(settings))
    for m in methods:
        row = []
        for k, n in settings:
            row.append(_f(_mean([c["psnr"] for c in cells if c["method"] == m.name and c["kernel"] == k
                                 and c["noise"] == n])))
        w(f"| {m.name} | " + " | ".join(row) + " |")
    obs = [_f(_mean([c["psnr_observed"] for c in cells if c["kernel"] == k and c["noise"] == n])) for k, n in settings]
    w("| (observed) | " + " | ".join(obs) + " |")
    w()
    w("## Tuned parameters (frozen)")
    w()
    w("| method | noise | parameter | value | step factor (x 1/L) | validation PSNR | runs | note |")
    w("|---|---|---|---|---|---|---|---|")
    relaxed = False
    for t in tuning.values():
        note = "best at the edge of the search range" if t.get("at_boundary") else t.get("source", "")
        lvl = t.get("level")
        value = f"{t['value']:.4g}"
        if lvl and lvl["strength"] < 1.0:
            value += f" (= {lvl['sigma']:.4g} relaxed, s = {lvl['strength']:.3g})"
            relaxed = True
        w(f"| {t['method']} | {t['noise']:g} | {t['param']} | {value} | {t['step_factor']:g} | "
          f"{_f(t['psnr'])} | {len(t['evaluations'])} | {note} |")
    w()
    if relaxed:
        w("A denoiser level below the trained range means the relaxed denoiser (1 - s) I + s D(., sigma_min) with "
          "s = level / sigma_min (s-times its averagedness constant; `priors.denoiser_at_level`).")
        w()
    w("## All cells")
    w()
    w("| image | kernel | noise | method | PSNR | SSIM | it | s | converged | guarantee |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for c in cells:
        w(f"| {c['image']} | {c['kernel']} | {c['noise']:g} | {c['method']} | {_f(c['psnr'])} | "
          f"{_f(c['ssim'], '.4f')} | {c['iterations']} | {_f(c['seconds'])} | {'yes' if c['converged'] else 'no'} "
          f"({c['status']}) | {'yes' if c['guarantee'] else 'no'} |")
    w()
    w(f"_{counts['computed']} cells computed, {counts['reused']} reused from earlier runs, {counts['failed']} failed; "
      f"{counts['tuning_runs']} new tuning runs._")
    return buf.getvalue()


def _recon_grid(config: CompareConfig, cells: list[dict], methods: list[_Method], out_dir: Path) -> Path | None:
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    kernel = config.figure.kernel or config.kernels[0]
    noise = config.figure.noise if config.figure.noise is not None else config.noise[0]
    by = {(c["image"], c["method"]): c for c in cells if c["kernel"] == kernel and math.isclose(c["noise"], noise)}
    if not by:
        return None
    names = [m.name for m in methods if any(k[1] == m.name for k in by)]
    cols = ["truth", "observed", *names]
    rows = config.images
    fig = Figure(figsize=(2.1 * len(cols), 2.2 * len(rows)))
    axes = np.atleast_2d(fig.subplots(len(rows), len(cols), squeeze=False))
    top, left, side = config.figure.zoom
    for i, image in enumerate(rows):
        prob = _problem(image, kernel, noise, size=config.size, gray=config.gray, boundary=config.boundary,
                        seed=config.seed)
        panels = {"truth": (prob.truth, None), "observed": (prob.y, _scores(prob.y, prob.truth)[0])}
        for n in names:
            c = by.get((image, n))
            if c is not None:
                x = torch.from_numpy(np.load(out_dir / "cells" / f"{c['key']}.npz")["x"].astype(np.float32))
                panels[n] = (x, c["psnr"])
        for j, col in enumerate(cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if col not in panels:
                ax.set_axis_off()
                continue
            img, score = panels[col]
            arr = img[0].detach().float().clamp(0, 1).numpy()
            arr = arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
            cmap = "gray" if arr.ndim == 2 else None
            ax.imshow(arr, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            h, wd = arr.shape[:2]
            y0, x0, s = int(top * h), int(left * wd), max(int(side * min(h, wd)), 2)
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), s, s, fill=False, ec="yellow", lw=0.8))
            ins = ax.inset_axes([0.58, 0.0, 0.42, 0.42])
            ins.imshow(arr[y0:y0 + s, x0:x0 + s], cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            ins.set_xticks([])
            ins.set_yticks([])
            for sp in ins.spines.values():
                sp.set_edgecolor("yellow")
            title = col if score is None else f"{col}\n{score:.2f} dB"
            ax.set_title(title, fontsize=7)
            if j == 0:
                ax.set_ylabel(image, fontsize=8)
    fig.suptitle(f"{config.name}: {kernel}, noise {noise:g}", fontsize=9)
    fig.tight_layout()
    path = out_dir / "recon_grid.png"
    fig.savefig(path, dpi=100)
    return path


def _convergence_figure(cells: list[dict], methods: list[_Method], path: Path) -> Path:
    import matplotlib
    from matplotlib.figure import Figure

    names = [m.name for m in methods if any(c["method"] == m.name for c in cells)]
    ncol = min(4, len(names))
    nrow = math.ceil(len(names) / ncol)
    fig = Figure(figsize=(3.6 * ncol, 2.9 * nrow))
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    noises = sorted({c["noise"] for c in cells})
    for ax, name in zip(axes, names):
        for c in cells:
            if c["method"] != name:
                continue
            r = [max(v, 1e-16) for v in c["history"]["residual"]]
            ax.semilogy(range(1, len(r) + 1), r, lw=0.7, alpha=0.7, color=colors[noises.index(c["noise"]) % len(colors)])
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("iteration", fontsize=7)
        ax.set_ylabel("‖x_{k+1}−x_k‖/‖x_k‖", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes[len(names):]:
        ax.set_axis_off()
    handles = [matplotlib.lines.Line2D([], [], color=colors[i % len(colors)], label=f"noise {n:g}")
               for i, n in enumerate(noises)]
    fig.legend(handles=handles, loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


# ============================================================================ CLI
def main(argv: Sequence[str] | None = None) -> int:
    """``stablepnp compare [CONFIG.yaml|default|tiny] [--out DIR] [--force] [--no-progress]``.

    Exit codes: 0 done, 2 bad input (one line on stderr).
    """
    parser = argparse.ArgumentParser(
        prog="stablepnp compare",
        description="Learned vs classical priors: tune on a validation image, run the suite, write tables and figures.")
    parser.add_argument("config", nargs="?", default="default",
                        help="suite YAML, or 'default' / 'tiny' for the bundled ones (default: default)")
    parser.add_argument("--out", help="output folder (default: the config's 'out')")
    parser.add_argument("--resume", action="store_true", default=True,
                        help="reuse finished cells stored in the output folder (the default)")
    parser.add_argument("--force", action="store_true", help="recompute every cell and tuning run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--no-figures", action="store_true", help="skip the figures")
    args = parser.parse_args(argv)
    try:
        src = args.config
        path = bundled_config(src) if src in ("default", "tiny") and not Path(src).exists() else Path(src)
        config = CompareConfig.from_yaml(path)
        t0 = time.perf_counter()
        report = run_suite(config, args.out, force=args.force, progress=not args.no_progress,
                           figures=not args.no_figures)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        print(f"stablepnp: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2
    out = Path(report["out"])
    print(f"compare: {report['counts']['computed']} cells computed, {report['counts']['reused']} reused, "
          f"{report['counts']['failed']} failed in {time.perf_counter() - t0:.1f} s -> {out / 'results.md'}")
    for name, s in report["summary"].items():
        print(f"  {name:24s} PSNR {_f(s['psnr'])}  SSIM {_f(s['ssim'], '.4f')}  guarantee {'yes' if s['guarantee'] else 'no'}")
    for t in report["targets"]:
        print(f"  target: {t['target']}: gap {_f(t['gap_db'], '+.2f')} dB -> "
              f"{'n/a' if t['met'] is None else ('met' if t['met'] else 'NOT met')}")
    return 0
