"""The typed record of a solve job (:class:`SolveRecord`) and the scoring/JSON helpers every job shares.

:func:`pnp.solve.solve` returns a :class:`SolveRecord`; the JSON file, the table, the verdict
line and the figure are rendered from it (:mod:`pnp.report`, :mod:`pnp.figures`). The record is
also a read-only mapping, so ``record["psnr"]`` and ``record.get("figure")`` work as on the plain
dictionary it replaces.

:func:`scores`, :func:`json_safe` and :func:`write_json` are the one place where a reconstruction
is scored and a record is written, for ``solve``, ``solve --input-dir`` and ``compare`` alike.

Examples
--------
>>> import torch
>>> x = torch.full((1, 1, 16, 16), 0.5)
>>> round(scores(x, x + 0.1)[0], 2)
20.0
>>> json_safe({"a": float("nan"), "b": (1, 2.5)})
{'a': None, 'b': [1, 2.5]}
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

__all__ = ["SolveRecord", "scores", "json_safe", "write_json", "read_json", "finite"]


def finite(*values: Any) -> bool:
    """True when every value is a finite number."""
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def scores(x: torch.Tensor, truth: torch.Tensor) -> tuple[float, float]:
    """``(PSNR, SSIM)`` of ``x`` clipped to [0, 1] against ``truth`` (peak 1, mean over the batch)."""
    from problems.metrics import psnr, ssim

    xc = x.detach().clamp(0.0, 1.0)
    return float(psnr(xc, truth).mean()), float(ssim(xc, truth).mean())


def json_safe(obj: Any) -> Any:
    """Plain JSON data: non-finite floats become None, tensors lists, paths and unknown objects strings.

    Objects with a ``to_dict()`` (reports, results, records) are converted through it.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, (np.floating, np.integer)):
        return json_safe(obj.item())
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.Tensor):
        return json_safe(obj.tolist())
    if hasattr(obj, "to_dict"):
        return json_safe(obj.to_dict())
    return str(obj)


def write_json(path: str | Path, data: Any, *, indent: int = 2) -> Path:
    """Write ``json_safe(data)`` strictly (no NaN) through a temporary file, so a crash never leaves half a file."""
    from problems.config import check_output_file

    path = check_output_file(path, "json")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(json_safe(data), indent=indent, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_json(path: str | Path) -> Any:
    """The JSON content of ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class SolveRecord(Mapping):
    """What one ``stablepnp solve`` job produced; the JSON record is :meth:`to_dict`.

    Scores are None where they do not exist (no truth, an image smaller than the SSIM window, a
    run that broke down: ``failed`` is then True and ``psnr`` None). ``guarantee`` holds the
    assumption verdict, the theorem, the one-line summary (:func:`pnp.report.verdict_line`) and the
    full report; ``problem`` and ``solver`` the job's spec sections; ``history`` the per-iteration
    residual/PSNR/objective lists; ``figure``/``reconstruction``/``json`` the files written.

    Examples
    --------
    >>> r = SolveRecord.from_mapping({"psnr": 30.0, "psnr_observed": 25.0, "status": "converged"})
    >>> r["psnr"] - r.psnr_observed, r.get("figure"), r.verdict
    (5.0, None, None)
    """

    psnr_observed: float | None = None
    ssim_observed: float | None = None
    psnr: float | None = None
    ssim: float | None = None
    psnr_gain: float | None = None
    psnr_last_iterate: float | None = None
    observed_label: str = "observation"
    iterations: int = 0
    converged: bool = False
    status: str = ""
    failed: bool = False
    finite: bool = True
    seconds: float | None = None
    seconds_total: float | None = None
    step: float | None = None
    lam: float | None = None
    lam_source: str | None = None
    lam_choice: dict | None = None  # lam: auto -- the rule, the value found, its evaluations and cost (pnp.parameters)
    denoiser_sigma: float | None = None
    denoiser_strength: float | None = None
    prior: str = ""
    algorithm: str = ""
    tol: float | None = None
    max_iter: int | None = None
    final_residual: float | None = None
    verification: dict | None = None  # the final check of x: residual, tolerance, factor, passed (pnp.run)
    unsafe: bool = False
    guarantee: dict = dataclasses.field(default_factory=dict)
    stop_reason: str | None = None
    accelerate: str | None = None
    acceleration: dict | None = None
    restart: dict | None = None
    monotone: dict | None = None
    diagnostics: dict | None = None
    shape: list = dataclasses.field(default_factory=list)
    problem: dict = dataclasses.field(default_factory=dict)
    solver: dict = dataclasses.field(default_factory=dict)
    history: dict = dataclasses.field(default_factory=dict)
    inexact_prox: dict | None = None
    warnings: list = dataclasses.field(default_factory=list)
    figure: str | None = None
    reconstruction: str | None = None
    reconstruction_png: str | None = None  # 8-bit, clipped to [0, 1]
    reconstruction_tiff: str | None = None  # float32, not clipped
    observed_input: bool = False  # the image was a measured observation: no ground truth, no PSNR
    noise_sigma: float | None = None  # the Gaussian noise level the solver assumed
    noise_estimated: bool = False  # noise_sigma was estimated from the observation
    noise_estimate: dict | None = None  # the estimate: sigma, uncertainty, method (and the true sigma when known)
    json: str | None = None
    versions: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> SolveRecord:
        """A record from plain data (made JSON-safe first); unknown keys are refused."""
        names = cls.keys()
        unknown = [k for k in data if k not in names]
        if unknown:
            raise ValueError(f"unknown SolveRecord field(s) {unknown}; valid fields: {', '.join(names)}")
        return cls(**json_safe(dict(data)))

    @classmethod
    def keys(cls) -> tuple[str, ...]:  # type: ignore[override]
        """The field names, in the order of the JSON record."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @property
    def verdict(self) -> str | None:
        """The assumption verdict (``"guaranteed"``, ``"no guarantee"``, ...)."""
        return self.guarantee.get("verdict")

    @property
    def verdict_text(self) -> str:
        """The one-line guarantee (:func:`pnp.report.verdict_line` of the report)."""
        return str(self.guarantee.get("line") or "")

    def to_dict(self) -> dict[str, Any]:
        """The JSON record: every field, in order, as plain data."""
        return {name: getattr(self, name) for name in self.keys()}

    def to_json(self) -> str:
        """The JSON text written by ``output.json``."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    def replace(self, **changes: Any) -> SolveRecord:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ read-only mapping
    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(dataclasses.fields(self))

    __hash__ = None  # type: ignore[assignment] - holds dictionaries
