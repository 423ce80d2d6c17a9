"""The threat model as the loop variable: every threat model writes its rows, marked by
``norm``, to the same tables; adding one leaves the others' rows as they were; a reader of one
threat model sees its rows typed as a table of their own; a report's per-threat tables are
computed in every threat model's view, whose config is that threat model's."""
import numpy as np
import pandas as pd
import pytest

from helpers import evaluate
from helpers.config import parse_config
from helpers.report.section import Report, Tables, of_threat
from helpers.stages.report import stack, with_norm
from helpers.store.files import read_csv, read_threat, write_csv
from helpers.store.layout import Layout

ATTACK = {"epsilons": [0.0, 0.1], "methods": ["fgsm", "pgd"], "pgd": {"steps": 5}, "masking_epsilons": [0.5],
          "escalation": []}
L2 = {"epsilons": [0.0, 0.5], "methods": ["pgd_l2", "cw_l2"], "masking_epsilons": [4.0]}


@pytest.fixture(scope="module")
def both(trained_models, digits_split):
    """``helpers.evaluate`` of the MLP on 30 test points, L∞ alone and L∞ with L2."""
    x, y = digits_split[2][:30], digits_split[3][:30]
    model = trained_models["mlp"]
    small = {"pgd_l2": {"steps": 5}, "cw_l2": {"steps": 10, "search_steps": 2}}
    return (evaluate(model, x, y, attack=ATTACK, certify={"methods": ["interval"]}),
            evaluate(model, x, y, attack={**ATTACK, **small, "l2": L2}, certify={"methods": ["interval"]}))


@pytest.mark.parametrize("name", ["robustness", "transfer", "large_epsilon", "by_class", "convergence", "outcomes",
                                  "masking"])
def test_adding_a_threat_model_leaves_the_other_rows_as_they_were(both, name):
    alone, with_l2 = both
    assert set(alone[name]["norm"]) == {"linf"} and set(with_l2[name]["norm"]) == {"linf", "l2"}
    linf = with_l2[name][with_l2[name]["norm"] == "linf"].reset_index(drop=True)
    pd.testing.assert_frame_equal(linf, alone[name])


def test_each_threat_model_rows_stay_in_its_own_ball(both):
    robustness = both[1]["robustness"]
    assert (robustness["distance"] <= robustness["epsilon"] + 1e-5).all()
    l2 = robustness[(robustness["norm"] == "l2") & (robustness["epsilon"] > 0)]
    assert set(l2["attack"]) == {"pgd_l2", "cw_l2", "worst_case"} and l2["distance"].max() > 0.1
    assert set(both[1]["minimum_norm"]["norm"]) == {"l2"} and both[0]["minimum_norm"].empty


def test_a_threat_models_rows_read_as_a_table_of_their_own(tmp_path):
    parts = [pd.DataFrame({"model": ["a", "b"], "epsilon": [0.1, 0.1], "runs": [3, 4], "mean": [1.0, 0.5]}),
             pd.DataFrame({"model": ["a", "b"], "epsilon": [0.5, 0.5], "runs": [np.nan, 2.0], "mean": [0.25, 2.0]})]
    write_csv(stack([with_norm(parts[0], "linf"), with_norm(parts[1], "l2")]), tmp_path / "t.csv")
    write_csv(parts[0], tmp_path / "alone.csv")
    linf = read_threat(tmp_path / "t.csv", "linf")
    pd.testing.assert_frame_equal(linf, read_csv(tmp_path / "alone.csv"))  # runs stays integer, mean 1.0 a float
    l2 = read_threat(tmp_path / "t.csv", "l2")
    assert linf["runs"].dtype.kind == "i" and l2["runs"].isna().tolist() == [True, False] and l2["mean"].tolist() == [0.25, 2.0]
    assert "\nb,l2,0.5,2,2.0\n" in (tmp_path / "t.csv").read_text()  # a count written whole, a mean as a float
    assert read_threat(tmp_path / "alone.csv", "l2").equals(parts[0])  # a table without norms is read whole
    table = stack([with_norm(parts[0], "linf")])
    assert of_threat("certified", table, "l2") is table  # a table whose readers filter it stays whole
    assert of_threat("stats", table, "linf").equals(parts[0])


def test_report_tables_gain_the_norm_before_epsilon_or_last():
    assert list(with_norm(pd.DataFrame(columns=["model", "epsilon", "mean"]), "l2").columns) == \
        ["model", "norm", "epsilon", "mean"]
    assert list(with_norm(pd.DataFrame({"model": ["a"], "auc": [0.5]}), "l2").columns) == ["model", "auc", "norm"]
    assert with_norm(pd.DataFrame(), "l2").empty and not len(with_norm(pd.DataFrame(), "l2").columns)


def test_each_other_threat_model_is_a_report_of_its_own(tmp_path):
    cfg = parse_config({"dataset": {"name": "digits", "classes": [0, 1]}, "models": {"m": {"type": "mlp", "hidden": [4]}},
                        "attack": {**ATTACK, "l2": L2}})
    layout = Layout(tmp_path)
    write_csv(pd.DataFrame([{"model": "m", "run": 0, "parameters": 4, "n_train": 100, "n_test": 30,
                             "clean_accuracy": 0.9, "degenerate": False}]), layout.table("models"))
    write_csv(pd.DataFrame({"model": ["m", "m"], "attack": ["worst_case"] * 2, "norm": ["linf", "l2"],
                            "epsilon": [0.1, 0.5], "mean": [0.7, 0.6]}), layout.table("stats"))
    report = Report(cfg, Tables(tmp_path))
    (l2,) = report.threats()
    assert report.primary and not l2.primary and l2.norm == "l2"
    assert l2.cfg.attack.methods == ("pgd_l2", "cw_l2") and l2.cfg.attack.epsilons == (0.0, 0.5)
    assert l2.cfg.attack.escalation == () and l2.cfg.report.primary is None
    assert report.tables["stats"]["epsilon"].tolist() == [0.1] and "norm" not in report.tables["stats"]
    assert l2.tables["stats"]["mean"].tolist() == [0.6] and "norm" not in l2.tables["stats"]
