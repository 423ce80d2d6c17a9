"""The report's section on the data's own ceiling (``analysis.ceiling``): the table of the
ceiling per run, the bracket's ceiling columns, and the summary's paragraph.

``ceiling_table`` takes the test points each run was attacked on (the report stage reads
them back) and computes, per threat model of the config and budget, the ceiling and, where the
data set has one, the exact robust accuracy of its true boundary (``analysis.true_boundary``).
It loads no model.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...analysis.ceiling import COLUMNS, ceiling_rows
from ...analysis.true_boundary import true_boundary_accuracy
from ...registry import THREAT_MODELS
from ..tables import markdown_table
from ..section import SECTIONS, Section

TABLE_COLUMNS = [*COLUMNS, "true_boundary"]


def ceiling_table(cfg, points) -> pd.DataFrame:
    """Per run, threat model (``attack`` and ``attack.l2``) and budget: the data's ceiling on
    the attacked points (``analysis.ceiling.COLUMNS``) and ``true_boundary`` (NaN where none).
    ``points(run)`` returns the run's attacked points (n, ...) in [0, 1] and labels (n,)."""
    rows = []
    for run in range(cfg.n_runs):
        x, y = points(run)
        for norm, section in cfg.attack.threat_sections().items():
            for row in ceiling_rows(x, y, section.epsilons, norm, cfg.report.ceiling_seconds):
                truth = true_boundary_accuracy(cfg.dataset, x, y, row["epsilon"], norm)
                rows.append({"run": run, **row, "true_boundary": np.nan if truth is None else truth})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def ceiling_curve(ceiling: pd.DataFrame, norm: str) -> pd.DataFrame:
    """Mean over runs of the ceiling (and the true boundary) per ε, for the figures."""
    rows = ceiling[ceiling["norm"] == norm]
    return rows.groupby("epsilon", as_index=False)[["ceiling", "true_boundary"]].mean()


def _models_where(bracket: pd.DataFrame, column: str) -> list[str]:
    """Where the run count ``column`` covers every run, ε > 0, as "`model` at ε=..."."""
    rows = bracket[bracket[column] == bracket["n_runs"]]
    return [f"`{r.model}` at ε={r.epsilon:g}" for r in rows[rows["epsilon"] > 0].itertuples()]


def ceiling_paragraph(bracket: pd.DataFrame, ceiling: pd.DataFrame, norm: str, models) -> list[str]:
    """The ceiling of one threat model in the summary: a table of the worst case beside the
    ceiling and what it says (where a model is provably at it, where the attacks must be too
    weak, where no difference between models is possible)."""
    if bracket.empty or "ceiling" not in bracket or ceiling[ceiling["norm"] == norm].empty:
        return []
    label = THREAT_MODELS[norm].norm_name
    epsilons = sorted(e for e in bracket["epsilon"].unique() if e > 0)
    curve = ceiling_curve(ceiling, norm).set_index("epsilon")
    rows = [{"": "ceiling (any classifier)", **{f"ε={e:g}": f"{curve.loc[e, 'ceiling']:.3f}" for e in epsilons}}]
    if curve["true_boundary"].notna().any():
        rows.append({"": "true boundary", **{f"ε={e:g}": "—" if pd.isna(curve.loc[e, "true_boundary"])
                                             else f"{curve.loc[e, 'true_boundary']:.3f}" for e in epsilons}})
    for m in models:
        b = bracket[bracket["model"] == m].set_index("epsilon")
        rows.append({"": f"`{m}` worst case (share of the ceiling)",
                     **{f"ε={e:g}": f"{b.loc[e, 'attacked']:.3f} ({b.loc[e, 'attacked_share']:.0%})" for e in epsilons}})
    text = []
    full = [e for e in epsilons if curve.loc[e, "ceiling"] >= 1]
    if full:
        text.append(f"Up to ε={max(full):g} no two test points of different classes lie within 2ε of each other in "
                    f"{label} in any run: a classifier robust and correct on every point exists, so every loss of "
                    "robust accuracy there is the model's, not the data's.")
    proved = _models_where(bracket, "certified_at_ceiling_runs")
    if proved:
        text.append("Provably as robust as any classifier can be on these points (certified accuracy equals the "
                    "ceiling in every run): " + ", ".join(proved) + ".")
    reached = [m for m in _models_where(bracket, "attacked_at_ceiling_runs") if m not in proved]
    if reached:
        text.append("The attacks find no shortfall from the ceiling (attacked accuracy equals it in every run; the "
                    "truth may still lie below): " + ", ".join(reached) + ".")
    above = bracket[(bracket["attacked_above_ceiling_runs"] > 0) & (bracket["epsilon"] > 0)]
    if not above.empty:
        text.append("The attacks are provably too weak (attacked accuracy above the ceiling, so examples they missed "
                    "must exist) for " + ", ".join(f"`{r.model}` at ε={r.epsilon:g} in {int(r.attacked_above_ceiling_runs)} "
                                                   f"of {int(r.n_runs)} runs" for r in above.itertuples()) + ".")
    both = bracket[(bracket["certified_at_ceiling_runs"] == bracket["n_runs"]) & (bracket["epsilon"] > 0)]
    tied = [f"ε={e:g} ({', '.join(f'`{m}`' for m in g['model'])})" for e, g in both.groupby("epsilon") if len(g) > 1]
    if tied:
        text.append("No difference between these models is possible, since each is provably at the ceiling: "
                    + "; ".join(tied) + ".")
    elif not proved:
        text.append("No model is proved to be at the ceiling at any ε > 0, so the table bounds how much any model "
                    "could still gain, not a tie.")
    return ["", f"### The ceiling in {label}", "", markdown_table(pd.DataFrame(rows)), "", " ".join(text)]


def ceiling_section(ceiling: pd.DataFrame, models, brackets: dict[str, pd.DataFrame]) -> list[str]:
    """The summary's section on the data's ceiling, one paragraph per threat model
    (``brackets``: norm -> its bracket table)."""
    if ceiling.empty:
        return []
    body = [line for norm, bracket in brackets.items() for line in ceiling_paragraph(bracket, ceiling, norm, models)]
    if not body:
        return []
    exact = bool(ceiling["exact"].all())
    return ["", "## The data's ceiling", "",
            "The largest share of the attacked test points that any classifier could keep correct and robust "
            "(points of different classes whose ε-balls meet cannot both be; the ceiling is the largest set of points "
            "with no such pair, per run, mean over runs; Bhagoji, Cullina & Mittal 2019). No model's robust accuracy "
            "can exceed it; the share is each model's worst case divided by it, mean over runs. "
            + ("Every ceiling here is exact." if exact else
               f"{int((~ceiling['exact']).sum())} of {len(ceiling)} ceilings hit the time limit and are the solver's "
               "upper bound."), *body]


@SECTIONS.register
class Ceiling(Section):
    name = "ceiling"
    order = 50
    title = "The data's ceiling"
    about = """No model can be robust and correct on two test points of different classes whose ε-balls
meet: some input lies in both. The ceiling is the largest share of the attacked points that
one classifier could keep correct and robust (a maximum set of points with no such pair,
found exactly per run), so it bounds every model's robust accuracy from above whatever the
architecture: the dotted line in the robustness and bracket figures. A model whose certified
accuracy reaches it is provably as robust as anything can be on these points; a worst case
*above* it means the attacks missed something. The first table is the ceiling per threat model and
ε (mean over runs; `true_boundary` where the data set has a known one), the second each model's worst
case beside it (`attacked_share`: the worst case over the ceiling)."""
    outputs = ("ceiling",)

    @classmethod
    def tables(cls, report):
        return {"ceiling": report.tables["ceiling"]}  # the report stage computes it from the attacked points

    @classmethod
    def text(cls, report):
        brackets = {view.norm: view.tables["bracket"] for view in (report, *report.threats())}
        return ceiling_section(report.tables["ceiling"], report.models, brackets)

    @classmethod
    def show(cls, report):
        ceiling, bracket = report.tables["ceiling"], report.tables["bracket"]
        return [ceiling.groupby(["norm", "epsilon"])[["ceiling", "true_boundary", "conflicts", "seconds"]].mean()
                .round(3), bracket.pivot(index="model", columns="epsilon", values=["attacked", "ceiling", "attacked_share"])
                .reindex(report.models).round(3)]
