"""A sweep's figures and ``summary.md``, from its tables on disk (``tables.aggregate``).

The figure draws, for each trend of the report (a swept key, per series of points), the
quantum model and its baseline against that key: the area under the worst-case
accuracy-vs-ε curve, the attacked accuracy at the report's ε and the certified accuracy
there, each with its corrected 95% interval across runs. The summary lists the points, the
capacity match at each, the paired tests at each point (Holm across points) and the trends,
with a sentence per trend that says what its numbers show.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..report.figures import model_colors
from ..report.tables import markdown_table
from ..store.files import save_figure, write_text
from .expansion import Sweep
from .tables import read_tables

FIGURE = "figures/sweep_robustness.png"
MATCH_TOLERANCE = 0.10  # matched_mlp's own rule: its parameter count within 10% of the circuit's
ALPHA = 0.05


def _series_points(sweep: Sweep, trend: str, series: str) -> list[str]:
    """The names of the points of one trend series (as ``tables.trend_rows`` formed it)."""
    moving = set(sweep.linked.get(trend, (trend,)))
    names = []
    for point in sweep.points:
        if trend not in point.choices:
            continue
        rest = ", ".join(f"{k}={v}" for k, v in sorted((k, str(v)) for k, v in point.choices.items() if k not in moving))
        if (rest or "all") == series:
            names.append(point.name)
    return names


def plot_sweep(sweep: Sweep, tables: dict[str, pd.DataFrame]):
    """One row of panels per trend series: the worst-case AUC, the attacked accuracy at the
    report's ε and the certified accuracy there against the swept key, per model, with bands."""
    import matplotlib.pyplot as plt

    report, trends = sweep.report, tables["trends"]
    series = trends[["trend", "series"]].drop_duplicates().itertuples(index=False) if not trends.empty else []
    series = list(series)
    colors = model_colors([report.quantum, report.baseline])
    columns = 3 if report.epsilon is not None else 1
    fig, axes = plt.subplots(max(len(series), 1), columns, figsize=(4.2 * columns, 3.2 * max(len(series), 1)),
                             squeeze=False)
    for row, (trend, name) in enumerate(series):
        points = _series_points(sweep, trend, name)
        panels = [("auc", tables["auc"][tables["auc"]["attack"] == report.attack], "mean", "ci_low", "ci_high",
                   "area under accuracy-vs-ε curve")]
        if report.epsilon is not None:
            r = tables["robustness"]
            panels.append(("attacked", r[(r["attack"] == report.attack) & np.isclose(r["epsilon"], report.epsilon)],
                           "mean", "ci_low", "ci_high", f"attacked accuracy at ε = {report.epsilon:g}"))
            c = tables["certified"]
            panels.append(("certified", c[np.isclose(c["epsilon"], report.epsilon)], "certified", "certified_low",
                           "certified_high", f"certified accuracy at ε = {report.epsilon:g}"))
        for col, (_, table, mean, low, high, label) in enumerate(panels):
            ax = axes[row][col]
            for model in (report.quantum, report.baseline):
                t = table[(table["model"] == model) & table["point"].isin(points)].sort_values(trend)
                if t.empty or t[mean].isna().all():
                    continue
                ax.plot(t[trend], t[mean], "o-", color=colors[model], label=model, ms=4)
                ax.fill_between(t[trend], t[low], t[high], color=colors[model], alpha=0.2, lw=0)
            ax.set_xlabel(trend.removeprefix("models."))
            ax.set_ylabel(label)
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(name if name != "all" else trend.removeprefix("models."), fontsize=9)
            ax.grid(alpha=0.3)
            if row == 0 and col == 0:
                ax.legend(fontsize=8, title="mean, corrected 95% CI over runs", title_fontsize=7)
    fig.suptitle(f"Sweep {sweep.name}: {report.quantum} against {report.baseline} ({report.attack})", fontsize=10)
    fig.tight_layout()
    return fig


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}" if abs(value) >= 10 ** -digits or value == 0 else f"{value:.1e}"
    return str(value)


def _table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "(none)"
    shown = pd.DataFrame([[_fmt(v) for v in row] for row in frame.itertuples(index=False)], columns=frame.columns)
    return markdown_table(shown)


def capacity_match(sweep: Sweep, models: pd.DataFrame) -> pd.DataFrame:
    """Per point: the quantum model's and the baseline's parameter counts and whether they lie
    within ``MATCH_TOLERANCE`` of each other."""
    report, rows = sweep.report, []
    for point, group in models.groupby("point", sort=False):
        counts = group.set_index("model")["parameters"]
        if report.quantum in counts and report.baseline in counts:
            q, b = int(counts[report.quantum]), int(counts[report.baseline])
            rows.append({"point": point, f"{report.quantum} parameters": q, f"{report.baseline} parameters": b,
                         "matched": bool(abs(b - q) <= MATCH_TOLERANCE * q)})
    return pd.DataFrame(rows)


def reading(sweep: Sweep, trends: pd.DataFrame, tests: pd.DataFrame) -> str:
    """Sentences that say what the trends and the per-point tests show, from their numbers."""
    report, lines = sweep.report, []
    for (trend, series), group in trends.groupby(["trend", "series"], sort=False):
        g = group.set_index("model")
        key = trend.removeprefix("models.")
        parts = []
        for model in (report.quantum, report.baseline, "difference"):
            if model not in g.index:
                continue
            r = g.loc[model]
            what = f"{report.quantum} − {report.baseline}" if model == "difference" else model
            verdict = ("no trend distinguishable from zero" if not r["slope_p_adjusted"] < ALPHA
                       else "falls" if r["slope"] < 0 else "rises")
            rank = (f"permutation p = {_fmt(r['spearman_p'])}" if r["spearman_min_p"] <= ALPHA else
                    f"permutation p = {_fmt(r['spearman_p'])}, which with {int(r['points'])} points cannot go below "
                    f"{_fmt(r['spearman_min_p'])}: no verdict at α = {ALPHA:g}")
            parts.append(f"{what} ({int(r['n_runs'])} runs): {r['slope']:+.4f} per unit of {key} (95% CI "
                         f"{r['slope_low']:+.4f} to {r['slope_high']:+.4f}, p = {_fmt(r['slope_p'])}, Holm-adjusted "
                         f"over the {len(trends)} slopes {_fmt(r['slope_p_adjusted'])}; {verdict}; Spearman ρ of the "
                         f"means {_fmt(r['spearman_rho'], 2)}, {rank})")
        x = g.iloc[0]
        lines.append(f"- **{key}** from {x['x_min']:g} to {x['x_max']:g} ({series}; {int(x['points'])} points): "
                     f"slope of the per-run area under the {report.attack} curve — " + "; ".join(parts) + ".")
    if not tests.empty:
        auc = tests[tests["measure"] == "auc"]
        experiments = len({sweep.folder_of(name) for name in auc["point"]})
        better = auc[(auc["p_adjusted"] < ALPHA) & (auc["mean_difference"] > 0)]
        worse = auc[(auc["p_adjusted"] < ALPHA) & (auc["mean_difference"] < 0)]
        lines.append(f"- At each of {len(auc)} points ({experiments} distinct experiments, the family Holm adjusts "
                     f"over), {report.quantum} against {report.baseline} on the area under the {report.attack} curve: "
                     f"more robust at {len(better)}, less robust at {len(worse)}, no difference distinguishable at "
                     f"{len(auc) - len(better) - len(worse)}.")
    return "\n".join(lines)


def write_summary(sweep: Sweep, tables: dict[str, pd.DataFrame]) -> str:
    """``results/<sweep>/summary.md`` from the sweep's tables; returns its text."""
    report, keys = sweep.report, list(sweep.keys)
    models = tables["models"]
    clean = models[["point", "model", "parameters", "clean_accuracy", "degenerate_runs", "n_runs"]]
    tests = tables["tests"]
    shown_tests = tests[["point", "measure", "epsilon", "mean_difference", "ci_low", "ci_high", "p_value",
                         "p_adjusted", "n_runs"]] if not tests.empty else tests
    trends = tables["trends"]
    shown_trends = trends[["trend", "series", "model", "slope", "slope_low", "slope_high", "slope_p",
                           "slope_p_adjusted", "spearman_rho", "spearman_p", "spearman_min_p", "n_runs"]] \
        if not trends.empty else trends
    text = "\n\n".join([
        f"# Sweep {sweep.name}",
        f"{len(sweep.points)} points ({len(sweep.folders)} distinct experiments; {len(sweep.excluded)} excluded by a "
        f"rule) over {', '.join(f'`{k}`' for k in keys)}; each point ran {', '.join(sweep.stages)} on its own config "
        f"(`results/{sweep.name}/<point>/config.yaml`). Intervals are corrected 95% t-intervals across runs; "
        f"`{report.quantum}` is compared with `{report.baseline}` under `{report.attack}`.",
        "## Reading", reading(sweep, trends, tests) or "(no trend with three or more points)",
        "## Trends", "The slope of each run's area under the accuracy-vs-ε curve against the swept key, "
        "averaged over runs (every point's run r shares its seed and split, so slopes are paired by run); "
        "`difference` is the quantum model minus its baseline. Every slope test of the sweep is one family "
        "(`slope_p_adjusted`: Holm); `spearman_min_p` is the smallest p the permutation test can give with the "
        "series' points.", _table(shown_trends),
        "## Quantum against the matched baseline at every point", _table(shown_tests),
        "## Capacity match", _table(capacity_match(sweep, models)),
        "## Models", _table(clean),
        "## Cost", "Wall seconds of each stage of each point (its provenance: the last time the stage ran, "
        "while other points ran beside it) and the seconds each model's training took, summed over runs.",
        _table(tables["cost"]),
    ]) + "\n"
    write_text(text, sweep.results_dir / "summary.md")
    return text


def write_report(sweep: Sweep) -> str:
    """The sweep's figure and summary from its tables; returns the summary."""
    import matplotlib.pyplot as plt

    tables = read_tables(sweep.results_dir)
    fig = plot_sweep(sweep, tables)
    save_figure(fig, sweep.results_dir / FIGURE)
    plt.close(fig)
    return write_summary(sweep, tables)
