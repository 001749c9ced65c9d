"""Batch reconstruction of a folder of images: :func:`solve_folder` (``stablepnp solve --input-dir``).

Every image of the folder is either a ground truth to blur and corrupt synthetically (the
default), or, with ``observed=True``, an observation ``y`` to deblur with the given kernel.
Images of equal shape are stacked into batches of up to ``batch_size`` and solved together
(one run per batch: the iteration count and the stopping rule are shared by the batch; the
scores are per image). For each image a JSON record and a figure are written; a summary table
(``summary.md``, ``summary.csv``, ``summary.json``) closes the run.

Resume: each record holds ``config_hash``, a hash of everything its numbers depend on (settings,
model weights, parameter, the batch's images and their contents). A rerun into the same folder
reuses every record that is complete (its JSON, written last and atomically, carries the same
hash) and solves the rest, so an interrupted run finishes without recomputing or duplicating.

Under ``torchrun`` the batches are shared round-robin among the ranks (``batch_size`` 1: the
sorted images, round-robin); each rank writes its own records and rank 0 writes the summary,
the same files a single process writes (:mod:`pnp.distributed`, docs/distributed.md).

Examples
--------
>>> import numpy as np, tempfile, pathlib                                  # doctest: +SKIP
>>> from pnp.batch import solve_folder                                       # doctest: +SKIP
>>> summary = solve_folder("photos/", "out/", prior="tv", noise=0.01)        # doctest: +SKIP
>>> summary["images"][0]["psnr"]                                             # doctest: +SKIP
"""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, TextIO

import numpy as np
import torch

from pnp.build import LoadedPrior, load_prior, shipped_model
from pnp.outputs import check_output_targets, output_stems, write_reconstruction
from pnp.folder_records import digest_of, file_digest, record_key, result_settings, stored_records
from pnp.record import json_safe, scores, write_json
from pnp.registry import algorithm_entry
from pnp.report import format_batch_table, verdict_line
from pnp.spec import SolveConfig, SolverSpec, check_native_memory, check_output_paths, check_solve_memory
from pnp.spec import check_solver_ranges
from pnp.spec import check_step_range

__all__ = ["FolderSpec", "solve_folder", "solve_batch", "IMAGE_SUFFIXES", "load_input", "output_stems"]

#: File suffixes read from the input folder.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy")



def _figure(path: Any, panels: list[tuple[str, torch.Tensor]], residual: list[float]) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.0 * (len(panels) + 1), 3.1))
    axes = fig.subplots(1, len(panels) + 1)
    for ax, (title, img) in zip(axes, panels):
        arr = img.detach().float().clamp(0, 1).cpu().numpy()
        arr = arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
        ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
    ax = axes[-1]
    ax.semilogy(range(1, len(residual) + 1), [max(r, 1e-16) for r in residual])
    ax.set_xlabel("iteration", fontsize=8)
    ax.set_title("relative residual (batch)", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")


@dataclass(frozen=True)
class FolderSpec:
    """The settings of a folder run (:func:`solve_folder`); invalid values are refused in one line.

    Parameters
    ----------
    prior, algorithm : str
        Names resolved in :mod:`pnp.registry` (a registered prior, ``deepinv:NAME``, a model name or a
        checkpoint path; a registered algorithm).
    kernel, noise, boundary, seed : str, float, str, int
        The blur and the Gaussian noise std (added to synthetic observations, assumed for observed
        ones); batch ``b`` uses the noise stream ``seed + b``.
    observed : bool
        Treat the images as observations ``y`` (no ground truth, no PSNR), read by
        :func:`problems.images.load_observation` (float values kept, never resized: ``size`` must be None).
    noise_estimate : bool
        Estimate each image's noise level from its observation
        (:func:`problems.noise_estimate.estimate_noise`) and set its prior parameter from it; every image
        is then solved on its own (``batch_size`` is not used). ``noise`` still makes synthetic noise.
    lam, sigma : float, optional
        Prior weight or denoiser level; default: an untuned value from the noise level.
    step_factor, relaxation : float
        Step ``step_factor / L`` and Krasnosel'skii-Mann relaxation.
    size, gray : int or None, bool
        Square size every image is brought to (None keeps each size); grey or RGB.
    max_iter, tol, batch_size : int, float, int
        Stopping rule; most equal-shape images solved together.
    figures, progress : bool
        A figure per image; a tqdm progress bar.
    accelerate : {"none", "auto", "anderson"}
        Stepping policy (:mod:`pnp.acceleration`); ignored by algorithms without an accelerated form.

    Examples
    --------
    >>> FolderSpec(prior="wavelet", noise=0.02).algorithm
    'pgd'
    """

    prior: str = "tv"
    algorithm: str = "pgd"
    kernel: str = "gaussian:1.6"
    noise: float = 0.01
    observed: bool = False
    lam: float | None = None
    sigma: float | None = None
    step_factor: float = 1.0
    relaxation: float = 1.0
    size: int | None = None
    gray: bool = True
    boundary: str = "circular"
    seed: int = 0
    max_iter: int = 300
    tol: float | None = 1e-5
    batch_size: int = 1  # stacking is slower per image on a CPU (scripts/bench_batch.py)
    figures: bool = True
    progress: bool = True
    accelerate: str = "none"
    noise_estimate: bool = False

    def __post_init__(self) -> None:
        algorithm_entry(self.algorithm)  # unknown names list the registered ones
        if self.observed and self.size is not None:
            raise ValueError(f"size {self.size} with observed images: an observation is deblurred at its native size "
                             "(resampling would change its blur and noise); drop --size or crop the files")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if not self.noise >= 0:
            raise ValueError(f"noise must be >= 0, got {self.noise!r}")
        if not self.relaxation > 0:
            raise ValueError(f"relaxation must be > 0, got {self.relaxation!r}")

    @classmethod
    def from_settings(cls, base: FolderSpec | None, settings: Mapping[str, Any]) -> FolderSpec:
        """``base`` (default: the defaults) with ``settings`` replaced; an unknown name lists the valid ones."""
        valid = tuple(f.name for f in dataclasses.fields(cls))
        for key in settings:
            if key not in valid:
                raise ValueError(f"solve_folder: unknown setting {key!r}; valid settings: {', '.join(valid)}")
        return dataclasses.replace(base or cls(), **settings)


def solve_folder(input_dir: str | Path, out_dir: str | Path, spec: FolderSpec | None = None,
                 **settings: Any) -> dict[str, Any]:
    """Reconstruct every image of ``input_dir`` into ``out_dir``.

    The prior's model is loaded (and certified) once; images of equal shape are solved together.
    Complete records of an earlier run with the same settings are reused; under ``torchrun`` each
    rank solves its round-robin share of the batches and rank 0 writes the summary.

    Parameters
    ----------
    input_dir, out_dir : str or Path
        Folder of images (``IMAGE_SUFFIXES``, read with :func:`load_input`); output folder (``<stem>.json``,
        ``<stem>.png``, ``<stem>_reconstruction.{npy,png,tif}`` per image (:mod:`pnp.outputs`),
        ``summary.{md,csv,json}``).
    spec : FolderSpec, optional
        The settings; ``settings`` (keyword arguments named like its fields) replace some of them.

    Returns
    -------
    dict
        ``images`` (one record per image, every rank's, in folder order), ``parameters``, ``out``,
        ``seconds``, ``reused`` (records taken from an earlier run), ``ranks`` (processes).

    Raises
    ------
    ValueError, FileNotFoundError
        Empty or missing folder, unknown prior / algorithm / setting, a setting refused by the algorithm;
        ranks that disagree on the settings, the model or the images, or do not share the output folder.
    """
    from pnp.distributed import check_shared_folder, current

    ranks = current()
    spec = FolderSpec.from_settings(spec, settings)
    src = Path(input_dir)
    if not src.is_dir():
        raise FileNotFoundError(f"input_dir '{src}' is not a folder")
    files = _image_files(src, "input_dir")
    check_output_folder(src, Path(out_dir))
    loaded = load_prior(spec.prior)
    job = _FolderJob(spec, loaded, _prior_value(spec, loaded), Path(out_dir), output_stems(files))
    digests = {p: file_digest(p) for p in files}
    # every rank must solve the same problem set with the same model (a hash of each, compared at start)
    ranks.agree({**result_settings(spec), "model": loaded.fingerprint, "prior value": job.value,
                 "input images": digest_of([(p.name, digests[p]) for p in files]),
                 "output folder": str(job.out.resolve())})
    job.out.mkdir(parents=True, exist_ok=True)
    check_shared_folder(ranks, job.out)
    chunks = _load_chunks(files, spec)
    t_all = time.perf_counter()
    done, reused = _solve_share(job, chunks, digests, ranks)
    t_all = time.perf_counter() - t_all
    records = [rec for b in range(len(chunks)) for rec in done[b]]
    summary = {"images": records, "out": str(job.out), "seconds": t_all,
               "parameters": {"prior": spec.prior, "param": loaded.param,
                              "value": None if spec.noise_estimate else job.value,
                              "algorithm": spec.algorithm, "kernel": spec.kernel, "noise": spec.noise,
                              "noise_estimate": spec.noise_estimate,
                              "observed": spec.observed, "max_iter": spec.max_iter, "tol": spec.tol,
                              "batch_size": spec.batch_size},
               "reused": reused, "ranks": ranks.world}
    if ranks.is_main:
        _write_summaries(job, src, summary, len(chunks))
    return summary


def _solve_share(job: _FolderJob, chunks: list, digests: Mapping[Path, str], ranks: Any
                 ) -> tuple[dict[int, list[dict[str, Any]]], int]:
    """``({batch: records}, reused)`` of every batch: this rank's share solved (or reused from an earlier
    run's complete records), then, under torchrun, every rank's records gathered."""
    from tqdm.auto import tqdm

    mine = ranks.shard(len(chunks))  # batches, round-robin (batch_size 1: the sorted images, round-robin)
    done: dict[int, list[dict[str, Any]]] = {}
    reused = 0
    desc = "solve" if not ranks.distributed else f"solve (rank 0 of {ranks.world}, its share)"
    bar = tqdm(total=sum(len(chunks[b][1]) for b in mine), desc=desc,
               disable=not (job.spec.progress and ranks.is_main), dynamic_ncols=True)
    for batch_index in mine:
        shape, chunk = chunks[batch_index]
        key = record_key(job, chunk, batch_index, digests)
        stored = stored_records(job, chunk, key)
        if stored is not None:  # finished by an earlier run (a killed one included): not recomputed
            done[batch_index], reused = stored, reused + len(stored)
        else:
            done[batch_index] = _solve_chunk(job, chunk, shape, batch_index, key)
        bar.update(len(chunk))
    bar.close()
    if ranks.distributed:  # every rank's records, merged in batch order by the caller
        parts = ranks.gather((done, reused))
        done = {b: recs for part, _ in parts for b, recs in part.items()}
        reused = sum(n for _, n in parts)
    missing = [b for b in range(len(chunks)) if b not in done]
    if missing:  # cannot happen with a deterministic shard; never write a summary with holes
        raise RuntimeError(f"solve_folder: batches {missing} have no records after merging the ranks")
    return done, reused


def load_input(path: Path, *, observed: bool, size: int | None, gray: bool) -> torch.Tensor:
    """A folder image as the solver reads it: an observation (:func:`problems.images.load_observation`,
    native size, float values kept) or a ground truth (:func:`problems.load_image`)."""
    from problems.images import load_image, load_observation

    return load_observation(path, gray=gray) if observed else load_image(path, size=size, gray=gray)


def _load_chunks(files: list[Path], spec: FolderSpec) -> list[tuple[tuple[int, ...], list]]:
    """The images, loaded (:func:`load_input`) and grouped in batches (:func:`_chunks`).

    At native size every file's header is checked against the memory first, before anything is
    loaded. An estimated noise level sets each image's own prior parameter: one image per batch.
    """
    if spec.size is None:
        for p in files:
            check_native_memory(p, 1 if spec.gray else 3, observed=spec.observed)
    images = [(p, load_input(p, observed=spec.observed, size=spec.size, gray=spec.gray)) for p in files]
    return _chunks(images, 1 if spec.noise_estimate else spec.batch_size)


def _image_files(src: Path, what: str) -> list[Path]:
    files = sorted(q for q in src.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{what} '{src}' holds no image ({', '.join(IMAGE_SUFFIXES)}); pass a folder of images")
    from problems.images import check_image_file

    for q in files:  # every header against the pixel cap before any image is decoded
        check_image_file(q)
    return files


def _prior_value(spec: FolderSpec, loaded: LoadedPrior, noise: float | None = None) -> float:
    """The prior's parameter: the one given, else an untuned default from the noise level (default ``spec.noise``)."""
    prior, lam, sigma = spec.prior, spec.lam, spec.sigma
    noise = spec.noise if noise is None else noise
    if lam is not None and sigma is not None:
        raise ValueError(f"prior {prior!r}: give at most one of lam and sigma")
    if loaded.param == "lam" and sigma is not None:
        raise ValueError(f"prior {prior!r} is a {loaded.registered.kind} prior: fix its weight with lam, not sigma")
    if loaded.param == "sigma" and lam is not None:
        raise ValueError(f"prior {prior!r} is a denoiser: fix its level with sigma, not lam")
    for name, v in (("lam", lam), ("sigma", sigma)):
        if v is not None and not v > 0:
            raise ValueError(f"{name} must be > 0, got {v!r}")
    given = lam if loaded.param == "lam" else sigma
    return float(given) if given is not None else loaded.default_value(noise)


def _chunks(images: list[tuple[Path, torch.Tensor]], batch_size: int) -> list[tuple[tuple[int, ...], list]]:
    """Images grouped by shape (in order of first appearance), in chunks of at most ``batch_size``."""
    groups: dict[tuple[int, ...], list[tuple[Path, torch.Tensor]]] = {}
    for p, img in images:
        groups.setdefault(tuple(img.shape[1:]), []).append((p, img))
    return [(shape, members[i:i + batch_size]) for shape, members in groups.items()
            for i in range(0, len(members), batch_size)]


@dataclass(frozen=True)
class _FolderJob:
    """A folder run's settings with its prior loaded once and its parameter value fixed."""

    spec: FolderSpec
    loaded: LoadedPrior
    value: float
    out: Path
    stems: dict = dataclasses.field(default_factory=dict)  # input path -> distinct output stem

    @property
    def label(self) -> str:
        return self.loaded.registered.display


def check_output_folder(src: Path, out: Path) -> None:
    """Refuse an output folder that is the input folder: figures and records would land on the inputs."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: '{out}' exists and is not a folder; give a folder path")
    if out.resolve() == src.resolve():
        raise ValueError(f"--out: the output folder '{out}' is the input folder; outputs (PNG figures, records) "
                         "could replace input images there; choose another --out")


def _solve_chunk(job: _FolderJob, chunk: list, shape: tuple[int, ...], batch_index: int,
                 key: str | None = None) -> list[dict[str, Any]]:
    """Solve one batch of equal-shape images; write and return one record per image (``key``: its config hash)."""
    from operators.blur import Blur
    from operators.kernels import parse_kernel_spec
    from operators.noise import Gaussian
    from problems import InverseProblem

    stack = torch.cat([img for _, img in chunk], dim=0)
    op = Blur(parse_kernel_spec(job.spec.kernel), boundary=job.spec.boundary, in_shape=tuple(stack.shape))
    if job.spec.observed:
        problem = InverseProblem(op, Gaussian(job.spec.noise), stack)
    else:
        problem = InverseProblem.simulate(stack, op, Gaussian(job.spec.noise), seed=job.spec.seed + batch_index)
    noise, value, estimate = job.spec.noise, job.value, None
    if job.spec.noise_estimate:  # one image per chunk: its own noise level and prior parameter
        from problems.noise_estimate import estimate_noise

        estimate = estimate_noise(problem.y)
        noise = estimate.sigma
        value = _prior_value(job.spec, job.loaded, noise)
        problem = InverseProblem(op, Gaussian(noise), problem.y, truth=problem.truth)
    registered = algorithm_entry(job.spec.algorithm)
    step = registered.step_for(job.spec.step_factor, problem.fidelity.lipschitz_grad())
    # safeguarded Anderson acceleration (pnp.acceleration) where the algorithm has it; the batch is one vector
    alg = registered.build(problem, job.loaded.make(value, noise=noise), step=step, relaxation=job.spec.relaxation,
                           accelerate=job.spec.accelerate if registered.accelerable else "none")
    with torch.inference_mode():  # as in solve: no autograd bookkeeping in the loop
        res = alg.run(max_iter=job.spec.max_iter, tol=job.spec.tol, progress=False)
    noise_fields = {"noise_sigma": noise, "noise_estimated": estimate is not None,
                    "noise_estimate": None if estimate is None else
                    {**estimate.to_dict(), "true_sigma": None if job.spec.observed else job.spec.noise}}
    return [_image_record(job, res, problem, path, i, shape, batch_index, len(chunk), key, value=value,
                          noise=noise_fields) for i, (path, _) in enumerate(chunk)]


def _image_record(job: _FolderJob, res: Any, problem: Any, path: Path, i: int, shape: tuple[int, ...],
                  batch_index: int, batch_size: int, key: str | None = None, *, value: float | None = None,
                  noise: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write the reconstruction, the figure and, last, the JSON record (a complete JSON means a complete record).

    ``value``: the prior parameter of this image's run (default ``job.value``); ``noise``: the noise fields.
    """
    report = res.report
    xi, yi = res.x[i:i + 1], problem.y[i:i + 1]
    rec: dict[str, Any] = {
        "file": str(path), "shape": list(shape), "batch": batch_index, "batch_size": batch_size,
        "observed_input": job.spec.observed, "prior": job.label, "algorithm": job.spec.algorithm,
        job.loaded.param: job.value if value is None else value,
        **(noise or {"noise_sigma": job.spec.noise, "noise_estimated": False, "noise_estimate": None}),
        "step": res.step, "relaxation": job.spec.relaxation, "iterations": res.iterations,
        "seconds_batch": res.seconds, "converged": res.converged, "status": res.status,
        "final_residual": res.final_residual, "verdict": None if report is None else report.verdict,
        "guarantee": bool(report is not None and report.verdict == "guaranteed"),
        "psnr": None, "ssim": None, "psnr_observed": None,
    }
    if not job.spec.observed:
        ti = problem.truth[i:i + 1]
        rec["psnr"], rec["ssim"] = scores(xi, ti)
        rec["psnr_observed"] = scores(yi, ti)[0]
    stem = job.stems.get(path, path.stem)
    check_output_targets([job.out / f"{stem}.png", job.out / f"{stem}.json"], [path])
    # each file through a temporary one, so a process killed mid-write leaves no half file under the final name;
    # the reconstruction as .npy (float32), 8-bit PNG (clipped to [0, 1]) and float32 TIFF (not clipped)
    files = write_reconstruction(xi, job.out, stem, inputs=[path])
    rec.update(reconstruction=str(files["npy"]), reconstruction_png=str(files["png"]),
               reconstruction_tiff=str(files["tiff"]))
    if job.spec.figures:
        obs = "" if rec["psnr_observed"] is None else f" {rec['psnr_observed']:.2f} dB"
        rec_db = "" if rec["psnr"] is None else f" {rec['psnr']:.2f} dB"
        panels = [("observed" + obs, yi[0]), (f"{job.label}-{job.spec.algorithm.upper()}" + rec_db, xi[0])]
        if not job.spec.observed:
            panels.append(("truth", problem.truth[i]))
        _replace_atomically(job.out / f"{stem}.png",
                            lambda f: _figure(f, panels, res.history.get("residual", [])))
    write_json(job.out / f"{stem}.json", {**rec, "config_hash": key, "history": res.history, "report": report},
               indent=1)
    rec["guarantee_line"] = verdict_line(report)
    return rec


def _replace_atomically(path: Path, write: Any) -> None:
    """``write(file object)`` into a temporary file next to ``path``, then rename it to ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
    tmp.replace(path)


def _write_summaries(job: _FolderJob, src: Path, summary: Mapping[str, Any], n_batches: int) -> None:
    """``summary.csv``, ``summary.md`` and ``summary.json`` in the output folder."""
    out, records = job.out, summary["images"]
    fields = ["file", "shape", "batch", "psnr_observed", "psnr", "ssim", "noise_sigma", "noise_estimated", "iterations",
              "seconds_batch", "converged", "status", "guarantee", "verdict"]
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in records:
            w.writerow({**r, "shape": "x".join(map(str, r["shape"]))})
    fmt = lambda v, s=".2f": "–" if v is None else format(v, s)  # noqa: E731
    lines = [f"# solve_folder: {src}", "",
             f"prior {job.label} ({job.loaded.param} = "
             f"{'from each estimated noise level' if job.spec.noise_estimate else format(job.value, '.4g')}), "
             f"{job.spec.algorithm.upper()}, kernel {job.spec.kernel}, "
             + ("noise level estimated per image (wavelet MAD; noise_sigma in the records)" if job.spec.noise_estimate
                else f"noise {job.spec.noise:g}")
             + f"{', observed inputs' if job.spec.observed else ', synthetic observations'}; "
             f"{len(records)} images in {n_batches} batches, {summary['seconds']:.1f} s"
             + (f", {summary['reused']} records reused from an earlier run" if summary.get("reused") else "")
             + (f", {summary['ranks']} ranks" if summary.get("ranks", 1) > 1 else ""), "",
             "| file | shape | PSNR observed | PSNR | SSIM | iterations | converged | guarantee |",
             "|---|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {Path(r['file']).name} | {'x'.join(map(str, r['shape']))} | {fmt(r['psnr_observed'])} | "
                     f"{fmt(r['psnr'])} | {fmt(r['ssim'], '.4f')} | {r['iterations']} | "
                     f"{'yes' if r['converged'] else 'no'} | {'yes' if r['guarantee'] else 'no'} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    images = [{k: v for k, v in r.items() if k != "guarantee_line"} for r in records]
    (out / "summary.json").write_text(json.dumps(json_safe({**summary, "images": images}), indent=1))


# ============================================================================ the --input-dir job
def _batch_prior(spec: SolverSpec) -> str:
    """The ``prior`` argument of :func:`solve_folder` for a solver spec (missing models refused here)."""
    if spec.is_shipped:
        model, path = shipped_model(spec.prior)
        return spec.prior if spec.prior == spec.entry.name else str(path)
    if spec.is_checkpoint:
        path = Path(spec.prior).expanduser()
        if path.is_dir():
            raise ValueError(f"checkpoint path '{path}' is a folder; pass the .pt file inside it to --prior")
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint file '{path}' does not exist; pass an existing .pt file to --prior")
        return str(path)
    return spec.prior


def _batch_step_factor(step: float | None, first: Path, *, kernel: str, boundary: str, size: int | None,
                       gray: bool, observed: bool = False) -> float:
    """``step * ‖A‖²`` with ‖A‖ on the first image's shape (:func:`solve_folder` takes the step in units of 1/‖A‖²)."""
    if step is None:
        return 1.0
    from operators.blur import Blur
    from operators.kernels import parse_kernel_spec

    shape = tuple(load_input(first, observed=observed, size=size, gray=gray).shape)
    norm = Blur(parse_kernel_spec(kernel), boundary=boundary, in_shape=shape).norm(shape)
    return float(step) * norm**2 if norm > 0 else 1.0


def _check_batch_config(config: SolveConfig) -> None:
    """Refuse the settings a folder run does not support, naming the fix."""
    spec, sspec = config.problem, config.solver
    if spec.operator != "blur":
        raise ValueError(f"--input-dir solves deblurring problems but the config sets operator {spec.operator!r}; "
                         "set 'operator: blur' or solve one image at a time with --image")
    if spec.noise_model != "gaussian":
        raise ValueError(f"--input-dir assumes Gaussian noise but the config sets noise_model {spec.noise_model!r}; "
                         "use noise_model 'gaussian' or solve one image at a time with --image")
    if sspec.unsafe:
        raise ValueError("--unsafe is not available with --input-dir; drop it (or run one image with --image --unsafe)")
    if sspec.time_limit is not None:
        raise ValueError("--time-limit is not available with --input-dir; drop it and bound the run with --max-iter")
    registered = algorithm_entry(sspec.algorithm)
    if sspec.accelerate == "anderson" and not registered.accelerable:
        from pnp.acceleration import refusal

        raise ValueError(refusal(registered.cls.name, None))
    if sspec.is_denoiser and sspec.lam is not None:
        raise ValueError(f"--lam is not available for the denoiser prior {sspec.prior!r} with --input-dir; "
                         "set the denoiser level with --denoiser-sigma instead")


def solve_batch(
    config: SolveConfig,
    input_dir: str | Path,
    *,
    observed: bool = False,
    size: int | None = None,
    batch_size: int = 1,
    quiet: bool = False,
    stream: TextIO | None = None,
) -> dict[str, Any]:
    """Reconstruct every image of a folder with the problem/solver settings of ``config``.

    The ``stablepnp solve --input-dir`` job over :func:`solve_folder`: kernel, boundary, Gaussian
    noise level, seed and colour mode come from ``config.problem`` (its ``image`` is ignored), the
    prior, weight, algorithm, step, relaxation and stopping rule from ``config.solver``, the output
    folder and figure switch from ``config.output`` (``output.json`` receives a copy of the summary).
    The model is loaded and certified once for the whole folder. Under ``torchrun`` the batches are
    shared round-robin among the ranks (:mod:`pnp.distributed`) and rank 0 writes the summary; a
    record finished by an earlier run with the same settings is reused, not recomputed.

    Returns
    -------
    dict
        The summary of :func:`solve_folder` with ``guarantee_lines`` (the distinct verdict lines)
        and ``failed`` (names of the images whose run diverged or produced NaN).

    Raises
    ------
    ValueError, FileNotFoundError, ImportError
        Settings the batch mode does not support (another operator or noise model, ``unsafe``,
        ``time_limit``, ``lam`` for a denoiser), a missing folder or model.
    """
    from pnp.distributed import current

    ranks = current()  # under torchrun: join the others first, so that a rank refusing its input stops them at once
    spec, sspec, ospec = config.problem, config.solver, config.output
    _check_batch_config(config)
    src = Path(input_dir).expanduser()
    if not src.is_dir():
        raise FileNotFoundError(f"--input-dir '{src}' is not a folder; pass a folder of images")
    check_output_paths(ospec.dir, ospec.json)  # before any work
    check_solver_ranges(sspec)
    if size is not None:
        check_solve_memory(size, 1 if spec.gray else 3)
    files = _image_files(src, "--input-dir")
    prior = _batch_prior(sspec)
    step_factor = _batch_step_factor(sspec.step, files[0], kernel=spec.kernel, boundary=spec.boundary, size=size,
                                     gray=spec.gray, observed=observed)
    if sspec.step is not None:
        check_step_range(sspec.step, step_factor / sspec.step)  # step_factor = step * ‖A‖²
    try:
        summary = solve_folder(
            src, Path(ospec.dir).expanduser(), prior=prior, algorithm=sspec.algorithm, kernel=spec.kernel,
            noise=spec.sigma, observed=observed, lam=sspec.lam, sigma=sspec.denoiser_sigma,
            step_factor=step_factor, relaxation=sspec.relaxation, size=size, gray=spec.gray,
            boundary=spec.boundary, seed=spec.seed, max_iter=sspec.max_iter,
            tol=sspec.tol if sspec.tol > 0 else None, batch_size=batch_size, figures=ospec.figure,
            progress=not quiet, accelerate=sspec.accelerate, noise_estimate=spec.noise_estimate,
        )
    except ValueError as exc:
        raise ValueError(str(exc).replace("pass unsafe=True to run anyway",
                                          "lower --step (--unsafe is not available with --input-dir)")) from None
    summary["guarantee_lines"] = list(dict.fromkeys(r["guarantee_line"] for r in summary["images"]))
    summary["failed"] = [Path(r["file"]).name for r in summary["images"] if r.get("status") in ("nan", "diverged")]
    summary = json_safe(summary)
    if not ranks.is_main:  # under torchrun rank 0 writes the one summary and prints the one table
        return summary
    if ospec.json:
        summary["json"] = str(write_json(Path(ospec.json).expanduser(), summary))
    if not quiet:
        print(format_batch_table(summary), file=sys.stdout if stream is None else stream, flush=True)
    return summary
