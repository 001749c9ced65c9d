"""The ``stablepnp robustness CONFIG.yaml`` job: train (or load) classifiers, evaluate, report.

Steps: read a strict YAML config (unknown keys are errors listing the valid ones); for each
model, load ``checkpoint`` if given, else train with checkpoints in
``output_dir/checkpoints/NAME.pt`` (a rerun resumes where it stopped, and skips finished models);
evaluate clean, certified (Tsuzuku et al.) and adversarial accuracy (PGD l2 / l-infinity, FGSM),
corruptions, accuracy-vs-eps curves and their AUC; optionally evaluate the robustness of denoisers
and of PnP reconstruction maps (:mod:`priors.robustness.prior_eval`).  Writes ``results.json``,
``results.md``, ``results.csv``, ``prior_robustness.{md,csv}`` and ``acc_vs_eps_*.png``.

Use :func:`main` (``main(["config.yaml"])``); exit code 2 with a one-line message on a bad config.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import sys
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from problems.images import available_images
from problems.spec import load_yaml_mapping

from .attacks import accuracy, curve_auc, fgsm, gaussian_noise, pgd, robust_accuracy, salt_and_pepper
from .certified import certified_curve, lmt_logits, margins
from .data import ImageDataset, load_dataset
from .models import ClassifierConfig, SequentialClassifier, build_classifier
from .prior_eval import evaluate_priors, prior_table

__all__ = [
    "TrainSpec",
    "ModelSpec",
    "DataSpec",
    "EvalSpec",
    "PriorEvalSpec",
    "RobustnessConfig",
    "load_config",
    "train_classifier",
    "evaluate_classifier",
    "run",
    "main",
]

PAPER_EPS = (36 / 255, 72 / 255, 108 / 255)


def _tuple(v: Any) -> tuple:
    return tuple(v) if isinstance(v, (list, tuple)) else (v,)


def _type_ok(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits a field annotation (scalars, optionals, tuples; others pass)."""
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is type(None):
        return value is None
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        items = value if isinstance(value, (list, tuple)) else [value]
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return all(_type_ok(v, args[0]) for v in items) if args else True
    return True


def _hint_name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_hint_name(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        return f"a list of {_hint_name(typing.get_args(hint)[0])}"
    return "null" if hint is type(None) else getattr(hint, "__name__", str(hint))


def _check_types(cls, data: dict, where: str) -> None:
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        if not _type_ok(value, hints[key]):
            raise ValueError(f"{where}.{key} must be {_hint_name(hints[key])}, got {value!r}")


def _strict(cls, data: Any, where: str):
    """Build the frozen dataclass ``cls`` from a mapping, refusing unknown keys and wrong types."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a mapping, got {type(data).__name__}")
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} in {where}; valid keys: {', '.join(valid)}")
    _check_types(cls, data, where)
    try:
        return cls(**data)
    except TypeError as exc:
        raise ValueError(f"{where}: {exc}") from None


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
        if not self.epochs > 0 or self.batch_size < 1 or not self.lr > 0 or not self.temperature > 0:
            raise ValueError("train: epochs, batch_size, lr and temperature must be > 0")
        if self.margin_eps < 0 or self.weight_reg < 0 or self.jacobian_reg < 0:
            raise ValueError("train: margin_eps, weight_reg and jacobian_reg must be >= 0")


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
        bad = sorted(set(self.denoisers) - {"averaged", "unconstrained", "bm3d", "tv"})
        if bad:
            raise ValueError(f"prior_eval.denoisers: {bad[0]!r} unknown; valid: averaged, unconstrained, bm3d, tv")
        known = available_images()
        missing = [n for n in self.images if n not in known and not Path(n).is_file()]
        if missing:  # checked here, not after the classifiers have trained
            raise ValueError(f"prior_eval.images: {missing[0]!r} is neither a bundled image ({', '.join(known)}) nor a file")
        if not self.eps > 0 or self.pnp_iterations < 1 or not self.pnp_step > 0:
            raise ValueError("prior_eval: eps and pnp_step must be > 0 and pnp_iterations >= 1")


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
    if not isinstance(raw, dict):
        raise ValueError("config must be a YAML mapping with keys output_dir, seed, threads, progress, data, models, evaluation, prior_eval")
    raw = dict(raw)
    top = {f.name for f in dataclasses.fields(RobustnessConfig)}
    unknown = sorted(set(raw) - top)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} in config; valid keys: {', '.join(sorted(top))}")
    _check_types(RobustnessConfig, {k: v for k, v in raw.items() if k in ("output_dir", "seed", "threads", "progress")},
                 "config")
    models = raw.get("models") or []
    if not isinstance(models, list) or not models:
        raise ValueError("config needs models: a non-empty list of {name, model, train, checkpoint}")
    specs = []
    for i, m in enumerate(models):
        if not isinstance(m, dict):
            raise ValueError(f"models[{i}] must be a mapping")
        m = dict(m)
        valid = {"name", "model", "train", "checkpoint"}
        bad = sorted(set(m) - valid)
        if bad:
            raise ValueError(f"unknown key {bad[0]!r} in models[{i}]; valid keys: {', '.join(sorted(valid))}")
        if not isinstance(m.get("name"), str):
            raise ValueError(f"models[{i}].name must be a string")
        model_raw = m.get("model") or {}
        if not isinstance(model_raw, dict):
            raise ValueError(f"models[{i}].model must be a mapping")
        try:
            cfg = ClassifierConfig.from_dict(model_raw)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"models[{i}].model: {exc}") from None
        specs.append(ModelSpec(name=m["name"], model=cfg, train=_strict(TrainSpec, m.get("train"), f"models[{i}].train"),
                               checkpoint=m.get("checkpoint")))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique, got {names}")
    prior = raw.get("prior_eval")
    return RobustnessConfig(
        output_dir=str(raw.get("output_dir", "runs/robustness")),
        seed=int(raw.get("seed", 0)),
        threads=int(raw.get("threads", 1)),
        progress=bool(raw.get("progress", True)),
        data=_strict(DataSpec, raw.get("data"), "data"),
        models=tuple(specs),
        evaluation=_strict(EvalSpec, raw.get("evaluation"), "evaluation"),
        prior_eval=None if prior is None else _strict(PriorEvalSpec, prior, "prior_eval"),
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


# --------------------------------------------------------------------------------------------
# training


def _lr(spec: TrainSpec, step: int, total: int) -> float:
    warm = max(1, int(0.05 * total))
    if step < warm:
        return spec.lr * (step + 1) / warm
    return 0.5 * spec.lr * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def _bar(total: int, desc: str, enabled: bool, initial: int = 0):
    return tqdm(total=total, desc=desc, initial=initial, disable=not enabled, leave=False, dynamic_ncols=True)


def train_classifier(spec: ModelSpec, train: ImageDataset, *, out_dir: Path, seed: int = 0,
                     progress: bool = False, log=print) -> tuple[SequentialClassifier, dict[str, Any]]:
    """Train (or resume, or load when finished) the classifier of ``spec``; returns (model, info).

    The checkpoint ``out_dir/checkpoints/NAME.pt`` holds the model, optimiser, step, elapsed time
    and a ``finished`` flag; it is rewritten every ``checkpoint_every`` steps, so a killed job
    resumes where it stopped.  The data order is a function of (seed, epoch), hence resumable.
    """
    ckpt_path = out_dir / "checkpoints" / f"{spec.name}.pt"
    ckpt_path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = build_classifier(spec.model)
    ts = spec.train
    opt = torch.optim.Adam(model.parameters(), lr=ts.lr, weight_decay=ts.weight_decay)
    n = len(train)
    steps_per_epoch = max(1, n // ts.batch_size)
    total = max(1, int(round(ts.epochs * steps_per_epoch)))
    step, elapsed, finished, history = 0, 0.0, False, []
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        # compared as configs, so a checkpoint written before a new (defaulted) field still resumes
        if ClassifierConfig.from_dict(state["config"]) != spec.model:
            raise ValueError(f"checkpoint {ckpt_path} was made for another architecture; use a new output_dir or delete it")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, elapsed, finished, history = state["step"], state["elapsed"], state["finished"], state.get("history", [])
        log(f"[{spec.name}] resumed from {ckpt_path} at step {step}/{total}{' (finished)' if finished else ''}")

    def save() -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"config": spec.model.to_dict(), "model": model.state_dict(), "optimizer": opt.state_dict(),
                    "step": step, "total": total, "elapsed": elapsed, "finished": finished, "history": history}, tmp)
        tmp.replace(ckpt_path)

    images, labels = train.float_images(), train.labels
    model.train()
    bar = _bar(total, f"train {spec.name}", progress and not finished, initial=step)
    t_seg = time.perf_counter()
    base_elapsed = elapsed
    running = []
    while not finished and step < total:
        epoch, pos = divmod(step, steps_per_epoch)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
        idx = perm[pos * ts.batch_size : (pos + 1) * ts.batch_size]
        x, y = images[idx], labels[idx]
        for group in opt.param_groups:
            group["lr"] = _lr(ts, step, total)
        logits = model(x)
        z = lmt_logits(logits, y, lipschitz=ts.nominal_lipschitz, eps=ts.margin_eps) if ts.margin_eps > 0 else logits
        loss = F.cross_entropy(ts.temperature * z, y)
        if ts.weight_reg > 0 or ts.jacobian_reg > 0:
            regs = model.regularisers()
            if regs:
                loss = loss + ts.weight_reg * regs["weight"] + ts.jacobian_reg * regs["jacobian"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        running.append((float(loss.detach()), float((logits.detach().argmax(1) == y).float().mean())))
        elapsed = base_elapsed + time.perf_counter() - t_seg
        bar.update(1)
        if step % ts.checkpoint_every == 0 or step == total:
            l, a = (sum(v) / len(running) for v in zip(*running))
            history.append({"step": step, "loss": l, "train_acc": a, "elapsed": elapsed})
            log(f"[{spec.name}] step {step}/{total} loss {l:.4f} train-acc {a:.3f} ({elapsed:.0f}s)")
            running = []
            save()
        if ts.time_budget_s is not None and elapsed >= ts.time_budget_s:
            log(f"[{spec.name}] time budget {ts.time_budget_s:.0f}s reached at step {step}/{total}")
            break
    bar.close()
    if not finished:
        finished = True
        save()
    model.eval()
    return model, {"steps": step, "total_steps": total, "train_seconds": elapsed, "history": history,
                   "checkpoint": str(ckpt_path)}


def load_classifier(path: str | Path) -> SequentialClassifier:
    """Load a classifier from a checkpoint written by :func:`train_classifier`."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = build_classifier(ClassifierConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    return model.eval()


# --------------------------------------------------------------------------------------------
# evaluation


def evaluate_classifier(model: SequentialClassifier, test: ImageDataset, spec: EvalSpec, *, attack_limit: int | None,
                        seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Clean, certified, adversarial and corrupted accuracies of one classifier."""
    model.eval()
    x, y = test.float_images(), test.labels
    t0 = time.perf_counter()
    with torch.no_grad():
        logits = torch.cat([model(x[i : i + spec.batch_size]) for i in range(0, len(y), spec.batch_size)])
    lip = model.lipschitz_bound()
    m = margins(logits, y, num_classes=test.num_classes)
    out: dict[str, Any] = {
        "n_test": len(y),
        "parameters": sum(p.numel() for p in model.parameters()),
        "clean": float((logits.argmax(1) == y).double().mean()),
        "lipschitz_bound": lip,
        "lipschitz_layers": model.lipschitz_report(),
        "median_margin": float(m.median()),
        "eps": list(spec.eps),
        "certified": certified_curve(logits, y, lipschitz=lip, eps=spec.eps, num_classes=test.num_classes),
        "certified_curve": certified_curve(logits, y, lipschitz=lip, eps=spec.curve_eps_l2, num_classes=test.num_classes),
    }
    na = len(y) if attack_limit is None else min(attack_limit, len(y))
    xa, ya = x[:na], y[:na]
    gen = torch.Generator().manual_seed(seed)
    kw = dict(steps=spec.pgd_steps, restarts=spec.pgd_restarts, batch_size=spec.batch_size, generator=gen)
    jobs = [("pgd_l2", e) for e in spec.eps] + [("curve_l2", e) for e in spec.curve_eps_l2] + \
           [("curve_linf", e) for e in spec.curve_eps_linf]
    bar = _bar(len(jobs), "attacks", progress)
    res: dict[str, list[float]] = {"pgd_l2": [], "curve_l2": [], "curve_linf": []}
    for kind, e in jobs:
        if e == 0:
            acc = accuracy(model, xa, ya, batch_size=spec.batch_size)
        else:
            acc = robust_accuracy(model, xa, ya, eps=e, norm="linf" if kind == "curve_linf" else "l2", **kw)
        res[kind].append(acc)
        bar.update(1)
    bar.close()
    out.update({
        "n_attack": na,
        "clean_attacked": accuracy(model, xa, ya, batch_size=spec.batch_size),  # the attacks' reference
        "pgd_steps": spec.pgd_steps,
        "pgd_restarts": spec.pgd_restarts,
        "pgd_l2": res["pgd_l2"],
        "curve_eps_l2": list(spec.curve_eps_l2),
        "pgd_l2_curve": res["curve_l2"],
        "curve_eps_linf": list(spec.curve_eps_linf),
        "pgd_linf_curve": res["curve_linf"],
        "auc_pgd_l2": curve_auc(spec.curve_eps_l2, res["curve_l2"]),
        "auc_pgd_linf": curve_auc(spec.curve_eps_linf, res["curve_linf"]),
        "auc_certified": curve_auc(spec.curve_eps_l2, out["certified_curve"]),
        "fgsm_linf": [robust_accuracy(model, xa, ya, attack="fgsm", eps=e, norm="linf", batch_size=spec.batch_size)
                      for e in spec.curve_eps_linf if e > 0],
        "gaussian_std": list(spec.gaussian_std),
        "gaussian": [accuracy(model, gaussian_noise(xa, s, generator=gen), ya) for s in spec.gaussian_std],
        "salt_pepper_amount": list(spec.salt_pepper),
        "salt_pepper": [accuracy(model, salt_and_pepper(xa, a, generator=gen), ya) for a in spec.salt_pepper],
        "eval_seconds": time.perf_counter() - t0,
    })
    return out


# --------------------------------------------------------------------------------------------
# reports


def _fmt(v: float) -> str:
    return f"{100 * v:.1f}"


def classifier_table(results: dict[str, dict[str, Any]], eps: tuple[float, ...]) -> str:
    """Markdown table: clean, certified and PGD-l2 accuracy (%) per model, and the certified L."""
    heads = ["model", "params", "L bound", "clean"] + [f"cert {round(e * 255)}/255" for e in eps] + \
            ["clean (attack set)"] + [f"PGD-l2 {round(e * 255)}/255" for e in eps]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for name, r in results.items():
        params = f"{r['parameters'] / 1000:.0f}k" if "parameters" in r else "-"
        attacked = _fmt(r["clean_attacked"]) if "clean_attacked" in r else "-"  # absent in older results
        row = [name, params, f"{r['lipschitz_bound']:.3g}", _fmt(r["clean"])] + [_fmt(v) for v in r["certified"]] + \
              [attacked] + [_fmt(v) for v in r["pgd_l2"]]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _write_reports(out_dir: Path, cfg: RobustnessConfig, results: dict[str, Any]) -> None:
    models = results["models"]
    md = ["# Robustness results", "", f"Dataset: {results['dataset']} (test n={next(iter(models.values()))['n_test']}, "
          f"attacks on the first {next(iter(models.values()))['n_attack']}); accuracies in %.", "",
          classifier_table(models, cfg.evaluation.eps), "",
          "| model | AUC cert (l2) | AUC PGD-l2 | AUC PGD-linf | train steps | train s |", "|---|---|---|---|---|---|"]
    for name, r in models.items():
        md.append(f"| {name} | {r['auc_certified']:.3f} | {r['auc_pgd_l2']:.3f} | {r['auc_pgd_linf']:.3f} | "
                  f"{r['train']['steps']} | {r['train']['train_seconds']:.0f} |")
    with open(out_dir / "results.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["model", "metric", "eps", "value"])
        for name, r in models.items():
            w.writerow([name, "clean", 0.0, r["clean"]])
            w.writerow([name, "lipschitz_bound", "", r["lipschitz_bound"]])
            for key, eps_key in (("certified", "eps"), ("pgd_l2", "eps"), ("certified_curve", "curve_eps_l2"),
                                 ("pgd_l2_curve", "curve_eps_l2"), ("pgd_linf_curve", "curve_eps_linf"),
                                 ("gaussian", "gaussian_std"), ("salt_pepper", "salt_pepper_amount")):
                for e, v in zip(r[eps_key], r[key]):
                    w.writerow([name, key, e, v])
    if results.get("prior_eval"):
        table = prior_table(results["prior_eval"])
        md += ["", "## Prior robustness", "", table]
        (out_dir / "prior_robustness.md").write_text(table)
        with open(out_dir / "prior_robustness.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["denoiser", "map", "certified_bound", "empirical_max", "empirical_mean", "attack"])
            for row in results["prior_eval"]["rows"]:
                w.writerow([row["denoiser"], row["map"], row["certified"], row["empirical_max"], row["empirical_mean"], row["attack"]])
    (out_dir / "results.md").write_text("\n".join(md) + "\n")
    _plots(out_dir, models)


def _plots(out_dir: Path, models: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for i, (name, r) in enumerate(models.items()):
        line = ax.plot(r["curve_eps_l2"], r["pgd_l2_curve"], marker="o", label=f"{name} PGD")[0]
        ax.plot(r["curve_eps_l2"], r["certified_curve"], ls="--", color=line.get_color(), label=f"{name} certified")
    ax.set_xlabel("l2 radius eps")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out_dir / "acc_vs_eps_l2.png", dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, r in models.items():
        ax.plot(r["curve_eps_linf"], r["pgd_linf_curve"], marker="o", label=name)
    ax.set_xlabel("l-inf radius eps")
    ax.set_ylabel("PGD accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "acc_vs_eps_linf.png", dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# entry points


def run(cfg: RobustnessConfig, *, log=print) -> dict[str, Any]:
    """Run the whole job described by ``cfg``; returns the results dictionary (also in results.json)."""
    torch.set_num_threads(max(1, cfg.threads))
    out_dir = Path(cfg.output_dir)
    # the data first: a missing dataset must not leave an empty output folder behind
    train = load_dataset(cfg.data.dataset, split="train", data_dir=cfg.data.data_dir).subset(cfg.data.train_limit)
    test = load_dataset(cfg.data.dataset, split="test", data_dir=cfg.data.data_dir).subset(cfg.data.test_limit)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"dataset": test.name, "n_train": len(train), "models": {}}
    for spec in cfg.models:
        if spec.model.num_classes != test.num_classes or spec.model.in_channels != test.images.shape[1]:
            raise ValueError(f"model {spec.name}: num_classes/in_channels ({spec.model.num_classes}/{spec.model.in_channels}) "
                             f"do not match the data ({test.num_classes}/{test.images.shape[1]})")
        if spec.checkpoint:
            model, info = load_classifier(spec.checkpoint), {"steps": 0, "train_seconds": 0.0, "checkpoint": spec.checkpoint}
        else:
            model, info = train_classifier(spec, train, out_dir=out_dir, seed=cfg.seed, progress=cfg.progress, log=log)
        r = evaluate_classifier(model, test, cfg.evaluation, attack_limit=cfg.data.attack_limit, seed=cfg.seed,
                                progress=cfg.progress)
        r["train"] = info
        r["config"] = spec.model.to_dict()
        results["models"][spec.name] = r
        log(f"[{spec.name}] clean {r['clean']:.3f} L {r['lipschitz_bound']:.3g} certified {[round(v, 3) for v in r['certified']]} "
            f"pgd-l2 {[round(v, 3) for v in r['pgd_l2']]}")
        (out_dir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    if cfg.prior_eval is not None:
        results["prior_eval"] = evaluate_priors(cfg.prior_eval, out_dir=out_dir, seed=cfg.seed, progress=cfg.progress, log=log)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    _write_reports(out_dir, cfg, results)
    return results


def main(argv: list[str] | None = None) -> int:
    """``stablepnp robustness CONFIG.yaml [--data-dir D] [--output-dir O] [--no-progress]``.

    Returns 0 on success, 2 (with a one-line message on stderr) when the config is invalid.
    """
    ap = argparse.ArgumentParser(prog="stablepnp robustness", description="Certified and empirical robustness job.")
    ap.add_argument("config", help="YAML config (see priors/robustness/configs/default.yaml)")
    ap.add_argument("--data-dir", help="override data.data_dir (idx files of Fashion-MNIST, ...)")
    ap.add_argument("--output-dir", help="override output_dir")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config)
        if args.data_dir:
            cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, data_dir=args.data_dir))
        if args.output_dir:
            cfg = dataclasses.replace(cfg, output_dir=args.output_dir)
        if args.no_progress:
            cfg = dataclasses.replace(cfg, progress=False)
    except ValueError as exc:
        print(f"stablepnp robustness: error: {exc}", file=sys.stderr)
        return 2
    try:
        run(cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"stablepnp robustness: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
