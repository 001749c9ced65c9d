"""Reporting of a comparison suite: summary, paired differences, ``results.md``/``results.csv`` and the two figures.

Every function reads the suite's cell records (plain dicts, as stored in ``OUT/cells``), so a
rerun that reuses stored cells reassembles the same tables.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from pnp.compare_config import CompareConfig, suite_problem
from pnp.record import scores

if TYPE_CHECKING:  # pragma: no cover
    from pnp.compare import Method

__all__ = ["summarise", "paired_gaps", "write_csv", "markdown", "recon_grid", "convergence_figure", "fmt"]


def _mean(xs: Sequence[float]) -> float | None:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return float(np.mean(xs)) if xs else None


def summarise(cells: list[dict], methods: list[Method]) -> dict[str, dict[str, Any]]:
    out = {}
    for m in methods:
        cs = [c for c in cells if c["method"] == m.name]
        if not cs:
            continue
        verdicts = sorted({c["verdict"] for c in cs if c.get("verdict")})
        out[m.name] = {
            "cells": len(cs), "psnr": _mean([c["psnr"] for c in cs]), "ssim": _mean([c["ssim"] for c in cs]),
            "iterations": _mean([c["iterations"] for c in cs]), "seconds": _mean([c["seconds"] for c in cs]),
            "converged": sum(bool(c["converged"]) for c in cs) / len(cs),
            "guarantee": all(c["guarantee"] for c in cs), "verdicts": verdicts,
            "alpha": _mean([c["alpha"] for c in cs if c.get("alpha") is not None]),
        }
    return out


def _paired_gap(cells: list[dict], a: str, b: str) -> tuple[float | None, int]:
    by = {}
    for c in cells:
        by.setdefault((c["image"], c["kernel"], c["noise"]), {})[c["method"]] = c["psnr"]
    diffs = [v[a] - v[b] for v in by.values() if a in v and b in v]
    return (float(np.mean(diffs)) if diffs else None), len(diffs)


def paired_gaps(cells: list[dict], methods: list[Method]) -> list[dict[str, Any]]:
    """Mean paired PSNR differences of each learned method against the reference methods present (TV-FISTA
    and the unconstrained DnCNN), over the cells both share: ``{"method", "reference", "gap_db", "pairs"}``."""
    def find(kind: str, alg: str) -> str | None:
        return next((m.name for m in methods if m.handle.entry.kind == kind and m.algorithm == alg), None)

    references = [r for r in (find("tv", "fista"), find("dncnn", "pgd")) if r]
    out = []
    for m in methods:
        entry = m.handle.entry
        if entry.registered.kind == "classical" or entry.kind in ("bm3d", "dncnn") or m.name in references:
            continue
        for ref in references:
            gap, n = _paired_gap(cells, m.name, ref)
            if n:
                out.append({"method": m.name, "reference": ref, "gap_db": gap, "pairs": n})
    return out


_CSV_FIELDS = ("image", "kernel", "noise", "method", "prior", "algorithm", "param", "value", "step_factor",
               "relaxation", "psnr", "ssim", "psnr_observed", "iterations", "seconds", "converged", "status",
               "final_residual", "guarantee", "verdict", "alpha", "key")


def write_csv(path: Path, cells: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=_CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for c in cells:
            w.writerow({k: ("yes" if c[k] else "no") if k == "guarantee" else c.get(k) for k in _CSV_FIELDS})


def fmt(x: Any, spec: str = ".2f") -> str:
    return "–" if x is None else format(x, spec)


def markdown(config: CompareConfig, cells: list[dict], methods: list[Method], summary: dict, tuning: dict,
              skipped: list[dict], targets: list[dict], counts: dict) -> str:
    buf = io.StringIO()
    w = lambda s="": buf.write(s + "\n")  # noqa: E731
    w(f"# {config.name}")
    w()
    w(f"{len(config.images)} images ({', '.join(config.images)}) at "
      f"{config.size if config.size else 'native size'}{' grey' if config.gray else ''}, kernels "
      f"{', '.join(config.kernels)}, Gaussian noise {', '.join(f'{n:g}' for n in config.noise)}, "
      f"{config.boundary} boundary, seed {config.seed}. Parameters tuned on '{config.tuning.image}' (not in the "
      f"test split), then frozen. PSNR/SSIM on the reconstruction clipped to [0, 1]. Guarantee = the solver's "
      f"assumption verdict is 'guaranteed' for every cell.")
    w()
    if skipped:
        for s in skipped:
            w(f"- **skipped {s['prior']}**: {s['reason']}")
        w()
    w("## Summary (mean over all cells)")
    w()
    w("| method | PSNR | SSIM | iterations | seconds | converged | guarantee | verdict |")
    w("|---|---|---|---|---|---|---|---|")
    for name, s in summary.items():
        w(f"| {name} | {fmt(s['psnr'])} | {fmt(s['ssim'], '.4f')} | {fmt(s['iterations'], '.0f')} | "
          f"{fmt(s['seconds'])} | {s['converged'] * 100:.0f}% | {'yes' if s['guarantee'] else 'no'} | "
          f"{', '.join(s['verdicts'])} |")
    w()
    if targets:
        w("## Paired differences")
        w()
        for t in targets:
            w(f"- {t['method']} - {t['reference']}: mean paired PSNR gap {fmt(t['gap_db'], '+.2f')} dB over "
              f"{t['pairs']} cells")
        w()
    w("## PSNR per setting (mean over images)")
    w()
    settings = [(k, n) for k in config.kernels for n in config.noise]
    w("| method | " + " | ".join(f"{k} / {n:g}" for k, n in settings) + " |")
    w("|---|" + "---|" * len(settings))
    for m in methods:
        row = []
        for k, n in settings:
            row.append(fmt(_mean([c["psnr"] for c in cells if c["method"] == m.name and c["kernel"] == k
                                 and c["noise"] == n])))
        w(f"| {m.name} | " + " | ".join(row) + " |")
    obs = [fmt(_mean([c["psnr_observed"] for c in cells if c["kernel"] == k and c["noise"] == n])) for k, n in settings]
    w("| (observed) | " + " | ".join(obs) + " |")
    w()
    w("## Tuned parameters (frozen)")
    w()
    w("| method | noise | parameter | value | step factor (x 1/L) | validation PSNR | runs | note |")
    w("|---|---|---|---|---|---|---|---|")
    relaxed = False
    for t in tuning.values():
        note = "best at the edge of the search range" if t.get("at_boundary") else t.get("source", "")
        lvl = t.get("level")
        value = f"{t['value']:.4g}"
        if lvl and lvl["strength"] < 1.0:
            value += f" (= {lvl['sigma']:.4g} relaxed, s = {lvl['strength']:.3g})"
            relaxed = True
        w(f"| {t['method']} | {t['noise']:g} | {t['param']} | {value} | {t['step_factor']:g} | "
          f"{fmt(t['psnr'])} | {len(t['evaluations'])} | {note} |")
    w()
    if relaxed:
        w("A denoiser level below the trained range means the relaxed denoiser (1 - s) I + s D(., sigma_min) with "
          "s = level / sigma_min (s-times its averagedness constant; `priors.denoiser_at_level`).")
        w()
    w("## All cells")
    w()
    w("| image | kernel | noise | method | PSNR | SSIM | it | s | converged | guarantee |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for c in cells:
        w(f"| {c['image']} | {c['kernel']} | {c['noise']:g} | {c['method']} | {fmt(c['psnr'])} | "
          f"{fmt(c['ssim'], '.4f')} | {c['iterations']} | {fmt(c['seconds'])} | {'yes' if c['converged'] else 'no'} "
          f"({c['status']}) | {'yes' if c['guarantee'] else 'no'} |")
    w()
    w(f"_{counts['computed']} cells computed, {counts['reused']} reused from earlier runs, {counts['failed']} failed; "
      f"{counts['tuning_runs']} new tuning runs._")
    return buf.getvalue()


def recon_grid(config: CompareConfig, cells: list[dict], methods: list[Method], out_dir: Path) -> Path | None:
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    kernel = config.figure.kernel or config.kernels[0]
    noise = config.figure.noise if config.figure.noise is not None else config.noise[0]
    by = {(c["image"], c["method"]): c for c in cells if c["kernel"] == kernel and math.isclose(c["noise"], noise)}
    if not by:
        return None
    names = [m.name for m in methods if any(k[1] == m.name for k in by)]
    cols = ["truth", "observed", *names]
    rows = config.images
    fig = Figure(figsize=(2.1 * len(cols), 2.2 * len(rows)))
    axes = np.atleast_2d(fig.subplots(len(rows), len(cols), squeeze=False))
    top, left, side = config.figure.zoom
    for i, image in enumerate(rows):
        prob = suite_problem(image, kernel, noise, size=config.size, gray=config.gray, boundary=config.boundary,
                        seed=config.seed)
        panels = {"truth": (prob.truth, None), "observed": (prob.y, scores(prob.y, prob.truth)[0])}
        for n in names:
            c = by.get((image, n))
            if c is not None:
                x = torch.from_numpy(np.load(out_dir / "cells" / f"{c['key']}.npz")["x"].astype(np.float32))
                panels[n] = (x, c["psnr"])
        for j, col in enumerate(cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if col not in panels:
                ax.set_axis_off()
                continue
            img, score = panels[col]
            arr = img[0].detach().float().clamp(0, 1).numpy()
            arr = arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
            cmap = "gray" if arr.ndim == 2 else None
            ax.imshow(arr, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            h, wd = arr.shape[:2]
            y0, x0, s = int(top * h), int(left * wd), max(int(side * min(h, wd)), 2)
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), s, s, fill=False, ec="yellow", lw=0.8))
            ins = ax.inset_axes([0.58, 0.0, 0.42, 0.42])
            ins.imshow(arr[y0:y0 + s, x0:x0 + s], cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            ins.set_xticks([])
            ins.set_yticks([])
            for sp in ins.spines.values():
                sp.set_edgecolor("yellow")
            title = col if score is None else f"{col}\n{score:.2f} dB"
            ax.set_title(title, fontsize=7)
            if j == 0:
                ax.set_ylabel(image, fontsize=8)
    fig.suptitle(f"{config.name}: {kernel}, noise {noise:g}", fontsize=9)
    fig.tight_layout()
    path = out_dir / "recon_grid.png"
    fig.savefig(path, dpi=100)
    return path


def convergence_figure(cells: list[dict], methods: list[Method], path: Path) -> Path:
    import matplotlib
    from matplotlib.figure import Figure

    names = [m.name for m in methods if any(c["method"] == m.name for c in cells)]
    ncol = min(4, len(names))
    nrow = math.ceil(len(names) / ncol)
    fig = Figure(figsize=(3.6 * ncol, 2.9 * nrow))
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    noises = sorted({c["noise"] for c in cells})
    for ax, name in zip(axes, names):
        for c in cells:
            if c["method"] != name:
                continue
            r = [max(v, 1e-16) for v in c["history"]["residual"]]
            ax.semilogy(range(1, len(r) + 1), r, lw=0.7, alpha=0.7, color=colors[noises.index(c["noise"]) % len(colors)])
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("iteration", fontsize=7)
        ax.set_ylabel("‖x_{k+1}−x_k‖/‖x_k‖", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes[len(names):]:
        ax.set_axis_off()
    handles = [matplotlib.lines.Line2D([], [], color=colors[i % len(colors)], label=f"noise {n:g}")
               for i, n in enumerate(noises)]
    fig.legend(handles=handles, loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
