"""The paired test on every point: its variance is the variance of its estimate when test
points and trained models both vary, its level holds where the corrected t-test's is far too
cautious, and the report reads each point's outcomes in the right order."""
import numpy as np
import pandas as pd
import pytest

from helpers.analysis.evaluation import encode
from helpers.analysis.paired_points import PointOutcomes, point_paired_test

REPETITIONS, FOLDS, POINTS = 2, 5, 300


def synthetic_study(rng, mu=0.0, point_sd=0.5, model_sd=0.03, noise_sd=0.4):
    """2 × 5 repeated k-fold on POINTS points: each point has its own effect (the same in every
    run that tests it: the test points are drawn from a population), each run its own (what
    its trained models add), and each (run, point) noise."""
    point = rng.normal(0, point_sd, POINTS)
    differences, ids = [], []
    for _ in range(REPETITIONS):
        for test in np.array_split(rng.permutation(POINTS), FOLDS):
            differences.append(mu + point[test] + rng.normal(0, model_sd) + rng.normal(0, noise_sd, len(test)))
            ids.append(test)
    return differences, ids


@pytest.mark.parametrize("model_sd", [0.0, 0.03, 0.1])
def test_its_variance_is_the_variance_of_its_estimate(model_sd):
    rng = np.random.default_rng(0)
    results = [point_paired_test(*synthetic_study(rng, model_sd=model_sd)) for _ in range(1500)]
    estimates = np.array([r["estimate"] for r in results])
    mean_variance = np.mean([r["se"] ** 2 for r in results])
    assert mean_variance == pytest.approx(estimates.var(), rel=0.15)
    # Its 95% intervals cover the true difference (zero) about 95% of the time.
    covered = np.mean([r["ci_low"] <= 0 <= r["ci_high"] for r in results])
    assert 0.93 <= covered <= 0.97


def test_a_point_tested_in_several_runs_counts_once():
    """Two repetitions of the same outcomes carry no more information about the points than one."""
    rng = np.random.default_rng(1)
    d = [rng.normal(0.1, 1.0, 50) for _ in range(5)]
    ids = [np.arange(50) + 50 * f for f in range(5)]
    once = point_paired_test(d, ids)
    twice = point_paired_test(d + d, ids + ids)
    assert twice["var_points"] == pytest.approx(once["var_points"])
    assert twice["estimate"] == pytest.approx(once["estimate"])
    assert np.isnan(point_paired_test(d[:1], ids[:1])["p"])  # one run: no test


def test_outcomes_are_paired_by_point_and_the_auc_is_per_point():
    budgets = (0.0, 0.1, 0.2)
    a = {0.0: [1, 1, 1, 1], 0.1: [1, 1, 0, 1], 0.2: [1, 0, 0, 0]}
    b = {0.0: [1, 1, 1, 1], 0.1: [0, 1, 0, 0], 0.2: [0, 0, 0, 0]}
    rows = [{"run": run, "table": "robustness", "model": m, "attack": "pgd", "epsilon": e, "n": 4,
             "correct": encode(np.array(values[e], bool))} for run in (0, 1) for m, values in (("a", a), ("b", b))
            for e in budgets]
    points = PointOutcomes(pd.DataFrame(rows), {0: np.arange(4), 1: np.arange(4) + 4})
    assert list(points.per_point(0, "a", "pgd", 0.1)) == [1, 1, 0, 1]
    auc = points.per_point(0, "a", "pgd", np.nan)
    assert auc == pytest.approx(np.trapezoid(np.array([a[e] for e in budgets], float), budgets, axis=0) / 0.2)
    assert auc.mean() == pytest.approx(np.trapezoid([np.mean(a[e]) for e in budgets], budgets) / 0.2)
    test = points.test("a", "b", "pgd", 0.1, [0, 1])
    assert test["estimate"] == pytest.approx(0.5)


def test_a_randomised_model_gets_no_per_point_test():
    """Its outcomes are majority votes, not the shares its accuracy counts: the run-level test decides."""
    rows = [{"run": run, "table": "robustness", "model": m, "attack": "pgd", "epsilon": 0.1, "n": 4,
             "correct": encode(np.array([1, 1, 0, m == "a"], bool))} for run in (0, 1) for m in ("a", "b")]
    points = PointOutcomes(pd.DataFrame(rows), {0: np.arange(4), 1: np.arange(4) + 4}, stochastic={"b"})
    assert np.isnan(points.test("a", "b", "pgd", 0.1, [0, 1])["p"])
    assert PointOutcomes(pd.DataFrame(rows), {0: np.arange(4), 1: np.arange(4) + 4}).test(
        "a", "b", "pgd", 0.1, [0, 1])["estimate"] == pytest.approx(0.25)
