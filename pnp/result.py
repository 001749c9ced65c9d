"""The outcome of one solver run: :class:`Result`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import Tensor

if TYPE_CHECKING:  # pragma: no cover
    from pnp.assumptions import AssumptionReport

__all__ = ["Result", "STATUSES"]

#: Every value :attr:`Result.status` can take ("unverified": the stopping test fired but the returned
#: iterate failed the final verification, :meth:`pnp.run.Algorithm.run`).
STATUSES = ("converged", "max_iter", "diverged", "nan", "time_limit", "unverified")


@dataclass(frozen=True)
class Result:
    """What :meth:`pnp.run.Algorithm.run` returns.

    Parameters
    ----------
    x : Tensor
        Final estimate, shape (B, C, H, W). After a divergence or a NaN it is the last
        finite iterate, never a NaN image.
    converged : bool
        ``status == "converged"``: the residual tolerance was met and the returned ``x`` passed the
        final verification (the unaccelerated map's residual at ``x``, ``diagnostics["final_verification"]``).
    status : str
        One of ``"converged"``, ``"max_iter"``, ``"diverged"``, ``"nan"``, ``"time_limit"`` and
        ``"unverified"`` (the stopping test fired, the returned ``x`` failed the final verification).
    iterations : int
        Number of completed iterations.
    seconds : float
        Wall-clock time of the loop.
    history : dict of str to list of float
        Per-iteration records, each list of length ``iterations``: ``"residual"`` (relative
        fixed-point residual ``‖x_{k+1} − x_k‖ / ‖x_k‖``), ``"time"`` (seconds since the
        start), ``"objective"`` (when the fidelity and the prior both have values) and
        ``"psnr"`` (when the truth is known; peak 1.0). An accelerated run (:mod:`pnp.acceleration`)
        records the fixed-point residual ``‖v − T v‖/‖v‖`` of the iteration's governing variable
        as ``"residual"`` and adds ``"anderson"`` (1 accepted Anderson step, 0 plain step, −1
        Anderson step refused by the safeguard) and ``"evaluations"`` (applications of the
        iteration map so far).
    report : AssumptionReport
        The convergence-assumption report computed before the run.
    unsafe : bool
        True when a setting outside the convergence bound was run because the algorithm
        was built with ``unsafe=True``.
    algorithm : str
        Algorithm name (``"PGD"``, ``"ADMM"``, ...).
    step : float
        The step (or prox parameter / primal step) used.
    params : dict
        The iteration's parameters (step, relaxation, prior weight, dual step, ...).
    diagnostics : dict
        Runtime checks: ``"monotone"`` (a :class:`pnp.diagnostics.MonotonicityReport`,
        PGD only), ``"divergence"`` (a :class:`pnp.diagnostics.DivergenceReport` or None),
        ``"last_finite_iteration"``, ``"final_verification"`` (``residual``: the unaccelerated map's
        residual at ``x`` scaled like the stopping test; ``tolerance``, ``factor``, ``passed``: whether
        ``residual <= factor * tolerance``, None without a tolerance; ``fallback`` when an accelerated
        run finished with plain iterations, and ``reason``).

    Examples
    --------
    >>> import torch
    >>> r = Result(x=torch.zeros(1, 1, 2, 2), converged=True, status="converged", iterations=3,
    ...            seconds=0.01, history={"residual": [1e-1, 1e-3, 1e-6]}, report=None)
    >>> r.final_residual
    1e-06
    """

    x: Tensor
    converged: bool
    status: str
    iterations: int
    seconds: float
    history: dict[str, list[float]]
    report: "AssumptionReport | None"
    unsafe: bool = False
    algorithm: str = ""
    step: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    @property
    def final_residual(self) -> float:
        """The verified residual at ``x`` (``diagnostics["final_verification"]``) when the run checked it,
        else the last relative residual of the history (``nan`` when no iteration ran)."""
        check = self.diagnostics.get("final_verification")
        if isinstance(check, dict) and isinstance(check.get("residual"), float):
            return check["residual"]
        res = self.history.get("residual", [])
        return res[-1] if res else math.nan

    @property
    def verified(self) -> bool | None:
        """Whether ``x`` passed the final verification (None when it was not checked: no tolerance, a
        breakdown, or a result built by hand)."""
        check = self.diagnostics.get("final_verification")
        return check.get("passed") if isinstance(check, dict) else None

    @property
    def psnr(self) -> float | None:
        """Last PSNR in the history, or None when the truth was unknown."""
        p = self.history.get("psnr")
        return p[-1] if p else None

    def summary(self) -> str:
        """One line: algorithm, status, iterations, time, residual, PSNR, verdict."""
        parts = [
            f"{self.algorithm or 'algorithm'}: {self.status} after {self.iterations} it",
            f"{self.seconds:.2f} s",
            f"residual {self.final_residual:.2e}",
        ]
        if self.psnr is not None:
            parts.append(f"PSNR {self.psnr:.2f} dB")
        if self.report is not None:
            parts.append(f"guarantee: {self.report.verdict}")
        if self.unsafe:
            parts.append("UNSAFE settings")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly record (the image ``x`` is left out)."""
        diag: dict[str, Any] = {}
        for k, v in self.diagnostics.items():
            diag[k] = v.to_dict() if hasattr(v, "to_dict") else v
        return {
            "algorithm": self.algorithm,
            "status": self.status,
            "converged": self.converged,
            "iterations": self.iterations,
            "seconds": self.seconds,
            "step": self.step,
            "params": dict(self.params),
            "unsafe": self.unsafe,
            "final_residual": self.final_residual,
            "verified": self.verified,
            "psnr": self.psnr,
            "history": {k: list(v) for k, v in self.history.items()},
            "report": None if self.report is None else self.report.to_dict(),
            "diagnostics": diag,
        }
