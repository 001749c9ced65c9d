"""The primal-dual hybrid gradient (Chambolle-Pock; Condat-Vu with a smooth prior); see
:mod:`pnp.algorithms`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor


from pnp.assumptions import (
    AssumptionReport,
    Hypothesis,
    PrimalDual,
    withdraw,
)
from pnp.inexact import is_inexact
from pnp.linear_part import linear_part_of
from pnp.run import Algorithm, _check_prior
from pnp.split import _curvature, _operator_norm_sq, split_form


# ====================================================================== PDHG
@dataclass(frozen=True)
class PDHGState:
    """State of :class:`PDHG`: primal ``x``, extrapolation ``x_bar``, dual ``p``."""

    x: Tensor
    x_bar: Tensor
    p: Tensor
    iteration: int = 0


@dataclass(frozen=True)
class PDHGSplitState:
    """State of :class:`PDHG` with the split ``z = A x``: primal ``x``, extrapolation ``x_bar``, the data
    term's dual ``p`` (shape of ``y``) and the prior's dual ``q`` (None unless the prior has a linear part)."""

    x: Tensor
    x_bar: Tensor
    p: Tensor
    q: Tensor | None = None
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

    A data term without a Lipschitz gradient (Poisson) runs through the split ``z = A x``
    (:func:`split_form`): ``min_x F(A x) + g(x)`` with ``F`` in the dual, ``prox_{σF*}`` by Moreau's
    identity from the closed-form ``prox_F``. The prior keeps its own block: a linear part
    ``h(K x)`` (TV) a second dual block, a smooth prior its gradient in the primal step
    (Condat, JOTA 158, 2013, Thm 3.1; Vũ, Adv. Comput. Math. 38, 2013), any other its prox::

        p⁺ = prox_{σF*}(p + σ A x̄),  q⁺ = prox_{σ_K h*}(q + σ_K K x̄),
        x⁺ = prox_{τg}(x − τ(∇g_s(x) + Aᵀp⁺ + Kᵀq⁺)),  x̄⁺ = 2x⁺ − x

    (Condat's order, primal step first, up to the labelling of the dual sequence).

    Defaults: ``σ = c`` (the data term's curvature at the data, ``fidelity.data_curvature()``),
    ``σ_K = σ ‖A‖²/‖K‖²``, ``τ = 0.99 / (σ‖A‖² + σ_K‖K‖² + L_g/2)``; the theorem's condition is
    ``1/τ − σ‖A‖² − σ_K‖K‖² > L_g/2`` (per-block dual steps are one step on the rescaled stack
    ``[A; (σ_K/σ)^½ K]``).

    >>> from operators import PoissonNLL, Poisson
    >>> yp = Poisson(0.02).sample(A(0.2 + 0.6 * torch.rand(1, 1, 16, 16, dtype=torch.float64)),
    ...                           generator=torch.Generator().manual_seed(0))
    >>> pd = PDHG(PoissonNLL(A, yp, gain=0.02), 1.0 * TV())
    >>> pd.split, pd.prior_block, pd.run(progress=False, max_iter=3000).report.verdict
    (True, 'dual', 'guaranteed')
    """

    name: ClassVar[str] = "PDHG"
    theory: ClassVar[PrimalDual] = PrimalDual()
    needs_fidelity_prox: ClassVar[bool] = True
    supports_relaxation: ClassVar[bool] = False
    #: True when the data term runs through the split z = A x (set by _check_terms)
    split: bool = False
    #: how the prior enters the split iteration: "dual" (linear part), "gradient" (smooth), "prox"
    prior_block: str = ""

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
        self.prior_dual_step: float | None = None
        self.smooth_lipschitz: float | None = None
        super().__init__(problem_or_fidelity, prior, step=step, relaxation=relaxation, unsafe=unsafe)

    def _check_terms(self) -> None:
        f = self.fidelity
        if split_form(f, self.name):
            self.split = True
            prior = self.prior
            if callable(getattr(prior, "linear_part", None)):
                self.prior_block = "dual"
            elif (getattr(prior, "smooth", False) and callable(getattr(prior, "grad", None))
                  and callable(getattr(prior, "lipschitz_grad", None))):
                self.prior_block = "gradient"
            else:
                self.prior_block = "prox"
            return
        super()._check_terms()

    def _resolve_split_step(self, step: float | None) -> float:
        """Steps of the split iteration (see the class docstring) and the theorem's condition."""
        f = self.fidelity
        nA2 = _operator_norm_sq(f)
        nK2 = self.linear.norm_sq if self.prior_block == "dual" else 0.0
        Lg = float(self.prior.lipschitz_grad()) if self.prior_block == "gradient" else 0.0
        self.smooth_lipschitz = Lg if self.prior_block == "gradient" else None
        share = 2.0 if self.prior_block == "dual" else 1.0  # sigma_K ‖K‖² = sigma ‖A‖²
        sigma = self._dual_given
        if sigma is None and step is None:
            sigma = _curvature(f) or 1.0
        if sigma is None:
            room = 1.0 / step - Lg / 2.0
            if not room > 0:
                self._refuse(f"step: tau = {step:g} leaves no room for a dual step: 1/tau <= L_g/2 = {Lg / 2:g} "
                             "(the prior's gradient); use a smaller step")
                room = 1.0 / step
            sigma = 0.99 * room / (share * nA2)
        if step is None:
            step = 0.99 / (share * sigma * nA2 + Lg / 2.0)
        self.dual_step = float(sigma)
        self.prior_dual_step = sigma * nA2 / nK2 if self.prior_block == "dual" and nK2 > 0 else None
        self._stack_norm_sq = nA2 + ((self.prior_dual_step / sigma) * nK2 if self.prior_dual_step else 0.0)
        if not self.theory.admits(step, self.dual_step, self._stack_norm_sq, Lg):
            self._refuse(f"step: 1/tau - sigma*‖K‖² = {1 / step:g} - {self.dual_step:g}*{self._stack_norm_sq:g} is "
                         f"not above L_g/2 = {Lg / 2:g}, the primal-dual convergence bound")
        return step

    def _resolve_step(self, step: float | None) -> float:
        if self.split:
            return self._resolve_split_step(step)
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
        if self.split:
            if self.prior_block == "dual":
                how = (f"prior through its own dual block ({self.linear.description}), "
                       f"dual step {self.prior_dual_step:.4g}")
            elif self.prior_block == "gradient":
                how = f"prior through its gradient (Lipschitz {self.smooth_lipschitz:.4g})"
            else:
                how = "prior through its prox in the primal step"
            return {**super()._theory_settings(), "dual_step": self.dual_step, "op_norm_sq": self._stack_norm_sq,
                    "smooth_lipschitz": self.smooth_lipschitz,
                    "split": (f"data term {type(self.fidelity).__name__} in the dual through z = A x (prox of F* by "
                              f"Moreau's identity from the closed-form prox of F); {how}")}
        return {**super()._theory_settings(), "dual_step": self.dual_step, "op_norm_sq": self.linear.norm_sq}

    def _report(self) -> AssumptionReport:
        report = super()._report()
        if self.split:
            return report
        if self.linear.identity and is_inexact(self.prior):
            # Moreau's identity would call the iterative prox with errors nobody bounds
            report = withdraw(report, Hypothesis(
                "inner prox errors summable", False,
                f"PDHG reaches the {getattr(self.prior, 'name', 'prior')} prox through Moreau's identity (K = I) and "
                "does not drive its inner errors; use PGD, FISTA, ADMM, DRS or HQS, which do"))
        return report

    def parameters(self) -> dict[str, Any]:
        if self.split:
            return {**super().parameters(), "dual_step": self.dual_step, "prior_dual_step": self.prior_dual_step,
                    "stack_norm_sq": self._stack_norm_sq, "smooth_lipschitz": self.smooth_lipschitz,
                    "split": "z = A x", "prior_block": self.prior_block}
        return {**super().parameters(), "dual_step": self.dual_step, "K_norm_sq": self.linear.norm_sq,
                "K": self.linear.description}

    def init(self, x0: Tensor) -> PDHGState | PDHGSplitState:
        if self.split:
            with torch.no_grad():  # A x0 and K x0 only give the dual variables their shapes
                p0 = torch.zeros_like(self.fidelity.operator(x0))
                q0 = torch.zeros_like(self.linear.forward(x0)) if self.prior_block == "dual" else None
            return PDHGSplitState(x=x0, x_bar=x0, p=p0, q=q0, iteration=0)
        with torch.no_grad():  # K x0 only gives the dual variable its shape
            p0 = torch.zeros_like(self.linear.forward(x0))
        return PDHGState(x=x0, x_bar=x0, p=p0, iteration=0)

    def _update_split(self, state: PDHGSplitState) -> PDHGSplitState:
        A, K, tau = self.fidelity.operator, self.linear, self.step
        with torch.no_grad():
            p = self.fidelity.data_prox_conj(state.p + self.dual_step * A(state.x_bar), self.dual_step)
            direction = A.adjoint(p)
            q = None
            if state.q is not None:
                q = K.prox_conj(state.q + self.prior_dual_step * K.forward(state.x_bar), self.prior_dual_step)
                direction = direction + K.adjoint(q)
            if self.prior_block == "gradient":
                direction = direction + self.prior.grad(state.x)
        v = state.x - tau * direction
        x = self._prox_g(v, tau) if self.prior_block == "prox" else v
        return PDHGSplitState(x=x, x_bar=2.0 * x - state.x, p=p, q=q, iteration=state.iteration + 1)

    def update(self, state: PDHGState | PDHGSplitState) -> PDHGState | PDHGSplitState:
        if self.split:
            return self._update_split(state)
        K = self.linear
        with torch.no_grad():
            p = K.prox_conj(state.p + self.dual_step * K.forward(state.x_bar), self.dual_step)
        x = self._prox_f(state.x - self.step * K.adjoint(p), self.step)
        return PDHGState(x=x, x_bar=2.0 * x - state.x, p=p, iteration=state.iteration + 1)
