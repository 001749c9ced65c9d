"""Convergence diagnostics of a (Plug-and-Play) fixed-point iteration.

What is measured along a run of ``x_{k+1} = T_λ(x_k)``:

* the absolute step lengths ``d_k = ‖x_{k+1} − x_k‖ = ‖x_k − T_λ x_k‖``;
* the theoretical envelope of ``d_k`` for averaged iterations (below), and a slope reference
  ``d_0 / sqrt(k + 1)``;
* the final fixed-point residual ``‖x_K − T_λ(x_K)‖`` (one extra application of the iteration);
* the denoiser's local Lipschitz constant ``‖J_D(z_k)‖`` at the points ``z_k`` where the
  iteration evaluates it (power iteration on ``JᵀJ`` with Jacobian-vector products,
  :func:`priors.certify.jacobian_power`);
* a figure.

The envelope
------------
Let ``T`` be ``α``-averaged with a fixed point ``x*`` and ``T_λ = I + λ(T − I)`` with
``λ ∈ (0, 1/α)``; then ``T_λ`` is ``a = λα``-averaged (write ``T = (1 − α)I + αN`` with ``N``
nonexpansive; ``T_λ = (1 − λα)I + λαN``). For an ``a``-averaged map (Bauschke & Combettes,
*Convex Analysis and Monotone Operator Theory*, 2nd ed. 2017, Prop. 4.35)::

    ‖T_λ x − x*‖² <= ‖x − x*‖² − ((1 − a)/a) ‖x − T_λ x‖².

Summing along the iterates gives ``((1 − a)/a) Σ_{i=0..k} d_i² <= ‖x_0 − x*‖²``, and ``d_k`` is
nonincreasing because ``d_{k+1} = ‖T_λ x_{k+1} − T_λ x_k‖ <= d_k`` (nonexpansiveness). Hence,
for every ``k >= 0``::

    d_k <= dist(x_0, Fix T) / sqrt((k + 1) (1 − a) / a),

the rate behind the Krasnosel'skii–Mann theorem (Bauschke & Combettes 2017, Prop. 5.16; the
``λ = 1`` case is the bound ``‖x_k − T x_k‖ <= dist(x_0, Fix T)/sqrt(k (1 − α)/α)`` up to the
index shift). Moreover ``Σ d_i² < ∞`` with ``d_i`` nonincreasing forces ``k d_k² → 0``, i.e.
``d_k = o(1/sqrt(k))`` (Davis & Yin, "Convergence rate analysis of several splitting schemes",
2016, Thm 1). ``dist(x_0, Fix T)`` is unknown in practice; it is *estimated* by
``‖x_0 − x_K‖`` with ``x_K`` the last iterate, so the plotted envelope is an estimate of the
bound, exact only when ``x_K`` is the fixed point nearest to ``x_0``. Two checks need no
estimate and are reported: ``d_k`` must be nonincreasing, and ``sqrt(k + 1) d_k`` must stay
bounded (it tends to 0).

Without an averagedness constant (a denoiser without a certificate) no envelope is drawn and
``theory`` says so.

Examples
--------
>>> import torch
>>> from operators import Blur, kernels
>>> from operators.fidelity import L2Fidelity
>>> from priors.classical import Tikhonov
>>> from pnp import PGD
>>> A = Blur(kernels.gaussian(1.0))
>>> y = A(torch.rand(1, 1, 16, 16, dtype=torch.float64))
>>> result, diag = run_with_diagnostics(PGD(L2Fidelity(A, y), 0.1 * Tikhonov()), max_iter=50)
>>> diag.steps_monotone, len(diag.step_lengths) == result.iterations
(True, True)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

__all__ = [
    "ConvergenceRecorder",
    "ConvergenceDiagnostics",
    "LocalLipschitz",
    "averaged_envelope",
    "local_lipschitz",
    "convergence_diagnostics",
    "run_with_diagnostics",
    "plot_diagnostics",
]


def _norm(t: Tensor) -> float:
    return float(torch.linalg.vector_norm(t.detach()))


def averaged_envelope(n: int, *, alpha: float, dist0: float) -> list[float]:
    """The bound ``dist0 / sqrt((k + 1)(1 − alpha)/alpha)`` for ``k = 0 .. n − 1``.

    Parameters
    ----------
    n : int
        Number of step lengths.
    alpha : float
        Averagedness constant of the (relaxed) iteration map, in (0, 1).
    dist0 : float
        ``dist(x_0, Fix T)`` (or an estimate of it).

    Examples
    --------
    >>> averaged_envelope(2, alpha=0.5, dist0=1.0)
    [1.0, 0.7071067811865475]
    """
    if not (0.0 < alpha < 1.0):
        raise ValueError(f"alpha must lie in (0, 1) for an envelope, got {alpha!r}")
    c = dist0 / math.sqrt((1.0 - alpha) / alpha)
    return [c / math.sqrt(k + 1) for k in range(n)]


@dataclass(frozen=True)
class LocalLipschitz:
    """Local Lipschitz estimate of the denoiser at one iterate.

    Parameters
    ----------
    iteration : int
        Iteration ``k`` whose denoiser input ``z_k`` was probed.
    estimate : float
        ``‖J_D(z_k)‖₂`` by power iteration (a lower estimate of ``Lip(D)``).
    sigma : float
        Noise level the denoiser was called at.
    """

    iteration: int
    estimate: float
    sigma: float

    def to_dict(self) -> dict:
        return asdict(self)


def _denoiser_of(prior: Any) -> tuple[Any, bool]:
    """(denoiser module, differentiable) of a DenoiserPrior, or (None, False)."""
    den = getattr(prior, "denoiser", None)
    if den is None:
        return None, False
    ok = isinstance(den, torch.nn.Module) and any(True for _ in den.parameters())
    return den, ok


def _denoiser_input(algorithm: Any, x: Tensor) -> Tensor:
    """The point at which the iteration calls the denoiser from iterate ``x``: the algorithm's own
    ``denoiser_input`` (PGD and FISTA: ``x − τ∇f(x)``; HQS: ``prox_{γf}(x)``), else ``x`` as a proxy."""
    fn = getattr(algorithm, "denoiser_input", None)
    if not callable(fn):
        return x
    with torch.no_grad():
        return fn(x)


def local_lipschitz(denoiser: Any, z: Tensor, sigma: float, *, power_iters: int = 10, seed: int = 0) -> float:
    """``‖J_D(z)‖₂`` of ``x ↦ denoiser(x, sigma)`` by power iteration on ``JᵀJ``.

    Uses :func:`priors.certify.jacobian_power` (forward- and reverse-mode products), one image at
    a time; the maximum over the batch is returned.

    Examples
    --------
    >>> import torch
    >>> from priors import AveragedResNet
    >>> local_lipschitz(AveragedResNet(width=4, depth=1), torch.rand(1, 1, 8, 8), 0.1) <= 1.0 + 1e-4
    True
    """
    from priors.certify import jacobian_power

    gen = torch.Generator().manual_seed(seed)
    was_training = getattr(denoiser, "training", False)
    if hasattr(denoiser, "eval"):
        denoiser.eval()
    try:
        best = 0.0
        for i in range(z.shape[0]):
            best = max(best, jacobian_power(denoiser, z[i : i + 1].detach(), float(sigma), power_iters, gen))
        return best
    finally:
        if was_training:
            denoiser.train()


class ConvergenceRecorder:
    """A ``callback`` for :meth:`pnp.run.Algorithm.run` that records what the diagnostics need.

    Records the absolute step lengths ``‖x_{k+1} − x_k‖`` (the run's own history holds the
    relative ones), the first and last state, and probes the denoiser's local Lipschitz constant
    at the iterations in ``lipschitz_at``.

    Parameters
    ----------
    algorithm : pnp.run.Algorithm
        The algorithm being run.
    x0 : Tensor
        The starting image (needed for the first step length).
    lipschitz_at : sequence of int
        Iterations at which to probe ``‖J_D‖`` (skipped for non-differentiable denoisers).
    power_iters : int
        Power iterations per probe.

    Examples
    --------
    >>> import torch
    >>> from operators import Blur, kernels
    >>> from operators.fidelity import L2Fidelity
    >>> from priors.classical import Tikhonov
    >>> from pnp import PGD
    >>> A = Blur(kernels.gaussian(1.0))
    >>> x0 = A(torch.rand(1, 1, 16, 16, dtype=torch.float64))
    >>> alg = PGD(L2Fidelity(A, x0), 0.1 * Tikhonov())
    >>> rec = ConvergenceRecorder(alg, x0)
    >>> res = alg.run(x0, max_iter=5, tol=None, progress=False, callback=rec)
    >>> len(rec.step_lengths)
    5
    """

    def __init__(self, algorithm: Any, x0: Tensor, *, lipschitz_at: Sequence[int] = (), power_iters: int = 10) -> None:
        self.algorithm = algorithm
        self.x0 = x0.detach().clone()
        self._prev = self.x0
        self.step_lengths: list[float] = []
        self.last_state: Any = None
        self.lipschitz_at = set(int(k) for k in lipschitz_at)
        self.power_iters = int(power_iters)
        self.local: list[LocalLipschitz] = []
        self.notes: list[str] = []
        den, diff = _denoiser_of(algorithm.prior)
        self._denoiser = den if diff else None
        if den is not None and not diff and self.lipschitz_at:
            self.notes.append(f"local Lipschitz not computed: {type(den).__name__} is not a differentiable torch module")
        if 0 in self.lipschitz_at:
            self._probe(0, self.x0)

    def _probe(self, k: int, x: Tensor) -> None:
        if self._denoiser is None:
            return
        sigma = float(self.algorithm.prior.sigma_eff(self.algorithm.step))
        z = _denoiser_input(self.algorithm, x)
        est = local_lipschitz(self._denoiser, z, sigma, power_iters=self.power_iters, seed=k)
        self.local.append(LocalLipschitz(k, est, sigma))

    def __call__(self, k: int, state: Any, record: dict) -> None:
        x = state.x
        self.step_lengths.append(_norm(x - self._prev))
        self._prev = x.detach()
        self.last_state = state
        if k in self.lipschitz_at:
            self._probe(k, x)


@dataclass(frozen=True)
class ConvergenceDiagnostics:
    """Convergence diagnostics of one run (see the module docstring for the mathematics).

    Parameters
    ----------
    step_lengths : list of float
        ``d_k = ‖x_{k+1} − x_k‖``, ``k = 0 .. K−1``.
    envelope : list of float or None
        ``dist0 / sqrt((k+1)(1 − a)/a)`` with the estimated ``dist0``; None without ``a``.
    reference : list of float
        ``d_0 / sqrt(k + 1)``: the ``1/sqrt(k)`` slope anchored at the first step (not a bound).
    alpha : float or None
        Averagedness constant ``a = λ α`` of the relaxed iteration map (None: no theorem).
    dist0_estimate : float
        ``‖x_0 − x_K‖``, the estimate of ``dist(x_0, Fix T)``.
    fixed_point_residual : float
        ``‖x_K − T_λ(x_K)‖`` (absolute), from one extra iteration.
    relative_fixed_point_residual : float
        The same divided by ``‖x_K‖``.
    steps_monotone : bool
        ``d_{k+1} <= d_k (1 + rtol)`` for all ``k`` (guaranteed for averaged maps).
    max_step_increase : float
        ``max_k d_{k+1}/d_k`` (1.0 or less when monotone).
    envelope_violations : int
        Number of ``k`` with ``d_k`` above the estimated envelope.
    scaled_tail : float
        ``sqrt(K) d_{K−1}``: tends to 0 when ``d_k = o(1/sqrt(k))``.
    local_lipschitz : list of LocalLipschitz
        Denoiser Jacobian norms along the iterates.
    theory : str
        One line: which statement applies (or why none).
    notes : list of str
        Anything skipped and why.
    """

    step_lengths: list[float]
    envelope: list[float] | None
    reference: list[float]
    alpha: float | None
    dist0_estimate: float
    fixed_point_residual: float
    relative_fixed_point_residual: float
    steps_monotone: bool
    max_step_increase: float
    envelope_violations: int
    scaled_tail: float
    local_lipschitz: list[LocalLipschitz] = field(default_factory=list)
    theory: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def max_local_lipschitz(self) -> float | None:
        """Largest local Lipschitz estimate, or None when none was computed."""
        return max((p.estimate for p in self.local_lipschitz), default=None)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["local_lipschitz"] = [p.to_dict() for p in self.local_lipschitz]
        d["max_local_lipschitz"] = self.max_local_lipschitz
        return d

    def summary(self) -> str:
        """One line for logs."""
        lip = self.max_local_lipschitz
        return (f"fixed-point residual {self.fixed_point_residual:.3e} (rel {self.relative_fixed_point_residual:.2e}); "
                f"steps {'nonincreasing' if self.steps_monotone else f'increase up to x{self.max_step_increase:.3g}'}; "
                f"envelope violations {self.envelope_violations if self.envelope is not None else 'n/a'}; "
                f"max local Lip(D) {'n/a' if lip is None else f'{lip:.4f}'}")


def _iteration_alpha(algorithm: Any) -> tuple[float | None, str]:
    report = algorithm.check_assumptions()
    alpha = getattr(report, "alpha", None)
    lam = float(getattr(algorithm, "relaxation", 1.0))
    if report is None or report.verdict != "guaranteed" or alpha is None:
        why = getattr(report, "reason", "") or "no averagedness constant"
        return None, f"no envelope: verdict '{getattr(report, 'verdict', 'unknown')}' ({why})"
    if getattr(algorithm, "acceleration", None) is not None:
        return None, ("no envelope: the run is accelerated (safeguarded Anderson, pnp.acceleration), so the "
                      "step lengths are not those of the plain averaged iteration; its guarantee is the "
                      "report's theorem (summable Anderson steps, plain steps otherwise)")
    if tuple(getattr(algorithm, "anderson_fields", None) or ()) != ("x",):
        # the class declares the state its averaged map acts on; only x_{k+1} = T(x_k) has this envelope
        return None, (f"no envelope: {algorithm.name}'s recorded x is not the governing sequence of an averaged "
                      "map (only algorithms iterating x_{k+1} = T(x_k), such as PGD and HQS)")
    a = lam * float(alpha)
    if not (0.0 < a < 1.0):
        return None, f"no envelope: relaxed constant lambda*alpha = {a:.4g} is not in (0, 1)"
    return a, (f"T_lambda is {a:.4g}-averaged (alpha = {float(alpha):.4g}, lambda = {lam:g}): d_k nonincreasing, "
               "d_k <= dist(x0, Fix T)/sqrt((k+1)(1-a)/a) (Bauschke-Combettes 2017 Prop. 4.35, 5.16) and "
               "d_k = o(1/sqrt(k)) (Davis-Yin 2016 Thm 1)")


def convergence_diagnostics(algorithm: Any, recorder: ConvergenceRecorder, *, rtol: float = 1e-3) -> ConvergenceDiagnostics:
    """Build :class:`ConvergenceDiagnostics` from a finished run's recorder.

    Parameters
    ----------
    algorithm : pnp.run.Algorithm
        The algorithm that was run.
    recorder : ConvergenceRecorder
        The callback passed to ``algorithm.run``.
    rtol : float
        Relative slack of the monotonicity and envelope checks (float32 rounding).
    """
    d = list(recorder.step_lengths)
    notes = list(recorder.notes)
    if recorder.last_state is None:
        x_last = recorder.x0
        fpr = float("nan")
        notes.append("no iteration completed")
    else:
        x_last = recorder.last_state.x
        with torch.no_grad():
            nxt = algorithm.update(recorder.last_state)
        fpr = _norm(nxt.x - x_last)
    nx = _norm(x_last)
    dist0 = _norm(recorder.x0 - x_last)
    alpha, theory = _iteration_alpha(algorithm)
    ratios = [d[k + 1] / d[k] for k in range(len(d) - 1) if d[k] > 0]
    max_inc = max(ratios, default=1.0)
    # rounding floor: steps at the level of float eps of the iterate are noise
    eps = torch.finfo(x_last.dtype).eps * max(nx, 1e-30) * 10
    monotone = all(d[k + 1] <= d[k] * (1 + rtol) + eps for k in range(len(d) - 1))
    env = averaged_envelope(len(d), alpha=alpha, dist0=dist0) if alpha is not None else None
    viol = 0 if env is None else sum(1 for dk, ek in zip(d, env) if dk > ek * (1 + rtol) + eps)
    ref = [d[0] / math.sqrt(k + 1) for k in range(len(d))] if d else []
    tail = math.sqrt(len(d)) * d[-1] if d else float("nan")
    return ConvergenceDiagnostics(
        step_lengths=d, envelope=env, reference=ref, alpha=alpha, dist0_estimate=dist0,
        fixed_point_residual=fpr, relative_fixed_point_residual=fpr / nx if nx > 0 else float("nan"),
        steps_monotone=monotone, max_step_increase=max_inc, envelope_violations=viol, scaled_tail=tail,
        local_lipschitz=list(recorder.local), theory=theory, notes=notes,
    )


def _probe_schedule(max_iter: int, n: int) -> list[int]:
    """``n`` roughly log-spaced iterations in ``[1, max_iter]`` (always 1 and max_iter)."""
    if n <= 0 or max_iter <= 0:
        return []
    if n == 1:
        return [max_iter]
    pts = {max(1, round(math.exp(math.log(max_iter) * i / (n - 1)))) for i in range(n)}
    return sorted(pts)


def run_with_diagnostics(
    algorithm: Any,
    *,
    x0: Tensor | None = None,
    max_iter: int = 300,
    tol: float | None = 1e-5,
    lipschitz_points: int = 4,
    power_iters: int = 10,
    **run_kwargs: Any,
) -> tuple[Any, ConvergenceDiagnostics]:
    """Run ``algorithm`` and compute its :class:`ConvergenceDiagnostics`.

    The diagnostics are also stored in ``result.diagnostics["convergence"]`` (so they appear in
    ``result.to_dict()``).

    Parameters
    ----------
    algorithm : pnp.run.Algorithm
        Any algorithm (the envelope is drawn for PGD/HQS with a guaranteed verdict).
    x0 : Tensor, optional
        Starting image (default ``algorithm.default_x0()``).
    max_iter, tol
        As for :meth:`pnp.run.Algorithm.run`.
    lipschitz_points : int
        How many (log-spaced) iterations to probe the denoiser's local Lipschitz constant at
        (0 disables it; probes past the last iteration are not made).
    power_iters : int
        Power iterations per probe.
    **run_kwargs
        Passed to ``algorithm.run`` (``progress``, ``truth``, ``time_limit``, ``divergence``...).

    Returns
    -------
    (Result, ConvergenceDiagnostics)
    """
    x0 = algorithm.default_x0() if x0 is None else x0
    rec = ConvergenceRecorder(algorithm, x0, lipschitz_at=_probe_schedule(max_iter, lipschitz_points),
                              power_iters=power_iters)
    run_kwargs.setdefault("progress", False)
    result = algorithm.run(x0, max_iter=max_iter, tol=tol, callback=rec, **run_kwargs)
    if rec.lipschitz_at and rec._denoiser is not None and not any(p.iteration == result.iterations for p in rec.local) \
            and rec.last_state is not None:
        rec._probe(result.iterations, rec.last_state.x)  # always probe the final iterate
    diag = convergence_diagnostics(algorithm, rec)
    result.diagnostics["convergence"] = diag
    return result, diag


def _plot_steps(ax: Any, runs: dict[str, ConvergenceDiagnostics], colors: list[str]) -> None:
    """Panel 1: step lengths with the averaged envelope and the 1/sqrt(k) reference (log-log)."""
    for i, (label, dg) in enumerate(runs.items()):
        c = colors[i % len(colors)]
        k = list(range(1, len(dg.step_lengths) + 1))
        steps = [max(s, 1e-300) for s in dg.step_lengths]
        ax.loglog(k, steps, color=c, lw=1.4, label=f"{label}: ‖x_{{k+1}}−x_k‖")
        if dg.envelope is not None:
            ax.loglog(k, dg.envelope, color=c, ls="--", lw=1.0,
                      label=f"{label}: bound dist₀/√((k+1)(1−a)/a), a={dg.alpha:.3g} (dist₀ est.)")
        if dg.reference:
            ax.loglog(k, dg.reference, color=c, ls=":", lw=1.0, label=f"{label}: d₀/√(k+1) (slope ref.)")
    ax.set_xlabel("iteration k")
    ax.set_ylabel("step length")
    ax.set_title("fixed-point residual")
    ax.legend(fontsize=6.5)
    ax.grid(True, which="both", alpha=0.3)


def _plot_local_lipschitz(ax: Any, runs: dict[str, ConvergenceDiagnostics], colors: list[str]) -> None:
    """Panel 2: the denoiser's local Lipschitz estimates along the iterates (or "not computed")."""
    any_lip = False
    for i, (label, dg) in enumerate(runs.items()):
        if dg.local_lipschitz:
            any_lip = True
            ax.plot([p.iteration for p in dg.local_lipschitz], [p.estimate for p in dg.local_lipschitz], "o-",
                    color=colors[i % len(colors)], label=label)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("iteration k")
    ax.set_ylabel("‖J_D(z_k)‖ (power iteration)")
    ax.set_title("denoiser local Lipschitz along iterates")
    if not any_lip:
        ax.text(0.5, 0.5, "not computed", ha="center", va="center", transform=ax.transAxes)
        return
    first = min(p.iteration for dg in runs.values() for p in dg.local_lipschitz)
    if first >= 1:
        ax.set_xscale("log")
    else:
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=0)
    ax.legend(fontsize=7)


def _plot_psnr(ax: Any, psnr: dict[str, Sequence[float]], colors: list[str]) -> None:
    """Panel 3: PSNR histories."""
    for i, (label, h) in enumerate(psnr.items()):
        ax.plot(range(1, len(h) + 1), h, color=colors[i % len(colors)], label=label)
    ax.set_xscale("log")
    ax.set_xlabel("iteration k")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("PSNR vs iteration")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)


def plot_diagnostics(
    diagnostics: ConvergenceDiagnostics | dict[str, ConvergenceDiagnostics],
    path: str | Path,
    *,
    psnr: dict[str, Sequence[float]] | None = None,
    title: str = "",
) -> Path:
    """Figure: step lengths with envelope and reference (log-log), local Lipschitz, optional PSNR.

    Parameters
    ----------
    diagnostics : ConvergenceDiagnostics or dict of label -> ConvergenceDiagnostics
        One run or several (overlaid).
    path : str or Path
        Output image file.
    psnr : dict of label -> list of float, optional
        PSNR histories to plot in a third panel.
    title : str
        Figure title.
    """
    import matplotlib
    from matplotlib.figure import Figure

    from .figures import save_figure

    runs = diagnostics if isinstance(diagnostics, dict) else {"run": diagnostics}
    n_panels = 3 if psnr else 2
    fig = Figure(figsize=(5.2 * n_panels, 4.2))
    axes = fig.subplots(1, n_panels)
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    _plot_steps(axes[0], runs, colors)
    _plot_local_lipschitz(axes[1], runs, colors)
    if psnr:
        _plot_psnr(axes[2], psnr, colors)
    return save_figure(fig, path, title, dpi=110)
