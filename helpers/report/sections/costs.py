"""Where the time goes: every stage's wall time and every unit's seconds, in one table
(``costs.csv``), a figure and a line of the summary.

The attack and interpret stages record each unit's seconds (``store.units``: the time its
computation took, saved with it, so a reused unit still says what it cost) in
``attack_costs.csv`` and ``interpret_costs.csv``; training's seconds are in ``models.csv``;
each stage's wall time is in ``provenance.json``. Unit seconds are summed over runs; the
stage rows say how long the stage took end to end, so what lies outside the units (start-up,
loading, hashing, writing, waiting for the slowest run) is the stage's wall time times its
workers minus the seconds of the units it computed.
"""
from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...analysis.evaluation import WORST_CASE
from ...registry import ATTACKS
from ...store.files import read_csv
from ...store.layout import Layout
from ..section import SECTIONS, Section

COLUMNS = ["stage", "kind", "name", "model", "epsilon", "units", "computed", "seconds"]
UNIT_TABLES = {"attack": "attack_costs", "interpret": "interpret_costs"}
WALL = "wall"  # a stage row's name: the stage's wall time, start to finish


def costs_table(layout: Layout) -> pd.DataFrame:
    """Per stage, kind, name, model and ε (NaN: a unit of every budget): the units, how many
    were computed in the last pass, and their seconds summed over runs; per stage (kind
    ``stage``) its wall time. Tables a study does not have are left out."""
    rows = []
    trained = layout.table("models")
    if trained.is_file():
        models = read_csv(trained)
        if "train_seconds" in models:
            for model, g in models.groupby("model", sort=False):
                rows.append({"stage": "train", "kind": "training", "name": model, "model": model, "epsilon": np.nan,
                             "units": len(g), "computed": len(g), "seconds": float(g["train_seconds"].sum())})
    for stage, table in UNIT_TABLES.items():
        if not layout.table(table).is_file():
            continue
        units = read_csv(layout.table(table))
        grouped = units.groupby(["kind", "name", "model", "epsilon"], sort=False, dropna=False)
        for (kind, name, model, epsilon), g in grouped:
            rows.append({"stage": stage, "kind": kind, "name": name, "model": model, "epsilon": epsilon,
                         "units": len(g), "computed": int((~g["reused"].astype(bool)).sum()),
                         "seconds": float(g["seconds"].sum())})
    if layout.provenance.is_file():
        stages = json.loads(layout.provenance.read_text()).get("stages", {})
        for stage, record in stages.items():  # the stages before the report (which is still running)
            if stage in ("train", *UNIT_TABLES) and record.get("started") and record.get("finished"):
                wall = (pd.Timestamp(record["finished"]) - pd.Timestamp(record["started"])).total_seconds()
                rows.append({"stage": stage, "kind": "stage", "name": WALL, "model": "", "epsilon": np.nan,
                             "units": np.nan, "computed": np.nan, "seconds": wall})
    return pd.DataFrame(rows, columns=COLUMNS)


def by(costs: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The units' seconds (stage rows left out) summed over ``columns``, costliest first, with
    each group's share of all unit seconds."""
    units = costs[costs["kind"] != "stage"]
    total = units["seconds"].sum()
    grouped = units.groupby(columns, as_index=False, dropna=False)["seconds"].sum()
    return grouped.assign(share=grouped["seconds"] / total if total else np.nan).sort_values("seconds", ascending=False)


def plot_costs(costs: pd.DataFrame, top: int = 15) -> plt.Figure:
    """Left: each stage's wall time. Right: the costliest (stage, kind, name) groups of units,
    seconds summed over models, budgets and runs."""
    walls = costs[costs["kind"] == "stage"]
    groups = by(costs, ["stage", "kind", "name"]).head(top).iloc[::-1]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.3 * max(len(groups), 4) + 1.6),
                             gridspec_kw={"width_ratios": [1, 2]})
    axes[0].barh(walls["stage"], walls["seconds"], color="0.4")
    axes[0].set(xlabel="wall seconds", title="Each stage, start to finish")
    labels = [f"{r.stage}: {r.name}" + ("" if r.kind in ("attack", "training") else f" ({r.kind})")
              for r in groups.itertuples()]
    axes[1].barh(labels, groups["seconds"], color="#0072B2")
    axes[1].set(xlabel="seconds, summed over models, budgets and runs", title=f"The {len(groups)} costliest kinds of unit")
    for ax in axes:
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle("Where the time goes", fontsize=10)
    fig.tight_layout()
    return fig


def costs_paragraph(costs: pd.DataFrame, top: int = 5) -> list[str]:
    """The summary's lines: each stage's wall time, and the costliest kinds of unit with their
    share of all unit seconds."""
    if costs.empty or not (costs["kind"] == "stage").any():
        return []
    walls = costs[costs["kind"] == "stage"]
    groups = by(costs, ["stage", "kind", "name"]).head(top)
    return ["", "## Where the time goes", "",
            "Wall time per stage: " + ", ".join(f"{r.stage} {r.seconds:.0f} s" for r in walls.itertuples())
            + ". The costliest kinds of unit (seconds summed over models, budgets and runs; share of all unit "
              "seconds): " + ", ".join(f"{r.stage} {r.name} ({r.kind}) {r.seconds:.0f} s ({r.share:.0%})"
                                       for r in groups.itertuples()) + " (`costs.csv`, `figures/costs.png`)."]


def survivors_floor(costs: pd.DataFrame, robustness: pd.DataFrame) -> pd.DataFrame:
    """Per attack (``costs``' attack units; ``robustness``: the attack stage's table, every
    threat model): its unit seconds, ``survivors`` a lower bound on those it spent on the points
    that survived every attack at their budget (the per-sample worst case), and their share.

    No cascade (each further attack only on the points the ones before it left standing, as
    AutoAttack runs them) removes those seconds without weakening the worst case: a point that
    survives has met every attack's whole budget. The bound is each unit's seconds times the
    worst case's accuracy at its model, threat model and budget (mean over runs), since an
    attack spends at least its mean per-point cost on a point it does not fool (one that stops
    early on fooled points, as Square and APGD do, more). Budgets without a worst case (the
    masking budgets) count zero."""
    attacks = costs[costs["kind"] == "attack"]
    worst = robustness[robustness["attack"] == WORST_CASE].groupby(["model", "norm", "epsilon"])["accuracy"].mean()
    norms = attacks["name"].map(lambda name: ATTACKS[name].norms[0] if name in ATTACKS else "linf")
    keys = pd.MultiIndex.from_arrays([attacks["model"], norms, attacks["epsilon"].astype(float)])
    survived = worst.reindex(keys).fillna(0.0).to_numpy()
    table = (attacks.assign(survivors=attacks["seconds"].to_numpy() * survived)
             .groupby("name", as_index=False)[["seconds", "survivors"]].sum())
    share = table["survivors"] / table["seconds"].where(table["seconds"] > 0)
    return table.assign(share=share.fillna(0.0)).sort_values("seconds", ascending=False, ignore_index=True)


def floor_paragraph(costs: pd.DataFrame, robustness: pd.DataFrame) -> list[str]:
    """The summary's paragraph on what a cascade of attacks could save (``survivors_floor``)."""
    floor = survivors_floor(costs, robustness)
    total, kept = floor["seconds"].sum(), floor["survivors"].sum()
    if not total:
        return []
    stage = costs[(costs["stage"] == "attack") & (costs["kind"] != "stage")]["seconds"].sum()
    return ["", f"Of the attacks' {total:,.0f} s, at least {kept:,.0f} s ({kept / total:.0%}) went to points that "
                "survived every attack at their budget. A cascade (each attack only on the points the ones before "
                "it left standing, as AutoAttack runs them) must still spend those, so it could take the attack "
                f"stage's {stage:,.0f} unit seconds to no less than {stage - (total - kept):,.0f} s "
                "(`docs/performance.md`)."]


@SECTIONS.register
class Costs(Section):
    name = "costs"
    order = 140
    title = "Where the time goes"
    about = """Each stage's wall time (start to finish) and the seconds of every unit of work, summed over
models, budgets and runs (`costs.csv`; a reused unit reports what it cost when it was computed).
What the stage's wall time times its workers leaves beyond its units went to start-up, loading,
hashing, writing and waiting for the slowest run. The attacks' seconds spent on points that
survived every attack are work no cascade of attacks removes ([performance](../docs/performance.md))."""
    outputs = ("costs",)
    drawn = ("costs",)

    @classmethod
    def tables(cls, report):
        return {"costs": costs_table(report.layout)}  # from the stages' unit times and provenance

    @classmethod
    def figures(cls, report):
        costs = report.tables["costs"]
        return {} if costs.empty else {"costs": plot_costs(costs)}

    @classmethod
    def text(cls, report):
        costs, robustness = report.tables["costs"], report.layout.table("robustness")
        lines = costs_paragraph(costs)
        if lines and robustness.is_file():  # every threat model's rows: each attack meets its own worst case
            lines += floor_paragraph(costs, read_csv(robustness))
        return lines

    @classmethod
    def show(cls, report):
        return [*cls.images(report), by(report.tables["costs"], ["stage", "kind", "name"]).head(10).round(3)]
