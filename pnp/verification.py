"""The final verification of a run: the returned iterate is checked against the *unaccelerated* map.

A mixin of :class:`pnp.run.Algorithm`: after the loop, one more application of the plain iteration
map at the returned state; its residual, scaled like the stopping test, must be at most
:data:`VERIFY_FACTOR` times the tolerance before "converged" and "guaranteed" are reported. An
accelerated run that fails continues with plain iterations from its best iterate
(:data:`FALLBACK_REASON`).
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable

import torch
from torch import Tensor

from pnp.diagnostics import DivergenceMonitor, relative_residual
from pnp.run_log import RunLog
from pnp.stopping import StoppingCriterion, tolerance_of

__all__ = ["FinalVerification", "VERIFY_FACTOR", "FALLBACK_REASON"]

#: The final verification passes when the returned iterate's residual is at most this times the tolerance
#: (see :meth:`FinalVerification.verification_residual`)
VERIFY_FACTOR = 2.0
#: Why an accelerated run finished (or ended) with plain iterations
FALLBACK_REASON = "accelerated iterate failed final verification"


def _flat(state: Any, fields: tuple[str, ...]) -> Tensor:
    """The named fields of a state as one flat vector (fields that are None are skipped)."""
    parts = [getattr(state, f).reshape(-1) for f in fields if getattr(state, f, None) is not None]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


class FinalVerification:
    """The verification methods of :class:`pnp.run.Algorithm` (which supplies ``update``, ``run`` and
    the stopping test)."""

    # ------------------------------------------------------------------ the final verification
    @property
    def verification_fields(self) -> tuple[str, ...]:
        """The state fields an accelerated run's final verification measures: the governing variable of
        the iteration map (``anderson_fields``: ``x`` for PGD/HQS, ``z`` for DRS, ``(x, u)`` for ADMM),
        the variable its stopping test measures. A plain run's stopping test (and verification)
        measures ``x``."""
        return tuple(self.anderson_fields or ("x",))

    def verification_residual(self, state: Any, fields: tuple[str, ...] = ("x",)) -> float:
        """The residual of the *unaccelerated* iteration map at ``state``, scaled like the stopping test.

        ``‖v − T v‖ / ‖v‖ · residual_scale()`` with ``v`` the ``fields`` of ``state`` and ``T v`` those
        of ``update(state)``: one extra application of the map. For gradient methods
        ``residual_scale()`` makes it the relative gradient mapping ``‖x − prox_(τg)(x − τ∇f(x))‖/(τL)``,
        which does not shrink with the step; FISTA overrides it with that mapping at ``x`` (its own
        update starts from the extrapolated point).
        """
        with contextlib.nullcontext() if self.track_gradients else torch.no_grad():
            nxt = self.update(state)
        v = _flat(state, fields)
        w = _flat(nxt, fields)
        rel, _, _ = relative_residual(w, v)
        return rel * self.residual_scale()

    def _verify(self, status: str, k: int, state: Any, x0: Tensor, criterion: StoppingCriterion,
                monitor: DivergenceMonitor | None, log: RunLog,
                callback: Callable[[int, Any, dict[str, float]], None] | None, diagnostics: dict[str, Any],
                t0: float) -> tuple[str, int, Any]:
        """Check the returned iterate with the unaccelerated map before "converged" is reported.

        The residual :meth:`verification_residual` at the iterate the run returns, on the variable the
        stopping test measured (``x`` for a plain run, the governing variable for an accelerated one),
        must be at most ``VERIFY_FACTOR`` times the tolerance (one extra application of the map).
        A "converged" run that fails: an accelerated one falls back to plain iterations from its
        safest iterate (the one with the smallest unaccelerated residual) within the iteration budget
        left and is verified again; a plain one, or a fallback that fails too, ends with status
        ``"unverified"`` (its report loses "guaranteed"). Runs that stopped for another reason keep
        their status; the check is recorded for every finite one, and an accelerated run that stopped
        outside the region its safeguard keeps (:meth:`_region_check`) loses "guaranteed".
        """
        if status in ("nan", "diverged"):
            return status, k, state
        policy = self.acceleration
        tol = tolerance_of(criterion)
        returned = state.image if policy is not None else state
        check = self._verification(returned, tol, self.verification_fields if policy is not None else ("x",))
        diagnostics["final_verification"] = check
        if policy is not None:
            diagnostics["acceleration"] = policy.summary(state)
            self._region_check(check, state, returned)
        if status != "converged" or check["passed"] is not False:
            if status != "converged" and check.get("in_region") is False:  # stopped early, outside the region
                check["reason"] = (f"{FALLBACK_REASON}: its residual {check['residual_norm']:.3g} exceeds "
                                   f"{check['region_bound']:.3g}, the bound every safeguarded iterate keeps, and the "
                                   f"run ended '{status}' with no iterations left for plain ones")
                diagnostics["stop_reason"] = check["reason"]
            return status, k, state
        if policy is None:
            check["reason"] = (f"the stopping test fired but the returned iterate's residual "
                               f"{check['residual']:.3g} is above {VERIFY_FACTOR:g} x tol = {VERIFY_FACTOR * tol:.3g}")
            diagnostics["stop_reason"] = check["reason"]
            return "unverified", k, state
        # accelerated: fall back to plain iterations from the safest iterate, within the budget left
        safe = getattr(state, "best", None)
        safe = returned if safe is None else safe
        cap = criterion.max_iterations
        fallback: dict[str, Any] = {"reason": FALLBACK_REASON, "accelerated_residual": check["residual"],
                                    "from_iteration": k, "plain_iterations": 0}
        check["fallback"] = fallback
        if cap is not None and k >= cap:
            fallback["outcome"] = "no iterations left"
            check["reason"] = f"{FALLBACK_REASON} and no iterations were left for plain ones"
            diagnostics["stop_reason"] = check["reason"]
            return "unverified", k, state
        evaluations = int(getattr(state, "evaluations", k))
        if monitor is not None:
            monitor.reset()  # the plain iterations' step lengths are not comparable with the accelerated ones
        status, k2, plain_state = self._iterate(safe, x0, criterion, monitor, log, callback, diagnostics, t0,
                                                plain=True, k=k, evaluations=evaluations)
        fallback["plain_iterations"] = k2 - k
        fallback["outcome"] = status
        if status in ("nan", "diverged"):
            return status, k2, plain_state
        again = self._verification(plain_state, tol, ("x",))
        again["fallback"] = fallback
        diagnostics["final_verification"] = again
        if status == "converged" and again["passed"] is False:
            again["reason"] = f"{FALLBACK_REASON}; the plain iterations that followed failed it too"
            diagnostics["stop_reason"] = again["reason"]
            return "unverified", k2, plain_state
        diagnostics["stop_reason"] = f"{FALLBACK_REASON}; finished with {k2 - k} plain iterations ({status})"
        return status, k2, plain_state

    def _region_check(self, check: dict[str, Any], state: Any, returned: Any) -> None:
        """Whether an accelerated run's returned iterate lies where the safeguarded iteration stays.

        A plain step of an averaged map never increases ``‖v − T v‖`` (Krasnosel'skii–Mann), so every
        plain iterate has a residual at most ``Ū = ‖v_0 − T v_0‖``; the safeguard accepts an Anderson
        iterate only with a residual at most ``max_growth`` times the smallest so far. An iterate above
        ``max_growth · Ū`` came from somewhere the theorem does not cover (e.g. a policy that does not
        enforce its test)."""
        u_bar = getattr(state, "u_bar", None)
        growth = getattr(self.acceleration, "max_growth", None)
        scale = self.residual_scale()
        if not isinstance(u_bar, float) or not isinstance(growth, float) or not scale > 0:
            return
        norm = float(torch.linalg.vector_norm(_flat(returned, self.verification_fields)))
        absolute = check["residual"] / scale * norm
        bound = growth * u_bar * (1.0 + 1e-9) + 1e-300
        check["residual_norm"] = absolute
        check["region_bound"] = bound
        check["in_region"] = bool(math.isfinite(absolute) and absolute <= bound)

    def _verification(self, state: Any, tol: float | None, fields: tuple[str, ...]) -> dict[str, Any]:
        residual = float(self.verification_residual(state, fields))
        passed = None if tol is None else bool(math.isfinite(residual) and residual <= VERIFY_FACTOR * tol)
        return {"residual": residual, "tolerance": tol, "factor": VERIFY_FACTOR, "passed": passed,
                "map": "unaccelerated", "fields": list(fields), "finite": bool(torch.isfinite(state.x).all())}
