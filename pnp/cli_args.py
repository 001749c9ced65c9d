"""The arguments of ``stablepnp solve``: the parser, its argument types and its help text.

Split from :mod:`pnp.cli` (which runs the commands). Building the parser imports no torch: the
choices and the listing in the help come from the registries (:mod:`pnp.registry`), which load
their classes only when used.
"""

from __future__ import annotations

import argparse
import math
from typing import Any, Callable, NoReturn

__all__ = ["PROG", "build_solve_parser"]

PROG = "stablepnp"


class _UsageError(Exception):
    """A command-line mistake, reported as one line (exit 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors become one line ``stablepnp: error: ...`` instead of usage + message."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        raise _UsageError(f"{message} (see '{self.prog} --help')")


# ============================================================================ argument types
def _number(kind: str, *, minimum: float | None = None, strict: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite {kind}, got {text!r}")
        if minimum is not None and (value <= minimum if strict else value < minimum):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {minimum:g} ({kind}), got {text}")
        return value

    return parse


def _number_or_auto(kind: str) -> Callable[[str], float | str]:
    """A positive number, ``auto`` (the strength chosen from the data, :mod:`pnp.parameters`) or ``default``
    (the prior's own rule)."""
    number = _number(kind, minimum=0.0, strict=True)

    def parse(text: str) -> float | str:
        if text.strip().lower() in ("auto", "default"):
            return text.strip().lower()
        try:
            float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, 'auto' or 'default', got {text!r}") from None
        return number(text)

    return parse


def _integer(kind: str, *, minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum} ({kind}), got {text}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum} ({kind}), got {text}")
        return value

    return parse


# ============================================================================ solve
_SOLVE_EPILOG = """\
Flags override the config file; the config file overrides the defaults. A complete config
file with every key is pnp/configs/solve_default.yaml.

kernels: gaussian:STD, gaussian:STD_X:STD_Y:ANGLE, motion:LENGTH:ANGLE (degrees), box:SIZE,
         disk:RADIUS, shake:SEED, or a .npy/.png kernel file
{priors}
examples:
  stablepnp solve
  stablepnp solve --image astronaut --color --kernel motion:15:30 --noise 0.02 --prior wavelet
  stablepnp solve run.yaml --algorithm fista --max-iter 200 --json run.json
  stablepnp solve --prior bm3d --denoiser-sigma 0.02 --max-iter 30
  stablepnp solve --prior averaged --diagnostics
  stablepnp solve --input-dir photos/ --out results/ --prior averaged
  stablepnp solve --input-dir blurred/ --observed --kernel gaussian:2.0 --noise 0.02 --out results/
  stablepnp solve --image y.png --observed --kernel k.npy --out results/

exit codes: 0 success, 1 the run diverged or produced NaN, 2 bad input
"""


def _registry_listing() -> str:
    """The registered priors and algorithms, one per line (plugins included), for the help text."""
    from pnp.registry import ALGORITHMS, PRIORS

    lines = ["priors (--prior; also a shipped model name, deepinv:NAME or a checkpoint PATH.pt):"]
    lines += [f"  {name:<12s} {entry.description or entry.kind}" for name, entry in PRIORS.items()]
    lines.append("algorithms (--algorithm):")
    lines += [f"  {name:<12s} {entry.description}" for name, entry in ALGORITHMS.items()]
    return "\n".join(lines) + "\n"


def build_solve_parser() -> argparse.ArgumentParser:
    """The argument parser of ``stablepnp solve``."""
    p = _Parser(
        prog=f"{PROG} solve",
        description="Solve an imaging inverse problem y = A x + noise with a proximal or Plug-and-Play "
        "algorithm; report PSNR/SSIM, the convergence guarantee, a figure and a JSON record.",
        epilog=_SOLVE_EPILOG.replace("{priors}", _registry_listing()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", nargs="?", metavar="CONFIG.yaml",
                   help="config file with 'problem:', 'solver:' and 'output:' sections (all optional), a problem "
                   "spec file, or the name of a bundled spec (default, inpainting, poisson_deblur, superresolution)")
    _problem_arguments(p.add_argument_group("problem"))
    _solver_arguments(p.add_argument_group("solver"))
    _output_arguments(p)
    return p


def _noise_level(text: str) -> float | str:
    """``--noise``: a nonnegative number, or ``estimate``."""
    if text.strip().lower() == "estimate":
        return "estimate"
    try:
        float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a nonnegative noise standard deviation on the [0, 1] scale or "
                                         f"'estimate', got {text!r}") from None
    return _number("the Gaussian noise standard deviation on the [0, 1] scale", minimum=0.0)(text)


def _problem_arguments(g: Any) -> None:
    source = g.add_mutually_exclusive_group()
    source.add_argument("--image", metavar="NAME|PATH", help="bundled image name (camera, astronaut, ...) or an image "
                        "file (.png/.jpg/.tif/.npy); default camera")
    source.add_argument("--input-dir", metavar="DIR", help="reconstruct every image of DIR (a JSON record and a figure "
                        "per image and a summary table in --out; images of equal shape are solved as one batch)")
    g.add_argument("--observed", action="store_true",
                   help="with --image PATH or --input-dir: the images are blurred, noisy observations to deblur with "
                   "--kernel at their native size (no ground truth, no PSNR), not clean images to corrupt "
                   "synthetically; without --noise the noise level is estimated from each observation")
    g.add_argument("--size", type=_integer("a positive image size in pixels", minimum=1), metavar="N",
                   help="centre-crop and resize to N x N (default: 256 for a bundled image; an image file, a folder "
                   "and an observation keep their native size)")
    colour = g.add_mutually_exclusive_group()
    colour.add_argument("--gray", dest="gray", action="store_const", const=True, help="one luminance channel (default)")
    colour.add_argument("--color", dest="gray", action="store_const", const=False, help="three RGB channels")
    g.add_argument("--kernel", metavar="SPEC|PATH", help="blur kernel (default gaussian:1.6)")
    g.add_argument("--noise", type=_noise_level, metavar="SIGMA|estimate",
                   help="Gaussian noise level (default 0.01; for an --observed image: estimated from the data). "
                   "'estimate': the solver assumes the level estimated from the observation (wavelet MAD, printed "
                   "with its standard error); on a simulated problem this tests the estimator: the noise is still "
                   "made with the config file's sigma (default 0.01)")
    g.add_argument("--seed", type=_integer("a nonnegative integer seed", minimum=0, maximum=2**63 - 1), metavar="S",
                   help="seed of the simulated noise (default 0)")
    g.add_argument("--noise-model", type=str.lower, choices=["gaussian", "poisson", "poisson_gaussian"],
                   help="noise model (default gaussian); poisson and poisson_gaussian (Gaussian part: --noise) need "
                   "--peak or the config's gain, and are solved by default with admm through the split z = A x")
    g.add_argument("--peak", type=_number("positive photon count (photons at intensity 1)", minimum=0.0,
                                          strict=True), metavar="P",
                   help="Poisson noise: photons at intensity 1 (gain = 1/P, the observation is counts / P); "
                   "e.g. 10 (very noisy), 30, 100")


def _solver_arguments(g: Any) -> None:
    from pnp.registry import ALGORITHMS

    from pnp.registry import PRIORS

    g.add_argument("--prior", metavar="NAME|PATH.pt",
                   help="regulariser or denoiser (default ridge: the shipped convex ridge regularizer, a smooth convex "
                   "problem solved with a convergence guarantee); registered: " + ", ".join(PRIORS) + "; or any "
                   "shipped model name, deepinv:NAME, or a denoiser checkpoint PATH.pt (Plug-and-Play)")
    g.add_argument("--lam", type=_number_or_auto("a positive regularisation weight"), metavar="X|auto|default",
                   help="regularisation weight; auto (the default of a single image with Gaussian noise): the "
                   "prior's strength (its weight, or a denoiser's level) chosen from the data by --lam-rule; "
                   "default: the prior's own rule, scaled with the noise level (the default with --input-dir or "
                   "Poisson noise)")
    g.add_argument("--denoiser-sigma", type=_number_or_auto("a positive denoiser noise level"),
                   metavar="X|auto|default", help="noise level given to a denoiser prior; auto: as --lam auto; "
                   "default: the checkpoint's training level, else the noise level (scaled for PnP)")
    g.add_argument("--lam-rule", type=str.lower, choices=["sure", "discrepancy"],
                   help="how --lam auto chooses: sure (default; SURE with a Monte-Carlo divergence) or discrepancy "
                   "(Morozov; falls back to SURE, saying so, where its equation has no root)")
    g.add_argument("--algorithm", type=str.lower, choices=list(ALGORITHMS),
                   help="algorithm (default pgd; admm for Poisson noise, whose data term has no Lipschitz gradient)")
    g.add_argument("--step", type=_number("a positive step size", minimum=0.0, strict=True), metavar="X",
                   help="step size (default: from ‖A‖, as the algorithm's theory says; above the bound it is refused)")
    g.add_argument("--relaxation", type=_number("a positive relaxation", minimum=0.0, strict=True), metavar="X",
                   help="Krasnosel'skii-Mann relaxation (default 1)")
    g.add_argument("--max-iter", type=_integer("a positive number of iterations", minimum=1), metavar="N",
                   help="iteration cap (default 1000)")
    g.add_argument("--tol", type=_number("a nonnegative tolerance", minimum=0.0), metavar="X",
                   help="stop when the relative residual is below X (default 1e-5; 0 disables)")
    g.add_argument("--time-limit", type=_number("a positive number of seconds", minimum=0.0, strict=True),
                   metavar="S", help="wall-clock limit of the iterations")
    g.add_argument("--accelerate", type=str.lower, choices=["auto", "anderson", "none"],
                   help="safeguarded type-I Anderson acceleration of the iteration (default auto: on wherever it "
                   "keeps the convergence theorem -- PGD, HQS, DRS, ADMM with a guarantee; anderson on another "
                   "algorithm or an unguaranteed run is refused, or run flagged with --unsafe; Poisson noise: default "
                   "none, measured faster there)")
    g.add_argument("--restart", type=str.lower, choices=["none", "gradient", "function"],
                   help="adaptive restart of FISTA's momentum (default none; function/gradient tests guarded by the "
                   "objective: it never increases; no global O(1/k^2) rate is claimed)")
    g.add_argument("--unsafe", action="store_const", const=True,
                   help="run a step/relaxation above its convergence bound instead of refusing (flagged)")
    g.add_argument("--diagnostics", action="store_true",
                   help="convergence diagnostics: final fixed-point residual ‖x - T(x)‖, the step lengths against "
                   "the envelope for averaged iterations, the denoiser's local Lipschitz estimates along the "
                   "iterates; in the JSON record, the table and <figure>_diagnostics.png (single image only)")
    g.add_argument("--batch-size", type=_integer("a positive number of images", minimum=1), metavar="N",
                   help="with --input-dir: most equal-shape images solved together in one run (default 1: "
                   "stacking measured slower per image on a CPU, see scripts/bench_batch.py; try 8 on a GPU)")


def _output_arguments(p: Any) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--out", metavar="DIR", help="folder for the figure and the reconstruction (default ./stablepnp_out)")
    g.add_argument("--json", metavar="FILE", help="write the JSON record to FILE")
    g.add_argument("--no-figure", dest="figure", action="store_const", const=False, help="do not write the figure")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no table")
    g = p.add_argument_group("runtime")
    g.add_argument("--threads", type=_integer("a positive number of CPU threads", minimum=1, maximum=1024),
                   metavar="N",
                   help="torch CPU threads (default: the free cores -- the available cores minus the 1-minute "
                   "load average, at least 1 -- or OMP_NUM_THREADS when set)")
