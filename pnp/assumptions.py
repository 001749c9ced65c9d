"""Which convergence theorem applies to a run, and whether its hypotheses hold.

:func:`check_assumptions` reads the *declared* properties of the two terms — the data
fidelity (convexity, Lipschitz constant of its gradient ``L``, availability of its prox)
and the prior (convex with a prox, or a denoiser with a :class:`priors.base.Certificate`
giving a Lipschitz bound and an averagedness constant ``alpha``) — together with the
algorithm's step and relaxation, and returns an :class:`AssumptionReport` with a verdict:

``"guaranteed"``
    a theorem applies and every one of its hypotheses holds;
``"not guaranteed"``
    a theorem would apply but at least one hypothesis fails (the reason names it);
``"no guarantee"``
    no convergence theorem is known for this combination (for example a denoiser without
    a certificate, or FISTA with a plug-in denoiser). Never a silent pass.

Each algorithm class owns its theorem: its ``theory`` attribute is a :class:`Theory`
(:class:`ForwardBackward`, :class:`AcceleratedForwardBackward`, :class:`DouglasRachford`,
:class:`HalfQuadratic`, :class:`PrimalDual`) that writes the report and carries the step bound the
algorithm enforces; :func:`check_assumptions` finds it by the class's ``name``.

Hypotheses fail closed. The data term's operator enters every theorem as a linear map with its
adjoint: it is tested (:meth:`operators.base.LinearOperator.check_linearity`, randomised, tolerance
``1000 eps`` of the dtype) unless its class is verified by the project's tests, and a failure gives
"no guarantee" naming the test. A subclass that overrides ``update()`` without declaring its own
``theory`` runs another iteration than its parent's theorem covers: "no guarantee"
(:func:`update_override`).

Layout: the report types live in :mod:`pnp.assumptions_report`, the term descriptions, shared
hypotheses and the :class:`Theory` base in :mod:`pnp.assumptions_terms`, the theorems in
:mod:`pnp.assumptions_rules`, the name registry in :mod:`pnp.assumptions_registry`; this module
re-exports them and holds the lookup by name.

The facts used (see ``shared/MATH.md``):

* prox of a proper convex lsc function is firmly nonexpansive, i.e. 1/2-averaged
  (Bauschke & Combettes 2017, Prop. 12.28);
* for convex ``f`` with ``L``-Lipschitz gradient and ``τ ∈ (0, 2/L)``, ``I − τ∇f`` is
  ``τL/2``-averaged (∇f is 1/L-cocoercive by the Baillon–Haddad theorem; Bauschke &
  Combettes 2017, Ch. 4 and 18);
* composition of an ``a1``- and an ``a2``-averaged map is averaged with
  ``alpha = (a1 + a2 − 2 a1 a2) / (1 − a1 a2)`` (Combettes & Yamada, J. Math. Anal. Appl.
  425, 2015);
* Krasnosel'skii–Mann: an ``alpha``-averaged map with a fixed point, relaxed with
  ``λ ∈ (0, 1/alpha)``, has iterates converging to a fixed point (Bauschke & Combettes
  2017, Prop. 5.16);
* Douglas–Rachford for two maximally monotone operators (Lions & Mercier 1979; Bauschke &
  Combettes 2017, Thm 26.11); a firmly nonexpansive map defined everywhere is the
  resolvent of a maximally monotone operator (Bauschke & Combettes 2017, Ch. 23), which is
  why PnP-ADMM/DRS need ``alpha <= 1/2`` (Ryu et al., ICML 2019, discuss PnP-ADMM/DRS
  convergence with properly trained denoisers).
"""

from __future__ import annotations

from typing import Any

from pnp.assumptions_registry import algorithm_named, register_entry, theories
from pnp.assumptions_report import VERDICTS, AssumptionReport, Hypothesis, compose_alpha, withdraw
from pnp.assumptions_rules import (
    AcceleratedForwardBackward,
    DouglasRachford,
    ForwardBackward,
    HalfQuadratic,
    PrimalDual,
)
from pnp.assumptions_terms import (
    UPDATE_HYPOTHESIS,
    RunSettings,
    StepBound,
    Theory,
    describe_fidelity,
    describe_prior,
    no_theorem_report,
    operator_hypothesis,
    update_override,
)

__all__ = [
    "Hypothesis",
    "AssumptionReport",
    "check_assumptions",
    "register_theory",
    "Theory",
    "StepBound",
    "RunSettings",
    "ForwardBackward",
    "AcceleratedForwardBackward",
    "DouglasRachford",
    "HalfQuadratic",
    "PrimalDual",
    "compose_alpha",
    "withdraw",
    "VERDICTS",
    "operator_hypothesis",
    "update_override",
    "update_hypothesis_report",
]


def update_hypothesis_report(cls: type, name: str, unsafe: bool = False) -> AssumptionReport | None:
    """"no guarantee" for an algorithm class that overrides ``update()`` without its own theory, else None."""
    why = update_override(cls)
    if why is None:
        return None
    return no_theorem_report(name, Hypothesis(UPDATE_HYPOTHESIS, False, why), unsafe=unsafe)


def register_theory(name: str, theory: Theory) -> None:
    """Let :func:`check_assumptions` find ``theory`` under ``name`` (case-insensitive).

    Every :class:`pnp.run.Algorithm` subclass that sets ``name`` and ``theory`` is registered
    when it is defined; a later class of the same name replaces the earlier one.
    """
    if not isinstance(theory, Theory):
        raise TypeError(f"theory must be a pnp.assumptions.Theory, got {type(theory).__name__}")
    register_entry(name, theory)


def check_assumptions(
    algorithm: str,
    fidelity: Any,
    prior: Any,
    *,
    step: float,
    relaxation: float = 1.0,
    L: float | None = None,
    dual_step: float | None = None,
    op_norm_sq: float | None = None,
    momentum: float = 3.0,
    unsafe: bool = False,
    restart: str = "none",
    split: str | None = None,
    smooth_lipschitz: float | None = None,
) -> AssumptionReport:
    """Report which convergence theorem applies to ``algorithm`` on ``f + g`` and whether it holds.

    Parameters
    ----------
    algorithm : str
        The ``name`` of an algorithm class, any case: ``"PGD"``, ``"FISTA"``, ``"ADMM"``, ``"DRS"``,
        ``"HQS"``, ``"PDHG"`` or one defined elsewhere. Its class's :class:`Theory` makes the report
        (this function is the lookup by name; an algorithm instance calls its theory directly).
    fidelity : DataFidelity
        Data term; read: ``convex`` (default True), ``lipschitz_grad()``, ``grad``, ``prox``,
        ``has_prox``, ``smooth``, ``operator.has_closed_form_normal``.
    prior : Prior
        Prior; read: ``convex``, ``exact_prox``, ``certificate()``.
    step : float
        Gradient step (PGD/FISTA), prox parameter ``1/penalty`` (ADMM/DRS/HQS) or primal step
        ``tau`` (PDHG).
    relaxation : float
        Krasnosel'skii–Mann relaxation ``λ``.
    L : float, optional
        Lipschitz constant of ``∇f`` when already known (otherwise ``fidelity.lipschitz_grad()``).
    dual_step, op_norm_sq : float, optional
        PDHG dual step ``sigma`` and an upper bound of ``‖K‖²``.
    momentum : float
        FISTA parameter ``a`` (Chambolle–Dossal).
    restart : {"none", "gradient", "function"}
        FISTA's adaptive restart scheme (:mod:`pnp.restart`).
    split : str, optional
        How ADMM / DRS / PDHG run the data term through ``z = A x`` (a description; by default ADMM and
        DRS split a data term without a prox that has one in ``z``, see :func:`pnp.algorithms.split_form`).
    smooth_lipschitz : float, optional
        PDHG with the split: Lipschitz constant of the prior's gradient when the iteration takes it.
    unsafe : bool
        Whether the algorithm runs with ``unsafe=True`` (recorded in the report).

    Returns
    -------
    AssumptionReport

    Examples
    --------
    >>> class F:  # a stand-in L2 fidelity with ‖A‖ = 1
    ...     convex = True
    ...     def lipschitz_grad(self): return 1.0
    ...     def grad(self, x): return x
    ...     def prox(self, v, tau): return v
    >>> class G:
    ...     name, convex, exact_prox = "l1", True, True
    >>> check_assumptions("PGD", F(), G(), step=1.0).verdict
    'guaranteed'
    """
    entry = theories().get(str(algorithm).upper())
    if entry is None:
        raise ValueError(f"algorithm must be one of {', '.join(n for n, _ in theories().values())}, got {algorithm!r}")
    name, theory = entry
    cls = algorithm_named(name)
    overridden = None if cls is None else update_hypothesis_report(cls, name, unsafe)
    if overridden is not None:  # the class registered under this name runs another iteration
        return overridden
    return theory.assess(name, fidelity, prior, step=step, relaxation=relaxation, L=L, dual_step=dual_step,
                         op_norm_sq=op_norm_sq, momentum=momentum, unsafe=unsafe, restart=restart, split=split,
                         smooth_lipschitz=smooth_lipschitz)

