"""Building a solve job's prior and algorithm from its spec, through the registries of :mod:`pnp.registry`.

:func:`build_prior` turns a :class:`pnp.spec.SolverSpec` into a prior for a problem (a weighted
classical functional, a learned smooth convex regulariser, or a denoiser run at a level in
Plug-and-Play) and a description of its parameters; :func:`build_algorithm` instantiates the
registered algorithm, which refuses a step above its theorem's bound unless ``unsafe``.

What a loaded model can do is asked of the model: a ``cost`` method makes it a convex
regulariser (solved variationally unless a denoiser level is given), a recorded trained noise
range makes its level default inside that range, its ``certificate()`` decides the guarantee.

Examples
--------
>>> from pnp.spec import SolverSpec
>>> from problems import ProblemSpec
>>> prior, info = build_prior(SolverSpec(prior="tv"), ProblemSpec(sigma=0.03))
>>> round(info["lam"], 6), info["lam_source"]
(0.005196, 'default for noise 0.03')
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from pnp.registry import RegisteredPrior, algorithm_entry, prior_entry, resolve_prior
from pnp.spec import SolverSpec
from problems import ProblemSpec

__all__ = ["default_lam", "noise_level", "shipped_model", "build_prior", "build_algorithm", "noise_warnings",
           "LoadedPrior", "load_prior", "weights_hash"]


def default_lam(prior: str, noise_sigma: float) -> float:
    """Default weight of a registered classical prior for a given Gaussian noise level.

    ``lam_at_reference * (max(noise_sigma, 0.001) / 0.01) ** 1.5``. The optimal weight grows
    faster than the noise level and slower than its square (the MAP scaling): on the cameraman
    deblurring job at 128x128 the best weights at noise 0.01 / 0.03 / 0.05 were about
    TV 0.001 / 0.004 / 0.012, wavelet 0.002 / 0.01 / 0.025, gradient-Tikhonov 0.01 / 0.04 / 0.1,
    which the exponent 1.5 follows within the flat part of each PSNR curve. The floor of 0.001
    keeps a small weight for (nearly) noiseless data. The weights at noise 0.01 were chosen by a
    sweep on the default job (camera, gaussian:1.6 blur, PGD to tol 1e-5): TV with lam 1e-3 gives
    28.2 dB / SSIM 0.82 from a 24.7 dB / 0.72 observation (256x256).

    Examples
    --------
    >>> default_lam("tv", 0.01)
    0.001
    """
    return prior_entry(prior).default_lam(noise_sigma)


def noise_level(spec: ProblemSpec, observation: Any = None) -> float:
    """Gaussian-equivalent noise std of the problem: ``sigma``; for Poisson data the effective level
    ``sqrt(gain * mean intensity + sigma^2)`` of :func:`pnp.poisson.spec_effective_noise` (the mean of
    ``observation``, 0.5 without one)."""
    from pnp.poisson import spec_effective_noise

    return spec_effective_noise(spec, observation)


def noise_warnings(spec: ProblemSpec, prior: Any, prior_info: Mapping[str, Any], step: float) -> list[str]:
    """Warnings about a noise level far from the image range or the denoiser's trained range, and clamped levels."""
    from priors import trained_sigma_range

    out: list[str] = []
    noise = noise_level(spec)
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


def shipped_model(name: str) -> tuple[str, Path]:
    """The shipped model file of a prior name: ``(model name, priors/weights/<model name>.pt)``.

    Raises
    ------
    FileNotFoundError
        The model file is not installed; the one-line message names the ``stablepnp train``
        command that produces it.
    """
    import priors.pretrained as pretrained

    entry = resolve_prior(name)
    if entry.model is None:
        raise ValueError(f"prior {name!r} has no shipped model; pass a shipped model name or a checkpoint path")
    path = Path(pretrained.WEIGHTS_DIR) / f"{entry.model}.pt"
    if entry.model not in pretrained.pretrained_names():
        try:
            entry.load(None, None)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"prior {name!r}: {exc}") from None
    return entry.model, path


def _load_model(spec: SolverSpec, entry: RegisteredPrior, channels: int | None, info: dict) -> Any:
    """The prior's model (loaded once), with ``info`` naming where it came from."""
    if spec.is_checkpoint:
        path = Path(spec.prior).expanduser()
        info["checkpoint"] = str(path)
        info["name"] = f"checkpoint:{path.name}"
        return entry.load(str(path), channels)
    if entry.model is not None:
        model_name, path = shipped_model(spec.prior)
        info["checkpoint"] = str(path)
        info["model"] = model_name
        return entry.load(None, None)
    model = entry.load(None, channels)
    return model.eval() if isinstance(model, torch.nn.Module) else model


def _checkpoint_sigma(model: Any, noise: float) -> tuple[float | None, str]:
    """Default denoiser level for a loaded model, and where it comes from.

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


def _ridge_prior(model: Any, lam: float | None, noise: float, info: dict,
                 poisson_prior: str | None = None) -> tuple[Any, dict]:
    """A learned convex regularizer as the smooth variational prior ``lam R_mu`` (see priors.ridge); a grey
    model sums over channels. ``poisson_prior`` (the prior's name): the weight on a Poisson likelihood
    (:func:`pnp.poisson.poisson_lam`), ``mu`` at the effective noise level ``noise``."""
    from priors.ridge import ridge_weights
    from priors.wcrr import WeaklyConvexRidge, smooth_prior

    dlam, mu, source = ridge_weights(model, noise, info.get("model", ""))
    if poisson_prior is not None:
        from pnp.poisson import poisson_lam

        dlam = poisson_lam(poisson_prior, dlam, noise)
        source = f"Poisson rule (pnp.poisson) for the effective noise level {noise:.4g}, from the {source}"
    if lam is not None:
        source = "given (mu: " + source + ")"
    kind = "weakly convex ridge regularizer" if isinstance(model, WeaklyConvexRidge) else "convex ridge regularizer"
    info.update(lam=dlam if lam is None else lam, mu=mu, lam_source=source, kind=kind)
    return smooth_prior(model, weight=info["lam"], mu=mu), info


def _per_channel(denoiser: Any, channels: int | None, info: dict) -> Any:
    """A grey model on a colour problem runs on each channel (its certificate holds per channel)."""
    expected = getattr(getattr(denoiser, "config", None), "in_channels", None)
    if channels is None or not isinstance(expected, int) or expected == channels:
        return denoiser
    if expected != 1:
        name = Path(info.get("checkpoint", info["name"])).name
        raise ValueError(f"checkpoint '{name}' expects {expected}-channel images but the problem has "
                         f"{channels}; use --gray")
    from priors.channelwise import ChannelwiseDenoiser

    info["channelwise"] = True
    return ChannelwiseDenoiser(denoiser, channels=channels)


def _denoiser_prior(denoiser: Any, spec: SolverSpec, default: tuple[float | None, str], info: dict) -> Any:
    """The PnP prior of ``denoiser`` at the given weight or level (``default``: the level's default and source)."""
    from priors import DenoiserPrior, denoiser_at_level, trained_sigma_range

    if spec.lam is not None:
        return DenoiserPrior(denoiser, lam=spec.lam)
    sigma = spec.denoiser_sigma
    if sigma is None:
        sigma, source = default
        if sigma is None or not sigma > 0:
            raise ValueError("the problem is noiseless, so the denoiser level cannot default to the noise level; "
                             "pass --denoiser-sigma or --lam")
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
    return prior


def build_prior(spec: SolverSpec, problem_spec: ProblemSpec, *, channels: int | None = None,
                observation: Any = None) -> tuple[Any, dict]:
    """The prior named by ``spec`` and a description of its parameters.

    Parameters
    ----------
    spec : SolverSpec
        Prior name (a registered one, a shipped model name or a checkpoint path), ``lam`` / ``denoiser_sigma``.
    problem_spec : ProblemSpec
        Supplies the noise level for default weights / denoiser levels.
    channels : int, optional
        Image channel count, checked against a model's ``in_channels``.
    observation : Tensor, optional
        The data; for Poisson noise its mean intensity sets the effective noise level and the default
        weight on the likelihood (:mod:`pnp.poisson`).

    Returns
    -------
    prior : priors.Prior
        A classical prior scaled by its weight, a learned smooth regulariser, or a denoiser prior.
    info : dict
        ``name``, ``lam`` (None for a fixed-sigma denoiser until the step is known),
        ``denoiser_sigma``, ``lam_source`` and, for a model file, ``checkpoint``.

    Raises
    ------
    ValueError, FileNotFoundError, ImportError
        Bad weights, a missing checkpoint, or a missing optional package (bm3d extra).
    """
    entry = spec.entry
    noise = noise_level(problem_spec, observation)
    poisson = problem_spec.noise_model != "gaussian"
    info: dict[str, Any] = {"name": spec.prior, "lam": spec.lam, "denoiser_sigma": None, "lam_source": "given"}
    if entry.kind == "classical" and not spec.is_checkpoint:
        lam = spec.lam
        if lam is None:
            lam = entry.default_lam(noise)
            info["lam_source"] = f"default for noise {noise:g}"
            if poisson:
                from pnp.poisson import poisson_lam

                lam = poisson_lam(spec.prior, lam, noise)
                info["lam_source"] = f"Poisson rule (pnp.poisson) for the effective noise level {noise:.4g}"
        info["lam"] = lam
        return entry.build(lam), info
    model = _load_model(spec, entry, channels, info)
    expected = getattr(getattr(model, "config", None), "in_channels", None)
    if callable(getattr(model, "cost", None)) and spec.denoiser_sigma is None and expected in (1, channels):
        return _ridge_prior(model, spec.lam, noise, info, poisson_prior=spec.prior if poisson else None)
    denoiser = _per_channel(model, channels, info)
    scale = entry.sigma_scale
    default = _checkpoint_sigma(denoiser, noise * scale)
    if scale != 1.0:
        default = (default[0], f"{scale:g} x the noise level, tuned for PnP; {default[1]}")
    return _denoiser_prior(denoiser, spec, default, info), info


def build_algorithm(spec: SolverSpec, problem: Any, prior: Any) -> Any:
    """Instantiate the registered algorithm of ``spec`` (refuses out-of-bound steps unless ``spec.unsafe``)."""
    try:
        return algorithm_entry(spec.algorithm).build(problem, prior, step=spec.step, relaxation=spec.relaxation,
                                                     unsafe=spec.unsafe, accelerate=spec.accelerate,
                                                     restart=spec.restart)
    except ValueError as exc:
        # The algorithms speak Python ("unsafe=True"); the config and the CLI spell it differently.
        msg = str(exc).replace("pass unsafe=True to run anyway", "pass --unsafe (or unsafe: true) to run anyway")
        raise ValueError(msg) from None


# ============================================================================ a prior loaded once, made per value
@dataclass
class LoadedPrior:
    """A registered prior with its model loaded once: :meth:`make` builds the prior for each parameter value.

    Used where one prior runs at many values or on many images (``compare``'s tuning and cells,
    ``solve --input-dir``). ``fingerprint`` identifies what the prior computes (name, and the hash
    of the weights of a model file) for cache keys.
    """

    registered: RegisteredPrior
    model: Any = None
    fingerprint: dict = field(default_factory=dict)

    @property
    def param(self) -> str:
        """``"lam"`` or ``"sigma"``."""
        return self.registered.param

    @property
    def sigma_range(self) -> tuple[float, float] | None:
        """A denoiser's trained noise range (None for other kinds or when the model records none)."""
        from priors import trained_sigma_range

        return trained_sigma_range(self.model) if self.registered.kind == "denoiser" else None

    def make(self, value: float, *, noise: float | None = None) -> Any:
        """The prior at parameter ``value`` (a smooth regulariser's ``mu`` follows ``noise`` when given)."""
        return self.registered.build(value, self.model, noise=noise)

    def level(self, value: float) -> dict[str, float] | None:
        """How a denoiser runs at parameter ``value``: its sigma and relaxation strength (None for a weight)."""
        from priors.pnp_prior import relaxed_level

        if self.param != "sigma":
            return None
        sigma, strength = relaxed_level(value, self.sigma_range)
        return {"sigma": sigma, "strength": strength}

    def default_range(self, noise: float) -> tuple[float, float]:
        """Search interval of the parameter for noise level ``noise``."""
        entry = self.registered
        if entry.kind == "classical":
            c = entry.default_lam(noise) if entry.lam_at_reference is not None else 1e-3
            return (c / 10.0, c * 10.0)
        if entry.kind == "smooth":
            from priors.ridge import ridge_weights

            c = ridge_weights(self.model, noise, entry.model or "")[0]
            return (c / 4.0, c * 4.0)
        lo, hi = 0.5 * noise, 5.0 * noise
        if self.sigma_range is not None:
            # below the trained floor the denoiser is relaxed (priors.denoiser_at_level); above it is refused
            rhi = self.sigma_range[1]
            hi = min(hi, rhi)
            if not lo < hi:  # the noise is above the trained range: search its top part
                lo, hi = rhi / 2.5, rhi
        return (lo, hi)

    def default_value(self, noise: float) -> float:
        """An untuned default: the geometric centre of the weight range, or the noise level inside the level range."""
        lo, hi = self.default_range(max(noise, 1e-3))
        return math.sqrt(lo * hi) if self.param == "lam" else min(max(noise, lo), hi)


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def weights_hash(model: torch.nn.Module) -> str:
    """Hash of what a learned model computes (config + weights), not of its file: re-storing a file's
    certificate or training notes keeps the finished cells of a comparison valid."""
    h = hashlib.sha256(repr(getattr(model, "config", type(model).__name__)).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def load_prior(text: str, *, path: str | None = None, label: str | None = None) -> LoadedPrior:
    """Resolve ``text`` in the registry and load its model once (``path``: a weights file replacing the shipped one).

    Raises
    ------
    ImportError, ValueError, FileNotFoundError
        A missing optional package, unknown prior, missing weights or checkpoint.
    """
    entry = resolve_prior(text)
    name = label or entry.display
    if entry.kind == "classical":
        return LoadedPrior(entry, None, {"prior": entry.name})
    deepinv = entry.name.startswith("deepinv:")
    from_file = entry.model is not None or entry.name == "checkpoint" or (path is not None and not deepinv)
    if entry.name == "checkpoint":
        path = path or str(text).strip()
        if not Path(path).expanduser().is_file():
            raise FileNotFoundError(f"prior {name!r}: checkpoint '{Path(path).expanduser()}' does not exist")
    try:
        model = entry.load(path, None)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"prior {name!r}: {exc}") from None
    if isinstance(model, torch.nn.Module):
        model.eval()
    if deepinv:
        fingerprint = {"prior": str(text), "weights": _file_hash(Path(path)) if path else None}
    elif from_file:
        fingerprint = {"prior": entry.name, "weights": weights_hash(model)}
        if entry.kind == "smooth":  # cells computed with mu along lam (before) are not reused
            fingerprint["mu"] = "by noise level"
    else:
        fingerprint = {"prior": entry.name}
    return LoadedPrior(entry, model, fingerprint)
