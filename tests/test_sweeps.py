"""Sweeps (helpers/sweeps): expansion of a sweep file into points, the runner, the tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers.sweeps import running
from helpers.sweeps.expansion import SweepError, expand, point_name
from helpers.sweeps.tables import aggregate, smallest_permutation_p, spearman_permutation
from helpers.store.layout import Layout

SMOKE = "sweeps/smoke_sweep.yaml"
TINY = {"dataset": {"name": "digits", "classes": [0, 1, 2, 3], "folds": 2}, "n_runs": 2,
        "models": {"vqc": {"type": "vqc", "n_qubits": 4, "n_layers": 1}}}


def write_sweep(tmp_path, given: dict, name: str = "trial") -> str:
    path = tmp_path / f"{name}.yaml"
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(TINY))
    path.write_text(yaml.safe_dump({"base": str(base), **given}, sort_keys=False))
    return str(path)


def test_grid_times_zip_and_dotted_keys(tmp_path):
    path = write_sweep(tmp_path, {"blocks": [{
        "grid": {"attack.square.queries": [7, 9]},
        "zip": {"models.vqc.n_qubits": [4, 5, 6], "models.vqc.n_layers": [1, 2, 3]}}]})
    sweep = expand(path, results_root=tmp_path / "results")
    assert len(sweep.points) == 2 * 3
    for point in sweep.points:
        cfg = point.config
        # the dotted key reached a nested mapping the base did not have
        assert cfg.attack.params["square"].queries == point.choices["attack.square.queries"]
        # zipped keys move together: the i-th qubit count with the i-th depth
        assert cfg.models["vqc"].params.n_layers == cfg.models["vqc"].params.n_qubits - 3
        assert cfg.results_dir == tmp_path / "results" / "trial" / point.folder
    assert sweep.linked["models.vqc.n_layers"] == ("models.vqc.n_qubits", "models.vqc.n_layers")
    # names: grid keys, then each zip group's first key, `models.` left out; unique
    assert sweep.points[0].name == "attack.square.queries=7,vqc.n_qubits=4"
    assert len({p.name for p in sweep.points}) == len(sweep.points)


def test_names_are_stable_and_folder_safe(tmp_path):
    one = write_sweep(tmp_path, {"blocks": [{"grid": {"models.vqc.n_qubits": [4, 5]}}]}, "one")
    two = write_sweep(tmp_path, {"blocks": [{"grid": {"attack.epsilons": [[0.0, 0.1]]}},
                                            {"grid": {"models.vqc.n_qubits": [4, 5]}}]}, "two")
    first, second = expand(one, tmp_path), expand(two, tmp_path)
    # adding a block does not rename the points that were there
    assert [p.name for p in first.points] == [p.name for p in second.points][1:]
    assert second.points[0].name == "attack.epsilons=0+0.1"
    assert point_name({"models.a/b": "x y"}, ["models.a/b"]) == "a_b=x_y"
    long = point_name({"k": "v" * 300}, ["k"])
    assert len(long) <= 120 and long != point_name({"k": "v" * 301}, ["k"])


def test_an_invalid_point_is_named_before_any_work(tmp_path):
    path = write_sweep(tmp_path, {"blocks": [{"grid": {"models.vqc.n_qubits": [4, 2]}}]})
    with pytest.raises(SweepError, match=r"point vqc.n_qubits=2: models.vqc") as error:
        expand(path, tmp_path / "results")
    assert "vqc.n_qubits=4" not in str(error.value)  # only the invalid one is listed
    assert not (tmp_path / "results").exists()
    bad_key = write_sweep(tmp_path, {"blocks": [{"grid": {"models.vqc.n_qbits": [4]}}]})
    with pytest.raises(SweepError, match="n_qbits"):
        expand(bad_key, tmp_path)
    # ... unless a rule of the sweep file excludes it
    ruled = write_sweep(tmp_path, {"blocks": [{"grid": {"models.vqc.n_qubits": [4, 2]}}],
                                   "exclude": [{"models.vqc.n_qubits": [1, 2]}]})
    sweep = expand(ruled, tmp_path)
    assert [p.name for p in sweep.points] == ["vqc.n_qubits=4"] and list(sweep.excluded) == ["vqc.n_qubits=2"]
    uneven = write_sweep(tmp_path, {"blocks": [{"zip": {"models.vqc.n_qubits": [4, 5], "seed": [1]}}]})
    with pytest.raises(SweepError, match="one length"):
        expand(uneven, tmp_path)


def test_the_same_config_from_two_blocks_is_one_experiment(tmp_path):
    path = write_sweep(tmp_path, {"blocks": [{"grid": {"models.vqc.n_qubits": [4, 5]}},
                                             {"grid": {"models.vqc.n_layers": [1, 2]}}]})
    sweep = expand(path, tmp_path)
    folders = {p.name: p.folder for p in sweep.points}
    assert folders["vqc.n_layers=1"] == "vqc.n_qubits=4"  # the base has 4 qubits and 1 layer
    assert len(sweep.folders) == 3


def _hand_made(sweep, slope: float) -> None:
    """Tables for each point whose worst-case accuracy at ε = 0.2 falls by ``slope`` per qubit
    for vqc (plus 0.01 per run) and stays 0.8 for the baseline."""
    for point in sweep.points:
        n, layout = point.config.models["vqc"].params.n_qubits, Layout(point.config.results_dir)
        layout.root.mkdir(parents=True)
        runs = range(point.config.n_runs)
        pd.DataFrame([{"model": m, "type": m, "run": r, "parameters": 10, "n_train": 100, "n_test": 0,
                       "clean_accuracy": 0.9, "degenerate": False, "train_seconds": 1.0}
                      for m in ("vqc", "mlp_matched") for r in runs]).to_csv(layout.table("models"), index=False)
        rows = []
        for r in runs:
            for attack in ("pgd", "worst_case"):
                rows += [{"run": r, "seed": r, "model": "vqc", "attack": attack, "epsilon": 0.0, "accuracy": 0.9},
                         {"run": r, "seed": r, "model": "vqc", "attack": attack, "epsilon": 0.2,
                          "accuracy": 0.9 - slope * n + 0.01 * r},
                         {"run": r, "seed": r, "model": "mlp_matched", "attack": attack, "epsilon": 0.0, "accuracy": 0.8},
                         {"run": r, "seed": r, "model": "mlp_matched", "attack": attack, "epsilon": 0.2, "accuracy": 0.8}]
        pd.DataFrame(rows).to_csv(layout.table("robustness"), index=False)
        pd.DataFrame([{"run": r, "model": m, "certificate": "best", "epsilon": e, "accuracy": 0.5, "applicable": True,
                       "norm": "linf"} for r in runs for m in ("vqc", "mlp_matched") for e in (0.0, 0.2)]
                     ).to_csv(layout.table("certified"), index=False)


def test_aggregation_recovers_a_known_trend(tmp_path):
    path = write_sweep(tmp_path, {"set": {"n_runs": 4, "attack": {"methods": ["pgd"], "epsilons": [0.0, 0.2]}},
                                  "blocks": [{"grid": {"models.vqc.n_qubits": [4, 6, 8]}}],
                                  "report": {"trends": ["models.vqc.n_qubits"], "epsilon": 0.2}})
    sweep = expand(path, tmp_path / "results")
    _hand_made(sweep, slope=0.05)
    tables = aggregate(sweep)
    # the area under a two-budget curve is the mean of its ends: 0.9 - 0.025 n + 0.005 r per run
    trends = tables["trends"].set_index("model")
    assert trends.loc["vqc", "slope"] == pytest.approx(-0.025)
    assert trends.loc["mlp_matched", "slope"] == pytest.approx(0.0)
    assert trends.loc["difference", "slope"] == pytest.approx(-0.025)
    assert trends.loc["vqc", "spearman_rho"] == pytest.approx(-1.0)
    # Three points: the permutation test cannot go below 1/3, whatever the data (the reading says so).
    assert trends.loc["vqc", "spearman_p"] == pytest.approx(1 / 3) == trends.loc["vqc", "spearman_min_p"]
    # The slope tests are one family: each adjusted p is at least its own.
    assert (trends["slope_p_adjusted"].dropna() >= trends["slope_p"].dropna() - 1e-15).all()
    auc = tables["auc"].query("model == 'vqc' and attack == 'worst_case'").set_index("models.vqc.n_qubits")["mean"]
    assert auc.to_dict() == pytest.approx({n: 0.9 - 0.025 * n + 0.005 * 1.5 for n in (4, 6, 8)})
    tests = tables["tests"].query("measure == 'accuracy'").set_index("models.vqc.n_qubits")
    assert tests["mean_difference"].to_dict() == pytest.approx({n: 0.1 - 0.05 * n + 0.015 for n in (4, 6, 8)})
    assert (tests["p_adjusted"] >= tests["p_value"] - 1e-15).all()
    # one row per point, model, attack and ε, with the point's swept value as a column
    robustness = tables["robustness"]
    assert len(robustness) == 3 * 2 * 2 * 2 and set(robustness["models.vqc.n_qubits"]) == {4, 6, 8}


def test_spearman_permutation_p_value():
    rho, p = spearman_permutation([1, 2, 3, 4, 5], [5, 4, 3, 2, 1])
    assert rho == pytest.approx(-1.0) and p == pytest.approx(2 / 120)  # two of the 120 orders are as extreme
    for n in (3, 4, 5, 6):  # the smallest p a series of n points can give: 1/3 with 3, 1/12 with 4
        assert smallest_permutation_p(n) == pytest.approx(spearman_permutation(range(n), range(n))[1])
    assert np.isnan(spearman_permutation([1, 2], [3, 4])[0])


def test_smoke_sweep_end_to_end_and_a_failed_point(tmp_path, monkeypatch):
    sweep = expand(SMOKE, results_root=tmp_path)
    modules = running.stage_modules()
    real_train = modules["train"].run

    class Faulty:  # the train stage, raising for one point
        @staticmethod
        def run(cfg, log=None):
            if cfg.experiment == "vqc.n_qubits=3":
                raise RuntimeError("simulated failure")
            return real_train(cfg, log=log)

    monkeypatch.setattr(running, "stage_modules", lambda: {**modules, "train": Faulty})
    outcome = running.run_sweep(sweep, parallel=1, log=lambda message: None)
    assert outcome.failed == {"vqc.n_qubits=3": "RuntimeError: simulated failure"}
    assert sorted(outcome.ran) == ["vqc.n_qubits=2", "vqc.n_qubits=4"]
    assert "vqc.n_qubits=3: RuntimeError" in (sweep.results_dir / running.FAILURES).read_text()
    tables = aggregate(sweep, skip=outcome.failed)
    assert set(tables["robustness"]["point"]) == {"vqc.n_qubits=2", "vqc.n_qubits=4"}
    for name in ("models", "robustness", "auc", "certified", "tests"):
        assert (sweep.results_dir / f"sweep_{name}.csv").is_file()
    # restarted without the fault: the finished points are reused, the failed one runs
    monkeypatch.setattr(running, "stage_modules", lambda: modules)
    again = running.run_sweep(sweep, parallel=1, log=lambda message: None)
    assert again.ran == ["vqc.n_qubits=3"] and sorted(again.reused) == ["vqc.n_qubits=2", "vqc.n_qubits=4"]
    tables = aggregate(sweep)
    assert len(tables["trends"]) == 3  # vqc, baseline and their difference along n_qubits
    matched = tables["models"].pivot_table(index="point", columns="model", values="parameters")
    assert ((matched["mlp_matched"] - matched["vqc"]).abs() <= 0.1 * matched["vqc"]).all()
