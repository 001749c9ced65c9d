"""The job layer's registries: which priors and which algorithms ``solve``, ``--input-dir`` and ``compare`` know.

One table of priors and one of algorithms; :func:`register_prior` and :func:`register_algorithm`
add entries from outside the package (a name registered here is accepted by
:class:`pnp.spec.SolverSpec`, :func:`pnp.batch.solve_folder` and the compare config alike).

A prior entry (:class:`RegisteredPrior`) says what the pipeline needs to build the prior for a
problem: its *kind* (``"classical"``: a functional scaled by a weight ``lam``; ``"denoiser"``: a
Plug-and-Play denoiser run at a level ``sigma``; ``"smooth"``: a learned smooth convex
regulariser scaled by ``lam``), how to load its model once (``load``), how to make the prior for
one parameter value (``make``) and the default of that parameter. Whether a prior is certified
is asked of the built object (``prior.certificate()``), never of its name.

An algorithm entry (:class:`RegisteredAlgorithm`) holds the :class:`pnp.run.Algorithm` subclass;
the class owns its theory (``theory``, with the step bound) and the entry owns the one step unit
of the job layer: a step factor times ``1/L``.

Examples
--------
>>> from pnp.registry import prior_entry, algorithm_entry
>>> prior_entry("tv").kind, prior_entry("tv").param
('classical', 'lam')
>>> algorithm_entry("fista").cls.name
'FISTA'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

# Nothing heavy at import: the command line builds its help and choices from these tables without
# torch; the classes and models are imported when an entry is used.

__all__ = [
    "PRIOR_KINDS",
    "RegisteredPrior",
    "RegisteredAlgorithm",
    "PRIORS",
    "ALGORITHMS",
    "ALGORITHM_CLASSES",
    "register_prior",
    "register_algorithm",
    "unregister_prior",
    "unregister_algorithm",
    "prior_entry",
    "algorithm_entry",
    "resolve_prior",
    "is_checkpoint",
    "CHECKPOINT_SUFFIXES",
    "REFERENCE_NOISE",
    "LAM_NOISE_EXPONENT",
]

#: What a prior is to the pipeline: a weighted functional, a PnP denoiser, or a learned smooth regulariser.
PRIOR_KINDS: tuple[str, ...] = ("classical", "denoiser", "smooth")
#: File suffixes read as learned-model checkpoints by ``priors.load_checkpoint``.
CHECKPOINT_SUFFIXES: tuple[str, ...] = (".pt", ".pth", ".ckpt")
#: Noise level at which ``lam_at_reference`` holds; :meth:`RegisteredPrior.default_value` scales it.
REFERENCE_NOISE = 0.01
#: Exponent of the noise-level scaling of a classical weight (fitted on noise 0.01, 0.03, 0.05).
LAM_NOISE_EXPONENT = 1.5


def is_checkpoint(text: str) -> bool:
    """True when ``text`` names a checkpoint file (by its suffix)."""
    return Path(str(text)).suffix.lower() in CHECKPOINT_SUFFIXES


# ============================================================================ priors
@dataclass(frozen=True)
class RegisteredPrior:
    """One prior the job layer can build.

    Parameters
    ----------
    name : str
        Lower-case name used in configs and on the command line.
    kind : {"classical", "denoiser", "smooth"}
        ``classical``: ``make(lam, None)`` returns the weighted functional (parameter ``lam``);
        ``denoiser``: ``load`` returns a denoiser called as ``D(x, sigma)`` and the prior runs it
        at a level ``sigma`` (parameter ``sigma``); ``smooth``: ``load`` returns a learned convex
        regulariser used variationally with weight ``lam``.
    make : callable, optional
        ``make(value, model) -> Prior``; required for ``classical``. A denoiser defaults to
        :func:`priors.denoiser_at_level`, a smooth regulariser to :class:`priors.ridge.RidgePrior`.
    load : callable, optional
        ``load(path, channels) -> model``, called once per job (``path`` is a weights file given
        by the user or None). Required for ``denoiser`` and ``smooth``.
    lam_at_reference : float, optional
        Classical priors: default weight at noise 0.01 for ``½‖Ax − y‖²``, scaled with the noise
        level by ``(noise / 0.01) ** 1.5``.
    model : str, optional
        Name of the shipped weights (``priors/weights/<model>.pt``) ``load`` reads.
    sigma_scale : float
        Denoisers: default level as a multiple of the noise level (tuned for PnP).
    label : str, optional
        Display name in tables (default: the name).
    description : str
        One line for listings.
    """

    name: str
    kind: str
    make: Callable[[float, Any], Any] | None = None
    load: Callable[[str | None, int | None], Any] | None = None
    lam_at_reference: float | None = None
    model: str | None = None
    sigma_scale: float = 1.0
    label: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or self.name != self.name.strip().lower():
            raise ValueError(f"prior name must be a non-empty lower-case string, got {self.name!r}")
        if self.kind not in PRIOR_KINDS:
            raise ValueError(f"prior {self.name!r}: kind must be one of {', '.join(PRIOR_KINDS)}, got {self.kind!r}")
        if self.kind == "classical" and not callable(self.make):
            raise ValueError(f"prior {self.name!r}: a classical prior needs make(lam, model) -> Prior")
        if self.kind != "classical" and not callable(self.load):
            raise ValueError(f"prior {self.name!r}: a {self.kind} prior needs load(path, channels) -> model")
        if self.lam_at_reference is not None and not (math.isfinite(self.lam_at_reference)
                                                       and self.lam_at_reference > 0):
            raise ValueError(f"prior {self.name!r}: lam_at_reference must be a positive number, "
                             f"got {self.lam_at_reference!r}")
        if not (math.isfinite(self.sigma_scale) and self.sigma_scale > 0):
            raise ValueError(f"prior {self.name!r}: sigma_scale must be a positive number, got {self.sigma_scale!r}")

    @property
    def param(self) -> str:
        """The parameter a job sets or tunes: ``"lam"`` (classical, smooth) or ``"sigma"`` (denoiser)."""
        return "sigma" if self.kind == "denoiser" else "lam"

    @property
    def certificate_source(self) -> str:
        """Where the guarantee of this kind of prior comes from (the check itself asks the built prior)."""
        return {"classical": "convexity of the functional (prior.convex, its prox)",
                "denoiser": "the model's certificate() (averagedness / Lipschitz bound); none: no guarantee",
                "smooth": "convexity of the model and the Lipschitz bound of its gradient"}[self.kind]

    @property
    def display(self) -> str:
        """Label in tables."""
        return self.label or self.name

    def build(self, value: float, model: Any = None, *, noise: float | None = None) -> Any:
        """The prior at parameter ``value`` (``lam`` or ``sigma``) with the loaded ``model``.

        For a smooth learned regulariser ``lam R_mu`` the scale ``mu`` follows the noise level when
        it is given (``priors.ridge.ridge_weights``): the best ``mu`` depends on the noise, not on the
        blur, while the best ``lam`` depends on both (scripts/tune_ridge.py --kernels); without a
        noise level ``mu`` follows ``lam`` along the default rule."""
        if self.make is not None:
            return self.make(value, model)
        if self.kind == "denoiser":
            from priors import denoiser_at_level, trained_sigma_range

            return denoiser_at_level(model, value, trained_sigma_range(model))
        from priors.ridge import ridge_mu_for_lam, ridge_weights
        from priors.wcrr import smooth_prior

        mu = (ridge_weights(model, noise, self.model or "")[1] if noise is not None
              else ridge_mu_for_lam(model, value, self.model or ""))
        return smooth_prior(model, weight=value, mu=mu)

    def default_lam(self, noise: float) -> float:
        """Default weight of a classical prior at noise level ``noise`` (floored at 0.001)."""
        if self.lam_at_reference is None:
            raise ValueError(f"no default weight for prior {self.name!r}; pass lam explicitly")
        return self.lam_at_reference * (max(float(noise), 0.001) / REFERENCE_NOISE) ** LAM_NOISE_EXPONENT


#: The registered priors by name (builtins below; :func:`register_prior` adds more).
PRIORS: dict[str, RegisteredPrior] = {}


def register_prior(
    name: str,
    *,
    kind: str,
    make: Callable[[float, Any], Any] | None = None,
    load: Callable[[str | None, int | None], Any] | None = None,
    lam_at_reference: float | None = None,
    model: str | None = None,
    sigma_scale: float = 1.0,
    label: str | None = None,
    description: str = "",
    replace_existing: bool = False,
) -> RegisteredPrior:
    """Add a prior to :data:`PRIORS` (see :class:`RegisteredPrior` for the fields).

    Raises
    ------
    ValueError
        The name is taken (pass ``replace_existing=True``), looks like a checkpoint path, or a
        field is missing for the kind.

    Examples
    --------
    >>> from priors import Tikhonov
    >>> entry = register_prior("l2", kind="classical", make=lambda lam, _: lam * Tikhonov(),
    ...                        lam_at_reference=1e-2)
    >>> entry.param, entry.default_lam(0.01)
    ('lam', 0.01)
    >>> unregister_prior("l2")
    """
    key = str(name).strip().lower()
    if is_checkpoint(key) or ":" in key or "/" in key:
        raise ValueError(f"prior name {name!r} would be read as a path or a 'source:NAME'; choose a plain name")
    if key in PRIORS and not replace_existing:
        raise ValueError(f"prior {key!r} is already registered; pass replace_existing=True to replace it")
    entry = RegisteredPrior(key, kind, make, load, lam_at_reference, model, sigma_scale, label, description)
    PRIORS[key] = entry
    return entry


def unregister_prior(name: str) -> None:
    """Remove a prior added by :func:`register_prior` (a missing name is ignored)."""
    PRIORS.pop(str(name).strip().lower(), None)


def prior_entry(name: str) -> RegisteredPrior:
    """The registered prior ``name`` (case-insensitive).

    Raises
    ------
    ValueError
        Unknown name; the message lists the registered ones.
    """
    key = str(name).strip().lower()
    if key not in PRIORS:
        raise ValueError(f"unknown prior {name!r}; registered priors: {', '.join(PRIORS)}")
    return PRIORS[key]


# ---------------------------------------------------------------------------- model sources
def _load_shipped(model: str) -> Callable[[str | None, int | None], Any]:
    def load(path: str | None, channels: int | None) -> Any:
        from priors import load_pretrained
        from priors.pretrained import WEIGHTS_DIR, pretrained_names

        if path is not None:
            return _load_file(path, channels)
        if model not in pretrained_names():
            import priors.pretrained as pretrained

            config = Path(pretrained.__file__).with_name("configs") / f"{model}.yaml"
            how = (f"produce it with `stablepnp train priors/configs/{model}.yaml`" if config.is_file()
                   else "train a model with `stablepnp train CONFIG.yaml`")
            raise FileNotFoundError(
                f"the shipped model {model!r} is not installed (no {Path(WEIGHTS_DIR) / (model + '.pt')}); "
                f"{how} and copy the run's model.pt to that path, or pass a checkpoint with --prior PATH.pt")
        return load_pretrained(model).eval()

    return load


def _load_file(path: str, channels: int | None) -> Any:
    """A checkpoint read by ``priors.load_checkpoint`` (a folder or a missing file in one line)."""
    from priors import load_checkpoint

    p = Path(path).expanduser()
    if p.is_dir():
        raise ValueError(f"checkpoint path '{p}' is a folder; pass the .pt file inside it to --prior")
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint file '{p}' does not exist; pass an existing .pt file to --prior")
    model = load_checkpoint(p) if channels is None else load_checkpoint(p, in_channels=channels)
    return model.eval()


def _load_bm3d(path: str | None, channels: int | None) -> Any:
    from priors import BM3DDenoiser

    return BM3DDenoiser()


def _load_deepinv(name: str) -> Callable[[str | None, int | None], Any]:
    def load(path: str | None, channels: int | None) -> Any:
        import inspect

        import deepinv

        cls = getattr(deepinv.models, name, None)
        if cls is None or not isinstance(cls, type):
            raise ValueError(f"deepinv:{name}: deepinv.models has no class {name!r}; check the spelling")
        params = inspect.signature(cls.__init__).parameters
        kwargs: dict[str, Any] = {}
        if "pretrained" in params:
            if path is None:
                raise ValueError(f"deepinv:{name} needs pretrained weights, which would be downloaded (disabled: "
                                 f"offline); give a local weights file with path: FILE.pth")
            if not Path(path).is_file():
                raise FileNotFoundError(f"deepinv:{name}: weights file '{path}' does not exist")
            kwargs["pretrained"] = str(path)
            kwargs.update({k: 1 for k in ("in_channels", "out_channels") if k in params})
        elif path is not None:
            raise ValueError(f"deepinv:{name} takes no weights; remove path")
        try:
            model = cls(**kwargs)
        except Exception as exc:  # noqa: BLE001 - third-party constructors raise anything
            raise ValueError(f"deepinv:{name} could not be built offline: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        return model.eval()

    return load


def resolve_prior(text: str) -> RegisteredPrior:
    """The entry for a prior given as a registered name, ``deepinv:NAME``, a checkpoint path or a model name.

    A checkpoint path (``.pt``/``.pth``/``.ckpt``) and an installed model name
    (``priors.pretrained_names()``) give an unregistered ``denoiser`` entry that loads that file;
    ``deepinv:NAME`` one that builds the ``deepinv.models`` class offline.

    Raises
    ------
    ValueError
        Anything else; the message lists the accepted forms.
    """
    raw = str(text).strip()
    low = raw.lower()
    if low in PRIORS:
        return PRIORS[low]
    if low.startswith("deepinv:") and raw.split(":", 1)[1]:
        name = raw.split(":", 1)[1]
        return RegisteredPrior(f"deepinv:{name.lower()}", "denoiser", load=_load_deepinv(name), label=name)
    for entry in PRIORS.values():
        if entry.model is not None and entry.model == raw:
            return entry
    if is_checkpoint(raw):
        return RegisteredPrior("checkpoint", "denoiser", load=lambda path, ch: _load_file(path or raw, ch),
                               label=Path(raw).stem)
    model = shipped_model_name(raw)
    if model is not None:
        return RegisteredPrior(model.lower(), "denoiser", load=_load_shipped(model), model=model, label=model)
    raise ValueError(f"unknown prior {text!r}; valid: {', '.join(PRIORS)}, deepinv:NAME, a shipped model name, or a "
                     f"checkpoint path ending in {'/'.join(CHECKPOINT_SUFFIXES)}")


def shipped_model_name(name: str) -> str | None:
    """The installed model ``name`` refers to (a registered entry's ``model`` or a pretrained name), else None."""
    entry = PRIORS.get(name.strip().lower())
    if entry is not None:
        return entry.model
    for e in PRIORS.values():
        if e.model is not None and e.model == name:
            return e.model
    if not name or is_checkpoint(name) or "/" in name or "\\" in name:
        return None
    try:
        from priors.pretrained import pretrained_names
    except ImportError:  # pragma: no cover - priors always ships it
        return None
    return name if name in pretrained_names() else None


def _tv(lam: float, _: Any) -> Any:
    from priors import TV

    # warm start: the dual of the previous TV prox seeds the next (same result, ~1.7x faster in PGD)
    return lam * TV(warm_start=True)


def _wavelet(lam: float, _: Any) -> Any:
    from priors import Wavelet

    return lam * Wavelet()


def _tikhonov(lam: float, _: Any) -> Any:
    from priors import Tikhonov

    return lam * Tikhonov(gradient=True)


def _register_builtin_priors() -> None:
    register_prior("tv", kind="classical", make=_tv, lam_at_reference=1e-3,
                   label="TV", description="total variation (isotropic), prox by an inner dual solver")
    register_prior("wavelet", kind="classical", make=_wavelet, lam_at_reference=2e-3,
                   description="orthonormal db4 wavelets, 3 levels, l1 on the details")
    register_prior("tikhonov", kind="classical", make=_tikhonov,
                   lam_at_reference=1e-2, description="gradient-l2, 1/2 ||grad x||^2")
    register_prior("bm3d", kind="denoiser", load=_load_bm3d, label="BM3D",
                   description="BM3D denoiser in Plug-and-Play (needs the bm3d extra)")
    # averaged_gray: best PnP level 0.158 x noise on the held-out image (see pnp.build.PNP_SIGMA_SCALE)
    register_prior("averaged", kind="denoiser", load=_load_shipped("averaged_gray"), model="averaged_gray",
                   sigma_scale=0.16, description="shipped certified averaged denoiser averaged_gray")
    register_prior("dncnn", kind="denoiser", load=_load_shipped("dncnn_gray"), model="dncnn_gray",
                   description="shipped unconstrained DnCNN baseline dncnn_gray")
    register_prior("ridge", kind="smooth", load=_load_shipped("ridge_gray"), model="ridge_gray",
                   description="shipped convex ridge regularizer ridge_gray (smooth convex problem)")
    # ridge_stack_gray: best PnP level 0.25 / 0.28 x noise on the held-out image (noise 0.01 / 0.03;
    # priors/results/compare_ridge.md), inside its trained range down to 0.5/255
    register_prior("ridge_stack", kind="denoiser", load=_load_shipped("ridge_stack_gray"), model="ridge_stack_gray",
                   sigma_scale=0.25, description="shipped certified ridge stack ridge_stack_gray (3 averaged ridge steps) in PnP")
    # BSD400-trained ridge regularizers (priors/configs/*_bsd400.yaml); weight lam(noise) and mu(noise) are the
    # models' own trained values at the noise level (the MAP weights of their prox denoisers)
    register_prior("crr", kind="smooth", load=_load_shipped("crr_bsd400"), model="crr_bsd400",
                   description="shipped convex ridge regularizer crr_bsd400 (BSD400, prox-trained; smooth convex problem)")
    register_prior("wcrr", kind="smooth", load=_load_shipped("wcrr_bsd400"), model="wcrr_bsd400",
                   description="shipped weakly convex ridge regularizer wcrr_bsd400 (BSD400; convex for denoising, "
                               "a stationary point otherwise)")


# ============================================================================ algorithms
@dataclass(frozen=True)
class RegisteredAlgorithm:
    """One algorithm the job layer can run: its class and the job layer's step unit.

    Parameters
    ----------
    name : str
        Lower-case name used in configs and on the command line.
    target : type or str
        The algorithm class (a :class:`pnp.run.Algorithm` subclass), or where to import it from,
        ``"module:Class"`` (imported when the entry is first used: listing names costs nothing).
        Constructed as ``cls(problem, prior, step=, relaxation=, unsafe=, accelerate=)``.
    description : str
        One line for listings.
    """

    name: str
    target: Any
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or self.name != self.name.strip().lower():
            raise ValueError(f"algorithm name must be a non-empty lower-case string, got {self.name!r}")
        if isinstance(self.target, str):
            module, _, attribute = self.target.partition(":")
            if not module or not attribute:
                raise ValueError(f"algorithm {self.name!r}: target must be a class or 'module:Class', "
                                 f"got {self.target!r}")
        else:
            _check_algorithm_class(self.name, self.target)

    @property
    def cls(self) -> type:
        """The algorithm class (imported on first use when registered as ``"module:Class"``)."""
        if not isinstance(self.target, str):
            return self.target
        cls = _IMPORTED.get(self.target)
        if cls is None:
            import importlib

            module, _, attribute = self.target.partition(":")
            try:
                cls = getattr(importlib.import_module(module), attribute)
            except (ImportError, AttributeError) as exc:
                raise ImportError(f"algorithm {self.name!r}: cannot import {self.target} ({exc})") from None
            _check_algorithm_class(self.name, cls)
            _IMPORTED[self.target] = cls
        return cls

    @property
    def accelerable(self) -> bool:
        """True when safeguarded Anderson acceleration (:mod:`pnp.acceleration`) knows the iteration map."""
        from pnp.acceleration import accelerable

        return accelerable(self.cls)

    @property
    def step_rule(self) -> str:
        """The step bound of the class's theorem, e.g. ``"step < 2/L"`` (``""`` when it declares none)."""
        bound = getattr(getattr(self.cls, "theory", None), "step_bound", None)
        return "" if bound is None else bound.label

    @staticmethod
    def step_for(factor: float, L: float | None) -> float | None:
        """The job layer's step unit: ``factor / L``; None (the class's default step) for factor 1 or no L."""
        return None if factor == 1.0 or not L else factor / L

    def build(self, problem: Any, prior: Any, *, step: float | None = None, relaxation: float = 1.0,
              unsafe: bool = False, accelerate: str = "none", restart: str = "none") -> Any:
        """The algorithm instance; ``accelerate="anderson"`` is refused where the class has no accelerated
        form, and ``restart`` other than ``"none"`` where it has no momentum to restart."""
        from pnp.acceleration import refusal

        extra: dict[str, Any] = {}
        if self.accelerable:
            extra["accelerate"] = accelerate
        elif accelerate == "anderson":
            raise ValueError(refusal(self.cls.name, None))
        if getattr(self.cls, "restart_schemes", ()):
            extra["restart"] = restart
        elif restart != "none":
            raise ValueError(f"restart: {self.name} has no momentum to restart; use --restart none or --algorithm fista")
        return self.cls(problem, prior, step=step, relaxation=relaxation, unsafe=unsafe, **extra)


#: The registered algorithms by name (builtins below; :func:`register_algorithm` adds more).
ALGORITHMS: dict[str, RegisteredAlgorithm] = {}
#: Classes of entries registered as ``"module:Class"``, once imported.
_IMPORTED: dict[str, type] = {}


def _check_algorithm_class(name: str, cls: Any) -> None:
    from pnp.run import Algorithm

    if not (isinstance(cls, type) and issubclass(cls, Algorithm)):
        raise ValueError(f"algorithm {name!r}: cls must be a subclass of pnp.run.Algorithm, got {cls!r}")


def register_algorithm(name: str, cls: type | str, *, description: str = "",
                       replace_existing: bool = False) -> RegisteredAlgorithm:
    """Add an algorithm class (or ``"module:Class"``, imported when first used) to :data:`ALGORITHMS`.

    Examples
    --------
    >>> from pnp import PGD
    >>> class Slow(PGD):
    ...     name = "SLOW"
    >>> register_algorithm("slow", Slow).step_rule
    'step < 2/L'
    >>> unregister_algorithm("slow")
    """
    key = str(name).strip().lower()
    if key in ALGORITHMS and not replace_existing:
        raise ValueError(f"algorithm {key!r} is already registered; pass replace_existing=True to replace it")
    entry = RegisteredAlgorithm(key, cls, description)
    ALGORITHMS[key] = entry
    return entry


def unregister_algorithm(name: str) -> None:
    """Remove an algorithm added by :func:`register_algorithm` (a missing name is ignored)."""
    ALGORITHMS.pop(str(name).strip().lower(), None)


def algorithm_entry(name: str) -> RegisteredAlgorithm:
    """The registered algorithm ``name`` (case-insensitive); unknown names list the registered ones."""
    key = str(name).strip().lower()
    if key not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; registered algorithms: {', '.join(ALGORITHMS)}")
    return ALGORITHMS[key]


def _register_builtin_algorithms() -> None:
    for name, text in (("PGD", "proximal gradient (forward-backward)"), ("FISTA", "accelerated proximal gradient"),
                       ("ADMM", "alternating direction method of multipliers"), ("DRS", "Douglas-Rachford splitting"),
                       ("HQS", "half-quadratic splitting"), ("PDHG", "primal-dual hybrid gradient")):
        register_algorithm(name.lower(), f"pnp.algorithms:{name}", description=text)


class _Classes(Mapping):
    """Read-only view ``{name: class}`` of :data:`ALGORITHMS` (the form of ``pnp.ALGORITHMS``)."""

    def __getitem__(self, name: str) -> type:
        return ALGORITHMS[name].cls

    def __iter__(self) -> Iterator[str]:
        return iter(ALGORITHMS)

    def __len__(self) -> int:
        return len(ALGORITHMS)

    def __repr__(self) -> str:
        return repr({k: v.cls.__name__ for k, v in ALGORITHMS.items()})


#: ``{name: algorithm class}``, always in step with :data:`ALGORITHMS`.
ALGORITHM_CLASSES: Mapping[str, type] = _Classes()

_register_builtin_priors()
_register_builtin_algorithms()
