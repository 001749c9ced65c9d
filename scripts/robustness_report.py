"""Print the README robustness tables from the JSON written by ``stablepnp robustness``.

Usage::

    python scripts/robustness_report.py runs/robustness/results.json [--out report.md]

Tables: per architecture, Fashion-MNIST clean accuracy, certified accuracy (Tsuzuku et al. margin
with the certified Lipschitz bound) and PGD-l2 accuracy at eps in {36, 72, 108}/255; then the
prior-robustness table (certified bound vs worst amplification found, denoiser and PnP map).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PAPER_EPS = (36, 72, 108)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}"


def classifier_table(results: dict) -> str:
    models = results["models"]
    heads = ["architecture", "params", "certified L", "clean"] + [f"certified {e}/255" for e in PAPER_EPS] + \
            ["clean (attack set)"] + [f"PGD-l2 {e}/255" for e in PAPER_EPS] + ["train steps", "train s"]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for name, r in models.items():
        by_eps = {round(e * 255): i for i, e in enumerate(r["eps"])}
        cert = [r["certified"][by_eps[e]] if e in by_eps else None for e in PAPER_EPS]
        pgd = [r["pgd_l2"][by_eps[e]] if e in by_eps else None for e in PAPER_EPS]
        train = r.get("train", {})
        params = f"{r['parameters'] / 1000:.0f}k" if "parameters" in r else "n/a"
        lines.append("| " + " | ".join([name, params, f"{r['lipschitz_bound']:.4g}", _pct(r["clean"])]
                                       + [_pct(v) for v in cert] + [_pct(r.get("clean_attacked"))]
                                       + [_pct(v) for v in pgd]
                                       + [str(train.get("steps", "")), f"{train.get('train_seconds', 0):.0f}"]) + " |")
    first = next(iter(models.values()))
    note = (f"\n{results['dataset']}: clean and certified accuracy on {first['n_test']} test images, "
            f"PGD-l2 ({first.get('pgd_steps', '?')} steps) on the first {first['n_attack']}; accuracies in %.\n")
    return "\n".join(lines) + "\n" + note


def prior_table(results: dict) -> str:
    prior = results.get("prior_eval")
    if not prior:
        return "(no prior evaluation in this run)\n"
    lines = ["| denoiser | map | certified bound | worst amplification found (max / mean) | attack |", "|---|---|---|---|---|"]
    for r in prior["rows"]:
        bound = "none" if r["certified"] is None else f"{r['certified']:.4g}"
        lines.append(f"| {r['denoiser']} | {r['map']} | {bound} | {r['empirical_max']:.4g} / {r['empirical_mean']:.4g} | {r['attack']} |")
    note = (f"\nTest images {', '.join(prior['images'])} ({prior['image_size']}px), l2 radius {prior['eps']}; "
            f"PnP-PGD {prior['pnp']['iterations']} iterations, step {prior['pnp']['step']:.4g}, {prior['operator']}.\n")
    return "\n".join(lines) + "\n" + note


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="README tables from a robustness results.json")
    ap.add_argument("results", help="results.json written by `stablepnp robustness`")
    ap.add_argument("--out", help="write the Markdown here as well as to stdout")
    args = ap.parse_args(argv)
    path = Path(args.results)
    if not path.is_file():
        print(f"robustness_report: error: {path} not found; run `stablepnp robustness CONFIG.yaml` first", file=sys.stderr)
        return 2
    results = json.loads(path.read_text())
    text = "### Certified and empirical robustness (Fashion-MNIST)\n\n" + classifier_table(results) + \
           "\n### Robustness of the priors\n\n" + prior_table(results)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
