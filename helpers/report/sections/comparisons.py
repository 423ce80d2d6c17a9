"""Is the gap real? Every paired comparison of the models (each attack, each ε > 0 and the area
under the curve), the pre-declared primary one with its own p, the others Holm-adjusted, and
the power of the primary comparison."""
from __future__ import annotations

import pandas as pd

from ...analysis.evaluation import WORST_CASE
from ...analysis.power import power_table
from ...analysis.statistics import ALPHA, comparisons, deciding_p, robust_auc
from ..section import SECTIONS, Section
from ..tables import difference, interval, markdown_table, p_text
from .robustness import attacked


def headline_attack(curves: pd.DataFrame) -> str:
    """The attack whose numbers the summary quotes: the per-sample worst case when it was computed."""
    return WORST_CASE if WORST_CASE in set(curves["attack"]) else "pgd"


def _measure(epsilon) -> str:
    return "area under the accuracy-vs-ε curve" if pd.isna(epsilon) else f"ε={epsilon:g}"


def _verdict(p) -> str:
    if pd.isna(p):
        return "untestable (every run gave the same difference, or too few runs)"
    return f"{'significant' if p < ALPHA else 'not significant'} at α = {ALPHA:g}"


def paired_rows(p: pd.DataFrame, runs: bool = True) -> list[dict]:
    """Table rows of comparisons: difference, interval, d_z, the per-point and the corrected
    test's p and the deciding p, adjusted."""
    return [{"comparison": f"{r['model_a']} − {r['model_b']}", "mean difference [95% CI]": difference(r),
             "Cohen's d_z": "n/a" if pd.isna(r["cohens_dz"]) else f"{r['cohens_dz']:.2f}",
             "p (every point)": p_text(r.get("p_points")), "corrected p (conservative)": p_text(r["p_value"]),
             "Holm-adjusted p": "primary" if r["role"] == "primary" else p_text(deciding_p(r)),
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
    run_level = (f"the paired t-test over runs says p = {p_text(r['p_value'])} (runs on one fixed split differ only in "
                 "their seed)" if fixed_split
                 else f"the corrected resampled t-test over runs, conservative, says p = {p_text(r['p_value'])} (the "
                      f"textbook paired t-test, which treats the runs as independent, {p_text(r['p_naive'])})")
    test = (f"paired test on every point of every run p = {p_text(r['p_points'])}, 95% CI "
            f"[{r['points_ci_low']:+.3f}, {r['points_ci_high']:+.3f}]; {run_level}" if pd.notna(r.get("p_points"))
            else run_level)
    text = [f"**Primary comparison** (declared in the config before the runs): `{a}` − `{b}`, {attack}, "
            f"{_measure(primary.epsilon)}: {difference(r)} (mean over runs, corrected interval), {test}, "
            f"{int(r['n_runs'])} runs: {_verdict(deciding_p(r))}."]
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
        text.append(power_note(p.iloc[0]))
    return [" ".join(text)]


def power_note(q) -> str:
    """What the corrected test's power rests on, said conditionally: the run-to-run sd of the
    difference with its 95% interval, and the runs needed if the sd were at either end."""
    if pd.isna(q["sd_difference"]) or q["sd_difference"] == 0:
        return ("Power: untestable: every run gave the same difference, so the runs say nothing about its spread "
                "and no number of runs can be derived from them.")

    def runs(needed, independent) -> str:
        if pd.notna(needed):
            return f"{int(needed)} runs"
        if pd.notna(independent):
            return f"more runs than any number on one data set (independent data sets: {int(independent)})"
        return "more runs than any number, even of independent data sets"

    return (f"Power (of the corrected test; conditional on the spread): if the run-to-run standard deviation of this "
            f"difference is {q['sd_difference']:.3f} as measured (95% interval [{q['sd_low']:.3f}, "
            f"{q['sd_high']:.3f}] from {int(q['n_runs'])} runs), detecting a true difference of {q['delta']:g} at "
            f"{q['power']:.0%} power takes {runs(q['runs_needed'], q['runs_needed_if_independent'])}; at the "
            f"interval's upper end, {runs(q['runs_needed_high'], q['runs_needed_if_independent_high'])}; this study "
            f"has {int(q['n_runs'])}.")


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
            p = "primary" if r["role"] == "primary" else f"p_adj {p_text(deciding_p(r))}"
            cells[label] = f"{r['mean_difference']:+.3f} ({p})"
        rows.append({"comparison": f"{a} − {b}", **{f"ε={e:g}": cells.get(f"ε={e:g}", "") for e in columns},
                     "AUC": cells.get("AUC", "")})
    secondary = family[family["role"] == "secondary"]
    deciding = (secondary.apply(deciding_p, axis=1) if not secondary.empty
                else pd.Series(dtype=float)).dropna()
    runs_level = secondary["p_adjusted"].dropna()
    points = "p_points" in family and family["p_points"].notna().any()
    test = ("the paired test on every point of every run" if points
            else f"the {'paired' if fixed_split else 'corrected resampled'} t-test over runs")
    conservative = (f" (by the {'paired' if fixed_split else 'corrected resampled'} t-test over runs, which "
                    f"{'ignores' if fixed_split else 'assumes the worst of'} what the runs share: "
                    f"{int((runs_level < ALPHA).sum())})") if points else ""
    return [f"Every comparison of the {attack.replace('_', ' ')}, paired within runs (same split and seed), mean "
            f"difference of accuracy (or of the area under the curve) and its p-value from {test}, Holm-adjusted "
            f"over the family of {len(deciding)} secondary comparisons: {int((deciding < ALPHA).sum())} of them remain "
            f"significant at α = {ALPHA:g}{conservative}. Full table: `paired_tests.csv`.", "",
            markdown_table(pd.DataFrame(rows)), ""]


@SECTIONS.register
class Comparisons(Section):
    name = "comparisons"
    order = 20
    title = "Is the gap real?"
    about = """Within a run every model saw the same points, so two models are compared on every point
of every run (`p_points`, `points_ci_low`/`points_ci_high`: a point tested in several runs counts
once, with the mean of its differences, and what the runs' own trainings add comes from the
run-to-run spread; docs/statistics.md shows its calibration on simulated studies). The
corrected resampled t-test over the runs' means (Nadeau & Bengio 2003; `p_value`, with the
interval `ci_low`/`ci_high`) stays beside it as the conservative column, and `p_naive` is the
textbook paired t-test that treats the runs as independent. The comparison declared in the
config (`report.primary`) keeps its own p; every other comparison of an attack is
Holm-adjusted over its family (`p_points_adjusted`, `p_adjusted`). The second table is the
power of the corrected test: the runs it would take to detect a true difference of 0.05."""
    outputs = ("paired_tests", "power")
    per_threat = ("paired_tests",)  # the power of the primary comparison: the primary threat model's

    @classmethod
    def tables(cls, report):
        cfg, robustness = report.cfg, attacked(report)
        compared = comparisons(robustness, robust_auc(robustness), report.models, report.ratio, cfg.report.primary,
                               report.point_outcomes())
        primary = cfg.report.primary
        focus = compared[compared["attack"] == (primary.attack if primary else headline_attack(robustness))]
        focus = focus[focus["measure"] == "auc"] if primary is None or primary.epsilon is None \
            else focus[focus["epsilon"] == primary.epsilon]
        return {"paired_tests": compared, "power": power_table(focus, report.ratio)}

    @classmethod
    def text(cls, report):
        cfg, t, models = report.cfg, report.tables, report.models
        curves, auc, compared = t["stats"], t["auc"], t["paired_tests"]
        fixed = cfg.dataset.split == "fixed"
        lines = primary_section(compared, curves, auc, t["power"], cfg.report.primary, models, fixed)
        params = t["models"].groupby("model", sort=False)["parameters"].first()
        if len(models) > 1:
            lines += ["", "Trainable parameters: " + ", ".join(f"`{m}` {params[m]:,}" for m in models)
                      + "; clean accuracies differ as well (table above). A robustness gap between models of such "
                      "different capacity and clean accuracy is not by itself evidence about quantum models.", ""]
        else:
            lines += [""]
        worst = headline_attack(curves)
        lines += family_section(compared, worst, sorted(curves["epsilon"].unique()), models, fixed)
        primary = cfg.report.primary
        if not auc.empty and not (primary is not None and primary.epsilon is None and primary.attack == worst):
            a = auc[auc["attack"] == worst].set_index("model").reindex(models)
            lines += [f"Area under the {worst.replace('_', ' ')} accuracy-vs-ε curve (normalised by the ε range; "
                      "1 = never fooled): " + ", ".join(f"`{m}` {interval(r)}" for m, r in a.iterrows()) + "."]
        return lines

    @classmethod
    def show(cls, report):
        paired = report.tables["paired_tests"]
        return [paired[paired["attack"] == headline_attack(report.tables["stats"])].sort_values(["role", "p_adjusted"])
                .round(4), report.tables["power"].round(3)]
