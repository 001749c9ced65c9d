"""Robustness of priors: worst-case amplification of a denoiser and of a PnP reconstruction map.

For a map ``f`` and a point ``u`` we look for the largest amplification

    A(f, u, eps) = max_{0 < ||delta|| <= eps} ||f(u + delta) - f(u)|| / ||delta||,

a lower estimate of the local Lipschitz constant, reported next to the certified bound (which must
never be exceeded).  Two searches:

* :func:`amplification_pgd` -- projected gradient ascent on the ratio (autograd; for the learned
  denoisers and for PnP maps unrolled through their iterations);
* :func:`amplification_random` -- gradient-free: random directions and radii, then a (1+1)
  evolution strategy around the best perturbation.  Used for BM3D (not differentiable) and TV
  (its prox is an inner iterative solver; differentiating through it is slow).  A random search
  is weaker than a gradient attack: its numbers are lower estimates of lower estimates.

PnP reconstruction map (K iterations of PnP proximal gradient, x_0 = A^T y):

    x_{k+1} = D(x_k - tau A^T (A x_k - y)).

Bound (proved here).  Let ``L_D`` be a Lipschitz bound of D and ``c = ||I - tau A^T A||``; the
spectrum of ``A^T A`` lies in ``[0, ||A||^2]`` so ``c <= max(1, tau ||A||^2 - 1)`` (= 1 for
``tau <= 2 / ||A||^2``).  For two data y, y' with ``e_k = ||x_k - x_k'||`` and ``d = ||y - y'||``:
``e_0 <= ||A|| d`` and ``e_{k+1} <= L_D (c e_k + tau ||A|| d)``, hence with ``q = L_D c``

    e_K / d <= q^K ||A|| + L_D tau ||A|| (1 + q + ... + q^{K-1}).

For an averaged (hence nonexpansive, ``L_D <= 1``) denoiser and ``tau <= 2/||A||^2`` this is
``||A|| + K tau ||A||``: it grows linearly with K.  Averagedness gives convergence of the
iterates, not a better y-Lipschitz bound (that would need strong convexity of the data term);
we report only what is proved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from tqdm.auto import tqdm

from operators import Blur, gaussian
from problems.images import load_image, training_pool_names

from ..averaged import AveragedResNet
from ..certify import rigorous_bounds
from ..pretrained import load_checkpoint
from ..training_loop import fit_denoiser

__all__ = [
    "amplification_pgd",
    "amplification_random",
    "PnPMapFactory",
    "EvalDenoiser",
    "DenoiserResolver",
    "JOB_TRAINED",
    "pnp_lipschitz_bound",
    "train_denoiser",
    "resolve_denoisers",
    "evaluate_priors",
    "prior_table",
]

Map = Callable[[torch.Tensor], torch.Tensor]
#: ``factory(denoiser, operator, *, sigma, step, iterations) -> Map``: the PnP reconstruction map
#: ``y -> x_K`` of ``iterations`` PnP proximal-gradient steps with the denoiser called as
#: ``denoiser(x, sigma)``, step ``step`` and ``x_0 = A^T y``.  ``priors`` does not run PnP: the
#: map is the solver's own iteration, handed in by the caller (``stablepnp robustness`` passes
#: :func:`pnp.robustness.pgd_map`).  It must be differentiable whenever the denoiser is (the PGD
#: attack differentiates through it), and the certified bound :func:`pnp_lipschitz_bound` holds
#: for this iteration only.
PnPMapFactory = Callable[..., Map]

#: Names of ``prior_eval.denoisers`` that the job trains itself (or loads from
#: ``averaged_checkpoint`` / ``unconstrained_checkpoint``); every other name is resolved by the caller.
JOB_TRAINED: tuple[str, ...] = ("averaged", "unconstrained")


@dataclass(frozen=True)
class EvalDenoiser:
    """A prior as the robustness evaluation sees it: a denoiser ``D(x, sigma)`` and what is certified.

    ``lipschitz`` is the certified Lipschitz bound of ``x -> D(x, sigma)`` (None: no guarantee);
    ``differentiable`` selects the attack (autograd PGD, else the gradient-free random search);
    ``label`` names it in the table.
    """

    denoiser: Callable[[torch.Tensor, float], torch.Tensor]
    lipschitz: float | None
    differentiable: bool
    label: str


#: ``resolve(name) -> EvalDenoiser`` for names outside :data:`JOB_TRAINED` (``stablepnp robustness``
#: passes :func:`pnp.robustness.registry_denoiser`: the prior registry of the job layer).  Raises
#: ``ValueError`` (one line) for an unknown name and ``ImportError`` when an optional package is missing.
DenoiserResolver = Callable[[str], EvalDenoiser]


def _norms(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1)


def _unit(t: torch.Tensor) -> torch.Tensor:
    return t / _norms(t).clamp_min(1e-30).view(-1, *([1] * (t.dim() - 1)))


def _ratio(f: Map, u: torch.Tensor, fu: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    return _norms(f(u + delta) - fu) / _norms(delta).clamp_min(1e-30)


def amplification_pgd(f: Map, u: torch.Tensor, *, eps: float, steps: int = 20, step_size: float | None = None,
                      restarts: int = 1, generator: torch.Generator | None = None) -> dict[str, Any]:
    """Gradient ascent on ``||f(u+delta) - f(u)|| / ||delta||`` over ``0 < ||delta|| <= eps``, per sample.

    Normalised-gradient steps of size ``step_size`` (default ``eps / 4``) followed by projection on
    the ball (and a floor ``||delta|| >= eps / 1000`` so the ratio stays defined).

    Returns
    -------
    dict
        ``per_sample`` (list of the best ratio for each element of the batch), ``max``, ``mean``.

    Examples
    --------
    >>> out = amplification_pgd(lambda x: 3 * x, torch.rand(2, 1, 4, 4), eps=0.1, steps=2)
    >>> abs(out["max"] - 3.0) < 1e-3  # a linear map: the ratio is its gain (float32 rounding aside)
    True
    """
    u = u.detach()
    with torch.no_grad():
        fu = f(u)
    alpha = step_size if step_size is not None else eps / 4
    best = torch.zeros(u.shape[0], dtype=u.dtype)
    view = (-1,) + (1,) * (u.dim() - 1)
    for _ in range(restarts):
        r0 = torch.rand(u.shape[0], generator=generator, dtype=u.dtype) * 0.9 + 0.1
        delta = _unit(torch.randn(u.shape, generator=generator, dtype=u.dtype)) * (eps * r0).view(view)
        for it in range(steps + 1):
            delta = delta.detach().requires_grad_(it < steps)
            if it == steps:
                with torch.no_grad():
                    ratio = _ratio(f, u, fu, delta)
            else:
                ratio = _ratio(f, u, fu, delta)
            best = torch.maximum(best, ratio.detach())
            if it == steps:
                break
            (grad,) = torch.autograd.grad(ratio.sum(), delta)
            with torch.no_grad():
                delta = delta + alpha * _unit(grad)
                n = _norms(delta).view(view)
                delta = delta * torch.clamp(eps / n.clamp_min(1e-30), max=1.0)
                delta = delta * torch.clamp(eps * 1e-3 / _norms(delta).view(view).clamp_min(1e-30), min=1.0)
    return {"per_sample": best.tolist(), "max": float(best.max()), "mean": float(best.mean())}


@torch.no_grad()
def amplification_random(f: Map, u: torch.Tensor, *, eps: float, trials: int = 20,
                         generator: torch.Generator | None = None) -> dict[str, Any]:
    """Gradient-free search of the amplification: ``trials // 2`` random perturbations (Gaussian
    directions, radii uniform in ``[0.1, 1] eps``), then ``trials - trials // 2`` steps of a (1+1)
    evolution strategy around the best one (mutation of 30 % of its norm, projected on the ball).

    Examples
    --------
    >>> out = amplification_random(lambda x: 2 * x, torch.rand(1, 1, 4, 4), eps=0.1, trials=4)
    >>> round(out["max"], 5)
    2.0
    """
    u = u.detach()
    fu = f(u)
    view = (-1,) + (1,) * (u.dim() - 1)
    best = torch.zeros(u.shape[0], dtype=u.dtype)
    best_delta = torch.zeros_like(u)
    n_random = max(1, trials // 2)
    for t in range(max(trials, 1)):
        if t < n_random:
            r = torch.rand(u.shape[0], generator=generator, dtype=u.dtype) * 0.9 + 0.1
            delta = _unit(torch.randn(u.shape, generator=generator, dtype=u.dtype)) * (eps * r).view(view)
        else:
            step = _unit(torch.randn(u.shape, generator=generator, dtype=u.dtype)) * (0.3 * _norms(best_delta)).view(view)
            delta = best_delta + step
            delta = delta * torch.clamp(eps / _norms(delta).view(view).clamp_min(1e-30), max=1.0)
        ratio = _ratio(f, u, fu, delta)
        better = ratio > best
        best = torch.where(better, ratio, best)
        best_delta[better] = delta[better]
    return {"per_sample": best.tolist(), "max": float(best.max()), "mean": float(best.mean())}


def pnp_lipschitz_bound(lip_denoiser: float | None, op_norm: float, step: float, iterations: int) -> float | None:
    """Certified Lipschitz bound of the PnP map ``y -> x_K`` (see the module docstring).

    Examples
    --------
    >>> pnp_lipschitz_bound(1.0, 1.0, 1.0, 10)  # ||A|| + K tau ||A||
    11.0
    """
    if lip_denoiser is None:
        return None
    c = max(1.0, step * op_norm**2 - 1.0)
    q = lip_denoiser * c
    geom = iterations if q == 1.0 else (q**iterations - 1) / (q - 1)
    return q**iterations * op_norm + lip_denoiser * step * op_norm * geom


# --------------------------------------------------------------------------------------------
# denoisers


def _patches(n: int, size: int, gen: torch.Generator, pool: list[torch.Tensor]) -> torch.Tensor:
    out = []
    for _ in range(n):
        img = pool[int(torch.randint(len(pool), (1,), generator=gen))]
        h, w = img.shape[-2:]
        i = int(torch.randint(h - size + 1, (1,), generator=gen))
        j = int(torch.randint(w - size + 1, (1,), generator=gen))
        out.append(img[:, :, i : i + size, j : j + size])
    return torch.cat(out)


def train_denoiser(*, constrained: bool, width: int, depth: int, steps: int, patch: int, batch: int,
                   seed: int = 0, checkpoint: Path | None = None, log=print):
    """Quickly train an :class:`priors.averaged.AveragedResNet` (MSE, noise levels in its sigma range)
    on random patches of the training-pool photographs (a few hundred steps, for jobs without shipped
    weights); loads ``checkpoint`` when present and writes it at the end (short runs: no mid-run resume)."""
    torch.manual_seed(seed)
    model = AveragedResNet(width=width, depth=depth, constrained=constrained)
    if checkpoint is not None and checkpoint.is_file():
        try:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
            model.load_state_dict(state["model"])
        except Exception as exc:  # damaged, forged or of another width/depth: one line, not a traceback
            raise ValueError(f"denoiser checkpoint '{checkpoint}' cannot be loaded ({type(exc).__name__}); delete it "
                             "to train the denoiser again, or use a new output_dir") from None
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            raise ValueError(f"denoiser checkpoint '{checkpoint}' holds non-finite weights; delete it to train again")
        return model.eval()
    gen = torch.Generator().manual_seed(seed)
    pool = [load_image(name, size=128) for name in training_pool_names()]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    t0 = time.perf_counter()
    # the project's training loop; one generator draws the patches, the levels and the noise
    fit_denoiser(model, opt, lambda: _patches(batch, patch, gen, pool), noise_range=model.config.sigma_range,
                 generator=gen, stop=steps)
    log(f"[prior] trained {'averaged' if constrained else 'unconstrained'} denoiser: {steps} steps, "
        f"{time.perf_counter() - t0:.0f}s")
    model.eval()
    if checkpoint is not None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"config": model.config.to_dict(), "model": model.state_dict(), "steps": steps}, checkpoint)
    return model


def _load_denoiser(path: str):
    """A grey denoiser from a ``stablepnp train`` model file or checkpoint (certificate re-checked)."""
    return load_checkpoint(path, in_channels=1)


def resolve_denoisers(spec, resolve: DenoiserResolver | None, *, log=print) -> dict[str, EvalDenoiser]:
    """The caller-resolved denoisers of ``spec.denoisers`` (all but :data:`JOB_TRAINED`), loaded up front
    so that a bad name fails before any training; a prior whose optional package is missing is
    skipped with a log line."""
    out: dict[str, EvalDenoiser] = {}
    for name in spec.denoisers:
        if name in JOB_TRAINED:
            continue
        if resolve is None:
            raise ValueError(f"prior_eval.denoisers: {name!r} is built by the job layer's prior registry; run this "
                             "job as 'stablepnp robustness CONFIG.yaml' (or pass resolve= to run())")
        try:
            out[name] = resolve(name)
        except ImportError as exc:
            log(f"[prior] skipping {name}: {exc}")
    return out


def _job_trained(name: str, spec, *, out_dir: Path, seed: int, log) -> EvalDenoiser:
    constrained = name == "averaged"
    ckpt = spec.averaged_checkpoint if constrained else spec.unconstrained_checkpoint
    if ckpt:
        den = _load_denoiser(ckpt)
    else:
        den = train_denoiser(constrained=constrained, width=spec.width, depth=spec.depth, steps=spec.train_steps,
                             patch=spec.train_patch, batch=spec.train_batch, seed=seed,
                             checkpoint=out_dir / "checkpoints" / f"denoiser_{name}.pt", log=log)
    for p in den.parameters():
        p.requires_grad_(False)
    return EvalDenoiser(den, float(rigorous_bounds(den)["lipschitz"]), True, name)


def evaluate_priors(spec, *, out_dir: Path, pnp_map: PnPMapFactory, resolved: Mapping[str, EvalDenoiser] | None = None,
                    seed: int = 0, progress: bool = False, log=print) -> dict[str, Any]:
    """Amplification of each denoiser and of its PnP-PGD map on the test images (``spec``: PriorEvalSpec).

    ``pnp_map`` builds the reconstruction map from a denoiser (see :data:`PnPMapFactory`) and
    ``resolved`` holds the denoisers the caller built (:func:`resolve_denoisers`); the names of
    :data:`JOB_TRAINED` are trained or loaded here.  A name in neither is skipped (its package is missing).
    """
    resolved = dict(resolved or {})
    gen = torch.Generator().manual_seed(seed)
    clean = torch.cat([load_image(name, size=spec.image_size) for name in spec.images])
    noisy = clean + spec.sigma * torch.randn(clean.shape, generator=gen)
    A = Blur(gaussian(spec.blur_std), boundary="circular")
    op_norm = A.norm((1, *clean.shape[1:]))
    y = A(clean) + spec.noise_std * torch.randn(clean.shape, generator=gen)
    tau = spec.pnp_step / op_norm**2
    rows: list[dict[str, Any]] = []
    for name in tqdm(spec.denoisers, desc="prior robustness", disable=not progress, leave=False):
        t0 = time.perf_counter()
        if name in JOB_TRAINED:
            ev = _job_trained(name, spec, out_dir=out_dir, seed=seed, log=log)
        elif name in resolved:
            ev = resolved[name]
        else:
            continue
        if ev.differentiable:
            method = "PGD on the ratio (autograd, unrolled PnP)"
        else:
            method = "random search + (1+1)-ES (gradient-free)"
        d_map = lambda x, den=ev.denoiser: den(x, spec.sigma)  # noqa: E731
        p_map = pnp_map(ev.denoiser, A, sigma=spec.pnp_sigma, step=tau, iterations=spec.pnp_iterations)
        pnp_bound = pnp_lipschitz_bound(ev.lipschitz, op_norm, tau, spec.pnp_iterations)
        for map_name, f, u, bound in (("denoiser", d_map, noisy, ev.lipschitz), ("pnp", p_map, y, pnp_bound)):
            if ev.differentiable:
                res = amplification_pgd(f, u, eps=spec.eps, steps=spec.attack_steps, generator=gen)
            else:
                res = amplification_random(f, u, eps=spec.eps, trials=spec.random_trials, generator=gen)
            rows.append({"denoiser": name, "map": map_name, "certified": bound, "empirical_max": res["max"],
                         "empirical_mean": res["mean"], "per_image": res["per_sample"], "attack": method})
        log(f"[prior] {name}: certified {ev.lipschitz}, denoiser amp {rows[-2]['empirical_max']:.3f}, "
            f"pnp bound {rows[-1]['certified']}, pnp amp {rows[-1]['empirical_max']:.3f} ({time.perf_counter() - t0:.0f}s)")
    return {"images": list(spec.images), "image_size": spec.image_size, "sigma": spec.sigma, "eps": spec.eps,
            "operator": f"circular Gaussian blur std {spec.blur_std}, ||A|| = {op_norm:.6g}",
            "pnp": {"iterations": spec.pnp_iterations, "step": tau, "sigma": spec.pnp_sigma, "x0": "A^T y"},
            "rows": rows}


def prior_table(prior: dict[str, Any]) -> str:
    """Markdown table of :func:`evaluate_priors` results."""
    lines = ["| denoiser | map | certified bound | worst amplification found (max / mean over images) | attack |",
             "|---|---|---|---|---|"]
    for r in prior["rows"]:
        bound = "none" if r["certified"] is None else f"{r['certified']:.4g}"
        lines.append(f"| {r['denoiser']} | {r['map']} | {bound} | {r['empirical_max']:.4g} / {r['empirical_mean']:.4g} | {r['attack']} |")
    note = (f"\nImages: {', '.join(prior['images'])} at {prior['image_size']}px; denoiser at sigma={prior['sigma']:.4g}; "
            f"attack radius eps={prior['eps']} (l2); PnP-PGD: {prior['pnp']['iterations']} iterations, "
            f"step {prior['pnp']['step']:.4g}, {prior['operator']}.\n")
    return "\n".join(lines) + "\n" + note
