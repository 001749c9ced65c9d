"""The ``stablepnp solve`` job as a Python function: spec → problem → prior → algorithm → record.

:func:`solve` runs one job described by a :class:`pnp.spec.SolveConfig`: it simulates the
problem, builds the prior and the algorithm through the registries (:mod:`pnp.build`; the
algorithm refuses a step above its convergence bound unless ``unsafe``), runs it, and returns a
:class:`pnp.record.SolveRecord`, from which the table (:mod:`pnp.report`), the figure
(:mod:`pnp.figures`) and the JSON record are rendered.

The names that lived here before the job layer was split (the specs, ``build_prior``,
``verdict_line``, ``format_table``, ``solve_batch``, ...) are re-exported from their modules.

Examples
--------
>>> import tempfile
>>> from pnp.solve import SolveConfig, solve
>>> cfg = SolveConfig.from_dict({"problem": {"size": 32}, "solver": {"max_iter": 20},
...                              "output": {"dir": tempfile.mkdtemp(), "figure": False}})
>>> record = solve(cfg, quiet=True)
>>> record["psnr"] > record["psnr_observed"]
True
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch

from pnp.batch import solve_batch
from pnp.build import build_algorithm, build_prior, default_lam, noise_warnings, shipped_model
from pnp.record import SolveRecord, finite, json_safe, write_json
from pnp.registry import CHECKPOINT_SUFFIXES, LAM_NOISE_EXPONENT
from pnp.report import diagnostics_line, diagnostics_record, format_batch_table, format_table, monotone_summary
from pnp.report import verdict_line
from pnp.spec import (MAX_NOISE, MIN_RELAXATION, SOLVE_ARRAYS, STEP_RANGE, OutputSpec, SolveConfig, SolverSpec,
                      check_native_memory, check_output_paths, check_solve_memory, check_solver_ranges,
                      check_step_range)
from pnp.outputs import check_output_targets, write_reconstruction
from problems import ProblemSpec

__all__ = [
    "SolverSpec",
    "OutputSpec",
    "SolveConfig",
    "SolveRecord",
    "shipped_model",
    "LAM_NOISE_EXPONENT",
    "CHECKPOINT_SUFFIXES",
    "default_lam",
    "build_prior",
    "build_algorithm",
    "solve",
    "format_table",
    "verdict_line",
    "diagnostics_line",
    "diagnostics_record",
    "solve_batch",
    "format_batch_table",
    "check_step_range",
    "check_solver_ranges",
    "check_output_paths",
    "check_solve_memory",
    "STEP_RANGE",
    "MIN_RELAXATION",
    "MAX_NOISE",
    "SOLVE_ARRAYS",
]

#: History series copied into the record.
_HISTORY_KEYS = ("residual", "psnr", "objective", "anderson", "evaluations", "prox_error_bound", "prox_target",
                 "prox_iterations")


@dataclass
class _Job:
    """What :func:`solve` built before running: the problem, the prior, the algorithm and their report."""

    problem: Any
    prior: Any
    prior_info: dict
    algorithm: Any
    report: Any
    warnings: list
    spec: Any = None  # the ProblemSpec the solver works with (sigma: the assumed noise level)
    estimate: Any = None  # problems.noise_estimate.NoiseEstimate, when the noise level was estimated


def _check_job(config: SolveConfig) -> None:
    """Refuse settings before any work: unwritable outputs, ranges, overflowing noise, a size beyond memory."""
    spec, sspec, ospec = config.problem, config.solver, config.output
    check_output_paths(ospec.dir, ospec.json)
    check_solver_ranges(sspec)
    for name, value in (("sigma", spec.sigma), ("gain", spec.gain if spec.noise_model != "gaussian" else 0.0)):
        if value > MAX_NOISE:
            raise ValueError(f"problem field '{name}' (--noise) = {value:g} is above {MAX_NOISE:g}: the simulated "
                             "observation overflows float32; use a noise level of at most 1 (the image range)")
    if spec.size is not None:  # estimated before anything is allocated
        check_solve_memory(spec.size, 1 if spec.gray else 3)
    else:  # native size: the image's header gives its size
        check_native_memory(spec.image, 1 if spec.gray else 3, observed=spec.observed)


def _build_job(spec: ProblemSpec, sspec: SolverSpec) -> _Job:
    """Simulate the problem, build the prior and the algorithm, and check the denoiser level."""
    torch.manual_seed(spec.seed)
    resolved = spec.build_resolved()  # an observation is read, not simulated; an estimated sigma lands in spec
    problem, spec = resolved.problem, resolved.spec
    prior, prior_info = build_prior(sspec, spec, channels=int(problem.y.shape[1]), observation=problem.y)
    if sspec.step is not None:
        lip = getattr(problem.fidelity, "lipschitz_grad", None)
        check_step_range(sspec.step, lip() if callable(lip) else None)
    algorithm = build_algorithm(sspec, problem, prior)
    report = algorithm.check_assumptions()
    if prior_info["lam"] is None and hasattr(prior, "implied_lam"):
        prior_info["lam"] = float(prior.implied_lam(algorithm.step))
    level = prior.sigma_eff(algorithm.step) if callable(getattr(prior, "sigma_eff", None)) else None
    if level is not None and not level <= torch.finfo(torch.float32).max:
        raise ValueError(f"the denoiser level {level:g} (from solver field 'lam' (--lam) or 'denoiser_sigma' "
                         "(--denoiser-sigma)) overflows float32; use a level of at most 1 (the image range)")
    run_warnings = noise_warnings(spec, prior, prior_info, algorithm.step)
    for text in run_warnings:
        warnings.warn(text, RuntimeWarning, stacklevel=3)
    return _Job(problem, prior, prior_info, algorithm, report, run_warnings, spec, resolved.estimate)


def _run(algorithm: Any, sspec: SolverSpec, *, quiet: bool, diagnostics: bool, lipschitz_points: int,
         x0: torch.Tensor | None = None) -> tuple:
    """``(Result, ConvergenceDiagnostics or None)`` of the run (``x0``: a warm start, e.g. from ``lam: auto``)."""
    options = dict(x0=x0, max_iter=sspec.max_iter, tol=sspec.tol if sspec.tol > 0 else None,
                   time_limit=sspec.time_limit, progress=not quiet)
    if diagnostics:
        from pnp.convergence import run_with_diagnostics

        return run_with_diagnostics(algorithm, lipschitz_points=int(lipschitz_points), **options)
    # no autograd bookkeeping in the loop (the diagnostics above need autograd for their probes)
    with torch.inference_mode():
        return algorithm.run(**options), None


def _scores(problem: Any, x: torch.Tensor, failed: bool, finite_x: bool) -> dict[str, Any]:
    """The record's scores: the observation (as an image, else through Aᵀy) and the reconstruction."""
    if problem.truth is None:  # a measured observation: nothing to score against
        return {"observed": problem.y, "psnr_observed": None, "ssim_observed": None, "psnr": None, "ssim": None,
                "psnr_gain": None, "psnr_last_iterate": None, "observed_label": "observation"}
    same_shape = tuple(problem.y.shape) == tuple(problem.truth.shape)
    observed = problem.y if same_shape else problem.x0()
    small = min(problem.truth.shape[-2:]) < 11  # SSIM's 11x11 window
    psnr_obs = problem.psnr(observed)
    psnr_last = problem.psnr(x) if finite_x else math.nan
    psnr_rec = None if failed else psnr_last
    return {"observed": observed, "psnr_observed": psnr_obs, "ssim_observed": None if small else problem.ssim(observed),
            "psnr": psnr_rec, "ssim": None if (small or failed) else problem.ssim(x),
            "psnr_gain": psnr_rec - psnr_obs if finite(psnr_rec, psnr_obs) else None,
            "psnr_last_iterate": psnr_last, "observed_label": "observation" if same_shape else "A^T y"}


def _stem(spec: ProblemSpec, sspec: SolverSpec, prior_name: str) -> str:
    image = Path(spec.image).stem if Path(spec.image).suffix else spec.image
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{image}_{sspec.algorithm}_{Path(prior_name).stem}")


def _write_images(config: SolveConfig, job: _Job, result: Any, diag: Any, record: SolveRecord,
                  observed: torch.Tensor) -> dict[str, Any]:
    """Write the reconstruction, the figure and the diagnostics figure; the record's paths and diagnostics."""
    from pnp.figures import record_figure

    spec, sspec, ospec = config.problem, config.solver, config.output
    out_dir = Path(ospec.dir).expanduser()
    stem = _stem(spec, sspec, record.prior)
    paths: dict[str, Any] = {"figure": None, "reconstruction": None, "reconstruction_png": None,
                             "reconstruction_tiff": None, "diagnostics": None}
    inputs = [spec.image] if Path(spec.image).expanduser().is_file() else []
    check_output_targets([out_dir / f"{stem}.png"] if ospec.figure else [], inputs)
    if ospec.figure or not record.failed:
        out_dir.mkdir(parents=True, exist_ok=True)
    if not record.failed:  # .npy (float32), 8-bit PNG (clipped to [0, 1]), float32 TIFF (not clipped)
        files = write_reconstruction(result.x, out_dir, stem, inputs=inputs)
        paths.update(reconstruction=files["npy"], reconstruction_png=files["png"], reconstruction_tiff=files["tiff"])
    if ospec.figure:
        paths["figure"] = record_figure(record, observed=observed, reconstruction=result.x,
                                        truth=job.problem.truth, history=result.history, path=out_dir / f"{stem}.png")
    if diag is not None:
        diag_path = None
        if ospec.figure:
            from pnp.convergence import plot_diagnostics

            label = f"{sspec.algorithm.upper()} + {record.prior}"
            psnr_hist = [float(v) for v in result.history.get("psnr", [])]
            diag_path = plot_diagnostics({label: diag}, out_dir / f"{stem}_diagnostics.png",
                                         psnr={label: psnr_hist} if psnr_hist else None,
                                         title=f"{spec.image}: convergence diagnostics of {label} ({record.status})")
        paths["diagnostics"] = diagnostics_record(diag, figure=diag_path)
    return paths


def _record(config: SolveConfig, job: _Job, result: Any, report: Any, run_scores: dict, status: str,
            finite_x: bool) -> SolveRecord:
    """The record of a finished run, before any file is written."""
    sspec = config.solver
    failed = status in ("nan", "diverged")
    info = job.prior_info
    return SolveRecord.from_mapping({
        **{k: v for k, v in run_scores.items() if k != "observed"},
        "iterations": result.iterations, "converged": bool(result.converged and not failed), "status": status,
        "failed": failed, "finite": finite_x, "seconds": result.seconds, "seconds_total": 0.0,
        "step": float(job.algorithm.step), "lam": info["lam"], "lam_source": info["lam_source"],
        "denoiser_sigma": info["denoiser_sigma"], "denoiser_strength": info.get("denoiser_strength"),
        "prior": info["name"], "algorithm": sspec.algorithm, "tol": sspec.tol, "max_iter": sspec.max_iter,
        "final_residual": result.final_residual, "verification": result.diagnostics.get("final_verification"),
        "unsafe": bool(result.unsafe),
        "guarantee": {"verdict": None if report is None else report.verdict,
                      "theorem": None if report is None else report.theorem, "line": verdict_line(report),
                      "report": None if report is None else report.to_dict()},
        "stop_reason": result.diagnostics.get("stop_reason"), "accelerate": sspec.accelerate,
        "acceleration": result.diagnostics.get("acceleration"), "restart": result.diagnostics.get("restart"),
        "monotone": monotone_summary(result.diagnostics.get("monotone")),
        "shape": list(job.problem.y.shape if job.problem.truth is None else job.problem.truth.shape),
        "problem": config.problem.to_dict(), "solver": sspec.to_dict(), **_noise_fields(config.problem, job),
        "history": {k: list(v) for k, v in result.history.items() if k in _HISTORY_KEYS},
        "inexact_prox": result.diagnostics.get("inexact_prox"), "warnings": job.warnings,
        "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
    })


def _noise_fields(given: ProblemSpec, job: _Job) -> dict[str, Any]:
    """The record's noise fields: the level the solver assumed and, when estimated, the estimate."""
    estimate = None
    if job.estimate is not None:
        estimate = {**job.estimate.to_dict(), "true_sigma": None if given.observed else given.sigma}
    return {"observed_input": given.observed, "noise_estimated": job.estimate is not None, "noise_estimate": estimate,
            "noise_sigma": job.spec.sigma if job.spec is not None and job.spec.noise_model != "poisson" else None}


def _default_strength(sspec: SolverSpec) -> SolverSpec:
    """``sspec`` with its strength left to the prior's default rule (the start of ``lam: auto``)."""
    return dataclasses.replace(sspec, lam=None, denoiser_sigma=None)


def _choose_strength(config: SolveConfig, job: _Job, *, quiet: bool, stream: TextIO | None) -> tuple[_Job, Any]:
    """``lam: auto``: the strength chosen from the data (:mod:`pnp.parameters`), and the job rebuilt at it.

    The choice is printed (a fallback to another rule is also warned about, so it shows with
    ``--quiet`` too); its warm start seeds the final solve, run at the user's tolerance.
    """
    from pnp.parameters import choose_strength, numeric_spec

    choice = choose_strength(job.problem, config.solver, job.spec if job.spec is not None else config.problem,
                             channels=int(job.problem.y.shape[1]))
    if not quiet:
        print(choice.line(), file=sys.stdout if stream is None else stream, flush=True)
    if choice.fallback:
        warnings.warn(choice.line(), RuntimeWarning, stacklevel=3)
    if choice.rule == "default":
        return job, choice
    job = _build_job(config.problem, numeric_spec(config.solver, choice))
    rule = {"sure": "SURE", "discrepancy": "discrepancy principle"}[choice.rule]
    job.prior_info["lam_source"] = f"auto: {rule} ({len(choice.evaluations)} evaluations; record lam_choice)"
    return job, choice


def solve(
    config: SolveConfig | None = None,
    *,
    quiet: bool = False,
    stream: TextIO | None = None,
    diagnostics: bool = False,
    lipschitz_points: int = 4,
) -> SolveRecord:
    """Run one solve job and return its record.

    Parameters
    ----------
    config : SolveConfig, optional
        The job (default: ``SolveConfig()``, the default deblurring job).
    quiet : bool
        No progress bar and no table.
    stream : TextIO, optional
        Where the table goes (default ``sys.stdout``).
    diagnostics : bool
        Run through :func:`pnp.convergence.run_with_diagnostics` (``accelerate: auto`` then runs the
        plain iteration, whose envelope the diagnostics check): the record gets a ``diagnostics``
        entry (final fixed-point residual, envelope check, the denoiser's local Lipschitz
        estimates) and, with figures on, ``<stem>_diagnostics.png`` next to the main figure.
    lipschitz_points : int
        Iterates at which a denoiser's local Lipschitz constant is estimated (with ``diagnostics``).

    Returns
    -------
    SolveRecord
        Scores, iterations, status, step, weight, prior and algorithm names, the guarantee
        (``verdict``, ``theorem``, ``line``, ``report``), the config, the histories and the paths
        written; a read-only mapping (``record["psnr"]``), JSON through ``to_dict()``. ``failed``
        is True when the iteration broke down (NaN or divergence): ``psnr``/``ssim`` are then None
        and no reconstruction is written; the caller decides how loudly to fail.

    Raises
    ------
    ValueError, TypeError, FileNotFoundError, ImportError
        Bad input, with a one-line message (see :mod:`pnp.cli`).
    """
    config = SolveConfig() if config is None else config
    if not isinstance(config, SolveConfig):
        raise TypeError(f"config must be a SolveConfig, got {type(config).__name__}")
    t_start = time.perf_counter()
    if diagnostics and config.solver.accelerate == "auto":
        # the diagnostics check the envelope of the plain averaged iteration: "auto" runs it plain
        # ("anderson" asked explicitly still accelerates; its envelope is then reported n/a)
        config = dataclasses.replace(config, solver=dataclasses.replace(config.solver, accelerate="none"))
    _check_job(config)
    auto = config.solver.auto_strength  # "auto": built at the default strength, then chosen from the data
    job = _build_job(config.problem, _default_strength(config.solver) if auto else config.solver)
    if job.estimate is not None and not quiet:  # before the run: the user sees the level the solver assumes
        print(job.estimate.line(), file=sys.stdout if stream is None else stream, flush=True)
    choice = None
    if auto:
        job, choice = _choose_strength(config, job, quiet=quiet, stream=stream)
    result, diag = _run(job.algorithm, config.solver, quiet=quiet, diagnostics=diagnostics,
                        lipschitz_points=lipschitz_points, x0=None if choice is None else choice.x)
    # the run's own verdict: withdrawn when a hypothesis failed while iterating
    report = result.report if result.report is not None else job.report
    finite_x = bool(torch.isfinite(result.x).all())
    status = result.status if finite_x else "nan"
    run_scores = _scores(job.problem, result.x, status in ("nan", "diverged"), finite_x)
    record = _record(config, job, result, report, run_scores, status, finite_x)
    if choice is not None:
        record = record.replace(lam_choice=json_safe(choice.to_dict()))
    paths = _write_images(config, job, result, diag, record, run_scores["observed"])
    json_path = Path(config.output.json).expanduser() if config.output.json else None
    record = record.replace(**json_safe({"diagnostics": paths["diagnostics"], "figure": paths["figure"],
                                         "reconstruction": paths["reconstruction"],
                                         "reconstruction_png": paths["reconstruction_png"],
                                         "reconstruction_tiff": paths["reconstruction_tiff"], "json": json_path}),
                            seconds_total=time.perf_counter() - t_start)
    if json_path is not None:
        write_json(json_path, record.to_dict())
    if not quiet:
        print(format_table(record), file=sys.stdout if stream is None else stream, flush=True)
    return record
