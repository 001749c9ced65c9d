"""Explicit integrators of a gradient flow and the averagedness arithmetic of their steps.

Shared by the network that takes the steps (:mod:`priors.averaged`, :mod:`priors.robustness.models`)
and the code that certifies them (:mod:`priors.certify`), so neither has to import the other for it.

For a block ``x' = -grad f(x)`` with ``grad f`` l-Lipschitz and a step h, everything depends on
``h l`` and the integrator's circle-contractivity radius r:

* explicit Euler, ``x - h grad f(x)``, is ``h l / 2``-averaged for ``h l < 2`` (a gradient step on a
  convex function) and nonexpansive at ``h l = 2``; beyond, only ``max(1, h l - 1)`` holds;
* a Runge--Kutta step is nonexpansive for ``h l <= 2 r``; beyond, only the stage-wise Lipschitz
  bound ``1 + h sum_i |b_i| l L_i`` holds;
* averaged maps compose into an averaged map (Combettes & Yamada 2015, :func:`composed_alpha`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["INTEGRATORS", "composed_alpha", "substep_bound"]

#: Butcher tableaux of explicit integrators (a, b) and their circle-contractivity radius r.
#: Euler: r = 1 (x - h grad f(x) is nonexpansive for h L <= 2, Baillon-Haddad).  Heun: r = 1 exactly,
#: since its step is (x + E(E(x))) / 2 with E an Euler step.  RK4: r = 1 is the value Sherry et al.
#: use for gradient flows; the general theory (Kraaijevanger 1991) gives classical RK4 r = 0, so the
#: RK4 certificate rests on the authors' claim and says so in its method string.
INTEGRATORS: dict[str, dict[str, Any]] = {
    "euler": {"a": [], "b": [1.0], "radius": 1.0},
    "heun": {"a": [[1.0]], "b": [0.5, 0.5], "radius": 1.0},
    "rk4": {"a": [[0.5], [0.0, 0.5], [0.0, 0.0, 1.0]], "b": [1 / 6, 1 / 3, 1 / 3, 1 / 6], "radius": 1.0},
}


def composed_alpha(alphas: list[float]) -> float:
    """Averagedness constant of a composition (Combettes & Yamada 2015, Prop. 2.5).

    ``T1`` a1-averaged and ``T2`` a2-averaged give ``T1 o T2`` averaged with
    ``(a1 + a2 - 2 a1 a2) / (1 - a1 a2)``; a constant of 1 (merely nonexpansive) absorbs.

    >>> round(composed_alpha([0.5, 0.5]), 6)
    0.666667
    """
    out = 0.0
    for a in alphas:
        if a >= 1.0 or out >= 1.0:
            return 1.0
        out = (out + a - 2 * out * a) / (1 - out * a) if out > 0 else a
    return out


def _rk_step_lipschitz(integrator: str, hl: float) -> float:
    tab = INTEGRATORS[integrator]
    lips: list[float] = []
    for i in range(len(tab["b"])):
        row = tab["a"][i - 1] if i > 0 else []
        lips.append(1.0 + hl * sum(abs(a) * lips[j] for j, a in enumerate(row)))
    return 1.0 + hl * sum(abs(b) * lip for b, lip in zip(tab["b"], lips))


def substep_bound(integrator: str, hl: float, radius: float) -> tuple[float, float | None]:
    """(Lipschitz bound, averagedness constant or None) of one sub-step with ``h l = hl``.

    >>> substep_bound("euler", 1.0, 1.0)
    (1.0, 0.5)
    >>> substep_bound("heun", 3.0, 1.0)[1] is None
    True
    """
    if integrator == "euler":
        lip = max(1.0, hl - 1.0)
        return lip, (hl / 2 if hl < 2 else (1.0 if hl <= 2 else None))
    if hl <= 2 * radius:
        return 1.0, 1.0
    return _rk_step_lipschitz(integrator, hl), None
