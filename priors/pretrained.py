"""Loading learned denoisers from model files, shipped weights, and ``stablepnp certify``.

Every load uses ``torch.load(weights_only=True)`` and re-computes the rigorous part of the
certificate from the weights; a stored certificate that no longer matches its weights is refused.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from .base import seed_certificate_cache
from .certificate_cache import certificate_for_file, certificate_object
from .certify import empirical_lipschitz
from problems.config import check_output_file

from .registry import ARCHITECTURES, architecture_of, build_model, certificate_dict, read_model_file
from .spectral import NORM_DTYPE

__all__ = ["load_checkpoint", "load_pretrained", "pretrained_names", "certify_main", "certificate_rtol", "WEIGHTS_DIR"]

#: folder of the shipped model files (``<name>.pt`` with ``<name>.yaml`` and ``<name>.log.jsonl.gz``).
WEIGHTS_DIR = Path(__file__).with_name("weights")


def pretrained_names() -> list[str]:
    """Names accepted by :func:`load_pretrained`."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.pt"))


#: A recomputed bound is a product of factors f(||W_k||), one per rounded norm bound (counted with
#: multiplicity, see :func:`_norm_factors`), and each ||W_k|| comes from an SVD in
#: ``spectral.NORM_DTYPE`` (single precision) that two CPUs (other SIMD paths, another LAPACK) may
#: return a few ulps apart.  A factor's relative change is at most ``_SENSITIVITY`` times its norm's
#: (Euler's ``h L ||W||^2 - 1`` with ``h L ||W||^2 >= 2`` gives 4, RK4's stage bound, of degree 4
#: in ``||W||^2``, gives 8; DnCNN's product 1), and alpha moves no more than its worst sub-step
#: (Combettes-Yamada: the ratios alpha / (1 - alpha) add up, and each alpha_k = h L ||W||^2 / 2).
#: Allowing ``_ULPS`` ulps per norm on each of the two machines gives the relative tolerance
#: ``2 * _ULPS * _SENSITIVITY * n * eps`` (about 1.2e-4 for 8 norms, 4.9e-4 for 32): well above
#: the cross-CPU spread seen (~1e-6 for 8 norms) and far below a 1 % edit of a claim.  Each norm
#: bound already carries a margin of ``spectral._ROUNDING`` = 1e-4 for the SVD error, so a claim
#: accepted within this tolerance is still a bound for the weights up to that relative slack.
_ULPS = 8
_SENSITIVITY = 8


def _norm_factors(cert: dict) -> int:
    """Number of rounded norm bounds multiplied into ``cert`` (each sub-step reuses its block's)."""
    details = cert.get("details") or {}
    if details.get("norm_factors"):  # a certifier that states its own count (priors.wcrr)
        return max(1, int(details["norm_factors"]))
    if details.get("blocks"):  # AveragedResNet: lip_N = prod_k lip_k ** substeps_k
        return max(1, sum(int(b.get("substeps", 1)) for b in details["blocks"]))
    if details.get("layer_norms"):  # DnCNN: 1 + prod_k ||W_k||
        return len(details["layer_norms"])
    return 1


def certificate_rtol(cert: dict) -> float:
    """Relative tolerance between a stored certificate and ``cert``, recomputed from the same
    weights on possibly another machine (see ``_ULPS`` for the derivation)."""
    return 2 * _ULPS * _SENSITIVITY * _norm_factors(cert) * torch.finfo(NORM_DTYPE).eps


def _holds(stored: Any, fresh: dict, rtol: float | None = None) -> bool:
    """Whether the stored claim still holds for the weights: the recomputed bound is no weaker,
    up to the relative rounding tolerance ``rtol`` (default :func:`certificate_rtol` of ``fresh``).

    (A newer, tighter certifier may give smaller values than the one that wrote the file; a
    larger Lipschitz bound or alpha, or a lost averagedness, means the weights changed.)"""
    if not isinstance(stored, dict) or stored.get("lipschitz") is None:
        return False
    rtol = certificate_rtol(fresh) if rtol is None else rtol
    if float(fresh["lipschitz"]) > float(stored["lipschitz"]) * (1 + rtol) + 1e-12:
        return False
    if stored.get("alpha") is None:
        return True
    return fresh["alpha"] is not None and float(fresh["alpha"]) <= float(stored["alpha"]) * (1 + rtol) + 1e-12


def load_checkpoint(
    path: str | Path, *, in_channels: int | None = None, verify: bool = True
) -> torch.nn.Module:
    """Load a denoiser from a model file (``model.pt``) or a training checkpoint.

    Parameters
    ----------
    path : str or Path
        File written by ``stablepnp train``.
    in_channels : int, optional
        Refuse a model trained for another number of image channels.
    verify : bool
        Recompute the certificate's rigorous bound and refuse the file when the stored claim no
        longer holds (weights edited after certification, or a corrupted file).

    Returns
    -------
    torch.nn.Module
        The denoiser in eval mode, with ``stored_certificate`` (dict) and ``training_info`` attributes.
    """
    p = Path(path)
    rec = read_model_file(p)
    try:
        model = build_model(rec["arch"], rec["model_config"])
        model.load_state_dict(rec["state_dict"])
    except (KeyError, RuntimeError) as exc:
        raise ValueError(f"model file '{p}' does not match its architecture: {str(exc).splitlines()[0]}") from None
    channels = model.config.in_channels
    if in_channels is not None and channels != in_channels:
        raise ValueError(
            f"model '{p}' was trained for {channels}-channel images, but {in_channels}-channel images were given; "
            f"use a {'grey' if in_channels == 1 else 'colour'} model or convert the image"
        )
    model.eval()
    stored = rec.get("certificate")
    if verify:
        # the recomputed certificate depends only on the file's bytes and the certifying code:
        # cached on disk under both hashes (priors.certificate_cache), so a second load skips it
        fresh, from_cache = certificate_for_file(p, lambda: certificate_dict(model))
        cert = certificate_object(fresh) if from_cache else None
        if cert is not None:
            seed_certificate_cache(model, cert)  # model.certificate() returns it without recomputing
        if not _holds(stored, fresh):
            claim = (stored.get("lipschitz"), stored.get("alpha")) if isinstance(stored, dict) else (None, None)
            raise ValueError(
                f"the certificate stored in '{p}' does not match its weights (stored Lipschitz {claim[0]}, alpha "
                f"{claim[1]}; recomputed {fresh['lipschitz']!r}, {fresh['alpha']!r}; relative tolerance "
                f"{certificate_rtol(fresh):.2g}); "
                "the file was modified after training — re-run `stablepnp certify` on a trusted copy"
            )
    model.stored_certificate = stored
    model.training_info = rec.get("training", {})
    return model


def load_pretrained(name: str = "averaged_gray", *, verify: bool = True) -> torch.nn.Module:
    """Load a shipped denoiser by name (offline; see :func:`pretrained_names`).

    Examples
    --------
    >>> from priors.pretrained import load_pretrained, pretrained_names
    >>> "averaged_gray" in pretrained_names()  # doctest: +SKIP
    True
    """
    names = pretrained_names()
    if name not in names:
        raise ValueError(f"no shipped model named {name!r}; available: {', '.join(names) or 'none'}")
    return load_checkpoint(WEIGHTS_DIR / f"{name}.pt", verify=verify)


def certify_main(argv: list[str] | None = None) -> int:
    """Entry point of ``stablepnp certify PATH.pt [--json FILE]``."""
    parser = argparse.ArgumentParser(prog="stablepnp certify", description="Print the certificate of a learned denoiser.")
    parser.add_argument("path", help="model file (.pt) or shipped model name")
    parser.add_argument("--json", metavar="FILE", help="write the certificate as JSON")
    parser.add_argument("--no-adversarial", action="store_true", help="skip the adversarial search")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()  # loading recomputes the rigorous bound, so it is part of the time
    try:
        if args.json:
            check_output_file(args.json, "--json")
        p = Path(args.path)
        model = load_checkpoint(p) if p.suffix == ".pt" or p.exists() else load_pretrained(args.path)
        if ARCHITECTURES[architecture_of(model)].adversarial_certificate:
            cert = model.certificate(adversarial=not args.no_adversarial)
        else:
            cert = model.certificate()
            if not args.no_adversarial:
                emp = empirical_lipschitz(model, sigmas=tuple(model.config.sigma_range),
                                          shape=(2, model.config.in_channels, 32, 32))
                cert = replace(cert, empirical=emp["max"])
        seconds = time.perf_counter() - t0
    except (ValueError, FileNotFoundError) as exc:
        print(f"stablepnp: error: {exc}", file=sys.stderr)
        return 2
    lo, hi = model.config.sigma_range
    certified_map = f"x -> D(x, sigma), the denoiser itself (not I - D), for every sigma in [{lo:.4g}, {hi:.4g}]"
    rows = [
        ("model", str(args.path)),
        ("certified map", certified_map),
        ("Lipschitz bound", f"{cert.lipschitz:.6f}"),
        ("averagedness alpha", "none (not averaged)" if cert.alpha is None else f"{cert.alpha:.6f}"),
        ("empirical max (adversarial)", "skipped" if cert.empirical is None else f"{cert.empirical:.6f}"),
        ("method", cert.method),
        ("seconds", f"{seconds:.2f}"),
    ]
    rho = cert.details.get("rho") if isinstance(cert.details, dict) else None
    if rho is not None:  # a weakly convex regularizer: its modulus and what follows from it
        lam_rho = float(cert.details.get("lam_rho_max", 0.0))
        rows[-2:-2] = [
            ("weak convexity rho_R", f"{float(rho):.6g} (R + rho_R/2 ||.||^2 is convex; from the symbol of (S^-)^(1/2) W)"),
            ("max lam(sigma) rho_R", f"{lam_rho:.6g}"),
            ("implies", (f"denoising (A = I) is a convex problem; 1/2 ||Ax - y||^2 + lam R is convex when "
                         f"sigma_min(A)^2 >= lam rho_R, otherwise PGD converges to a stationary point "
                         f"(Kurdyka-Lojasiewicz); the denoiser is {1 / (1 - lam_rho):.4g}-Lipschitz, not averaged"
                         if rho > 0 else "every slope >= 0: the regularizer is convex (rho_R = 0)")),
        ]
    width = max(len(r[0]) for r in rows)
    for k, v in rows:
        print(f"{k.ljust(width)}  {v}")
    if cert.empirical is not None and cert.empirical > cert.lipschitz * (1 + 1e-6):
        print("stablepnp: error: the adversarial search exceeded the certified bound — the certificate is wrong", file=sys.stderr)
        return 1
    if args.json:
        record: dict[str, Any] = cert.to_dict()
        record["seconds"] = seconds
        record["map"] = certified_map
        Path(args.json).write_text(json.dumps(record, indent=2, default=float))
    return 0
