"""Rendering of solve records: the verdict line, the tables of ``stablepnp solve`` and ``--input-dir``.

Everything here reads plain data (a :class:`pnp.record.SolveRecord`, the summary of a folder
run, an :class:`pnp.assumptions.AssumptionReport` or its ``to_dict()`` form) and returns text.

Examples
--------
>>> verdict_line(None)
'no guarantee: no assumption report'
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping

from pnp.record import finite as _finite
from pnp.registry import is_checkpoint

__all__ = ["verdict_line", "format_table", "diagnostics_line", "diagnostics_record", "format_batch_table",
           "monotone_summary"]


def _short_theorem(theorem: str) -> str:
    """The theorem's name without its citations: drop parentheses that cite a year, keep the first clause."""
    text = re.sub(r"\(((1[89]|20)\d\d)\)", r"\1", theorem)  # "Appl. 425 (2015)" -> "Appl. 425 2015"
    text = re.sub(r"\s*\([^()]*\b(1[89]|20)\d\d\b[^()]*\)", "", text)
    text = text.split(";")[0].split(", i.e.")[0].strip()
    if ": composition" in text:  # "PnP forward-backward: composition of averaged maps and ..."
        text = text.split(":", 1)[0]
    elif text.startswith("composition of"):  # PnP-HQS: the composition is the theorem
        text = text.split(" and Krasnosel", 1)[0]
    return text if len(text) <= 100 else text[:97].rsplit(" ", 1)[0] + " ..."


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """Field ``name`` of an AssumptionReport / Hypothesis or of its ``to_dict()`` form."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _num(x: float) -> str:
    """``x`` with 4 significant digits, keeping a decimal point (``1.0``, ``0.9324``, ``2.5e-05``)."""
    text = f"{x:.4g}"
    return text if any(c in text for c in ".einf") else text + ".0"


def _guarantee_details(report: Any) -> list[str]:
    """The numbers behind a "guaranteed" verdict, read from the report's fields.

    ``alpha`` (the composed averagedness constant of the iteration map), the checked step
    bound (hypothesis ``step < 2/L`` or ``step <= 1/L`` with ``params['step']`` and
    ``params['L']``), the relaxation when it is not 1 (with ``relaxation_range``), and the
    PDHG product ``tau sigma ‖K‖²``.
    """
    algorithm = str(_get(report, "algorithm") or "").upper()
    params = _get(report, "params") or {}
    hypotheses = _get(report, "hypotheses") or ()
    parts: list[str] = []
    alpha = _get(report, "alpha")
    if alpha is not None:
        if algorithm in ("PGD", "HQS"):
            parts.append(f"averaged composition alpha = {_num(float(alpha))}")
        else:
            parts.append(f"iteration map {_num(float(alpha))}-averaged")
    for hyp in hypotheses:
        name = str(_get(hyp, "name") or "")
        m = re.fullmatch(r"step (<=?) ([12])/L", name)
        if m and _get(hyp, "holds"):
            step, L = params.get("step"), params.get("L")
            if step is None or L is None:
                continue
            l_text = "‖A‖²" if params.get("fidelity") == "L2Fidelity" else "L"
            if float(L) > 0:
                parts.append(f"step {_num(float(step))} {m.group(1)} {m.group(2)}/{l_text} = "
                             f"{_num(float(m.group(2)) / float(L))}")
            else:
                parts.append(f"step {_num(float(step))}, {l_text} = 0 (any step)")
        elif name.startswith("tau * sigma") and _get(hyp, "value") is not None:
            parts.append(f"tau·sigma·‖K‖² = {_num(float(_get(hyp, 'value')))} < 1")
    relaxation = params.get("relaxation")
    rng = _get(report, "relaxation_range")
    if relaxation is not None and abs(float(relaxation) - 1.0) > 1e-12:
        parts.append(f"relaxation {_num(float(relaxation))}"
                     + (f" in (0, {_num(float(rng[1]))})" if rng is not None else ""))
    acceleration = params.get("acceleration")
    if acceleration:  # pnp.acceleration: the safeguard keeps the theorem above
        memory = (params.get("acceleration_parameters") or {}).get("memory")
        parts.append("safeguarded Anderson acceleration" + (f" (m = {memory})" if memory else ""))
    return parts


def verdict_line(report: Any) -> str:
    """One line: the verdict and, when guaranteed, the theorem (short) with its constants; else the reason.

    For a guaranteed run the line names the theorem, the composed averagedness constant and the
    step bound that was checked, e.g. ``guaranteed (PnP forward-backward, averaged composition
    alpha = 0.93, step 1.0 < 2/‖A‖² = 2.0)``. ``report`` is an :class:`pnp.assumptions.AssumptionReport`
    or its ``to_dict()`` form.

    Examples
    --------
    >>> from pnp.assumptions import AssumptionReport, Hypothesis
    >>> r = AssumptionReport("PGD", "guaranteed", "PnP forward-backward: composition of averaged maps",
    ...                      (Hypothesis("step < 2/L", True),), alpha=0.93,
    ...                      params={"step": 1.0, "L": 1.0, "relaxation": 1.0, "fidelity": "L2Fidelity"})
    >>> verdict_line(r)
    'guaranteed (PnP forward-backward, averaged composition alpha = 0.93, step 1.0 < 2/‖A‖² = 2.0)'
    """
    if report is None:
        return "no guarantee: no assumption report"
    verdict = _get(report, "verdict")
    if verdict == "guaranteed":
        theorem = _short_theorem(_get(report, "theorem") or "")
        params = _get(report, "params") or {}
        algorithm = str(_get(report, "algorithm") or "")
        if params.get("prior_kind") == "certified" and theorem and not theorem.startswith("PnP"):
            theorem = f"PnP-{algorithm}: {theorem}" if algorithm else theorem
        parts = ([theorem] if theorem else []) + _guarantee_details(report)
        if "stationary point" in str(_get(report, "conclusion") or ""):
            parts.insert(1 if theorem else 0, "to a stationary point of a nonconvex objective")
        line = f"{verdict} ({', '.join(parts)})" if parts else str(verdict)
    else:
        reason = _get(report, "reason")
        line = f"{verdict}: {reason}" if reason else str(verdict)
    if _get(report, "unsafe", False):
        line += " [UNSAFE: run outside the convergence bound]"
    return line


def _fmt(x: float | None, spec: str) -> str:
    width = int(re.match(r"\d*", spec).group(0) or 0)
    if x is None:
        return format("-", f">{width}")
    if isinstance(x, float) and not math.isfinite(x):
        return format(str(x), f">{width}")
    return format(x, spec)


def format_table(record: Mapping[str, Any]) -> str:
    """The short human-readable summary printed by ``stablepnp solve``."""
    p = record["problem"]
    shape = record["shape"]
    size = f"{shape[-2]}x{shape[-1]} {'gray' if shape[1] == 1 else 'color'}"
    op = p["operator"]
    if op == "blur":
        op = f"blur {p['kernel']} ({p['boundary']})"
    elif op == "downsampling":
        op = f"downsampling x{p['factor']}"
    elif op == "inpainting":
        op = f"inpainting {p['mask_ratio']:.0%} removed"
    noise = f"{p['noise_model']} noise " + (f"sigma {p['sigma']:g}" if p["noise_model"] == "gaussian"
                                            else f"gain {p['gain']:g}" + (f", sigma {p['sigma']:g}"
                                                                          if p["noise_model"] == "poisson_gaussian"
                                                                          else ""))
    estimate = record.get("noise_estimate") or {}
    if record.get("noise_estimated") and _finite(record.get("noise_sigma")):  # the level the solver assumed
        noise = (f"{p['noise_model']} noise sigma {record['noise_sigma']:.4g} ± {_fmt(estimate.get('uncertainty'), '.2g')}"
                 " estimated from the data" + (f" (true {estimate['true_sigma']:g})"
                                               if _finite(estimate.get("true_sigma")) else ""))
    source = "observed, no ground truth" if record.get("observed_input") else f"seed {p['seed']}"
    lam = record["lam"]
    strength = record.get("denoiser_strength")
    relaxed = (f": below the trained range, relaxed to strength {strength:.3g}"
               if isinstance(strength, float) and strength < 1.0 else "")
    prior = f"{record['prior']} (lam {_fmt(lam, '.4g')}" + (
        f", denoiser sigma {record['denoiser_sigma']:.4g}{relaxed})" if record.get("denoiser_sigma") else ")")
    gain = record["psnr"] - record["psnr_observed"] if _finite(record["psnr"], record["psnr_observed"]) else None
    lines = [
        f"problem      {p['image']} {size}, {op}, {noise}, {source}",
        f"solver       {record['algorithm'].upper()} with prior {prior}, step {record['step']:.4g}",
        "",
        f"{'':17s}{'PSNR [dB]':>10s}{'SSIM':>9s}",
        f"  {record['observed_label']:<15s}{_fmt(record['psnr_observed'], '10.2f')}{_fmt(record['ssim_observed'], '9.4f')}",
        f"  {'reconstruction':<15s}{_fmt(record['psnr'], '10.2f')}{_fmt(record['ssim'], '9.4f')}"
        + (f"   ({gain:+.2f} dB)" if gain is not None else "")
        + (f"   ({record['status'].upper()}: no reconstruction)" if record.get("failed") else ""),
        "",
        f"iterations   {record['iterations']} ({record['status']}, final residual "
        f"{_fmt(record['final_residual'], '.2e')}, tol {record['tol']:g})" + _acceleration_text(record),
        f"time         {record['seconds']:.2f} s (iterations), {record['seconds_total']:.2f} s (total)",
        f"guarantee    {record['guarantee']['line']}",
    ]
    mono = record.get("monotone") or {}
    if mono.get("checked"):
        lines.append("monotone     objective decreased at every iteration" if mono.get("holds") else
                     f"monotone     WARNING: objective increased at {mono.get('violations')} iteration(s) although "
                     "theory says it decreases (inexact prox or round-off)")
    inexact = record.get("inexact_prox") or {}
    if inexact.get("calls"):
        ratio, missed = inexact.get("max_ratio"), inexact.get("violation")
        lines.append(f"inner prox   {inexact['calls']} solves, {inexact.get('inner_iterations_total', 0)} inner "
                     f"iterations, certified error <= {inexact.get('schedule')}"
                     + (f" (worst bound/schedule {ratio:.2g})" if _finite(ratio) else "")
                     + (f"; MISSED at iteration {missed.get('call')}" if missed else ""))
    for text in record.get("warnings") or []:
        lines.append(f"warning      {text}")
    diag = record.get("diagnostics")
    if diag:
        lines.append(f"diagnostics  {diagnostics_line(diag)}")
    if record.get("figure"):
        lines.append(f"figure       {record['figure']}")
    if diag and diag.get("figure"):
        lines.append(f"diag figure  {diag['figure']}")
    if record.get("reconstruction_png"):
        lines.append(f"output       {record['reconstruction']}, {Path(record['reconstruction_png']).name} (8-bit, "
                     f"clipped to [0, 1]), {Path(record['reconstruction_tiff']).name} (float32, not clipped)")
    if record.get("json"):
        lines.append(f"record       {record['json']}")
    return "\n".join(lines)


def _acceleration_text(record: Mapping[str, Any]) -> str:
    """``"; Anderson: 30 accepted, 2 refused, 35 map evaluations"`` (empty for a plain run)."""
    acc = record.get("acceleration")
    if not acc:
        return ""
    fallback = (record.get("verification") or {}).get("fallback")
    more = (f"; {fallback['reason']}: {fallback['plain_iterations']} plain iterations followed"
            if isinstance(fallback, Mapping) and fallback.get("reason") else "")
    return (f"; Anderson: {acc.get('accepted', 0)} accepted, {acc.get('rejected', 0)} refused by the safeguard, "
            f"{acc.get('evaluations', 0)} map evaluations" + more)


def diagnostics_line(diag: Mapping[str, Any]) -> str:
    """One line of the convergence diagnostics of a record (``record["diagnostics"]``).

    Examples
    --------
    >>> diagnostics_line({"fixed_point_residual": 1e-4, "relative_fixed_point_residual": 1e-6,
    ...                   "steps_monotone": True, "envelope_holds": None, "local_lipschitz": []})
    'fixed-point residual 1.00e-04 (rel 1.00e-06); steps nonincreasing; envelope n/a; local Lip(D) n/a (no learned denoiser)'
    """
    fpr, rel = diag.get("fixed_point_residual"), diag.get("relative_fixed_point_residual")
    parts = [f"fixed-point residual {_fmt(fpr, '.2e')} (rel {_fmt(rel, '.2e')})"]
    if diag.get("steps_monotone"):
        parts.append("steps nonincreasing")
    else:
        inc = diag.get("max_step_increase")
        parts.append("steps increase" + (f" up to x{inc:.3g}" if _finite(inc) else ""))
    holds = diag.get("envelope_holds")
    if holds is None:
        parts.append("envelope n/a")
    elif holds:
        parts.append(f"envelope holds (a = {_num(float(diag['alpha']))})")
    else:
        parts.append(f"envelope VIOLATED at {diag.get('envelope_violations')} step(s) (a = {_num(float(diag['alpha']))}, "
                     "bound uses the estimated dist(x0, Fix T))")
    lips = [p.get("estimate") for p in diag.get("local_lipschitz") or [] if _finite(p.get("estimate"))]
    if lips:
        parts.append(f"local Lip(D) {min(lips):.4f}..{max(lips):.4f} at {len(lips)} iterate(s)")
    elif diag.get("notes"):
        parts.append("local Lip(D) not computed (" + "; ".join(str(n) for n in diag["notes"]) + ")")
    else:
        parts.append("local Lip(D) n/a (no learned denoiser)")
    return "; ".join(parts)


def diagnostics_record(diag: Any, *, figure: str | Path | None = None) -> dict[str, Any]:
    """Plain-data form of :class:`pnp.convergence.ConvergenceDiagnostics` for the JSON record.

    ``diag.to_dict()`` (step lengths, envelope, fixed-point residual, local Lipschitz
    estimates, theory line, notes) plus ``envelope_holds`` (None when no envelope applies,
    else whether every step length lies below the estimated bound and the steps are
    nonincreasing) and the path of the diagnostics ``figure``.
    """
    d = diag.to_dict()
    d["envelope_holds"] = None if diag.envelope is None else bool(diag.envelope_violations == 0
                                                                   and diag.steps_monotone)
    d["figure"] = None if figure is None else str(figure)
    return d


def monotone_summary(report: Any) -> dict[str, Any] | None:
    """The objective-monotonicity diagnostic as plain data (None when the run has none)."""
    if report is None:
        return None
    return {
        "checked": bool(getattr(report, "checked", False)),
        "holds": bool(getattr(report, "holds", True)),
        "violations": len(getattr(report, "violations", ()) or ()),
        "reason": getattr(report, "reason", ""),
    }


def format_batch_table(summary: Mapping[str, Any]) -> str:
    """The table printed by ``stablepnp solve --input-dir``: one row per image, the guarantee, the outputs."""
    par = summary["parameters"]
    images = summary["images"]
    observed = bool(par.get("observed"))
    value = par.get("value")
    name = Path(par["prior"]).name if is_checkpoint(str(par["prior"])) else par["prior"]
    prior = f"{name} ({par.get('param', 'lam')} {_fmt(value, '.4g')})"
    n_batches = len({r.get("batch") for r in images})
    name_w = max([len("file")] + [len(Path(r["file"]).name) for r in images])
    lines = [
        f"input        {len(images)} image(s) in {n_batches} batch(es), "
        + ("observations deblurred with " if observed else "synthetic observations: ")
        + f"blur {par['kernel']}, noise sigma {par['noise']:g}",
        f"solver       {par['algorithm'].upper()} with prior {prior}",
        "",
        f"  {'file':<{name_w}s}  {'shape':>11s}{'PSNR obs':>10s}{'PSNR':>8s}{'SSIM':>8s}{'iters':>7s}  "
        f"{'status':<10s}guarantee",
    ]
    for r in images:
        shape = "x".join(str(v) for v in r["shape"])
        lines.append(
            f"  {Path(r['file']).name:<{name_w}s}  {shape:>11s}{_fmt(r.get('psnr_observed'), '10.2f')}"
            f"{_fmt(r.get('psnr'), '8.2f')}{_fmt(r.get('ssim'), '8.4f')}{r['iterations']:>7d}  "
            f"{r['status']:<10s}{r.get('verdict') or '-'}"
        )
    scored = [r for r in images if _finite(r.get("psnr"), r.get("psnr_observed"))]
    if scored:
        mean_obs = sum(r["psnr_observed"] for r in scored) / len(scored)
        mean_rec = sum(r["psnr"] for r in scored) / len(scored)
        lines.append(f"  {'mean':<{name_w}s}  {'':>11s}{mean_obs:10.2f}{mean_rec:8.2f}   ({mean_rec - mean_obs:+.2f} dB)")
    lines.append("")
    for i, line in enumerate(summary.get("guarantee_lines") or []):
        lines.append(f"{'guarantee' if i == 0 else '':<13s}{line}")
    lines.append(f"time         {summary['seconds']:.2f} s")
    out = Path(summary["out"])
    lines.append(f"output       {out}/ (<name>.json, <name>.png, <name>_reconstruction.npy per image)")
    lines.append(f"summary      {out / 'summary.md'}, {out / 'summary.csv'}, {out / 'summary.json'}")
    if summary.get("json"):
        lines.append(f"record       {summary['json']}")
    return "\n".join(lines)
