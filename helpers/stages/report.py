"""The report stage (``04_report.ipynb``): statistics, masking checks, figures and the summary.

A pure function of the tables the stages before it wrote: ``run`` first writes the tables of
every report section that applies (``compute_tables``, ``report.section``), then their
figures (``write_figures``) and ``summary.md`` (``report.summary``) from the tables on disk.
Nothing here loads a model.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..report.section import Report, Tables, applicable
from ..report.sections.ceiling import ceiling_table
from ..report.summary import write_summary
from ..store.files import save_figure, write_csv, write_text
from ..store.layout import Layout
from ..store.provenance import begin_stage, finish_stage
from . import progress
from .inputs import load_attacked_split, load_test_split, seeded_subset, stochastic_models


def attacked_points(cfg, run: int) -> tuple[np.ndarray, np.ndarray]:
    """The test points (n, ...) in [0, 1] and labels (n,) that the attack stage evaluated in ``run``."""
    return tuple(t.cpu().numpy() for t in load_attacked_split(cfg, run, "cpu"))


def point_ids(cfg) -> dict[int, np.ndarray]:
    """Per run, the data-set index of each point the attack stage evaluated, in the order of its
    per-point outcomes: what pairs one point's outcomes across runs (``analysis.paired_points``)."""
    ids = {}
    for run in range(cfg.n_runs):
        with np.load(Layout(cfg.results_dir).split(run)) as split:
            test_idx = split["test_idx"]
        labels = load_test_split(cfg, run, "cpu")[1].cpu().numpy()
        ids[run] = test_idx[seeded_subset(cfg, run, labels, cfg.attack.n_test)]
    return ids


def compute_tables(cfg, inputs, points: dict[int, np.ndarray] | None = None) -> dict[str, pd.DataFrame]:
    """Every table of the report: those of each section that applies (``report.section``), in
    order, from the stages' tables (``inputs``: given ones, the others read from the results
    folder), the data's ``ceiling`` on the attacked points (``report.sections.ceiling``) and
    each run's point ids (``points``; default ``point_ids``).
    A section's ``per_threat`` tables are computed in every threat model of the config
    (``Report.threats``) and written as one table with a ``norm`` column.
    Degenerate runs (``models.csv``) are left out of every statistic when
    ``report.exclude_degenerate`` (and never masking-checked); intervals and tests are
    corrected for the data the runs share (``n_test/n_train``)."""
    tables = inputs if isinstance(inputs, Tables) else Tables(cfg.results_dir, inputs)
    report = Report(cfg, tables, stochastic=stochastic_models(cfg), points=point_ids(cfg) if points is None else points)
    others = report.threats()
    computed = {}
    for section in applicable(cfg):
        produced = section.tables(report)
        tables.update(produced)  # a later section reads an earlier one's tables
        computed.update({name: table for name, table in produced.items() if name not in section.per_threat})
        per_threat = {name: [with_norm(produced[name], report.norm)] for name in section.per_threat}
        for other in others if section.per_threat else ():  # the same tables in every other threat model
            produced = {name: table for name, table in section.tables(other).items() if name in section.per_threat}
            other.tables.update(produced)
            for name, table in produced.items():
                per_threat[name].append(with_norm(table, other.norm))
        computed.update({name: stack(parts) for name, parts in per_threat.items()})
    return computed


def stack(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """One table of the threat models' ``parts``; a count (integers in some part, whole numbers
    or empty cells in the others) stays integers, written as such."""
    def integer(t, c):
        return c in t and pd.api.types.is_integer_dtype(t[c])

    def whole(t, c):
        if c not in t:
            return True
        column = t[c]
        numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
        return numeric and bool((column.dropna() % 1 == 0).all())

    parts = [t for t in parts if not t.empty] or parts[:1]
    counts = {c for t in parts for c in t.columns if integer(t, c)}
    counts = {c for c in counts if not all(integer(t, c) for t in parts) and all(whole(t, c) for t in parts)}
    return pd.concat([t.astype({c: "Int64" for c in counts if c in t}) for t in parts], ignore_index=True)


def with_norm(table: pd.DataFrame, norm: str) -> pd.DataFrame:
    """``table`` with a ``norm`` column (just before ``epsilon``, else last)."""
    columns = list(table.columns)
    if not columns:  # a table with no columns stays a blank file
        return table
    at = columns.index("epsilon") if "epsilon" in columns else len(columns)
    return table.reindex(columns=[*columns[:at], "norm", *columns[at:]]).assign(norm=norm)


def write_figures(cfg) -> list[str]:
    """Every figure of the report, from the tables on disk; returns their names."""
    layout = Layout(cfg.results_dir)
    report = Report(cfg, Tables(cfg.results_dir))
    names = []
    for section in applicable(cfg):
        for name, fig in section.figures(report).items():
            save_figure(fig, layout.figure(name))
            plt.close(fig)
            names.append(name)
    return names


def run(cfg, log=None) -> dict[str, pd.DataFrame]:
    """Write every table of the report, then its figures and summary from them; returns the
    tables. A progress bar counts the three steps; the closing line goes to ``log`` (default:
    a line above the bar)."""
    layout = Layout(cfg.results_dir)
    begin_stage(cfg, "report")
    with progress.StageBar("report", total=3, unit="step") as bar:
        inputs = Tables(cfg.results_dir, {"ceiling": ceiling_table(cfg, lambda run: attacked_points(cfg, run))})
        tables = compute_tables(cfg, inputs)
        for name, table in tables.items():
            write_csv(table, layout.table(name))
        bar.update()
        names = write_figures(cfg)
        bar.update()
        write_text(write_summary(cfg, Tables(cfg.results_dir)), layout.summary)
        bar.update()
        (log or bar.write)(f"report: {len(tables)} tables, {len(names)} figures and {layout.summary.name} in {layout.root}")
    finish_stage(cfg, "report")
    return tables
