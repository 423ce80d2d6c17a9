"""The summary states what the tables say: the declared primary comparison with its corrected
p, adjusted secondary comparisons, no zero-width or silently clipped interval, degenerate runs
counted and left out."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from helpers.config import parse_config
from helpers.report.summary import write_summary
from helpers.analysis.evaluation import COLUMNS, encode
from helpers.report.sections.ceiling import TABLE_COLUMNS
from helpers.stages.report import compute_tables

RUNS = 10


def config(**report):
    return parse_config({"dataset": {"classes": [0, 1]}, "n_runs": RUNS,
                         "training": {"epochs": 1, "batch_size": 8, "learning_rate": 0.1},
                         "models": {"a": {"type": "mlp"}, "b": {"type": "mlp"}, "c": {"type": "mlp"}},
                         "attack": {"methods": ["fgsm", "pgd"]}, "interpret": {"epsilon": 0.1},
                         "report": report}, experiment="toy")


def inputs(gap=0.2, degenerate_b=()):
    """Tables of a 10-run study: `a` more robust than `b` by ``gap`` (with run-to-run noise),
    `c` at 0 under attack in every run, ``degenerate_b`` runs of `b` at 0.5 everywhere."""
    rng = np.random.default_rng(0)
    models = pd.DataFrame([{"model": m, "run": r, "parameters": p, "n_train": 80, "n_test": 20, "clean_accuracy": 0.9,
                            "degenerate": m == "b" and r in degenerate_b} for m, p in (("a", 10), ("b", 2000), ("c", 5))
                           for r in range(RUNS)])
    noise = rng.normal(0, 0.02, (RUNS, 2))
    rows = []
    for r in range(RUNS):
        for attack in ("fgsm", "pgd", "worst_case"):
            for e in (0.0, 0.1, 0.2):
                acc = {"a": 0.9 if e == 0 else 0.7 + noise[r, 0], "b": 0.9 if e == 0 else 0.7 - gap + noise[r, 1],
                       "c": 0.9 if e == 0 else 0.0}
                if r in degenerate_b:
                    acc["b"] = 0.5
                rows += [{"model": m, "run": r, "attack": attack, "epsilon": e, "accuracy": v, "n": 20}
                         for m, v in acc.items()]
    stability = pd.DataFrame([{"model": m, "run": r, "method": "saliency", "image": i, "spearman": 0.8,
                               "spearman_chance": 0.5, "spearman_random": 0.6, "spearman_above_chance": 0.3,
                               "top_k_overlap": 0.5, "top_k_chance": 0.2, "note": "", "applicable": True,
                               **{k: 0.1 for k in ("infidelity_clean", "infidelity_adv", "sensitivity_clean",
                                                   "sensitivity_adv")}}
                              for m in "abc" for r in range(RUNS) for i in range(2)])
    empty = pd.DataFrame(columns=["model", "run", "attack", "epsilon", "accuracy", "n", "label", "source", "target"])
    # Each row's per-point outcome: its first round(accuracy · n) points correct.
    outcomes = pd.DataFrame([{"run": r["run"], "table": "robustness", "model": r["model"], "attack": r["attack"],
                              "epsilon": r["epsilon"], "n": r["n"],
                              "correct": encode(np.arange(r["n"]) < round(r["accuracy"] * r["n"]))} for r in rows])
    return {"models": models, "robustness": pd.DataFrame(rows), "transfer": empty, "large_epsilon": empty,
            "outcomes": outcomes,
            "by_class": empty.assign(label=0), "convergence": empty, "attribution_stability": stability,
            "certified": pd.DataFrame(columns=["run", *COLUMNS["certified"]]),
            "escalation": pd.DataFrame(columns=["run", *COLUMNS["escalation"]]),
            "ceiling": pd.DataFrame(columns=TABLE_COLUMNS)}


def points():
    """Each run's point ids: in the k-fold of ``config``'s data a point is tested once per
    repetition (here: the 20 points of a run are those of the run five runs earlier)."""
    return {r: np.arange(20) + 20 * (r % 5) for r in range(RUNS)}


def summary(cfg, study):
    tables = compute_tables(cfg, study, points())
    return write_summary(cfg, {**tables, "models": study["models"], "large_epsilon": study["large_epsilon"],
                               "robustness": study["robustness"]}), tables


def test_the_primary_comparison_is_stated_with_its_corrected_p():
    cfg = config(primary={"models": ["a", "b"], "attack": "worst_case", "epsilon": 0.1})
    text, tables = summary(cfg, inputs())
    wide = inputs()["robustness"].query("attack == 'worst_case' and epsilon == 0.1").pivot(
        index="run", columns="model", values="accuracy")
    d = (wide["a"] - wide["b"]).to_numpy()
    t = d.mean() / np.sqrt((1 / RUNS + 20 / 80) * d.var(ddof=1))
    assert f"corrected resampled t-test over runs, conservative, says p = {2 * stats.t.sf(abs(t), RUNS - 1):.2g}" in text
    assert "**Primary comparison** (declared in the config before the runs): `a` − `b`, worst case, ε=0.1" in text
    primary = tables["paired_tests"].query("role == 'primary'")
    assert len(primary) == 1 and primary.iloc[0]["p_adjusted"] == primary.iloc[0]["p_value"]
    secondary = tables["paired_tests"].query("role == 'secondary' and attack == 'worst_case'")
    assert (secondary["p_adjusted"].dropna() >= secondary["p_value"].dropna() - 1e-15).all()
    assert "The intervals of" not in text  # overlapping marginal intervals are not a test


def test_declared_direction_is_kept_and_a_missing_primary_is_said():
    cfg = config(primary={"models": ["b", "a"], "attack": "worst_case", "epsilon": None})
    text, tables = summary(cfg, inputs())
    row = tables["paired_tests"].query("role == 'primary'").iloc[0]
    assert (row["model_a"], row["model_b"]) == ("b", "a") and row["mean_difference"] < 0
    assert "area under the accuracy-vs-ε curve" in text
    assert "No primary comparison is declared" in summary(config(), inputs())[0]


def test_no_zero_width_interval_and_degenerate_runs_counted_and_left_out():
    text, tables = summary(config(), inputs(degenerate_b=(0, 1)))
    assert "0.000 (all runs equal)" in text and "0.000 [0.000, 0.000]" not in text  # model c
    assert "`b` 2 of 10" in text
    stats_b = tables["stats"].query("model == 'b' and attack == 'pgd' and epsilon == 0.1").iloc[0]
    assert stats_b["n_runs"] == 8 and stats_b["mean"] < 0.6  # the runs at 0.5 are not averaged in
    kept, _ = summary(config(exclude_degenerate=False), inputs(degenerate_b=(0, 1)))
    assert "kept in the statistics" in kept


def test_the_attribution_table_shows_the_chance_levels():
    text, _ = summary(config(), inputs())
    assert "| a | saliency | 0.800 (all runs equal) | 0.500 | 0.600 | 0.300 (all runs equal) | 0 |" in text


def test_power_note_for_the_primary_comparison():
    cfg = config(primary={"models": ["a", "b"], "attack": "worst_case", "epsilon": 0.1})
    text, tables = summary(cfg, inputs())
    power = tables["power"].query("role == 'primary'").iloc[0]
    assert "Power (of the corrected test; conditional on the spread): if the run-to-run standard deviation" in text
    assert power["delta"] == pytest.approx(0.05) and power["n_runs"] == RUNS
    # The sd it rests on is itself measured on ten runs: its interval, and the runs at its upper end.
    assert power["sd_low"] < power["sd_difference"] < power["sd_high"]
    assert f"95% interval [{power['sd_low']:.3f}, {power['sd_high']:.3f}]" in text
    assert power["runs_needed_high"] >= power["runs_needed"]
    from helpers.report.sections.comparisons import power_note
    assert power_note(power.copy().replace({power["sd_difference"]: 0.0})).startswith("Power: untestable")
    unreachable = power.copy()  # two runs' spread, say: no number of runs found even if independent
    unreachable[["runs_needed", "runs_needed_high", "runs_needed_if_independent_high"]] = np.nan
    assert "more runs than any number, even of independent data sets" in power_note(unreachable)


def test_runs_on_a_fixed_split_get_textbook_intervals_and_say_so(tmp_path, monkeypatch):
    """Runs on one fixed split share all their data and differ only in their seed: no
    resampling correction (the interval is the textbook t-interval), and the summary says so."""
    from helpers.data.files import DATA_ENV

    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    np.savez(tmp_path / "fixed.npz", x=np.zeros((8, 2)), y=[0, 1] * 4, x_test=np.zeros((4, 2)), y_test=[0, 1] * 2)
    cfg = parse_config({"dataset": {"name": "npz", "classes": None, "split": "fixed", "options": {"path": "fixed.npz"}},
                        "n_runs": RUNS, "models": {"a": {"type": "mlp"}, "b": {"type": "mlp"}, "c": {"type": "mlp"}},
                        "attack": {"methods": ["fgsm", "pgd"]},
                        "report": {"primary": {"models": ["a", "b"], "attack": "pgd", "epsilon": 0.1}}}, experiment="toy")
    text, tables = summary(cfg, inputs())
    row = tables["stats"].query("model == 'a' and attack == 'pgd' and epsilon == 0.1").iloc[0]
    runs = inputs()["robustness"].query("model == 'a' and attack == 'pgd' and epsilon == 0.1")["accuracy"]
    half = stats.t.ppf(0.975, RUNS - 1) * runs.std(ddof=1) / np.sqrt(RUNS)
    assert np.isclose(row["ci_high"] - row["mean"], half)
    assert "runs on the data set's own train/test split" in text and "Nadeau" not in text
    assert "`a` − `b`, pgd, ε=0.1: " in text and "paired t-test over runs says p = " in text
    assert "corrected resampled" not in text
