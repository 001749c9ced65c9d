"""The gradient methods: proximal gradient (PGD, with Krasnosel'skii-Mann relaxation) and FISTA
(see :mod:`pnp.algorithms` for the table of iterations and steps)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor


from pnp.assumptions import (
    AcceleratedForwardBackward,
    ForwardBackward,
)
from pnp.restart import RESTART_NONE, RESTARTS, check_restart, restart_summary, restarted_state
from pnp.run import Algorithm


# ====================================================================== PGD
class _GradientMethod(Algorithm):
    """Shared step rule of PGD and FISTA: default ``1/L``; a step outside the bound declared by
    the class's theory (``theory.step_bound``) is refused unless ``unsafe``."""

    needs_grad: ClassVar[bool] = True
    absorbs_smooth_prior: ClassVar[bool] = True

    def _resolve_step(self, step: float | None) -> float:
        if self.L is None and not getattr(self.fidelity, "smooth", True):
            # forward-backward needs a Lipschitz gradient: a fixed step can leave the data term's
            # domain (Poisson: A x + offset <= 0) and no step has a theorem behind it
            self._refuse(f"step: {type(self.fidelity).__name__}.lipschitz_grad() is None (gradient not globally "
                         f"Lipschitz, e.g. Poisson noise), so {self.name} has no convergence theorem and no safe step; "
                         "use algorithm admm, drs or pdhg (the data term's prox through the split z = A x, no "
                         "Lipschitz gradient needed)")
        if step is None:
            L = self._require_L(self.name)
            return 1.0 / L if L > 0 else 1.0
        rule = self.theory.step_bound
        if rule is not None and self.L is not None and self.L > 0 and not rule.allows(step, self.L):
            bound = rule.bound(self.L)
            verb = "equals" if rule.strict and step == bound else "exceeds"
            self._refuse(f"step {step:g} {verb} the convergence bound {rule.rhs} = {bound:g} for {self.name} "
                         f"({self._lipschitz_text()})")
        return step

    def residual_scale(self) -> float:
        """``max(1, 1/(τ λ L))``: the relative change divided by ``τ λ L`` is the relative norm of the
        gradient mapping ``‖x − prox_(τg)(x − τ∇f(x))‖/τ`` in units of ``L``, which does not shrink
        with the step (it is nonincreasing in ``τ``: Beck, First-Order Methods in Optimization, 2017,
        Thm 10.9), so a step far below ``1/L`` is stopped by the same test as the default step."""
        if self.L is None or not self.L > 0:
            return 1.0
        return max(1.0, 1.0 / (self.step * self.relaxation * self.L))

    def denoiser_input(self, x: Tensor) -> Tensor:
        """``x − τ∇f(x)``, the input of the prox (FISTA: from its extrapolated point)."""
        return x - self.step * self._grad_f(x)


@dataclass(frozen=True)
class PGDState:
    """State of :class:`PGD`: the iterate and the iteration count."""

    x: Tensor
    iteration: int = 0


class PGD(_GradientMethod):
    """Proximal gradient descent (forward–backward) with optional Krasnosel'skii–Mann relaxation.

    ``x⁺ = x + λ (prox_{τ g}(x − τ ∇f(x)) − x)``. With a denoiser prior this is PnP-PGD
    (the denoiser replaces the prox).

    Parameters
    ----------
    problem_or_fidelity : InverseProblem or DataFidelity
        Data term ``f``; needs ``grad`` and either ``lipschitz_grad()`` or an explicit ``step``.
    prior : Prior
        Regulariser ``g`` or a ``DenoiserPrior``.
    step : float, optional
        Gradient step ``τ``; default ``1/L`` with ``L = Lip(∇f)`` (``‖A‖²`` for L2). A step
        ``>= 2/L`` is refused unless ``unsafe=True`` (forward–backward theorem: Combettes & Wajs
        2005, Thm 3.4; Bauschke & Combettes 2017, Cor. 28.9).
    relaxation : float
        ``λ``, allowed in ``(0, 1/alpha)`` where ``alpha`` is the composed averagedness constant
        (see :meth:`check_assumptions`).
    unsafe : bool
        Run out-of-bound settings instead of refusing them (the result is flagged).

    Examples
    --------
    >>> import torch
    >>> from operators import Blur, kernels
    >>> from operators.fidelity import L2Fidelity
    >>> from priors.classical import Tikhonov
    >>> A = Blur(kernels.gaussian(1.0))
    >>> y = A(torch.rand(1, 1, 16, 16, dtype=torch.float64))
    >>> res = PGD(L2Fidelity(A, y), 0.1 * Tikhonov()).run(progress=False)
    >>> res.status
    'converged'
    """

    name: ClassVar[str] = "PGD"
    theory: ClassVar[ForwardBackward] = ForwardBackward()
    anderson_fields: ClassVar[tuple[str, ...]] = ("x",)

    def _monotone_expected(self) -> tuple[bool, str]:
        r = self._assumptions
        convex_prior = bool(getattr(self.prior, "convex", False))
        ok = (r.verdict == "guaranteed" and convex_prior and self.relaxation <= 1.0)
        why = ("forward-backward with step < 2/L and relaxation <= 1 on a convex problem decreases the objective"
               if ok else "monotone decrease is only guaranteed for PGD on a convex problem with step < 2/L and "
               "relaxation <= 1")
        return ok, why

    def init(self, x0: Tensor) -> PGDState:
        return PGDState(x=x0, iteration=0)

    def update(self, state: PGDState) -> PGDState:
        x = state.x
        z = self._prox_g(x - self.step * self._grad_f(x), self.step)
        if self.relaxation != 1.0:
            z = x + self.relaxation * (z - x)
        return PGDState(x=z, iteration=state.iteration + 1)


# ====================================================================== FISTA
@dataclass(frozen=True)
class FISTAState:
    """State of :class:`FISTA`: iterate ``x``, extrapolated point ``z``, iteration count.

    With adaptive restart (:mod:`pnp.restart`) also: ``epoch_start`` (iteration of the current
    epoch's start point), ``restarts`` (all) and ``function_restarts`` (iterates replaced because
    the objective went up), ``last_restart`` (code of this iteration, ``pnp.restart.RESTART_*``)
    and ``objective`` ``F(x)`` when the restart is guarded by it.
    """

    x: Tensor
    z: Tensor
    iteration: int = 0
    epoch_start: int = 0
    restarts: int = 0
    function_restarts: int = 0
    last_restart: float = RESTART_NONE
    objective: float | None = None


class FISTA(_GradientMethod):
    """FISTA with the Chambolle–Dossal momentum ``β_k = (k − 1)/(k + a)``.

    ``x_k = prox_{τ g}(z_{k−1} − τ ∇f(z_{k−1}))``, ``z_k = x_k + β_k (x_k − x_{k−1})``.
    Objective rate ``O(1/k²)`` for ``τ <= 1/L`` (Beck & Teboulle 2009); iterates converge for
    ``a > 2`` (Chambolle & Dossal 2015). No theorem covers a plug-in denoiser.

    Adaptive restart (O'Donoghue & Candès 2015, :mod:`pnp.restart`) resets the momentum when a
    test sees it pointing uphill; guarded by the objective, it keeps ``F(x_k)`` nonincreasing and
    ``F(x_k) → min F`` but gives up the global ``O(1/k²)`` claim (the verdict says so).

    Parameters
    ----------
    problem_or_fidelity, prior
        As for :class:`PGD`.
    step : float, optional
        ``τ``, default ``1/L``; a step above ``1/L`` is refused unless ``unsafe=True``.
    momentum : float
        Chambolle–Dossal parameter ``a`` (default 3; ``a >= 2`` required).
    restart : {"none", "gradient", "function"}
        Adaptive restart scheme (default "none": plain FISTA). "function" needs the objective (both
        terms with a value); "gradient" without it keeps no theorem and is refused unless ``unsafe``.
    unsafe : bool
        Run out-of-bound steps (the result is flagged).

    Examples
    --------
    >>> import torch
    >>> from operators import Blur, kernels
    >>> from operators.fidelity import L2Fidelity
    >>> from priors.classical import Tikhonov
    >>> A = Blur(kernels.gaussian(1.0))
    >>> y = A(torch.rand(1, 1, 16, 16, dtype=torch.float64))
    >>> FISTA(L2Fidelity(A, y), 0.1 * Tikhonov()).run(progress=False).converged
    True
    """

    name: ClassVar[str] = "FISTA"
    theory: ClassVar[AcceleratedForwardBackward] = AcceleratedForwardBackward()
    supports_relaxation: ClassVar[bool] = False
    restart_schemes: ClassVar[tuple[str, ...]] = RESTARTS

    def __init__(
        self,
        problem_or_fidelity: Any,
        prior: Any,
        *,
        step: float | None = None,
        relaxation: float = 1.0,
        unsafe: bool = False,
        momentum: float = 3.0,
        restart: str = "none",
    ) -> None:
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not momentum >= 2:
            raise ValueError(f"momentum must be a number >= 2 (Chambolle-Dossal a; a > 2 for iterate convergence), "
                             f"got {momentum!r}")
        self.momentum = float(momentum)
        self.restart = check_restart(restart)
        super().__init__(problem_or_fidelity, prior, step=step, relaxation=relaxation, unsafe=unsafe)
        #: restart tests guarded by F (pnp.restart); needs both terms' values
        self.guarded = self.restart != "none" and self.has_objective
        if self.restart != "none" and not self.has_objective:
            prior_name = getattr(self.prior, "name", type(self.prior).__name__)
            if self.restart == "function":
                raise ValueError(f"restart: 'function' needs the objective f + g and the prior {prior_name} has no "
                                 "value(); use restart='gradient' or 'none'")
            self._refuse(f"restart: 'gradient' restart without objective values keeps no convergence theorem (the "
                         f"prior {prior_name} has no value()); use restart='none'")
            self._assumptions = self._report()

    def _theory_settings(self) -> dict[str, Any]:
        return {**super()._theory_settings(), "momentum": self.momentum, "restart": self.restart}

    def parameters(self) -> dict[str, Any]:
        return {**super().parameters(), "momentum": self.momentum, "restart": self.restart}

    def _monotone_expected(self) -> tuple[bool, str]:
        if self.guarded and self._assumptions.verdict == "guaranteed":
            return True, (f"FISTA with {self.restart} restart guarded by the objective (an increase is replaced by "
                          "a prox-gradient step with step <= 1/L) decreases the objective")
        return super()._monotone_expected()

    def init(self, x0: Tensor) -> FISTAState:
        return FISTAState(x=x0, z=x0, iteration=0, objective=self.objective(x0) if self.guarded else None)

    def forward_backward(self, v: Tensor) -> Tensor:
        """The prox-gradient step ``prox_{τg}(v − τ∇f(v))``."""
        return self._prox_g(v - self.step * self._grad_f(v), self.step)

    def verification_residual(self, state: FISTAState, fields: tuple[str, ...] = ("x",)) -> float:
        """The relative gradient mapping at the returned ``x`` (not at the extrapolated point ``z`` an
        update starts from), ``‖x − prox_(τg)(x − τ∇f(x))‖/‖x‖ · residual_scale()``: small changes of
        ``x`` under momentum do not make ``x`` stationary; this measures it (one extra prox-gradient step)."""
        from pnp.diagnostics import relative_residual

        with torch.no_grad():
            return relative_residual(self.forward_backward(state.x), state.x)[0] * self.residual_scale()

    def update(self, state: FISTAState) -> FISTAState:
        k = state.iteration + 1
        x = self.forward_backward(state.z)
        if self.restart != "none":
            return restarted_state(self, state, x, k)
        beta = (k - 1) / (k + self.momentum)
        z = x + beta * (x - state.x)
        return FISTAState(x=x, z=z, iteration=k)

    def history_entries(self, state: FISTAState) -> dict[str, float]:
        return {"restart": state.last_restart} if self.restart != "none" else {}

    def run_diagnostics(self, state: FISTAState) -> dict[str, Any]:
        return {} if self.restart == "none" else {"restart": restart_summary(self.restart, self.guarded, state)}
