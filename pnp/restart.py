"""Adaptive restart of FISTA's momentum (O'Donoghue & Candès, Found. Comput. Math. 15, 2015).

FISTA's momentum overshoots when the problem is better conditioned than the worst case its
``O(1/k²)`` rate is built for (strongly convex problems above all): the objective then
oscillates with a period that grows with the condition number. O'Donoghue & Candès reset the
momentum — the next iteration is FISTA started afresh from the current point — whenever a
cheap test sees the momentum pointing uphill:

``"gradient"``
    ``⟨z_{k−1} − x_k, x_k − x_{k−1}⟩ > 0``: the step ``x_k − x_{k−1}`` makes an acute angle with
    the generalised gradient ``(z_{k−1} − x_k)/τ`` at the extrapolated point ``z_{k−1}`` (their
    composite form of the gradient test). No function value is needed.
``"function"``
    ``F(x_k) > F(x_{k−1})``: the objective went up.

How the guarantee is kept here (the verdict of :class:`pnp.FISTA` says which applies)
------------------------------------------------------------------------------------
Every restart starts a new *epoch*: FISTA from the epoch's start point ``x_s``
(``z_s = x_s``, momentum counter back to 1, i.e. ``t = 1`` in Beck & Teboulle's notation). When
the objective ``F = f + g`` is available, both schemes are *guarded* by it: an iterate with
``F(x_k) > F(x_{k−1})`` is discarded and replaced by the prox-gradient step from ``x_{k−1}``,
which starts the new epoch. Then

* ``F(x_k)`` is nonincreasing: an accepted FISTA iterate did not increase it, and a
  prox-gradient step with ``τ <= 1/L`` cannot (Beck & Teboulle, SIAM J. Imaging Sci. 2, 2009,
  Lemma 2.3: ``F(x) − F(T x) >= ‖T x − x‖² / (2τ)``);
* inside an epoch the iterates are those of FISTA from ``x_s``, so its ``O(1/j²)`` bound holds
  ``j`` iterations into the epoch, with ``‖x_s − x*‖`` in the constant;
* ``F(x_k) → min F``: with finitely many restarts the last epoch is plain FISTA; with infinitely
  many, every restart is followed by (or replaced by) a prox-gradient step ``x⁺ = T x``, for
  which the same lemma gives ``F(T x) − F* <= ‖x − T x‖ ‖x − x*‖ / τ``; the decreases
  ``‖T x − x‖²/(2τ)`` are summable, so this tends to 0 when the iterates stay bounded (they lie
  in the sublevel set ``{F <= F(x_0)}``, bounded for a coercive objective), and monotonicity
  carries the limit to the whole sequence.

The global ``O(1/k²)`` rate of plain FISTA is **not** claimed with restart (a restart resets the
bound's clock). O'Donoghue & Candès prove the speed-up (linear convergence at the optimal rate
without knowing the strong-convexity modulus) only for strongly convex quadratics and argue it
heuristically elsewhere. Without the objective (a plug-in denoiser has no value) the gradient
scheme is unguarded and no theorem covers infinitely many restarts, so it is refused unless
``unsafe=True``; the function scheme needs the objective and is refused outright.

The tests are on the whole batch as one vector (one momentum for the batch, as one objective).
"""

from __future__ import annotations

from typing import Any

import dataclasses

import torch
from torch import Tensor

__all__ = ["RESTARTS", "RESTART_NONE", "RESTART_GRADIENT", "RESTART_FUNCTION", "check_restart", "momentum_uphill",
           "restarted_state", "restart_summary"]

#: Values of ``FISTA(restart=...)``; "none" is the default (plain FISTA, bit for bit).
RESTARTS: tuple[str, ...] = ("none", "gradient", "function")

#: Codes of ``Result.history["restart"]``: no restart, a gradient-test restart (the iterate is
#: kept), an objective increase (the iterate is replaced by the prox-gradient step).
RESTART_NONE, RESTART_GRADIENT, RESTART_FUNCTION = 0.0, 1.0, 2.0

CITATION = "O'Donoghue & Candes, Found. Comput. Math. 15 (2015), adaptive restart"


def check_restart(value: Any) -> str:
    """The restart scheme named by ``value`` (case-insensitive), or a one-line error.

    Examples
    --------
    >>> check_restart("Function")
    'function'
    """
    key = value.strip().lower() if isinstance(value, str) else None
    if key not in RESTARTS:
        raise ValueError(f"restart must be one of {', '.join(repr(r) for r in RESTARTS)}, got {value!r}")
    return key


def momentum_uphill(z: Tensor, x_new: Tensor, x_old: Tensor) -> bool:
    """O'Donoghue & Candès's gradient test ``⟨z − x_new, x_new − x_old⟩ > 0`` (whole batch).

    Examples
    --------
    >>> import torch
    >>> x_old, x_new = torch.zeros(3), torch.ones(3)
    >>> momentum_uphill(torch.full((3,), 2.0), x_new, x_old)  # overshot past x_new
    True
    """
    with torch.no_grad():
        return float(torch.sum((z - x_new) * (x_new - x_old))) > 0.0


def restarted_state(fista: Any, state: Any, x: Tensor, k: int) -> Any:
    """Iteration ``k`` of ``fista`` (a :class:`pnp.FISTA`) with adaptive restart; ``x`` its FISTA iterate.

    An epoch is FISTA from its start point ``x_s`` (``z_s = x_s``), with momentum
    ``(j − 1)/(j + a)`` ``j = k − s`` iterations into it. When the restart is guarded and ``F(x)``
    exceeds ``F(x_(k−1))``, ``x`` is discarded for the prox-gradient step from ``x_(k−1)``, where the
    new epoch starts; the gradient test keeps ``x`` and starts the new epoch at it. Returns the
    next :class:`pnp.FISTAState` (``state`` is not modified).
    """
    F = fista.objective(x) if fista.guarded else None
    start, code = state.epoch_start, RESTART_NONE
    if F is not None and state.objective is not None and F > state.objective:
        x = fista.forward_backward(state.x)
        F = fista.objective(x)
        start, code = k - 1, RESTART_FUNCTION
    elif fista.restart == "gradient" and momentum_uphill(state.z, x, state.x):
        start, code = k, RESTART_GRADIENT
    j = k - start
    z = x if j <= 1 else x + ((j - 1) / (j + fista.momentum)) * (x - state.x)
    return dataclasses.replace(state, x=x, z=z, iteration=k, epoch_start=start,
                               restarts=state.restarts + (code != RESTART_NONE),
                               function_restarts=state.function_restarts + (code == RESTART_FUNCTION),
                               last_restart=code, objective=F)


def restart_summary(scheme: str, guarded: bool, state: Any) -> dict[str, Any]:
    """Counts of a finished restarted run (``Result.diagnostics["restart"]``): every prox-gradient
    evaluation, i.e. one per iteration plus one per iterate discarded by the objective test."""
    return {"scheme": scheme, "guarded": guarded, "restarts": state.restarts,
            "function_restarts": state.function_restarts,
            "prox_gradient_steps": state.iteration + state.function_restarts}
