"""The experiment's Markdown summary, written from the result tables (no typed numbers).

Every sentence that says whether models differ is generated from the comparisons table: the
pre-declared primary comparison with its own p, everything else with Holm-adjusted p-values;
no budget is picked after looking at the results.
"""
from __future__ import annotations

import pandas as pd

from ..analysis.evaluation import WORST_CASE
from ..analysis.masking import UNIVERSAL_QUALITY, surviving_models
from ..analysis.statistics import ALPHA, overlap_ratio
from .ceiling import ceiling_section
from .costs import costs_paragraph
from .exact import exact_paragraph
from .defences import defences_section
from .tables import CLIPPED, difference, interval, markdown_table, robustness_table


def training_sentence(cfg) -> str:
    """How the models were trained: the shared settings "for every model", or for every model
    but those with their own ``training`` or an imported ``checkpoint`` (named with theirs)."""
    tr = cfg.training
    shared = f"{tr.epochs} epochs, batch {tr.batch_size}, {tr.described()}"
    own = {name: spec for name, spec in cfg.models.items() if spec.training or spec.checkpoint}
    if not own:
        return f"{shared} for every model"
    others = []
    for name, spec in own.items():
        if spec.checkpoint:
            others.append(f"`{name}` imported from `{spec.checkpoint}`, not trained")
        else:
            t = spec.training_section(tr)
            others.append(f"`{name}` {t.epochs} epochs, batch {t.batch_size}, {t.described()}")
    return f"{shared} for every model but these: " + "; ".join(others) + " (their hyperparameters differ)"


def headline_attack(curves: pd.DataFrame) -> str:
    """The attack whose numbers the summary quotes: the per-sample worst case when it was computed."""
    return WORST_CASE if WORST_CASE in set(curves["attack"]) else "pgd"


def _p(value) -> str:
    return "n/a" if pd.isna(value) else f"{value:.2g}"


def _measure(epsilon) -> str:
    return "area under the accuracy-vs-ε curve" if pd.isna(epsilon) else f"ε={epsilon:g}"


def _verdict(p) -> str:
    if pd.isna(p):
        return "untestable (every run gave the same difference, or too few runs)"
    return f"{'significant' if p < ALPHA else 'not significant'} at α = {ALPHA:g}"


def escalation_sentences(escalated: pd.DataFrame, models) -> list[str]:
    """Per model with flagged runs: how many flags escalation resolved, how far it lowered the
    worst case, and the attack that fooled the most points alone."""
    text = []
    for m in models:
        e = escalated[(escalated["model"] == m) & escalated["escalated"]]
        if e.empty:
            continue
        worst = e.sort_values("worst_case_drop", ascending=False).iloc[0]
        lowered = (f"lowered the worst case by up to {worst['worst_case_drop']:.3f}" if worst["worst_case_drop"] > 0
                   else "did not lower the worst case at any budget")
        text.append(f"`{m}`: escalation resolved {int(e['resolved'].sum())} of {len(e)} flags in "
                    f"{e['run'].nunique()} runs and {lowered} (the attack that fooled the most points alone: "
                    f"{worst['deciding_attack']}).")
    return text


def masking_section(checks: pd.DataFrame, models, escalated: pd.DataFrame | None = None) -> list[str]:
    """Table of per-run check results per model and a sentence on whose robustness claim survives."""
    def cell(r):
        if r["status"] in ("SKIP", "DEGENERATE"):
            return r["status"]
        runs = f"{int(r['runs_flagged'])}/{int(r['runs_checked'])} runs"
        return f"{r['status']} {runs} ({r['value']:.3f})" if r["status"] == "FLAG" else f"PASS ({r['value']:.3f})"

    table = checks.assign(cell=checks.apply(cell, axis=1))
    wide = table.pivot(index="model", columns="check", values="cell").reindex(
        index=models, columns=list(dict.fromkeys(checks["check"]))).reset_index()
    survivors = surviving_models(checks)
    verdict = []
    if survivors:
        verdict.append("The robustness numbers of " + ", ".join(f"`{m}`" for m in survivors)
                       + " survive every masking check in every run: their worst-case accuracy is not explained by "
                       "blinded gradients.")
    for m in models:
        if m in survivors:
            continue
        flagged = checks[(checks["model"] == m) & (checks["status"] == "FLAG") & ~checks["check"].isin(UNIVERSAL_QUALITY)]
        verdict.append(f"`{m}` is flagged by " + ", ".join(f"{r.check} ({r.runs_flagged} of {r.runs_checked} runs)"
                                                            for r in flagged.itertuples())
                       + ": read its robustness as an upper bound, not as evidence that it is robust.")
    quality = checks[(checks["status"] == "FLAG") & checks["check"].isin(UNIVERSAL_QUALITY)]
    for m in models:
        flagged = quality[quality["model"] == m]
        if len(flagged):
            verdict.append(f"`{m}`: its universal perturbation is flagged by "
                           + ", ".join(f"{r.check} ({r.runs_flagged} of {r.runs_checked} runs)" for r in flagged.itertuples())
                           + ": its universal fooling rates are lower bounds (this says nothing about its robust accuracy).")
    degenerate = checks.groupby("model")["runs_degenerate"].max()
    for m in models:
        if degenerate.get(m, 0):
            verdict.append(f"`{m}`: {int(degenerate[m])} degenerate runs were not checked.")
    if escalated is not None and not escalated.empty:
        if escalated["escalated"].all():
            verdict.append("Every flagged run was escalated: the escalation attacks and transfer from every other "
                           "model joined its worst case (the numbers above include them); a flag is resolved when "
                           "its check passes with them.")
        else:
            verdict.append(f"{int((~escalated['escalated'].astype(bool)).sum())} flags were not escalated "
                           "(`attack.escalation` is empty): their robustness stays an upper bound.")
        verdict += escalation_sentences(escalated, models)
    return ["Each check compares attacks whose order of strength is known, in every run on its own test points; "
            "a model is flagged when any run violates the order by more than two binomial standard errors of the "
            "accuracies compared (the large-budget check: PGD accuracy above its ceiling). The value is the "
            "largest violation (accuracy).", "", markdown_table(wide), "", " ".join(verdict), ""]


def _paired_rows(p: pd.DataFrame, runs: bool = True) -> list[dict]:
    """Table rows of comparisons: difference, interval, d_z, corrected and adjusted p."""
    return [{"comparison": f"{r['model_a']} − {r['model_b']}", "mean difference [95% CI]": difference(r),
             "Cohen's d_z": "n/a" if pd.isna(r["cohens_dz"]) else f"{r['cohens_dz']:.2f}",
             "corrected p": _p(r["p_value"]),
             "Holm-adjusted p": "primary" if r["role"] == "primary" else _p(r["p_adjusted"]),
             **({"runs": int(r["n_runs"])} if runs else {})} for _, r in p.iterrows()]


def primary_section(comparisons: pd.DataFrame, curves: pd.DataFrame, auc: pd.DataFrame, power: pd.DataFrame,
                    primary, models, fixed_split: bool = False) -> list[str]:
    """The pre-declared comparison, the ranking of the models on its measure, and a power note
    (``fixed_split``: the runs share one split, and the tests are the textbook paired t-tests)."""
    if primary is None and len(models) < 2:
        return [f"Only one model has runs to report ({', '.join(f'`{m}`' for m in models)}): there is no other model "
                "to compare it with, so this study makes no comparison and tests nothing; its numbers describe that "
                "model alone."]
    if primary is None:
        return ["No primary comparison is declared (`report.primary`): every comparison below is one of a "
                "Holm-adjusted family, and none is singled out."]
    rows = comparisons[comparisons["role"] == "primary"]
    if rows.empty:
        missing = [m for m in primary.models if m not in models]
        why = f": {', '.join(f'`{m}`' for m in missing)} has no run to report" if missing else ""
        return [f"The primary comparison ({primary.models[0]} − {primary.models[1]}) could not be computed{why}."]
    r = rows.iloc[0]
    a, b = primary.models
    attack = primary.attack.replace("_", " ")
    test = (f"paired t-test p = {_p(r['p_value'])} (runs on one fixed split differ only in their seed)" if fixed_split
            else f"corrected resampled t-test p = {_p(r['p_value'])} (the textbook paired t-test, which treats the "
                 f"runs as independent, would say {_p(r['p_naive'])})")
    text = [f"**Primary comparison** (declared in the config before the runs): `{a}` − `{b}`, {attack}, "
            f"{_measure(primary.epsilon)}: {difference(r)}, {test}, {int(r['n_runs'])} runs: {_verdict(r['p_value'])}."]
    if pd.isna(primary.epsilon):
        ranked = auc[auc["attack"] == primary.attack].set_index("model").reindex(models)
        what = f"Area under the {attack} accuracy-vs-ε curve (normalised by the ε range; 1 = never fooled)"
    else:
        ranked = curves[(curves["attack"] == primary.attack) & (curves["epsilon"] == primary.epsilon)]
        ranked, what = ranked.set_index("model").reindex(models), f"Robust accuracy under the {attack} at ε={primary.epsilon:g}"
    ranked = ranked.sort_values("mean", ascending=False)
    text.append(f"{what}: " + ", ".join(f"`{m}` {interval(row)}" for m, row in ranked.iterrows()) + ".")
    p = power[power["role"] == "primary"]
    if not p.empty:
        q = p.iloc[0]
        needed = ("is out of reach of runs that share one data set (the corrected variance never falls below "
                  f"n_test/n_train of the run-to-run variance); independent runs would need {int(q['runs_needed_if_independent'])}"
                  if pd.isna(q["runs_needed"]) else f"would take {int(q['runs_needed'])} runs")
        text.append(f"Power: with the run-to-run standard deviation of this difference ({q['sd_difference']:.3f}), "
                    f"detecting a true difference of {q['delta']:g} at {q['power']:.0%} power {needed}; "
                    f"this study has {int(q['n_runs'])}.")
    return [" ".join(text)]


def family_section(comparisons: pd.DataFrame, attack: str, epsilons, models, fixed_split: bool = False) -> list[str]:
    """Every comparison of ``attack``: one row per pair, the difference and its Holm-adjusted p
    per ε and for the area under the curve, and how many remain significant."""
    family = comparisons[comparisons["attack"] == attack]
    if family.empty:
        return []
    columns = [e for e in epsilons if e > 0]
    rows = []
    for (a, b), g in family.groupby(["model_a", "model_b"], sort=False):
        cells = {}
        for _, r in g.iterrows():
            label = "AUC" if pd.isna(r["epsilon"]) else f"ε={r['epsilon']:g}"
            p = "primary" if r["role"] == "primary" else f"p_adj {_p(r['p_adjusted'])}"
            cells[label] = f"{r['mean_difference']:+.3f} ({p})"
        rows.append({"comparison": f"{a} − {b}", **{f"ε={e:g}": cells.get(f"ε={e:g}", "") for e in columns},
                     "AUC": cells.get("AUC", "")})
    secondary = family[(family["role"] == "secondary") & family["p_adjusted"].notna()]
    significant = int((secondary["p_adjusted"] < ALPHA).sum())
    return [f"Every comparison of the {attack.replace('_', ' ')}, paired across runs (same split and seed), mean "
            "difference of accuracy (or of the area under the curve) and its p-value from the "
            f"{'paired' if fixed_split else 'corrected resampled'} t-test, Holm-adjusted over the family of {len(secondary)} secondary comparisons: {significant} of them "
            f"remain significant at α = {ALPHA:g}. Full table: `paired_tests.csv`.", "",
            markdown_table(pd.DataFrame(rows)), ""]


def bracket_section(bracket: pd.DataFrame, separations: pd.DataFrame, models) -> list[str]:
    """Certified (lower) and attacked (upper) accuracy per model and ε, where the bounds meet,
    and which models a certificate separates."""
    if bracket.empty:
        return []
    epsilons = sorted(e for e in bracket["epsilon"].unique() if e > 0)
    rows = []
    for m in models:
        b = bracket[bracket["model"] == m].set_index("epsilon")
        cells = {}
        for e in epsilons:
            r = b.loc[e]
            exact = " (exact)" if r["exact_runs"] == r["n_runs"] else ""
            lower = "no certificate" if pd.isna(r["certified"]) else f"{r['certified']:.3f}"
            cells[f"ε={e:g}"] = f"{lower} – {r['attacked']:.3f}{exact}"
        rows.append({"model": m, **cells})
    text = []
    for r in separations.itertuples():
        text.append(f"`{r.model_a}` is provably more robust than `{r.model_b}` on these test points at ε={r.epsilon:g}: "
                    f"its certified accuracy exceeds `{r.model_b}`'s attacked accuracy in every run (by "
                    f"{r.smallest_margin:.3f} at least).")
    uncertified = [m for m in models if bracket.loc[bracket["model"] == m, "certified"].isna().all()]
    if uncertified:
        text.append("No certificate applies to " + ", ".join(f"`{m}`" for m in uncertified) + " (no bound "
                    "propagation rules for it, e.g. amplitude encoding): its robust accuracy is an upper bound only.")
    if separations.empty and len(models) > 1:
        text.append("No certificate separates two models: where the models differ, they differ in what the attacks "
                    "found, not in anything proved.")
    meet = bracket[(bracket["epsilon"] > 0) & (bracket["exact_runs"] == bracket["n_runs"]) & (bracket["attacked"] > 0)]
    if not meet.empty:
        text.append("Certified and attacked accuracy meet in every run (robust accuracy known exactly on these "
                    "points) for " + ", ".join(f"`{r.model}` at ε={r.epsilon:g}" for r in meet.itertuples()) + ".")
    return ["", "## Bracket: certified and attacked accuracy", "",
            "Robust accuracy from both sides, mean over runs: certified by the best certificate (a point counts when "
            "any certificate proves that no input in its ε-ball is misclassified) – attacked by the per-sample worst "
            "case over every attack. The truth lies between; \"exact\" where the two meet in every run.", "",
            markdown_table(pd.DataFrame(rows)), "", " ".join(text), ""]


def smoothing_section(cfg, smoothing: pd.DataFrame, robustness: pd.DataFrame, models) -> list[str]:
    """The smoothed classifiers' certified L2 accuracy, and the random-noise baseline."""
    lines = []
    if not smoothing.empty:
        radii = sorted(smoothing["epsilon"].unique())
        rows = [{"model": m, **{f"r={r:g}": interval(smoothing[(smoothing["model"] == m) & (smoothing["epsilon"] == r)].iloc[0])
                                for r in radii}} for m in models]
        sigma = cfg.certify.params["smoothing"].sigma
        lines += ["", "## Randomized smoothing (L2)", "",
                  f"Certified accuracy of each model's smoothed classifier (Gaussian noise σ={sigma:g} on the inputs; "
                  "CERTIFY of Cohen et al. 2019) against the L2 radius, mean over runs. It certifies the smoothed "
                  "classifier, not the model: an L2 statement beside, not inside, the L∞ bracket.", "",
                  markdown_table(pd.DataFrame(rows)), ""]
    noise = robustness[robustness["attack"] == "noise"]
    if not noise.empty:
        worst = robustness[robustness["attack"] == WORST_CASE]
        budgets = sorted(e for e in noise["epsilon"].unique() if e > 0)
        at = budgets[len(budgets) // 2]
        rows = []
        for m in models:
            n = noise[(noise["model"] == m) & (noise["epsilon"] == at)]["accuracy"].mean()
            w = worst[(worst["model"] == m) & (worst["epsilon"] == at)]["accuracy"].mean()
            rows.append(f"`{m}` {n:.3f} under noise against {w:.3f} under attack")
        baseline = cfg.attack.params["noise"]
        what = {"any": f"a point fooled if it is misclassified clean or by any of {baseline.draws} draws",
                "mean": f"the mean accuracy over {baseline.draws} draws",
                "min": f"the lowest accuracy of {baseline.draws} draws"}[baseline.statistic]
        lines += [f"Random noise baseline at ε={at:g} (uniform noise in the same L∞ ball, {what}): " + ", ".join(rows)
                  + ". The gap is what the attacks' search adds.", ""]
    return lines


def l2_section(cfg, tables: dict[str, pd.DataFrame], models) -> list[str]:
    """The L2 threat model (``attack.l2``): robust accuracy per L2 attack and budget, the
    Carlini-Wagner minimal norms, the L2 bracket and the masking checks on the L2 attacks."""
    stats = tables["stats_l2"]
    eps = sorted(stats["epsilon"].unique())
    lines = ["", "## The L2 threat model", "",
             "The same test points under perturbations bounded in L2 (the norm over all input features, inputs in "
             f"[0, 1]): attacks {', '.join(f'`{a}`' for a in cfg.attack.l2.methods)} and the per-sample worst case "
             "over them, mean [95% interval] over runs.", "", markdown_table(robustness_table(stats, models, eps)), ""]
    auc = tables["auc_l2"]
    worst = auc[auc["attack"] == WORST_CASE].set_index("model").reindex(models).dropna(how="all")
    if not worst.empty:
        lines += ["Area under the L2 worst-case accuracy-vs-ε curve (normalised by the ε range; 1 = never fooled): "
                  + ", ".join(f"`{m}` {interval(r)}" for m, r in worst.iterrows()) + ".", ""]
        tests = tables["paired_tests_l2"]
        tests = tests[(tests["attack"] == WORST_CASE) & (tests["measure"] == "auc")]
        if not tests.empty:
            lines += ["Paired comparisons of that area (corrected resampled t-test, Holm-adjusted over the pairs; "
                      "no primary comparison is declared for L2): "
                      + "; ".join(f"`{r.model_a}` − `{r.model_b}` {r.mean_difference:+.3f} (p_adj = {_p(r.p_adjusted)})"
                                  for r in tests.itertuples()) + ".", ""]
    minimum = tables["minimum_norm_summary_l2"]
    if not minimum.empty:
        lines += ["Minimal L2 distance to a misclassified input found by Carlini-Wagner per test point (median "
                  "[quartiles] over points and runs; a point already misclassified counts 0): "
                  + ", ".join(f"`{r.model}` {r.median:.3g} [{r.q25:.3g}, {r.q75:.3g}]"
                              + (f" ({r.not_found} of {r.n} not found)" if r.not_found else "")
                              for r in minimum.itertuples()) + ".", ""]
    bracket = tables["bracket_l2"]
    if not bracket.empty:
        section = bracket_section(bracket, tables["separations_l2"], models)
        lines += ["### L2 bracket", "",
                  "Certified in L2 by the bound certificates (interval through the enclosing L∞ box, which "
                  "contains the L2 ball: sound and loose; CROWN with its linear bound minimised over the L2 ball; "
                  "Lipschitz with the L2 → L∞ constant), attacked by "
                  "the worst case over the L2 attacks. Randomized smoothing certifies the smoothed classifier, not "
                  "the model, and stays in its own table.", "", *section[4:]]
    checks = tables["masking_checks_l2"]
    if not checks.empty:
        lines += ["### Gradient-masking checks (L2)", "", *masking_section(checks, models)]
    return lines


def hardware_section(hardware: pd.DataFrame) -> list[str]:
    """Each circuit's noise and shots beside its clean accuracy and its bracket per ε."""
    if hardware.empty:
        return []
    epsilons = sorted(e for e in hardware["epsilon"].unique() if e > 0)
    rows = []
    for model, h in hardware.groupby("model", sort=False):
        h = h.set_index("epsilon")
        cells = {}
        for e in epsilons:
            r = h.loc[e]
            lower = "no certificate" if pd.isna(r["certified"]) else f"{r['certified']:.3f}"
            cells[f"ε={e:g}"] = f"{lower} – {r['attacked']:.3f}"
        rows.append({"model": model, "noise and shots": h["setting"].iloc[0], "clean": f"{h['clean'].iloc[0]:.3f}",
                     **cells})
    return ["", "## Circuits as they run on hardware: noise and shots", "",
            "Each circuit's noise channels and shots (docs/noise.md) beside its clean accuracy and its bracket "
            "(certified – attacked, mean over runs). Accuracy of a circuit with shots is an expectation over its "
            "sampled predictions, and its attacks average their gradients over samples (EOT).", "",
            markdown_table(pd.DataFrame(rows)), ""]


def write_summary(cfg, tables: dict[str, pd.DataFrame]) -> str:
    """Markdown summary of one experiment, from the report's tables (``store.layout`` names):
    ``models``, ``stats``, ``auc``, ``paired_tests`` (every comparison, with roles and
    adjusted p), ``power``, ``masking_checks``, ``attribution_summary`` (Spearman and its
    chance levels), ``attribution_metrics``, and for ``report.reference`` ``class_stats`` and
    ``large_epsilon``."""
    curves, checks, auc, comparisons = tables["stats"], tables["masking_checks"], tables["auc"], tables["paired_tests"]
    every = list(cfg.models)
    models = [m for m in every if m in set(curves["model"])]  # those with a run to report
    trained = tables["models"]
    eps = sorted(curves["epsilon"].unique())
    ratio = overlap_ratio(cfg.dataset.split, trained)
    split = cfg.dataset
    repetitions = cfg.n_runs // split.folds
    if split.split == "fixed":
        subset = "" if split.test_subset is None else f", {int(trained['n_test'].iloc[0])} test points drawn once"
        runs = f"{cfg.n_runs} Monte Carlo runs on the data set's own train/test split{subset}"
        inference = ("Every run trains and tests on the same points and differs only in its seed, so intervals are "
                     "95% t-intervals over the runs (the seed-to-seed variation on this one test set; its sampling "
                     "error is not included) and comparisons are paired t-tests")
    else:
        runs = (f"{cfg.n_runs} Monte Carlo runs ({repetitions} repetition{'s' * (repetitions > 1)} of {split.folds} "
                "stratified folds: "
                "the test sets of one repetition are disjoint)" if split.split == "kfold"
                else f"{cfg.n_runs} Monte Carlo runs (a stratified split re-drawn per run)")
        inference = ("The runs share training data (and, across repetitions, test points), so intervals are 95% "
                     "t-intervals with the variance corrected for that overlap (Nadeau & Bengio 2003: (1/k + "
                     f"n_test/n_train) s², n_test/n_train = {ratio:.3g}), and comparisons use the corrected resampled "
                     "t-test")
    names = cfg.dataset.class_names
    classes = (list(cfg.dataset.classes) if names == tuple(map(str, cfg.dataset.classes))
               else ", ".join(f"{c} {n}" for c, n in zip(cfg.dataset.classes, names)))
    intro = (f"Data set `{cfg.dataset.name}` (classes {classes}), {runs}, {training_sentence(cfg)}. "
             f"{inference}; {CLIPPED} marks an interval that reaches past [0, 1], where the normal approximation is poor.")
    degenerate = trained[trained["degenerate"]].groupby("model", sort=False).size()
    lines = [f"# Summary: experiment `{cfg.experiment}`", "", intro]
    if len(degenerate):
        excluded = "left out of every statistic and comparison" if cfg.report.exclude_degenerate else "kept in the statistics"
        lines[-1] += (" Degenerate runs (a single predicted class, or no better than the majority class): "
                      + ", ".join(f"`{m}` {n} of {cfg.n_runs}" for m, n in degenerate.items()) + f", {excluded}.")
    lines += ["", "## Models", ""]
    clean = trained.groupby("model", sort=False).agg(
        parameters=("parameters", "first"), clean_accuracy=("clean_accuracy", "mean"),
        n_test=("n_test", "first"), degenerate_runs=("degenerate", "sum")).reindex(every).reset_index()
    clean["clean_accuracy"] = clean["clean_accuracy"].map("{:.3f}".format)
    lines += [markdown_table(clean), ""]
    silent = [m for m in every if m not in models]
    if silent:
        lines += [", ".join(f"`{m}`" for m in silent) + f" {'is' if len(silent) == 1 else 'are'} degenerate in every "
                  "run: nothing below reports or compares it (its runs collapsed; models.csv says how).", ""]
    lines += ["## Robust accuracy", ""]
    lines += [markdown_table(robustness_table(curves, models, eps)), ""]
    power = tables["power"]
    lines += primary_section(comparisons, curves, auc, power, cfg.report.primary, models, split.split == "fixed")
    params = clean.set_index("model")["parameters"]
    if len(models) > 1:
        lines += ["", "Trainable parameters: " + ", ".join(f"`{m}` {params[m]:,}" for m in models)
                  + "; clean accuracies differ as well (table above). A robustness gap between models of such "
                  "different capacity and clean accuracy is not by itself evidence about quantum models.", ""]
    else:
        lines += [""]
    lines += family_section(comparisons, headline_attack(curves), eps, models, split.split == "fixed")
    primary = cfg.report.primary
    worst = headline_attack(curves)
    if not auc.empty and not (primary is not None and primary.epsilon is None and primary.attack == worst):
        a = auc[auc["attack"] == worst].set_index("model").reindex(models)
        lines += [f"Area under the {worst.replace('_', ' ')} accuracy-vs-ε curve (normalised by the ε range; "
                  "1 = never fooled): " + ", ".join(f"`{m}` {interval(r)}" for m, r in a.iterrows()) + "."]
    lines += bracket_section(tables["bracket"], tables["separations"], models)
    lines += exact_paragraph(tables["bracket"], tables["exact_comparisons"], tables["radius_summary"], models)
    lines += ceiling_section(tables, models, {norm: "bracket" if norm == "linf" else f"bracket_{norm}"
                                              for norm in cfg.attack.threat_sections()})
    lines += smoothing_section(cfg, tables["smoothing"], tables["robustness"], models)
    lines += hardware_section(tables.get("hardware", pd.DataFrame()))
    if cfg.attack.l2 is not None:
        lines += l2_section(cfg, tables, models)
    lines += defences_section(tables.get("defences", pd.DataFrame()), cfg.report.primary)
    if cfg.report.reference is not None:
        lines += ["", "## Does the published result hold?", "",
                  *reference_section(cfg.report.reference, curves, comparisons, tables["class_stats"],
                                     tables["large_epsilon"], checks, models, tables["robustness"])]
    if cfg.attack.universal is not None:
        lines += universal_section(cfg, tables["universal_stats"], tables["universal_tests"], models)
    if not checks.empty:
        lines += ["", "## Gradient-masking checks", "", *masking_section(checks, models, tables.get("escalation_checks"))]
    lines += attribution_section(cfg, tables["attribution_summary"], models)
    if not tables["attribution_metrics"].empty:
        lines += faithfulness_section(tables["attribution_metrics"], models)
    lines += costs_paragraph(tables.get("costs", pd.DataFrame()))
    return "\n".join(lines)


def attribution_section(cfg, summary: pd.DataFrame, models) -> list[str]:
    """Spearman between clean and attacked maps beside its chance levels, per model and method."""
    means = summary.pivot_table(index=["model", "method"], columns="metric", values="mean", sort=False, dropna=False)
    stability = summary[summary["metric"] == "spearman"].set_index(["model", "method"])
    above = summary[summary["metric"] == "spearman_above_chance"].set_index(["model", "method"])
    rows = []
    for m in models:
        for method in dict.fromkeys(summary["method"]):
            if (m, method) not in stability.index:
                continue
            s = stability.loc[(m, method)]
            if pd.isna(s["mean"]):
                rows.append({"model": m, "method": method, "clean vs attacked": "n/a", "different images": "n/a",
                             "random inputs": "n/a", "above chance": "n/a", "constant maps": ""})
                continue
            rows.append({"model": m, "method": method, "clean vs attacked": interval(s),
                         "different images": f"{means.loc[(m, method), 'spearman_chance']:.3f}",
                         "random inputs": f"{means.loc[(m, method), 'spearman_random']:.3f}",
                         "above chance": interval(above.loc[(m, method)]),
                         "constant maps": int(s.get("undefined", 0))})
    return ["", f"## Attribution stability under PGD at ε={cfg.interpret.epsilon:g}", "",
            "Spearman rank correlation between clean and adversarial |attribution| maps of the same image (1 = "
            "same ranking of inputs), beside its chance levels: the same correlation between the clean maps of two "
            "different images, and between the maps of two random inputs (a model that sees the input through a "
            "few PCA components has similar maps whatever the image). Stability is the distance above the "
            "different-image level, per run. Constant maps (all zero, say) have no ranking: they are counted and "
            "left out, not scored. Mean over runs:", "", markdown_table(pd.DataFrame(rows)), ""]


def faithfulness_section(faithfulness: pd.DataFrame, models) -> list[str]:
    """Captum's infidelity and sensitivity_max, clean -> adversarial, mean over runs."""
    f = faithfulness.dropna(subset=["mean"])
    means = f.pivot_table(index=["model", "method"], columns="metric", values="mean", sort=False)
    rows = [{"model": m, "method": method,
             **{f"{name} clean → adv": f"{means.loc[(m, method), f'{name}_clean']:.3g} → "
                                       f"{means.loc[(m, method), f'{name}_adv']:.3g}"
                for name in ("infidelity", "sensitivity")}}
            for m in models for method in dict.fromkeys(f["method"]) if (m, method) in means.index]
    return ["Faithfulness of the explanations (Captum, lower is better), mean over runs: infidelity "
            "(how badly the map predicts the output change under small input noise) and sensitivity_max "
            "(how much the map changes within a small L∞ ball), on clean and on attacked images. Infidelity "
            "is in squared logit units: compare methods, and clean with attacked, within a model, not "
            "across models whose logits differ in scale.", "",
            markdown_table(pd.DataFrame(rows)), ""]


# ``Reference.statistic`` in words.
STATISTIC_WORDS = {"mean": "mean accuracy over runs", "median": "median accuracy over runs",
                   "max": "accuracy of the best run", "min": "accuracy of the worst run"}


def reference_section(reference, curves: pd.DataFrame, comparisons: pd.DataFrame, by_class: pd.DataFrame,
                      large_epsilon: pd.DataFrame, checks: pd.DataFrame | None, models,
                      robustness: pd.DataFrame | None = None) -> list[str]:
    """A published result beside ours (``report.reference`` of the config, a
    ``config.Reference``), then the same comparison under every attack, per class, at the
    budget where the classes become indistinguishable, and with the masking checks, so that
    the reader sees whether it holds.

    ``curves``: mean/CI of accuracy per model, attack and epsilon; ``comparisons``: the
    report's paired comparisons (every attack, with roles and adjusted p); ``by_class``:
    mean/CI per model, attack, epsilon and label; ``large_epsilon``: the per-run table;
    ``robustness``: the per-run accuracies, for a published number that is no mean over runs
    (``reference.statistic``: ours with the same statistic beside it).
    """
    attack, eps, published = reference.attack, float(reference.epsilon), dict(reference.accuracy)
    statistic = getattr(reference, "statistic", "mean")
    what = STATISTIC_WORDS[statistic]
    at = curves[curves["epsilon"] == eps]
    attacks = [a for a in dict.fromkeys(at["attack"]) if a != attack]
    same = None
    if statistic != "mean" and robustness is not None:
        runs = robustness[(robustness["attack"] == attack) & (robustness["epsilon"] == eps)]
        same = runs.groupby("model")["accuracy"].agg(statistic)
    table = []
    for m in models:
        row = {"model": m, f"published ({attack.upper()})": f"{published[m]:.3f}" if m in published else "—"}
        if same is not None:
            row[f"ours: {attack.replace('_', ' ')} ({statistic} over runs)"] = (f"{same[m]:.3f}" if m in same.index
                                                                                else "—")
        for a in [attack, *attacks]:
            row["ours: " + a.replace("_", " ")] = interval(at[(at["model"] == m) & (at["attack"] == a)].iloc[0])
        table.append(row)
    lines = [f"The published result ({reference.source}): "
             + ", ".join(f"`{m}` {v:.3f}" for m, v in published.items())
             + f": the {what} under {attack.upper()} at ε={eps:g}. Ours, same setting"
             + (" with the same statistic, then" if same is not None else ", then")
             + " every other attack at the same ε (mean [95% CI] over runs):", "", markdown_table(pd.DataFrame(table)),
             ""]

    paired = {}
    for a in dict.fromkeys([attack, WORST_CASE]):
        paired[a] = comparisons[(comparisons["attack"] == a) & (comparisons["epsilon"] == eps)]
        lines += [f"Paired across runs, {a.replace('_', ' ')} at ε={eps:g}:", "",
                  markdown_table(pd.DataFrame(_paired_rows(paired[a], runs=False))), ""]

    c = by_class[(by_class["epsilon"] == eps) & by_class["attack"].isin([attack, WORST_CASE])]
    rows = [{"model": m, "attack": a.replace("_", " "),
             **{f"class {int(r['label'])}": interval(r) for _, r in g.sort_values("label").iterrows()}}
            for m in models for a in dict.fromkeys([attack, WORST_CASE])
            for g in [c[(c["model"] == m) & (c["attack"] == a)]]]
    lines += [f"Robust accuracy per class at ε={eps:g} (a model that never flips one class scores that class's "
              "share of the test set without being robust):", "", markdown_table(pd.DataFrame(rows)), ""]
    if not large_epsilon.empty:
        smallest = large_epsilon["epsilon"].min()
        means = large_epsilon[large_epsilon["epsilon"] == smallest].groupby("model")["accuracy"].mean().reindex(models)
        lines += [f"PGD accuracy at ε={smallest:g}, where an honest attack can make any input look like the other "
                  "class (well above 0 means the attack failed, not that the model is robust): "
                  + ", ".join(f"`{m}` {v:.3f}" for m, v in means.items()) + "."]

    # The verdict, computed: does the published ordering hold under the original attack, and under the worst case?
    ranked = sorted(published, key=published.get, reverse=True)
    verdict = []
    for a, p in paired.items():
        p = p.set_index(["model_a", "model_b"])
        for hi, lo in zip(ranked[:-1], ranked[1:]):
            r, sign = (p.loc[(hi, lo)], 1) if (hi, lo) in p.index else (p.loc[(lo, hi)], -1)
            low, high = sorted((sign * r["ci_low"], sign * r["ci_high"]))
            name = a.replace("_", " ")
            p_value = r["p_value"] if r["role"] == "primary" else r["p_adjusted"]
            tested = (f"the primary comparison, p = {_p(p_value)}" if r["role"] == "primary"
                      else f"Holm-adjusted p = {_p(p_value)}")
            numbers = f"difference {sign * r['mean_difference']:+.3f}, 95% CI [{low:+.3f}, {high:+.3f}], {tested}"
            separated = not pd.isna(p_value) and p_value < ALPHA
            if separated and sign * r["mean_difference"] > 0:
                verdict.append(f"Under {name}, `{hi}` is more robust than `{lo}` at ε={eps:g} ({numbers}).")
            elif separated:
                verdict.append(f"Under {name}, `{hi}` is *less* robust than `{lo}` at ε={eps:g}, the published order "
                               f"reversed ({numbers}).")
            else:
                verdict.append(f"Under {name}, the runs do not separate `{hi}` from `{lo}` at ε={eps:g} ({numbers}).")
    if checks is not None and not checks.empty:
        flagged = sorted(m for m in models if m not in surviving_models(checks))
        verdict.append("Masking checks flag " + ", ".join(f"`{m}`" for m in flagged) + "." if flagged
                       else "No model is flagged by the masking checks.")
    return lines + ["", " ".join(verdict), ""]



def universal_section(cfg, stats: pd.DataFrame, tests: pd.DataFrame, models) -> list[str]:
    """Universal perturbations: the untargeted fooling rate per model and ε beside a random δ,
    the targeted success rate per target class, the transfer matrix at the middle ε and the
    paired comparisons of fooling rates (the circuit against its capacity-matched MLP first)."""
    section = cfg.attack.universal
    epsilons = sorted(section.epsilons)
    at = epsilons[(len(epsilons) - 1) // 2]
    own = stats[stats["target_model"].isna()].assign(target=lambda t: t["target"].astype(str))

    def cell(model, epsilon, target, measure):
        row = own[(own["model"] == model) & (own["epsilon"] == epsilon) & (own["target"] == target)
                  & (own["measure"] == measure)]
        return interval(row.iloc[0]) if len(row) else "n/a"

    def mean(model, epsilon, target, measure):
        row = own[(own["model"] == model) & (own["epsilon"] == epsilon) & (own["target"] == target)
                  & (own["measure"] == measure)]
        return f"{row['mean'].iloc[0]:.3f}" if len(row) else "n/a"

    rows = [{"model": m, **{f"ε={e:g}": f"{cell(m, e, 'none', 'fooling_rate')} (random δ "
                                          f"{mean(m, e, 'none', 'baseline_fooling_rate')})" for e in epsilons}}
            for m in models]
    lines = ["", "## Universal perturbations", "",
             f"One L∞ perturbation δ per model, run and ε for the whole data set, crafted on the run's training split "
             f"by stochastic PGD on the mean {section.loss} loss ({section.steps} updates of {section.batch_size} points, "
             f"step {section.step_ratio:g}·ε) and applied to the test points the per-input attacks use (docs/universal.md). "
             "Fooling rate: the share of correctly classified test points whose prediction δ changes, mean over runs "
             "with its 95% interval; in brackets a random δ of the same norm (ε times a random sign per input).", "",
             markdown_table(pd.DataFrame(rows)), ""]
    if section.targeted:
        targets = [t for t in dict.fromkeys(own["target"]) if t not in ("none", "all")]
        names = cfg.dataset.class_names
        rows = [{"model": m, "target": names[int(t)] if int(t) < len(names) else t,
                 **{f"ε={e:g}": cell(m, e, t, "success_rate") for e in epsilons}} for m in models for t in targets]
        lines += ["Class-targeted: the share of test points of the other classes that the target class's δ sends "
                  "to the target, mean over runs with its 95% interval.", "", markdown_table(pd.DataFrame(rows)), ""]
    transfer = stats[stats["measure"] == "transfer_fooling_rate"]
    if not transfer.empty:
        grid = transfer[transfer["epsilon"] == at].pivot_table(index="model", columns="target_model", values="mean",
                                                               sort=False).reindex(index=models, columns=models)
        table = grid.map("{:.3f}".format).reset_index().rename(columns={"model": "δ crafted on ↓, evaluated on →"})
        lines += [f"Transfer at ε={at:g}: the mean fooling rate of each model's untargeted δ (rows) on every model "
                  "(columns); the diagonal is each model's own.", "", markdown_table(table), ""]
    if not tests.empty:
        focus = tests[tests["quantum_vs_matched"].astype(bool)] if tests["quantum_vs_matched"].astype(bool).any() else tests
        rows = [{"a − b": f"`{r['model_a']}` − `{r['model_b']}`", "ε": f"{r['epsilon']:g}", "difference": difference(r),
                 "p (corrected)": _p(r["p_value"]), "p (Holm, all pairs and ε)": _p(r["p_holm"])}
                for _, r in focus.iterrows()]
        kind = "the circuit against its capacity-matched MLP" if len(focus) < len(tests) else "every pair of models"
        lines += [f"Paired comparison of the untargeted fooling rates, {kind} (difference across runs with its "
                  "corrected 95% interval; universal_tests.csv has every pair):", "", markdown_table(pd.DataFrame(rows)), ""]
    return lines
