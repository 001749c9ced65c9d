"""Reports of the ``stablepnp robustness`` job: ``results.md``, ``results.csv``, the prior
robustness table and the accuracy-versus-radius plots."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from .config import RobustnessConfig
from .prior_eval import prior_table

__all__ = ["classifier_table", "write_reports"]


def _fmt(v: float) -> str:
    return f"{100 * v:.1f}"


def classifier_table(results: dict[str, dict[str, Any]], eps: tuple[float, ...]) -> str:
    """Markdown table: clean, certified and PGD-l2 accuracy (%) per model, and the certified L."""
    heads = ["model", "params", "L bound", "clean"] + [f"cert {round(e * 255)}/255" for e in eps] + \
            ["clean (attack set)"] + [f"PGD-l2 {round(e * 255)}/255" for e in eps]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for name, r in results.items():
        params = f"{r['parameters'] / 1000:.0f}k" if "parameters" in r else "-"
        attacked = _fmt(r["clean_attacked"]) if "clean_attacked" in r else "-"  # absent in older results
        row = [name, params, f"{r['lipschitz_bound']:.3g}", _fmt(r["clean"])] + [_fmt(v) for v in r["certified"]] + \
              [attacked] + [_fmt(v) for v in r["pgd_l2"]]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def write_reports(out_dir: Path, cfg: RobustnessConfig, results: dict[str, Any]) -> None:
    models = results["models"]
    md = ["# Robustness results", ""]
    if models:  # a job may evaluate priors only
        first = next(iter(models.values()))
        md += [f"Dataset: {results['dataset']} (test n={first['n_test']}, attacks on the first {first['n_attack']}); "
               "accuracies in %.", "", classifier_table(models, cfg.evaluation.eps), "",
               "| model | AUC cert (l2) | AUC PGD-l2 | AUC PGD-linf | train steps | train s |", "|---|---|---|---|---|---|"]
    for name, r in models.items():
        md.append(f"| {name} | {r['auc_certified']:.3f} | {r['auc_pgd_l2']:.3f} | {r['auc_pgd_linf']:.3f} | "
                  f"{r['train']['steps']} | {r['train']['train_seconds']:.0f} |")
    with open(out_dir / "results.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["model", "metric", "eps", "value"])
        for name, r in models.items():
            w.writerow([name, "clean", 0.0, r["clean"]])
            w.writerow([name, "lipschitz_bound", "", r["lipschitz_bound"]])
            for key, eps_key in (("certified", "eps"), ("pgd_l2", "eps"), ("certified_curve", "curve_eps_l2"),
                                 ("pgd_l2_curve", "curve_eps_l2"), ("pgd_linf_curve", "curve_eps_linf"),
                                 ("gaussian", "gaussian_std"), ("salt_pepper", "salt_pepper_amount")):
                for e, v in zip(r[eps_key], r[key]):
                    w.writerow([name, key, e, v])
    if results.get("prior_eval"):
        table = prior_table(results["prior_eval"])
        md += ["", "## Prior robustness", "", table]
        (out_dir / "prior_robustness.md").write_text(table)
        with open(out_dir / "prior_robustness.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["denoiser", "map", "certified_bound", "empirical_max", "empirical_mean", "attack"])
            for row in results["prior_eval"]["rows"]:
                w.writerow([row["denoiser"], row["map"], row["certified"], row["empirical_max"], row["empirical_mean"], row["attack"]])
    (out_dir / "results.md").write_text("\n".join(md) + "\n")
    if models:
        _plots(out_dir, models)


def _plots(out_dir: Path, models: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def curve_figure(draw, xlabel: str, ylabel: str, fontsize: int, name: str) -> None:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        draw(ax)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=fontsize)
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=120)
        plt.close(fig)

    def l2(ax) -> None:  # attacked and certified accuracy, one colour per model
        for name, r in models.items():
            line = ax.plot(r["curve_eps_l2"], r["pgd_l2_curve"], marker="o", label=f"{name} PGD")[0]
            ax.plot(r["curve_eps_l2"], r["certified_curve"], ls="--", color=line.get_color(), label=f"{name} certified")

    def linf(ax) -> None:
        for name, r in models.items():
            ax.plot(r["curve_eps_linf"], r["pgd_linf_curve"], marker="o", label=name)

    curve_figure(l2, "l2 radius eps", "accuracy", 6, "acc_vs_eps_l2.png")
    curve_figure(linf, "l-inf radius eps", "PGD accuracy", 7, "acc_vs_eps_linf.png")
