"""The ``stablepnp solve`` job as a Python function: spec → problem → prior → algorithm → record.

A job is described by a :class:`SolveConfig` with three sections, each a frozen dataclass
validated strictly (an unknown key is a one-line ``ValueError`` listing the valid keys):

* ``problem`` -- a :class:`problems.ProblemSpec` (image, operator, kernel, noise, seed);
* ``solver`` -- a :class:`SolverSpec` (prior, weight, algorithm, step, stopping rule);
* ``output`` -- an :class:`OutputSpec` (output folder, JSON record, figure on/off).

:func:`solve` runs the job: it simulates the problem, builds the prior and the algorithm
(which refuses a step above its convergence bound unless ``unsafe``), prints the
assumption verdict and a short table, writes the figure and the JSON record, and returns the
record (a JSON-serialisable ``dict``).

Examples
--------
>>> import tempfile
>>> from pnp.solve import SolveConfig, solve
>>> cfg = SolveConfig.from_dict({"problem": {"size": 32}, "solver": {"max_iter": 20},
...                              "output": {"dir": tempfile.mkdtemp(), "figure": False}})
>>> record = solve(cfg, quiet=True)
>>> record["psnr"] > record["psnr_observed"]
True
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, TextIO

import torch

from problems import ProblemSpec, load_yaml_mapping

__all__ = [
    "SolverSpec",
    "OutputSpec",
    "SolveConfig",
    "PRIOR_NAMES",
    "SHIPPED_PRIORS",
    "shipped_model",
    "DEFAULT_LAM",
    "LAM_NOISE_EXPONENT",
    "CHECKPOINT_SUFFIXES",
    "default_lam",
    "build_prior",
    "build_algorithm",
    "solve",
    "format_table",
    "verdict_line",
    "diagnostics_line",
    "diagnostics_record",
    "solve_batch",
    "format_batch_table",
]

#: Classical priors known by name (anything else must be a checkpoint path).
PRIOR_NAMES: tuple[str, ...] = ("tv", "wavelet", "tikhonov", "bm3d")

#: Short names of the shipped learned denoisers -> model name in ``priors/weights/<name>.pt``
#: (loaded by ``priors.load_pretrained``); any name of ``priors.pretrained_names()`` is accepted too.
SHIPPED_PRIORS: dict[str, str] = {"averaged": "averaged_gray", "dncnn": "dncnn_gray", "ridge": "ridge_gray"}

#: Denoiser level used by default with a shipped denoiser in PnP, as a multiple of the noise level
#: (capped at the top of the trained range; below its floor the denoiser runs relaxed, see
#: ``priors.denoiser_at_level``). Tuned for PnP-PGD deblurring on the held-out image ``motorcycle``
#: by the default comparison suite (``stablepnp compare pnp/configs/compare_default.yaml``,
#: gaussian:1.6, 100 iterations; ``scripts/tune_solve_default.py`` runs the same tuner alone):
#: averaged_gray's best level was 0.00158 at noise 0.01 and 0.00474 at noise 0.03 -- 0.158 x noise
#: both times, i.e. the floor 5/255 relaxed to strength 0.08 / 0.24 (at full strength the prior
#: over-smooths: 22.0 dB against 24.4). Not an early-stopping effect: with that level PnP-PGD
#: reaches 24.38 dB at iteration 100 and 24.33 at 300 (residual 3.5e-5, still falling).
PNP_SIGMA_SCALE: dict[str, float] = {"averaged_gray": 0.16}

#: File suffixes read as learned-denoiser checkpoints by ``priors.load_checkpoint``.
CHECKPOINT_SUFFIXES: tuple[str, ...] = (".pt", ".pth", ".ckpt")

#: Default regularisation weight per classical prior *at the reference noise level* 0.01, for
#: the fidelity ½‖Ax − y‖² (:func:`default_lam` scales it with the noise level). Chosen by a
#: sweep on the default job (camera, gaussian:1.6 blur, PGD to tol 1e-5): at noise 0.01, TV with
#: lam 1e-3 gives 28.2 dB / SSIM 0.82 from a 24.7 dB / 0.72 observation (256x256).
DEFAULT_LAM: dict[str, float] = {"tv": 1e-3, "wavelet": 2e-3, "tikhonov": 1e-2}
#: Exponent of the noise-level scaling in :func:`default_lam` (fitted on noise 0.01, 0.03, 0.05).
LAM_NOISE_EXPONENT = 1.5
_REFERENCE_NOISE = 0.01

_ALGORITHM_NAMES: tuple[str, ...] = ("pgd", "fista", "admm", "drs", "hqs", "pdhg")
_ACCELERATIONS: tuple[str, ...] = ("auto", "anderson", "none")  # pnp.acceleration.ACCELERATIONS


# ============================================================================ specs
@dataclass(frozen=True)
class SolverSpec:
    """The ``solver:`` section of a solve config.

    Parameters
    ----------
    prior : str
        ``"tv"``, ``"wavelet"`` (orthonormal db4, 3 levels, l1 on details), ``"tikhonov"``
        (gradient-l2, ``½‖∇x‖²``), ``"bm3d"`` (Plug-and-Play, needs the ``bm3d`` extra),
        ``"ridge"`` (default: the shipped convex ridge regularizer ``ridge_gray``, solved as the
        smooth convex problem ``1/2 ||Ax - y||^2 + lam R_mu(x)``; with ``denoiser_sigma`` its
        certified one-step denoiser runs in PnP instead), ``"averaged"`` / ``"dncnn"`` (the
        shipped learned denoisers ``averaged_gray`` / ``dncnn_gray``, see :data:`SHIPPED_PRIORS`)
        or any name of ``priors.pretrained_names()`` (Plug-and-Play), or the path of a
        learned-denoiser checkpoint (``.pt``) read by ``priors.load_checkpoint``.
    lam : float or None
        Regularisation weight (> 0). ``None``: for a classical prior, :func:`default_lam`
        (scaled with the noise level); for a denoiser prior, the denoiser runs at the fixed
        level ``denoiser_sigma`` instead (``lam`` and ``denoiser_sigma`` are exclusive).
    denoiser_sigma : float or None
        Noise level handed to a denoiser prior (bm3d or checkpoint). ``None``: the checkpoint's
        training level when it records one, else the problem's noise level.
    algorithm : {"pgd", "fista", "admm", "drs", "hqs", "pdhg"}
        Solver; see :mod:`pnp.algorithms`.
    step : float or None
        Step size; ``None`` chooses it from ‖A‖ as the algorithm's theory says. A step above
        the convergence bound is refused unless ``unsafe``.
    relaxation : float
        Krasnosel'skii-Mann relaxation (1.0 = none).
    max_iter : int
        Iteration cap (>= 1).
    tol : float
        Relative fixed-point residual at which the run stops as converged (>= 0; 0 disables it).
    time_limit : float or None
        Wall-clock limit of the iteration loop in seconds.
    unsafe : bool
        Run settings outside the convergence bounds instead of refusing them (flagged).
    accelerate : {"auto", "anderson", "none"}
        Stepping policy (:mod:`pnp.acceleration`). ``"auto"``: safeguarded type-I Anderson
        acceleration wherever it keeps the plain run's convergence theorem (PGD, HQS, DRS, ADMM
        with a "guaranteed" verdict), plain iterations elsewhere. ``"anderson"``: required; refused
        where the safeguard cannot keep a theorem (FISTA, PDHG always; a run without a guarantee
        unless ``unsafe``, which then runs it flagged). ``"none"``: plain iterations.

    Examples
    --------
    >>> SolverSpec.from_dict({"prior": "wavelet", "max_iter": 50}).algorithm
    'pgd'
    """

    prior: str = "ridge"
    lam: float | None = None
    denoiser_sigma: float | None = None
    algorithm: str = "pgd"
    step: float | None = None
    relaxation: float = 1.0
    max_iter: int = 1000
    tol: float = 1e-5
    time_limit: float | None = None
    unsafe: bool = False
    accelerate: str = "auto"

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        prior = _field_str(self.prior, "prior", "solver")
        if prior.strip().lower() in PRIOR_NAMES or _is_shipped_name(prior.strip()):
            prior = prior.strip().lower() if prior.strip().lower() in (*PRIOR_NAMES, *SHIPPED_PRIORS) else prior.strip()
        elif not _is_checkpoint(prior):
            raise ValueError(
                f"solver field 'prior' must be one of {', '.join((*PRIOR_NAMES, *SHIPPED_PRIORS))}, a shipped model "
                f"name, or a checkpoint path ending in {'/'.join(CHECKPOINT_SUFFIXES)}, got {prior!r}"
            )
        set_("prior", prior)
        set_("lam", _field_float(self.lam, "lam", "solver", positive=True, optional=True))
        set_("denoiser_sigma", _field_float(self.denoiser_sigma, "denoiser_sigma", "solver", positive=True,
                                            optional=True))
        if self.denoiser_sigma is not None and not self.is_denoiser:
            raise ValueError(f"solver field 'denoiser_sigma' applies to bm3d, a learned or a checkpoint prior, not "
                             f"{self.prior!r}; use 'lam' for a classical prior")
        if self.lam is not None and self.denoiser_sigma is not None:
            raise ValueError("solver fields 'lam' and 'denoiser_sigma' are exclusive for a denoiser prior; "
                             "give one of them")
        algorithm = _field_str(self.algorithm, "algorithm", "solver").strip().lower()
        if algorithm not in _ALGORITHM_NAMES:
            raise ValueError(f"solver field 'algorithm' must be one of {', '.join(_ALGORITHM_NAMES)}, "
                             f"got {self.algorithm!r}")
        set_("algorithm", algorithm)
        set_("step", _field_float(self.step, "step", "solver", positive=True, optional=True))
        set_("relaxation", _field_float(self.relaxation, "relaxation", "solver", positive=True))
        set_("max_iter", _field_int(self.max_iter, "max_iter", "solver", minimum=1))
        set_("tol", _field_float(self.tol, "tol", "solver", positive=False))
        set_("time_limit", _field_float(self.time_limit, "time_limit", "solver", positive=True, optional=True))
        if not isinstance(self.unsafe, bool):
            raise ValueError(f"solver field 'unsafe' must be true or false, got {self.unsafe!r}")
        accelerate = _field_str(self.accelerate, "accelerate", "solver").strip().lower()
        if accelerate not in _ACCELERATIONS:
            raise ValueError(f"solver field 'accelerate' must be one of {', '.join(_ACCELERATIONS)}, "
                             f"got {self.accelerate!r}")
        set_("accelerate", accelerate)

    @property
    def is_denoiser(self) -> bool:
        """True for a Plug-and-Play denoiser prior (bm3d, a shipped model or a checkpoint)."""
        return self.prior == "bm3d" or self.is_shipped or self.is_checkpoint

    @property
    def is_shipped(self) -> bool:
        """True when ``prior`` names a shipped learned denoiser (``averaged``, ``dncnn``, ...)."""
        return self.prior not in PRIOR_NAMES and not _is_checkpoint(self.prior)

    @property
    def is_checkpoint(self) -> bool:
        """True when ``prior`` is a checkpoint path."""
        return self.prior not in PRIOR_NAMES and _is_checkpoint(self.prior)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The valid keys, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "solver spec") -> SolverSpec:
        """Build from a mapping; unknown keys are refused with the list of valid keys."""
        return _strict_from_dict(cls, data, where)

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary of all fields."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class OutputSpec:
    """The ``output:`` section of a solve config.

    Parameters
    ----------
    dir : str
        Folder for the figure and the reconstruction (created if missing).
    json : str or None
        Path of the JSON record; ``None`` writes none.
    figure : bool
        Write the PNG figure (observed / reconstruction / truth / residual).

    Examples
    --------
    >>> OutputSpec.from_dict({"dir": "results", "json": "results/run.json"}).figure
    True
    """

    dir: str = "stablepnp_out"
    json: str | None = None
    figure: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "dir", _field_str(self.dir, "dir", "output"))
        if not self.dir.strip():
            raise ValueError("output field 'dir' must not be empty; give a folder path")
        if self.json is not None:
            object.__setattr__(self, "json", _field_str(self.json, "json", "output"))
        if not isinstance(self.figure, bool):
            raise ValueError(f"output field 'figure' must be true or false, got {self.figure!r}")

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The valid keys, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "output spec") -> OutputSpec:
        """Build from a mapping; unknown keys are refused with the list of valid keys."""
        return _strict_from_dict(cls, data, where)

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary of all fields."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SolveConfig:
    """A whole solve job: ``problem``, ``solver`` and ``output`` sections.

    Examples
    --------
    >>> cfg = SolveConfig.from_dict({"problem": {"image": "astronaut"}, "solver": {"prior": "wavelet"}})
    >>> cfg.problem.image, cfg.solver.prior, cfg.output.dir
    ('astronaut', 'wavelet', 'stablepnp_out')
    >>> cfg.updated(solver={"lam": 0.01}).solver.lam
    0.01
    """

    problem: ProblemSpec = field(default_factory=ProblemSpec)
    solver: SolverSpec = field(default_factory=SolverSpec)
    output: OutputSpec = field(default_factory=OutputSpec)

    SECTIONS = ("problem", "solver", "output")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "solve config") -> SolveConfig:
        """Build from a mapping with (some of) the sections ``problem``, ``solver``, ``output``."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where} must be a mapping of sections, got {type(data).__name__}")
        for key in data:
            if key not in cls.SECTIONS:
                raise ValueError(f"unknown key {str(key)!r} at the top level of {where}; "
                                 f"valid keys: {', '.join(cls.SECTIONS)}")
        sections = {}
        for name in cls.SECTIONS:
            section = data.get(name)
            sections[name] = {} if section is None else section
        return cls(
            problem=ProblemSpec.from_dict(sections["problem"], where=f"section 'problem' of {where}"),
            solver=SolverSpec.from_dict(sections["solver"], where=f"section 'solver' of {where}"),
            output=OutputSpec.from_dict(sections["output"], where=f"section 'output' of {where}"),
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> SolveConfig:
        """Read a config file (see ``pnp/configs/solve_default.yaml`` for a complete example)."""
        return cls.from_dict(load_yaml_mapping(path), where=f"'{path}'")

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dictionary (YAML/JSON serialisable)."""
        return {"problem": self.problem.to_dict(), "solver": self.solver.to_dict(), "output": self.output.to_dict()}

    def updated(
        self,
        *,
        problem: Mapping[str, Any] | None = None,
        solver: Mapping[str, Any] | None = None,
        output: Mapping[str, Any] | None = None,
        where: str = "the command-line options",
    ) -> SolveConfig:
        """A copy with some fields of each section replaced (validated like :meth:`from_dict`)."""
        cur = self.to_dict()
        return SolveConfig.from_dict(
            {
                "problem": {**cur["problem"], **dict(problem or {})},
                "solver": {**cur["solver"], **dict(solver or {})},
                "output": {**cur["output"], **dict(output or {})},
            },
            where=where,
        )


# ============================================================================ building blocks
def default_lam(prior: str, noise_sigma: float) -> float:
    """Default weight of a classical prior for a given Gaussian noise level.

    ``DEFAULT_LAM[prior] * (max(noise_sigma, 0.001) / 0.01) ** 1.5``. The optimal weight grows
    faster than the noise level and slower than its square (the MAP scaling): on the cameraman
    deblurring job at 128x128 the best weights at noise 0.01 / 0.03 / 0.05 were about
    TV 0.001 / 0.004 / 0.012, wavelet 0.002 / 0.01 / 0.025, gradient-Tikhonov 0.01 / 0.04 / 0.1,
    which the exponent 1.5 follows within the flat part of each PSNR curve. The floor of 0.001
    keeps a small weight for (nearly) noiseless data.

    Examples
    --------
    >>> default_lam("tv", 0.01)
    0.001
    """
    if prior not in DEFAULT_LAM:
        raise ValueError(f"no default weight for prior {prior!r}; pass lam explicitly")
    scale = (max(float(noise_sigma), 0.001) / _REFERENCE_NOISE) ** LAM_NOISE_EXPONENT
    return DEFAULT_LAM[prior] * scale


#: A given step times L = Lip(∇f) must lie in this range: below it an iteration barely moves and
#: the run stops at once as "converged"; above it the prox steps of the splittings overflow.
STEP_RANGE: tuple[float, float] = (1e-6, 1e6)


def check_step_range(step: float | None, L: float | None) -> None:
    """Refuse a given ``step`` whose product with ``L`` lies outside :data:`STEP_RANGE`.

    Examples
    --------
    >>> check_step_range(1e-300, 1.0)
    Traceback (most recent call last):
    ...
    ValueError: solver field 'step' (--step) = 1e-300 is below 1e-06/L = 1e-06 (L = 1): each iteration would barely move the iterate and the run would stop at once as 'converged'; use a step of at least 1e-06 or omit --step for the algorithm's default
    """
    if step is None or L is None or not (math.isfinite(L) and L > 0):
        return
    lo, hi = STEP_RANGE
    if step * L < lo:
        raise ValueError(f"solver field 'step' (--step) = {step:g} is below {lo:g}/L = {lo / L:g} (L = {L:g}): each "
                         "iteration would barely move the iterate and the run would stop at once as 'converged'; use a "
                         f"step of at least {lo / L:g} or omit --step for the algorithm's default")
    if step * L > hi:
        raise ValueError(f"solver field 'step' (--step) = {step:g} is above {hi:g}/L = {hi / L:g} (L = {L:g}): the "
                         f"prox steps overflow the arithmetic; use a step of at most {hi / L:g} or omit --step for the "
                         "algorithm's default")


#: Smallest Krasnosel'skii-Mann relaxation accepted: below it an iteration barely moves.
MIN_RELAXATION = 1e-6


def check_solver_ranges(spec: SolverSpec) -> None:
    """Refuse settings that would end a run at once with a meaningless "converged" (tiny relaxation, tol >= 1).

    Examples
    --------
    >>> check_solver_ranges(SolverSpec(prior="tv", tol=2.0))
    Traceback (most recent call last):
    ...
    ValueError: solver field 'tol' (--tol) = 2 is >= 1: a relative residual below 1 holds at the first iteration, so the run would stop at once as 'converged'; use a tol below 1 (default 1e-05)
    """
    if spec.relaxation < MIN_RELAXATION:
        raise ValueError(f"solver field 'relaxation' (--relaxation) = {spec.relaxation:g} is below {MIN_RELAXATION:g}: "
                         "each iteration would barely move the iterate and the run would stop at once as 'converged'; "
                         "use a relaxation in (0, 1/alpha), default 1")
    if spec.tol >= 1.0:
        raise ValueError(f"solver field 'tol' (--tol) = {spec.tol:g} is >= 1: a relative residual below 1 holds at the "
                         "first iteration, so the run would stop at once as 'converged'; use a tol below 1 "
                         f"(default {SolverSpec().tol:g})")


def _writable_folder(path: Path, what: str) -> None:
    """Refuse ``path`` as an output folder when it is a file or nothing can be created there.

    The nearest existing ancestor is probed with a temporary file (permission bits alone do not
    tell: root ignores them, read-only mounts do not show in them); nothing is created at ``path``.
    """
    import tempfile

    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} '{path}' exists and is not a folder; give a folder path or remove the file")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"{what} '{path}' cannot be created: '{probe}' is a file, not a folder; give another path")
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".stablepnp_probe_"):
            pass
    except OSError as exc:
        raise ValueError(f"{what} '{path}' is not writable (no file can be created in '{probe}': "
                         f"{exc.strerror or type(exc).__name__}); choose a writable folder") from None


def check_output_paths(dir: str | Path | None, json_path: str | Path | None) -> None:
    """Refuse unwritable output paths before any work (``--out`` a file or read-only, ``--json`` a folder ...).

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "a_file"); open(f, "w").close()
    >>> check_output_paths(f, None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: output field 'dir' (--out) '...a_file' exists and is not a folder; give a folder path or remove the file
    """
    if dir is not None:
        _writable_folder(Path(dir).expanduser(), "output field 'dir' (--out)")
    if json_path is not None:
        jp = Path(json_path).expanduser()
        what = "output field 'json' (--json)"
        if jp.is_dir():
            raise ValueError(f"{what} '{jp}' is a folder; give a file path such as '{jp / 'run.json'}'")
        if jp.exists():
            try:
                with open(jp, "a", encoding="utf-8"):
                    pass
            except OSError as exc:
                raise ValueError(f"{what} '{jp}' is not writable ({exc.strerror or type(exc).__name__}); "
                                 "choose another file") from None
        else:
            _writable_folder(jp.parent, what)


#: Noise levels above this overflow the simulated observation in float32 arithmetic.
MAX_NOISE = 1e30

#: Image-sized float32 arrays a solve holds at once (truth, observation, iterates, gradients, FFT
#: buffers in complex64, the TV dual and its work arrays, the figure): a generous count.
SOLVE_ARRAYS = 48


def check_solve_memory(size: int, channels: int) -> None:
    """Refuse ``--size`` when a solve at that size would not fit in memory (estimated, nothing allocated).

    Examples
    --------
    >>> check_solve_memory(100000, 1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: problem field 'size' (--size) 100000 (100000 x 100000, 1 channel) needs about ... GiB of memory, above the limit of ... GiB (80 % of the available memory); choose a smaller --size
    """
    from problems.images import check_memory

    check_memory(float(size) * size * channels * 4 * SOLVE_ARRAYS,
                 f"problem field 'size' (--size) {size} ({size} x {size}, {channels} channel{'s' if channels > 1 else ''})",
                 "choose a smaller --size")


def _noise_warnings(spec: ProblemSpec, prior: Any, prior_info: Mapping[str, Any], step: float) -> list[str]:
    """Warnings about a noise level far from the image range or the denoiser's trained range, and clamped levels."""
    from priors import trained_sigma_range

    out: list[str] = []
    noise = _noise_level(spec)
    if noise > 1.0:
        out.append(f"noise level {noise:g} exceeds the [0, 1] range of the image: the observation is mostly noise")
    denoiser = getattr(prior, "denoiser", None)
    rng = trained_sigma_range(denoiser) if denoiser is not None else None
    if rng is None:
        return out
    lo, hi = rng
    if noise > 2.0 * hi:
        out.append(f"noise level {noise:g} is {noise / hi:.3g} x the top of the denoiser's trained range "
                   f"[{lo:.4g}, {hi:.4g}]: the prior was not trained for this")
    source = str(prior_info.get("lam_source") or "")
    fn = getattr(prior, "sigma_eff", None)
    level = float(fn(step)) if callable(fn) else None
    if "capped at the top" in source or (level is not None and level > hi * 1.001):
        shown = f"{level:.4g}" if level is not None else "the requested level"
        out.append(f"denoiser level {shown} clamped to the top of its trained range {hi:.4g} "
                   "(the certificate holds there; the denoising is weaker than asked)")
    return out


def _noise_level(spec: ProblemSpec) -> float:
    """Gaussian-equivalent noise std of the problem (Poisson: sqrt(gain * mean intensity ≈ 0.5))."""
    if spec.noise_model == "gaussian":
        return spec.sigma
    poisson = math.sqrt(spec.gain * 0.5)
    if spec.noise_model == "poisson":
        return poisson
    return math.hypot(poisson, spec.sigma)


def _load_checkpoint(path: Path, channels: int | None) -> Any:
    """``priors.load_checkpoint`` (priors/pretrained.py), with a one-line error if absent."""
    import priors

    loader = getattr(priors, "load_checkpoint", None)
    if loader is None:
        try:
            from priors.pretrained import load_checkpoint as loader
        except ModuleNotFoundError as exc:
            if exc.name != "priors.pretrained":
                raise
            raise ImportError(
                f"cannot load checkpoint '{path}': this installation has no priors.load_checkpoint "
                "(priors/pretrained.py); use a classical prior (--prior tv) or update stable-pnp"
            ) from None
    return loader(path) if channels is None else loader(path, in_channels=channels)


def shipped_model(name: str) -> tuple[str, Path]:
    """The shipped model file of a prior name: ``(model name, priors/weights/<model name>.pt)``.

    ``name`` is a short name of :data:`SHIPPED_PRIORS` (``averaged`` -> ``averaged_gray``) or a
    name of ``priors.pretrained_names()``.

    Raises
    ------
    FileNotFoundError
        The model file is not installed; the one-line message names the ``stablepnp train``
        command that produces it.

    Examples
    --------
    >>> shipped_model("averaged")[0]  # doctest: +SKIP
    'averaged_gray'
    """
    import priors.pretrained as pretrained

    model = SHIPPED_PRIORS.get(name.lower(), name)
    weights_dir = Path(pretrained.WEIGHTS_DIR)
    if model not in pretrained.pretrained_names():
        config = Path(pretrained.__file__).with_name("configs") / f"{model}.yaml"
        how = (f"produce it with `stablepnp train priors/configs/{model}.yaml`" if config.is_file()
               else "train a model with `stablepnp train CONFIG.yaml`")
        raise FileNotFoundError(
            f"prior {name!r}: the shipped model {model!r} is not installed (no {weights_dir / (model + '.pt')}); "
            f"{how} and copy the run's model.pt to that path, or pass a checkpoint with --prior PATH.pt"
        )
    return model, weights_dir / f"{model}.pt"


def _check_checkpoint_path(path: Path) -> None:
    """A checkpoint path must name an existing file (a folder is named as one)."""
    if path.is_dir():
        raise ValueError(f"checkpoint path '{path}' is a folder; pass the .pt file inside it to --prior")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file '{path}' does not exist; pass an existing .pt file to --prior")


def _is_shipped_name(name: str) -> bool:
    """True for a short shipped name, a configured shipped model name, or an installed pretrained name."""
    if name.lower() in SHIPPED_PRIORS or name in SHIPPED_PRIORS.values():
        return True
    if not name or _is_checkpoint(name) or "/" in name or "\\" in name:
        return False
    try:
        from priors.pretrained import pretrained_names
    except ImportError:
        return False
    return name in pretrained_names()


def _checkpoint_sigma(model: Any, noise: float) -> tuple[float | None, str]:
    """Default denoiser level for a loaded checkpoint, and where it comes from.

    A single training level recorded with the model wins; otherwise the problem's noise level,
    capped at the top of the model's trained range ``config.sigma_range`` when it has one (a
    denoiser is not trained, hence not reliable, above it); below the range the denoiser is
    relaxed (:func:`priors.denoiser_at_level`).
    """
    info = getattr(model, "training_info", None)
    for obj in (model, info if isinstance(info, Mapping) else None):
        if obj is None:
            continue
        for name in ("training_sigma", "train_sigma", "sigma_train"):
            value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                return float(value), "checkpoint training level"
    from priors import trained_sigma_range

    rng = trained_sigma_range(model)
    if noise > 0 and rng is not None:
        lo, hi = rng
        if noise > hi:
            return hi, f"noise level {noise:g} capped at the top of the trained range [{lo:.4g}, {hi:.4g}]"
        if noise < lo:
            return noise, f"below the trained range [{lo:.4g}, {hi:.4g}]: D({lo:.4g}) relaxed with strength {noise / lo:.3g}"
    return (noise if noise > 0 else None), "noise level"


def _ridge_prior(model: Any, lam: float | None, noise: float, info: dict) -> tuple[Any, dict]:
    """A convex ridge regularizer as the smooth variational prior ``lam R_mu`` (see priors.ridge)."""
    from priors.ridge import RidgePrior, ridge_weights

    dlam, mu, source = ridge_weights(model, noise, info.get("model", ""))
    if lam is not None:
        source = "given (mu: " + source + ")"
    info.update(lam=dlam if lam is None else lam, mu=mu, lam_source=source, kind="convex ridge regularizer")
    return RidgePrior(model, weight=info["lam"], mu=mu), info


def build_prior(spec: SolverSpec, problem_spec: ProblemSpec, *, channels: int | None = None) -> tuple[Any, dict]:
    """The prior named by ``spec`` and a description of its parameters.

    Parameters
    ----------
    spec : SolverSpec
        Prior name or checkpoint path, ``lam`` / ``denoiser_sigma``.
    problem_spec : ProblemSpec
        Supplies the noise level for default weights / denoiser levels.
    channels : int, optional
        Image channel count, checked against a checkpoint's ``in_channels``.

    Returns
    -------
    prior : priors.Prior
        A classical prior scaled by its weight, or a :class:`priors.DenoiserPrior`.
    info : dict
        ``name``, ``lam`` (None for a fixed-sigma denoiser until the step is known),
        ``denoiser_sigma``, ``lam_source`` and, for a checkpoint, ``checkpoint``.

    Raises
    ------
    ValueError, FileNotFoundError, ImportError
        Bad weights, a missing checkpoint, or a missing optional package (bm3d extra).
    """
    from priors import TV, BM3DDenoiser, DenoiserPrior, Tikhonov, Wavelet, denoiser_at_level, trained_sigma_range

    noise = _noise_level(problem_spec)
    info: dict[str, Any] = {"name": spec.prior, "lam": spec.lam, "denoiser_sigma": None, "lam_source": "given"}
    if not spec.is_denoiser:
        lam = spec.lam
        if lam is None:
            lam = default_lam(spec.prior, noise)
            info["lam_source"] = f"default for noise {noise:g}"
        info["lam"] = lam
        # warm start: the dual of the previous TV prox seeds the next (same result, ~1.7x faster in PGD)
        base = {"tv": lambda: TV(warm_start=True), "wavelet": lambda: Wavelet(),
                "tikhonov": lambda: Tikhonov(gradient=True)}[spec.prior]()
        return lam * base, info

    if spec.prior == "bm3d":
        denoiser = BM3DDenoiser()
        sigma_default, source = noise, "noise level"
    elif spec.is_shipped:
        from priors.pretrained import load_pretrained

        model_name, path = shipped_model(spec.prior)
        denoiser = load_pretrained(model_name)
        info["checkpoint"] = str(path)
        info["model"] = model_name
    else:
        path = Path(spec.prior).expanduser()
        _check_checkpoint_path(path)
        denoiser = _load_checkpoint(path, channels)
        info["checkpoint"] = str(path)
        info["name"] = f"checkpoint:{path.name}"
    if spec.prior != "bm3d":
        if isinstance(denoiser, torch.nn.Module):
            denoiser.eval()
        expected = getattr(getattr(denoiser, "config", None), "in_channels", None)
        if callable(getattr(denoiser, "cost", None)) and spec.denoiser_sigma is None and expected in (1, channels):
            return _ridge_prior(denoiser, spec.lam, noise, info)  # (a grey ridge prior sums over channels)
        if channels is not None and isinstance(expected, int) and expected != channels:
            if expected != 1:
                raise ValueError(f"checkpoint '{path.name}' expects {expected}-channel images but the problem has "
                                 f"{channels}; use --gray")
            from priors.channelwise import ChannelwiseDenoiser

            # a certified grey denoiser on each channel keeps its certificate (priors/channelwise.py)
            denoiser = ChannelwiseDenoiser(denoiser, channels=channels)
            info["channelwise"] = True
        scale = PNP_SIGMA_SCALE.get(info.get("model", ""), 1.0)
        sigma_default, source = _checkpoint_sigma(denoiser, noise * scale)
        if scale != 1.0:
            source = f"{scale:g} x the noise level, tuned for PnP; {source}"
    if spec.lam is not None:
        return DenoiserPrior(denoiser, lam=spec.lam), info
    sigma = spec.denoiser_sigma
    if sigma is None:
        if sigma_default is None or not sigma_default > 0:
            raise ValueError("the problem is noiseless, so the denoiser level cannot default to the noise level; "
                             "pass --denoiser-sigma or --lam")
        sigma = sigma_default
        info["lam_source"] = f"implied by denoiser sigma ({source})"
    else:
        info["lam_source"] = "implied by denoiser sigma (given)"
    info["denoiser_sigma"] = sigma
    rng = trained_sigma_range(denoiser)
    if rng is not None and sigma < rng[0]:  # below the floor: relaxed (above the range: the model warns)
        prior = denoiser_at_level(denoiser, sigma, rng)
    else:
        prior = DenoiserPrior(denoiser, sigma=sigma)
    info["denoiser_strength"] = prior.strength
    return prior, info


def build_algorithm(spec: SolverSpec, problem: Any, prior: Any) -> Any:
    """Instantiate the algorithm of ``spec`` (refuses out-of-bound steps unless ``spec.unsafe``)."""
    from pnp import ALGORITHMS

    from pnp.acceleration import SUPPORTED_ALGORITHMS, refusal

    cls = ALGORITHMS[spec.algorithm]
    extra: dict[str, Any] = {}
    if cls.name in SUPPORTED_ALGORITHMS:
        extra["accelerate"] = spec.accelerate
    elif spec.accelerate == "anderson":  # FISTA, PDHG: no accelerated form, --unsafe or not
        raise ValueError(refusal(cls.name, None))
    try:
        return cls(problem, prior, step=spec.step, relaxation=spec.relaxation, unsafe=spec.unsafe, **extra)
    except ValueError as exc:
        # The algorithms speak Python ("unsafe=True"); the config and the CLI spell it differently.
        msg = str(exc).replace("pass unsafe=True to run anyway", "pass --unsafe (or unsafe: true) to run anyway")
        raise ValueError(msg) from None


# ============================================================================ reporting
def _short_theorem(theorem: str) -> str:
    """The theorem's name without its citations: drop parentheses that cite a year, keep the first clause."""
    text = re.sub(r"\(((1[89]|20)\d\d)\)", r"\1", theorem)  # "Appl. 425 (2015)" -> "Appl. 425 2015"
    text = re.sub(r"\s*\([^()]*\b(1[89]|20)\d\d\b[^()]*\)", "", text)
    text = text.split(";")[0].split(", i.e.")[0].strip()
    if ": composition" in text:  # "PnP forward-backward: composition of averaged maps and ..."
        text = text.split(":", 1)[0]
    elif text.startswith("composition of"):  # PnP-HQS: the composition is the theorem
        text = text.split(" and Krasnosel", 1)[0]
    return text if len(text) <= 100 else text[:97].rsplit(" ", 1)[0] + " ..."


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """Field ``name`` of an AssumptionReport / Hypothesis or of its ``to_dict()`` form."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _num(x: float) -> str:
    """``x`` with 4 significant digits, keeping a decimal point (``1.0``, ``0.9324``, ``2.5e-05``)."""
    text = f"{x:.4g}"
    return text if any(c in text for c in ".einf") else text + ".0"


def _guarantee_details(report: Any) -> list[str]:
    """The numbers behind a "guaranteed" verdict, read from the report's fields.

    ``alpha`` (the composed averagedness constant of the iteration map), the checked step
    bound (hypothesis ``step < 2/L`` or ``step <= 1/L`` with ``params['step']`` and
    ``params['L']``), the relaxation when it is not 1 (with ``relaxation_range``), and the
    PDHG product ``tau sigma ‖K‖²``.
    """
    algorithm = str(_get(report, "algorithm") or "").upper()
    params = _get(report, "params") or {}
    hypotheses = _get(report, "hypotheses") or ()
    parts: list[str] = []
    alpha = _get(report, "alpha")
    if alpha is not None:
        if algorithm in ("PGD", "HQS"):
            parts.append(f"averaged composition alpha = {_num(float(alpha))}")
        else:
            parts.append(f"iteration map {_num(float(alpha))}-averaged")
    for hyp in hypotheses:
        name = str(_get(hyp, "name") or "")
        m = re.fullmatch(r"step (<=?) ([12])/L", name)
        if m and _get(hyp, "holds"):
            step, L = params.get("step"), params.get("L")
            if step is None or L is None:
                continue
            l_text = "‖A‖²" if params.get("fidelity") == "L2Fidelity" else "L"
            if float(L) > 0:
                parts.append(f"step {_num(float(step))} {m.group(1)} {m.group(2)}/{l_text} = "
                             f"{_num(float(m.group(2)) / float(L))}")
            else:
                parts.append(f"step {_num(float(step))}, {l_text} = 0 (any step)")
        elif name.startswith("tau * sigma") and _get(hyp, "value") is not None:
            parts.append(f"tau·sigma·‖K‖² = {_num(float(_get(hyp, 'value')))} < 1")
    relaxation = params.get("relaxation")
    rng = _get(report, "relaxation_range")
    if relaxation is not None and abs(float(relaxation) - 1.0) > 1e-12:
        parts.append(f"relaxation {_num(float(relaxation))}"
                     + (f" in (0, {_num(float(rng[1]))})" if rng is not None else ""))
    acceleration = params.get("acceleration")
    if acceleration:  # pnp.acceleration: the safeguard keeps the theorem above
        memory = (params.get("acceleration_parameters") or {}).get("memory")
        parts.append("safeguarded Anderson acceleration" + (f" (m = {memory})" if memory else ""))
    return parts


def verdict_line(report: Any) -> str:
    """One line: the verdict and, when guaranteed, the theorem (short) with its constants; else the reason.

    For a guaranteed run the line names the theorem, the composed averagedness constant and the
    step bound that was checked, e.g. ``guaranteed (PnP forward-backward, averaged composition
    alpha = 0.93, step 1.0 < 2/‖A‖² = 2.0)``. ``report`` is an :class:`pnp.assumptions.AssumptionReport`
    or its ``to_dict()`` form.

    Examples
    --------
    >>> from pnp.assumptions import AssumptionReport, Hypothesis
    >>> r = AssumptionReport("PGD", "guaranteed", "PnP forward-backward: composition of averaged maps",
    ...                      (Hypothesis("step < 2/L", True),), alpha=0.93,
    ...                      params={"step": 1.0, "L": 1.0, "relaxation": 1.0, "fidelity": "L2Fidelity"})
    >>> verdict_line(r)
    'guaranteed (PnP forward-backward, averaged composition alpha = 0.93, step 1.0 < 2/‖A‖² = 2.0)'
    """
    if report is None:
        return "no guarantee: no assumption report"
    verdict = _get(report, "verdict")
    if verdict == "guaranteed":
        theorem = _short_theorem(_get(report, "theorem") or "")
        params = _get(report, "params") or {}
        algorithm = str(_get(report, "algorithm") or "")
        if params.get("prior_kind") == "certified" and theorem and not theorem.startswith("PnP"):
            theorem = f"PnP-{algorithm}: {theorem}" if algorithm else theorem
        parts = ([theorem] if theorem else []) + _guarantee_details(report)
        line = f"{verdict} ({', '.join(parts)})" if parts else str(verdict)
    else:
        reason = _get(report, "reason")
        line = f"{verdict}: {reason}" if reason else str(verdict)
    if _get(report, "unsafe", False):
        line += " [UNSAFE: run outside the convergence bound]"
    return line


def _fmt(x: float | None, spec: str) -> str:
    width = int(re.match(r"\d*", spec).group(0) or 0)
    if x is None:
        return format("-", f">{width}")
    if isinstance(x, float) and not math.isfinite(x):
        return format(str(x), f">{width}")
    return format(x, spec)


def format_table(record: Mapping[str, Any]) -> str:
    """The short human-readable summary printed by ``stablepnp solve``."""
    p = record["problem"]
    shape = record["shape"]
    size = f"{shape[-2]}x{shape[-1]} {'gray' if shape[1] == 1 else 'color'}"
    op = p["operator"]
    if op == "blur":
        op = f"blur {p['kernel']} ({p['boundary']})"
    elif op == "downsampling":
        op = f"downsampling x{p['factor']}"
    elif op == "inpainting":
        op = f"inpainting {p['mask_ratio']:.0%} removed"
    noise = f"{p['noise_model']} noise " + (f"sigma {p['sigma']:g}" if p["noise_model"] == "gaussian"
                                            else f"gain {p['gain']:g}" + (f", sigma {p['sigma']:g}"
                                                                          if p["noise_model"] == "poisson_gaussian"
                                                                          else ""))
    lam = record["lam"]
    strength = record.get("denoiser_strength")
    relaxed = (f": below the trained range, relaxed to strength {strength:.3g}"
               if isinstance(strength, float) and strength < 1.0 else "")
    prior = f"{record['prior']} (lam {_fmt(lam, '.4g')}" + (
        f", denoiser sigma {record['denoiser_sigma']:.4g}{relaxed})" if record.get("denoiser_sigma") else ")")
    gain = record["psnr"] - record["psnr_observed"] if _finite(record["psnr"], record["psnr_observed"]) else None
    lines = [
        f"problem      {p['image']} {size}, {op}, {noise}, seed {p['seed']}",
        f"solver       {record['algorithm'].upper()} with prior {prior}, step {record['step']:.4g}",
        "",
        f"{'':17s}{'PSNR [dB]':>10s}{'SSIM':>9s}",
        f"  {record['observed_label']:<15s}{_fmt(record['psnr_observed'], '10.2f')}{_fmt(record['ssim_observed'], '9.4f')}",
        f"  {'reconstruction':<15s}{_fmt(record['psnr'], '10.2f')}{_fmt(record['ssim'], '9.4f')}"
        + (f"   ({gain:+.2f} dB)" if gain is not None else "")
        + (f"   ({record['status'].upper()}: no reconstruction)" if record.get("failed") else ""),
        "",
        f"iterations   {record['iterations']} ({record['status']}, final residual "
        f"{_fmt(record['final_residual'], '.2e')}, tol {record['tol']:g})" + _acceleration_text(record),
        f"time         {record['seconds']:.2f} s (iterations), {record['seconds_total']:.2f} s (total)",
        f"guarantee    {record['guarantee']['line']}",
    ]
    mono = record.get("monotone") or {}
    if mono.get("checked"):
        lines.append("monotone     objective decreased at every iteration" if mono.get("holds") else
                     f"monotone     WARNING: objective increased at {mono.get('violations')} iteration(s) although "
                     "theory says it decreases (inexact prox or round-off)")
    inexact = record.get("inexact_prox") or {}
    if inexact.get("calls"):
        ratio, missed = inexact.get("max_ratio"), inexact.get("violation")
        lines.append(f"inner prox   {inexact['calls']} solves, {inexact.get('inner_iterations_total', 0)} inner "
                     f"iterations, certified error <= {inexact.get('schedule')}"
                     + (f" (worst bound/schedule {ratio:.2g})" if _finite(ratio) else "")
                     + (f"; MISSED at iteration {missed.get('call')}" if missed else ""))
    for text in record.get("warnings") or []:
        lines.append(f"warning      {text}")
    diag = record.get("diagnostics")
    if diag:
        lines.append(f"diagnostics  {diagnostics_line(diag)}")
    if record.get("figure"):
        lines.append(f"figure       {record['figure']}")
    if diag and diag.get("figure"):
        lines.append(f"diag figure  {diag['figure']}")
    if record.get("json"):
        lines.append(f"record       {record['json']}")
    return "\n".join(lines)


def _acceleration_text(record: Mapping[str, Any]) -> str:
    """``"; Anderson: 30 accepted, 2 refused, 35 map evaluations"`` (empty for a plain run)."""
    acc = record.get("acceleration")
    if not acc:
        return ""
    return (f"; Anderson: {acc.get('accepted', 0)} accepted, {acc.get('rejected', 0)} refused by the safeguard, "
            f"{acc.get('evaluations', 0)} map evaluations")


def diagnostics_line(diag: Mapping[str, Any]) -> str:
    """One line of the convergence diagnostics of a record (``record["diagnostics"]``).

    Examples
    --------
    >>> diagnostics_line({"fixed_point_residual": 1e-4, "relative_fixed_point_residual": 1e-6,
    ...                   "steps_monotone": True, "envelope_holds": None, "local_lipschitz": []})
    'fixed-point residual 1.00e-04 (rel 1.00e-06); steps nonincreasing; envelope n/a; local Lip(D) n/a (no learned denoiser)'
    """
    fpr, rel = diag.get("fixed_point_residual"), diag.get("relative_fixed_point_residual")
    parts = [f"fixed-point residual {_fmt(fpr, '.2e')} (rel {_fmt(rel, '.2e')})"]
    if diag.get("steps_monotone"):
        parts.append("steps nonincreasing")
    else:
        inc = diag.get("max_step_increase")
        parts.append("steps increase" + (f" up to x{inc:.3g}" if _finite(inc) else ""))
    holds = diag.get("envelope_holds")
    if holds is None:
        parts.append("envelope n/a")
    elif holds:
        parts.append(f"envelope holds (a = {_num(float(diag['alpha']))})")
    else:
        parts.append(f"envelope VIOLATED at {diag.get('envelope_violations')} step(s) (a = {_num(float(diag['alpha']))}, "
                     "bound uses the estimated dist(x0, Fix T))")
    lips = [p.get("estimate") for p in diag.get("local_lipschitz") or [] if _finite(p.get("estimate"))]
    if lips:
        parts.append(f"local Lip(D) {min(lips):.4f}..{max(lips):.4f} at {len(lips)} iterate(s)")
    elif diag.get("notes"):
        parts.append("local Lip(D) not computed (" + "; ".join(str(n) for n in diag["notes"]) + ")")
    else:
        parts.append("local Lip(D) n/a (no learned denoiser)")
    return "; ".join(parts)


def diagnostics_record(diag: Any, *, figure: str | Path | None = None) -> dict[str, Any]:
    """Plain-data form of :class:`pnp.convergence.ConvergenceDiagnostics` for the JSON record.

    ``diag.to_dict()`` (step lengths, envelope, fixed-point residual, local Lipschitz
    estimates, theory line, notes) plus ``envelope_holds`` (None when no envelope applies,
    else whether every step length lies below the estimated bound and the steps are
    nonincreasing) and the path of the diagnostics ``figure``.
    """
    d = diag.to_dict()
    d["envelope_holds"] = None if diag.envelope is None else bool(diag.envelope_violations == 0
                                                                   and diag.steps_monotone)
    d["figure"] = None if figure is None else str(figure)
    return d


def _finite(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def _json_safe(obj: Any) -> Any:
    """Replace non-finite floats by None and tensors/paths by plain values (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.Tensor):
        return _json_safe(obj.tolist())
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if hasattr(obj, "to_dict"):
        return _json_safe(obj.to_dict())
    return str(obj)


def _monotone_summary(report: Any) -> dict[str, Any] | None:
    """The objective-monotonicity diagnostic as plain data (None when the run has none)."""
    if report is None:
        return None
    return {
        "checked": bool(getattr(report, "checked", False)),
        "holds": bool(getattr(report, "holds", True)),
        "violations": len(getattr(report, "violations", ()) or ()),
        "reason": getattr(report, "reason", ""),
    }


def _image_label(spec: ProblemSpec) -> str:
    path = Path(spec.image)
    return path.stem if path.suffix else spec.image


# ============================================================================ the job
def solve(
    config: SolveConfig | None = None,
    *,
    quiet: bool = False,
    stream: TextIO | None = None,
    diagnostics: bool = False,
    lipschitz_points: int = 4,
) -> dict[str, Any]:
    """Run one solve job and return its record.

    Parameters
    ----------
    config : SolveConfig, optional
        The job (default: ``SolveConfig()``, the cameraman deblurring job with TV-PGD).
    quiet : bool
        No progress bar and no table.
    stream : TextIO, optional
        Where the table goes (default ``sys.stdout``).
    diagnostics : bool
        Run through :func:`pnp.convergence.run_with_diagnostics` (``accelerate: auto`` then runs the
        plain iteration, whose envelope the diagnostics check): the record gets a
        ``diagnostics`` entry (:func:`diagnostics_record`: final fixed-point residual, envelope
        check, the denoiser's local Lipschitz estimates along the iterates) and, with figures
        on, ``<stem>_diagnostics.png`` is written next to the main figure.
    lipschitz_points : int
        Number of iterates at which a denoiser's local Lipschitz constant is estimated (with
        ``diagnostics``; 0 disables it; classical priors have no denoiser to probe).

    Returns
    -------
    dict
        JSON-serialisable record: ``psnr_observed``, ``ssim_observed``, ``psnr``, ``ssim``,
        ``iterations``, ``converged``, ``status``, ``seconds``, ``step``, ``lam``, ``prior``,
        ``algorithm``, ``guarantee`` (``verdict``, ``theorem``, ``line``, ``report``), the
        config, the residual/PSNR histories and the paths written (``figure``, ``json``,
        ``reconstruction``). ``failed`` is True (``status`` ``"nan"`` or ``"diverged"``) when
        the iteration broke down: ``psnr``/``ssim`` are then None, no reconstruction is
        written, and the caller decides how loudly to fail (the CLI exits with code 1).

    Raises
    ------
    ValueError, TypeError, FileNotFoundError, ImportError
        Bad input, with a one-line message (see :mod:`pnp.cli`).
    """
    config = SolveConfig() if config is None else config
    if not isinstance(config, SolveConfig):
        raise TypeError(f"config must be a SolveConfig, got {type(config).__name__}")
    stream = sys.stdout if stream is None else stream
    t_start = time.perf_counter()
    spec, sspec, ospec = config.problem, config.solver, config.output
    if diagnostics and sspec.accelerate == "auto":
        # the diagnostics check the envelope of the plain averaged iteration: "auto" runs it plain
        # ("anderson" asked explicitly still accelerates; its envelope is then reported n/a)
        sspec = dataclasses.replace(sspec, accelerate="none")

    check_output_paths(ospec.dir, ospec.json)  # before any work
    check_solver_ranges(sspec)
    for name, value in (("sigma", spec.sigma), ("gain", spec.gain if spec.noise_model != "gaussian" else 0.0)):
        if value > MAX_NOISE:
            raise ValueError(f"problem field '{name}' (--noise) = {value:g} is above {MAX_NOISE:g}: the simulated "
                             "observation overflows float32; use a noise level of at most 1 (the image range)")
    if spec.size is not None:  # estimated before anything is allocated
        check_solve_memory(spec.size, 1 if spec.gray else 3)

    torch.manual_seed(spec.seed)
    problem = spec.build()
    prior, prior_info = build_prior(sspec, spec, channels=int(problem.truth.shape[1]))
    if sspec.step is not None:
        lip = getattr(problem.fidelity, "lipschitz_grad", None)
        check_step_range(sspec.step, lip() if callable(lip) else None)
    algorithm = build_algorithm(sspec, problem, prior)
    report = algorithm.check_assumptions()
    if prior_info["lam"] is None and hasattr(prior, "implied_lam"):
        prior_info["lam"] = float(prior.implied_lam(algorithm.step))
    level = prior.sigma_eff(algorithm.step) if callable(getattr(prior, "sigma_eff", None)) else None
    if level is not None and not level <= torch.finfo(torch.float32).max:
        raise ValueError(f"the denoiser level {level:g} (from solver field 'lam' (--lam) or 'denoiser_sigma' "
                         "(--denoiser-sigma)) overflows float32; use a level of at most 1 (the image range)")
    run_warnings = _noise_warnings(spec, prior, prior_info, algorithm.step)
    for text in run_warnings:
        warnings.warn(text, RuntimeWarning, stacklevel=2)

    run_options = dict(max_iter=sspec.max_iter, tol=sspec.tol if sspec.tol > 0 else None,
                       time_limit=sspec.time_limit, progress=not quiet)
    diag = None
    if diagnostics:
        from pnp.convergence import run_with_diagnostics

        result, diag = run_with_diagnostics(algorithm, lipschitz_points=int(lipschitz_points), **run_options)
    else:
        # no autograd bookkeeping in the loop (the diagnostics above need autograd for their probes)
        with torch.inference_mode():
            result = algorithm.run(**run_options)
    x = result.x
    if result.report is not None:  # the run's own verdict: withdrawn when a hypothesis failed while iterating
        report = result.report
    finite = bool(torch.isfinite(x).all())
    status = result.status if finite else "nan"
    # A broken-down run has no reconstruction: its last finite iterate is kept for diagnosis only.
    failed = status in ("nan", "diverged")

    # The observation is scored as an image when it has the image's shape, else through Aᵀy.
    same_shape = tuple(problem.y.shape) == tuple(problem.truth.shape)
    observed = problem.y if same_shape else problem.x0()
    observed_label = "observation" if same_shape else "A^T y"
    small = min(problem.truth.shape[-2:]) < 11  # SSIM's 11x11 window
    psnr_obs = problem.psnr(observed)
    ssim_obs = None if small else problem.ssim(observed)
    psnr_last = problem.psnr(x) if finite else math.nan
    psnr_rec = None if failed else psnr_last
    ssim_rec = None if (small or failed) else problem.ssim(x)

    out_dir = Path(ospec.dir).expanduser()
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{_image_label(spec)}_{sspec.algorithm}_{Path(prior_info['name']).stem}")
    figure_path: Path | None = None
    recon_path: Path | None = None
    if ospec.figure or not failed:
        out_dir.mkdir(parents=True, exist_ok=True)
    if not failed:
        recon_path = out_dir / f"{stem}_reconstruction.npy"
        import numpy as np

        np.save(recon_path, x.detach().cpu().to(torch.float32).numpy()[0])
    if ospec.figure:
        from pnp.figures import solve_figure

        figure_path = solve_figure(
            observed=observed,
            reconstruction=x,
            truth=problem.truth,
            history=result.history,
            path=out_dir / f"{stem}.png",
            title=f"{spec.image}: {sspec.algorithm.upper()} + {prior_info['name']} — {status}",
            observed_label=f"{observed_label} ({psnr_obs:.2f} dB)",
            reconstruction_label=(f"reconstruction ({psnr_rec:.2f} dB)" if not failed
                                  else f"last finite iterate ({status}: not a solution)"),
            tol=sspec.tol if sspec.tol > 0 else None,
        )

    diag_info: dict[str, Any] | None = None
    if diag is not None:
        diag_path: Path | None = None
        if ospec.figure:
            from pnp.convergence import plot_diagnostics

            out_dir.mkdir(parents=True, exist_ok=True)
            label = f"{sspec.algorithm.upper()} + {prior_info['name']}"
            psnr_hist = [float(v) for v in result.history.get("psnr", [])]
            diag_path = plot_diagnostics(
                {label: diag}, out_dir / f"{stem}_diagnostics.png",
                psnr={label: psnr_hist} if psnr_hist else None,
                title=f"{spec.image}: convergence diagnostics of {label} ({status})",
            )
        diag_info = diagnostics_record(diag, figure=diag_path)

    json_path = Path(ospec.json).expanduser() if ospec.json else None
    record: dict[str, Any] = {
        "psnr_observed": psnr_obs,
        "ssim_observed": ssim_obs,
        "psnr": psnr_rec,
        "ssim": ssim_rec,
        "psnr_gain": psnr_rec - psnr_obs if _finite(psnr_rec, psnr_obs) else None,
        "psnr_last_iterate": psnr_last,
        "observed_label": observed_label,
        "iterations": result.iterations,
        "converged": bool(result.converged and not failed),
        "status": status,
        "failed": failed,
        "finite": finite,
        "seconds": result.seconds,
        "seconds_total": 0.0,
        "step": float(algorithm.step),
        "lam": prior_info["lam"],
        "lam_source": prior_info["lam_source"],
        "denoiser_sigma": prior_info["denoiser_sigma"],
        "denoiser_strength": prior_info.get("denoiser_strength"),
        "prior": prior_info["name"],
        "algorithm": sspec.algorithm,
        "tol": sspec.tol,
        "max_iter": sspec.max_iter,
        "final_residual": result.final_residual,
        "unsafe": bool(result.unsafe),
        "guarantee": {
            "verdict": None if report is None else report.verdict,
            "theorem": None if report is None else report.theorem,
            "line": verdict_line(report),
            "report": None if report is None else report.to_dict(),
        },
        "stop_reason": result.diagnostics.get("stop_reason"),
        "accelerate": sspec.accelerate,
        "acceleration": result.diagnostics.get("acceleration"),
        "monotone": _monotone_summary(result.diagnostics.get("monotone")),
        "diagnostics": diag_info,
        "shape": list(problem.truth.shape),
        "problem": spec.to_dict(),
        "solver": sspec.to_dict(),
        "history": {k: list(v) for k, v in result.history.items()
                    if k in ("residual", "psnr", "objective", "anderson", "evaluations", "prox_error_bound",
                             "prox_target", "prox_iterations")},
        "inexact_prox": result.diagnostics.get("inexact_prox"),
        "warnings": run_warnings,
        "figure": None if figure_path is None else str(figure_path),
        "reconstruction": None if recon_path is None else str(recon_path),
        "json": None if json_path is None else str(json_path),
        "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
    }
    record["seconds_total"] = time.perf_counter() - t_start
    record = _json_safe(record)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(record, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    if not quiet:
        print(format_table(record), file=stream, flush=True)
    return record


# ============================================================================ a folder of images
def _batch_prior(spec: SolverSpec) -> str:
    """The ``prior`` argument of :func:`pnp.batch.solve_folder` for a solver spec (missing models refused here)."""
    if spec.is_shipped:
        model, path = shipped_model(spec.prior)
        return spec.prior if spec.prior in SHIPPED_PRIORS else str(path)
    if spec.is_checkpoint:
        path = Path(spec.prior).expanduser()
        _check_checkpoint_path(path)
        return str(path)
    return spec.prior


def _batch_step_factor(step: float | None, files: list[Path], *, kernel: str, boundary: str, size: int | None,
                       gray: bool) -> float:
    """``step * ‖A‖²`` with ‖A‖ computed on the first image's shape (solve_folder takes the step as a multiple of 1/‖A‖²)."""
    if step is None:
        return 1.0
    from operators.blur import Blur
    from operators.kernels import parse_kernel_spec
    from problems import load_image

    shape = tuple(load_image(files[0], size=size, gray=gray).shape)
    norm = Blur(parse_kernel_spec(kernel), boundary=boundary, in_shape=shape).norm(shape)
    return float(step) * norm**2 if norm > 0 else 1.0


def _report_from_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("report")
    except (OSError, ValueError):
        return None


def solve_batch(
    config: SolveConfig,
    input_dir: str | Path,
    *,
    observed: bool = False,
    size: int | None = None,
    batch_size: int = 8,
    quiet: bool = False,
    stream: TextIO | None = None,
) -> dict[str, Any]:
    """Reconstruct every image of a folder with the problem/solver settings of ``config``.

    A thin layer over :func:`pnp.batch.solve_folder` (``stablepnp solve --input-dir``): the
    blur kernel, boundary, Gaussian noise level, seed and colour mode come from
    ``config.problem`` (its ``image`` is ignored), the prior, weight, algorithm, step,
    relaxation and stopping rule from ``config.solver``, the output folder and figure switch
    from ``config.output`` (``output.json``, when set, receives a copy of the summary).

    Parameters
    ----------
    config : SolveConfig
        The job; the operator must be a blur and the noise Gaussian.
    input_dir : str or Path
        Folder of images (see ``pnp.batch.IMAGE_SUFFIXES``).
    observed : bool
        The images are observations ``y`` to deblur (no ground truth, no PSNR), not truths.
    size : int, optional
        Square size every image is brought to; None keeps each image's size.
    batch_size : int
        Largest number of equal-shape images solved together.
    quiet : bool
        No progress bar and no table.
    stream : TextIO, optional
        Where the table goes (default ``sys.stdout``).

    Returns
    -------
    dict
        The summary of ``solve_folder`` (``images``, ``parameters``, ``out``, ``seconds``) with
        ``guarantee_lines`` (the distinct verdict lines of the batches) and ``failed`` (names of
        the images whose run diverged or produced NaN).

    Raises
    ------
    ValueError, FileNotFoundError, ImportError
        Settings the batch mode does not support (another operator or noise model, ``unsafe``,
        ``time_limit``, ``lam`` for a denoiser), a missing folder or model.

    Examples
    --------
    >>> summary = solve_batch(SolveConfig(), "photos/", quiet=True)  # doctest: +SKIP
    """
    from pnp.batch import IMAGE_SUFFIXES, solve_folder

    stream = sys.stdout if stream is None else stream
    spec, sspec, ospec = config.problem, config.solver, config.output
    if spec.operator != "blur":
        raise ValueError(f"--input-dir solves deblurring problems but the config sets operator {spec.operator!r}; "
                         "set 'operator: blur' or solve one image at a time with --image")
    if spec.noise_model != "gaussian":
        raise ValueError(f"--input-dir assumes Gaussian noise but the config sets noise_model {spec.noise_model!r}; "
                         "use noise_model 'gaussian' or solve one image at a time with --image")
    if sspec.unsafe:
        raise ValueError("--unsafe is not available with --input-dir; drop it (or run one image with --image --unsafe)")
    if sspec.time_limit is not None:
        raise ValueError("--time-limit is not available with --input-dir; drop it and bound the run with --max-iter")
    if sspec.accelerate == "anderson":
        from pnp import ALGORITHMS
        from pnp.acceleration import SUPPORTED_ALGORITHMS, refusal

        if ALGORITHMS[sspec.algorithm].name not in SUPPORTED_ALGORITHMS:
            raise ValueError(refusal(ALGORITHMS[sspec.algorithm].name, None))
    if sspec.is_denoiser and sspec.lam is not None:
        raise ValueError(f"--lam is not available for the denoiser prior {sspec.prior!r} with --input-dir; "
                         "set the denoiser level with --denoiser-sigma instead")
    src = Path(input_dir).expanduser()
    if not src.is_dir():
        raise FileNotFoundError(f"--input-dir '{src}' is not a folder; pass a folder of images")
    check_output_paths(ospec.dir, ospec.json)  # before any work
    check_solver_ranges(sspec)
    if size is not None:
        check_solve_memory(size, 1 if spec.gray else 3)
    files = sorted(q for q in src.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"--input-dir '{src}' holds no image ({', '.join(IMAGE_SUFFIXES)}); pass a folder of images")
    prior = _batch_prior(sspec)
    step_factor = _batch_step_factor(sspec.step, files, kernel=spec.kernel, boundary=spec.boundary, size=size,
                                     gray=spec.gray)
    if sspec.step is not None:
        check_step_range(sspec.step, step_factor / sspec.step)  # step_factor = step * ‖A‖²
    try:
        summary = solve_folder(
            src, Path(ospec.dir).expanduser(), prior=prior, algorithm=sspec.algorithm, kernel=spec.kernel,
            noise=spec.sigma, observed=observed, lam=sspec.lam, sigma=sspec.denoiser_sigma,
            step_factor=step_factor, relaxation=sspec.relaxation, size=size, gray=spec.gray,
            boundary=spec.boundary, seed=spec.seed, max_iter=sspec.max_iter,
            tol=sspec.tol if sspec.tol > 0 else None, batch_size=batch_size, figures=ospec.figure,
            progress=not quiet, accelerate=sspec.accelerate,
        )
    except ValueError as exc:
        msg = str(exc).replace("pass unsafe=True to run anyway",
                               "lower --step (--unsafe is not available with --input-dir)")
        raise ValueError(msg) from None
    out = Path(summary["out"])
    lines: list[str] = []
    for rec in summary["images"]:
        line = verdict_line(_report_from_file(out / f"{Path(rec['file']).stem}.json"))
        rec["guarantee_line"] = line
        if line not in lines:
            lines.append(line)
    summary["guarantee_lines"] = lines
    summary["failed"] = [Path(r["file"]).name for r in summary["images"] if r.get("status") in ("nan", "diverged")]
    summary = _json_safe(summary)
    if ospec.json:
        json_path = Path(ospec.json).expanduser()
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        summary["json"] = str(json_path)
    if not quiet:
        print(format_batch_table(summary), file=stream, flush=True)
    return summary


def format_batch_table(summary: Mapping[str, Any]) -> str:
    """The table printed by ``stablepnp solve --input-dir``: one row per image, the guarantee, the outputs."""
    par = summary["parameters"]
    images = summary["images"]
    observed = bool(par.get("observed"))
    value = par.get("value")
    name = Path(par["prior"]).name if _is_checkpoint(str(par["prior"])) else par["prior"]
    prior = f"{name} ({par.get('param', 'lam')} {_fmt(value, '.4g')})"
    n_batches = len({r.get("batch") for r in images})
    name_w = max([len("file")] + [len(Path(r["file"]).name) for r in images])
    lines = [
        f"input        {len(images)} image(s) in {n_batches} batch(es), "
        + ("observations deblurred with " if observed else "synthetic observations: ")
        + f"blur {par['kernel']}, noise sigma {par['noise']:g}",
        f"solver       {par['algorithm'].upper()} with prior {prior}",
        "",
        f"  {'file':<{name_w}s}  {'shape':>11s}{'PSNR obs':>10s}{'PSNR':>8s}{'SSIM':>8s}{'iters':>7s}  "
        f"{'status':<10s}guarantee",
    ]
    for r in images:
        shape = "x".join(str(v) for v in r["shape"])
        lines.append(
            f"  {Path(r['file']).name:<{name_w}s}  {shape:>11s}{_fmt(r.get('psnr_observed'), '10.2f')}"
            f"{_fmt(r.get('psnr'), '8.2f')}{_fmt(r.get('ssim'), '8.4f')}{r['iterations']:>7d}  "
            f"{r['status']:<10s}{r.get('verdict') or '-'}"
        )
    scored = [r for r in images if _finite(r.get("psnr"), r.get("psnr_observed"))]
    if scored:
        mean_obs = sum(r["psnr_observed"] for r in scored) / len(scored)
        mean_rec = sum(r["psnr"] for r in scored) / len(scored)
        lines.append(f"  {'mean':<{name_w}s}  {'':>11s}{mean_obs:10.2f}{mean_rec:8.2f}   ({mean_rec - mean_obs:+.2f} dB)")
    lines.append("")
    for i, line in enumerate(summary.get("guarantee_lines") or []):
        lines.append(f"{'guarantee' if i == 0 else '':<13s}{line}")
    lines.append(f"time         {summary['seconds']:.2f} s")
    out = Path(summary["out"])
    lines.append(f"output       {out}/ (<name>.json, <name>.png, <name>_reconstruction.npy per image)")
    lines.append(f"summary      {out / 'summary.md'}, {out / 'summary.csv'}, {out / 'summary.json'}")
    if summary.get("json"):
        lines.append(f"record       {summary['json']}")
    return "\n".join(lines)


# ============================================================================ field helpers
def _strict_from_dict(cls: Any, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a mapping of keys to values, got {type(data).__name__}")
    valid = cls.keys()
    for key in data:
        if key not in valid:
            raise ValueError(f"unknown key {str(key)!r} in {where}; valid keys: {', '.join(valid)}")
    try:
        return cls(**dict(data))
    except (TypeError, ValueError) as exc:
        if where in ("solver spec", "output spec"):
            raise
        raise type(exc)(f"{exc} (in {where})") from None


def _is_checkpoint(text: str) -> bool:
    return Path(text).suffix.lower() in CHECKPOINT_SUFFIXES


def _field_str(value: Any, name: str, section: str) -> str:
    if isinstance(value, Path):
        return str(value)
    if not isinstance(value, str):
        raise ValueError(f"{section} field {name!r} must be a string, got {value!r} ({type(value).__name__})")
    return value


def _field_float(value: Any, name: str, section: str, *, positive: bool, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" (no dot) as a string
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "a number" + (" or null" if optional else "")
        raise ValueError(f"{section} field {name!r} must be {kind}, got {value!r} ({type(value).__name__})")
    value = float(value)
    bound_ok = value > 0 if positive else value >= 0
    if not math.isfinite(value) or not bound_ok:
        raise ValueError(f"{section} field {name!r} must be a finite number {'>' if positive else '>='} 0, "
                         f"got {value:g}")
    return value


def _field_int(value: Any, name: str, section: str, *, minimum: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{section} field {name!r} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{section} field {name!r} must be >= {minimum}, got {value}")
    return value
