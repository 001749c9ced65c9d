"""The ``stablepnp`` command line: ``solve`` and thin routes to the other jobs.

``stablepnp solve [CONFIG.yaml] [options]`` runs :func:`pnp.solve.solve`; with no arguments it
deblurs the bundled cameraman (256x256, Gaussian blur, noise 0.01) with TV-regularised proximal
gradient descent, prints a short table and writes a figure into ``./stablepnp_out``.
``--diagnostics`` adds the convergence diagnostics of :mod:`pnp.convergence`;
``--input-dir DIR`` solves every image of a folder (:func:`pnp.solve.solve_batch`, built on
:func:`pnp.batch.solve_folder`), ``--observed`` treating them as observations.

``train``, ``certify``, ``robustness`` and ``compare`` hand their arguments to the ``main``
function of the module that implements them (imported only when called).

Exit codes: 0 success; 1 the run broke down (NaN or divergence: never reported as a result);
2 bad input (one line on stderr, ``stablepnp: error: ...``, naming the problem and the fix).
Set ``STABLEPNP_DEBUG=1`` to get the full traceback instead of the one-line message.

Examples
--------
>>> from pnp.cli import main
>>> main(["solve", "--size", "32", "--max-iter", "5", "--quiet", "--out", "/tmp/stablepnp_doc"])
0
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import sys
import warnings
from typing import Any, Callable, Iterator, NoReturn, Sequence

__all__ = ["main", "build_solve_parser", "config_from_args", "SUBCOMMANDS"]

PROG = "stablepnp"

#: Routed subcommands: name -> (module, function, one-line description).
ROUTES: dict[str, tuple[str, str, str]] = {
    "train": ("priors.training", "main", "train a learned averaged denoiser (stablepnp train CONFIG.yaml [--resume])"),
    "certify": ("priors.pretrained", "certify_main",
                "certify a denoiser checkpoint (stablepnp certify PATH.pt [--json FILE])"),
    "robustness": ("pnp.robustness", "main", "robustness study (stablepnp robustness CONFIG.yaml)"),
    "compare": ("pnp.compare", "main", "learned vs classical priors (stablepnp compare CONFIG.yaml)"),
}
SUBCOMMANDS: tuple[str, ...] = ("solve", *ROUTES)

_EXIT_OK, _EXIT_FAILED_RUN, _EXIT_USAGE = 0, 1, 2

_TOP_HELP = f"""usage: {PROG} COMMAND [ARGS]

Imaging inverse problems solved by proximal and Plug-and-Play algorithms with checked convergence.

commands:
  solve       solve an inverse problem (no arguments: deblur the bundled cameraman with TV-PGD)
""" + "".join(f"  {name:<11s} {desc}\n" for name, (_, _, desc) in ROUTES.items()) + f"""
Run '{PROG} COMMAND --help' for the options of a command.
Exit codes: 0 success, 1 the run diverged or produced NaN, 2 bad input."""


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
priors:  tv, wavelet, tikhonov (gradient-l2), bm3d (Plug-and-Play; pip install 'stable-pnp[bm3d]'),
         averaged / dncnn (shipped learned denoisers averaged_gray / dncnn_gray; produced by
         'stablepnp train priors/configs/averaged_gray.yaml' etc.), or a learned-denoiser
         checkpoint PATH.pt (Plug-and-Play)

examples:
  stablepnp solve
  stablepnp solve --image astronaut --color --kernel motion:15:30 --noise 0.02 --prior wavelet
  stablepnp solve run.yaml --algorithm fista --max-iter 200 --json run.json
  stablepnp solve --prior bm3d --denoiser-sigma 0.02 --max-iter 30
  stablepnp solve --prior averaged --diagnostics
  stablepnp solve --input-dir photos/ --out results/ --prior averaged
  stablepnp solve --input-dir blurred/ --observed --kernel gaussian:2.0 --noise 0.02 --out results/

exit codes: 0 success, 1 the run diverged or produced NaN, 2 bad input
"""


def build_solve_parser() -> argparse.ArgumentParser:
    """The argument parser of ``stablepnp solve``."""
    p = _Parser(
        prog=f"{PROG} solve",
        description="Solve an imaging inverse problem y = A x + noise with a proximal or Plug-and-Play "
        "algorithm; report PSNR/SSIM, the convergence guarantee, a figure and a JSON record.",
        epilog=_SOLVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", nargs="?", metavar="CONFIG.yaml",
                   help="config file with 'problem:', 'solver:' and 'output:' sections (all optional)")
    _problem_arguments(p.add_argument_group("problem"))
    _solver_arguments(p.add_argument_group("solver"))
    _output_arguments(p)
    return p


def _problem_arguments(g: Any) -> None:
    source = g.add_mutually_exclusive_group()
    source.add_argument("--image", metavar="NAME|PATH", help="bundled image name (camera, astronaut, ...) or an image "
                        "file (.png/.jpg/.tif/.npy); default camera")
    source.add_argument("--input-dir", metavar="DIR", help="reconstruct every image of DIR (a JSON record and a figure "
                        "per image and a summary table in --out; images of equal shape are solved as one batch)")
    g.add_argument("--observed", action="store_true",
                   help="with --input-dir: the images are blurred, noisy observations to deblur with --kernel "
                   "(no ground truth, no PSNR), not clean images to corrupt synthetically")
    g.add_argument("--size", type=_integer("a positive image size in pixels", minimum=1), metavar="N",
                   help="centre-crop and resize to N x N (default 256; with --input-dir each image keeps its size)")
    colour = g.add_mutually_exclusive_group()
    colour.add_argument("--gray", dest="gray", action="store_const", const=True, help="one luminance channel (default)")
    colour.add_argument("--color", dest="gray", action="store_const", const=False, help="three RGB channels")
    g.add_argument("--kernel", metavar="SPEC|PATH", help="blur kernel (default gaussian:1.6)")
    g.add_argument("--noise", type=_number("the Gaussian noise standard deviation on the [0, 1] scale", minimum=0.0),
                   metavar="SIGMA", help="Gaussian noise level (default 0.01)")
    g.add_argument("--seed", type=_integer("a nonnegative integer seed", minimum=0, maximum=2**63 - 1), metavar="S",
                   help="seed of the simulated noise (default 0)")


def _solver_arguments(g: Any) -> None:
    from pnp.registry import ALGORITHMS

    g.add_argument("--prior", metavar="ridge|ridge_stack|tv|wavelet|tikhonov|bm3d|averaged|dncnn|PATH.pt",
                   help="regulariser or denoiser (default ridge: the shipped convex ridge regularizer, a smooth convex "
                   "problem solved with a convergence guarantee; given a denoiser level, its certified one-step denoiser "
                   "runs in PnP); ridge_stack is the shipped certified stack of three ridge steps (PnP), averaged the "
                   "shipped certified averaged denoiser (PnP), dncnn the shipped "
                   "unconstrained baseline, any other shipped model name works too")
    g.add_argument("--lam", type=_number("a positive regularisation weight", minimum=0.0, strict=True), metavar="X",
                   help="regularisation weight (default: per prior, scaled with the noise level)")
    g.add_argument("--denoiser-sigma", type=_number("a positive denoiser noise level", minimum=0.0, strict=True),
                   metavar="X", help="noise level given to a denoiser prior (default: the checkpoint's training "
                   "level, else the noise level)")
    g.add_argument("--algorithm", type=str.lower, choices=list(ALGORITHMS),
                   help="algorithm (default pgd)")
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
                   "algorithm or an unguaranteed run is refused, or run flagged with --unsafe)")
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


def config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`pnp.solve.SolveConfig` of parsed ``solve`` arguments (flags over config over defaults)."""
    from pnp.registry import PRIORS
    from pnp.spec import SolveConfig

    base = SolveConfig.from_yaml(args.config) if args.config else SolveConfig()
    problem: dict[str, Any] = {}
    for flag, key in (("image", "image"), ("size", "size"), ("gray", "gray"), ("kernel", "kernel"),
                      ("noise", "sigma"), ("seed", "seed")):
        value = getattr(args, flag)
        if value is not None:
            problem[key] = value
    if args.kernel is not None and base.problem.operator != "blur":
        raise _UsageError(f"--kernel applies to the blur operator but the config sets operator "
                          f"{base.problem.operator!r}; drop --kernel or set 'operator: blur'")
    if args.noise is not None and base.problem.noise_model == "poisson":
        raise _UsageError("--noise sets the Gaussian noise level but the config sets noise_model 'poisson'; "
                          "drop --noise or use noise_model 'gaussian' or 'poisson_gaussian'")
    solver: dict[str, Any] = {}
    for flag in ("prior", "lam", "denoiser_sigma", "algorithm", "step", "relaxation", "max_iter", "tol",
                 "time_limit", "unsafe", "accelerate", "restart"):
        value = getattr(args, flag)
        if value is not None:
            solver[flag] = value
    # A flag wins over the config's setting of the exclusive partner (lam vs denoiser_sigma).
    if args.lam is not None and args.denoiser_sigma is None:
        solver["denoiser_sigma"] = None
    if args.denoiser_sigma is not None and args.lam is None:
        solver["lam"] = None
    entry = PRIORS.get(args.prior.strip().lower()) if args.prior is not None else None
    if entry is not None and entry.kind == "classical":  # a classical prior takes no denoiser level
        solver.setdefault("denoiser_sigma", None)
    output: dict[str, Any] = {}
    if args.out is not None:
        output["dir"] = args.out
    if args.json is not None:
        from problems.config import check_output_file

        try:
            check_output_file(args.json, "--json")
        except ValueError as exc:
            raise _UsageError(str(exc)) from None
        output["json"] = args.json
    if args.figure is not None:
        output["figure"] = args.figure
    return base.updated(problem=problem, solver=solver, output=output)


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """The machine's free cores: the cores this process may use minus the 1-minute load average, at least 1.

    The learned denoisers' convolutions dominate a solve and use every core of an idle machine,
    but OpenMP threads on cores that other jobs keep busy wait for them: on the 2-core reference
    machine with a training job running (load average about 4), the default 256x256 solve took
    63 s on one thread and 192 s on two; 50 TV-PGD iterations 1.3 s and 22.6 s.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        busy = 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` torch CPU threads (default :func:`default_threads` unless OMP_NUM_THREADS is
    set), then restore."""
    import torch

    cores = _available_cores()
    if threads is not None and threads > cores:
        raise _UsageError(f"--threads {threads} exceeds the {cores} CPU cores this process may use; "
                          f"use --threads {cores} or fewer")
    if threads is None and os.environ.get("OMP_NUM_THREADS"):
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or default_threads())
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _solve(argv: Sequence[str]) -> int:
    from pnp.solve import solve

    args = build_solve_parser().parse_args(list(argv))
    if args.input_dir is None:
        for flag, given in (("--observed", args.observed), ("--batch-size", args.batch_size is not None)):
            if given:
                raise _UsageError(f"{flag} applies to a folder of images; add --input-dir DIR or drop {flag}")
    elif args.diagnostics:
        raise _UsageError("--diagnostics applies to a single image; drop it or solve one image with --image PATH")
    config = config_from_args(args)
    if args.input_dir is not None:
        return _solve_folder(args, config)
    with _torch_threads(args.threads):
        record = solve(config, quiet=args.quiet, diagnostics=args.diagnostics)
    if record["failed"]:
        reason = record.get("stop_reason") or record["status"]
        _print_err(
            f"FAILED: the iteration {'produced NaN/Inf' if record['status'] == 'nan' else 'diverged'} "
            f"after {record['iterations']} iterations ({reason}); no reconstruction is reported "
            f"(psnr is null in the record). Guarantee: {record['guarantee']['line']}. Fix: {_failure_fix(record)}."
        )
        return _EXIT_FAILED_RUN
    return _EXIT_OK


def _failure_fix(record: dict) -> str:
    """The remedy that matches the hypothesis that failed in a broken-down run."""
    if (record.get("inexact_prox") or {}).get("violation"):
        return ("lower --lam (the inner prox could not reach the accuracy its summable schedule asks at this "
                "weight), or use --algorithm pdhg, which needs no inner solver for TV")
    if record.get("unsafe"):
        return "drop --unsafe (the step or relaxation is outside the convergence bound)"
    return "lower --step, or pick a prior/algorithm with a guarantee"


def _solve_folder(args: argparse.Namespace, config: Any) -> int:
    """``stablepnp solve --input-dir DIR``: :func:`pnp.solve.solve_batch` over the folder."""
    from pnp.solve import solve_batch

    # --size resizes every image; without it each keeps its own size (a config file's size applies)
    size = args.size if args.size is not None else (config.problem.size if args.config else None)
    with _torch_threads(args.threads):
        summary = solve_batch(config, args.input_dir, observed=args.observed, size=size,
                              batch_size=args.batch_size or 1, quiet=args.quiet)
    if summary["failed"]:
        _print_err(
            f"FAILED: the iteration diverged or produced NaN for {len(summary['failed'])} image(s) "
            f"({', '.join(summary['failed'])}); their records hold the last iterate, not a reconstruction. "
            "Fix: lower --step, or pick a prior/algorithm with a guarantee."
        )
        return _EXIT_FAILED_RUN
    return _EXIT_OK


# ============================================================================ routes
def _route(name: str, argv: Sequence[str]) -> int:
    module_name, func_name, _ = ROUTES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise ImportError(f"'{PROG} {name}' is not available: its module {module_name} is not installed "
                              "in this version of stable-pnp") from None
        raise
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ImportError(f"'{PROG} {name}' is not available: {module_name} has no {func_name}() entry point")
    try:
        code = func(list(argv))
    except SystemExit as exc:  # the routed job's own argparse (--help, usage errors)
        code = exc.code
    if code is None:
        return _EXIT_OK
    return code if isinstance(code, int) else _EXIT_USAGE


# ============================================================================ main
#: Fixes appended to layer messages that name the problem but not the remedy.
_HINTS: tuple[tuple[str, str], ...] = (
    ("contains NaN or Inf values", "replace the non-finite pixels (e.g. numpy.nan_to_num) or crop them out"),
)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.strerror}: '{exc.filename}'"
    for pattern, hint in _HINTS:
        if pattern in text and hint not in text:
            text = f"{text}; {hint}"
    return text or type(exc).__name__


def _print_err(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def _show_warning(seen: set[str]) -> Callable[..., None]:
    def show(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        text = " ".join(str(message).split())
        key = f"{category.__name__}:{text}"
        if key in seen:
            return
        seen.add(key)
        print(f"{PROG}: warning: {text}", file=sys.stderr, flush=True)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stablepnp`` console script.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 success, 1 a run that diverged or produced NaN, 2 bad input.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("STABLEPNP_DEBUG", "") not in ("", "0")
    if not argv:
        print(_TOP_HELP, file=sys.stderr)
        _print_err(f"error: choose a command: {', '.join(SUBCOMMANDS)} (e.g. '{PROG} solve')")
        return _EXIT_USAGE
    if argv[0] in ("-h", "--help", "help"):
        print(_TOP_HELP)
        return _EXIT_OK
    if argv[0] == "--version":
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"{PROG} {version('stable-pnp')}")
        except PackageNotFoundError:
            print(f"{PROG} (not installed)")
        return _EXIT_OK
    command, rest = argv[0], argv[1:]
    if command not in SUBCOMMANDS:
        _print_err(f"error: unknown command {command!r}; choose one of {', '.join(SUBCOMMANDS)}")
        return _EXIT_USAGE

    with warnings.catch_warnings():
        warnings.showwarning = _show_warning(set())
        try:
            return _solve(rest) if command == "solve" else _route(command, rest)
        except _UsageError as exc:
            _print_err(f"error: {command}: {_one_line(exc)}")
            return _EXIT_USAGE
        except (ValueError, TypeError, OSError, ImportError) as exc:
            # The layers raise these with one-line messages naming the field and the fix;
            # anything else is a bug and keeps its traceback.
            if debug:
                raise
            _print_err(f"error: {_one_line(exc)}")
            return _EXIT_USAGE
        except KeyboardInterrupt:
            _print_err("interrupted")
            return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
