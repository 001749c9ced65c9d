"""The ``stablepnp compare`` suite's configuration: :class:`CompareConfig` and its sections (strict YAML).

Prior names are those of the registry (:mod:`pnp.registry`): a prior registered from outside the
package can be compared like a shipped one.

Examples
--------
>>> cfg = CompareConfig.from_dict({"images": ["camera"], "size": 32, "priors": [{"prior": "tv"}]})
>>> cfg.priors[0].algorithms, cfg.priors[0].param
(('pgd',), 'lam')
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from pnp.record import json_safe
from pnp.registry import ALGORITHMS, PRIORS, RegisteredPrior, resolve_prior
from problems.config import from_mapping, load_yaml_mapping

__all__ = ["PriorEntry", "TuningSpec", "SolverOptions", "FigureSpec", "CompareConfig", "bundled_config",
           "suite_problem", "FORMAT"]

_CONFIG_DIR = Path(__file__).resolve().parent / "configs"
#: Format tag of the suite's records and cache keys.
FORMAT = "stable-pnp-compare/1"


# ============================================================================ field helpers
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


def _unique(values: Sequence[Any], name: str) -> None:
    """Refuse a value listed twice: the suite would run (and count) the same cells twice."""
    seen: list[Any] = []
    for v in values:
        if any(v == w or (isinstance(v, float) and isinstance(w, float) and math.isclose(v, w)) for w in seen):
            raise ValueError(f"compare config field {name!r} lists {v!r} twice; keep one")
        seen.append(v)


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
        entry = _resolve(self.prior)
        s("algorithms", _strs(self.algorithms, "algorithms", allowed=tuple(ALGORITHMS)))
        _unique(self.algorithms, "algorithms")
        s("relaxation", _num(self.relaxation, "relaxation"))
        s("lam", _num(self.lam, "lam", optional=True))
        s("sigma", _num(self.sigma, "sigma", optional=True))
        if self.lam is not None and self.sigma is not None:
            raise ValueError(f"prior {self.prior!r}: give at most one of lam and sigma")
        if entry.param == "lam" and self.sigma is not None:
            raise ValueError(f"prior {self.prior!r} is a {entry.kind} prior: fix its weight with lam, not sigma")
        if entry.param == "sigma" and self.lam is not None:
            raise ValueError(f"prior {self.prior!r} is a denoiser: fix its level with sigma, not lam")
        if self.range is not None:
            r = _nums(self.range, "range")
            if len(r) != 2 or not r[0] < r[1]:
                raise ValueError(f"compare config field 'range' must be [lo, hi] with 0 < lo < hi, got {self.range!r}")
            s("range", r)
        s("step_factors", _nums(self.step_factors, "step_factors"))
        _unique(self.step_factors, "step_factors")
        s("max_iter", _int(self.max_iter, "max_iter", minimum=1, optional=True))
        s("tol", _num(self.tol, "tol", optional=True))
        if self.path is not None:
            if not isinstance(self.path, str):
                raise ValueError(f"compare config field 'path' must be a file path, got {self.path!r}")
            if entry.kind == "classical" or (entry.model is None and entry.name != "checkpoint"
                                             and not entry.name.startswith("deepinv:")):
                raise ValueError(f"prior {self.prior!r} takes no path; path is for averaged, dncnn or deepinv:NAME")
        if self.label is None:
            s("label", entry.display)
        elif not isinstance(self.label, str) or not self.label:
            raise ValueError(f"compare config field 'label' must be a non-empty string, got {self.label!r}")

    @property
    def registered(self) -> RegisteredPrior:
        """The registry entry of ``prior`` (:func:`pnp.registry.resolve_prior`)."""
        return resolve_prior(self.prior)

    @property
    def kind(self) -> str:
        """The registered name (``tv``, ``averaged``, ...), ``deepinv`` or ``checkpoint``."""
        name = self.registered.name
        return "deepinv" if name.startswith("deepinv:") else name

    @property
    def param(self) -> str:
        """Name of the tuned parameter: ``lam`` (classical, smooth) or ``sigma`` (denoiser)."""
        return self.registered.param

    @property
    def fixed(self) -> float | None:
        return self.lam if self.param == "lam" else self.sigma

    def method(self, algorithm: str) -> str:
        """Method name ``LABEL-ALGORITHM`` (e.g. ``TV-FISTA``)."""
        return f"{self.label}-{algorithm.upper()}"


def _resolve(prior: str) -> RegisteredPrior:
    try:
        return resolve_prior(prior)
    except ValueError:
        raise ValueError(f"compare config field 'prior': unknown prior {prior!r}; valid: {', '.join(PRIORS)}, "
                         "deepinv:NAME, or a checkpoint path ending in .pt/.pth/.ckpt") from None


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
            _unique(self.kernels, "tuning.kernels")
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
        for name in ("images", "kernels", "noise"):
            _unique(getattr(self, name), name)
        if not isinstance(self.boundary, str):
            raise ValueError(f"compare config field 'boundary' must be a string, got {self.boundary!r}")
        s("seed", _int(self.seed, "seed", minimum=0))
        if isinstance(self.priors, Mapping) or not isinstance(self.priors, (list, tuple)) or not self.priors:
            raise ValueError("compare config field 'priors' must be a non-empty list of prior entries "
                             "(e.g. - {prior: tv, algorithms: [fista]})")
        entries = tuple(p if isinstance(p, PriorEntry) else
                        from_mapping(PriorEntry, {"prior": p} if isinstance(p, str) else p, f"priors[{i}]")
                        for i, p in enumerate(self.priors))
        labels = [e.label for e in entries]
        dup = {x for x in labels if labels.count(x) > 1}
        if dup:
            raise ValueError(f"compare config field 'priors': duplicate labels {sorted(dup)}; give each entry a label")
        same = [dataclasses.replace(e, label=None) for e in entries]  # an entry given twice under two labels
        for i, e in enumerate(same):
            if e in same[:i]:
                raise ValueError(f"compare config field 'priors': entries {same.index(e)} and {i} are the same "
                                 f"({e.prior}, same settings) under two labels; keep one")
        s("priors", entries)
        for name, cls in (("solver", SolverOptions), ("tuning", TuningSpec), ("figure", FigureSpec)):
            v = getattr(self, name)
            if not isinstance(v, cls):
                s(name, from_mapping(cls, v or {}, name))
        if self.figure.kernel is not None and self.figure.kernel not in self.kernels:
            raise ValueError(f"compare config field 'figure.kernel' is {self.figure.kernel!r}, which matches no cell; "
                             f"valid: {', '.join(self.kernels)}")
        if self.figure.noise is not None and not any(math.isclose(self.figure.noise, n) for n in self.noise):
            raise ValueError(f"compare config field 'figure.noise' is {self.figure.noise:g}, which matches no cell; "
                             f"valid: {', '.join(f'{n:g}' for n in self.noise)}")
        if self.tuning.image in self.images:
            raise ValueError(f"tuning image {self.tuning.image!r} is also a suite image; tune on a held-out image")
        s("threads", _int(self.threads, "threads", minimum=1, optional=True))

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CompareConfig":
        """Build from a mapping; unknown keys raise a one-line ``ValueError`` listing the valid ones."""
        return from_mapping(cls, data, "compare config")

    @classmethod
    def from_yaml(cls, path: str | Path) -> "CompareConfig":
        """Read a YAML file (``yaml.safe_load``, one-line errors)."""
        return cls.from_dict(load_yaml_mapping(path))

    def to_dict(self) -> dict[str, Any]:
        return json_safe(dataclasses.asdict(self))

    def replace(self, **changes: Any) -> "CompareConfig":
        return dataclasses.replace(self, **changes)

    def select(self, names: Sequence[str]) -> "CompareConfig":
        """The same suite restricted to the prior entries named by label or prior name (case-insensitive).

        Cells are cached by content, so a subset run writes cells that the full suite reuses.

        >>> cfg = CompareConfig.from_dict({"priors": [{"prior": "tv"}, {"prior": "tikhonov"}]})
        >>> [p.prior for p in cfg.select(["tikhonov"]).priors]
        ['tikhonov']
        """
        wanted = [n.strip().lower() for n in names if n.strip()]
        keep = tuple(p for p in self.priors if p.label.lower() in wanted or p.prior.lower() in wanted)
        known = {n for p in self.priors for n in (p.label.lower(), p.prior.lower())}
        unknown = [n for n in wanted if n not in known]
        if unknown or not keep:
            valid = ", ".join(dict.fromkeys(p.prior for p in self.priors))
            raise ValueError(f"--only: no prior entry named {', '.join(unknown) or '(none)'} in this config; "
                             f"valid: {valid}")
        return self.replace(priors=keep)


def bundled_config(name: str = "default") -> Path:
    """Path of a bundled suite: ``default`` (pnp/configs/compare_default.yaml) or ``tiny``."""
    p = _CONFIG_DIR / f"compare_{name}.yaml"
    if not p.is_file():
        raise ValueError(f"no bundled compare config {name!r}; valid: default, tiny (or give a YAML path)")
    return p


def suite_problem(image: str, kernel: str, noise: float, *, size: int | None, gray: bool, boundary: str,
                  seed: int) -> Any:
    """The deblurring problem of one cell (or of the tuning image)."""
    from problems import ProblemSpec

    return ProblemSpec(image=image, size=size, gray=gray, kernel=kernel, boundary=boundary, sigma=noise,
                       seed=seed).build()
