"""Proximal and Plug-and-Play algorithms with convergence checks.

>>> from pnp import PGD, FISTA, ADMM, DRS, HQS, PDHG          # doctest: +SKIP
>>> result = PGD(problem, 0.01 * TV()).run()                  # doctest: +SKIP
>>> result.status, result.report.verdict, result.history["residual"][-1]   # doctest: +SKIP
"""

from pnp.algorithms import (
    ADMM,
    DRS,
    FISTA,
    HQS,
    PDHG,
    PGD,
    ADMMState,
    DRSState,
    FISTAState,
    FiniteDifference,
    HQSState,
    LinearPart,
    PDHGState,
    PGDState,
    linear_part_of,
)
from pnp.acceleration import Anderson, AndersonState
from pnp.assumptions import VERDICTS, AssumptionReport, Hypothesis, check_assumptions, compose_alpha
from pnp.diagnostics import DivergenceMonitor, DivergenceReport, MonotonicityReport
from pnp.result import STATUSES, Result
from pnp.run import Algorithm
from pnp.stopping import AllOf, AnyOf, IterationInfo, MaxIter, MinIter, StoppingCriterion, TimeLimit, Tolerance

from pnp.registry import ALGORITHM_CLASSES as ALGORITHMS
from pnp.registry import register_algorithm, register_prior

# ALGORITHMS: algorithm classes by lower-case name, a live view of pnp.registry.ALGORITHMS

__all__ = [
    "ALGORITHMS",
    "register_algorithm",
    "register_prior",
    "Algorithm",
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
    "Anderson",
    "AndersonState",
    "LinearPart",
    "FiniteDifference",
    "linear_part_of",
    "AssumptionReport",
    "Hypothesis",
    "check_assumptions",
    "compose_alpha",
    "VERDICTS",
    "Result",
    "STATUSES",
    "DivergenceMonitor",
    "DivergenceReport",
    "MonotonicityReport",
    "StoppingCriterion",
    "IterationInfo",
    "MaxIter",
    "MinIter",
    "Tolerance",
    "TimeLimit",
    "AnyOf",
    "AllOf",
]
