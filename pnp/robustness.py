"""What the robustness job (:mod:`priors.robustness`) needs from the solver layer.

``priors`` never imports ``pnp``, so ``stablepnp robustness`` (:func:`main`) hands the job two
things it does not own:

* :func:`pgd_map` -- the PnP reconstruction map ``y -> x_K`` whose worst-case amplification is
  measured.  It runs this package's own :class:`pnp.algorithms.PGD` (``init`` / ``update``) with
  the autograd graph kept (``track_gradients``), so the map attacked is the iteration a solve runs;
* :func:`registry_denoiser` -- any prior of :mod:`pnp.registry` (or a weights file) as a denoiser
  ``D(x, sigma)`` with its certified Lipschitz bound, so ``prior_eval.denoisers`` accepts every
  registered name (``tv``, ``bm3d``, ``ridge``, ``dncnn``, a user's ``register_prior`` entry ...).

A classical prior ``g`` is used as the denoiser ``D(x, sigma) = prox_{sigma g}(x)`` (for TV: the
TV denoiser whose weight is the noise level), certified firmly nonexpansive when ``g`` is convex;
a learned denoiser or smooth regulariser is called as the model it is (``model(x, sigma)``) with
the model's own certificate; a model without one gets no bound ("none" in the table).

Examples
--------
>>> import torch
>>> from operators import Blur, gaussian
>>> f = pgd_map(lambda x, s: x, Blur(gaussian(1.0), boundary="circular"), sigma=0.1, step=1.0, iterations=2)
>>> f(torch.rand(1, 1, 16, 16)).shape
torch.Size([1, 1, 16, 16])
>>> registry_denoiser("tv").lipschitz
1.0
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from operators.fidelity import L2Fidelity
from priors import DenoiserPrior
from priors.robustness import run as robustness_run
from priors.robustness.prior_eval import EvalDenoiser

from pnp.registry import algorithm_entry, resolve_prior

__all__ = ["pgd_map", "registry_denoiser", "main"]


def pgd_map(denoiser: Callable[[Tensor, float], Tensor], operator: Any, *, sigma: float, step: float,
            iterations: int) -> Callable[[Tensor], Tensor]:
    """``y -> x_K``: ``iterations`` steps of PnP-PGD ``x+ = D(x - step A^T(Ax - y), sigma)`` from ``x_0 = A^T y``.

    The steps are :meth:`pnp.algorithms.PGD.update` with the autograd graph kept, hence
    differentiable whenever ``denoiser`` is.  ``unsafe=True``: a study may use a step beyond the
    convergence bound (:func:`priors.robustness.prior_eval.pnp_lipschitz_bound` covers any step).
    """
    prior = DenoiserPrior(denoiser, sigma=sigma)
    cls = algorithm_entry("pgd").cls

    def f(y: Tensor) -> Tensor:
        alg = cls(L2Fidelity(operator, y), prior, step=step, unsafe=True)
        alg.track_gradients = True
        state = alg.init(operator.adjoint(y))
        for _ in range(iterations):
            state = alg.update(state)
        return state.x

    return f


def _model_bound(model: Any) -> float | None:
    cert_fn = getattr(model, "certificate", None)
    cert = cert_fn() if callable(cert_fn) else None
    return None if cert is None or cert.lipschitz is None else float(cert.lipschitz)


def registry_denoiser(name: str) -> EvalDenoiser:
    """The prior registered as ``name`` (or the weights file ``name``) as a grey denoiser with its bound.

    Raises ``ValueError`` (one line, listing the registered names) for an unknown name and
    ``ImportError`` when the prior needs a missing optional package (the job then skips it).
    """
    entry = resolve_prior(name)
    if entry.kind == "classical":
        def prox_denoiser(x: Tensor, sigma: float) -> Tensor:
            return entry.build(float(sigma)).prox(x, 1.0)

        cert = entry.build(1.0).certificate()
        bound = None if cert is None else float(cert.lipschitz)
        return EvalDenoiser(prox_denoiser, bound, False, entry.display)
    model = entry.load(None, 1)
    params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
    for p in params:  # attacks differentiate with respect to the input only
        p.requires_grad_(False)
    return EvalDenoiser(model, _model_bound(model), bool(params), entry.display)


def main(argv: list[str] | None = None) -> int:
    """``stablepnp robustness CONFIG.yaml ...``: :func:`priors.robustness.run.main` with this package's
    PnP-PGD map and prior registry."""
    return robustness_run.main(argv, pnp_map=pgd_map, resolve=registry_denoiser)
