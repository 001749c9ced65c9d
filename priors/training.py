"""Training of learned denoisers: ``stablepnp train CONFIG.yaml [--resume]``.

One code path trains the averaged network, the same network with the constraint switched off,
and the unconstrained DnCNN baseline, so the price of the guarantee is measured.  Runs on CUDA
when available, on CPU otherwise, and under ``torchrun --nproc_per_node=N`` with
DistributedDataParallel (gloo on CPU, nccl on GPU).  A checkpoint (weights, optimizer,
scheduler, RNG and sampler states, config, certificate, data description) is written every
``checkpoint.every`` steps and when SIGINT/SIGTERM arrives (by rank 0, holding every rank's data
stream); ``--resume`` continues exactly on the same number of processes, and on another number
with the same weights, optimizer and schedule (ranks the checkpoint lacks start their own streams).
The steps themselves are the project's one training loop, :func:`priors.training_loop.fit_denoiser`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from problems.images import load_image
from problems.metrics import psnr
from problems.config import check_keys, load_yaml_mapping

from ._config import parse_number
from .averaged import AveragedResNet, untie_substeps
from .data import (VALIDATION_IMAGE, PatchSampler, folder_images, folder_manifest, training_photo_names,
                   training_photos)
from .pretrained import load_checkpoint
# the architectures and the file format live in .registry (loading a model never imports the trainer);
# build_model, save_model_file and MODEL_FORMAT are re-exported from here as before
from .registry import (ARCHITECTURES, CHECKPOINT_FORMAT, MODEL_FORMAT, atomic_save, build_model, certificate_dict,
                       save_model_file)
from .ridge import RidgeRegularizer, transfer_state
from .ridge_stack import RidgeStack, stack_from_single
from .training_checkpoint import _nonfinite, load_training_checkpoint
from .training_loop import NOISE_SAMPLINGS, StepOutcome, fit_denoiser

__all__ = ["TrainConfig", "build_model", "train", "main", "save_model_file", "MODEL_FORMAT"]


def _section(name: str, d: Any, klass: type) -> dict:
    """The mapping ``d`` (``None``: empty) once its keys are fields of ``klass`` (listed sorted)."""
    return check_keys(d, sorted(f.name for f in fields(klass)), f"training config section '{name}'",
                      none_is_empty=True)


@dataclass(frozen=True)
class DataConfig:
    patch_size: int = 40
    batch_size: int = 16
    dead_leaves_fraction: float = 0.5
    photos: bool = True
    folders: tuple[str, ...] = ()
    pool_size: int = 64
    refresh_every: int = 1000


@dataclass(frozen=True)
class NoiseConfig:
    sigma_min: float = 5 / 255
    sigma_max: float = 55 / 255
    sampling: str = "uniform"  # uniform | log (log sigma uniform: more batches at the low levels PnP uses)


@dataclass(frozen=True)
class OptimConfig:
    name: str = "adam"
    lr: float = 1e-3
    schedule: str = "cosine"  # cosine | step | none
    steps: int = 10000
    weight_decay: float = 0.0
    momentum: float = 0.9
    milestones: tuple[int, ...] = ()
    grad_clip: float = 0.0
    loss: str = "mse"  # mse | l1 (the convex ridge recipe trains with l1)


@dataclass(frozen=True)
class ValidationConfig:
    every: int = 500
    size: int = 128
    sigmas: tuple[float, ...] = (15 / 255, 25 / 255, 50 / 255)


@dataclass(frozen=True)
class CheckpointConfig:
    dir: str = "runs/train"
    every: int = 250


@dataclass(frozen=True)
class TrainConfig:
    """Strictly validated training configuration (see ``priors/configs/*.yaml``)."""

    arch: str = "averaged"
    model: dict = field(default_factory=dict)
    data: DataConfig = DataConfig()
    noise: NoiseConfig = NoiseConfig()
    optim: OptimConfig = OptimConfig()
    validation: ValidationConfig = ValidationConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    init_from: str = ""  # model file or checkpoint whose weights start the run (warm start)

    @classmethod
    def from_dict(cls, raw: Any) -> "TrainConfig":
        top = _section("top level", raw, cls)
        arch = top.get("arch", "averaged")
        if arch not in ARCHITECTURES:
            raise ValueError(f"arch {arch!r} unknown in training config; valid: {', '.join(ARCHITECTURES)}")
        model_raw = top.get("model") or {}
        if not isinstance(model_raw, dict):
            raise ValueError(f"model must be a mapping of architecture settings (e.g. width: 32), got {model_raw!r}")
        model = dict(model_raw)
        model_cfg_cls = ARCHITECTURES[arch].config
        parsed = model_cfg_cls.from_dict(model)  # validates keys and values now, not at step 0
        for key in ("seed", "threads"):
            v = top.get(key, 0)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{key} must be a non-negative integer, got {v!r}")

        def sub(name: str, klass: type) -> Any:
            d = _section(name, top.get(name), klass)
            out = {}
            for f in fields(klass):
                if f.name not in d:
                    continue
                v = d[f.name]
                default = getattr(klass(), f.name)
                if isinstance(default, bool):
                    if not isinstance(v, bool):
                        raise ValueError(f"{name}.{f.name} must be true or false, got {v!r}")
                elif isinstance(default, int):
                    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                        raise ValueError(f"{name}.{f.name} must be a non-negative integer, got {v!r}")
                elif isinstance(default, float):
                    v = parse_number(v, f"{name}.{f.name}")
                elif isinstance(default, tuple):
                    if not isinstance(v, (list, tuple)):
                        raise ValueError(f"{name}.{f.name} must be a list, got {v!r}")
                    v = tuple(parse_number(x, f"{name}.{f.name}") if f.name != "folders" else str(x) for x in v)
                    if f.name == "milestones":
                        if any(x != int(x) or x < 1 for x in v):
                            raise ValueError(f"{name}.milestones must be positive integer steps, got {list(v)!r}")
                        v = tuple(int(x) for x in v)
                elif isinstance(default, str) and not isinstance(v, str):
                    raise ValueError(f"{name}.{f.name} must be a string, got {v!r}")
                out[f.name] = v
            return klass(**out)

        noise = sub("noise", NoiseConfig)
        # The model's sigma_range is what the certificate and the range warnings refer to, so it
        # must be the range the model is trained on: derived from noise, or checked against it.
        if "sigma_range" not in model:
            model["sigma_range"] = [noise.sigma_min, noise.sigma_max]
        else:
            lo, hi = parsed.sigma_range
            if abs(lo - noise.sigma_min) > 1e-9 or abs(hi - noise.sigma_max) > 1e-9:
                raise ValueError(
                    f"model.sigma_range [{lo:.6g}, {hi:.6g}] differs from the training noise range "
                    f"[{noise.sigma_min:.6g}, {noise.sigma_max:.6g}]; make them equal or drop model.sigma_range")
        cfg = cls(
            arch=arch,
            model=model,
            data=sub("data", DataConfig),
            noise=noise,
            optim=sub("optim", OptimConfig),
            validation=sub("validation", ValidationConfig),
            checkpoint=sub("checkpoint", CheckpointConfig),
            seed=int(top.get("seed", 0)),
            device=str(top.get("device", "auto")),
            threads=int(top.get("threads", 0)),
            init_from=str(top.get("init_from") or ""),
        )
        cfg.check()
        return cfg

    def check(self) -> None:
        for section in ("data", "noise", "optim", "validation", "checkpoint"):
            for f in fields(getattr(self, section)):
                v = getattr(getattr(self, section), f.name)
                for x in (v if isinstance(v, tuple) else (v,)):
                    if isinstance(x, float) and not math.isfinite(x):
                        raise ValueError(f"{section}.{f.name} must be a finite number, got {x!r}")
        if not self.optim.lr <= 1.0:
            raise ValueError(f"optim.lr must lie in (0, 1], got {self.optim.lr:g}")
        if self.optim.grad_clip < 0 or self.optim.weight_decay < 0:
            raise ValueError("optim.grad_clip and optim.weight_decay must be >= 0 (grad_clip 0: no clipping)")
        if self.optim.steps > 10_000_000:
            raise ValueError(f"optim.steps must be at most 10,000,000, got {self.optim.steps}")
        if self.data.refresh_every < 1 or self.data.pool_size < 1:
            raise ValueError("data.refresh_every and data.pool_size must be >= 1")
        if self.data.patch_size > 1024 or self.data.batch_size > 4096:
            raise ValueError(f"data.patch_size must be at most 1024 and data.batch_size at most 4096, got "
                             f"{self.data.patch_size} and {self.data.batch_size}")
        if self.validation.size > 4096 or self.validation.size < 8:
            raise ValueError(f"validation.size must lie in [8, 4096], got {self.validation.size}")
        if self.optim.name not in ("adam", "sgd"):
            raise ValueError(f"optim.name {self.optim.name!r} unknown; valid: adam, sgd")
        if self.optim.loss not in ("mse", "l1"):
            raise ValueError(f"optim.loss {self.optim.loss!r} unknown; valid: mse, l1")
        if self.optim.schedule not in ("cosine", "step", "none"):
            raise ValueError(f"optim.schedule {self.optim.schedule!r} unknown; valid: cosine, step, none")
        if not self.optim.lr > 0:
            raise ValueError(f"optim.lr must be > 0, got {self.optim.lr}")
        if self.optim.steps < 1:
            raise ValueError("optim.steps must be >= 1")
        if not 0 <= self.noise.sigma_min <= self.noise.sigma_max:
            raise ValueError(
                f"noise.sigma_min ({self.noise.sigma_min}) and noise.sigma_max ({self.noise.sigma_max}) must satisfy 0 <= min <= max"
            )
        if self.noise.sampling not in NOISE_SAMPLINGS:
            raise ValueError(f"noise.sampling {self.noise.sampling!r} unknown; valid: {', '.join(NOISE_SAMPLINGS)}")
        if self.noise.sampling == "log" and not self.noise.sigma_min > 0:
            raise ValueError("noise.sampling log needs noise.sigma_min > 0 (e.g. 0.5/255)")
        if not 0 <= self.data.dead_leaves_fraction <= 1:
            raise ValueError(f"data.dead_leaves_fraction must lie in [0, 1], got {self.data.dead_leaves_fraction}")
        if self.data.patch_size < 8 or self.data.batch_size < 1:
            raise ValueError("data.patch_size must be >= 8 and data.batch_size >= 1")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device {self.device!r} unknown; valid: auto, cpu, cuda")
        if not self.validation.sigmas or not all(0 < v <= 1 for v in self.validation.sigmas):
            raise ValueError(f"validation.sigmas must be noise levels in (0, 1] (e.g. 25/255), got {list(self.validation.sigmas)}")
        if self.checkpoint.every < 1 or self.validation.every < 1:
            raise ValueError("checkpoint.every and validation.every must be >= 1")
        if self.init_from and not Path(self.init_from).is_file():
            raise ValueError(f"init_from: file '{self.init_from}' does not exist; give a model.pt or checkpoint.pt path")

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        raw = load_yaml_mapping(path)
        if not raw:  # an empty file would silently start the default 10,000-step run
            raise ValueError(f"training config '{path}' is empty; write the run's settings in it (copy "
                             "priors/configs/averaged_gray.yaml and edit it)")
        return cls.from_dict(raw)

    def with_overrides(self, *, folders: list[str] | None = None, out: str | None = None) -> "TrainConfig":
        """This config with the command line's ``--data-folder`` / ``--out`` in place of the file's."""
        cfg = self
        if folders:
            for f in folders:
                if not Path(f).is_dir():
                    raise ValueError(f"--data-folder: '{f}' is not a directory; give a folder of training photos")
            cfg = replace(cfg, data=replace(cfg.data, folders=tuple(str(f) for f in folders)))
        if out:
            cfg = replace(cfg, checkpoint=replace(cfg.checkpoint, dir=str(out)))
        cfg.check()
        return cfg

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("data", "optim", "validation", "noise"):
            for kk, vv in d[k].items():
                if isinstance(vv, tuple):
                    d[k][kk] = list(vv)
        return d


def _digest(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer (weights, norm estimates, power vectors)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class _Stop:
    """SIGINT/SIGTERM set a flag; the loop checkpoints after the current step and exits."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_Stop":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not in the main thread
                pass
        return self

    def _handler(self, signum: int, frame: Any) -> None:
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _lr_lambda(cfg: OptimConfig):
    if cfg.schedule == "cosine":
        return lambda step: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(step, cfg.steps) / cfg.steps))
    if cfg.schedule == "step":
        ms = sorted(cfg.milestones)
        return lambda step: 0.5 ** sum(step >= m for m in ms)
    return lambda step: 1.0


@torch.no_grad()
def _validate(model, val_img: torch.Tensor, sigmas, seed: int) -> dict[str, float]:
    was = model.training
    model.eval()
    out = {}
    gen = torch.Generator().manual_seed(seed)
    for s in sigmas:
        noisy = val_img + s * torch.randn(val_img.shape, generator=gen).to(val_img)
        out[f"{round(s * 255)}"] = float(psnr(model(noisy, s), val_img)[0])
    model.train(was)
    return out


def _execution(cfg: TrainConfig) -> tuple[torch.device, int, int]:
    """The device, world size and rank of this process; joins the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = torch.device("cuda" if (cfg.device in ("auto", "cuda") and torch.cuda.is_available()) else "cpu")
    if cfg.device == "cuda" and device.type != "cuda":
        raise ValueError("device: cuda requested but no GPU is available; use device: auto or cpu")
    if world > 1:
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    return device, world, rank


def _patch_sampler(cfg: TrainConfig, channels: int, rank: int) -> tuple[PatchSampler, dict[str, int]]:
    """The seeded patch stream of this rank and the image count of each user folder."""
    gray = channels == 1
    photos = training_photos(gray=gray) if cfg.data.photos else []
    folder_counts = {}
    for folder in cfg.data.folders:
        images = folder_images(folder, gray=gray)
        folder_counts[str(folder)] = len(images)
        photos += images
    sampler = PatchSampler(
        photos,
        patch_size=cfg.data.patch_size,
        batch_size=cfg.data.batch_size,
        dead_leaves_fraction=cfg.data.dead_leaves_fraction,
        pool_size=cfg.data.pool_size,
        refresh_every=cfg.data.refresh_every,
        seed=cfg.seed + 1000 * rank,
        channels=channels,
    )
    return sampler, folder_counts


def _optimiser(cfg: OptimConfig, model: torch.nn.Module) -> tuple[torch.optim.Optimizer, Any]:
    # a model may ask for per-group learning rates (the ridge recipe: kernels, splines, scalars)
    params = model.param_groups(cfg.lr) if hasattr(model, "param_groups") else model.parameters()
    if cfg.name == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg))


def _recipe(cfg_dict: dict) -> dict:
    # threads and device are execution details: a run may resume on another machine; init_from only
    # sets step 0, so a resumed run does not need its start file
    return {k: v for k, v in json.loads(json.dumps(cfg_dict)).items() if k not in ("threads", "device", "init_from")}


def _restore(state: dict, cfg: TrainConfig, ckpt_path: Path, parts: dict[str, Any], world: int,
             rank: int) -> tuple[int, list]:
    """Load a training checkpoint into ``parts`` (model, opt, sched, sampler, noise_gen); (step, log)."""
    # the stored recipe is parsed by today's parser, so keys added since take their defaults
    if _recipe(TrainConfig.from_dict(state["config"]).to_dict()) != _recipe(cfg.to_dict()):
        raise ValueError(f"--resume: the config differs from the one stored in '{ckpt_path}'; use the same config or a new checkpoint.dir")
    parts["model"].load_state_dict(state["state_dict"])
    parts["opt"].load_state_dict(state["optimizer"])
    parts["sched"].load_state_dict(state["scheduler"])
    saved = len(state["ranks"])
    if rank < saved:  # this rank's data stream continues where it stopped
        parts["sampler"].load_state_dict(state["ranks"][rank]["sampler"])
        parts["noise_gen"].set_state(state["ranks"][rank]["noise_rng"])
    # a rank that the earlier run did not have keeps the stream of its own seed (seed + 1000 * rank)
    if saved != world and rank == 0:
        extra = [str(r) for r in range(min(saved, world), max(saved, world))]
        names = f"rank{'s' if len(extra) > 1 else ''} {', '.join(extra)}"
        streams = (f"{names} start{'s' if len(extra) == 1 else ''} from {'its' if len(extra) == 1 else 'their'} own "
                   f"seed{'s' if len(extra) > 1 else ''}" if world > saved else f"the data streams of {names} end")
        print(f"stablepnp train: resuming a {saved}-process run on {world} process(es): weights, optimizer, schedule "
              f"and step continue, {streams}, and each step now averages the gradients of {world} process(es); the run "
              "is no longer step-for-step the one an uninterrupted run would have made", file=sys.stderr)
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"]), list(state["log"])


class _Session:
    """One run of :func:`train`: what its checkpoints hold and what happens after each step."""

    def __init__(self, cfg: TrainConfig, parts: dict[str, Any], *, device: torch.device, world: int, rank: int,
                 step: int, log: list, description: dict, bar: Any, stop: _Stop, target: int) -> None:
        self.cfg, self.device, self.world, self.rank = cfg, device, world, rank
        self.model, self.opt, self.sched = parts["model"], parts["opt"], parts["sched"]
        self.sampler, self.noise_gen = parts["sampler"], parts["noise_gen"]
        self.step, self.log, self.description = step, log, description
        self.bar, self.stop, self.target = bar, stop, target
        self.ckpt_path = Path(cfg.checkpoint.dir) / "checkpoint.pt"
        gray = self.model.config.in_channels == 1
        self.val_img = load_image(VALIDATION_IMAGE, size=cfg.validation.size, gray=gray).to(device)
        self.t_last = time.perf_counter()

    def checkpoint(self) -> None:
        bad = _nonfinite(self.model.state_dict())
        if bad:  # never written over the last good checkpoint
            raise FloatingPointError(f"training diverged: the weights became non-finite by step {self.step} ({bad}); "
                                     f"the last good checkpoint is kept in '{self.ckpt_path}' (lower optim.lr or set "
                                     "optim.grad_clip)")
        mine = {"sampler": self.sampler.state_dict(), "noise_rng": self.noise_gen.get_state(),
                "weights_sha256": _digest(self.model)}
        per_rank = [mine]
        if self.world > 1:  # every rank's data stream is saved, so resumption is exact on all ranks
            per_rank = [None] * self.world
            torch.distributed.all_gather_object(per_rank, mine)
            if len({r["weights_sha256"] for r in per_rank}) > 1:  # weights, norms and power vectors
                raise RuntimeError(f"DDP ranks diverged at step {self.step}: their weights or norm estimates differ")
        if self.rank != 0:
            return
        state = {
            "format": CHECKPOINT_FORMAT,
            "arch": self.cfg.arch,
            "model_config": self.model.config.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "ranks": per_rank,
            "torch_rng": torch.get_rng_state(),
            "step": self.step,
            "log": self.log,
            "config": json.loads(json.dumps(self.cfg.to_dict())),
            "certificate": certificate_dict(self.model),
            "data": self.description,
        }
        atomic_save(state, self.ckpt_path)

    def on_nonfinite(self, step: int, value: float) -> None:
        self.step = step
        self.checkpoint()
        raise FloatingPointError(f"training loss became {value} at step {step}; last good checkpoint kept in '{self.ckpt_path}'")

    def after_step(self, outcome: StepOutcome) -> bool:
        """Log, validate, checkpoint; True when a stop was requested (on any rank)."""
        cfg, self.step = self.cfg, outcome.step
        now = time.perf_counter()
        lv = float(outcome.loss)
        mse = lv if cfg.optim.loss == "mse" else float(F.mse_loss(outcome.output, outcome.clean))
        entry = {"step": self.step, "loss": lv, "psnr": -10 * math.log10(max(mse, 1e-12)),
                 "lr": self.sched.get_last_lr()[0], "seconds": now - self.t_last}
        self.t_last = now
        if (self.step % cfg.validation.every == 0 or self.step == cfg.optim.steps) and self.rank == 0:
            entry["val_psnr"] = _validate(self.model, self.val_img, cfg.validation.sigmas, cfg.seed)
        self.log.append(entry)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{entry['loss']:.2e}", psnr=f"{entry['psnr']:.2f}",
                             **({"val25": entry["val_psnr"].get("25")} if "val_psnr" in entry else {}))
        stop_now = self.stop.requested
        if self.world > 1:
            flag = torch.tensor([float(stop_now)], device=self.device)
            torch.distributed.all_reduce(flag)
            stop_now = bool(flag.item() > 0)
        if self.step % cfg.checkpoint.every == 0 or stop_now or self.step == self.target:
            self.checkpoint()
        return stop_now

    def finish(self) -> dict:
        """The summary; the model file and the log when the run reached its last step."""
        cfg, step, out_dir = self.cfg, self.step, Path(self.cfg.checkpoint.dir)
        summary = {"step": step, "finished": step >= cfg.optim.steps, "checkpoint": str(self.ckpt_path),
                   "interrupted": self.stop.requested}
        if self.rank == 0 and step >= cfg.optim.steps:
            bad = _nonfinite(self.model.state_dict())
            if bad:  # a model file is written only with finite weights
                raise FloatingPointError(f"training diverged: the weights are non-finite ({bad}); no model file written")
            vals = [e["val_psnr"] for e in self.log if "val_psnr" in e]
            training = {"config": json.loads(json.dumps(cfg.to_dict())), "steps": step, "data": self.description,
                        "final_val_psnr": vals[-1] if vals else None,
                        "seconds": sum(e["seconds"] for e in self.log)}
            save_model_file(self.model, out_dir / "model.pt", arch=cfg.arch, training=training)
            with open(out_dir / "train_log.jsonl", "w") as fh:
                for e in self.log:
                    fh.write(json.dumps(e) + "\n")
            summary["model"] = str(out_dir / "model.pt")
        return summary


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool = True, max_steps: int | None = None,
          overwrite: bool = False) -> dict:
    """Train (or resume) according to ``cfg``; returns a summary dict.

    ``max_steps`` stops early after that many *new* steps (used by tests of resumption).  A run
    folder that already holds a checkpoint or a model is refused unless ``resume`` or ``overwrite``.
    """
    out_dir = Path(cfg.checkpoint.dir)
    ckpt_path = out_dir / "checkpoint.pt"
    if not resume and not overwrite and (ckpt_path.exists() or (out_dir / "model.pt").exists()):
        raise ValueError(f"checkpoint.dir '{out_dir}' already holds a run; add --resume to continue it, "
                         "--overwrite to start it again, or choose another --out")
    device, world, rank = _execution(cfg)
    model = build_model(cfg.arch, cfg.model).to(device)
    sampler, folder_counts = _patch_sampler(cfg, model.config.in_channels, rank)
    noise_gen = torch.Generator().manual_seed(cfg.seed + 1000 * rank + 1)
    opt, sched = _optimiser(cfg.optim, model)
    parts = {"model": model, "opt": opt, "sched": sched, "sampler": sampler, "noise_gen": noise_gen}
    step, log = 0, []
    if resume and ckpt_path.is_file():
        try:
            step, log = _restore(load_training_checkpoint(ckpt_path), cfg, ckpt_path, parts, world, rank)
        except (KeyError, TypeError, IndexError, RuntimeError, AttributeError) as exc:  # a forged or damaged file
            raise ValueError(f"--resume: checkpoint '{ckpt_path}' cannot be restored ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); start again with --overwrite") from None
    else:
        if resume and rank == 0:
            print(f"stablepnp train: no checkpoint in '{out_dir}', starting from step 0", file=sys.stderr)
        if cfg.init_from:
            warm_start(model, cfg.init_from)
    net = model
    if world > 1:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    description = {"sampler": sampler.describe(), "validation_image": VALIDATION_IMAGE,
                   "photo_names": training_photo_names() if cfg.data.photos else [],
                   "folders": folder_counts,
                   "folder_files": {str(f): folder_manifest(f) for f in cfg.data.folders},
                   "noise": asdict(cfg.noise), "world_size": world, "device": device.type}
    bar = tqdm(total=cfg.optim.steps, initial=step, disable=not progress or rank != 0, desc=f"train {cfg.arch}")
    target = cfg.optim.steps if max_steps is None else min(cfg.optim.steps, step + max_steps)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    net.train()
    with _Stop() as stop:
        session = _Session(cfg, parts, device=device, world=world, rank=rank, step=step, log=log,
                           description=description, bar=bar, stop=stop, target=target)
        fit_denoiser(net, opt, sampler.sample, noise_range=(cfg.noise.sigma_min, cfg.noise.sigma_max),
                     generator=noise_gen, noise_sampling=cfg.noise.sampling, start=step, stop=target,
                     loss=cfg.optim.loss, grad_clip=cfg.optim.grad_clip, scheduler=sched, device=device, on_nonfinite=session.on_nonfinite, after_step=session.after_step)
    bar.close()
    summary = session.finish()
    if world > 1:
        torch.distributed.barrier()
    return summary


def warm_start(model: torch.nn.Module, path: str | Path) -> None:
    """Copy the weights of the model file (or checkpoint) ``path`` into ``model``.

    Training-only fields of the architecture (``max_substeps``, ``differentiable_norm``) may
    differ; the shapes must match.  A constrained averaged model is loaded into a deeper one with
    ``max_substeps: 1`` by untying its sub-steps (:func:`priors.averaged.untie_substeps`), which
    keeps the map unchanged at step 0.  A ridge model of the other denoiser kind (one-step / prox)
    gives its kernels, splines and ``mu(sigma)`` (:func:`priors.ridge.transfer_state`); a one-step
    ridge model starts a ridge stack (:func:`priors.ridge_stack.stack_from_single`).
    """
    src = load_checkpoint(path)
    if (isinstance(src, AveragedResNet) and isinstance(model, AveragedResNet)
            and model.config.max_substeps == 1 and model.config.depth != src.config.depth):
        src = untie_substeps(src)
    state = src.state_dict()
    if isinstance(src, RidgeRegularizer) and isinstance(model, RidgeRegularizer):
        state = transfer_state(src, model)  # one-step <-> prox: the shared parts, the target's own scalars
    elif isinstance(src, RidgeRegularizer) and isinstance(model, RidgeStack):
        state = stack_from_single(src, model)  # the trained model first, near-identity blocks after it
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"init_from: '{path}' does not fit the model of this config: {str(exc).splitlines()[0]}") from None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``stablepnp train CONFIG.yaml [--resume]``."""
    parser = argparse.ArgumentParser(prog="stablepnp train", description="Train a denoiser (averaged network or baseline).")
    parser.add_argument("config", help="training config YAML (see priors/configs/)")
    parser.add_argument("--resume", action="store_true", help="continue from checkpoint.dir/checkpoint.pt")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--overwrite", action="store_true", help="start again in a run folder that holds a run")
    parser.add_argument("--data-folder", action="append", metavar="DIR", default=None,
                        help="training photo folder (repeatable); replaces the config's data.folders")
    parser.add_argument("--out", metavar="DIR", default=None, help="run folder; replaces the config's checkpoint.dir")
    args = parser.parse_args(argv)
    try:
        cfg = TrainConfig.from_yaml(args.config)
        cfg = cfg.with_overrides(folders=args.data_folder, out=args.out)
        summary = train(cfg, resume=args.resume, progress=not args.quiet, overwrite=args.overwrite)
    except (ValueError, FileNotFoundError) as exc:
        print(f"stablepnp: error: {exc}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:  # the run diverged: nothing non-finite was written
        print(f"stablepnp: error: {exc}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    return 130 if summary.get("interrupted") else 0
