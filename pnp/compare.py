"""``stablepnp compare CONFIG.yaml``: learned vs classical priors on a suite of deblurring problems.

The suite is the grid images x kernels x noise levels x priors x algorithms described by a
:class:`CompareConfig` (YAML, validated strictly). It runs in two phases:

1. **Tuning.** For every (prior, algorithm, noise level) the prior's parameter — the weight
   ``lam`` of a classical prior or the noise level ``sigma`` handed to a denoiser — is chosen by
   a small search on the validation image :data:`priors.data.VALIDATION_IMAGE` (held out of
   training and of the test split): a log-spaced grid, extended when the best point lies on
   its edge, refined by golden-section steps, and repeated for each step factor
   (``step = factor / L``) of the entry. The best value is frozen and recorded.
2. **Suite.** Every cell (image, kernel, noise, prior, algorithm) is solved with the frozen
   parameters. A finished cell is stored in ``OUT/cells/<hash>.json`` (+ ``.npz`` with the
   reconstruction) keyed by a hash of everything that determines it, and reused on a rerun
   (``--force`` recomputes), so a long comparison survives interruption.

Outputs in ``OUT``: ``results.md`` (summary, per-setting tables, tuned parameters, targets),
``results.csv`` (one row per cell), ``results.json`` (raw numbers, histories),
``recon_grid.png`` (reconstructions with zoomed insets), ``convergence.png`` (residual
curves per method) and ``tuning.json``.

PSNR and SSIM are computed on the reconstruction clipped to [0, 1] (peak 1).

The configuration lives in :mod:`pnp.compare_config`, the tables and figures in
:mod:`pnp.compare_report`; priors and algorithms come from the registries of :mod:`pnp.registry`
(a prior or algorithm registered from outside the package can be compared too).

Examples
--------
>>> from pnp.compare import CompareConfig
>>> cfg = CompareConfig.from_dict({"images": ["camera"], "size": 32, "priors": [{"prior": "tv"}]})
>>> cfg.priors[0].algorithms
('pgd',)
"""

from __future__ import annotations
import argparse
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from pnp.build import LoadedPrior, load_prior
from pnp.compare_config import (FORMAT, CompareConfig, FigureSpec, PriorEntry, SolverOptions, TuningSpec,
                                bundled_config, suite_problem)
from pnp.compare_report import convergence_figure, fmt, markdown, recon_grid, summarise, targets, write_csv
from pnp.record import json_safe, read_json, scores, write_json
from pnp.registry import algorithm_entry

__all__ = [
    "PriorEntry",
    "TuningSpec",
    "SolverOptions",
    "FigureSpec",
    "CompareConfig",
    "PriorHandle",
    "Method",
    "build_prior_handle",
    "tune",
    "run_suite",
    "bundled_config",
    "main",
]


# ============================================================================ priors
@dataclass
class PriorHandle:
    """A prior entry of the suite with its model loaded once (:class:`pnp.build.LoadedPrior`).

    Attributes
    ----------
    entry : PriorEntry
        The config entry (label, algorithms, relaxation, fixed value, search range ...).
    loaded : LoadedPrior
        The registered prior and its model; makes the prior for each parameter value.
    """

    entry: PriorEntry
    loaded: LoadedPrior

    @property
    def model(self) -> Any:
        """The loaded model (None for a classical prior)."""
        return self.loaded.model

    @property
    def sigma_range(self) -> tuple[float, float] | None:
        """A denoiser's trained noise range (tuning stays inside it)."""
        return self.loaded.sigma_range

    @property
    def fingerprint(self) -> dict[str, Any]:
        """What identifies the prior in the cache keys (name, hash of the weights)."""
        return self.loaded.fingerprint

    def make(self, value: float, *, noise: float | None = None) -> Any:
        """The prior with parameter ``value`` (``lam`` or ``sigma``; a smooth prior's ``mu`` follows ``noise``)."""
        return self.loaded.make(value, noise=noise)

    def level(self, value: float) -> dict[str, float] | None:
        """How a denoiser runs at parameter ``value``: its sigma and relaxation strength."""
        return self.loaded.level(value)

    def default_range(self, noise: float) -> tuple[float, float]:
        """Search interval of the parameter for noise level ``noise`` (the entry's ``range`` when given)."""
        return self.entry.range if self.entry.range is not None else self.loaded.default_range(noise)


def build_prior_handle(entry: PriorEntry) -> PriorHandle:
    """Load what an entry needs (denoiser weights, packages).

    Raises
    ------
    ImportError
        ``bm3d`` missing.
    ValueError, FileNotFoundError
        Missing shipped weights / checkpoint, or a deepinv model that would download weights.
    """
    return PriorHandle(entry, load_prior(entry.prior, path=entry.path, label=entry.label))


# ============================================================================ one run
def _algorithm(handle: PriorHandle, value: float, algorithm: str, step_factor: float, problem: Any) -> Any:
    registered = algorithm_entry(algorithm)
    step = registered.step_for(step_factor, problem.fidelity.lipschitz_grad())
    # the same default as `stablepnp solve`: safeguarded Anderson wherever it keeps the theorem
    noise = getattr(problem.noise, "sigma", None)
    return registered.build(problem, handle.make(value, noise=noise), step=step, relaxation=handle.entry.relaxation,
                            accelerate="auto")


def _solve(handle: PriorHandle, value: float, algorithm: str, step_factor: float, problem: Any,
           *, max_iter: int, tol: float) -> tuple[Any, Any, dict[str, Any]]:
    alg = _algorithm(handle, value, algorithm, step_factor, problem)
    res = alg.run(max_iter=max_iter, tol=tol, progress=False)
    p, s = scores(res.x, problem.truth)
    report = res.report
    info = {
        "psnr": p, "ssim": s, "iterations": res.iterations, "seconds": res.seconds, "converged": res.converged,
        "status": res.status, "final_residual": res.final_residual, "step": res.step,
        "verdict": None if report is None else report.verdict,
        "guarantee": bool(report is not None and report.verdict == "guaranteed"),
        "alpha": None if report is None else report.alpha,
        "theorem": None if report is None else report.theorem,
        "reason": None if report is None else report.reason,
    }
    return res, alg, info


# ============================================================================ cache
def _acceleration_key(algorithm: str) -> dict[str, str]:
    """Cells of accelerated algorithms are keyed by the acceleration (FISTA/PDHG cells keep their old keys)."""
    return {"accelerate": "auto"} if algorithm_entry(algorithm).accelerable else {}


def _key(d: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(json_safe(d), sort_keys=True).encode()).hexdigest()[:20]


# ============================================================================ tuning
def _golden_refine(f: Callable[[float], float], a: float, b: float, steps: int) -> None:
    """Golden-section search for the max of ``f`` on [a, b] (log10 space), ``steps`` new evaluations."""
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(max(steps - 2, 0)):
        if fc >= fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)


@dataclass
class _Tuning:
    """One (prior, algorithm, noise) search: its problems, budget, cache and every evaluation made."""

    handle: PriorHandle
    algorithm: str
    problems: list
    base_key: dict
    max_iter: int
    tol: float
    out: Path | None
    force: bool
    counter: dict | None
    evals: list

    def evaluate(self, value: float, factor: float) -> float:
        """Mean validation PSNR at ``value`` and step factor (cached; a diverged run scores -inf)."""
        key = _key({**self.base_key, "value": round(value, 12), "step_factor": factor})
        path = None if self.out is None else self.out / "tuning" / "evals" / f"{key}.json"
        rec = None if (path is None or self.force) else read_json(path)
        if rec is None:
            results = []
            for prob in self.problems:
                try:
                    _, _, info = _solve(self.handle, value, self.algorithm, factor, prob, max_iter=self.max_iter,
                                        tol=self.tol)
                except ValueError as exc:  # the algorithm refused this setting
                    raise ValueError(f"tuning {self.handle.entry.method(self.algorithm)}: {exc}") from None
                results.append(info["psnr"] if info["status"] not in ("diverged", "nan") else -math.inf)
            rec = {"value": value, "step_factor": factor, "psnr": float(np.mean(results))}
            if path is not None:
                write_json(path, rec, indent=1)
            if self.counter is not None:
                self.counter["tuning_runs"] = self.counter.get("tuning_runs", 0) + 1
        self.evals.append(rec)
        return rec["psnr"] if rec["psnr"] is not None else -math.inf

    def search(self, lo: float, hi: float, factor: float, tcfg: TuningSpec,
               hard: tuple[float, float] | None) -> tuple[float, float, bool]:
        """``(best score, best value, at the edge)`` over [lo, hi]: log grid, edge extensions, golden refinement."""
        if lo == hi:
            return self.evaluate(lo, factor), lo, False
        n = tcfg.grid_points
        llo, lhi = math.log10(lo), math.log10(hi)
        h = (lhi - llo) / max(n - 1, 1)
        grid = [llo + i * h for i in range(n)] if n > 1 else [(llo + lhi) / 2]
        results = {g: self.evaluate(10**g, factor) for g in grid}
        # extend (up to tuning.edge_extensions times) while the best point lies on the edge of the range
        for _ in range(tcfg.edge_extensions):
            gb = max(results, key=results.get)
            if n < 2:
                break
            if gb == min(results):
                g_new = gb - h
            elif gb == max(results):
                g_new = gb + h
            else:
                break
            if hard is not None and not (hard[0] <= 10**g_new <= hard[1]):
                break
            results[g_new] = self.evaluate(10**g_new, factor)
        gb = max(results, key=results.get)
        at_edge = gb in (min(results), max(results)) and n > 1
        if tcfg.refine_steps and n > 1:
            def f(g: float) -> float:
                results[g] = self.evaluate(10**g, factor)
                return results[g]

            a, b = max(gb - h, min(results)), min(gb + h, max(results))
            if b > a:
                _golden_refine(f, a, b, tcfg.refine_steps)
        gb = max(results, key=results.get)
        return results[gb], 10**gb, at_edge


def tune(
    handle: PriorHandle,
    algorithm: str,
    noise: float,
    config: CompareConfig,
    *,
    out: Path | None = None,
    force: bool = False,
    counter: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Choose the parameter (and step factor) of one (prior, algorithm, noise) on the validation image.

    Every evaluation is cached in ``out/tuning/evals`` when ``out`` is given.

    Returns
    -------
    dict
        ``param`` (``lam``/``sigma``), ``value``, ``step_factor``, ``psnr`` (validation),
        ``evaluations`` (every point tried), ``range``, ``at_boundary``, ``source``.
    """
    entry = handle.entry
    if entry.fixed is not None and len(entry.step_factors) == 1:
        return {"param": entry.param, "value": entry.fixed, "step_factor": entry.step_factors[0], "psnr": None,
                "evaluations": [], "range": None, "at_boundary": False, "source": "fixed in the config"}
    tcfg = config.tuning
    kernels = tcfg.kernels or (config.kernels[0],)
    size = tcfg.size if tcfg.size is not None else config.size
    # the tuning budget never exceeds the entry's own (BM3D runs 40 iterations, not the tuning's 100)
    budgets = [m for m in (tcfg.max_iter, entry.max_iter) if m]
    max_iter = min(budgets) if budgets else config.solver.max_iter
    tol = entry.tol or config.solver.tol
    problems = [suite_problem(tcfg.image, k, noise, size=size, gray=config.gray, boundary=config.boundary,
                              seed=config.seed) for k in kernels]
    base_key = {"format": FORMAT, "fp": handle.fingerprint, "algorithm": algorithm, "noise": noise,
                "relaxation": entry.relaxation, "image": tcfg.image, "size": size, "gray": config.gray,
                "kernels": kernels, "boundary": config.boundary, "seed": config.seed, "max_iter": max_iter, "tol": tol,
                **_acceleration_key(algorithm)}
    search = _Tuning(handle, algorithm, problems, base_key, max_iter, tol, out, force, counter, [])
    lo, hi = (entry.fixed, entry.fixed) if entry.fixed is not None else handle.default_range(noise)
    # a denoiser's level may go below its trained floor (relaxed there), never above its ceiling
    hard = (0.02 * handle.sigma_range[0], handle.sigma_range[1]) if entry.param == "sigma" and handle.sigma_range else None
    best: tuple[float, float, float] | None = None  # (psnr, value, factor)
    any_boundary = False
    for factor in entry.step_factors:
        score, value, at_edge = search.search(lo, hi, factor, tcfg, hard)
        any_boundary = any_boundary or at_edge
        if best is None or score > best[0]:
            best = (score, value, factor)
    assert best is not None
    return {"param": entry.param, "value": best[1], "step_factor": best[2], "psnr": best[0],
            "evaluations": search.evals, "range": [lo, hi], "at_boundary": any_boundary,
            "source": f"search on {tcfg.image} ({', '.join(kernels)}, noise {noise:g}), {len(search.evals)} runs"}


# ============================================================================ the suite
@dataclass
class Method:
    """One row of the suite: a prior handle run with one algorithm."""

    handle: PriorHandle
    algorithm: str

    @property
    def name(self) -> str:
        return self.handle.entry.method(self.algorithm)


def _load_handles(config: CompareConfig) -> tuple[list[PriorHandle], list[dict[str, str]]]:
    handles, skipped = [], []
    for entry in config.priors:
        try:
            handles.append(build_prior_handle(entry))
        except (ImportError, FileNotFoundError) as exc:
            skipped.append({"prior": entry.label, "reason": str(exc).splitlines()[0]})
    return handles, skipped


def _tune_all(methods: list[Method], config: CompareConfig, out_dir: Path, *, force: bool, progress: bool,
              counts: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Phase 1: the frozen parameter of every (method, noise level)."""
    from tqdm.auto import tqdm

    tuning: dict[str, dict[str, Any]] = {}
    bar = tqdm([(m, nz) for m in methods for nz in config.noise], desc="tuning", disable=not progress,
               dynamic_ncols=True)
    for m, nz in bar:
        bar.set_postfix_str(f"{m.name} noise {nz:g}")
        t = tune(m.handle, m.algorithm, nz, config, out=out_dir, force=force, counter=counts)
        tuning[f"{m.name}|{nz:g}"] = {"method": m.name, "noise": nz, **t, "level": m.handle.level(t["value"])}
    bar.close()
    write_json(out_dir / "tuning.json", tuning, indent=1)
    return tuning


def _cell_config(m: Method, t: Mapping[str, Any], image: str, kernel: str, nz: float,
                 config: CompareConfig) -> dict[str, Any]:
    """Everything that determines a cell (its cache key is the hash of this)."""
    e = m.handle.entry
    return {"format": FORMAT, "image": image, "size": config.size, "gray": config.gray, "kernel": kernel, "noise": nz,
            "boundary": config.boundary, "seed": config.seed, "fp": m.handle.fingerprint, "algorithm": m.algorithm,
            "relaxation": e.relaxation, "param": t["param"], "value": t["value"], "step_factor": t["step_factor"],
            "max_iter": e.max_iter or config.solver.max_iter, "tol": e.tol or config.solver.tol,
            **_acceleration_key(m.algorithm)}


def _compute_cell(m: Method, t: Mapping[str, Any], cell_cfg: dict[str, Any], key: str, problem: Any,
                  out_dir: Path) -> dict[str, Any]:
    """Solve one cell, store its record and reconstruction, return the record."""
    e = m.handle.entry
    res, _, info = _solve(m.handle, t["value"], m.algorithm, t["step_factor"], problem,
                          max_iter=cell_cfg["max_iter"], tol=cell_cfg["tol"])
    p_obs, s_obs = scores(problem.y, problem.truth)
    rec = {"key": key, "image": cell_cfg["image"], "kernel": cell_cfg["kernel"], "noise": cell_cfg["noise"],
           "method": m.name, "prior": e.label, "prior_kind": e.kind, "algorithm": m.algorithm, "param": t["param"],
           "value": t["value"], "step_factor": t["step_factor"], "relaxation": e.relaxation,
           "denoiser_level": t["level"], "psnr_observed": p_obs, "ssim_observed": s_obs,
           **info, "history": {k: res.history.get(k, []) for k in ("residual", "psnr")}, "config": cell_cfg}
    np.savez_compressed(out_dir / "cells" / f"{key}.npz", x=res.x.detach().clamp(0, 1).cpu().numpy().astype(np.float16))
    write_json(out_dir / "cells" / f"{key}.json", rec, indent=1)
    return rec


def _run_cells(methods: list[Method], tuning: Mapping[str, Any], config: CompareConfig, out_dir: Path, *,
               force: bool, progress: bool, counts: dict[str, int], log: Callable[[str], None]) -> list[dict]:
    """Phase 2: every cell of the grid, reusing stored ones unless ``force``."""
    from tqdm.auto import tqdm

    cells: list[dict[str, Any]] = []
    total = len(config.images) * len(config.kernels) * len(config.noise) * len(methods)
    bar = tqdm(total=total, desc="compare", disable=not progress, dynamic_ncols=True)
    for image in config.images:
        for kernel in config.kernels:
            for nz in config.noise:
                problem = None
                for m in methods:
                    cell_cfg = _cell_config(m, tuning[f"{m.name}|{nz:g}"], image, kernel, nz, config)
                    key = _key(cell_cfg)
                    rec = None if force else read_json(out_dir / "cells" / f"{key}.json")
                    if rec is not None and (out_dir / "cells" / f"{key}.npz").is_file():
                        counts["reused"] += 1
                    else:
                        if problem is None:
                            problem = suite_problem(image, kernel, nz, size=config.size, gray=config.gray,
                                                    boundary=config.boundary, seed=config.seed)
                        bar.set_postfix_str(f"{image} {kernel} {nz:g} {m.name}")
                        try:
                            rec = _compute_cell(m, tuning[f"{m.name}|{nz:g}"], cell_cfg, key, problem, out_dir)
                        except (ValueError, RuntimeError) as exc:
                            counts["failed"] += 1
                            log(f"compare: cell {image} {kernel} {nz:g} {m.name} failed: {exc}")
                            bar.update(1)
                            continue
                        counts["computed"] += 1
                    cells.append(rec)
                    bar.update(1)
    bar.close()
    return cells


def run_suite(
    config: CompareConfig,
    out: str | Path | None = None,
    *,
    force: bool = False,
    progress: bool = True,
    figures: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Tune, run every cell (reusing stored ones unless ``force``), write the report.

    Parameters
    ----------
    config : CompareConfig
        The suite.
    out : str or Path, optional
        Output folder (default ``config.out``).
    force : bool
        Recompute cells and tuning runs even when stored.
    progress : bool
        tqdm progress bars.
    figures : bool
        Write ``recon_grid.png`` and ``convergence.png``.
    log : callable, optional
        Receives one-line messages (default: stderr).

    Returns
    -------
    dict
        ``cells`` (records), ``tuning``, ``skipped`` priors, ``summary``, ``targets``, ``counts``
        (``computed``, ``reused``, ``failed`` cells and ``tuning_runs``), ``out``.

    Raises
    ------
    ValueError
        A setting refused by an algorithm, or a deepinv model that needs downloaded weights.
    """
    from pnp.spec import check_output_paths

    log = log or (lambda m: print(m, file=sys.stderr))
    out_dir = Path(out if out is not None else config.out)
    check_output_paths(out_dir, None)  # a file or a read-only place is refused in one line, before any work
    (out_dir / "cells").mkdir(parents=True, exist_ok=True)
    old_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    counts = {"computed": 0, "reused": 0, "failed": 0, "tuning_runs": 0}
    try:
        handles, skipped = _load_handles(config)
        for s in skipped:
            log(f"compare: skipping prior {s['prior']}: {s['reason']}")
        methods = [Method(h, a) for h in handles for a in h.entry.algorithms]
        if not methods:
            raise ValueError("no prior of the config could be loaded (see the skipped list); nothing to compare")
        tuning = _tune_all(methods, config, out_dir, force=force, progress=progress, counts=counts)
        cells = _run_cells(methods, tuning, config, out_dir, force=force, progress=progress, counts=counts, log=log)
        summary, goals = summarise(cells, methods), targets(cells, methods)
        report = {"format": FORMAT, "name": config.name, "config": config.to_dict(), "skipped": skipped,
                  "tuning": tuning, "summary": summary, "targets": goals, "counts": counts, "cells": cells}
        write_json(out_dir / "results.json", report, indent=1)
        write_csv(out_dir / "results.csv", cells)
        (out_dir / "results.md").write_text(markdown(config, cells, methods, summary, tuning, skipped, goals, counts))
        if figures and cells:
            recon_grid(config, cells, methods, out_dir)
            convergence_figure(cells, methods, out_dir / "convergence.png")
        report["out"] = str(out_dir)
        return report
    finally:
        torch.set_num_threads(old_threads)


# ============================================================================ CLI
def main(argv: Sequence[str] | None = None) -> int:
    """``stablepnp compare [CONFIG.yaml|default|tiny] [--out DIR] [--force] [--no-progress]``.

    Exit codes: 0 done, 2 bad input (one line on stderr).
    """
    parser = argparse.ArgumentParser(
        prog="stablepnp compare",
        description="Learned vs classical priors: tune on a validation image, run the suite, write tables and figures.")
    parser.add_argument("config", nargs="?", default="default",
                        help="suite YAML, or 'default' / 'tiny' for the bundled ones (default: default)")
    parser.add_argument("--out", help="output folder (default: the config's 'out')")
    parser.add_argument("--resume", action="store_true", default=True,
                        help="reuse finished cells stored in the output folder (the default)")
    parser.add_argument("--force", action="store_true", help="recompute every cell and tuning run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--no-figures", action="store_true", help="skip the figures")
    parser.add_argument("--only", metavar="NAME[,NAME...]",
                        help="run only these prior entries (label or prior name); cached cells are shared with the "
                             "full suite")
    args = parser.parse_args(argv)
    try:
        src = args.config
        path = bundled_config(src) if src in ("default", "tiny") and not Path(src).exists() else Path(src)
        config = CompareConfig.from_yaml(path)
        if args.only is not None:
            config = config.select(args.only.split(","))
        t0 = time.perf_counter()
        report = run_suite(config, args.out, force=args.force, progress=not args.no_progress,
                           figures=not args.no_figures)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        print(f"stablepnp: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2
    out = Path(report["out"])
    print(f"compare: {report['counts']['computed']} cells computed, {report['counts']['reused']} reused, "
          f"{report['counts']['failed']} failed in {time.perf_counter() - t0:.1f} s -> {out / 'results.md'}")
    for name, s in report["summary"].items():
        print(f"  {name:24s} PSNR {fmt(s['psnr'])}  SSIM {fmt(s['ssim'], '.4f')}  guarantee {'yes' if s['guarantee'] else 'no'}")
    for t in report["targets"]:
        print(f"  target: {t['target']}: gap {fmt(t['gap_db'], '+.2f')} dB -> "
              f"{'n/a' if t['met'] is None else ('met' if t['met'] else 'NOT met')}")
    return 0
