"""Figures of a solver run (matplotlib, Agg canvas; never touches the global pyplot backend).

:func:`solve_figure` draws the four panels of ``stablepnp solve``: observed data,
reconstruction, ground truth, and the relative fixed-point residual per iteration on a log
scale (with the PSNR per iteration on a second axis when the truth is known).

Examples
--------
>>> import torch, tempfile, pathlib
>>> x = torch.rand(1, 1, 16, 16)
>>> path = pathlib.Path(tempfile.mkdtemp()) / "run.png"
>>> solve_figure(observed=x, reconstruction=x, truth=x, history={"residual": [1e-1, 1e-3]},
...              path=path).exists()
True
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["solve_figure", "record_figure", "to_display"]


def to_display(image: Tensor) -> np.ndarray:
    """First batch element of a (B, C, H, W) tensor as an (H, W) or (H, W, 3) array clipped to [0, 1].

    Non-finite pixels are shown as 0.
    """
    if not isinstance(image, Tensor) or image.ndim != 4:
        raise ValueError(f"image must be a tensor of shape (B, C, H, W), got {getattr(image, 'shape', image)!r}")
    arr = image[0].detach().to(device="cpu", dtype=torch.float64).numpy()
    arr = np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=0.0).clip(0.0, 1.0)
    if arr.shape[0] == 1:
        return arr[0]
    if arr.shape[0] == 3:
        return np.moveaxis(arr, 0, -1)
    return arr.mean(axis=0)  # other channel counts: show the mean


def solve_figure(
    *,
    observed: Tensor,
    reconstruction: Tensor,
    truth: Tensor | None,
    history: Mapping[str, Sequence[float]],
    path: str | Path,
    title: str | None = None,
    observed_label: str = "observed",
    reconstruction_label: str = "reconstruction",
    tol: float | None = None,
    dpi: int = 120,
) -> Path:
    """Write the observed / reconstruction / truth / residual figure as a PNG.

    Parameters
    ----------
    observed, reconstruction : Tensor
        Images (B, C, H, W); the first batch element is shown, clipped to [0, 1].
    truth : Tensor or None
        Ground truth; its panel says "unknown" when None.
    history : mapping
        ``Result.history``: ``"residual"`` (log scale) and optionally ``"psnr"``; with
        ``"anderson"`` (an accelerated run) the accepted and the refused Anderson steps are marked.
    path : str or Path
        Output file (parent folders are created).
    title : str, optional
        Figure title.
    observed_label, reconstruction_label : str
        Panel titles.
    tol : float, optional
        Residual tolerance, drawn as a dashed line.
    dpi : int
        Resolution.

    Returns
    -------
    Path
        The file written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 4.4), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 4, gridspec_kw={"width_ratios": [1, 1, 1, 1.25]})
    _image_panels(axes[:3], ((observed, observed_label), (reconstruction, reconstruction_label), (truth, "ground truth")))
    _convergence_panel(axes[3], history, tol)
    return save_figure(fig, path, title, fontsize=11, format="png")


def save_figure(fig: Any, path: str | Path, title: str = "", *, fontsize: int = 10, **savefig: Any) -> Path:
    """Title ``fig``, lay it out and write it to ``path`` (parents created); returns the path."""
    if title:
        fig.suptitle(title, fontsize=fontsize)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, **savefig)
    return path


def record_figure(record: Mapping[str, Any], *, observed: Tensor, reconstruction: Tensor, truth: Tensor | None,
                  history: Mapping[str, Sequence[float]], path: str | Path) -> Path:
    """The figure of a solve record (:class:`pnp.record.SolveRecord`): titles, labels and tolerance come from it.

    ``history`` is the run's own (``Result.history``, with its non-finite values, which the
    record's JSON-safe copy has replaced by None).
    """
    failed, status = bool(record["failed"]), record["status"]
    tol = record.get("tol")
    return solve_figure(
        observed=observed, reconstruction=reconstruction, truth=truth, history=history, path=path,
        title=f"{record['problem']['image']}: {record['algorithm'].upper()} + {record['prior']} — {status}",
        observed_label=f"{record['observed_label']} ({_db(record['psnr_observed'])})",
        reconstruction_label=(f"reconstruction ({_db(record['psnr'])})" if not failed
                              else f"last finite iterate ({status}: not a solution)"),
        tol=tol if tol else None,
    )


def _db(value: float | None) -> str:
    # the record stores an infinite PSNR (a perfect match) as None
    return f"{(math.inf if value is None else value):.2f} dB"


def _image_panels(axes: Sequence[Any], panels: Sequence[tuple[Tensor | None, str]]) -> None:
    for ax, (img, label) in zip(axes, panels):
        ax.set_axis_off()
        ax.set_title(label, fontsize=10)
        if img is None:
            ax.text(0.5, 0.5, "unknown", ha="center", va="center", transform=ax.transAxes)
            continue
        arr = to_display(img)
        ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")


def _convergence_panel(ax: Any, history: Mapping[str, Sequence[float]], tol: float | None) -> None:
    """Residual per iteration (log scale), the accepted/refused Anderson steps, the PSNR on a second axis."""
    residual = [r for r in history.get("residual", [])]
    iters = np.arange(1, len(residual) + 1)
    positive = [r if (math.isfinite(r) and r > 0) else np.nan for r in residual]
    if residual and not all(np.isnan(positive)):
        ax.semilogy(iters, positive, color="tab:blue", lw=1.4, label="relative residual")
    else:
        ax.text(0.5, 0.5, "no residual recorded", ha="center", va="center", transform=ax.transAxes)
    steps = list(history.get("anderson", []))
    if steps and len(steps) == len(residual):
        # safeguarded Anderson acceleration (pnp.acceleration): which steps were taken or refused
        for code, colour, marker, label in ((1.0, "tab:green", ".", "Anderson step"),
                                            (-1.0, "tab:red", "x", "refused by the safeguard (plain step)")):
            ks = [k for k, c in enumerate(steps) if c == code and not np.isnan(positive[k])]
            if ks:
                ax.scatter(iters[ks], [positive[k] for k in ks], s=14 if code > 0 else 22, color=colour,
                           marker=marker, zorder=3, label=f"{label} ({len(ks)})")
    if tol is not None and tol > 0:
        ax.axhline(tol, color="tab:blue", ls="--", lw=0.8, label=f"tol {tol:g}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("relative residual ‖v − T v‖ / ‖v‖" if steps else "relative residual ‖xₖ₊₁ − xₖ‖ / ‖xₖ‖",
                  color="tab:blue")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title("convergence", fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    psnr = list(history.get("psnr", []))
    if psnr:
        ax2 = ax.twinx()
        ax2.plot(np.arange(1, len(psnr) + 1), psnr, color="tab:orange", lw=1.2, label="PSNR [dB]")
        ax2.set_ylabel("PSNR [dB]", color="tab:orange")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if handles:
        ax.legend(handles, labels, loc="center right", fontsize=8)
