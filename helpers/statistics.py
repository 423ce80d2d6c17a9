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
    bounds = (-1.0, 1.0) if metric == "spearman" else (0.0, 1.0)
    summary = summarize_runs(per_run, ["model", "method"], "value", bounds=bounds)
    notes = per_run.groupby(["model", "method"], sort=False)["note"].first().reset_index()
    return summary.merge(notes, on=["model", "method"]).assign(metric=metric)
