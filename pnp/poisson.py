"""The default regularisation weight for Poisson and Poisson-Gaussian data: one rule, one place.

The Poisson data term :class:`operators.PoissonNLL` is the negative log-likelihood
``(1/gain) KL(y, A x)``; near the data its curvature is ``1 / (gain * A x)``, so it weighs the misfit
like ``1/2 ||A x - y||^2 / sigma_eff^2`` with the *effective noise level*

    ``sigma_eff^2 = gain * m + sigma^2``,  ``m`` the mean intensity (the mean of ``y``),

(``gain = 1/peak``, the intensity of one photon; ``sigma`` the Gaussian part of Poisson-Gaussian
noise, 0 for pure Poisson). The Gaussian problems of this project keep the data term
``1/2 ||A x - y||^2`` undivided and scale the prior's weight ``lam_G(sigma)`` with the noise
instead. Dividing the objective ``1/2 ||A x - y||^2 / sigma_eff^2 + lam R`` by ``1/sigma_eff^2``
gives the rule

    ``lam_Poisson = factor * lam_G(sigma_eff) / sigma_eff^2``,

with ``lam_G`` the prior's own Gaussian default (:func:`pnp.build.default_lam`, or the ridge
regularizer's ``(lam, mu)`` rule, whose ``mu`` is taken at ``sigma_eff``). The weight scales with
the peak as ``peak^(1 - 1.5/2) = peak^0.25`` for TV (its ``lam_G ~ sigma^1.5``).

``factor`` was measured on the held-out validation image (``motorcycle``, 128 x 128 grey, Gaussian
blur 1.6, peaks 10 / 30 / 100, never a test image) with PDHG to tolerance 1e-5, on the grid
0.35 ... 4: TV peaks at 0.5-0.7 at every peak (19.45 / 20.59 / 21.54 dB; 1.0 gives 0.1-0.2 dB
less), the ridge regularizer at 1.0 (19.73 / 20.99 / 22.05 dB, with ``mu`` at ``sigma_eff``;
``2 x mu`` with ``2 x lam`` ties it). Priors not measured use 1.

Examples
--------
>>> round(effective_noise(gain=1 / 30, mean=0.5), 4)
0.1291
>>> round(poisson_lam("tv", 0.01, 0.1), 4)  # 0.6 * 0.01 / 0.1^2
0.6
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["POISSON_LAM_FACTOR", "POISSON_ALGORITHM", "POISSON_ACCELERATE", "DEFAULT_MEAN", "mean_intensity",
           "effective_noise", "poisson_lam",
           "spec_effective_noise"]

#: Multiplier of the rule per prior name, measured on the validation image (see the module docstring).
POISSON_LAM_FACTOR: dict[str, float] = {"tv": 0.6, "ridge": 1.0}

#: Mean intensity assumed when no observation is at hand (a [0, 1] image of average brightness).
DEFAULT_MEAN = 0.5


def mean_intensity(observation: Any = None) -> float:
    """The mean of the observation (an estimate of the mean of ``A x``), or :data:`DEFAULT_MEAN` without one."""
    if observation is None:
        return DEFAULT_MEAN
    value = float(observation.double().mean())
    return value if math.isfinite(value) else DEFAULT_MEAN


def effective_noise(*, gain: float, mean: float, sigma: float = 0.0) -> float:
    """``sqrt(gain * m + sigma^2)``, ``m`` the mean intensity floored at one photon (``gain``).

    The floor keeps the level finite and positive for a dark (or empty) observation; it matches
    :meth:`operators.PoissonNLL.data_curvature`, which is ``1 / sigma_eff^2`` for pure Poisson data.
    """
    return math.sqrt(gain * max(float(mean), gain) + float(sigma) ** 2)


def spec_effective_noise(spec: Any, observation: Any = None) -> float:
    """The effective noise level of a :class:`problems.ProblemSpec`: ``sigma`` for Gaussian noise, else
    :func:`effective_noise` with the observation's mean intensity."""
    if spec.noise_model == "gaussian":
        return float(spec.sigma)
    sigma = float(spec.sigma) if spec.noise_model == "poisson_gaussian" else 0.0
    return effective_noise(gain=float(spec.gain), mean=mean_intensity(observation), sigma=sigma)


def poisson_lam(prior: str, gaussian_lam: float, sigma_eff: float) -> float:
    """The default weight on the Poisson likelihood: ``factor * lam_G(sigma_eff) / sigma_eff^2``.

    Parameters
    ----------
    prior : str
        The prior's registered name (selects :data:`POISSON_LAM_FACTOR`, default 1).
    gaussian_lam : float
        The prior's Gaussian default weight at ``sigma_eff``.
    sigma_eff : float
        :func:`effective_noise`.
    """
    if not (math.isfinite(sigma_eff) and sigma_eff > 0):
        raise ValueError(f"sigma_eff must be a finite positive number, got {sigma_eff!r}")
    return POISSON_LAM_FACTOR.get(str(prior).strip().lower(), 1.0) * float(gaussian_lam) / sigma_eff ** 2


#: The default algorithm for Poisson data on the command line: ADMM with the split z = A x runs without a
#: hand-picked step (penalty 1/(c ‖A‖²), c the data term's curvature at the data: on the validation image
#: at peak 10, TV, 132 plain iterations against 310 at 0.3 times that step) and passes the final verification
#: of the returned iterate. PDHG with the split needs no inner prox solver and is often faster per run, but
#: its stopping test sees the primal variable only while the final verification measures the primal-dual
#: map, whose dual part (TV's dual in flat regions, the data term's dual) settles much later: at 64 x 64,
#: peak 30, its runs end "unverified" (residual 7e-5 with TV, 5e-4 with ridge, against 2e-5).
POISSON_ALGORITHM = "admm"

#: ... and without Anderson acceleration: the accelerated run stops on the residual of the whole governing
#: variable (the duals included), which settles late on photon-limited data (zero counts make the data term
#: linear there). At 128 x 128, peak 10: TV on astronaut 447 plain iterations (3.9 s) against 2000 (the cap)
#: accelerated; the ridge regularizer on camera 160 plain iterations (23 s) against 524 (286 s; a loaded
#: 2-core machine).
POISSON_ACCELERATE = "none"
