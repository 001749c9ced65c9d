"""The proximal splittings ADMM, DRS and HQS (see :mod:`pnp.algorithms` for the table of iterations
and steps, and :mod:`pnp.split` for the split ``z = A x``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor


from pnp.assumptions import (
    DouglasRachford,
    HalfQuadratic,
)
from pnp.run import Algorithm
from pnp.split import _SplitLS, _curvature, _has_data_prox, _has_prox, _operator_norm_sq, _split_description


# ====================================================================== ADMM
class _ProxSplitting(Algorithm):
    """Shared parts of ADMM, DRS and HQS: they need the fidelity's prox and use the step
    gamma = 1/penalty, by default 1/L (or 1 when L is unknown)."""

    needs_fidelity_prox: ClassVar[bool] = True
    #: True when the data term runs through the split z = A x (set by _check_terms)
    split: bool = False

    def _check_terms(self) -> None:
        f = self.fidelity
        if not _has_prox(f) and _has_data_prox(f) and self.name in ("ADMM", "DRS"):
            self.split = True
            self._ls = _SplitLS(f)
            return
        if not _has_prox(f) and _has_data_prox(f):
            raise ValueError(f"fidelity: {self.name} needs fidelity.prox ({type(f).__name__} has has_prox=False); "
                             "use algorithm admm, drs or pdhg, which split z = A x")
        super()._check_terms()

    def _resolve_step(self, step: float | None) -> float:
        if step is not None:
            return step
        if self.L is not None and self.L > 0:
            return 1.0 / self.L
        c = _curvature(self.fidelity)
        if c is not None and getattr(self.fidelity, "operator", None) is not None:
            # the counterpart of 1/L for a data term without a Lipschitz gradient: its curvature at the
            # data times ‖A‖² (any step > 0 converges; this one balances the two terms)
            n2 = _operator_norm_sq(self.fidelity)
            return 1.0 / (c * n2) if n2 > 0 else 1.0 / c
        return 1.0

    def _theory_settings(self) -> dict[str, Any]:
        settings = super()._theory_settings()
        if self.split:
            settings["split"] = _split_description(self)
        return settings

    def parameters(self) -> dict[str, Any]:
        p = {**super().parameters(), "penalty": 1.0 / self.step}
        if self.split:
            p["split"] = "z = A x"
        return p


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


@dataclass(frozen=True)
class ADMMSplitState:
    """State of :class:`ADMM` with the split ``z = A x`` (a data term without a prox).

    ``x`` is the prior-side variable (the estimate), ``z`` the data-side variable (``≈ A x``),
    ``u`` and ``w`` the scaled duals of ``z = A x_ls`` and ``x = x_ls``, ``x_ls`` the solution of
    the last ``x``-step (a warm start when it is solved by conjugate gradient).
    """

    x: Tensor
    z: Tensor
    u: Tensor
    w: Tensor
    x_ls: Tensor
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

    A data term without a prox (Poisson behind a blur) runs through the split ``z = A x``
    (Figueiredo & Bioucas-Dias, IEEE Trans. Image Process. 19, 2010): ``min F(z) + g(v)`` s.t.
    ``(z, v) = (A x, x)``, i.e. ``x_ls = (AᵀA + I)⁻¹(Aᵀ(z − u) + x − w)``, then
    ``z⁺ = prox_{γF}(A x_ls + u)`` (closed form), ``x⁺ = prox_{γg}(x_ls + w)`` and the dual steps;
    the default ``γ`` is ``1/(c ‖A‖²)`` with ``c`` the data term's curvature at the data.

    >>> from operators import PoissonNLL, Poisson
    >>> truth = 0.2 + 0.6 * torch.rand(1, 1, 16, 16, dtype=torch.float64)
    >>> yp = Poisson(0.02).sample(A(truth), generator=torch.Generator().manual_seed(0))
    >>> admm = ADMM(PoissonNLL(A, yp, gain=0.02), 0.5 * Tikhonov())
    >>> admm.split, admm.run(progress=False, max_iter=2000).report.verdict
    (True, 'guaranteed')
    """

    name: ClassVar[str] = "ADMM"
    theory: ClassVar[DouglasRachford] = DouglasRachford(admm=True)
    anderson_fields: ClassVar[tuple[str, ...]] = ("x", "u")  # z = x + u is the Douglas-Rachford variable

    def _check_terms(self) -> None:
        super()._check_terms()
        if self.split:  # the Douglas-Rachford variable is (z + u, x + w)
            self.anderson_fields = ("x", "z", "u", "w")

    def init(self, x0: Tensor) -> ADMMState | ADMMSplitState:
        if self.split:
            with torch.no_grad():
                z0 = self.fidelity.operator(x0)
            return ADMMSplitState(x=x0, z=z0, u=torch.zeros_like(z0), w=torch.zeros_like(x0), x_ls=x0, iteration=0)
        return ADMMState(x=x0, x_data=x0, u=torch.zeros_like(x0), iteration=0)

    def _update_split(self, state: ADMMSplitState) -> ADMMSplitState:
        A, lam = self.fidelity.operator, self.relaxation
        with torch.no_grad():
            x_ls = self._ls.solve(A.adjoint(state.z - state.u) + (state.x - state.w), state.x_ls)
            ax = A(x_ls)
        # over-relaxation (Eckstein & Bertsekas 1992) on both blocks of the constraint
        a = ax if lam == 1.0 else lam * ax + (1.0 - lam) * state.z
        b = x_ls if lam == 1.0 else lam * x_ls + (1.0 - lam) * state.x
        z = self.fidelity.data_prox(a + state.u, self.step)
        x = self._prox_g(b + state.w, self.step)
        return ADMMSplitState(x=x, z=z, u=state.u + a - z, w=state.w + b - x, x_ls=x_ls,
                              iteration=state.iteration + 1)

    def update(self, state: ADMMState | ADMMSplitState) -> ADMMState | ADMMSplitState:
        if self.split:
            return self._update_split(state)
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


@dataclass(frozen=True)
class DRSSplitState:
    """State of :class:`DRS` with the split ``z = A x``: the governing pair ``(z, z_data)`` (image and
    data parts), the estimate ``x = prox_{γg}(z)`` and the last graph projection ``x_ls`` (warm start)."""

    z: Tensor
    z_data: Tensor
    x: Tensor
    x_ls: Tensor
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

    A data term without a prox runs through the split ``z = A x``: Douglas–Rachford on the pairs
    ``(x, z)`` with ``g(x) + F(z)`` (separable prox) and the indicator of the graph ``z = A x``,
    whose prox is the projection ``x_p = (I + AᵀA)⁻¹(a + Aᵀb)``, ``z_p = A x_p`` (graph projection
    splitting: Parikh & Boyd, Proximal Algorithms, 2014, §4.4; O'Connor & Vandenberghe, SIAM J.
    Imaging Sci. 7, 2014).
    """

    name: ClassVar[str] = "DRS"
    theory: ClassVar[DouglasRachford] = DouglasRachford()
    anderson_fields: ClassVar[tuple[str, ...]] = ("z",)

    def _check_terms(self) -> None:
        super()._check_terms()
        if self.split:
            self.anderson_fields = ("z", "z_data")

    def init(self, x0: Tensor) -> DRSState | DRSSplitState:
        if self.split:
            with torch.no_grad():
                z_data = self.fidelity.operator(x0)
            return DRSSplitState(z=x0, z_data=z_data, x=x0, x_ls=x0, iteration=0)
        return DRSState(z=x0, x=x0, iteration=0)

    def _update_split(self, state: DRSSplitState) -> DRSSplitState:
        A = self.fidelity.operator
        x = self._prox_g(state.z, self.step)  # prox of g(x) + F(z), block by block
        v = self.fidelity.data_prox(state.z_data, self.step)
        a, b = 2.0 * x - state.z, 2.0 * v - state.z_data  # reflection, then projection onto z = A x
        with torch.no_grad():
            x_ls = self._ls.solve(a + A.adjoint(b), state.x_ls)
            ax = A(x_ls)
        lam = self.relaxation
        return DRSSplitState(z=state.z + lam * (x_ls - x), z_data=state.z_data + lam * (ax - v), x=x, x_ls=x_ls,
                             iteration=state.iteration + 1)

    def update(self, state: DRSState | DRSSplitState) -> DRSState | DRSSplitState:
        if self.split:
            return self._update_split(state)
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
    # (a data term with a prox only in z = A x is refused with the fix: admm, drs or pdhg)

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
