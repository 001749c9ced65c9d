"""The ``stablepnp robustness CONFIG.yaml`` job: train (or load) classifiers, evaluate, report.

Steps: read a strict YAML config (unknown keys are errors listing the valid ones); for each
model, load ``checkpoint`` if given, else train with checkpoints in
``output_dir/checkpoints/NAME.pt`` (a rerun resumes where it stopped, and skips finished models);
evaluate clean, certified (Tsuzuku et al.) and adversarial accuracy (PGD l2 / l-infinity, FGSM),
corruptions, accuracy-vs-eps curves and their AUC; optionally evaluate the robustness of denoisers
and of PnP reconstruction maps (:mod:`priors.robustness.prior_eval`).  Writes ``results.json``,
``results.md``, ``results.csv``, ``prior_robustness.{md,csv}`` and ``acc_vs_eps_*.png``.

Use :func:`main` (``main(["config.yaml"])``); exit code 2 with a one-line message on a bad config.
The configuration lives in :mod:`priors.robustness.config`, the report writers in
:mod:`priors.robustness.reports`; the PnP map whose robustness is measured and the registry of
priors are parameters of :func:`run` and :func:`main`, given by ``stablepnp robustness``
(:mod:`pnp.robustness`): ``priors`` never imports ``pnp``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .attacks import accuracy, curve_auc, gaussian_noise, robust_accuracy, salt_and_pepper
from .certified import certified_curve, lmt_logits, margins
# the specs and the report writers live in their own modules; their names stay importable from here
from . import config
from .config import (PAPER_EPS, DataSpec, EvalSpec, ModelSpec, PriorEvalSpec, RobustnessConfig, TrainSpec,
                     load_config)
from .data import ImageDataset, load_dataset
from .models import ClassifierConfig, SequentialClassifier, build_classifier
from .prior_eval import DenoiserResolver, PnPMapFactory, evaluate_priors, resolve_denoisers
from .reports import classifier_table, write_reports

__all__ = [*config.__all__, "classifier_table", "train_classifier", "load_classifier", "evaluate_classifier",
           "run", "main"]

# --------------------------------------------------------------------------------------------
# training


def _lr(spec: TrainSpec, step: int, total: int) -> float:
    warm = max(1, int(0.05 * total))
    if step < warm:
        return spec.lr * (step + 1) / warm
    return 0.5 * spec.lr * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def _bar(total: int, desc: str, enabled: bool, initial: int = 0):
    return tqdm(total=total, desc=desc, initial=initial, disable=not enabled, leave=False, dynamic_ncols=True)


def total_steps(spec: ModelSpec, n: int) -> int:
    """Optimiser steps of ``spec``'s training on ``n`` images; refused above :data:`MAX_TRAIN_STEPS`."""
    ts = spec.train
    total = max(1, int(round(ts.epochs * max(1, n // ts.batch_size))))
    if total > MAX_TRAIN_STEPS:
        raise ValueError(f"models: {spec.name}: train.epochs = {ts.epochs:g} gives {total:,} steps of batch "
                         f"{ts.batch_size} on {n} images, above {MAX_TRAIN_STEPS:,}; lower epochs")
    return total


def _resume(ckpt_path: Path, spec: ModelSpec, model: torch.nn.Module,
            opt: torch.optim.Optimizer) -> tuple[int, float, bool, list]:
    """Load the job's own checkpoint into ``model`` and ``opt``: (step, elapsed, finished, history)."""
    state = _read_checkpoint(ckpt_path)
    # compared as configs, so a checkpoint written before a new (defaulted) field still resumes
    if ClassifierConfig.from_dict(state["config"]) != spec.model:
        raise ValueError(f"checkpoint {ckpt_path} was made for another architecture; use a new output_dir or delete it")
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        return int(state["step"]), float(state["elapsed"]), bool(state["finished"]), list(state.get("history", []))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"checkpoint {ckpt_path} cannot be resumed ({type(exc).__name__}: {_first(exc)}); "
                         "use a new output_dir or delete it") from None


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
    total = total_steps(spec, n)
    step, elapsed, finished, history = 0, 0.0, False, []
    if ckpt_path.is_file():
        step, elapsed, finished, history = _resume(ckpt_path, spec, model, opt)
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
        if not bool(torch.isfinite(loss)):  # stop before a non-finite step reaches the weights or a checkpoint
            raise ValueError(f"[{spec.name}] training diverged: the loss is {float(loss)} at step {step}; the last "
                             f"checkpoint ({ckpt_path}) is kept; lower train.lr")
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


#: Most optimiser steps one classifier may be trained for (``epochs`` times the steps of an epoch).
MAX_TRAIN_STEPS = 10_000_000


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_checkpoint(path: str | Path) -> dict:
    """A checkpoint of :func:`train_classifier` as a dict holding ``config`` and ``model``; one-line errors."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, truncated, or a pickle that is not plain data
        raise ValueError(f"checkpoint '{path}' could not be read as a classifier checkpoint ({type(exc).__name__}); "
                         "give a file written by this job (output_dir/checkpoints/NAME.pt)") from None
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict) or not isinstance(state.get("model"), dict):
        raise ValueError(f"checkpoint '{path}' is not a classifier checkpoint of this job (it holds no config and model "
                         "weights); give a file written by this job (output_dir/checkpoints/NAME.pt)")
    for key, value in state["model"].items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"checkpoint '{path}' holds non-finite weights ({key}); it cannot be evaluated or resumed")
    return state


def load_classifier(path: str | Path) -> SequentialClassifier:
    """Load a classifier from a checkpoint written by :func:`train_classifier` (one-line ``ValueError`` otherwise)."""
    state = _read_checkpoint(path)
    try:
        model = build_classifier(ClassifierConfig.from_dict(state["config"]))
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"checkpoint '{path}' does not hold a classifier this job can build ({type(exc).__name__}: "
                         f"{_first(exc)})") from None
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


# --------------------------------------------------------------------------------------------
# entry points


def run(cfg: RobustnessConfig, *, log=print, pnp_map: PnPMapFactory | None = None,
        resolve: DenoiserResolver | None = None) -> dict[str, Any]:
    """Run the whole job described by ``cfg``; returns the results dictionary (also in results.json).

    The prior evaluation (``cfg.prior_eval``) needs what ``priors`` does not own: ``pnp_map``, the
    solver's PnP reconstruction map (:data:`priors.robustness.prior_eval.PnPMapFactory`), and
    ``resolve``, which builds the priors named in ``prior_eval.denoisers`` other than the
    job-trained ones (:data:`priors.robustness.prior_eval.DenoiserResolver`).  ``stablepnp
    robustness`` passes both from :mod:`pnp.robustness`; without them a config with
    ``prior_eval`` is refused before any training.
    """
    torch.set_num_threads(max(1, cfg.threads))
    resolved = {}
    if cfg.prior_eval is not None:  # fail on a bad prior name or a missing solver before training
        if pnp_map is None:
            raise ValueError("prior_eval needs the PnP solver's map; run this job as 'stablepnp robustness "
                             "CONFIG.yaml' (or pass pnp_map= to run())")
        resolved = resolve_denoisers(cfg.prior_eval, resolve, log=log)
    out_dir = Path(cfg.output_dir)
    results: dict[str, Any] = {"dataset": None, "n_train": 0, "models": {}}
    # the given checkpoints before any training: a file that is not a classifier fails now, in one line
    loaded = {spec.name: load_classifier(spec.checkpoint) for spec in cfg.models if spec.checkpoint}
    if cfg.models:  # the data first: a missing dataset must not leave an empty output folder behind
        train = load_dataset(cfg.data.dataset, split="train", data_dir=cfg.data.data_dir).subset(cfg.data.train_limit)
        test = load_dataset(cfg.data.dataset, split="test", data_dir=cfg.data.data_dir).subset(cfg.data.test_limit)
        for split, data in (("train", train), ("test", test)):
            if len(data) == 0:  # accuracies on 0 samples would be 0/0
                raise ValueError(f"data: the {split} split of {cfg.data.dataset} holds no images; check data.data_dir")
        for spec in cfg.models:  # every training length before the first one starts
            if not spec.checkpoint:
                total_steps(spec, len(train))
        results.update({"dataset": test.name, "n_train": len(train)})
    out_dir.mkdir(parents=True, exist_ok=True)
    for spec in cfg.models:
        if spec.model.num_classes != test.num_classes or spec.model.in_channels != test.images.shape[1]:
            raise ValueError(f"model {spec.name}: num_classes/in_channels ({spec.model.num_classes}/{spec.model.in_channels}) "
                             f"do not match the data ({test.num_classes}/{test.images.shape[1]})")
        if spec.checkpoint:
            model, info = loaded[spec.name], {"steps": 0, "train_seconds": 0.0, "checkpoint": spec.checkpoint}
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
        results["prior_eval"] = evaluate_priors(cfg.prior_eval, out_dir=out_dir, pnp_map=pnp_map, resolved=resolved,
                                                seed=cfg.seed, progress=cfg.progress, log=log)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    write_reports(out_dir, cfg, results)
    return results


def main(argv: list[str] | None = None, *, pnp_map: PnPMapFactory | None = None,
         resolve: DenoiserResolver | None = None) -> int:
    """``stablepnp robustness CONFIG.yaml [--data-dir D] [--output-dir O] [--no-progress]``.

    ``pnp_map`` and ``resolve`` are handed to :func:`run`; ``stablepnp robustness``
    (:func:`pnp.robustness.main`) gives the solver's PnP-PGD map and the prior registry.

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
        run(cfg, pnp_map=pnp_map, resolve=resolve)
    except (ValueError, FileNotFoundError) as exc:
        print(f"stablepnp robustness: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
