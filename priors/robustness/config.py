"""Configuration of the ``stablepnp robustness`` job: frozen specs read strictly from YAML.

Unknown keys are errors that list the valid ones; a value of the wrong type is an error that names
the field and the expected type.  :func:`load_config` reads a file, :class:`RobustnessConfig` is
the whole job.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from problems.config import check_field_types, check_keys, from_mapping, load_yaml_mapping
from problems.images import available_images

from .models import ClassifierConfig

__all__ = [
    "PAPER_EPS",
    "TrainSpec",
    "ModelSpec",
    "DataSpec",
    "EvalSpec",
    "PriorEvalSpec",
    "RobustnessConfig",
    "load_config",
]

PAPER_EPS = (36 / 255, 72 / 255, 108 / 255)
# how every section is read (see problems.config): types checked, an error names the section it comes from
_STRICT = {"check_types": True, "none_is_empty": True, "context": True}


def _tuple(v: Any) -> tuple:
    return tuple(v) if isinstance(v, (list, tuple)) else (v,)


def _positive(where: str, **values: Any) -> None:
    """Every value (None skipped) is a finite number > 0: radii, rates, scales (``.inf`` and ``.nan`` refused)."""
    for name, v in values.items():
        if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{where}.{name} must be a finite number > 0, got {v!r}")


def _nonnegative(where: str, **values: Any) -> None:
    """Every value is a finite number >= 0 (weights of optional terms: 0 switches them off)."""
    for name, v in values.items():
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise ValueError(f"{where}.{name} must be a finite number >= 0, got {v!r}")


def _counts(where: str, **values: Any) -> None:
    """Every value (None skipped) is an integer >= 1: a count of steps, samples, trials or a batch size."""
    for name, v in values.items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"{where}.{name} must be an integer >= 1, got {v!r}")


def _checkpoint_file(where: str, path: Any) -> None:
    """A checkpoint named in the config is an existing file (checked before any training)."""
    if path is None:
        return
    if not isinstance(path, str) or not path:
        raise ValueError(f"{where} must be the path of a checkpoint file, got {path!r}")
    p = Path(path).expanduser()
    if not p.exists():
        raise ValueError(f"{where}: file '{p}' does not exist; give the path of a checkpoint written by this job "
                         "(or stablepnp train for a denoiser)")
    if not p.is_file():
        raise ValueError(f"{where}: '{p}' is not a regular file; give the path of a checkpoint file")


@dataclass(frozen=True)
class TrainSpec:
    """Training of one classifier (Adam, warm-up + cosine learning rate, Lipschitz-margin loss).

    ``margin_eps`` > 0 uses Tsuzuku et al.'s margin loss: ``sqrt(2) * nominal_lipschitz * margin_eps``
    is added to every non-target logit before the cross-entropy of ``temperature * logits``.
    ``weight_reg`` / ``jacobian_reg`` weight the contractivity regularisers of ODE blocks.
    ``time_budget_s`` stops training early (the model is then marked finished).
    """

    epochs: float = 1.0
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.0
    margin_eps: float = 0.0
    nominal_lipschitz: float = 1.0
    temperature: float = 1.0
    weight_reg: float = 0.0
    jacobian_reg: float = 0.0
    time_budget_s: float | None = None
    checkpoint_every: int = 50

    def __post_init__(self) -> None:
        _positive("train", epochs=self.epochs, lr=self.lr, temperature=self.temperature,
                  nominal_lipschitz=self.nominal_lipschitz)
        _counts("train", batch_size=self.batch_size, checkpoint_every=self.checkpoint_every)
        _nonnegative("train", weight_decay=self.weight_decay, margin_eps=self.margin_eps, weight_reg=self.weight_reg,
                     jacobian_reg=self.jacobian_reg)
        if self.time_budget_s is not None:  # 0: stop after the first step
            _nonnegative("train", time_budget_s=self.time_budget_s)


@dataclass(frozen=True)
class ModelSpec:
    """One classifier: a name, its architecture, its training, or a checkpoint to load."""

    name: str
    model: ClassifierConfig
    train: TrainSpec = field(default_factory=TrainSpec)
    checkpoint: str | None = None


@dataclass(frozen=True)
class DataSpec:
    """Dataset (``fashion_mnist`` idx files, ``fashion_mnist_subset`` npz, ``cifar10``) and sizes."""

    dataset: str = "fashion_mnist"
    data_dir: str | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    attack_limit: int | None = 1000

    def __post_init__(self) -> None:
        if self.dataset not in ("fashion_mnist", "fashion_mnist_subset", "cifar10"):
            raise ValueError(f"data.dataset {self.dataset!r} unknown; valid: fashion_mnist, fashion_mnist_subset, cifar10")
        # an accuracy "measured" on 0 samples is no measurement: null means all of them
        _counts("data", train_limit=self.train_limit, test_limit=self.test_limit, attack_limit=self.attack_limit)


@dataclass(frozen=True)
class EvalSpec:
    """Radii and attack settings (l2 radii in pixel units of [0, 1] images)."""

    eps: tuple[float, ...] = PAPER_EPS
    curve_eps_l2: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)
    curve_eps_linf: tuple[float, ...] = (0.0, 0.01, 0.02, 0.03, 0.05, 0.1)
    pgd_steps: int = 10
    pgd_restarts: int = 1
    gaussian_std: tuple[float, ...] = (0.1, 0.2, 0.3)
    salt_pepper: tuple[float, ...] = (0.05, 0.1, 0.2)
    batch_size: int = 250

    def __post_init__(self) -> None:
        for name in ("eps", "curve_eps_l2", "curve_eps_linf", "gaussian_std", "salt_pepper"):
            object.__setattr__(self, name, tuple(float(v) for v in _tuple(getattr(self, name))))
        for name in ("curve_eps_l2", "curve_eps_linf"):
            vals = getattr(self, name)
            if len(vals) < 2 or any(b <= a for a, b in zip(vals, vals[1:])):
                raise ValueError(f"evaluation.{name} must hold at least two increasing radii")
            if not all(math.isfinite(v) for v in vals) or vals[0] < 0:
                raise ValueError(f"evaluation.{name} must hold finite radii >= 0 (0: the clean accuracy), got {list(vals)}")
        if not self.eps:
            raise ValueError("evaluation.eps must hold at least one radius (e.g. [0.1411764706] = 36/255)")
        for name in ("eps", "gaussian_std", "salt_pepper"):
            for v in getattr(self, name):
                _positive("evaluation", **{name: v})
        if any(v > 1 for v in self.salt_pepper):
            raise ValueError(f"evaluation.salt_pepper amounts are fractions of the pixels in (0, 1], got {list(self.salt_pepper)}")
        _counts("evaluation", pgd_steps=self.pgd_steps, pgd_restarts=self.pgd_restarts, batch_size=self.batch_size)


@dataclass(frozen=True)
class PriorEvalSpec:
    """Worst-case amplification of denoisers and of PnP-PGD reconstruction maps (see prior_eval)."""

    denoisers: tuple[str, ...] = ("averaged", "unconstrained", "bm3d", "tv")
    images: tuple[str, ...] = ("camera", "astronaut", "coffee", "chelsea", "rocket")
    image_size: int = 64
    sigma: float = 25 / 255
    eps: float = 1.0
    attack_steps: int = 20
    random_trials: int = 20
    width: int = 16
    depth: int = 4
    train_steps: int = 300
    train_patch: int = 32
    train_batch: int = 16
    averaged_checkpoint: str | None = None
    unconstrained_checkpoint: str | None = None
    blur_std: float = 1.6
    noise_std: float = 0.01
    pnp_iterations: int = 10
    pnp_step: float = 1.0
    pnp_sigma: float = 0.03

    def __post_init__(self) -> None:
        object.__setattr__(self, "denoisers", tuple(_tuple(self.denoisers)))
        object.__setattr__(self, "images", tuple(_tuple(self.images)))
        # names other than the job-trained averaged / unconstrained are resolved through the prior
        # registry by the caller (pnp.robustness) before any training: see prior_eval.resolve_denoisers
        bad = [n for n in self.denoisers if not isinstance(n, str) or not n.strip()]
        if bad or not self.denoisers:
            raise ValueError("prior_eval.denoisers must be a non-empty list of prior names (averaged, unconstrained, "
                             "or any registered prior such as tv, bm3d, ridge)")
        known = available_images()
        missing = [n for n in self.images if n not in known and not Path(n).is_file()]
        if missing:  # checked here, not after the classifiers have trained
            raise ValueError(f"prior_eval.images: {missing[0]!r} is neither a bundled image ({', '.join(known)}) nor a file")
        _positive("prior_eval", eps=self.eps, pnp_step=self.pnp_step, sigma=self.sigma, pnp_sigma=self.pnp_sigma,
                  blur_std=self.blur_std)
        _nonnegative("prior_eval", noise_std=self.noise_std)
        _counts("prior_eval", image_size=self.image_size, attack_steps=self.attack_steps,
                random_trials=self.random_trials, width=self.width, depth=self.depth, train_steps=self.train_steps,
                train_patch=self.train_patch, train_batch=self.train_batch, pnp_iterations=self.pnp_iterations)
        if self.image_size < 8 or self.train_patch < 8:
            raise ValueError(f"prior_eval.image_size and prior_eval.train_patch must be >= 8, got {self.image_size} "
                             f"and {self.train_patch}")
        _checkpoint_file("prior_eval.averaged_checkpoint", self.averaged_checkpoint)
        _checkpoint_file("prior_eval.unconstrained_checkpoint", self.unconstrained_checkpoint)


@dataclass(frozen=True)
class RobustnessConfig:
    """Whole job; ``models`` is a list of :class:`ModelSpec`, ``prior_eval`` optional."""

    output_dir: str = "runs/robustness"
    seed: int = 0
    threads: int = 1
    progress: bool = True
    data: DataSpec = field(default_factory=DataSpec)
    models: tuple[ModelSpec, ...] = ()
    evaluation: EvalSpec = field(default_factory=EvalSpec)
    prior_eval: PriorEvalSpec | None = None


def _parse(raw: Any) -> RobustnessConfig:
    raw = check_keys(raw, sorted(f.name for f in dataclasses.fields(RobustnessConfig)), "config")
    scalars = {k: v for k, v in raw.items() if k in ("output_dir", "seed", "threads", "progress")}
    check_field_types(RobustnessConfig, scalars, "config")
    models = raw.get("models") or []
    if not isinstance(models, list) or not (models or raw.get("prior_eval")):
        raise ValueError("config needs models: a non-empty list of {name, model, train, checkpoint} "
                         "(or a prior_eval section alone, for a job that only evaluates priors)")
    specs = []
    for i, m in enumerate(models):
        m = check_keys(m, sorted(f.name for f in dataclasses.fields(ModelSpec)), f"models[{i}]")
        if not isinstance(m.get("name"), str):
            raise ValueError(f"models[{i}].name must be a string")
        model_raw = m.get("model") or {}
        if not isinstance(model_raw, dict):
            raise ValueError(f"models[{i}].model must be a mapping")
        try:
            cfg = ClassifierConfig.from_dict(model_raw)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"models[{i}].model: {exc}") from None
        train = from_mapping(TrainSpec, m.get("train"), f"models[{i}].train", **_STRICT)
        _checkpoint_file(f"models[{i}].checkpoint", m.get("checkpoint"))
        specs.append(ModelSpec(name=m["name"], model=cfg, train=train, checkpoint=m.get("checkpoint")))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique, got {names}")
    if isinstance(scalars.get("seed"), int) and scalars["seed"] < 0:
        raise ValueError(f"config.seed must be an integer >= 0, got {scalars['seed']}")
    threads = scalars.get("threads", 1)
    cores = os.cpu_count() or 1
    if isinstance(threads, int) and not 1 <= threads <= cores:
        raise ValueError(f"config.threads must lie in [1, {cores}] (this machine's cores), got {threads}")
    prior = raw.get("prior_eval")
    return RobustnessConfig(
        output_dir=str(raw.get("output_dir", "runs/robustness")),
        seed=int(raw.get("seed", 0)),
        threads=int(raw.get("threads", 1)),
        progress=bool(raw.get("progress", True)),
        data=from_mapping(DataSpec, raw.get("data"), "data", **_STRICT),
        models=tuple(specs),
        evaluation=from_mapping(EvalSpec, raw.get("evaluation"), "evaluation", **_STRICT),
        prior_eval=None if prior is None else from_mapping(PriorEvalSpec, prior, "prior_eval", **_STRICT),
    )


def load_config(path: str | Path) -> RobustnessConfig:
    """Read and validate a YAML config (``yaml.safe_load``; strict keys).

    Examples
    --------
    >>> from pathlib import Path
    >>> cfg = load_config(Path(__file__).parent / "configs" / "tiny.yaml")
    >>> cfg.data.dataset
    'fashion_mnist_subset'
    """
    try:
        raw = load_yaml_mapping(path)
    except FileNotFoundError as exc:
        raise ValueError(f"{exc}; pass the path of a YAML config") from None
    return _parse(raw)
