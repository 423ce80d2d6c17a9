"""Inference across Monte Carlo runs that share data: corrected intervals and tests, multiple
comparisons, power, and binomial intervals within one run.

Runs re-use one data set: with repeated k-fold splits the test sets of one repetition are
disjoint, but every two runs share most of their training data (and runs of different
repetitions share test points), so their results are positively correlated and the plain
t-interval and paired t-test are too narrow. Following Nadeau & Bengio (2003) and Bouckaert
& Frank (2004), the variance of a mean over k runs is inflated from s²/k to
(1/k + n_test/n_train)·s²; ``ratio`` below is n_test/n_train (0 gives the textbook
t-interval and t-test). With a fixed split (``dataset.split: fixed``) every run trains and
tests on the same points and differs only in its seed: the runs are independent draws given
that data, so ``ratio`` is 0 and an interval covers the seed-to-seed variation on that one
test set (``overlap_ratio``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .multiplicity import holm
from .paired_points import normalised_area, point_columns

ACCURACY_BOUNDS = (0.0, 1.0)
ALPHA = 0.05
# The power note: runs needed to detect a true difference POWER_DELTA with probability POWER_TARGET.
POWER_DELTA, POWER_TARGET = 0.05, 0.8
# The range each attribution metric can take (its interval is flagged when it reaches past it).
METRIC_BOUNDS = {"spearman": (-1.0, 1.0), "spearman_chance": (-1.0, 1.0), "spearman_random": (-1.0, 1.0),
                 "spearman_above_chance": (-2.0, 2.0), "top_k_overlap": (0.0, 1.0), "top_k_chance": (0.0, 1.0)}


def overlap_ratio(split: str, trained: pd.DataFrame) -> float:
    """``ratio`` for the runs in ``trained`` (the models table: ``n_test``, ``n_train``):
    n_test/n_train when the runs re-split one data set (``split`` kfold or random), 0 when
    they share one fixed split."""
    if split == "fixed":
        return 0.0
    return float(trained["n_test"].mean() / trained["n_train"].mean())


def corrected_t_interval(values, ratio: float = 0.0, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(mean, standard deviation, CI low, CI high) of ``values`` from k runs, with the
    corrected variance (1/k + ratio)·s² and k − 1 degrees of freedom. NaNs are dropped; with a
    single run the interval is (mean, mean)."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return (np.nan,) * 4
    mean = float(v.mean())
    if len(v) == 1:
        return mean, 0.0, mean, mean
    sd = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df=len(v) - 1)) * sd * np.sqrt(1 / len(v) + ratio)
    return mean, sd, mean - half, mean + half


def t_interval(values, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """The textbook Student-t interval of independent runs (``corrected_t_interval`` with ratio 0)."""
    return corrected_t_interval(values, 0.0, confidence)


def corrected_paired_test(differences, ratio: float = 0.0) -> tuple[float, float]:
    """(t, two-sided p) of the corrected resampled t-test that the mean of ``differences``
    (one per run, paired) is zero: t = mean / sqrt((1/k + ratio)·s²), k − 1 degrees of
    freedom. NaN when fewer than two runs or every difference is the same."""
    d = np.asarray(differences, dtype=float)
    d = d[~np.isnan(d)]
    if len(d) < 2 or d.std(ddof=1) == 0:
        return np.nan, np.nan
    t = d.mean() / (d.std(ddof=1) * np.sqrt(1 / len(d) + ratio))
    return float(t), float(2 * stats.t.sf(abs(t), df=len(d) - 1))


def summarize_runs(df: pd.DataFrame, by: list[str], value: str, ratio: float = 0.0, confidence: float = 0.95,
                   bounds: tuple[float, float] | None = None) -> pd.DataFrame:
    """One row per group of ``by``: mean, sd, ci_low, ci_high (the corrected t-interval of
    ``value`` across runs, never clipped), n_runs, ``all_equal`` (every run gave the same value:
    no interval to speak of) and ``clipped`` (the interval reaches past ``bounds``, the range
    the quantity can take: the normal approximation is poor there)."""
    rows = []
    for key, group in df.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        mean, sd, low, high = corrected_t_interval(group[value], ratio, confidence)
        values = group[value].dropna()
        n = len(values)
        rows.append({**dict(zip(by, key)), "mean": mean, "sd": sd, "ci_low": low, "ci_high": high, "n_runs": n,
                     "all_equal": bool(n > 1 and values.max() == values.min()),
                     "clipped": bool(bounds is not None and n > 1 and (low < bounds[0] or high > bounds[1]))})
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


def summarize_attribution_stability(stability: pd.DataFrame, metric: str = "spearman", ratio: float = 0.0) -> pd.DataFrame:
    """Per model and method: mean over images within each run, then mean and corrected
    interval across runs. Methods that do not apply to a model keep a row with NaN statistics
    and its ``note``; images whose metric is undefined (a constant map) are left out and
    counted in ``undefined``."""
    per_run = stability.groupby(["model", "method", "run"], sort=False).agg(
        value=(metric, "mean"), note=("note", "first"),
        undefined=(metric, lambda v: int(v.isna().sum()))).reset_index()
    bounds = METRIC_BOUNDS.get(metric, (0.0, np.inf))
    summary = summarize_runs(per_run, ["model", "method"], "value", ratio=ratio, bounds=bounds)
    extra = per_run.groupby(["model", "method"], sort=False).agg(note=("note", "first"), undefined=("undefined", "sum"))
    return summary.merge(extra.reset_index(), on=["model", "method"]).assign(metric=metric)


# A paired comparison's columns (``paired_tests``, ``auc_tests``): also those of an empty table (one model).
PAIRED_COLUMNS = ["attack", "epsilon", "model_a", "model_b", "mean_difference", "ci_low", "ci_high", "sd_difference",
                  "cohens_dz", "p_value", "p_naive", "n_runs", "points_ci_low", "points_ci_high", "p_points"]


def compared_pairs(models, present) -> list[tuple[str, str]]:
    """Every pair (a, b) of ``models`` in config order whose runs both appear in ``present``
    (a model degenerate in every run, and left out, has none: nothing to compare it with)."""
    kept = [m for m in models if m in set(present)]
    return [(a, b) for i, a in enumerate(kept) for b in kept[i + 1:]]


def paired_tests(robustness: pd.DataFrame, attack: str, models, ratio: float = 0.0, points=None) -> pd.DataFrame:
    """Is model A more robust than model B? Paired across runs (same seed, same split).

    One row per epsilon > 0 and ordered pair (A, B) of ``models``: mean difference of
    accuracy A − B across runs with its corrected 95% t-interval, Cohen's d_z (mean difference
    over the standard deviation of the differences), the corrected resampled t-test's
    two-sided p (``p_value``) and, for comparison, the textbook paired t-test's that treats
    runs as independent (``p_naive``); with ``points`` (``paired_points.PointOutcomes``) the
    paired test on every point of every run (``p_points``, its interval ``points_ci_low`` and
    ``points_ci_high``). Runs missing for either model (e.g. degenerate ones left out) are left
    out of the pair.
    """
    r = robustness[(robustness["attack"] == attack) & (robustness["epsilon"] > 0)]
    wide = r.pivot_table(index=["epsilon", "run"], columns="model", values="accuracy")
    rows = []
    for a, b in compared_pairs(models, wide.columns):
        for epsilon, group in wide.groupby(level="epsilon"):
            differences = (group[a] - group[b]).dropna()
            rows.append({"attack": attack, "epsilon": epsilon, "model_a": a, "model_b": b,
                         **compare(differences, ratio),
                         **point_columns(points, a, b, attack, epsilon, differences.index.get_level_values("run"))})
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def compare(differences, ratio: float) -> dict:
    """The paired comparison of one set of per-run differences (see ``paired_tests``)."""
    diff = pd.Series(differences).dropna().to_numpy()
    mean, sd, low, high = corrected_t_interval(diff, ratio)
    _, p = corrected_paired_test(diff, ratio)
    _, p_naive = corrected_paired_test(diff, 0.0)
    d_z = mean / sd if len(diff) >= 2 and sd > 0 else np.nan
    return {"mean_difference": mean, "ci_low": low, "ci_high": high, "sd_difference": sd, "cohens_dz": d_z,
            "p_value": p, "p_naive": p_naive, "n_runs": len(diff)}


def deciding_p(row) -> float:
    """The p that decides a comparison row of ``comparisons``: the paired test on every point
    where the per-point outcomes gave one, else the run-level test; Holm-adjusted over its
    family unless it is the declared primary comparison."""
    points, runs = ("p_points", "p_value") if row.get("role") == "primary" else ("p_points_adjusted", "p_adjusted")
    return row[points] if points in row.index and pd.notna(row[points]) else row[runs]


def deciding_interval(row) -> tuple[float, float]:
    """The 95% interval of the test ``deciding_p`` reads (unadjusted)."""
    if "p_points" in row.index and pd.notna(row["p_points"]):
        return row["points_ci_low"], row["points_ci_high"]
    return row["ci_low"], row["ci_high"]


def robust_auc(robustness: pd.DataFrame) -> pd.DataFrame:
    """Area under the accuracy-vs-epsilon curve per model, attack and run, divided by the
    epsilon range (so 1 = perfect accuracy at every budget); trapezoidal rule."""
    rows = []
    for (model, attack, run), g in robustness.groupby(["model", "attack", "run"], sort=False):
        g = g.sort_values("epsilon")
        area = normalised_area(g["accuracy"].to_numpy(float), g["epsilon"].to_numpy(float))
        rows.append({"model": model, "attack": attack, "run": run, "auc": float(area)})
    return pd.DataFrame(rows)


def auc_tests(auc_runs: pd.DataFrame, attack: str, models, ratio: float = 0.0, points=None) -> pd.DataFrame:
    """``paired_tests`` for the area under each run's accuracy-vs-ε curve (``robust_auc``)
    under ``attack``: one row per pair, ``epsilon`` NaN."""
    wide = auc_runs[auc_runs["attack"] == attack].pivot_table(index="run", columns="model", values="auc")
    rows = []
    for a, b in compared_pairs(models, wide.columns):
        differences = (wide[a] - wide[b]).dropna()
        rows.append({"attack": attack, "epsilon": np.nan, "model_a": a, "model_b": b, **compare(differences, ratio),
                     **point_columns(points, a, b, attack, np.nan, differences.index)})
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def comparisons(robustness: pd.DataFrame, auc_runs: pd.DataFrame, models, ratio: float, primary=None,
                points=None) -> pd.DataFrame:
    """Every paired comparison, with its family's multiplicity adjustment (``p_adjusted``; of
    the per-point tests with ``points``, ``p_points_adjusted``).

    For each attack (the worst case included): every pair of models at every ε > 0
    (``measure`` "accuracy") and on the area under the curve (``measure`` "auc"). The
    pre-declared ``primary`` comparison (a ``config.Primary``; its row oriented as declared,
    a − b) keeps its own p (``role`` "primary"); the other comparisons of each attack form one
    family whose p-values are Holm-adjusted (``p_adjusted``, ``role`` "secondary").
    """
    frames = []
    for attack in dict.fromkeys(robustness["attack"]):
        family = pd.concat([paired_tests(robustness, attack, models, ratio, points).assign(measure="accuracy"),
                            auc_tests(auc_runs, attack, models, ratio, points).assign(measure="auc")], ignore_index=True)
        family["role"] = "secondary"
        if primary is not None and primary.attack == attack:
            a, b = primary.models
            pair = ((family["model_a"] == a) & (family["model_b"] == b)) | ((family["model_a"] == b) & (family["model_b"] == a))
            at = family["measure"] == "auc" if primary.epsilon is None else family["epsilon"] == primary.epsilon
            index = family.index[pair & at]
            family.loc[index, "role"] = "primary"
            if len(index) and family.loc[index[0], "model_a"] != a:  # as declared: a − b
                flipped = family.loc[index[0]]
                family.loc[index, ["model_a", "model_b"]] = [a, b]
                family.loc[index, ["mean_difference", "ci_low", "ci_high", "cohens_dz", "points_ci_low",
                                   "points_ci_high"]] = [
                    -flipped["mean_difference"], -flipped["ci_high"], -flipped["ci_low"], -flipped["cohens_dz"],
                    -flipped["points_ci_high"], -flipped["points_ci_low"]]
        secondary = family["role"] == "secondary"
        for p, adjusted in (("p_value", "p_adjusted"), ("p_points", "p_points_adjusted")):
            family[adjusted] = family[p]
            family.loc[secondary, adjusted] = holm(family.loc[secondary, p])
        frames.append(family)
    return pd.concat(frames, ignore_index=True)


def bracket_table(certified: pd.DataFrame, robustness: pd.DataFrame, ratio: float = 0.0) -> pd.DataFrame:
    """Robust accuracy bracketed per model and ε: ``certified`` (the best certificate's
    accuracy: a lower bound) and ``attacked`` (the per-sample worst case over every attack, and
    the complete verifier's counterexamples where it ran (``upper``): an upper bound), each with its mean and corrected interval across runs, the mean ``gap``
    between them, and ``exact_runs``: the runs in which the bounds meet (the robust accuracy
    on those points is known exactly). Where no certificate applies to a model (``applicable``
    False: amplitude encoding, say), its certified accuracy is NaN, not a proved zero. Where a
    complete verifier ran, ``exact_columns`` on the points it verified."""
    lower = certified[certified["certificate"] == "best"][["model", "run", "epsilon", "accuracy", "applicable"]]
    lower = lower.assign(accuracy=lower["accuracy"].where(lower["applicable"].astype(bool))).drop(columns="applicable")
    upper = robustness[robustness["attack"] == "worst_case"][["model", "run", "epsilon", "accuracy"]]
    both = lower.merge(upper, on=["model", "run", "epsilon"], suffixes=("_certified", "_attacked"))
    if "upper" in certified:  # a complete verifier's counterexamples lower the attacked side
        refuted = certified[certified["certificate"] == "best"][["model", "run", "epsilon", "upper"]]
        both = both.merge(refuted, on=["model", "run", "epsilon"], how="left")
        both["accuracy_attacked"] = both["accuracy_attacked"].where(both["upper"].isna(),
                                                                    np.minimum(both["accuracy_attacked"], both["upper"]))
        both = both.drop(columns="upper")
    if "undecided" in certified:  # the complete verifier's shares on the points it verified, where it ran
        verifier = certified[certified["undecided"].notna()][["model", "run", "epsilon", "accuracy", "undecided", "n"]]
        both = both.merge(verifier.rename(columns={"accuracy": "exact", "n": "verified"}),
                          on=["model", "run", "epsilon"], how="left")
    both["gap"] = both["accuracy_attacked"] - both["accuracy_certified"]
    rows = []
    for (model, epsilon), g in both.groupby(["model", "epsilon"], sort=False):
        c = corrected_t_interval(g["accuracy_certified"], ratio)
        a = corrected_t_interval(g["accuracy_attacked"], ratio)
        rows.append({"model": model, "epsilon": epsilon, "certified": c[0], "certified_low": c[2], "certified_high": c[3],
                     "attacked": a[0], "attacked_low": a[2], "attacked_high": a[3], "gap": float(g["gap"].mean()),
                     "exact_runs": int((g["gap"].abs() < 1e-12).sum()), "n_runs": len(g),
                     **(exact_columns(g, ratio) if "undecided" in g else {})})
    return pd.DataFrame(rows)


def exact_columns(g: pd.DataFrame, ratio: float) -> dict:
    """The bracket's complete-verifier columns of one (model, ε) over runs: ``exact`` (the
    share of the verified points proved robust: mean and corrected interval), ``undecided``
    (the share left open) and ``verified`` (points per run); NaN where it did not run."""
    e = corrected_t_interval(g["exact"], ratio)
    return {"exact": e[0], "exact_low": e[2], "exact_high": e[3], "undecided": float(g["undecided"].mean()),
            "verified": float(g["verified"].mean())}


def bracket_separations(certified: pd.DataFrame, robustness: pd.DataFrame, models) -> pd.DataFrame:
    """Pairs (a, b) and ε > 0 at which a's certified accuracy exceeds b's attacked accuracy in
    every run: a is provably more robust than b on those points, whatever attack may come."""
    lower = certified[(certified["certificate"] == "best") & (certified["epsilon"] > 0)
                      & certified["applicable"].astype(bool)]
    upper = robustness[(robustness["attack"] == "worst_case") & (robustness["epsilon"] > 0)]
    low = lower.pivot_table(index=["epsilon", "run"], columns="model", values="accuracy")
    high = upper.pivot_table(index=["epsilon", "run"], columns="model", values="accuracy")
    rows = [{"model_a": a, "model_b": b, "epsilon": epsilon, "smallest_margin": float(margin.min()),
             "mean_margin": float(margin.mean()), "n_runs": len(margin)}
            for a, b, epsilon, margin in pair_margins(low, high, models) if (margin > 0).all()]
    return pd.DataFrame(rows, columns=["model_a", "model_b", "epsilon", "smallest_margin", "mean_margin", "n_runs"])


def pair_margins(lower: pd.DataFrame, upper: pd.DataFrame, models):
    """For every ordered pair (a, b) of ``models`` and ε: (a, b, ε, a's ``lower`` minus b's
    ``upper`` per run), from two tables indexed by (epsilon, run) with a column per model;
    runs where either is missing are left out, and a pair and ε with no run is skipped."""
    for a in models:
        for b in models:
            if a == b or a not in lower or b not in upper:
                continue
            for epsilon, margin in (lower[a] - upper[b]).groupby(level="epsilon"):
                if len(margin.dropna()):
                    yield a, b, epsilon, margin.dropna()
