"""Declarative problem specifications: a strict, frozen dataclass read from YAML.

A :class:`ProblemSpec` names everything needed to simulate an :class:`~problems.InverseProblem`:
the image, the forward operator, the noise model and the seed. It is flat on purpose, so a YAML
file reads like a table::

    # problems/specs/default.yaml
    image: camera
    size: 256
    gray: true
    operator: blur
    kernel: "gaussian:1.6"
    boundary: circular
    noise_model: gaussian
    sigma: 0.01
    seed: 0

Fields that do not concern the chosen operator or noise model (``factor`` for a blur, ``gain``
for Gaussian noise, ...) keep their defaults and are ignored. Validation is strict: an unknown
key, a value of the wrong type or out of range is a one-line ``ValueError`` that names the field.

The command line reads files with two sections, ``problem:`` (this spec) and ``solver:``;
:meth:`ProblemSpec.from_yaml` accepts such a file as well as a bare spec, and
:func:`load_yaml_mapping` reads any YAML mapping with one-line errors.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from .config import StrictLoader, as_bool, as_choice, as_float, as_int, as_str, from_mapping, load_yaml_mapping
from .images import available_images, load_image, load_observation
from .problem import InverseProblem

__all__ = [
    "ProblemSpec",
    "OPERATORS",
    "register_operator",
    "unregister_operator",
    "operator_names",
    "NOISE_MODELS",
    "BOUNDARIES",
    "DOWNSAMPLING_FILTERS",
    "load_yaml_mapping",
    "StrictLoader",
    "bundled_spec_names",
    "bundled_spec_path",
    "ResolvedProblem",
    "is_bundled_image",
    "DEFAULT_SIZE",
]

#: The built-in operators; :func:`register_operator` adds more (:func:`operator_names` lists them all).
OPERATORS: tuple[str, ...] = ("blur", "downsampling", "inpainting", "denoising")
#: Operators added from outside: name -> ``make(spec, shape, dtype) -> LinearOperator``.
_REGISTERED_OPERATORS: dict[str, Callable[..., Any]] = {}


def register_operator(name: str, make: Callable[..., Any], *, replace_existing: bool = False) -> None:
    """Make ``operator: NAME`` in a problem spec build ``make(spec, shape, dtype=dtype)``.

    ``make`` receives the :class:`ProblemSpec` (its fields -- kernel, factor, mask_ratio, boundary, ... --
    are the operator's parameters), the image shape ``(B, C, H, W)`` and the dtype, and returns a
    :class:`operators.LinearOperator` on that shape. Like the built-in operators it enters the
    convergence theorems only through its declared linear-operator interface (adjoint, norm).

    Raises
    ------
    ValueError
        The name is built in, already registered (pass ``replace_existing=True``) or not a plain
        lower-case name; ``make`` is not callable.
    """
    key = str(name).strip().lower()
    if not key or not key.replace("_", "").isalnum():
        raise ValueError(f"operator name must be a plain lower-case name (letters, digits, _), got {name!r}")
    if key in OPERATORS:
        raise ValueError(f"operator {key!r} is built in; choose another name")
    if key in _REGISTERED_OPERATORS and not replace_existing:
        raise ValueError(f"operator {key!r} is already registered; pass replace_existing=True to replace it")
    if not callable(make):
        raise ValueError(f"operator {key!r}: make must be callable as make(spec, shape, dtype=...)")
    _REGISTERED_OPERATORS[key] = make


def unregister_operator(name: str) -> None:
    """Remove an operator added by :func:`register_operator` (a missing name is ignored)."""
    _REGISTERED_OPERATORS.pop(str(name).strip().lower(), None)


def operator_names() -> tuple[str, ...]:
    """Every operator a problem spec accepts: the built-in ones, then the registered ones."""
    return OPERATORS + tuple(_REGISTERED_OPERATORS)

NOISE_MODELS: tuple[str, ...] = ("gaussian", "poisson", "poisson_gaussian")
BOUNDARIES: tuple[str, ...] = ("circular", "reflect", "mirror", "replicate", "zero")
DOWNSAMPLING_FILTERS: tuple[str, ...] = ("gaussian", "box", "none")

_SPEC_DIR = Path(__file__).resolve().parent / "specs"
_WHERE = "problem spec"  # the section named in field errors
#: Largest seed a torch.Generator accepts as a signed 64-bit integer.
MAX_SEED = 2**63 - 1
#: Size a bundled image is brought to when ``size`` is ``"auto"`` (image files keep their size).
DEFAULT_SIZE = 256


def is_bundled_image(image: str) -> bool:
    """True when ``image`` names a bundled image (an existing file of that name wins, as in ``load_image``).

    Examples
    --------
    >>> is_bundled_image("camera"), is_bundled_image("photos/y.png")
    (True, False)
    """
    return not Path(image).expanduser().is_file() and image.strip().lower() in available_images()


@dataclass(frozen=True)
class ProblemSpec:
    """Specification of a simulated inverse problem; ``build()`` turns it into one.

    Parameters
    ----------
    image : str
        Bundled image name or image file path (see :func:`problems.load_image`); with
        ``observed``, the observation ``y`` itself.
    size : int or None or "auto"
        Square output size (centre crop, then resize); ``None`` keeps the native size. ``"auto"``
        (the default) is 256 for a bundled image and ``None`` (native size) for an image file or an
        observation.
    gray : bool
        One luminance channel (``True``) or RGB (``False``).
    operator : {"blur", "downsampling", "inpainting", "denoising"}
        Forward model.
    kernel : str
        Blur kernel spec for ``operator="blur"``: ``"gaussian:STD"``, ``"motion:LENGTH:ANGLE"``,
        ``"box:SIZE"``, ``"disk:RADIUS"``, ``"shake:SEED"`` or a ``.npy``/``.png`` path
        (see ``operators.kernels.parse_kernel_spec``).
    boundary : {"circular", "reflect", "mirror", "replicate", "zero"}
        Boundary condition of the blur and of the downsampling anti-aliasing filter (see
        :mod:`operators.blur`: ``"reflect"`` is half-sample symmetric, ``"mirror"`` whole-sample).
    factor : int
        Downsampling factor (``operator="downsampling"``); an image side that is not a multiple
        gives ``ceil(side / factor)`` samples.
    filter : {"gaussian", "box", "none"}
        Anti-aliasing filter applied before downsampling.
    mask_ratio : float
        Fraction of pixels *removed* by inpainting, in [0, 1). The same pixels are removed in
        every channel.
    mask_seed : int or None
        Seed of the inpainting mask; ``None`` uses ``seed + 1`` (so mask and noise draw from
        different streams).
    noise_model : {"gaussian", "poisson", "poisson_gaussian"}
        Noise model.
    sigma : float
        Standard deviation of the Gaussian noise on the [0, 1] intensity scale (>= 0).
    gain : float
        Poisson gain (> 0): intensity per photon, see ``operators.noise.Poisson``; ``1 / peak`` for a peak
        of ``peak`` photons at intensity 1 (the command line's ``--peak``). The observation is the counts
        times ``gain``, on the [0, 1] intensity scale.
    seed : int
        Seed of the noise generator.
    observed : bool
        ``image`` is a measured observation ``y`` (no ground truth, no PSNR), deblurred as it is:
        read by :func:`problems.images.load_observation` (float values kept, never resized; a
        ``size`` other than None is refused), operator ``blur`` or ``denoising``.
    noise_estimate : bool
        Estimate the Gaussian noise level from ``y`` (:func:`problems.noise_estimate.estimate_noise`)
        and let the solver assume it instead of ``sigma``. For a simulated problem ``sigma`` still
        makes the noise (a test of the estimator). :meth:`from_dict` (YAML, the command line)
        turns it on for an observation that gives neither ``sigma`` nor ``noise_estimate``.

    Examples
    --------
    >>> spec = ProblemSpec.from_dict({"image": "camera", "size": 32, "sigma": 0.02})
    >>> spec.kernel, spec.sigma
    ('gaussian:1.6', 0.02)
    >>> problem = spec.build()
    >>> problem.y.shape
    torch.Size([1, 1, 32, 32])
    """

    image: str = "camera"
    size: int | None | str = "auto"
    gray: bool = True
    operator: str = "blur"
    kernel: str = "gaussian:1.6"
    boundary: str = "circular"
    factor: int = 2
    filter: str = "gaussian"
    mask_ratio: float = 0.5
    mask_seed: int | None = None
    noise_model: str = "gaussian"
    sigma: float = 0.01
    gain: float = 0.01
    seed: int = 0
    observed: bool = False
    noise_estimate: bool = False

    # -- validation --------------------------------------------------------------------------
    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("image", as_str(self.image, "image", _WHERE))
        if not self.image.strip():
            raise ValueError("problem spec field 'image' must not be empty; give a name or a path")
        set_("observed", as_bool(self.observed, "observed", _WHERE))
        set_("noise_estimate", as_bool(self.noise_estimate, "noise_estimate", _WHERE))
        if isinstance(self.size, str) and self.size.strip().lower() == "auto":
            set_("size", None if self.observed or not is_bundled_image(self.image) else DEFAULT_SIZE)
        set_("size", as_int(self.size, "size", _WHERE, minimum=1, optional=True))
        if self.observed and self.size is not None:
            raise ValueError(f"problem field 'size' (--size) = {self.size} with 'observed': an observation is "
                             "deblurred at its native size (resampling would change its blur and noise); drop "
                             "--size (size: null) or crop the file")
        set_("gray", as_bool(self.gray, "gray", _WHERE))
        set_("operator", as_choice(self.operator, "operator", _WHERE, operator_names()))
        set_("kernel", as_str(self.kernel, "kernel", _WHERE))
        set_("boundary", as_choice(self.boundary, "boundary", _WHERE, BOUNDARIES))
        set_("factor", as_int(self.factor, "factor", _WHERE, minimum=1))
        set_("filter", as_choice(self.filter, "filter", _WHERE, DOWNSAMPLING_FILTERS))
        set_("mask_ratio", as_float(self.mask_ratio, "mask_ratio", _WHERE, minimum=0.0))
        if self.mask_ratio >= 1.0:
            raise ValueError(
                f"problem spec field 'mask_ratio' must lie in [0, 1), got {self.mask_ratio}"
            )
        set_("mask_seed", as_int(self.mask_seed, "mask_seed", _WHERE, minimum=0, optional=True, maximum=MAX_SEED))
        set_("noise_model", as_choice(self.noise_model, "noise_model", _WHERE, NOISE_MODELS))
        set_("sigma", as_float(self.sigma, "sigma", _WHERE, minimum=0.0))
        set_("gain", as_float(self.gain, "gain", _WHERE, minimum=0.0))
        if self.gain == 0.0:
            raise ValueError("problem spec field 'gain' must be > 0, got 0")
        set_("seed", as_int(self.seed, "seed", _WHERE, minimum=0, maximum=MAX_SEED))
        if self.observed and self.operator not in ("blur", "denoising"):
            raise ValueError(f"problem field 'observed' applies to the blur and denoising operators, not "
                             f"{self.operator!r} (its mask or sampling is not part of an image file); "
                             "use 'operator: blur' or simulate the problem")
        if self.noise_estimate and self.noise_model != "gaussian":
            raise ValueError(f"problem field 'noise_estimate' (--noise estimate) estimates a Gaussian noise level, "
                             f"but noise_model is {self.noise_model!r}; use noise_model 'gaussian' or drop it")

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The valid keys, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "problem spec") -> ProblemSpec:
        """Build a spec from a mapping (e.g. the ``problem:`` section of a config file).

        Parameters
        ----------
        data : Mapping[str, Any]
            Keys among :meth:`keys`; missing keys take their defaults.
        where : str
            Named in error messages (e.g. ``"section 'problem' of run.yaml"``).

        An observation (``observed: true``) that gives neither ``sigma`` nor ``noise_estimate``
        gets ``noise_estimate: true``: its noise level is estimated from the data.

        Raises
        ------
        ValueError
            ``data`` is not a mapping, has an unknown key (the message lists the valid keys) or
            an invalid value.
        """
        if (isinstance(data, Mapping) and data.get("observed") is True and "sigma" not in data
                and "noise_estimate" not in data):
            data = {**data, "noise_estimate": True}
        return from_mapping(cls, data, where, context=where != _WHERE)

    @classmethod
    def from_yaml(cls, path: str | Path) -> ProblemSpec:
        """Read a spec from a YAML file.

        The file is either a bare spec or has a top-level ``problem:`` section (as the command
        line's config files do), in which case only that section is read and the other sections
        are left to their own readers.

        Examples
        --------
        >>> ProblemSpec.from_yaml(bundled_spec_path("default")).image
        'camera'
        """
        data = load_yaml_mapping(path)
        if "problem" in data:
            section = data["problem"] if data["problem"] is not None else {}
            return cls.from_dict(section, where=f"section 'problem' of '{path}'")
        return cls.from_dict(data, where=f"problem spec '{path}'")

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary of all fields (YAML/JSON serialisable)."""
        return dataclasses.asdict(self)

    def updated(self, **changes: Any) -> ProblemSpec:
        """A copy with some fields changed, validated like :meth:`from_dict`.

        Examples
        --------
        >>> ProblemSpec().updated(image="astronaut", gray=False).gray
        False
        """
        return type(self).from_dict({**self.to_dict(), **changes})

    # -- simulation --------------------------------------------------------------------------
    def build(self, *, dtype: torch.dtype = torch.float32) -> InverseProblem:
        """Load the image, build operator and noise model, and simulate the observation.

        With ``observed``, the image is the observation and nothing is simulated; with
        ``noise_estimate``, the noise model carries the estimated level (see :meth:`build_resolved`).

        Parameters
        ----------
        dtype : torch.dtype
            Floating dtype of the image and of the simulated data.

        Returns
        -------
        InverseProblem
            With the ground truth attached (None for an observation); the same spec always gives
            the same ``y``.
        """
        return self.build_resolved(dtype=dtype).problem

    def build_resolved(self, *, dtype: torch.dtype = torch.float32) -> ResolvedProblem:
        """:meth:`build`, and the spec with ``sigma`` set to the noise level the solver assumes.

        Examples
        --------
        >>> done = ProblemSpec(size=64, sigma=0.03, noise_estimate=True).build_resolved()
        >>> abs(done.spec.sigma - 0.03) < 0.1 * 0.03, done.estimate is not None, done.spec.noise_estimate
        (True, True, False)
        """
        from .noise_estimate import estimate_noise

        if self.observed:
            y = load_observation(self.image, gray=self.gray, dtype=dtype)
            operator = self.make_operator(tuple(y.shape), dtype=dtype)
            truth = None
        else:
            truth = load_image(self.image, size=self.size, gray=self.gray, dtype=dtype)
            operator = self.make_operator(tuple(truth.shape), dtype=dtype)
            y = InverseProblem.simulate(truth, operator, self.make_noise(), seed=self.seed).y
        estimate = estimate_noise(y) if self.noise_estimate else None
        spec = self if estimate is None else self.updated(sigma=estimate.sigma, noise_estimate=False)
        return ResolvedProblem(InverseProblem(operator, spec.make_noise(), y, truth=truth), spec, estimate)

    def make_operator(self, shape: tuple[int, int, int, int], *, dtype: torch.dtype = torch.float32):
        """The forward operator for images of ``shape`` (B, C, H, W), built with ``in_shape=shape``."""
        height, width = shape[-2:]
        if self.operator in _REGISTERED_OPERATORS:
            return _registered_operator(self, shape, dtype)
        if self.operator == "blur":
            from operators.blur import Blur
            from operators.kernels import parse_kernel_spec

            # Blur refuses a kernel larger than the image when given the input shape.
            return Blur(parse_kernel_spec(self.kernel), boundary=self.boundary, in_shape=shape)
        if self.operator == "downsampling":
            from operators.sampling import Downsampling

            return Downsampling(
                self.factor,
                filter=None if self.filter == "none" else self.filter,
                boundary=self.boundary,
                in_shape=shape,
            )
        if self.operator == "inpainting":
            from operators.sampling import Inpainting

            seed = (self.seed + 1) % (MAX_SEED + 1) if self.mask_seed is None else self.mask_seed
            generator = torch.Generator().manual_seed(seed)
            keep = torch.rand((1, 1, height, width), generator=generator, dtype=torch.float64)
            return Inpainting((keep >= self.mask_ratio).to(dtype), in_shape=shape)
        from operators.sampling import Identity

        return Identity(in_shape=shape)

    def make_noise(self):
        """The noise model named by ``noise_model`` with this spec's ``sigma`` / ``gain``."""
        from operators.noise import Gaussian, Poisson, PoissonGaussian

        if self.noise_model == "gaussian":
            return Gaussian(self.sigma)
        if self.noise_model == "poisson":
            return Poisson(self.gain)
        return PoissonGaussian(self.gain, self.sigma)


def _registered_operator(spec: ProblemSpec, shape: tuple[int, int, int, int], dtype: torch.dtype) -> Any:
    from operators.base import LinearOperator

    operator = _REGISTERED_OPERATORS[spec.operator](spec, shape, dtype=dtype)
    if not isinstance(operator, LinearOperator):
        raise TypeError(f"registered operator {spec.operator!r} returned {type(operator).__name__}, not an "
                        "operators.LinearOperator; wrap a function with operators.FunctionOperator")
    return operator


@dataclass(frozen=True)
class ResolvedProblem:
    """What :meth:`ProblemSpec.build_resolved` returns.

    Attributes
    ----------
    problem : InverseProblem
        The problem (``truth`` None for an observation).
    spec : ProblemSpec
        The spec the solver works with: ``sigma`` is the level its noise model assumes (the
        estimate when one was made; ``noise_estimate`` is then False).
    estimate : NoiseEstimate or None
        The noise estimate, when ``noise_estimate`` asked for one.
    """

    problem: InverseProblem
    spec: ProblemSpec
    estimate: Any = None


def bundled_spec_names() -> tuple[str, ...]:
    """Names of the example specs shipped in ``problems/specs`` (without ``.yaml``)."""
    return tuple(sorted(p.stem for p in _SPEC_DIR.glob("*.yaml")))


def bundled_spec_path(name: str = "default") -> Path:
    """Path of a bundled example spec, e.g. ``bundled_spec_path("default")``."""
    path = _SPEC_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(
            f"unknown bundled spec {name!r}; available: {', '.join(bundled_spec_names())}"
        )
    return path

