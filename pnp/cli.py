"""The ``stablepnp`` command line: ``solve`` and thin routes to the other jobs.

``stablepnp solve [CONFIG.yaml] [options]`` runs :func:`pnp.solve.solve`; with no arguments it
deblurs the bundled cameraman (256x256, Gaussian blur, noise 0.01) with the shipped convex ridge
prior (proximal gradient with safeguarded Anderson acceleration), prints a short table and writes a figure into ``./stablepnp_out``.
``--diagnostics`` adds the convergence diagnostics of :mod:`pnp.convergence`;
``--input-dir DIR`` solves every image of a folder (:func:`pnp.solve.solve_batch`, built on
:func:`pnp.batch.solve_folder`), ``--observed`` treating them (or the ``--image`` file) as
observations, deblurred at their native size, with the noise level estimated from the data
unless ``--noise`` gives it.

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
import functools
import importlib
import math
import os
import sys
import warnings
from typing import Any, Callable, Iterator, Sequence

from pnp.cli_args import PROG, _UsageError, build_solve_parser

__all__ = ["main", "build_solve_parser", "config_from_args", "SUBCOMMANDS"]


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

_TOP_HELP = f"""usage: {PROG} [--plugin MODULE]... COMMAND [ARGS]

Imaging inverse problems solved by proximal and Plug-and-Play algorithms with checked convergence.

commands:
  solve       solve an inverse problem (no arguments: deblur the bundled cameraman with the convex ridge prior)
""" + "".join(f"  {name:<11s} {desc}\n" for name, (_, _, desc) in ROUTES.items()) + f"""
options:
  --plugin MODULE  import MODULE first, to register priors, algorithms or operators (repeatable;
                   also $STABLEPNP_PLUGINS=mod_a,mod_b and the 'stablepnp.plugins' entry points)

Run '{PROG} COMMAND --help' for the options of a command.
Exit codes: 0 success, 1 the run diverged or produced NaN, 2 bad input."""


def config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`pnp.solve.SolveConfig` of parsed ``solve`` arguments (flags over config over defaults)."""
    from pnp.registry import PRIORS
    from pnp.spec import SolveConfig

    _raw_config.cache_clear()  # one read per command, also when main() runs again in one process
    base = SolveConfig.from_yaml(args.config) if args.config else SolveConfig()
    problem: dict[str, Any] = {}
    for flag, key in (("image", "image"), ("size", "size"), ("gray", "gray"), ("kernel", "kernel"),
                      ("noise", "sigma"), ("seed", "seed")):
        value = getattr(args, flag)
        if value is not None:
            problem[key] = value
    problem.update(_observation_settings(args))
    if args.kernel is not None and base.problem.operator != "blur":
        raise _UsageError(f"--kernel applies to the blur operator but the config sets operator "
                          f"{base.problem.operator!r}; drop --kernel or set 'operator: blur'")
    problem.update(_noise_model_settings(args, base.problem.noise_model))
    noise_model = problem.get("noise_model", base.problem.noise_model)
    if args.noise is not None and noise_model == "poisson":
        raise _UsageError("--noise sets the Gaussian noise level but the noise model is 'poisson'; drop --noise or "
                          "use --noise-model poisson_gaussian (Gaussian part --noise) or gaussian")
    solver: dict[str, Any] = {}
    for flag in ("prior", "lam", "denoiser_sigma", "algorithm", "step", "relaxation", "max_iter", "tol",
                 "time_limit", "unsafe", "accelerate", "restart", "lam_rule"):
        value = getattr(args, flag)
        if value is not None:
            solver[flag] = None if value == "default" else value
    # A flag wins over the config's setting of the exclusive partner (lam vs denoiser_sigma).
    if args.lam is not None and args.denoiser_sigma is None:
        solver["denoiser_sigma"] = None
    if args.denoiser_sigma is not None and args.lam is None:
        solver["lam"] = None
    if noise_model != "gaussian":  # defaults for a data term without a Lipschitz gradient (pnp.poisson)
        from pnp.poisson import POISSON_ACCELERATE, POISSON_ALGORITHM

        config_solver = _config_section(args.config, "solver")
        if args.algorithm is None and "algorithm" not in config_solver:
            solver["algorithm"] = POISSON_ALGORITHM  # the gradient methods refuse it
        if args.accelerate is None and "accelerate" not in config_solver:
            solver["accelerate"] = POISSON_ACCELERATE
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
    config = base.updated(problem=problem, solver=solver, output=output)
    if _auto_by_default(args, config):
        config = config.updated(solver={"lam": "auto", "denoiser_sigma": None})
    return config


def _auto_by_default(args: argparse.Namespace, config: Any) -> bool:
    """``lam: auto`` is the CLI default of a single-image solve with Gaussian noise of a level in (0, 1] (or
    estimated), unless a flag or the config file sets the strength (``--lam default``, ``lam: null``: the
    prior's default rule). Measured on a held-out kernel family (priors/results/lam_auto/): the default
    rules, fitted on Gaussian blur, did not transfer to motion and shake blur; the data-driven choice did.
    Above the image range the data carry no usable signal (a warning says so) and the default rule stays."""
    if args.lam is not None or args.denoiser_sigma is not None or args.input_dir is not None:
        return False
    if {"lam", "denoiser_sigma"} & set(_config_section(args.config, "solver")):
        return False
    spec = config.problem
    return spec.noise_model == "gaussian" and (0 < spec.sigma <= 1 or bool(getattr(spec, "noise_estimate", False)))


def _noise_model_settings(args: argparse.Namespace, config_model: str) -> dict[str, Any]:
    """The problem fields of --noise-model and --peak (gain = 1/peak)."""
    out: dict[str, Any] = {}
    if args.noise_model is not None:
        out["noise_model"] = args.noise_model
    model = out.get("noise_model", config_model)
    if args.peak is not None:
        if model == "gaussian":
            raise _UsageError("--peak sets the photon count of Poisson noise but the noise model is 'gaussian'; add "
                              "--noise-model poisson (or poisson_gaussian) or drop --peak")
        out["gain"] = 1.0 / args.peak
        if not math.isfinite(out["gain"]) or out["gain"] <= 0:
            raise _UsageError(f"--peak {args.peak:g} is too large (gain 1/peak underflows); use a peak below 1e300")
    return out


@functools.lru_cache(maxsize=4)
def _raw_config(path: str) -> dict[str, Any]:
    """A config file's sections as written, read once per command (the flags are merged over them)."""
    from pnp.spec import read_solve_yaml

    return read_solve_yaml(path)[1]


def _config_section(path: str | None, name: str) -> dict[str, Any]:
    """A section of a config file as written (empty without a file)."""
    section = _raw_config(path).get(name) if path else None
    return section if isinstance(section, dict) else {}


def _observation_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The problem fields of --observed, --noise estimate and the native size of an image file.

    A flag wins over the config file; a setting only the config file makes (its ``size``, ``sigma``
    or ``noise_estimate``) is kept.
    """
    from problems.spec import is_bundled_image

    section = _config_section(args.config, "problem")
    out: dict[str, Any] = {}
    if args.noise == "estimate":
        out.update(sigma=section.get("sigma", 0.01), noise_estimate=True)  # sigma: the level a simulation uses
    elif args.noise is not None:
        out["noise_estimate"] = False
    single = args.input_dir is None
    if args.observed:
        if single:  # a folder's images are read by pnp.batch (the spec's image is not used)
            out["observed"] = True
        if args.noise is None and "sigma" not in section and "noise_estimate" not in section:
            out["noise_estimate"] = True  # an observation's noise level comes from the data unless given
    observed = out.get("observed", section.get("observed") is True)
    image = args.image if args.image is not None else section.get("image")
    if single and args.size is None and "size" not in section and (
            observed or (isinstance(image, str) and not is_bundled_image(image))):
        out["size"] = "auto"  # native size for an image file or an observation, 256 for a bundled image
    return out


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
    args = build_solve_parser().parse_args(list(argv))
    if args.input_dir is None:
        if args.batch_size is not None:
            raise _UsageError("--batch-size applies to a folder of images; add --input-dir DIR or drop --batch-size")
        if args.observed and args.image is None and "image" not in _config_section(args.config, "problem"):
            raise _UsageError("--observed applies to a folder of images or an image file: add --input-dir DIR or "
                              "--image PATH (the observation to deblur)")
    elif args.diagnostics:
        raise _UsageError("--diagnostics applies to a single image; drop it or solve one image with --image PATH")
    config = config_from_args(args)
    if args.input_dir is not None and config.solver.auto_strength:
        raise _UsageError("--lam auto (lam: auto) applies to a single image; give --lam / --denoiser-sigma a number "
                          "for --input-dir, or solve one image with --image PATH")
    if args.input_dir is not None:
        return _solve_folder(args, config)
    if os.environ.get("WORLD_SIZE", "1").strip() not in ("", "1"):  # every rank would write the same files
        raise _UsageError("a single-image solve runs on one process; under torchrun give --input-dir DIR (its "
                          "images are shared among the ranks), or run the single image without torchrun")
    from pnp.solve import solve

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
    """``stablepnp solve --input-dir DIR``: :func:`pnp.solve.solve_batch` over the folder (under ``torchrun``
    the ranks share the images and rank 0 writes the summary: :mod:`pnp.distributed`)."""
    from pnp.solve import solve_batch

    # --size resizes every image; without it each keeps its own size (a config file's size applies, except
    # to observations, which are never resized)
    observed = args.observed or config.problem.observed
    size = args.size if args.size is not None else (config.problem.size if args.config and not observed else None)
    with _torch_threads(args.threads):
        summary = solve_batch(config, args.input_dir, observed=observed, size=size,
                              batch_size=args.batch_size or 1, quiet=args.quiet)
    if summary["failed"]:
        if os.environ.get("RANK", "0").strip() in ("", "0"):  # under torchrun: one message, from rank 0
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


def _plugin_arguments(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(argv without the --plugin options, the plugin modules)``; ``--plugin`` may come before or
    after the command (not after a ``--``)."""
    rest: list[str] = []
    plugins: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        if arg == "--plugin":
            if i + 1 >= len(argv) or not argv[i + 1] or argv[i + 1].startswith("-"):
                raise _UsageError("--plugin needs a module name, e.g. --plugin mylab.plugin")
            plugins.append(argv[i + 1])
            i += 2
            continue
        if arg.startswith("--plugin="):
            if not arg.split("=", 1)[1]:
                raise _UsageError("--plugin needs a module name, e.g. --plugin=mylab.plugin")
            plugins.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
        i += 1
    return rest, plugins


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
    try:
        argv, plugins = _plugin_arguments(argv)
        from pnp.plugins import load_plugins

        load_plugins(plugins)
    except (_UsageError, ValueError, ImportError) as exc:
        if debug:
            raise
        _print_err(f"error: {_one_line(exc)}")
        return _EXIT_USAGE
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
