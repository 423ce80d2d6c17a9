"""Summaries across Monte Carlo runs and binomial intervals within one run."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

ACCURACY_BOUNDS = (0.0, 1.0)


def t_interval(values, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(mean, standard deviation, CI low, CI high) of independent runs, Student-t interval.

    With a single run the interval is undefined and returned as (mean, mean).
    """
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return (np.nan,) * 4
    mean = float(v.mean())
    if len(v) == 1:
        return mean, 0.0, mean, mean
    sd = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df=len(v) - 1)) * sd / np.sqrt(len(v))
    return mean, sd, mean - half, mean + half


def summarize_runs(df: pd.DataFrame, by: list[str], value: str, confidence: float = 0.95,
                   bounds: tuple[float, float] | None = None) -> pd.DataFrame:
    """One row per group of ``by``: mean, sd, ci_low, ci_high of ``value`` across runs, n_runs.

    The interval is clipped to ``bounds``, the range the quantity can take (an accuracy
    interval should not reach past 1: pass ``ACCURACY_BOUNDS``); None leaves it as computed.
    """
    rows = []
    for key, group in df.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        mean, sd, low, high = t_interval(group[value], confidence)
        if bounds is not None:
            low, high = max(low, bounds[0]), min(high, bounds[1])
        rows.append({**dict(zip(by, key)), "mean": mean, "sd": sd, "ci_low": low, "ci_high": high,
                     "n_runs": int(group[value].notna().sum())})
    return pd.DataFrame(rows)


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k/n (one run's accuracy on n points)."""
    if n == 0:
        return (np.nan, np.nan)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def summarize_attribution_stability(stability: pd.DataFrame, metric: str = "spearman") -> pd.DataFrame:
    """Per model and method: mean over images within each run, then mean and CI across runs.

    Methods that do not apply to a model keep a row with NaN statistics and its ``note``.
    """
    per_run = stability.groupby(["model", "method", "run"], sort=False).agg(
        value=(metric, "mean"), note=("note", "first")).reset_index()
    bounds = {"spearman": (-1.0, 1.0), "top_k_overlap": (0.0, 1.0)}.get(metric, (0.0, np.inf))
    summary = summarize_runs(per_run, ["model", "method"], "value", bounds=bounds)
    notes = per_run.groupby(["model", "method"], sort=False)["note"].first().reset_index()
    return summary.merge(notes, on=["model", "method"]).assign(metric=metric)


def paired_tests(robustness: pd.DataFrame, attack: str, models) -> pd.DataFrame:
    """Is model A more robust than model B? Paired across runs (same seed, same split).

    One row per epsilon > 0 and ordered pair (A, B) of ``models``: mean difference of
    accuracy A − B across runs with its 95% t-interval, Cohen's d_z (mean difference over
    the standard deviation of the differences), and the two-sided paired t-test p-value.
    """
    r = robustness[(robustness["attack"] == attack) & (robustness["epsilon"] > 0)]
    wide = r.pivot_table(index=["epsilon", "run"], columns="model", values="accuracy")
    rows = []
    for i, a in enumerate(models):
        for b in models[i + 1:]:
            for epsilon, group in wide.groupby(level="epsilon"):
                diff = (group[a] - group[b]).dropna().to_numpy()
                mean, sd, low, high = t_interval(diff)
                # Undefined (NaN) with fewer than two runs or identical differences in every run.
                p, d_z = np.nan, np.nan
                if len(diff) >= 2 and sd > 0:
                    p, d_z = float(stats.ttest_1samp(diff, 0.0).pvalue), mean / sd
                rows.append({"attack": attack, "epsilon": epsilon, "model_a": a, "model_b": b,
                             "mean_difference": mean, "ci_low": low, "ci_high": high,
                             "cohens_dz": d_z, "p_value": p, "n_runs": len(diff)})
    return pd.DataFrame(rows)


def robust_auc(robustness: pd.DataFrame) -> pd.DataFrame:
    """Area under the accuracy-vs-epsilon curve per model, attack and run, divided by the
    epsilon range (so 1 = perfect accuracy at every budget); trapezoidal rule."""
    rows = []
    for (model, attack, run), g in robustness.groupby(["model", "attack", "run"], sort=False):
        g = g.sort_values("epsilon")
        width = g["epsilon"].iloc[-1] - g["epsilon"].iloc[0]
        area = np.trapezoid(g["accuracy"], g["epsilon"]) / width if width > 0 else g["accuracy"].mean()
        rows.append({"model": model, "attack": attack, "run": run, "auc": float(area)})
    return pd.DataFrame(rows)
