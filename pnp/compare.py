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

Under ``torchrun --nproc_per_node N -m pnp.cli compare CONFIG`` the ranks share both phases
through that cache: the first grid points of all searches, then the searches, then the cells
(each method's cells round-robin over the ranks); rank 0 writes the one report
(:mod:`pnp.distributed`, docs/distributed.md).

Outputs in ``OUT``: ``results.md`` (summary, per-setting tables, tuned parameters, paired differences),
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
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from pnp.compare_config import (FORMAT, CompareConfig, FigureSpec, PriorEntry, SolverOptions, TuningSpec,
                                bundled_config, suite_problem)
from pnp.compare_report import convergence_figure, fmt, markdown, recon_grid, summarise, paired_gaps, write_csv
from pnp.distributed import Ranks, check_shared_folder, current
from pnp.record import read_json, scores, write_json
from pnp.compare_runs import (PriorHandle, _acceleration_key, _first_points, _key, _solve, _Tuning, _tuning_plan,
                              build_prior_handle, tune)

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
              counts: dict[str, int], ranks: Ranks = Ranks()) -> dict[str, dict[str, Any]]:
    """Phase 1: the frozen parameter of every (method, noise level).

    With several ranks the searches are shared round-robin; before them the first grid of every
    search (evaluated whatever the scores: the separable part) is shared point by point, so a
    rank that owns a long search finds most of its grid in the cache.
    """
    from tqdm.auto import tqdm

    tasks = [(m, nz) for m in methods for nz in config.noise]
    fresh = _tune_grids(tasks, config, out_dir, force=force, counts=counts, ranks=ranks) if ranks.distributed \
        else frozenset()
    found: dict[int, dict[str, Any]] = {}
    bar = tqdm(ranks.shard(len(tasks)), desc="tuning", disable=not (progress and ranks.is_main), dynamic_ncols=True)
    for i in bar:
        m, nz = tasks[i]
        bar.set_postfix_str(f"{m.name} noise {nz:g}")
        t = tune(m.handle, m.algorithm, nz, config, out=out_dir, force=force, counter=counts, fresh=fresh)
        found[i] = {"method": m.name, "noise": nz, **t, "level": m.handle.level(t["value"])}
    bar.close()
    if ranks.distributed:
        found = {i: t for part in ranks.gather(found) for i, t in part.items()}
    tuning = {f"{m.name}|{nz:g}": found[i] for i, (m, nz) in enumerate(tasks)}
    if ranks.is_main:
        write_json(out_dir / "tuning.json", tuning, indent=1)
    return tuning


def _tune_grids(tasks: list[tuple[Method, float]], config: CompareConfig, out_dir: Path, *, force: bool,
                counts: dict[str, int], ranks: Ranks) -> frozenset[str]:
    """Evaluate this rank's share (round-robin) of the first grid points of every search into the cache.

    Returns the cache keys of all those points (every rank's), which the searches then read back.
    """
    points: list[tuple[_Tuning, float, float]] = []
    for m, nz in tasks:
        plan = _tuning_plan(m.handle, m.algorithm, nz, config, out=out_dir, force=force, counter=counts)
        if plan is not None:
            search, lo, hi = plan[:3]
            points += [(search, v, f) for f in m.handle.entry.step_factors
                       for v in _first_points(lo, hi, config.tuning)]
    for j in ranks.shard(len(points)):
        search, value, factor = points[j]
        search.evaluate(value, factor)
    ranks.barrier()  # every grid point is in the cache before any search starts
    return frozenset(search.key(value, factor) for search, value, factor in points)


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
               force: bool, progress: bool, counts: dict[str, int], log: Callable[[str], None],
               ranks: Ranks = Ranks()) -> list[dict]:
    """Phase 2: every cell of the grid, reusing stored ones unless ``force``.

    With several ranks, cell (setting g, method i) is rank ``(g + i) % world``'s: each method's
    cells go round-robin over the ranks, so a slow method is shared by all. Every rank returns
    all cells (gathered), in the order of the grid.
    """
    from tqdm.auto import tqdm

    settings = [(image, kernel, nz) for image in config.images for kernel in config.kernels for nz in config.noise]
    done: dict[tuple[int, int], dict[str, Any]] = {}
    total = sum(ranks.owns(g, offset=i) for g in range(len(settings)) for i in range(len(methods)))
    bar = tqdm(total=total, desc="compare", disable=not (progress and ranks.is_main), dynamic_ncols=True)
    for g, (image, kernel, nz) in enumerate(settings):
        problem = None
        for i, m in enumerate(methods):
            if not ranks.owns(g, offset=i):
                continue
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
                    log(f"{ranks.prefix}compare: cell {image} {kernel} {nz:g} {m.name} failed: {exc}")
                    bar.update(1)
                    continue
                counts["computed"] += 1
            done[(g, i)] = rec
            bar.update(1)
    bar.close()
    if ranks.distributed:
        done = {gi: rec for part in ranks.gather(done) for gi, rec in part.items()}
    return [done[gi] for gi in sorted(done)]


def _suite_methods(config: CompareConfig, out_dir: Path, *, force: bool, ranks: Ranks, log: Callable[[str], None]
                   ) -> tuple[list[Method], list[dict[str, str]]]:
    """The methods (prior x algorithm) of the suite and the priors skipped; the ranks must agree on them."""
    handles, skipped = _load_handles(config)
    # every rank must run the same suite with the same models: compared before any work
    ranks.agree({**{f"config {k}": v for k, v in config.to_dict().items()}, "force": force,
                 "output folder": str(out_dir.resolve()), "skipped priors": [s["prior"] for s in skipped],
                 **{f"model {h.entry.label}": h.fingerprint for h in handles}})
    check_shared_folder(ranks, out_dir)
    for s in skipped if ranks.is_main else []:
        log(f"compare: skipping prior {s['prior']}: {s['reason']}")
    methods = [Method(h, a) for h in handles for a in h.entry.algorithms]
    if not methods:
        raise ValueError("no prior of the config could be loaded (see the skipped list); nothing to compare")
    return methods, skipped


def _write_report(config: CompareConfig, report: dict[str, Any], methods: list[Method], out_dir: Path, *,
                  figures: bool) -> None:
    """``results.json``, ``results.csv``, ``results.md`` and (with ``figures``) the two figures."""
    cells = report["cells"]
    write_json(out_dir / "results.json", report, indent=1)
    write_csv(out_dir / "results.csv", cells)
    (out_dir / "results.md").write_text(markdown(config, cells, methods, report["summary"], report["tuning"],
                                                 report["skipped"], report["paired_gaps"], report["counts"]))
    if figures and cells:
        recon_grid(config, cells, methods, out_dir)
        convergence_figure(cells, methods, out_dir / "convergence.png")


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
        ``cells`` (records), ``tuning``, ``skipped`` priors, ``summary``, ``paired_gaps``, ``counts``
        (``computed``, ``reused``, ``failed`` cells and ``tuning_runs``, all ranks together), ``out``,
        ``ranks``.

    Under ``torchrun`` the searches and the cells are shared among the ranks (:func:`_tune_all`,
    :func:`_run_cells`) through the cache in ``out``; every rank returns the whole report and rank
    0 writes it. Killing a rank and rerunning resumes from the cache.

    Raises
    ------
    ValueError
        A setting refused by an algorithm, or a deepinv model that needs downloaded weights.
    """
    from pnp.spec import check_output_paths

    ranks = current()
    log = log or (lambda m: print(m, file=sys.stderr))
    out_dir = Path(out if out is not None else config.out)
    check_output_paths(out_dir, None)  # a file or a read-only place is refused in one line, before any work
    (out_dir / "cells").mkdir(parents=True, exist_ok=True)
    old_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    counts = {"computed": 0, "reused": 0, "failed": 0, "tuning_runs": 0}
    try:
        methods, skipped = _suite_methods(config, out_dir, force=force, ranks=ranks, log=log)
        tuning = _tune_all(methods, config, out_dir, force=force, progress=progress, counts=counts, ranks=ranks)
        cells = _run_cells(methods, tuning, config, out_dir, force=force, progress=progress, counts=counts, log=log,
                           ranks=ranks)
        if ranks.distributed:
            counts = {k: sum(c[k] for c in ranks.gather(counts)) for k in counts}
        summary, goals = summarise(cells, methods), paired_gaps(cells, methods)
        report = {"format": FORMAT, "name": config.name, "config": config.to_dict(), "skipped": skipped,
                  "tuning": tuning, "summary": summary, "paired_gaps": goals, "counts": counts, "cells": cells}
        if ranks.is_main:  # one report, written by rank 0 once every rank's cells are in
            _write_report(config, report, methods, out_dir, figures=figures)
        report["out"] = str(out_dir)
        report["ranks"] = ranks.world
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
        ranks = current()  # under torchrun: join the others first, so that a rank refusing its input stops them
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
    if not ranks.is_main:  # under torchrun rank 0 prints the one summary
        return 0
    out = Path(report["out"])
    ranks_note = f" on {report['ranks']} ranks" if report.get("ranks", 1) > 1 else ""
    print(f"compare: {report['counts']['computed']} cells computed, {report['counts']['reused']} reused, "
          f"{report['counts']['failed']} failed in {time.perf_counter() - t0:.1f} s{ranks_note} "
          f"-> {out / 'results.md'}")
    for name, s in report["summary"].items():
        print(f"  {name:24s} PSNR {fmt(s['psnr'])}  SSIM {fmt(s['ssim'], '.4f')}  guarantee {'yes' if s['guarantee'] else 'no'}")
    for t in report["paired_gaps"]:
        print(f"  {t['method']} - {t['reference']}: {fmt(t['gap_db'], '+.2f')} dB (mean over {t['pairs']} paired cells)")
    return 0
