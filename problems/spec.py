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
from typing import Any, Mapping

import torch

from .config import StrictLoader, as_bool, as_choice, as_float, as_int, as_str, from_mapping, load_yaml_mapping
from .images import load_image
from .problem import InverseProblem

__all__ = [
    "ProblemSpec",
    "OPERATORS",
    "NOISE_MODELS",
    "BOUNDARIES",
    "DOWNSAMPLING_FILTERS",
    "load_yaml_mapping",
    "StrictLoader",
    "bundled_spec_names",
    "bundled_spec_path",
]

OPERATORS: tuple[str, ...] = ("blur", "downsampling", "inpainting", "denoising")
NOISE_MODELS: tuple[str, ...] = ("gaussian", "poisson", "poisson_gaussian")
BOUNDARIES: tuple[str, ...] = ("circular", "reflect", "mirror", "replicate", "zero")
DOWNSAMPLING_FILTERS: tuple[str, ...] = ("gaussian", "box", "none")

_SPEC_DIR = Path(__file__).resolve().parent / "specs"
_WHERE = "problem spec"  # the section named in field errors
#: Largest seed a torch.Generator accepts as a signed 64-bit integer.
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class ProblemSpec:
    """Specification of a simulated inverse problem; ``build()`` turns it into one.

    Parameters
    ----------
    image : str
        Bundled image name or image file path (see :func:`problems.load_image`).
    size : int or None
        Square output size (centre crop, then resize); ``None`` keeps the native size.
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
        Poisson gain (> 0): intensity per photon, see ``operators.noise.Poisson``.
    seed : int
        Seed of the noise generator.

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
    size: int | None = 256
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

    # -- validation --------------------------------------------------------------------------
    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("image", as_str(self.image, "image", _WHERE))
        if not self.image.strip():
            raise ValueError("problem spec field 'image' must not be empty; give a name or a path")
        set_("size", as_int(self.size, "size", _WHERE, minimum=1, optional=True))
        set_("gray", as_bool(self.gray, "gray", _WHERE))
        set_("operator", as_choice(self.operator, "operator", _WHERE, OPERATORS))
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

        Raises
        ------
        ValueError
            ``data`` is not a mapping, has an unknown key (the message lists the valid keys) or
            an invalid value.
        """
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

        Parameters
        ----------
        dtype : torch.dtype
            Floating dtype of the image and of the simulated data.

        Returns
        -------
        InverseProblem
            With the ground truth attached; the same spec always gives the same ``y``.
        """
        truth = load_image(self.image, size=self.size, gray=self.gray, dtype=dtype)
        operator = self.make_operator(tuple(truth.shape), dtype=dtype)
        return InverseProblem.simulate(truth, operator, self.make_noise(), seed=self.seed)

    def make_operator(self, shape: tuple[int, int, int, int], *, dtype: torch.dtype = torch.float32):
        """The forward operator for images of ``shape`` (B, C, H, W), built with ``in_shape=shape``."""
        height, width = shape[-2:]
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

