"""The benchmark harnesses themselves: `make bench` runs, measures every path against PennyLane,
and the paths agree with the reference; `make bench-stages` times both copies and finds that the
same code gives the same tables (the speed claims live in the benchmarks, not here)."""
import importlib.util
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def load(script: str):
    """``benchmarks/<script>.py`` as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{script}", ROOT / "benchmarks" / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return load("run")


def test_bench_writes_every_path_with_its_difference_from_pennylane(bench, tmp_path):
    bench.main(["--out", str(tmp_path), "--qubits", "4", "--layers", "1", "--no-epoch", "--no-certificates",
                "--min-seconds", "0"])
    paths = pd.read_csv(tmp_path / "quantum_paths.csv")
    assert set(zip(paths["workload"], paths["path"])) == {(w, p) for w, ps in bench.PATHS.items() for p in ps}
    assert (paths["max_logit_difference"] < 1e-5).all() and (paths["max_gradient_difference"] < 1e-5).all()
    reference = paths[paths["path"] == "pennylane"]
    assert (reference["speedup_vs_pennylane"] == 1.0).all()
    assert (paths["ms_per_batch"] > 0).all() and (paths["peak_mib"] >= 0).all()
    assert "### Forward+backward per batch" in (tmp_path / "bench.md").read_text()


def test_one_training_epoch_reaches_the_same_loss_on_every_simulator(bench):
    rows = pd.DataFrame(bench.training_epoch(n_qubits=4, n_layers=1, simulators=("pennylane", "fast"), log=lambda *_: None))
    assert rows["loss_difference"].max() < 1e-5
    assert rows["test_accuracy"].nunique() == 1


def test_certificate_costs_time_every_certificate_that_applies(bench, trained_models, digits_split):
    x, y = digits_split[2][:8], digits_split[3][:8]
    rows = pd.DataFrame(bench.certificate_costs({"mlp": trained_models["mlp"], "vqc": trained_models["vqc"]}, x, y,
                                                epsilons=(0.01,), log=lambda *_: None))
    assert set(zip(rows["model"], rows["certificate"])) == {(m, c) for m in ("mlp", "vqc")
                                                            for c in ("interval", "crown", "lipschitz", "exact")}
    assert (rows["ms_per_input"] > 0).all() and rows["certified"].between(0, 1).all()


@pytest.fixture(scope="module")
def stages_bench():
    return load("stages")


TINY = {"dataset": {"name": "digits", "classes": [0, 1, 2], "split": "random"}, "n_runs": 1, "seed": 5,
        "device": "cpu", "training": {"epochs": 2, "batch_size": 32, "learning_rate": 0.02},
        "models": {"mlp": {"type": "mlp", "hidden": [8]}, "vqc": {"type": "vqc", "n_qubits": 3, "n_layers": 1}},
        "attack": {"epsilons": [0.0, 0.1], "methods": ["fgsm", "pgd", "square"], "pgd": {"steps": 3},
                   "square": {"queries": 20}, "masking_epsilons": [0.5], "escalation": []},
        "certify": {"methods": ["interval"], "interval": {"splits": 4}}}


def test_the_stage_benchmark_times_both_copies_and_finds_the_same_code_gives_the_same_tables(stages_bench, tmp_path):
    import yaml

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    stages_bench.main(["--base", "HEAD", "--work", "HEAD", "--config", str(config), "--runs", "1", "--n-test", "30",
                       "--stages", "train", "attack", "--out", str(tmp_path / "out")])
    stages = pd.read_csv(tmp_path / "out" / "stage_comparison.csv")
    assert list(stages["stage"]) == ["train", "attack"]
    assert (stages[["base_wall_seconds", "work_wall_seconds", "base_cpu_seconds", "work_cpu_seconds"]] > 0).all().all()
    tables = pd.read_csv(tmp_path / "out" / "stage_tables.csv")
    assert {"robustness.csv", "certified.csv", "models.csv"} <= set(tables["table"])
    assert tables["identical"].all(), tables[~tables["identical"]]
    assert "tables identical" in (tmp_path / "out" / "stage_comparison.md").read_text()


def test_the_table_comparison_ignores_timings_and_names_the_columns_that_differ(stages_bench, tmp_path):
    base, work = tmp_path / "base", tmp_path / "work"
    base.mkdir(), work.mkdir()
    frame = pd.DataFrame({"model": ["mlp", "vqc"], "accuracy": [0.5, 0.75], "seconds": [1.0, 2.0]})
    for folder in (base, work):
        frame.to_csv(folder / "same.csv", index=False)
    frame.assign(seconds=[9.0, 9.0]).to_csv(base / "timed.csv", index=False)
    frame.to_csv(work / "timed.csv", index=False)
    frame.to_csv(base / "moved.csv", index=False)
    frame.assign(accuracy=[0.5, 0.7]).to_csv(work / "moved.csv", index=False)
    frame.to_csv(work / "new.csv", index=False)
    (base / "empty.csv").write_text("")
    (work / "empty.csv").write_text("")
    result = stages_bench.compare_tables(base, work).set_index("table")
    assert result.loc["same.csv", "identical"] and result.loc["timed.csv", "identical"]
    assert result.loc["empty.csv", "identical"]
    assert not result.loc["moved.csv", "identical"] and result.loc["moved.csv", "differs"] == "accuracy"
    assert not result.loc["new.csv", "identical"] and result.loc["new.csv", "differs"] == "only in work"


def test_the_verifier_comparison_counts_each_versions_verdicts_and_every_contradiction():
    verifier = load("verifier")
    points = [("vqc", 0, 0.1, i) for i in range(4)] + [("cnn", 0, 0.1, 0)]

    def side(verdicts, seconds):
        return pd.DataFrame([dict(zip(["model", "run", "epsilon", "point"], p), verdict=v, seconds=s)
                             for p, v, s in zip(points, verdicts, seconds)])

    base = side(["robust", "unknown", "not_robust", "robust", "unknown"], [1.0, 1.0, 0.5, 0.5, 1.0])
    work = side(["robust", "robust", "robust", "not_robust", "unknown"], [0.5, 0.25, 0.25, 0.25, 1.0])
    table = verifier.compare(base, work).set_index("model")
    assert table.loc["vqc", "points"] == 4 and table.loc["cnn", "points"] == 1
    assert (table.loc["vqc", ["base_robust", "base_not_robust", "base_unknown"]].tolist() == [2, 1, 1])
    assert (table.loc["vqc", ["work_robust", "work_not_robust", "work_unknown"]].tolist() == [3, 1, 0])
    assert table.loc["vqc", "contradictions"] == 2 and table.loc["cnn", "contradictions"] == 0
    assert table.loc["vqc", "ratio_seconds"] == pytest.approx(1.25 / 3.0)
    assert table.loc["vqc", "work_max_seconds"] == 0.5 and table.loc["vqc", "base_median_seconds"] == 0.75
    page = verifier.markdown(verifier.compare(base, work), "a", "b", 1)
    assert "| vqc | 0.1 | 4 | 2 / 1 / 1 | 3 / 1 / 0 | 0.750 / 1.00 / 1.00 |" in page
