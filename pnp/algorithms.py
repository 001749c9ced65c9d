"""Proximal and Plug-and-Play algorithms for ``min_x f(x) + g(x)``.

Each algorithm is an :class:`pnp.run.Algorithm`: an immutable typed state, a pure
``update(state) -> state`` and the shared :meth:`~pnp.run.Algorithm.run` loop. ``f`` is the
data fidelity (``value``, ``grad``, ``prox``, ``lipschitz_grad``), ``g`` the prior
(``prox(v, tau) = argmin_x ½‖x − v‖² + tau g(x)``; for a ``DenoiserPrior`` the prox is the
denoiser, see :mod:`priors.pnp_prior` for how the step, the weight and the denoiser's noise
level are tied).

===========  =============================================  =====================================
algorithm    iteration                                      default step / bound
===========  =============================================  =====================================
PGD          x⁺ = x + λ(prox_{τg}(x − τ∇f(x)) − x)           τ = 1/L, τ < 2/L
FISTA        x⁺ = prox_{τg}(z − τ∇f(z)); z⁺ = x⁺ + β(x⁺−x)   τ = 1/L, τ <= 1/L
ADMM         scaled-form ADMM with over-relaxation λ          γ = 1/L (penalty 1/γ), any γ > 0
DRS          z⁺ = z + λ(prox_{γg}(2prox_{γf}(z) − z) − prox_{γf}(z))  γ = 1/L, any γ > 0
HQS          x⁺ = x + λ(prox_{γg}(prox_{γf}(x)) − x)         γ = 1/L, any γ > 0
PDHG         Chambolle–Pock on f(x) + h(Kx)                  τ = σ = 0.99/‖K‖, τσ‖K‖² < 1
===========  =============================================  =====================================

``L = fidelity.lipschitz_grad()`` (``‖A‖²`` for ``½‖Ax − y‖²``). When ``L`` is unknown (Poisson)
the ADMM/DRS/HQS default is ``γ = 1/(c ‖A‖²)`` with ``c = fidelity.data_curvature()`` (``γ = 1``
when that is unknown too).

**The split z = A x.** A data term ``f(x) = F(A x)`` whose prox is not available (Poisson noise
behind a blur) but whose prox in ``z = A x`` is (``fidelity.data_prox``, closed form for Poisson)
is solved by ADMM, DRS and PDHG through the split ``z = A x``; no Lipschitz gradient is needed:

* ADMM and DRS: ``min F(z) + g(v)`` subject to ``(z, v) = (A x, x)``; the ``x``-step solves
  ``(AᵀA + I) x = Aᵀa + b`` (FFT for circular blur, masks, identity; conjugate gradient
  otherwise) -- Douglas–Rachford on the product space, one theorem for both orders;
* PDHG: ``F`` enters through its conjugate, ``prox_{σF*}`` by Moreau's identity (dual step
  ``σ = c``); TV keeps its own dual block, a smooth prior (the learned ridge regularizer) its
  gradient (Condat–Vũ), any other prior its prox; ``τ = 0.99/(σ‖A‖² (+ σ_K‖K‖²) + L_g/2)``.

PGD and FISTA need a Lipschitz gradient and refuse a data term without one (unless ``unsafe``).

The classes live in :mod:`pnp.gradient` (PGD, FISTA), :mod:`pnp.splitting` (ADMM, DRS, HQS) and
:mod:`pnp.pdhg`, the split in :mod:`pnp.split`; this module gathers them.
"""

from __future__ import annotations

from priors.tv import FiniteDifference  # TV's difference operator, re-exported as pnp.FiniteDifference

# in the order the algorithms are listed (the registries keep definition order)
from pnp.gradient import FISTA, PGD, FISTAState, PGDState
from pnp.splitting import ADMM, DRS, HQS, ADMMSplitState, ADMMState, DRSSplitState, DRSState, HQSState  # isort: skip
from pnp.pdhg import PDHG, PDHGSplitState, PDHGState  # isort: skip
from pnp.linear_part import LinearPart, linear_part_of  # isort: skip
from pnp.split import split_form  # isort: skip

__all__ = [
    "split_form",
    "PGD",
    "FISTA",
    "ADMM",
    "DRS",
    "HQS",
    "PDHG",
    "PGDState",
    "FISTAState",
    "ADMMState",
    "DRSState",
    "HQSState",
    "PDHGState",
    "ADMMSplitState",
    "DRSSplitState",
    "PDHGSplitState",
    "LinearPart",
    "FiniteDifference",
    "linear_part_of",
]
