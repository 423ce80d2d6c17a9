"""Paired inference on every point: two models compared on the per-point outcomes of all runs.

Within a run every model is scored on the same test points, so a comparison of models A and B
has one difference per (run, point): d = outcome_A − outcome_B (for the area under the curve,
the difference of each point's own area under its outcome-vs-ε curve). The estimate is the mean
over runs of the runs' mean differences, as for the corrected t-test. Its variance has two parts:

- **test points**: the points are draws from the population the data set came from. A point
  tested in several runs (repeated k-fold tests every point once per repetition; a fixed split
  in every run) contributes the mean of its differences, and the points' contributions are
  independent: V_points = Σ_i w_i² (D_i − mean)² · N/(N − 1), with D_i point i's mean difference,
  w_i its share of all (run, point) pairs and N the distinct points. This counts how far the
  same point agrees with itself across runs, which the run-level corrections can only assume.
- **trained models**: each run trains its models afresh (its training split, its seed), so the
  runs' mean differences also vary by what was trained; that variance is the run-to-run
  variance of the mean differences less what the points' own noise explains within a run,
  σ²_T = max(0, s²_runs − mean_r var_r(d)/n_r), and enters as σ²_T / K over K runs.

The test is a t-test of the mean on V = V_points + σ²_T / K with Satterthwaite's degrees of
freedom. Simulated studies whose data sets are drawn from a population, trained and tested
under 2 × 5 repeated k-fold like the shipped ones (``analysis.calibration``), measure its size
and power beside the corrected resampled t-test's (``docs/statistics.md``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .evaluation import decode


def point_paired_test(differences: list[np.ndarray], ids: list[np.ndarray], confidence: float = 0.95) -> dict:
    """The paired test of the per-run, per-point ``differences`` (one (n_r,) array per run) of
    the points ``ids`` (the same point has the same id in every run): ``estimate``, ``ci_low``,
    ``ci_high``, ``p`` (two-sided), ``se``, ``df``, ``var_points``, ``var_models``; NaN where
    fewer than two runs or no variation at all."""
    nan = {"estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p": np.nan, "se": np.nan, "df": np.nan,
           "var_points": np.nan, "var_models": np.nan}
    k = len(differences)
    if k < 2:
        return nan
    means = np.array([d.mean() for d in differences])
    estimate = float(means.mean())
    # Every (run, point) pair's weight in the estimate: 1 / (K · n_r).
    frame = pd.DataFrame({"id": np.concatenate(ids), "d": np.concatenate(differences),
                          "w": np.concatenate([np.full(len(d), 1 / (k * len(d))) for d in differences])})
    points = frame.assign(wd=frame["w"] * frame["d"]).groupby("id")[["w", "wd"]].sum()
    n_points = len(points)
    d_point = points["wd"] / points["w"]
    var_points = float((points["w"] ** 2 * (d_point - estimate) ** 2).sum() * n_points / max(n_points - 1, 1))
    within = float(np.mean([d.var(ddof=1) / len(d) if len(d) > 1 else 0.0 for d in differences]))
    var_models = max(0.0, float(means.var(ddof=1)) - within) / k
    variance = var_points + var_models
    if variance <= 0:
        return {**nan, "estimate": estimate, "var_points": var_points, "var_models": var_models}
    # Satterthwaite: the points' part has n_points − 1 degrees of freedom, the models' K − 1.
    df = variance ** 2 / (var_points ** 2 / max(n_points - 1, 1) + var_models ** 2 / (k - 1))
    se = float(np.sqrt(variance))
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return {"estimate": estimate, "ci_low": estimate - half, "ci_high": estimate + half,
            "p": float(2 * stats.t.sf(abs(estimate) / se, df)), "se": se, "df": float(df),
            "var_points": var_points, "var_models": var_models}


def normalised_area(curve, budgets) -> np.ndarray:
    """The area under ``curve`` (budgets first) over ``budgets``, divided by their range (1 =
    never fooled); its mean where there is one budget only."""
    width = budgets[-1] - budgets[0]
    return np.trapezoid(curve, budgets, axis=0) / width if width > 0 else np.mean(curve, axis=0)


class PointOutcomes:
    """The attack stage's ``outcomes`` (robustness rows) with each run's point ids: the per-run
    per-point differences of two models under one attack, at one ε or on the area under the
    curve. A randomised model's (``stochastic``) outcomes are majority votes of its passes, not
    the share of correct passes its accuracy counts, so its comparisons get no per-point test
    (NaN: the run-level test decides them)."""

    def __init__(self, outcomes: pd.DataFrame, ids: dict[int, np.ndarray], stochastic=()):
        self.stochastic = set(stochastic)
        rows = outcomes[outcomes["table"] == "robustness"]
        self.correct = {(r.run, r.model, r.attack, float(r.epsilon)): decode(r.correct, int(r.n))
                        for r in rows.itertuples(index=False)}
        self.budgets: dict[tuple, list[float]] = {}
        for run, model, attack, epsilon in self.correct:
            self.budgets.setdefault((run, model, attack), []).append(epsilon)
        self.ids = ids

    def per_point(self, run, model, attack, epsilon) -> np.ndarray | None:
        """One point's outcome at ``epsilon``, or (``epsilon`` NaN) its area under its
        outcome-vs-ε curve normalised by the ε range (the run's AUC is their mean)."""
        if not pd.isna(epsilon):
            found = self.correct.get((run, model, attack, float(epsilon)))
            return None if found is None else found.astype(float)
        budgets = sorted(self.budgets.get((run, model, attack), []))
        if not budgets:
            return None
        return normalised_area(np.stack([self.correct[(run, model, attack, e)] for e in budgets]).astype(float),
                               budgets)

    def test(self, a, b, attack, epsilon, runs) -> dict:
        """``point_paired_test`` of A − B over ``runs`` (those both models have)."""
        if {a, b} & self.stochastic:
            return point_paired_test([], [])
        differences, ids = [], []
        for run in runs:
            pa, pb = self.per_point(run, a, attack, epsilon), self.per_point(run, b, attack, epsilon)
            if pa is not None and pb is not None and len(pa) == len(pb) == len(self.ids[run]):
                differences.append(pa - pb)
                ids.append(self.ids[run])
        return point_paired_test(differences, ids)


def point_columns(points, a, b, attack, epsilon, runs) -> dict:
    """The per-point paired test's columns of one comparison (NaN without ``points``)."""
    if points is None:
        return {"points_ci_low": np.nan, "points_ci_high": np.nan, "p_points": np.nan}
    test = points.test(a, b, attack, epsilon, list(runs))
    return {"points_ci_low": test["ci_low"], "points_ci_high": test["ci_high"], "p_points": test["p"]}
