"""The benchmark harness itself: it runs, measures every path against PennyLane, and the
paths agree with the reference (the speed claims live in `make bench`, not here)."""
import importlib.util
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
