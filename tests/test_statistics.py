import numpy as np
import pandas as pd
import pytest

from helpers.analysis.statistics import ACCURACY_BOUNDS, summarize_runs, t_interval, wilson_interval


def test_t_interval_matches_the_textbook():
    mean, sd, low, high = t_interval([0.8, 0.9, 1.0])
    # t_{0.975, 2} = 4.3027; sd = 0.1; half width = 4.3027 * 0.1 / sqrt(3)
    assert mean == pytest.approx(0.9) and sd == pytest.approx(0.1)
    assert high - mean == pytest.approx(4.302653 * 0.1 / np.sqrt(3), rel=1e-5)
    assert mean - low == pytest.approx(high - mean)
    assert t_interval([0.5]) == (0.5, 0.0, 0.5, 0.5)


def test_wilson_interval():
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    low, high = wilson_interval(0, 20)
    assert low == pytest.approx(0.0, abs=1e-12) and 0 < high < 0.2


def test_summarize_runs_is_tidy():
    df = pd.DataFrame({"model": ["a", "a", "b", "b"], "run": [0, 1, 0, 1], "accuracy": [0.5, 0.7, 0.9, 0.9]})
    out = summarize_runs(df, ["model"], "accuracy")
    assert list(out["model"]) == ["a", "b"] and list(out["n_runs"]) == [2, 2]
    assert out.loc[0, "mean"] == pytest.approx(0.6) and out.loc[1, "sd"] == 0


def test_intervals_are_clipped_to_the_range_of_the_quantity():
    df = pd.DataFrame({"model": ["a"] * 3, "accuracy": [0.2, 1.0, 1.0]})
    out = summarize_runs(df, ["model"], "accuracy", bounds=ACCURACY_BOUNDS)
    assert out.loc[0, "ci_high"] == 1.0 and out.loc[0, "ci_low"] < out.loc[0, "mean"]
    raw = summarize_runs(df, ["model"], "accuracy")
    assert raw.loc[0, "ci_high"] > 1.0


def test_paired_test_matches_scipy_and_reports_effect_size():
    from scipy import stats as sps

    from helpers.analysis.statistics import paired_tests

    a = [0.60, 0.62, 0.65, 0.61, 0.64]
    b = [0.50, 0.55, 0.52, 0.58, 0.51]
    df = pd.DataFrame([{"model": m, "run": r, "attack": "pgd", "epsilon": e, "accuracy": v}
                       for m, vals in (("a", a), ("b", b)) for r, v in enumerate(vals) for e in (0.0, 0.1)])
    out = paired_tests(df, "pgd", ["a", "b"])
    assert len(out) == 1 and out.loc[0, "epsilon"] == 0.1  # epsilon 0 is clean accuracy, not tested
    diff = np.subtract(a, b)
    assert out.loc[0, "p_value"] == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert out.loc[0, "mean_difference"] == pytest.approx(diff.mean())
    assert out.loc[0, "cohens_dz"] == pytest.approx(diff.mean() / diff.std(ddof=1))
    assert out.loc[0, "ci_low"] > 0  # a is more robust than b in every run


def test_robust_auc_is_normalised_by_the_epsilon_range():
    from helpers.analysis.statistics import robust_auc

    df = pd.DataFrame({"model": "a", "attack": "pgd", "run": 0, "epsilon": [0.0, 0.1, 0.2],
                       "accuracy": [1.0, 0.5, 0.0]})
    assert robust_auc(df).loc[0, "auc"] == pytest.approx(0.5)
    flat = df.assign(accuracy=1.0)
    assert robust_auc(flat).loc[0, "auc"] == pytest.approx(1.0)
