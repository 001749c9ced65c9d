"""Spec and validation of a solve job: :class:`SolveConfig` and its sections, and the range checks.

A job is described by a :class:`SolveConfig` with three sections, each a frozen dataclass
validated strictly (an unknown key is a one-line ``ValueError`` listing the valid keys):

* ``problem`` -- a :class:`problems.ProblemSpec` (image, operator, kernel, noise, seed);
* ``solver`` -- a :class:`SolverSpec` (prior, weight, algorithm, step, stopping rule);
* ``output`` -- an :class:`OutputSpec` (output folder, JSON record, figure on/off).

The prior and algorithm names are those of the registries (:mod:`pnp.registry`), so a prior or an
algorithm registered from outside the package is accepted here too. The ``check_*`` functions
refuse settings before any work (unwritable outputs, a step or a size out of range).

Examples
--------
>>> SolveConfig.from_dict({"solver": {"prior": "wavelet", "algorithm": "FISTA"}}).solver.algorithm
'fista'
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from pnp.registry import ALGORITHMS, CHECKPOINT_SUFFIXES, PRIORS, RegisteredPrior, is_checkpoint, resolve_prior
from pnp.registry import shipped_model_name
from pnp.restart import RESTARTS
from problems import ProblemSpec, load_yaml_mapping
from problems.config import as_bool, as_choice, as_float, as_int, as_str, check_keys, from_mapping

__all__ = [
    "SolverSpec",
    "OutputSpec",
    "SolveConfig",
    "STEP_RANGE",
    "MIN_RELAXATION",
    "MAX_NOISE",
    "SOLVE_ARRAYS",
    "check_step_range",
    "check_solver_ranges",
    "check_output_paths",
    "check_solve_memory",
    "check_native_memory",
]

_ACCELERATIONS: tuple[str, ...] = ("auto", "anderson", "none")  # pnp.acceleration.ACCELERATIONS
_LAM_RULES: tuple[str, ...] = ("sure", "discrepancy")  # pnp.parameters.RULES
#: The strength value that asks for a choice from the data (pnp.parameters.AUTO).
AUTO = "auto"


def _strength(value: Any, name: str) -> float | str | None:
    """A positive number, ``"auto"`` (any case) or None; anything else is refused in one line."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            raise ValueError(f"solver field {name!r} must be a positive number, 'auto' or null, got {value!r}; "
                             f"write e.g. '{name}: 0.01' or '{name}: auto'") from None
    return as_float(value, name, "solver", exclusive=True, optional=True)


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
        shipped learned denoisers ``averaged_gray`` / ``dncnn_gray``), any prior registered in
        :data:`pnp.registry.PRIORS`
        or any name of ``priors.pretrained_names()`` (Plug-and-Play), or the path of a
        learned-denoiser checkpoint (``.pt``) read by ``priors.load_checkpoint``.
    lam : float, "auto" or None
        Regularisation weight (> 0). ``None``: for a classical prior, :func:`default_lam`
        (scaled with the noise level); for a denoiser prior, the denoiser runs at the fixed
        level ``denoiser_sigma`` instead (``lam`` and ``denoiser_sigma`` are exclusive).
        ``"auto"``: the prior's strength (its weight, or a denoiser's level) is chosen from the
        data by ``lam_rule`` (:mod:`pnp.parameters`).
    denoiser_sigma : float, "auto" or None
        Noise level handed to a denoiser prior (bm3d or checkpoint). ``None``: the checkpoint's
        training level when it records one, else the problem's noise level. ``"auto"``: as
        ``lam: auto``.
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
    restart : {"none", "gradient", "function"}
        Adaptive restart of FISTA's momentum (:mod:`pnp.restart`); refused for algorithms without
        momentum.
    lam_rule : {"sure", "discrepancy"}
        How ``lam: auto`` chooses the strength: SURE with a Monte-Carlo divergence (default), or
        Morozov's discrepancy principle (falls back to SURE, saying so, where it has no root).

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
    restart: str = "none"
    lam_rule: str = "sure"

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        prior = as_str(self.prior, "prior", "solver").strip()
        if prior.lower() in PRIORS:
            prior = prior.lower()
        elif shipped_model_name(prior) is None and not is_checkpoint(prior):
            raise ValueError(
                f"solver field 'prior' must be one of {', '.join(PRIORS)}, a shipped model "
                f"name, or a checkpoint path ending in {'/'.join(CHECKPOINT_SUFFIXES)}, got {self.prior!r}"
            )
        set_("prior", prior)
        set_("lam", _strength(self.lam, "lam"))
        set_("denoiser_sigma", _strength(self.denoiser_sigma, "denoiser_sigma"))
        if self.denoiser_sigma is not None and not self.is_denoiser:
            raise ValueError(f"solver field 'denoiser_sigma' applies to bm3d, a learned or a checkpoint prior, not "
                             f"{self.prior!r}; use 'lam' for a classical prior")
        if self.lam is not None and self.denoiser_sigma is not None:
            raise ValueError("solver fields 'lam' and 'denoiser_sigma' are exclusive for a denoiser prior; "
                             "give one of them")
        set_("algorithm", as_choice(self.algorithm, "algorithm", "solver", ALGORITHMS))
        set_("step", as_float(self.step, "step", "solver", exclusive=True, optional=True))
        set_("relaxation", as_float(self.relaxation, "relaxation", "solver", exclusive=True))
        set_("max_iter", as_int(self.max_iter, "max_iter", "solver", minimum=1))
        set_("tol", as_float(self.tol, "tol", "solver"))
        set_("time_limit", as_float(self.time_limit, "time_limit", "solver", exclusive=True, optional=True))
        set_("unsafe", as_bool(self.unsafe, "unsafe", "solver"))
        set_("accelerate", as_choice(self.accelerate, "accelerate", "solver", _ACCELERATIONS))
        set_("restart", as_choice(self.restart, "restart", "solver", RESTARTS))
        set_("lam_rule", as_choice(self.lam_rule, "lam_rule", "solver", _LAM_RULES))

    @property
    def auto_strength(self) -> bool:
        """True when ``lam`` or ``denoiser_sigma`` is ``"auto"``: the strength is chosen from the data."""
        return AUTO in (self.lam, self.denoiser_sigma)

    @property
    def entry(self) -> RegisteredPrior:
        """The registry entry of ``prior`` (:func:`pnp.registry.resolve_prior`)."""
        return resolve_prior(self.prior)

    @property
    def is_denoiser(self) -> bool:
        """True for a prior with a model (bm3d, a learned or registered denoiser, a shipped model, a checkpoint)."""
        return self.is_checkpoint or self.entry.kind != "classical"

    @property
    def is_shipped(self) -> bool:
        """True when ``prior`` names a shipped model (``averaged``, ``dncnn``, ``ridge``, a pretrained name)."""
        return not self.is_checkpoint and self.entry.model is not None

    @property
    def is_checkpoint(self) -> bool:
        """True when ``prior`` is a checkpoint path."""
        return self.prior not in PRIORS and is_checkpoint(self.prior)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The valid keys, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "solver spec") -> SolverSpec:
        """Build from a mapping; unknown keys are refused with the list of valid keys."""
        return from_mapping(cls, data, where, context=where != "solver spec")

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
        object.__setattr__(self, "dir", as_str(self.dir, "dir", "output"))
        if not self.dir.strip():
            raise ValueError("output field 'dir' must not be empty; give a folder path")
        if self.json is not None:
            object.__setattr__(self, "json", as_str(self.json, "json", "output"))
        as_bool(self.figure, "figure", "output")

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The valid keys, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "output spec") -> OutputSpec:
        """Build from a mapping; unknown keys are refused with the list of valid keys."""
        return from_mapping(cls, data, where, context=where != "output spec")

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
        data = check_keys(data, cls.SECTIONS, f"the top level of {where}")
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
        """Read a config file (see ``pnp/configs/solve_default.yaml`` for a complete example; the
        forms accepted are those of :func:`read_solve_yaml`)."""
        path, raw = read_solve_yaml(path)
        return cls.from_dict(raw, where=f"'{path}'")

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


def read_solve_yaml(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """``(resolved path, mapping with problem/solver/output sections)`` of a solve config file.

    A file whose top level holds problem fields and no section (a problem spec, like the bundled
    ``problems/specs/*.yaml``) is read as the ``problem:`` section; a bundled spec may be named
    without its path (``inpainting``) when no file of that name exists."""
    from problems.spec import bundled_spec_names, bundled_spec_path

    resolved = Path(path)
    if not resolved.expanduser().exists() and str(path) in bundled_spec_names():
        resolved = bundled_spec_path(str(path))
    raw = load_yaml_mapping(resolved)
    problem_fields = {f.name for f in dataclasses.fields(ProblemSpec)}
    if raw and not set(raw) & {"problem", "solver", "output"} and set(raw) & problem_fields:
        raw = {"problem": raw}
    return resolved, raw


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


def check_native_memory(image: str | Path, channels: int, *, observed: bool = False) -> None:
    """Refuse an image solved at its native size when the solve would not fit in memory.

    The same estimate as :func:`check_solve_memory`, on the image's own height and width, read
    from the file header (:func:`problems.images.image_shape`): nothing is decoded or allocated.
    """
    from problems.images import check_memory, image_shape

    height, width, _ = image_shape(image)
    fix = "crop the file" if observed else "pass --size N to solve a centre crop resized to N x N, or crop the file"
    check_memory(float(height) * width * channels * 4 * SOLVE_ARRAYS,
                 f"image '{image}' at its native size ({height} x {width}, {channels} "
                 f"channel{'s' if channels > 1 else ''})", fix)
