"""Batch reconstruction of a folder of images: :func:`solve_folder` (``stablepnp solve --input-dir``).

Every image of the folder is either a ground truth to blur and corrupt synthetically (the
default), or, with ``observed=True``, an observation ``y`` to deblur with the given kernel.
Images of equal shape are stacked into batches of up to ``batch_size`` and solved together
(one run per batch: the iteration count and the stopping rule are shared by the batch; the
scores are per image). For each image a JSON record and a figure are written; a summary table
(``summary.md``, ``summary.csv``, ``summary.json``) closes the run.

Examples
--------
>>> import numpy as np, tempfile, pathlib                                  # doctest: +SKIP
>>> from pnp.batch import solve_folder                                       # doctest: +SKIP
>>> summary = solve_folder("photos/", "out/", prior="tv", noise=0.01)        # doctest: +SKIP
>>> summary["images"][0]["psnr"]                                             # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["solve_folder", "IMAGE_SUFFIXES"]

#: File suffixes read from the input folder.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy")


def _default_value(handle: Any, noise: float) -> float:
    """Geometric centre of the tuning range: a reasonable untuned default for ``noise``."""
    lo, hi = handle.default_range(max(noise, 1e-3))
    return math.sqrt(lo * hi) if handle.entry.param == "lam" else min(max(noise, lo), hi)


def _figure(path: Path, panels: list[tuple[str, torch.Tensor]], residual: list[float]) -> None:
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
    fig.savefig(path, dpi=100)


def solve_folder(
    input_dir: str | Path,
    out_dir: str | Path,
    *,
    prior: str = "tv",
    algorithm: str = "pgd",
    kernel: str = "gaussian:1.6",
    noise: float = 0.01,
    observed: bool = False,
    lam: float | None = None,
    sigma: float | None = None,
    step_factor: float = 1.0,
    relaxation: float = 1.0,
    size: int | None = None,
    gray: bool = True,
    boundary: str = "circular",
    seed: int = 0,
    max_iter: int = 300,
    tol: float = 1e-5,
    batch_size: int = 8,
    figures: bool = True,
    progress: bool = True,
    accelerate: str = "none",
) -> dict[str, Any]:
    """Reconstruct every image of ``input_dir`` into ``out_dir``.

    Parameters
    ----------
    input_dir : str or Path
        Folder of images (``IMAGE_SUFFIXES``), read with :func:`problems.load_image`.
    out_dir : str or Path
        Output folder: ``<stem>.json`` and ``<stem>.png`` per image, ``summary.{md,csv,json}``.
    prior : str
        As in the compare config: ``tv``, ``wavelet``, ``tikhonov``, ``bm3d``, ``averaged``,
        ``dncnn``, ``deepinv:NAME`` or a checkpoint path.
    algorithm : str
        pgd, fista, admm, drs, hqs or pdhg.
    kernel : str
        Blur kernel spec (the synthetic blur, or the known blur of the observations).
    noise : float
        Gaussian noise std: added to synthetic observations; the assumed level for observed ones.
    observed : bool
        Treat the images as observations ``y`` (no ground truth, no PSNR).
    lam, sigma : float, optional
        Prior weight (classical) or denoiser level; default: an untuned value from the noise level.
    step_factor : float
        Step ``step_factor / L``.
    relaxation : float
        Krasnosel'skii–Mann relaxation.
    size : int, optional
        Square size every image is brought to (centre crop + resize); None keeps each image's size.
    gray : bool
        Grey (1 channel) or RGB.
    boundary : str
        Blur boundary condition.
    seed : int
        Noise seed of the synthetic observations (image ``i`` of a batch uses its own stream).
    max_iter, tol : int, float
        Stopping rule.
    batch_size : int
        Maximum number of equal-shape images solved together.
    figures : bool
        Write a figure per image.
    progress : bool
        tqdm progress bar over the images.
    accelerate : {"none", "auto", "anderson"}
        Stepping policy of the algorithm (:mod:`pnp.acceleration`); ignored by FISTA and PDHG.

    Returns
    -------
    dict
        ``images`` (one record per image), ``parameters``, ``out``, ``seconds``.

    Raises
    ------
    ValueError, FileNotFoundError
        Empty or missing folder, unknown prior / algorithm, a setting refused by the algorithm.
    """
    from tqdm.auto import tqdm

    from operators.blur import Blur
    from operators.kernels import parse_kernel_spec
    from operators.noise import Gaussian
    from pnp import ALGORITHMS
    from pnp.acceleration import SUPPORTED_ALGORITHMS
    from pnp.compare import PriorEntry, _jsonable, _scores, build_prior_handle
    from problems import InverseProblem, load_image

    src = Path(input_dir)
    if not src.is_dir():
        raise FileNotFoundError(f"input_dir '{src}' is not a folder")
    files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"input_dir '{src}' holds no image ({', '.join(IMAGE_SUFFIXES)})")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm {algorithm!r} unknown; valid: {', '.join(ALGORITHMS)}")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    entry = PriorEntry(prior=prior, algorithms=(algorithm,), relaxation=relaxation, lam=lam, sigma=sigma)
    handle = build_prior_handle(entry)
    value = entry.fixed if entry.fixed is not None else _default_value(handle, noise)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kern = parse_kernel_spec(kernel)

    images = [(p, load_image(p, size=size, gray=gray)) for p in files]
    groups: dict[tuple[int, ...], list[tuple[Path, torch.Tensor]]] = {}
    for p, img in images:
        groups.setdefault(tuple(img.shape[1:]), []).append((p, img))
    records: list[dict[str, Any]] = []
    t_all = time.perf_counter()
    bar = tqdm(total=len(images), desc="solve", disable=not progress, dynamic_ncols=True)
    batch_index = 0
    for shape, members in groups.items():
        for start in range(0, len(members), batch_size):
            chunk = members[start:start + batch_size]
            stack = torch.cat([img for _, img in chunk], dim=0)
            op = Blur(kern, boundary=boundary, in_shape=tuple(stack.shape))
            noise_model = Gaussian(noise)
            if observed:
                problem = InverseProblem(op, noise_model, stack)
            else:
                problem = InverseProblem.simulate(stack, op, noise_model, seed=seed + batch_index)
            prior_obj = handle.make(value)
            L = problem.fidelity.lipschitz_grad()
            step = None if step_factor == 1.0 or not L else step_factor / L
            cls = ALGORITHMS[algorithm]
            # safeguarded Anderson acceleration (pnp.acceleration) where the algorithm has it; the batch
            # is accelerated as one vector
            extra = {"accelerate": accelerate} if cls.name in SUPPORTED_ALGORITHMS else {}
            alg = cls(problem, prior_obj, step=step, relaxation=relaxation, **extra)
            res = alg.run(max_iter=max_iter, tol=tol, progress=False)
            report = res.report
            for i, (path, _) in enumerate(chunk):
                xi, yi = res.x[i:i + 1], problem.y[i:i + 1]
                rec: dict[str, Any] = {
                    "file": str(path), "shape": list(shape), "batch": batch_index, "batch_size": len(chunk),
                    "observed_input": observed, "prior": entry.label, "algorithm": algorithm, entry.param: value,
                    "step": res.step, "relaxation": relaxation, "iterations": res.iterations,
                    "seconds_batch": res.seconds, "converged": res.converged, "status": res.status,
                    "final_residual": res.final_residual, "verdict": None if report is None else report.verdict,
                    "guarantee": bool(report is not None and report.verdict == "guaranteed"),
                    "psnr": None, "ssim": None, "psnr_observed": None,
                }
                if not observed:
                    ti = problem.truth[i:i + 1]
                    rec["psnr"], rec["ssim"] = _scores(xi, ti)
                    rec["psnr_observed"] = _scores(yi, ti)[0]
                stem = path.stem
                np.save(out / f"{stem}_reconstruction.npy", xi[0].detach().cpu().numpy().astype(np.float32))
                (out / f"{stem}.json").write_text(json.dumps(_jsonable({**rec, "history": res.history,
                                                                        "report": report}), indent=1))
                if figures:
                    panels = [("observed" + ("" if rec["psnr_observed"] is None else f" {rec['psnr_observed']:.2f} dB"),
                               yi[0]),
                              (f"{entry.label}-{algorithm.upper()}" + ("" if rec["psnr"] is None
                                                                      else f" {rec['psnr']:.2f} dB"), xi[0])]
                    if not observed:
                        panels.append(("truth", problem.truth[i]))
                    _figure(out / f"{stem}.png", panels, res.history.get("residual", []))
                records.append(rec)
                bar.update(1)
            batch_index += 1
    bar.close()
    seconds = time.perf_counter() - t_all
    fields = ["file", "shape", "batch", "psnr_observed", "psnr", "ssim", "iterations", "seconds_batch", "converged",
              "status", "guarantee", "verdict"]
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in records:
            w.writerow({**r, "shape": "x".join(map(str, r["shape"]))})
    fmt = lambda v, s=".2f": "–" if v is None else format(v, s)  # noqa: E731
    lines = [f"# solve_folder: {src}", "",
             f"prior {entry.label} ({entry.param} = {value:.4g}), {algorithm.upper()}, kernel {kernel}, noise {noise:g}"
             f"{', observed inputs' if observed else ', synthetic observations'}; {len(records)} images in "
             f"{batch_index} batches, {seconds:.1f} s", "",
             "| file | shape | PSNR observed | PSNR | SSIM | iterations | converged | guarantee |",
             "|---|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {Path(r['file']).name} | {'x'.join(map(str, r['shape']))} | {fmt(r['psnr_observed'])} | "
                     f"{fmt(r['psnr'])} | {fmt(r['ssim'], '.4f')} | {r['iterations']} | "
                     f"{'yes' if r['converged'] else 'no'} | {'yes' if r['guarantee'] else 'no'} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    summary = {"images": records, "out": str(out), "seconds": seconds,
               "parameters": {"prior": entry.prior, "param": entry.param, "value": value, "algorithm": algorithm,
                              "kernel": kernel, "noise": noise, "observed": observed, "max_iter": max_iter,
                              "tol": tol, "batch_size": batch_size}}
    (out / "summary.json").write_text(json.dumps(_jsonable(summary), indent=1))
    return summary
