"""A sweep's tidy cross-experiment tables, from its points' tables (``results/<sweep>/<point>/``).

Every table has a ``point`` column and one column per swept key (the point's value, from
its complete config), then the columns of the statistic. Within a point the statistics are
those of its own report (``helpers/analysis/statistics.py``): means over runs with the
corrected t-interval (runs re-split one data set), degenerate runs left out when the point's
config says so. Across points: the quantum model against its baseline at every point
(Holm-adjusted across points) and trends along a swept key (per-run slopes, paired by run:
every point's run r has the same seed and split).
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats

from ..analysis.statistics import (ACCURACY_BOUNDS, bracket_table, compare, corrected_t_interval, holm,
                                   overlap_ratio, robust_auc, summarize_runs)
from ..report.section import degenerate_runs, read_table, without_degenerate
from ..store.files import read_csv, write_csv
from ..store.layout import Layout
from ..threats import PRIMARY
from .expansion import Point, Sweep
from .running import point_values

TABLES = {"models": "sweep_models.csv", "robustness": "sweep_robustness.csv", "auc": "sweep_auc.csv",
          "certified": "sweep_certified.csv", "tests": "sweep_tests.csv", "trends": "sweep_trends.csv",
          "cost": "sweep_cost.csv"}
PERMUTATIONS = 10000  # random permutations of the Spearman test when exact enumeration is too long
EXACT_POINTS = 7      # up to this many points the permutation test enumerates every order


def point_inputs(point: Point) -> dict[str, pd.DataFrame]:
    """A point's train and attack tables, degenerate runs left out where its config says so,
    and the attacks its report would show (``attack.methods`` and the worst case)."""
    cfg, layout = point.config, Layout(point.config.results_dir)
    models = read_csv(layout.table("models"))
    degenerate = degenerate_runs(models)
    robustness = without_degenerate(cfg, read_table(layout, "robustness", PRIMARY), degenerate)
    robustness = robustness[robustness["attack"].isin([*cfg.attack.methods, "worst_case"])]
    certified = without_degenerate(cfg, read_csv(layout.table("certified")), degenerate)
    return {"models": models, "robustness": robustness, "certified": certified,
            "ratio": overlap_ratio(cfg.dataset.split, models)}


def point_tables(sweep: Sweep, point: Point, inputs: dict) -> dict[str, pd.DataFrame]:
    """One point's rows of the per-point tables (before the point columns are added)."""
    ratio, robustness = inputs["ratio"], inputs["robustness"]
    trained = inputs["models"]
    models = []
    for model, group in trained.groupby("model", sort=False):
        mean, _, low, high = corrected_t_interval(group.loc[~group["degenerate"], "clean_accuracy"], ratio)
        models.append({"model": model, "type": group["type"].iloc[0], "parameters": int(group["parameters"].iloc[0]),
                       "clean_accuracy": mean, "clean_low": low, "clean_high": high,
                       "degenerate_runs": int(group["degenerate"].sum()), "n_runs": len(group),
                       "train_seconds": float(group["train_seconds"].sum())})
    auc_runs = robust_auc(robustness)
    return {
        "models": pd.DataFrame(models),
        "robustness": summarize_runs(robustness, ["model", "attack", "epsilon"], "accuracy", ratio=ratio,
                                     bounds=ACCURACY_BOUNDS),
        "auc": summarize_runs(auc_runs, ["model", "attack"], "auc", ratio=ratio, bounds=ACCURACY_BOUNDS),
        "certified": bracket_table(inputs["certified"], robustness, ratio),
        "auc_runs": auc_runs,
    }


def point_tests(sweep: Sweep, inputs: dict, auc_runs: pd.DataFrame) -> list[dict]:
    """The quantum model minus its baseline (paired by run) on the report's attack: the area
    under the accuracy-vs-ε curve and, if the report names one, the accuracy at ``epsilon``."""
    report, ratio, rows = sweep.report, inputs["ratio"], []
    auc = auc_runs[auc_runs["attack"] == report.attack].pivot_table(index="run", columns="model", values="auc")
    if {report.quantum, report.baseline} <= set(auc):
        rows.append({"measure": "auc", "epsilon": np.nan,
                     **compare(auc[report.quantum] - auc[report.baseline], ratio)})
    if report.epsilon is not None:
        r = inputs["robustness"]
        at = r[(r["attack"] == report.attack) & np.isclose(r["epsilon"], report.epsilon)]
        wide = at.pivot_table(index="run", columns="model", values="accuracy")
        if {report.quantum, report.baseline} <= set(wide):
            rows.append({"measure": "accuracy", "epsilon": report.epsilon,
                         **compare(wide[report.quantum] - wide[report.baseline], ratio)})
    return [{"model_a": report.quantum, "model_b": report.baseline, "attack": report.attack, **row} for row in rows]


def spearman_permutation(x, y, permutations: int = PERMUTATIONS, seed: int = 0) -> tuple[float, float]:
    """Spearman's ρ of (x, y) and its two-sided permutation p-value: every order of y when there
    are at most ``EXACT_POINTS`` points, else ``permutations`` random ones (the observed order
    counted among them). NaN with fewer than three points or a constant variable."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan, np.nan
    rho = stats.spearmanr(x, y).statistic
    if len(x) <= EXACT_POINTS:
        orders = (np.array(p) for p in itertools.permutations(range(len(y))))
        total = math.factorial(len(y))
        extreme = sum(abs(stats.spearmanr(x, y[o]).statistic) >= abs(rho) - 1e-12 for o in orders)
        return float(rho), extreme / total
    rng = np.random.default_rng(seed)
    extreme = sum(abs(stats.spearmanr(x, rng.permutation(y)).statistic) >= abs(rho) - 1e-12 for _ in range(permutations))
    return float(rho), (extreme + 1) / (permutations + 1)


def per_run_slopes(x, values: pd.DataFrame) -> np.ndarray:
    """The least-squares slope of each run's values against ``x``: ``values`` is points x runs;
    runs missing at any point are left out."""
    complete = values.dropna(axis=1)
    return np.array([np.polyfit(x, complete[run].to_numpy(float), 1)[0] for run in complete.columns])


def trend_rows(sweep: Sweep, points: list[Point], auc_runs: dict[str, pd.DataFrame], ratios: dict) -> list[dict]:
    """For each trend key of the report and each series (points that differ only in that key
    and the keys of its zip group): the slope of the per-run area under the curve against the
    key, for the quantum model, the baseline and their difference (mean slope over runs with
    the corrected t-interval and test), and Spearman's ρ of the per-point means with its
    permutation p-value."""
    report, rows = sweep.report, []
    for key in report.trends:
        moving = set(sweep.linked.get(key, (key,)))
        series: dict[tuple, list[Point]] = {}
        for point in points:
            if key in point.choices:
                rest = tuple(sorted((k, str(v)) for k, v in point.choices.items() if k not in moving))
                series.setdefault((point.block, rest), []).append(point)
        for (_, rest), members in series.items():
            members = sorted(members, key=lambda p: p.choices[key])
            x = np.array([float(p.choices[key]) for p in members])
            if len(set(x)) < 3:
                continue
            per_model = {}
            for model in (report.quantum, report.baseline):
                table = {}
                for p in members:
                    a = auc_runs[p.name]
                    a = a[(a["model"] == model) & (a["attack"] == report.attack)]
                    table[p.name] = a.set_index("run")["auc"]
                per_model[model] = pd.DataFrame(table).T  # points x runs
            per_model["difference"] = per_model[report.quantum] - per_model[report.baseline]
            ratio = float(np.mean([ratios[p.name] for p in members]))
            for model, values in per_model.items():
                slopes = per_run_slopes(x, values)
                mean, sd, low, high = corrected_t_interval(slopes, ratio)
                result = compare(slopes, ratio)
                rho, p_rho = spearman_permutation(x, values.mean(axis=1).to_numpy())
                rows.append({"trend": key, "series": ", ".join(f"{k}={v}" for k, v in rest) or "all",
                             "model": model, "attack": report.attack, "measure": "auc", "points": len(x),
                             "x_min": x.min(), "x_max": x.max(), "slope": mean, "slope_low": low, "slope_high": high,
                             "slope_p": result["p_value"], "n_runs": len(slopes), "spearman_rho": rho,
                             "spearman_p": p_rho, "spearman_min_p": smallest_permutation_p(len(x))})
    # Every slope test of the sweep is one family: the verdicts read the Holm-adjusted p.
    adjusted = holm([r["slope_p"] for r in rows]) if rows else []
    return [{**r, "slope_p_adjusted": float(p)} for r, p in zip(rows, adjusted)]


def smallest_permutation_p(points: int, permutations: int = PERMUTATIONS) -> float:
    """The smallest two-sided p-value ``spearman_permutation`` can return with ``points``
    points: two orders of n! (the observed one and its reverse) when it enumerates them, else
    one in ``permutations`` + 1. With 3 points it is 1/3, with 4 1/12: such a test cannot reach
    α = 0.05 whatever the data."""
    if points <= EXACT_POINTS:
        return 2 / math.factorial(points)
    return 1 / (permutations + 1)


def stage_seconds(point: Point, stages) -> dict:
    """Wall seconds of each stage of a point, from its provenance (start to finish of the
    stage's last run: a stage that reused every unit took little)."""
    from datetime import datetime

    from ..store.provenance import read_provenance

    record = (read_provenance(point.config.results_dir) or {}).get("stages", {})
    seconds = {}
    for stage in stages:
        times = record.get(stage, {})
        if times.get("started") and times.get("finished"):
            start, end = (datetime.strptime(times[k], "%Y-%m-%dT%H:%M:%S%z") for k in ("started", "finished"))
            seconds[f"{stage}_wall_seconds"] = (end - start).total_seconds()
    return seconds


def with_point(frame: pd.DataFrame, values: dict, name: str) -> pd.DataFrame:
    return frame.assign(**{"point": name, **values})[["point", *values, *frame.columns]] if not frame.empty else frame


def aggregate(sweep: Sweep, skip=()) -> dict[str, pd.DataFrame]:
    """Every sweep table from the points' tables (points whose folder is in ``skip``, such as
    failed ones, left out); written to ``results/<sweep>/`` and returned."""
    frames = {name: [] for name in TABLES}
    tests, auc_runs, ratios, done, cost = [], {}, {}, [], []
    for point in sweep.points:
        if point.folder in skip:
            continue
        inputs = point_inputs(point)
        tables = point_tables(sweep, point, inputs)
        values = point_values(sweep, point)
        for name in ("models", "robustness", "auc", "certified"):
            frames[name].append(with_point(tables[name], values, point.name))
        tests += [{"point": point.name, **values, **row} for row in point_tests(sweep, inputs, tables["auc_runs"])]
        auc_runs[point.name], ratios[point.name] = tables["auc_runs"], inputs["ratio"]
        trained = inputs["models"].groupby("model", sort=False)["train_seconds"].sum()
        cost.append({"point": point.name, **values, **stage_seconds(point, sweep.stages),
                     **{f"{model}_train_seconds": float(seconds) for model, seconds in trained.items()}})
        done.append(point)
    out = {name: pd.concat(frames[name], ignore_index=True) for name in ("models", "robustness", "auc", "certified")}
    tests = pd.DataFrame(tests)
    if not tests.empty:  # one family per measure: the same comparison at every experiment
        tests["p_adjusted"] = np.nan
        folders = [sweep.folder_of(name) for name in tests["point"]]
        for _, index in tests.groupby("measure").groups.items():
            # points that share a folder are one experiment: one member of the family
            first = ~pd.Series(folders, index=tests.index)[index].duplicated()
            family = index[first.to_numpy()]
            adjusted = dict(zip([folders[tests.index.get_loc(i)] for i in family], holm(tests.loc[family, "p_value"])))
            tests.loc[index, "p_adjusted"] = [adjusted[folders[tests.index.get_loc(i)]] for i in index]
    out["tests"] = tests
    out["trends"] = pd.DataFrame(trend_rows(sweep, done, auc_runs, ratios))
    out["cost"] = pd.DataFrame(cost)
    for name, table in out.items():
        write_csv(table, sweep.results_dir / TABLES[name])
    return out


def read_tables(results_dir) -> dict[str, pd.DataFrame]:
    """The sweep tables written by ``aggregate``."""
    return {name: read_csv(results_dir / file) for name, file in TABLES.items()}
