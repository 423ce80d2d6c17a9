import numpy as np
import pandas as pd
import pytest

from helpers.analysis.statistics import (ACCURACY_BOUNDS, bracket_separations, bracket_table, summarize_runs, t_interval,
                                         wilson_interval)


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


def test_intervals_are_reported_raw_and_flagged_when_they_leave_the_range_or_have_no_width():
    df = pd.DataFrame({"model": ["a"] * 3 + ["b"] * 3, "accuracy": [0.2, 1.0, 1.0, 0.0, 0.0, 0.0]})
    out = summarize_runs(df, ["model"], "accuracy", bounds=ACCURACY_BOUNDS).set_index("model")
    assert out.loc["a", "ci_high"] > 1.0 and out.loc["a", "clipped"] and not out.loc["a", "all_equal"]
    assert out.loc["b", "all_equal"] and not out.loc["b", "clipped"]


def test_the_corrected_interval_and_test_inflate_the_variance_by_the_shared_data():
    from scipy import stats as sps

    from helpers.analysis.statistics import corrected_paired_test, corrected_t_interval

    d = np.array([0.05, 0.02, 0.07, 0.01, 0.04, 0.06, 0.03, 0.00, 0.05, 0.04])
    # ratio 0 is the textbook test and interval
    t, p = corrected_paired_test(d, 0.0)
    assert p == pytest.approx(sps.ttest_1samp(d, 0.0).pvalue, abs=1e-10)
    assert t == pytest.approx(sps.ttest_1samp(d, 0.0).statistic, abs=1e-10)
    # Nadeau & Bengio: the variance (1/k + n2/n1) s^2 in place of s^2 / k, k - 1 degrees of freedom
    k, ratio = len(d), 0.25
    t_nb = d.mean() / np.sqrt((1 / k + ratio) * d.var(ddof=1))
    t, p = corrected_paired_test(d, ratio)
    assert t == pytest.approx(t_nb, abs=1e-10) and p == pytest.approx(2 * sps.t.sf(t_nb, k - 1), abs=1e-10)
    assert p > sps.ttest_1samp(d, 0.0).pvalue
    mean, sd, low, high = corrected_t_interval(d, ratio)
    assert high - mean == pytest.approx(sps.t.ppf(0.975, k - 1) * sd * np.sqrt(1 / k + ratio), abs=1e-12)


def test_holm_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    from helpers.analysis.statistics import holm

    rng = np.random.default_rng(0)
    for size in (1, 3, 12, 36):
        p = rng.uniform(0, 0.2, size) ** 2
        assert np.allclose(holm(p), multipletests(p, method="holm")[1], atol=1e-10, rtol=0)
    assert np.isnan(holm([0.01, np.nan, 0.02])[1]) and holm([0.01, np.nan, 0.02])[2] == pytest.approx(0.02)


def test_runs_for_power_matches_statsmodels_for_independent_runs_and_knows_the_floor():
    from statsmodels.stats.power import TTestPower

    from helpers.analysis.power import runs_for_power

    for sd in (0.03, 0.05, 0.1):
        expected = TTestPower().solve_power(effect_size=0.05 / sd, alpha=0.05, power=0.8, alternative="two-sided")
        assert runs_for_power(sd, 0.0) == max(2, int(np.ceil(expected)))
    # With shared data the standard error never falls below sqrt(ratio) * sd: 0.05 / (0.5 * 0.1) = 1 sd
    assert runs_for_power(0.1, 0.25) is None
    assert runs_for_power(0.02, 0.25) > runs_for_power(0.02, 0.0)


def simulated_p_values(difference: float, studies: int = 100, seed: int = 0, ratio: float = 0.25):
    """(Holm-adjusted corrected p, textbook p) of the first of a family of four comparisons in
    ``studies`` simulated studies of 10 runs whose per-run differences are
    ``difference`` + u + e_i: e_i the run's own noise (sd 0.04, what one run's split and
    training add) and u one offset per study (sd sqrt(ratio) * 0.04) that every run shares,
    because every run re-uses the study's one data set: the correlation that the Nadeau-Bengio
    variance (1/k + ratio) s^2 is built for. The other three comparisons have no true
    difference."""
    from helpers.analysis.statistics import compare, holm

    rng = np.random.default_rng(seed)
    adjusted, naive = [], []
    for _ in range(studies):
        p_values = []
        for true in (difference, 0.0, 0.0, 0.0):
            runs = true + rng.normal(0, np.sqrt(ratio) * 0.04) + rng.normal(0, 0.04, 10)
            result = compare(runs, ratio)
            p_values.append(result["p_value"])
            if len(p_values) == 1:
                naive.append(result["p_naive"])
        adjusted.append(holm(p_values)[0])
    return np.array(adjusted), np.array(naive)


def test_the_corrected_adjusted_test_is_calibrated_and_has_power():
    adjusted, naive = simulated_p_values(0.0)
    assert (adjusted >= 0.05).sum() >= 95  # two identical models: at most 5 false alarms in 100 studies
    assert (naive < 0.05).sum() > 10  # where the textbook test, blind to the shared data, raises many
    adjusted, _ = simulated_p_values(0.1, seed=1)
    assert (adjusted < 0.05).mean() > 0.5  # a true difference of 0.1: detected in most studies


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
    assert out.loc[0, "p_naive"] == pytest.approx(sps.ttest_rel(a, b).pvalue, abs=1e-10)
    assert out.loc[0, "p_value"] == pytest.approx(sps.ttest_rel(a, b).pvalue, abs=1e-10)  # ratio 0: no correction
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


def bracket_inputs(certified_a, attacked_b, runs=5):
    """Per run: `a` certified at ``certified_a[r]`` and attacked at 0.9; `b` certified at 0.1
    and attacked at ``attacked_b[r]``; one budget ε = 0.1."""
    certified = pd.DataFrame([{"model": m, "run": r, "certificate": "best", "norm": "linf", "epsilon": 0.1,
                               "accuracy": c, "applicable": True}
                              for r in range(runs) for m, c in (("a", certified_a[r]), ("b", 0.1))])
    robustness = pd.DataFrame([{"model": m, "run": r, "attack": "worst_case", "epsilon": 0.1, "accuracy": v}
                               for r in range(runs) for m, v in (("a", 0.9), ("b", attacked_b[r]))])
    return certified, robustness


def test_the_bracket_counts_exact_runs_and_a_separation_needs_every_run():
    certified, robustness = bracket_inputs([0.6, 0.7, 0.9, 0.6, 0.65], [0.5, 0.4, 0.55, 0.3, 0.5])
    table = bracket_table(certified, robustness).set_index("model")
    assert (table["certified"] <= table["attacked"]).all()
    assert table.loc["a", "exact_runs"] == 1 and table.loc["b", "exact_runs"] == 0
    assert table.loc["a", "gap"] == pytest.approx(0.9 - np.mean([0.6, 0.7, 0.9, 0.6, 0.65]))
    separated = bracket_separations(certified, robustness, ["a", "b"])
    assert separated[["model_a", "model_b"]].values.tolist() == [["a", "b"]]
    assert separated["smallest_margin"].iloc[0] == pytest.approx(0.1)  # run 0: 0.6 certified against 0.5 attacked
    # One run where b's attacked accuracy reaches a's certified one: no separation.
    certified, robustness = bracket_inputs([0.6, 0.7, 0.9, 0.6, 0.65], [0.5, 0.4, 0.55, 0.6, 0.5])
    assert bracket_separations(certified, robustness, ["a", "b"]).empty
    # No certificate applies to b: its lower bound is unknown (NaN), not a proved zero.
    certified.loc[certified["model"] == "b", ["accuracy", "applicable"]] = [0.0, False]
    table = bracket_table(certified, robustness).set_index("model")
    assert np.isnan(table.loc["b", "certified"]) and table.loc["b", "exact_runs"] == 0
    assert not bracket_separations(certified, robustness, ["a", "b"])["model_a"].eq("b").any()
