"""The runs of a comparison suite: the prior handles, one solve, the cache keys and the tuning search.

Split from :mod:`pnp.compare` (which drives the suite); see its docstring for the two phases.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection, Mapping

import numpy as np

from pnp.build import LoadedPrior, load_prior
from pnp.compare_config import FORMAT, CompareConfig, PriorEntry, TuningSpec, suite_problem
from pnp.record import json_safe, read_json, scores, write_json
from pnp.registry import algorithm_entry

__all__ = ["PriorHandle", "build_prior_handle", "tune"]


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
    fresh: frozenset = frozenset()  # keys evaluated in this run (by any rank): read back even with force

    def key(self, value: float, factor: float) -> str:
        """The cache key of one evaluation."""
        return _key({**self.base_key, "value": round(value, 12), "step_factor": factor})

    def evaluate(self, value: float, factor: float) -> float:
        """Mean validation PSNR at ``value`` and step factor (cached; a diverged run scores -inf)."""
        key = self.key(value, factor)
        path = None if self.out is None else self.out / "tuning" / "evals" / f"{key}.json"
        rec = None if (path is None or (self.force and key not in self.fresh)) else read_json(path)
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
        grid, h = _log_grid(lo, hi, n)
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


def _log_grid(lo: float, hi: float, n: int) -> tuple[list[float], float]:
    """The first grid of a search over [lo, hi] (log10 values) and its spacing."""
    llo, lhi = math.log10(lo), math.log10(hi)
    h = (lhi - llo) / max(n - 1, 1)
    return ([llo + i * h for i in range(n)] if n > 1 else [(llo + lhi) / 2]), h


def _first_points(lo: float, hi: float, tcfg: TuningSpec) -> list[float]:
    """The values :meth:`_Tuning.search` evaluates first, whatever their scores (the separable part)."""
    return [lo] if lo == hi else [10**g for g in _log_grid(lo, hi, tcfg.grid_points)[0]]


def _tuning_plan(handle: PriorHandle, algorithm: str, noise: float, config: CompareConfig, *, out: Path | None,
                 force: bool, counter: dict[str, int] | None,
                 fresh: frozenset = frozenset()) -> tuple[_Tuning, float, float, Any, tuple] | None:
    """The search of one (prior, algorithm, noise): ``(search, lo, hi, hard bounds, kernels)``; None when fixed."""
    entry = handle.entry
    if entry.fixed is not None and len(entry.step_factors) == 1:
        return None
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
    search = _Tuning(handle, algorithm, problems, base_key, max_iter, tol, out, force, counter, [], frozenset(fresh))
    lo, hi = (entry.fixed, entry.fixed) if entry.fixed is not None else handle.default_range(noise)
    # a denoiser's level may go below its trained floor (relaxed there), never above its ceiling
    hard = (0.02 * handle.sigma_range[0], handle.sigma_range[1]) if entry.param == "sigma" and handle.sigma_range else None
    return search, lo, hi, hard, tuple(kernels)


def tune(
    handle: PriorHandle,
    algorithm: str,
    noise: float,
    config: CompareConfig,
    *,
    out: Path | None = None,
    force: bool = False,
    counter: dict[str, int] | None = None,
    fresh: Collection[str] = (),
) -> dict[str, Any]:
    """Choose the parameter (and step factor) of one (prior, algorithm, noise) on the validation image.

    Every evaluation is cached in ``out/tuning/evals`` when ``out`` is given; ``fresh`` names cache
    keys evaluated earlier in the same run (by another rank), read back even with ``force``.

    Returns
    -------
    dict
        ``param`` (``lam``/``sigma``), ``value``, ``step_factor``, ``psnr`` (validation),
        ``evaluations`` (every point tried), ``range``, ``at_boundary``, ``source``.
    """
    entry = handle.entry
    plan = _tuning_plan(handle, algorithm, noise, config, out=out, force=force, counter=counter,
                        fresh=frozenset(fresh))
    if plan is None:
        return {"param": entry.param, "value": entry.fixed, "step_factor": entry.step_factors[0], "psnr": None,
                "evaluations": [], "range": None, "at_boundary": False, "source": "fixed in the config"}
    search, lo, hi, hard, kernels = plan
    tcfg = config.tuning
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
