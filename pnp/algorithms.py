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
the ADMM/DRS/HQS default is ``γ = 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from priors.tv import FiniteDifference  # TV's difference operator, re-exported as pnp.FiniteDifference

from pnp.assumptions import (
    AcceleratedForwardBackward,
    AssumptionReport,
    DouglasRachford,
    ForwardBackward,
    HalfQuadratic,
    Hypothesis,
    PrimalDual,
    withdraw,
)
from pnp.inexact import is_inexact
from pnp.linear_part import LinearPart, linear_part_of
from pnp.restart import RESTART_NONE, RESTARTS, check_restart, restart_summary, restarted_state
from pnp.run import Algorithm, _check_prior

__all__ = [
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
    "LinearPart",
    "FiniteDifference",
    "linear_part_of",
]


# ====================================================================== PGD
class _GradientMethod(Algorithm):
    """Shared step rule of PGD and FISTA: default ``1/L``; a step outside the bound declared by
    the class's theory (``theory.step_bound``) is refused unless ``unsafe``."""

    needs_grad: ClassVar[bool] = True
    absorbs_smooth_prior: ClassVar[bool] = True

    def _resolve_step(self, step: float | None) -> float:
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


# ====================================================================== ADMM
class _ProxSplitting(Algorithm):
    """Shared parts of ADMM, DRS and HQS: they need the fidelity's prox and use the step
    gamma = 1/penalty, by default 1/L (or 1 when L is unknown)."""

    needs_fidelity_prox: ClassVar[bool] = True

    def _resolve_step(self, step: float | None) -> float:
        if step is not None:
            return step
        return 1.0 / self.L if self.L is not None and self.L > 0 else 1.0

    def parameters(self) -> dict[str, Any]:
        return {**super().parameters(), "penalty": 1.0 / self.step}


@dataclass(frozen=True)
class ADMMState:
    """State of :class:`ADMM`.

    ``x`` is the prior-side variable (the estimate), ``x_data`` the fidelity-side variable
    and ``u`` the scaled dual variable.
    """

    x: Tensor
    x_data: Tensor
    u: Tensor
    iteration: int = 0


class ADMM(_ProxSplitting):
    """ADMM (scaled form) for ``min f(v) + g(x)`` s.t. ``v = x``, with over-relaxation.

    ``v⁺ = prox_{γ f}(x − u)``, ``v̂ = λ v⁺ + (1 − λ) x``, ``x⁺ = prox_{γ g}(v̂ + u)``,
    ``u⁺ = u + v̂ − x⁺``. The penalty parameter is ``ρ = 1/γ``; ``λ ∈ (0, 2)``
    (Eckstein & Bertsekas 1992). With a denoiser prior this is PnP-ADMM, which needs a
    firmly nonexpansive denoiser (see :meth:`check_assumptions`).

    Parameters
    ----------
    problem_or_fidelity : InverseProblem or DataFidelity
        Needs ``fidelity.prox``.
    prior : Prior
        Regulariser or ``DenoiserPrior``.
    step : float, optional
        ``γ = 1/ρ``; default ``1/L`` (``1`` when ``L`` is unknown). Any ``γ > 0`` converges in
        the convex case; it changes the speed, not the limit.
    relaxation : float
        Over-relaxation ``λ ∈ (0, 2)``.
    unsafe : bool
        Run out-of-range relaxations (the result is flagged).

    Examples
    --------
    >>> import torch
    >>> from operators import Blur, kernels
    >>> from operators.fidelity import L2Fidelity
    >>> from priors.classical import Tikhonov
    >>> A = Blur(kernels.gaussian(1.0))
    >>> y = A(torch.rand(1, 1, 16, 16, dtype=torch.float64))
    >>> ADMM(L2Fidelity(A, y), 0.1 * Tikhonov(), step=1.0).run(progress=False).converged
    True
    """

    name: ClassVar[str] = "ADMM"
    theory: ClassVar[DouglasRachford] = DouglasRachford(admm=True)
    anderson_fields: ClassVar[tuple[str, ...]] = ("x", "u")  # z = x + u is the Douglas-Rachford variable

    def init(self, x0: Tensor) -> ADMMState:
        return ADMMState(x=x0, x_data=x0, u=torch.zeros_like(x0), iteration=0)

    def update(self, state: ADMMState) -> ADMMState:
        v = self._prox_f(state.x - state.u, self.step)
        v_hat = v if self.relaxation == 1.0 else self.relaxation * v + (1.0 - self.relaxation) * state.x
        x = self._prox_g(v_hat + state.u, self.step)
        u = state.u + v_hat - x
        return ADMMState(x=x, x_data=v, u=u, iteration=state.iteration + 1)


# ====================================================================== DRS
@dataclass(frozen=True)
class DRSState:
    """State of :class:`DRS`: governing sequence ``z`` and estimate ``x = prox_{γg}(2prox_{γf}(z) − z)``."""

    z: Tensor
    x: Tensor
    iteration: int = 0


class DRS(_ProxSplitting):
    """Douglas–Rachford splitting with relaxation.

    ``v = prox_{γ f}(z)``, ``x = prox_{γ g}(2v − z)``, ``z⁺ = z + λ (x − v)``. The map
    ``z ↦ z + (x − v)`` is ``(I + R_g R_f)/2``, firmly nonexpansive when both reflections are
    nonexpansive, so ``λ ∈ (0, 2)`` (Lions & Mercier 1979; Bauschke & Combettes 2017,
    Thm 26.11). With a denoiser this is PnP-DRS (needs ``alpha <= 1/2``; Ryu et al. 2019).

    Parameters
    ----------
    problem_or_fidelity : InverseProblem or DataFidelity
        Needs ``fidelity.prox``.
    prior : Prior
        Regulariser or ``DenoiserPrior``.
    step : float, optional
        ``γ``; default ``1/L`` (``1`` when ``L`` is unknown).
    relaxation : float
        ``λ ∈ (0, 2)``.
    unsafe : bool
        Run out-of-range relaxations (the result is flagged).

    Examples
    --------
    >>> import torch
    >>> from operators import Blur, kernels
    >>> from operators.fidelity import L2Fidelity
    >>> from priors.classical import Tikhonov
    >>> A = Blur(kernels.gaussian(1.0))
    >>> y = A(torch.rand(1, 1, 16, 16, dtype=torch.float64))
    >>> DRS(L2Fidelity(A, y), 0.1 * Tikhonov(), step=1.0).run(progress=False).converged
    True
    """

    name: ClassVar[str] = "DRS"
    theory: ClassVar[DouglasRachford] = DouglasRachford()
    anderson_fields: ClassVar[tuple[str, ...]] = ("z",)

    def init(self, x0: Tensor) -> DRSState:
        return DRSState(z=x0, x=x0, iteration=0)

    def update(self, state: DRSState) -> DRSState:
        v = self._prox_f(state.z, self.step)
        x = self._prox_g(2.0 * v - state.z, self.step)
        z = state.z + self.relaxation * (x - v)
        return DRSState(z=z, x=x, iteration=state.iteration + 1)


# ====================================================================== HQS
@dataclass(frozen=True)
class HQSState:
    """State of :class:`HQS`: estimate ``x`` (prior side) and ``x_data = prox_{γf}(x)``."""

    x: Tensor
    x_data: Tensor
    iteration: int = 0


class HQS(_ProxSplitting):
    """Half-quadratic splitting with a fixed penalty: ``x⁺ = x + λ (prox_{γ g}(prox_{γ f}(x)) − x)``.

    With a fixed ``γ`` this is alternating minimisation of ``f(v) + g(x) + ‖v − x‖²/(2γ)``,
    i.e. forward–backward on ``g`` plus the Moreau envelope of ``f``: it converges to a
    minimiser of that penalised problem, which approaches ``min f + g`` as ``γ → 0``.

    Parameters
    ----------
    problem_or_fidelity : InverseProblem or DataFidelity
        Needs ``fidelity.prox``.
    prior : Prior
        Regulariser or ``DenoiserPrior``.
    step : float, optional
        ``γ`` (``1/penalty``); default ``1/L`` (``1`` when ``L`` is unknown).
    relaxation : float
        KM relaxation ``λ ∈ (0, 1/alpha)``.
    unsafe : bool
        Run out-of-range relaxations (the result is flagged).

    Examples
    --------
    >>> import torch
    >>> from operators import Blur, kernels
    >>> from operators.fidelity import L2Fidelity
    >>> from priors.classical import Tikhonov
    >>> A = Blur(kernels.gaussian(1.0))
    >>> y = A(torch.rand(1, 1, 16, 16, dtype=torch.float64))
    >>> HQS(L2Fidelity(A, y), 0.1 * Tikhonov(), step=1.0).run(progress=False).status
    'converged'
    """

    name: ClassVar[str] = "HQS"
    theory: ClassVar[HalfQuadratic] = HalfQuadratic()
    anderson_fields: ClassVar[tuple[str, ...]] = ("x",)

    def denoiser_input(self, x: Tensor) -> Tensor:
        """``prox_{γf}(x)``, the input of the prior's prox."""
        return self._prox_f(x, self.step)

    def init(self, x0: Tensor) -> HQSState:
        return HQSState(x=x0, x_data=x0, iteration=0)

    def update(self, state: HQSState) -> HQSState:
        v = self._prox_f(state.x, self.step)
        x = self._prox_g(v, self.step)
        if self.relaxation != 1.0:
            x = state.x + self.relaxation * (x - state.x)
        return HQSState(x=x, x_data=v, iteration=state.iteration + 1)


# ====================================================================== PDHG
@dataclass(frozen=True)
class PDHGState:
    """State of :class:`PDHG`: primal ``x``, extrapolation ``x_bar``, dual ``p``."""

    x: Tensor
    x_bar: Tensor
    p: Tensor
    iteration: int = 0


class PDHG(Algorithm):
    """Primal–dual hybrid gradient (Chambolle–Pock, θ = 1) for ``f(x) + h(K x)``.

    ``p⁺ = prox_{σ h*}(p + σ K x̄)``, ``x⁺ = prox_{τ f}(x − τ Kᵀ p⁺)``, ``x̄⁺ = 2x⁺ − x``.
    Converges for convex ``f``, ``h`` when ``τ σ ‖K‖² < 1`` (Chambolle & Pock 2011, Thm 1).
    For TV, ``K`` is the finite-difference gradient (``‖K‖² <= 8``) and ``prox_{σ h*}`` a
    pointwise projection — no inner TV-prox iterations. See :func:`linear_part_of` for how
    ``K`` is obtained from the prior.

    Parameters
    ----------
    problem_or_fidelity : InverseProblem or DataFidelity
        Needs ``fidelity.prox``.
    prior : Prior
        Convex prior (``TV``, anything with ``linear_part()``, or any prox via ``K = I``).
    step : float, optional
        Primal step ``τ``; default ``0.99/‖K‖`` (or ``0.99/(σ‖K‖²)`` when only ``dual_step`` is given).
    dual_step : float, optional
        Dual step ``σ``; default ``0.99/‖K‖`` (or ``0.99/(τ‖K‖²)`` when only ``step`` is given).
    unsafe : bool
        Run with ``τσ‖K‖² >= 1`` (the result is flagged).

    Examples
    --------
    >>> import torch
    >>> from operators import Blur, kernels
    >>> from operators.fidelity import L2Fidelity
    >>> from priors.classical import TV
    >>> A = Blur(kernels.gaussian(1.0))
    >>> y = A(torch.rand(1, 1, 16, 16, dtype=torch.float64))
    >>> PDHG(L2Fidelity(A, y), 0.01 * TV()).run(progress=False, max_iter=2000).converged
    True
    """

    name: ClassVar[str] = "PDHG"
    theory: ClassVar[PrimalDual] = PrimalDual()
    needs_fidelity_prox: ClassVar[bool] = True
    supports_relaxation: ClassVar[bool] = False

    def __init__(
        self,
        problem_or_fidelity: Any,
        prior: Any,
        *,
        step: float | None = None,
        dual_step: float | None = None,
        relaxation: float = 1.0,
        unsafe: bool = False,
    ) -> None:
        self.linear = linear_part_of(_check_prior(prior))
        if dual_step is not None:
            if isinstance(dual_step, bool) or not isinstance(dual_step, (int, float)) or not (
                math.isfinite(dual_step) and dual_step > 0
            ):
                raise ValueError(f"dual_step must be a finite positive number, got {dual_step!r}")
        self._dual_given = None if dual_step is None else float(dual_step)
        self.dual_step: float = 0.0
        super().__init__(problem_or_fidelity, prior, step=step, relaxation=relaxation, unsafe=unsafe)

    def _resolve_step(self, step: float | None) -> float:
        n2 = self.linear.norm_sq
        nK = math.sqrt(n2)
        sigma = self._dual_given
        if step is None and sigma is None:
            step = sigma = 0.99 / nK
        elif step is None:
            step = 0.99 / (sigma * n2)
        elif sigma is None:
            sigma = 0.99 / (step * n2)
        self.dual_step = float(sigma)
        if not self.theory.admits(step, self.dual_step, n2):
            prod = step * self.dual_step * n2
            self._refuse(f"step: tau*sigma*‖K‖² = {step:g}*{self.dual_step:g}*{n2:g} = {prod:g} is not below the "
                         f"PDHG convergence bound 1")
        return step

    def _theory_settings(self) -> dict[str, Any]:
        return {**super()._theory_settings(), "dual_step": self.dual_step, "op_norm_sq": self.linear.norm_sq}

    def _report(self) -> AssumptionReport:
        report = super()._report()
        if self.linear.identity and is_inexact(self.prior):
            # Moreau's identity would call the iterative prox with errors nobody bounds
            report = withdraw(report, Hypothesis(
                "inner prox errors summable", False,
                f"PDHG reaches the {getattr(self.prior, 'name', 'prior')} prox through Moreau's identity (K = I) and "
                "does not drive its inner errors; use PGD, FISTA, ADMM, DRS or HQS, which do"))
        return report

    def parameters(self) -> dict[str, Any]:
        return {**super().parameters(), "dual_step": self.dual_step, "K_norm_sq": self.linear.norm_sq,
                "K": self.linear.description}

    def init(self, x0: Tensor) -> PDHGState:
        with torch.no_grad():  # K x0 only gives the dual variable its shape
            p0 = torch.zeros_like(self.linear.forward(x0))
        return PDHGState(x=x0, x_bar=x0, p=p0, iteration=0)

    def update(self, state: PDHGState) -> PDHGState:
        K = self.linear
        with torch.no_grad():
            p = K.prox_conj(state.p + self.dual_step * K.forward(state.x_bar), self.dual_step)
        x = self._prox_f(state.x - self.step * K.adjoint(p), self.step)
        return PDHGState(x=x, x_bar=2.0 * x - state.x, p=p, iteration=state.iteration + 1)
