"""Is the gap real? Every paired comparison of the models (each attack, each ε > 0 and the area
under the curve), the pre-declared primary one with its own p, the others Holm-adjusted, and
the power of the primary comparison."""
from __future__ import annotations

import pandas as pd

from ...analysis.evaluation import WORST_CASE
from ...analysis.statistics import ALPHA, comparisons, power_table, robust_auc
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
    """Table rows of comparisons: difference, interval, d_z, corrected and adjusted p."""
    return [{"comparison": f"{r['model_a']} − {r['model_b']}", "mean difference [95% CI]": difference(r),
             "Cohen's d_z": "n/a" if pd.isna(r["cohens_dz"]) else f"{r['cohens_dz']:.2f}",
             "corrected p": p_text(r["p_value"]),
             "Holm-adjusted p": "primary" if r["role"] == "primary" else p_text(r["p_adjusted"]),
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
    test = (f"paired t-test p = {p_text(r['p_value'])} (runs on one fixed split differ only in their seed)" if fixed_split
            else f"corrected resampled t-test p = {p_text(r['p_value'])} (the textbook paired t-test, which treats the "
                 f"runs as independent, would say {p_text(r['p_naive'])})")
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
            p = "primary" if r["role"] == "primary" else f"p_adj {p_text(r['p_adjusted'])}"
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


@SECTIONS.register
class Comparisons(Section):
    name = "comparisons"
    order = 20
    title = "Is the gap real?"
    about = """The runs are paired (within a run every model saw the same split and seed) but not
independent: they re-use one data set, so every test here is the corrected resampled t-test
(Nadeau & Bengio 2003), whose variance counts the data the runs share; `p_naive` shows what
the textbook paired t-test would have claimed (with `dataset.split: fixed` the runs share
one split and differ only in their seed: there the two are the same). The comparison declared in the config
(`report.primary`) keeps its own p; every other comparison of an attack is Holm-adjusted
(`p_adjusted`) over its family. The second table is the power of each comparison: the runs it
would take to detect a true difference of 0.05."""
    outputs = ("paired_tests", "power")

    @classmethod
    def tables(cls, report):
        cfg, robustness = report.cfg, attacked(report)
        compared = comparisons(robustness, robust_auc(robustness), report.models, report.ratio, cfg.report.primary)
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
