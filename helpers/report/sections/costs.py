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


@SECTIONS.register
class Costs(Section):
    name = "costs"
    order = 140
    title = "Where the time goes"
    about = """Each stage's wall time (start to finish) and the seconds of every unit of work, summed over
models, budgets and runs (`costs.csv`; a reused unit reports what it cost when it was computed).
What the stage's wall time times its workers leaves beyond its units went to start-up, loading,
hashing, writing and waiting for the slowest run ([performance](../docs/performance.md))."""
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
        return costs_paragraph(report.tables["costs"])

    @classmethod
    def show(cls, report):
        return [*cls.images(report), by(report.tables["costs"], ["stage", "kind", "name"]).head(10).round(3)]
