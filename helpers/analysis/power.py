"""Power: how many runs a comparison would need, and what that rests on (the run-to-run
spread of its differences, measured with its own uncertainty)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .statistics import ALPHA, POWER_DELTA, POWER_TARGET


def runs_for_power(sd_difference: float, ratio: float, delta: float = 0.05, alpha: float = ALPHA,
                   power: float = 0.8, max_runs: int = 1000) -> int | None:
    """The smallest number of runs k with which the corrected paired test (two-sided,
    ``alpha``) detects a true mean difference ``delta`` with probability ``power``, for a run-to
    -run standard deviation of the differences ``sd_difference``; None if no k up to
    ``max_runs`` reaches it (with ratio > 0 the standard error never falls below
    sqrt(ratio)·sd, so more runs cannot buy every power)."""
    if not sd_difference > 0:
        return 2

    def achieved(k: int) -> float:  # the test's power with k runs; it grows with k
        df, noncentrality = k - 1, delta / (sd_difference * np.sqrt(1 / k + ratio))
        critical = stats.t.ppf(1 - alpha / 2, df)
        return stats.nct.sf(critical, df, noncentrality) + stats.nct.cdf(-critical, df, noncentrality)

    if achieved(max_runs) < power:
        return None
    low, high = 2, max_runs
    while low < high:
        middle = (low + high) // 2
        low, high = (middle + 1, high) if achieved(middle) < power else (low, middle)
    return low


def power_table(comparisons_: pd.DataFrame, ratio: float, delta: float = POWER_DELTA,
                power: float = POWER_TARGET) -> pd.DataFrame:
    """For each comparison of the worst case (or of the primary's attack): the run-to-run sd of
    the differences with its 95% interval (``sd_low``, ``sd_high``: the chi-square interval over
    the runs), and the runs the corrected test needs to detect a true difference ``delta`` with
    probability ``power`` at the measured sd (``runs_needed``; NaN: not reachable by adding runs
    that share the data) and at the interval's upper end (``runs_needed_high``), and what
    independent runs would need (``_if_independent``). An sd of zero (every run gave the same
    difference) leaves them all NaN: untestable."""
    rows = []
    for r in comparisons_.itertuples():
        sd, k = r.sd_difference, r.n_runs
        usable = pd.notna(sd) and sd > 0 and k >= 2
        low, high = ((sd * np.sqrt((k - 1) / stats.chi2.ppf(q, k - 1)) for q in (0.975, 0.025)) if usable
                     else (np.nan, np.nan))

        def needed(s, r_):
            found = runs_for_power(s, r_, delta, power=power) if usable else None
            return np.nan if found is None else found

        rows.append({"attack": r.attack, "measure": r.measure, "epsilon": r.epsilon, "model_a": r.model_a,
                     "model_b": r.model_b, "role": r.role, "sd_difference": sd, "sd_low": low, "sd_high": high,
                     "delta": delta, "power": power, "n_runs": k, "runs_needed": needed(sd, ratio),
                     "runs_needed_high": needed(high, ratio), "runs_needed_if_independent": needed(sd, 0.0),
                     "runs_needed_if_independent_high": needed(high, 0.0)})
    return pd.DataFrame(rows)
