"""Any number of models: a study of one model, and a study whose second model collapses in
every run, go through every stage, and say what they cannot compare
instead of failing. Each study runs its stages in a subprocess on a tiny config, as `make`
would (tests/test_resume.py does the same)."""
import subprocess
import sys

import pandas as pd
import yaml

from helpers.store.files import project_root
from helpers.store.layout import Layout

BASE = {
    "dataset": {"name": "digits", "classes": [0, 1], "folds": 2},
    "n_runs": 2, "seed": 7, "device": "cpu",
    "training": {"epochs": 2, "batch_size": 32, "learning_rate": 0.02},
    "attack": {"epsilons": [0.0, 0.1], "methods": ["fgsm", "pgd"], "pgd": {"steps": 5},
               "masking_epsilons": [0.5], "n_test": 20},
    "certify": {"interval": {"splits": 4}},
    "interpret": {"epsilon": 0.1, "n_images": 2, "methods": ["saliency"], "panel_images": 1, "metric_samples": 2},
}
SCRIPT = ("import sys, importlib; from helpers.config import load_config; "
          "cfg = load_config(sys.argv[1], results_root=sys.argv[2]); "
          "[importlib.import_module(f'helpers.stages.{stage}').run(cfg) for stage in sys.argv[3:]]")


def study(tmp_path, **changes) -> Layout:
    """Every stage of ``BASE`` updated with ``changes``; its layout."""
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({**BASE, **changes}))
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(path), str(tmp_path), "train", "attack", "interpret",
                          "report"], cwd=project_root(), capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    return Layout(tmp_path / "exp")


def test_a_study_of_one_model_reports_it_and_compares_nothing(tmp_path):
    layout = study(tmp_path, models={"convnet": {"type": "mlp", "hidden": [8]}})
    text = layout.summary.read_text()
    assert "Only one model has runs to report (`convnet`)" in text and "tests nothing" in text
    tests = pd.read_csv(layout.table("paired_tests"))
    assert tests.empty and {"model_a", "model_b", "p_value", "p_adjusted", "role"} <= set(tests.columns)
    stats = pd.read_csv(layout.table("stats"))
    assert set(stats["model"]) == {"convnet"} and (stats["n_runs"] == 2).all()
    assert layout.figure("robustness").stat().st_size > 0 and layout.figure("bracket").stat().st_size > 0


def test_a_model_collapsed_in_every_run_is_reported_degenerate_not_an_abort(tmp_path):
    # A circuit with a strong Lipschitz penalty answers one class in every run (its margin is crushed).
    layout = study(tmp_path, models={"mlp": {"type": "mlp", "hidden": [8]},
                                     "vqc": {"type": "vqc", "n_qubits": 4, "n_layers": 2, "encoding": "affine",
                                             "defence": {"name": "lipschitz", "lam": 0.2}}},
                   report={"primary": {"models": ["vqc", "mlp"], "attack": "worst_case", "epsilon": 0.1}})
    trained = pd.read_csv(layout.table("models"))
    assert trained.loc[trained["model"] == "vqc", "degenerate"].all()
    assert not trained.loc[trained["model"] == "mlp", "degenerate"].any()
    text = layout.summary.read_text()
    assert "`vqc` is degenerate in every run" in text
    assert "The primary comparison (vqc − mlp) could not be computed: `vqc` has no run to report." in text
    assert set(pd.read_csv(layout.table("stats"))["model"]) == {"mlp"}
    assert pd.read_csv(layout.table("paired_tests")).empty
