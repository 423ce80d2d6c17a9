"""The report stage (``04_report.ipynb``): statistics, masking checks, figures and the summary.

A pure function of the tables the stages before it wrote: ``run`` first writes every table
of the report (``write_tables``), then the figures (``write_figures``) and ``summary.md``
(``write_summary_file``) from the tables on disk. Nothing here loads a model.
"""
from __future__ import annotations

import pandas as pd

from ..analysis.masking import masking_checks
from ..analysis.statistics import (ACCURACY_BOUNDS, paired_tests, robust_auc, summarize_attribution_stability,
                                   summarize_runs)
from ..report import figures
from ..report.summary import headline_attack, write_summary
from ..report.tables import widest_epsilon
from ..store.files import read_arrays, read_csv, save_figure, write_csv, write_text
from ..store.layout import Layout
from ..store.provenance import begin_stage, finish_stage

FAITHFULNESS = ("infidelity_clean", "infidelity_adv", "sensitivity_clean", "sensitivity_adv")
STABILITY = ("spearman", "top_k_overlap")
INPUTS = ("train_history", "models", "robustness", "transfer", "large_epsilon", "by_class", "attribution_stability")
OUTPUTS = ("stats", "class_stats", "masking_checks", "paired_tests", "auc", "attribution_metrics", "attribution_summary")


def read_tables(cfg, names) -> dict[str, pd.DataFrame]:
    layout = Layout(cfg.results_dir)
    return {name: read_csv(layout.table(name)) for name in names}


def compute_tables(cfg, inputs: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The report's tables from the stages' tables:

    - ``stats``: mean, sd and 95% t-interval (clipped to [0, 1]) of accuracy per model,
      attack and ε across runs; ``class_stats``: the same per class;
    - ``masking_checks``: ``analysis.masking.masking_checks``;
    - ``paired_tests``: for every attack, pair of models and ε > 0, the paired comparison
      across runs (``analysis.statistics.paired_tests``);
    - ``auc``: the area under each accuracy-vs-ε curve (normalised), mean and interval;
    - ``attribution_summary`` (Spearman, top-k overlap) and ``attribution_metrics``
      (infidelity, sensitivity_max): per model and method, across runs.
    """
    models = list(cfg.models)
    robustness, stability = inputs["robustness"], inputs["attribution_stability"]
    return {
        "stats": summarize_runs(robustness, ["model", "attack", "epsilon"], "accuracy", bounds=ACCURACY_BOUNDS),
        "class_stats": summarize_runs(inputs["by_class"], ["model", "attack", "epsilon", "label"], "accuracy",
                                      bounds=ACCURACY_BOUNDS),
        "masking_checks": masking_checks(robustness, inputs["transfer"], inputs["large_epsilon"]),
        "paired_tests": pd.concat([paired_tests(robustness, attack, models)
                                   for attack in dict.fromkeys(robustness["attack"])], ignore_index=True),
        "auc": summarize_runs(robust_auc(robustness), ["model", "attack"], "auc", bounds=ACCURACY_BOUNDS),
        "attribution_metrics": pd.concat([summarize_attribution_stability(stability, m) for m in FAITHFULNESS]),
        "attribution_summary": pd.concat([summarize_attribution_stability(stability, m) for m in STABILITY]),
    }


def write_figures(cfg) -> list[str]:
    """Every figure of the report, from the tables on disk; returns their names."""
    layout, models = Layout(cfg.results_dir), list(cfg.models)
    t = read_tables(cfg, ("train_history", "robustness", "transfer", "attribution_summary"))
    drawn = {
        "training_curves": figures.plot_training_curves(t["train_history"], models),
        "robustness": figures.plot_robustness_curves(t["robustness"], models, attacks=["fgsm", "pgd", "worst_case"],
                                                     reference=cfg.report.reference),
        "attack_comparison": figures.plot_attack_comparison(t["robustness"], models),
        "attribution_stability": figures.plot_attribution_stability(
            t["attribution_summary"][t["attribution_summary"]["metric"] == "spearman"], models, "spearman"),
    }
    if not t["transfer"].empty:
        nonzero = sorted(e for e in t["transfer"]["epsilon"].unique() if e > 0)
        shown = [nonzero[i] for i in sorted({round(j * (len(nonzero) - 1) / 3) for j in range(1, 4)})]
        drawn["transfer"] = figures.plot_transfer_matrix(t["transfer"], models, shown)
    maps = read_arrays(layout.arrays("attribution_maps"))
    for image in range(cfg.interpret.panel_images):
        drawn[f"attributions_{image}"] = figures.plot_attribution_panel(maps, models, cfg.interpret.methods, image=image)
    boundaries = read_arrays(layout.arrays("decision_boundaries"))
    if cfg.dataset.input_shape == (2,) and boundaries is not None:
        drawn["decision_boundaries"] = figures.plot_decision_boundaries(
            boundaries, models, cfg.interpret.epsilon, [str(c) for c in cfg.dataset.classes])
    for name, fig in drawn.items():
        save_figure(fig, layout.figure(name))
        figures.plt.close(fig)
    return list(drawn)


def write_summary_file(cfg) -> str:
    """``summary.md`` from the tables on disk; returns its text."""
    tables = read_tables(cfg, ("models", "large_epsilon", *OUTPUTS))
    text = write_summary(cfg, tables)
    write_text(text, Layout(cfg.results_dir).summary)
    return text


def run(cfg, log=print) -> dict[str, pd.DataFrame]:
    """Write every table of the report, then its figures and summary from them; returns the tables."""
    layout = Layout(cfg.results_dir)
    begin_stage(cfg, "report")
    tables = compute_tables(cfg, read_tables(cfg, INPUTS))
    for name, table in tables.items():
        write_csv(table, layout.table(name))
    names = write_figures(cfg)
    write_summary_file(cfg)
    log(f"report: {len(tables)} tables, {len(names)} figures and {layout.summary.name} in {layout.root}")
    finish_stage(cfg, "report")
    return tables


def headline(stats: pd.DataFrame) -> tuple[str, float]:
    """The attack the summary quotes and the ε where the models differ most under it."""
    attack = headline_attack(stats)
    return attack, widest_epsilon(stats, attack)
