"""The learned-denoiser architectures and the model file format.

The trainer (:mod:`priors.training`), the loader (:mod:`priors.pretrained`), ``stablepnp certify``
and the certificate cache all read :data:`ARCHITECTURES`, so a new architecture is one entry
there (or one :func:`register_architecture` call from outside the package).  Loading a model
imports this module, never the trainer.

A model file (``model.pt``) is a ``torch.save`` of a plain dict, read back with
``torch.load(weights_only=True)``:

``format``
    :data:`MODEL_FORMAT`; a training checkpoint carries :data:`CHECKPOINT_FORMAT` and the same
    four keys below, so it loads as a model too.
``arch``
    A key of :data:`ARCHITECTURES`.
``model_config``
    The architecture's config as a dict (``config.to_dict()``).
``state_dict``
    The weights, as CPU tensors.
``certificate``
    ``Certificate.to_dict()`` of those weights, in plain Python types.
``training``
    A summary of the run that wrote the file (may be empty).

Examples
--------
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "model.pt"
>>> model = build_model("averaged", {"width": 4, "depth": 1})
>>> record = save_model_file(model, path, arch="averaged")
>>> sorted(read_model_file(path)) == sorted(record)
True
>>> architecture_of(model)
'averaged'
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .averaged import AveragedResNet, AveragedResNetConfig
from .baselines import DnCNN, DnCNNConfig
from .ridge import RidgeConfig, RidgeRegularizer
from .ridge_stack import RidgeStack, RidgeStackConfig
from .wcrr import WCRRConfig, WeaklyConvexRidge

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "CHECKPOINT_FORMAT",
    "MODEL_FORMAT",
    "architecture_of",
    "atomic_save",
    "build_model",
    "certificate_dict",
    "read_model_file",
    "register_architecture",
    "save_model_file",
]

MODEL_FORMAT = "stable-pnp-denoiser/1"
CHECKPOINT_FORMAT = "stable-pnp-train/1"


@dataclass(frozen=True)
class Architecture:
    """How to rebuild one kind of learned denoiser from the config stored in its file.

    Attributes
    ----------
    config : type
        Frozen config dataclass with a strict ``from_dict`` and a ``to_dict``
        (:class:`priors._config.ModelConfigMixin`).
    model : type
        The denoiser, built as ``model(config)``; it keeps ``config`` and has ``certificate()``.
    adversarial_certificate : bool
        Whether ``model.certificate(adversarial=True)`` runs the adversarial search itself;
        otherwise ``stablepnp certify`` runs :func:`priors.certify.empirical_lipschitz` over the
        trained sigma range next to ``model.certificate()``.
    """

    config: type
    model: type
    adversarial_certificate: bool = False

    def build(self, model_config: dict) -> torch.nn.Module:
        """A fresh model from its config dict (validated strictly by ``config.from_dict``)."""
        return self.model(self.config.from_dict(model_config))


#: Architecture name (the ``arch`` of a training config and of a model file) -> its entry.
ARCHITECTURES: dict[str, Architecture] = {
    "averaged": Architecture(AveragedResNetConfig, AveragedResNet, adversarial_certificate=True),
    "dncnn": Architecture(DnCNNConfig, DnCNN),
    "ridge": Architecture(RidgeConfig, RidgeRegularizer),
    "ridge_stack": Architecture(RidgeStackConfig, RidgeStack),
    "wcrr": Architecture(WCRRConfig, WeaklyConvexRidge),
}


def register_architecture(name: str, config: type, model: type, *, adversarial_certificate: bool = False) -> Architecture:
    """Add an architecture under ``name`` (training configs and model files then accept it).

    Registering the same entry twice is harmless; another entry under a taken name is refused.
    """
    entry = Architecture(config, model, adversarial_certificate)
    if ARCHITECTURES.get(name, entry) != entry:
        raise ValueError(f"architecture {name!r} is already registered (as {ARCHITECTURES[name].model.__name__})")
    ARCHITECTURES[name] = entry
    return entry


def build_model(arch: str, model_config: dict) -> torch.nn.Module:
    """Instantiate a denoiser from its architecture name and config dict."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch {arch!r} unknown; valid: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch].build(model_config)


def architecture_of(model: torch.nn.Module) -> str:
    """The registered name of ``model``'s architecture (its exact class first, then a base class)."""
    core = model.module if hasattr(model, "module") else model  # unwrap DistributedDataParallel
    matches = [name for name, entry in ARCHITECTURES.items() if isinstance(core, entry.model)]
    exact = [name for name in matches if type(core) is ARCHITECTURES[name].model]
    if matches:
        return (exact or matches)[0]
    raise ValueError(f"{type(core).__name__} is not a registered architecture; valid: {', '.join(ARCHITECTURES)}")


def certificate_dict(model: torch.nn.Module) -> dict:
    """``model.certificate()`` as a dict of plain Python types (what ``weights_only`` loading accepts)."""
    with torch.no_grad():
        cert = model.certificate()
    return json.loads(json.dumps(cert.to_dict(), default=float))


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_model_file(model: torch.nn.Module, path: str | Path, *, arch: str, training: dict | None = None) -> dict:
    """Write a self-describing model file: weights, config, certificate, training summary."""
    core = model.module if hasattr(model, "module") else model
    record = {
        "format": MODEL_FORMAT,
        "arch": arch,
        "model_config": core.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in core.state_dict().items()},
        "certificate": certificate_dict(core),
        "training": training or {},
    }
    atomic_save(record, Path(path))
    return record


def read_model_file(path: str | Path) -> dict:
    """The record of a model file or training checkpoint, with a one-line error for anything else."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"model file '{path}' is a folder; give the model file inside it (e.g. '{path / 'model.pt'}')")
    if not path.is_file():
        raise FileNotFoundError(f"model file '{path}' does not exist")
    try:
        rec = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"model file '{path}' could not be loaded ({type(exc).__name__}); it is truncated or not a stable-pnp model"
        ) from None
    if not isinstance(rec, dict) or rec.get("format") not in (MODEL_FORMAT, CHECKPOINT_FORMAT):
        raise ValueError(f"'{path}' is not a stable-pnp model file (no '{MODEL_FORMAT}' header)")
    return rec
