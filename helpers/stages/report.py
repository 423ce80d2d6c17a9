"""The report stage (``04_report.ipynb``): statistics, masking checks, figures and the summary.

A pure function of the tables the stages before it wrote: ``run`` first writes every table
of the report (``write_tables``), then the figures (``write_figures``) and ``summary.md``
(``write_summary_file``) from the tables on disk. Nothing here loads a model.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis.masking import LARGE_EPSILON_MAX_ACCURACY, masking_checks, run_checks, tolerance, universal_checks
from ..analysis.statistics import (ACCURACY_BOUNDS, bracket_separations, bracket_table, comparisons, overlap_ratio,
                                   power_table, robust_auc, summarize_attribution_stability, summarize_runs)
from ..analysis.universal import universal_stats, universal_tests
from ..report import figures
from ..data import run_seeds, stratified_subset, subset_seed
from ..analysis.ceiling import with_ceiling
from ..report.ceiling import ceiling_curve, ceiling_table
from ..report.defences import defences_table, shown_epsilon
from ..report.costs import COLUMNS as COST_COLUMNS
from ..report.costs import costs_table, plot_costs
from ..report.exact import RADIUS_SUMMARY_COLUMNS, exact_comparisons, plot_radii, radius_summary
from ..report.tables import hardware_table
from ..report.summary import headline_attack, write_summary
from ..store.files import read_arrays, read_csv, save_figure, write_csv, write_text
from ..store.layout import Layout
from ..store.provenance import begin_stage, finish_stage
from . import progress
from ..registry import CERTIFICATES
from .attack import stage_columns
from .inputs import load_test_split, stochastic_models

FAITHFULNESS = ("infidelity_clean", "infidelity_adv", "sensitivity_clean", "sensitivity_adv")
STABILITY = ("spearman", "spearman_chance", "spearman_random", "spearman_above_chance", "top_k_overlap", "top_k_chance")
INPUTS = ("train_history", "models", "robustness", "transfer", "large_epsilon", "by_class", "convergence",
          "certified", "escalation", "attribution_stability")
L2_INPUTS = ("robustness_l2", "transfer_l2", "large_epsilon_l2", "convergence_l2", "minimum_norm_l2")
L2_OUTPUTS = ("stats_l2", "auc_l2", "paired_tests_l2", "bracket_l2", "separations_l2", "masking_runs_l2", "masking_checks_l2", "minimum_norm_summary_l2")
UNIVERSAL_OUTPUTS = ("universal_stats", "universal_tests")
OUTPUTS = ("stats", "class_stats", "masking_checks", "masking_runs", "escalation_checks", "paired_tests", "power",
           "auc", "bracket", "ceiling", "separations", "exact_comparisons", "radius_summary", "smoothing", "hardware",
           "defences", "attribution_metrics", "attribution_summary")


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


def reported_models(cfg, trained: pd.DataFrame) -> list[str]:
    """The config's models that have a run to report: all of them, less those degenerate in
    every run when the config leaves degenerate runs out (``report.exclude_degenerate``)."""
    always = trained.groupby("model")["degenerate"].all()
    return [m for m in cfg.models if not (cfg.report.exclude_degenerate and always.get(m, False))]


def without_degenerate(cfg, table: pd.DataFrame, degenerate: set) -> pd.DataFrame:
    """``table`` (with model and run columns) without the degenerate runs, when the config
    leaves them out (``report.exclude_degenerate``)."""
    if not cfg.report.exclude_degenerate or table.empty or not degenerate:
        return table
    return table[[(m, r) not in degenerate for m, r in zip(table["model"], table["run"])]]


def attacked_points(cfg, run: int) -> tuple[np.ndarray, np.ndarray]:
    """The test points (n, ...) in [0, 1] and labels (n,) that the attack stage evaluated in
    ``run``: its test split and the seeded subset ``attack.n_test`` (as ``stages.attack`` picks it)."""
    x, y = (t.cpu().numpy() for t in load_test_split(cfg, run, "cpu"))
    keep = stratified_subset(y, cfg.attack.n_test, subset_seed(cfg.dataset, run, run_seeds(cfg.seed, cfg.n_runs)))
    return x[keep], y[keep]


def compute_tables(cfg, inputs: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The report's tables from the stages' tables (``INPUTS``) and the data's ceiling on the
    attacked points (``ceiling``: ``report.ceiling.ceiling_table``). Degenerate runs (``models.csv``) are left
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
      accuracy and their gap, beside the data's ceiling (``ceiling``: per run, threat model
      and ε, what any classifier could reach on the attacked points; ``report.ceiling_seconds``);
      ``separations``: where one model's certified accuracy exceeds
      another's attacked accuracy in every run; ``exact_comparisons``: where the complete
      verifier ran, per pair of models and ε, the runs in which one is exactly more robust on
      the verified points; ``radius_summary``: per model, the verified points' certified and
      attack radii (``certify.exact.radius_points``; empty otherwise);
    - ``hardware``: where circuits have noise or shots, each circuit's settings beside its
      clean, certified and attacked accuracy per ε (empty otherwise);
    - ``defences``: where models are defended, each defended model and its undefended sibling
      per ε: clean, worst-case and certified accuracy, training time and the paired gains
      (``report.defences``; empty otherwise);
    - ``attribution_summary`` (Spearman, its chance levels, top-k overlap) and
      ``attribution_metrics`` (infidelity, sensitivity_max): per model and method, across runs.
    """
    trained = inputs["models"]
    models = reported_models(cfg, trained)
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
    certified = keep(inputs["certified"])
    linf = certified[certified["norm"] == "linf"]  # the L2 rows (attack.l2) have their own bracket
    smoothed = certified["certificate"].isin(CERTIFICATES.with_tag("smoothed"))
    ceiling = inputs["ceiling"]
    bracket = with_ceiling(bracket_table(linf, robustness, ratio), ceiling, "linf", linf, robustness)
    tables = {
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
        "ceiling": ceiling,
        "separations": bracket_separations(linf, robustness, models),
        "exact_comparisons": exact_comparisons(linf, models),
        "radius_summary": radius_summary(keep(inputs["radii"]), cfg.certify.params["exact"].radius_high, ratio)
        if "radii" in inputs else pd.DataFrame(columns=RADIUS_SUMMARY_COLUMNS),
        "smoothing": summarize_runs(certified[(certified["norm"] == "l2") & smoothed],
                                    ["model", "certificate", "epsilon"], "accuracy", ratio=ratio, bounds=ACCURACY_BOUNDS),
        "hardware": hardware_table(bracket, cfg.section("models")),
        "defences": defences_table(cfg.models, keep(inputs["robustness"]), keep(inputs["certified"]), trained, ratio),
        "attribution_metrics": pd.concat([summarize_attribution_stability(stability, m, ratio) for m in FAITHFULNESS]),
        "attribution_summary": pd.concat([summarize_attribution_stability(stability, m, ratio) for m in STABILITY]),
    }
    if cfg.attack.l2 is not None:
        tables.update(l2_tables(cfg, read_tables(cfg, L2_INPUTS), certified[~smoothed], keep, degenerate, ratio,
                                ceiling))
    if cfg.attack.universal is not None:
        tables.update(universal_tables(cfg, tables, ratio, degenerate))
    return tables


def l2_tables(cfg, inputs: dict[str, pd.DataFrame], certified: pd.DataFrame, keep, degenerate: set,
              ratio: float, ceiling: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The L2 threat model's report tables (``attack.l2``), from the attack stage's ``*_l2``
    tables: ``stats_l2``, ``auc_l2`` and ``paired_tests_l2`` (as ``stats``, ``auc`` and
    ``paired_tests``, every comparison Holm-adjusted: the primary one is L∞), ``bracket_l2`` (certified by the bound certificates
    in L2, attacked by the worst case over the L2 attacks; a ``norm`` column), the masking
    checks on the L2 attacks (``masking_runs_l2``, ``masking_checks_l2``: the large-budget
    check with PGD-L2 at ``attack.l2.masking_epsilons``, gradient-free against gradient,
    transfer against white-box; the checks that name L∞ attacks SKIP), and
    ``minimum_norm_summary_l2``: per model, the median and quartiles of each point's minimal
    L2 distance under the minimum-norm attack, over points and runs (inf: none found). The
    bracket carries the L2 rows of the data's ``ceiling``."""
    robustness = keep(inputs["robustness_l2"])
    robustness = robustness[robustness["attack"].isin([*cfg.attack.l2.methods, "worst_case"])]
    runs = run_checks(inputs["robustness_l2"], inputs["transfer_l2"], inputs["large_epsilon_l2"],
                      inputs["convergence_l2"], degenerate, stochastic_models(cfg))
    l2 = certified[certified["norm"] == "l2"]
    bracket = with_ceiling(bracket_table(l2, robustness, ratio), ceiling, "l2", l2, robustness)
    minimum = keep(inputs["minimum_norm_l2"])
    # Order statistics ("lower"): inf (no example found) is a value here, and interpolating it gives NaN.
    summary = pd.DataFrame([{"model": model, "attack": attack,
                             **{name: float(g["distance"].quantile(q, interpolation="lower"))
                                for name, q in (("median", 0.5), ("q25", 0.25), ("q75", 0.75))},
                             "not_found": int(np.isinf(g["distance"]).sum()), "n": len(g)}
                            for (model, attack), g in minimum.groupby(["model", "attack"], sort=False)],
                           columns=["model", "attack", "median", "q25", "q75", "not_found", "n"])
    auc_runs = robust_auc(robustness)
    return {"stats_l2": summarize_runs(robustness, ["model", "attack", "epsilon"], "accuracy", ratio=ratio,
                                       bounds=ACCURACY_BOUNDS),
            "auc_l2": summarize_runs(auc_runs, ["model", "attack"], "auc", ratio=ratio, bounds=ACCURACY_BOUNDS),
            # No primary comparison in L2 (report.primary is declared for L∞): every pair Holm-adjusted per attack.
            "paired_tests_l2": comparisons(robustness, auc_runs, list(cfg.models), ratio, None),
            "bracket_l2": bracket.assign(norm="l2") if not bracket.empty else bracket,
            "separations_l2": bracket_separations(certified[certified["norm"] == "l2"], robustness, list(cfg.models)),
            "masking_runs_l2": runs, "masking_checks_l2": masking_checks(runs),
            "minimum_norm_summary_l2": summary}



def universal_tables(cfg, tables: dict[str, pd.DataFrame], ratio: float, degenerate: set) -> dict[str, pd.DataFrame]:
    """With ``attack.universal``: ``universal_stats`` and ``universal_tests``
    (``analysis.universal``, degenerate runs left out as everywhere), and the masking tables
    with the universal checks (``masking.universal_checks``) added to every run's."""
    read = read_tables(cfg, ("universal", "universal_transfer"))
    universal, transfer = without_degenerate(cfg, read["universal"], degenerate), read["universal_transfer"]
    if cfg.report.exclude_degenerate and degenerate:
        transfer = transfer[[(s, r) not in degenerate and (t, r) not in degenerate
                             for s, t, r in zip(transfer["source"], transfer["target_model"], transfer["run"])]]
    runs = pd.concat([tables["masking_runs"], universal_checks(read["universal"], degenerate, read["universal_transfer"])], ignore_index=True)
    return {"universal_stats": universal_stats(universal, transfer, ratio),
            "universal_tests": universal_tests(universal, cfg.section("models"), ratio),
            "masking_runs": runs, "masking_checks": masking_checks(runs)}


def write_figures(cfg) -> list[str]:
    """Every figure of the report, from the tables on disk; returns their names."""
    layout = Layout(cfg.results_dir)
    models = reported_models(cfg, read_tables(cfg, ("models",))["models"])
    t = read_tables(cfg, ("train_history", "stats", "transfer", "attribution_summary", "bracket", "attack_traces",
                          "smoothing", "hardware", "defences", "ceiling"))
    summary = t["attribution_summary"]
    drawn = {
        "training_curves": figures.plot_training_curves(t["train_history"], models),
        "robustness": figures.plot_robustness_curves(t["stats"], models, attacks=["fgsm", "pgd", "worst_case"],
                                                     reference=cfg.report.reference,
                                                     ceiling=ceiling_curve(t["ceiling"], "linf")),
        "attack_comparison": figures.plot_attack_comparison(t["stats"], models),
        "bracket": figures.plot_bracket(t["bracket"], models),
        "attribution_stability": figures.plot_attribution_stability(
            summary[summary["metric"] == "spearman"], models, "spearman",
            chance=summary[summary["metric"] == "spearman_chance"]),
    }
    if not t["smoothing"].empty:
        drawn["smoothing"] = figures.plot_smoothing(t["smoothing"], models)
    if cfg.attack.l2 is not None:  # the L2 threat model: its curves and its bracket
        l2 = read_tables(cfg, ("stats_l2", "bracket_l2"))
        drawn["robustness_l2"] = figures.plot_robustness_curves(l2["stats_l2"], models,
                                                                attacks=[*cfg.attack.l2.methods, "worst_case"], norm="L2",
                                                                ceiling=ceiling_curve(t["ceiling"], "l2"))
        if not l2["bracket_l2"].empty:
            drawn["bracket_l2"] = figures.plot_bracket(l2["bracket_l2"], models, norm="L2")
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
    if cfg.attack.universal is not None:
        drawn.update(universal_figures(cfg, models))
    costs = layout.table("costs")
    if costs.is_file() and not read_csv(costs).empty:
        drawn["costs"] = plot_costs(read_csv(costs))
    if "radii" in stage_columns(cfg):
        drawn["radii"] = plot_radii(read_tables(cfg, ("radii",))["radii"], models, cfg.certify.params["exact"].radius_high)
    for name, fig in drawn.items():
        save_figure(fig, layout.figure(name))
        figures.plt.close(fig)
    return list(drawn)


def universal_figures(cfg, models) -> dict:
    """The universal perturbations' figures: fooling rate against ε, the transfer matrix at
    the middle universal ε, and run 0's perturbations at that ε."""
    section = cfg.attack.universal
    stats = read_tables(cfg, ("universal_stats",))["universal_stats"]
    at = sorted(section.epsilons)[(len(section.epsilons) - 1) // 2]
    # The transfer matrix from its statistics, so that it leaves out what they leave out (degenerate runs).
    transfer = stats[stats["measure"] == "transfer_fooling_rate"].rename(columns={"model": "source",
                                                                                  "mean": "fooling_rate"})
    drawn = {"universal_fooling": figures.plot_universal_fooling(stats, models),
             "universal_transfer": figures.plot_universal_transfer(transfer, models, at)}
    arrays = read_arrays(Layout(cfg.results_dir).arrays("universal_perturbations"))
    if arrays is not None:
        drawn["universal_perturbations"] = figures.plot_universal_perturbations(arrays, models, at,
                                                                                cfg.dataset.input_shape)
    return drawn


def write_summary_file(cfg) -> str:
    """``summary.md`` from the tables on disk; returns its text."""
    outputs = (*OUTPUTS, *(L2_OUTPUTS if cfg.attack.l2 is not None else ()),
               *(UNIVERSAL_OUTPUTS if cfg.attack.universal is not None else ()))
    tables = read_tables(cfg, ("models", "large_epsilon", "robustness", *outputs))
    costs = Layout(cfg.results_dir).table("costs")
    tables["costs"] = read_csv(costs) if costs.is_file() else pd.DataFrame(columns=COST_COLUMNS)
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
        inputs = read_tables(cfg, (*INPUTS, *(["radii"] if "radii" in stage_columns(cfg) else [])))
        inputs["ceiling"] = ceiling_table(cfg, lambda run: attacked_points(cfg, run))  # from the data, not a model
        tables = compute_tables(cfg, inputs)
        tables["costs"] = costs_table(layout)  # from the stages' unit times and provenance, not from inputs
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
