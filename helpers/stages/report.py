"""The report stage (``04_report.ipynb``): statistics, masking checks, figures and the summary.

A pure function of the tables the stages before it wrote: ``run`` first writes every table
of the report (``write_tables``), then the figures (``write_figures``) and ``summary.md``
(``write_summary_file``) from the tables on disk. Nothing here loads a model.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis.masking import LARGE_EPSILON_MAX_ACCURACY, masking_checks, run_checks, tolerance
from ..analysis.statistics import (ACCURACY_BOUNDS, bracket_separations, bracket_table, comparisons, overlap_ratio,
                                   power_table, robust_auc, summarize_attribution_stability, summarize_runs)
from ..report import figures
from ..report.defences import defences_table, shown_epsilon
from ..report.tables import hardware_table
from ..report.summary import headline_attack, write_summary
from ..store.files import read_arrays, read_csv, save_figure, write_csv, write_text
from ..store.layout import Layout
from ..store.provenance import begin_stage, finish_stage
from . import progress
from .inputs import stochastic_models

FAITHFULNESS = ("infidelity_clean", "infidelity_adv", "sensitivity_clean", "sensitivity_adv")
STABILITY = ("spearman", "spearman_chance", "spearman_random", "spearman_above_chance", "top_k_overlap", "top_k_chance")
INPUTS = ("train_history", "models", "robustness", "transfer", "large_epsilon", "by_class", "convergence",
          "certified", "escalation", "attribution_stability")
OUTPUTS = ("stats", "class_stats", "masking_checks", "masking_runs", "escalation_checks", "paired_tests", "power",
           "auc", "bracket", "separations", "smoothing", "hardware", "defences", "attribution_metrics", "attribution_summary")


def read_tables(cfg, names) -> dict[str, pd.DataFrame]:
    layout = Layout(cfg.results_dir)
    return {name: read_csv(layout.table(name)) for name in names}


def base_suite(robustness: pd.DataFrame, escalation: pd.DataFrame, methods) -> pd.DataFrame:
    """The robustness table as the configured attacks left it: without the escalation attacks,
    and with the worst case before escalation (what the masking checks diagnose)."""
    base = robustness[robustness["attack"].isin([*methods, "worst_case"])].copy()
    before = escalation[escalation["kind"] == "budget"].set_index(["model", "run", "epsilon"])["before"]
    if before.empty:
        return base
    rows = base["attack"] == "worst_case"
    keys = list(zip(base.loc[rows, "model"], base.loc[rows, "run"], base.loc[rows, "epsilon"]))
    base.loc[rows, "accuracy"] = [before.get(key, value) for key, value in zip(keys, base.loc[rows, "accuracy"])]
    return base


def escalation_checks(runs: pd.DataFrame, escalation: pd.DataFrame) -> pd.DataFrame:
    """For every check that flagged a run: whether escalation resolved it. Escalation answers
    the question every flag asks (do the attacks underestimate what can be done?) by attacking
    harder; a flag is resolved when that converged: for ``large_epsilon``, the escalation
    attacks drive accuracy at the largest masking budget to the ceiling; for the other checks,
    the escalation attacks and transfer from every other model lower the worst case at no
    budget by more than two binomial standard errors (the configured suite had found what they
    find). Also: how far escalation lowered the worst case, and the attack that fooled the
    most points alone."""
    rows = []
    for r in runs[runs["status"] == "FLAG"].itertuples():
        e = escalation[(escalation["model"] == r.model) & (escalation["run"] == r.run)]
        budget, masking = e[e["kind"] == "budget"], e[e["kind"] == "masking"]
        drop = float((budget["before"] - budget["after"]).max()) if not budget.empty else np.nan
        deciding = budget.sort_values("after").iloc[0]["deciding"] if not budget.empty else ""
        if e.empty or (r.check != "large_epsilon" and budget.empty):
            resolved = False  # not escalated (at the budgets): no evidence either way
        elif r.check == "large_epsilon":
            last = masking.sort_values("epsilon").iloc[-1] if not masking.empty else None
            resolved = last is not None and last["after"] <= LARGE_EPSILON_MAX_ACCURACY
        else:
            allowed = tolerance(budget["before"], budget["after"], budget["n"])
            resolved = not ((budget["before"] - budget["after"]) > allowed).any()
        rows.append({"model": r.model, "run": r.run, "check": r.check, "escalated": not e.empty,
                     "status_after": "PASS" if resolved else "FLAG", "resolved": resolved,
                     "worst_case_drop": drop, "deciding_attack": deciding})
    return pd.DataFrame(rows, columns=["model", "run", "check", "escalated", "status_after", "resolved",
                                       "worst_case_drop", "deciding_attack"])


def degenerate_runs(trained: pd.DataFrame) -> set[tuple[str, int]]:
    """The (model, run) pairs ``models.csv`` marks degenerate."""
    return set(zip(trained.loc[trained["degenerate"], "model"], trained.loc[trained["degenerate"], "run"]))


def without_degenerate(cfg, table: pd.DataFrame, degenerate: set) -> pd.DataFrame:
    """``table`` (with model and run columns) without the degenerate runs, when the config
    leaves them out (``report.exclude_degenerate``)."""
    if not cfg.report.exclude_degenerate or table.empty or not degenerate:
        return table
    return table[[(m, r) not in degenerate for m, r in zip(table["model"], table["run"])]]


def compute_tables(cfg, inputs: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The report's tables from the stages' tables. Degenerate runs (``models.csv``) are left
    out of every statistic when ``report.exclude_degenerate`` (and never masking-checked);
    intervals and tests are corrected for the data the runs share (``n_test/n_train``):

    - ``stats``: mean, sd and corrected 95% t-interval of accuracy per model, attack and ε
      across runs (unclipped, with ``clipped`` and ``all_equal``); ``class_stats``: per class;
    - ``masking_runs``: every gradient-masking check per model and run; ``masking_checks``:
      per model, FLAG when any run flags;
    - ``paired_tests``: every comparison (each attack, pair of models, ε > 0 and the area
      under the curve), the primary one marked, the others Holm-adjusted per attack;
    - ``power``: runs needed to detect a difference of 0.05 for the primary attack's
      comparisons on the primary's measure;
    - ``auc``: the area under each accuracy-vs-ε curve (normalised), mean and interval;
    - ``bracket``: per model and ε the certified (lower bound) and attacked (upper bound)
      accuracy and their gap; ``separations``: where one model's certified accuracy exceeds
      another's attacked accuracy in every run;
    - ``hardware``: where circuits have noise or shots, each circuit's settings beside its
      clean, certified and attacked accuracy per ε (empty otherwise);
    - ``defences``: where models are defended, each defended model and its undefended sibling
      per ε: clean, worst-case and certified accuracy, training time and the paired gains
      (``report.defences``; empty otherwise);
    - ``attribution_summary`` (Spearman, its chance levels, top-k overlap) and
      ``attribution_metrics`` (infidelity, sensitivity_max): per model and method, across runs.
    """
    models, trained = list(cfg.models), inputs["models"]
    ratio = overlap_ratio(cfg.dataset.split, trained)
    degenerate = degenerate_runs(trained)

    def keep(table: pd.DataFrame) -> pd.DataFrame:
        return without_degenerate(cfg, table, degenerate)

    # The escalation attacks ran on flagged runs only: they count in the worst case, but a mean
    # or a test over that subset of runs would not compare with the others (escalation.csv has them).
    reported = [*cfg.attack.methods, "worst_case"]
    robustness = keep(inputs["robustness"])
    robustness = robustness[robustness["attack"].isin(reported)]
    by_class = keep(inputs["by_class"])
    stability = keep(inputs["attribution_stability"])
    base = base_suite(inputs["robustness"], inputs["escalation"], cfg.attack.methods)
    runs = run_checks(base, inputs["transfer"], inputs["large_epsilon"], inputs["convergence"], degenerate,
                      stochastic_models(cfg))
    auc_runs = robust_auc(robustness)
    compared = comparisons(robustness, auc_runs, models, ratio, cfg.report.primary)
    primary = cfg.report.primary
    focus = compared[compared["attack"] == (primary.attack if primary else headline_attack(robustness))]
    focus = focus[focus["measure"] == "auc"] if primary is None or primary.epsilon is None \
        else focus[focus["epsilon"] == primary.epsilon]
    bracket = bracket_table(keep(inputs["certified"]), robustness, ratio)
    return {
        "stats": summarize_runs(robustness, ["model", "attack", "epsilon"], "accuracy", ratio=ratio, bounds=ACCURACY_BOUNDS),
        "class_stats": summarize_runs(by_class[by_class["attack"].isin(reported)],
                                      ["model", "attack", "epsilon", "label"], "accuracy", ratio=ratio,
                                      bounds=ACCURACY_BOUNDS),
        "masking_runs": runs,
        "escalation_checks": escalation_checks(runs, inputs["escalation"]),
        "masking_checks": masking_checks(runs),
        "paired_tests": compared,
        "power": power_table(focus, ratio),
        "auc": summarize_runs(auc_runs, ["model", "attack"], "auc", ratio=ratio, bounds=ACCURACY_BOUNDS),
        "bracket": bracket,
        "separations": bracket_separations(keep(inputs["certified"]), robustness, models),
        "smoothing": summarize_runs(keep(inputs["certified"])[inputs["certified"]["norm"] == "l2"],
                                    ["model", "certificate", "epsilon"], "accuracy", ratio=ratio, bounds=ACCURACY_BOUNDS),
        "hardware": hardware_table(bracket, cfg.section("models")),
        "defences": defences_table(cfg.models, keep(inputs["robustness"]), keep(inputs["certified"]), trained, ratio),
        "attribution_metrics": pd.concat([summarize_attribution_stability(stability, m, ratio) for m in FAITHFULNESS]),
        "attribution_summary": pd.concat([summarize_attribution_stability(stability, m, ratio) for m in STABILITY]),
    }


def write_figures(cfg) -> list[str]:
    """Every figure of the report, from the tables on disk; returns their names."""
    layout, models = Layout(cfg.results_dir), list(cfg.models)
    t = read_tables(cfg, ("train_history", "stats", "transfer", "attribution_summary", "bracket", "attack_traces",
                          "smoothing", "hardware", "defences"))
    summary = t["attribution_summary"]
    drawn = {
        "training_curves": figures.plot_training_curves(t["train_history"], models),
        "robustness": figures.plot_robustness_curves(t["stats"], models, attacks=["fgsm", "pgd", "worst_case"],
                                                     reference=cfg.report.reference),
        "attack_comparison": figures.plot_attack_comparison(t["stats"], models),
        "bracket": figures.plot_bracket(t["bracket"], models),
        "attribution_stability": figures.plot_attribution_stability(
            summary[summary["metric"] == "spearman"], models, "spearman",
            chance=summary[summary["metric"] == "spearman_chance"]),
    }
    if not t["smoothing"].empty:
        drawn["smoothing"] = figures.plot_smoothing(t["smoothing"], models)
    if not t["hardware"].empty:
        nonzero = sorted(e for e in t["hardware"]["epsilon"].unique() if e > 0)
        shown = [nonzero[i] for i in sorted({round(j * (len(nonzero) - 1) / 2) for j in range(3)})]
        drawn["hardware"] = figures.plot_hardware(t["hardware"], shown)
    if not t["defences"].empty:
        drawn["defences"] = figures.plot_defences(t["defences"], models, shown_epsilon(t["defences"], cfg.report.primary))
    if not t["attack_traces"].empty:
        budgets = sorted(e for e in t["attack_traces"]["epsilon"].unique() if e > 0)
        primary = cfg.report.primary
        at = primary.epsilon if primary is not None and primary.epsilon in budgets else budgets[len(budgets) // 2]
        drawn["attack_convergence"] = figures.plot_attack_convergence(t["attack_traces"], models, at)
    if not t["transfer"].empty:
        nonzero = sorted(e for e in t["transfer"]["epsilon"].unique() if e > 0)
        shown = [nonzero[i] for i in sorted({round(j * (len(nonzero) - 1) / 3) for j in range(1, 4)})]
        drawn["transfer"] = figures.plot_transfer_matrix(t["transfer"], models, shown)
    maps = read_arrays(layout.arrays("attribution_maps"))
    for image in range(cfg.interpret.panel_images):
        drawn[f"attributions_{image}"] = figures.plot_attribution_panel(
            maps, models, cfg.interpret.methods, image=image, class_names=list(cfg.dataset.class_names),
            epsilon=cfg.interpret.epsilon)
    boundaries = read_arrays(layout.arrays("decision_boundaries"))
    if cfg.dataset.input_shape == (2,) and boundaries is not None:
        drawn["decision_boundaries"] = figures.plot_decision_boundaries(
            boundaries, models, cfg.interpret.epsilon, list(cfg.dataset.class_names))
    for name, fig in drawn.items():
        save_figure(fig, layout.figure(name))
        figures.plt.close(fig)
    return list(drawn)


def write_summary_file(cfg) -> str:
    """``summary.md`` from the tables on disk; returns its text."""
    tables = read_tables(cfg, ("models", "large_epsilon", "robustness", *OUTPUTS))
    tables["large_epsilon"] = without_degenerate(cfg, tables["large_epsilon"], degenerate_runs(tables["models"]))
    text = write_summary(cfg, tables)
    write_text(text, Layout(cfg.results_dir).summary)
    return text


def run(cfg, log=None) -> dict[str, pd.DataFrame]:
    """Write every table of the report, then its figures and summary from them; returns the
    tables. A progress bar counts the three steps; the closing line goes to ``log`` (default:
    a line above the bar)."""
    layout = Layout(cfg.results_dir)
    begin_stage(cfg, "report")
    with progress.StageBar("report", total=3, unit="step") as bar:
        tables = compute_tables(cfg, read_tables(cfg, INPUTS))
        for name, table in tables.items():
            write_csv(table, layout.table(name))
        bar.update()
        names = write_figures(cfg)
        bar.update()
        write_summary_file(cfg)
        bar.update()
        (log or bar.write)(f"report: {len(tables)} tables, {len(names)} figures and {layout.summary.name} in {layout.root}")
    finish_stage(cfg, "report")
    return tables
