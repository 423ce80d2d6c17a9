"""Does the published result hold? A published result (``report.reference``) beside ours under
the same attack and statistic, then under every attack, per class, at the budget where the
classes become indistinguishable and with the masking checks; the verdict is computed."""
from __future__ import annotations

import pandas as pd

from ...analysis.evaluation import WORST_CASE
from ...analysis.masking import surviving_models
from ...analysis.statistics import ALPHA, deciding_interval, deciding_p
from ..section import SECTIONS, Section
from ..tables import interval, markdown_table, p_text
from .comparisons import paired_rows


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
                  markdown_table(pd.DataFrame(paired_rows(paired[a], runs=False))), ""]

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
            low, high = sorted(sign * v for v in deciding_interval(r))
            name = a.replace("_", " ")
            p_value = deciding_p(r)
            tested = (f"the primary comparison, p = {p_text(p_value)}" if r["role"] == "primary"
                      else f"Holm-adjusted p = {p_text(p_value)}")
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


@SECTIONS.register
class Reference(Section):
    name = "reference"
    order = 100
    title = "Does the published result hold?"
    about = """Where the config names a published result (`report.reference`, e.g.
`configs/plus_minus_study.yaml`): the published numbers beside ours under the same attack and
statistic, then every other attack, per class and with the masking checks; the verdict sentences
in `summary.md` are computed from the tables."""

    @classmethod
    def applies(cls, cfg) -> bool:
        return cfg.report.reference is not None

    @classmethod
    def text(cls, report):
        t = report.tables
        return ["", "## Does the published result hold?", "",
                *reference_section(report.cfg.report.reference, t["stats"], t["paired_tests"], t["class_stats"],
                                   report.keep(t["large_epsilon"]), t["masking_checks"], report.models, t["robustness"])]
