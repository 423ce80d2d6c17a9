"""What a cascade of attacks could save (``report.sections.costs.survivors_floor``): the seconds
an attack spent on points that survived every attack are a lower bound it cannot remove."""
import numpy as np
import pandas as pd
import pytest

from helpers.analysis.evaluation import WORST_CASE
from helpers.report.sections.costs import COLUMNS, floor_paragraph, survivors_floor


def costs(*units):
    """Attack-stage cost rows: (kind, name, model, ε, seconds)."""
    return pd.DataFrame([{"stage": "attack", "kind": kind, "name": name, "model": model, "epsilon": epsilon,
                          "units": 2, "computed": 2, "seconds": seconds} for kind, name, model, epsilon, seconds in units],
                        columns=COLUMNS)


def worst_case(*rows):
    """``robustness`` rows of the worst case: (model, norm, ε, accuracy) for two runs each."""
    return pd.DataFrame([{"run": run, "model": model, "attack": WORST_CASE, "norm": norm, "epsilon": epsilon,
                          "accuracy": accuracy} for model, norm, epsilon, accuracy in rows for run in (0, 1)],
                        columns=["run", "model", "attack", "norm", "epsilon", "accuracy"])


def test_each_attack_counts_the_survivors_of_its_own_threat_model_and_budget():
    table = survivors_floor(
        costs(("attack", "pgd", "mlp", 0.1, 10.0), ("attack", "pgd", "cnn", 0.1, 6.0),
              ("attack", "apgd_l2", "mlp", 0.5, 4.0),
              ("attack", "pgd", "mlp", 1.0, 3.0),            # a masking budget: no worst case there
              ("certificate", "interval", "mlp", 0.1, 50.0)),  # not an attack
        worst_case(("mlp", "linf", 0.1, 0.5), ("cnn", "linf", 0.1, 0.25), ("mlp", "l2", 0.5, 1.0),
                   ("mlp", "linf", 0.5, 0.0))).set_index("name")
    assert set(table.index) == {"pgd", "apgd_l2"}
    assert table.loc["pgd", "seconds"] == 19.0 and table.loc["pgd", "survivors"] == pytest.approx(10 * 0.5 + 6 * 0.25)
    assert table.loc["apgd_l2", "survivors"] == 4.0  # L2's worst case at 0.5, not L∞'s
    assert table.loc["apgd_l2", "share"] == 1.0


@pytest.mark.parametrize("accuracy", [0.0, 0.3, 1.0])
def test_the_floor_lies_between_nothing_and_everything(accuracy):
    rng = np.random.default_rng(0)
    units = [("attack", name, "vqc", epsilon, float(rng.uniform(0, 5)))
             for name in ("fgsm", "square") for epsilon in (0.02, 0.05)]
    table = survivors_floor(costs(*units), worst_case(*[("vqc", "linf", e, accuracy) for e in (0.02, 0.05)]))
    assert np.allclose(table["survivors"], accuracy * table["seconds"])
    assert ((0 <= table["survivors"]) & (table["survivors"] <= table["seconds"])).all()


def test_the_paragraph_says_how_low_a_cascade_could_take_the_stage():
    rows = costs(("attack", "square", "cnn", 0.05, 80.0), ("attack", "fgsm", "cnn", 0.05, 20.0),
                 ("certificate", "exact", "cnn", 0.05, 100.0), ("stage", "wall", "", np.nan, 150.0))
    text = floor_paragraph(rows, worst_case(("cnn", "linf", 0.05, 0.75)))[-1]
    # attacks 100 s, 75 s on survivors: the stage's 200 unit seconds could fall to 175 s at most
    assert "Of the attacks' 100 s, at least 75 s (75%)" in text and "200 unit seconds to no less than 175 s" in text
    assert floor_paragraph(rows[rows["kind"] != "attack"], worst_case()) == []
