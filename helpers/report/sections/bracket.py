"""Robust accuracy from both sides: certified by the best certificate (a lower bound) and
attacked by the per-sample worst case (an upper bound) per model and ε, beside the data's
ceiling, and the pairs of models a certificate separates."""
from __future__ import annotations

import pandas as pd

from ...analysis.ceiling import with_ceiling
from ...analysis.statistics import bracket_separations, bracket_table
from .. import figures
from ..section import SECTIONS, Section
from ..tables import markdown_table
from .robustness import attacked
from .smoothing import smoothed


def bound_certified(report) -> pd.DataFrame:
    """The bound certificates' rows in the report's threat model, degenerate runs left out
    (randomized smoothing certifies the smoothed classifier, not the model: its own table)."""
    certified = report.keep(report.tables["certified"])
    return certified[(certified["norm"] == report.norm) & ~smoothed(certified)]


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


@SECTIONS.register
class Bracket(Section):
    name = "bracket"
    order = 30
    title = "Bracketing: what is proved, what is attacked"
    about = """Every robust accuracy from an attack is an upper bound: a stronger attack could lower it.
The certificates give the lower bound. Per model, the shaded band runs from the certified
accuracy (best certificate per point, mean over runs) to the per-sample worst case of all
attacks; where the band is thin the true robust accuracy is pinned down, where it is wide
neither number alone is the answer. The first table gives both per ε (`bracket.csv` has their
intervals, `gap`, and `exact_runs`: the runs where the two meet). The second is a separation
that needs no statistics: a pair of models where the first one's *certified* accuracy is above
the second one's *attacked* accuracy in every run (`smallest_margin` > 0). No stronger attack can
undo it. Empty when no pair separates."""
    outputs = ("bracket", "separations")
    per_threat = ("bracket", "separations")
    drawn = ("bracket",)

    @classmethod
    def tables(cls, report):
        certified, robustness = bound_certified(report), attacked(report)
        bracket = with_ceiling(bracket_table(certified, robustness, report.ratio), report.tables["ceiling"],
                               report.norm, certified, robustness)
        return {"bracket": bracket, "separations": bracket_separations(certified, robustness, report.models)}

    @classmethod
    def figures(cls, report):
        return {"bracket": figures.plot_bracket(report.tables["bracket"], report.models)}

    @classmethod
    def text(cls, report):
        return bracket_section(report.tables["bracket"], report.tables["separations"], report.models)

    @classmethod
    def show(cls, report):
        bracket = report.tables["bracket"]
        return [*cls.images(report), bracket.pivot(index="model", columns="epsilon", values=["certified", "attacked"])
                .reindex(report.models).round(3), report.tables["separations"].round(3)]
