"""Fault injection: a stage killed with SIGKILL part-way and run again ends with the tables of
an uninterrupted run, reusing (not recomputing) every unit of work finished before the kill;
and the same config and seed give byte-identical tables.

Each stage runs in a subprocess (``python -c``) on a tiny config, as `make` would run it.
"""
import json
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from helpers.store.files import project_root
from helpers.store.layout import TABLES as FILES

CONFIG = {
    "dataset": {"name": "digits", "classes": [0, 1, 2], "folds": 2},
    "n_runs": 2, "seed": 11, "workers": 1, "device": "cpu",
    "training": {"epochs": 3, "batch_size": 32, "learning_rate": 0.02},
    "models": {"mlp": {"type": "mlp", "hidden": [8]}, "vqc": {"type": "vqc", "n_qubits": 3, "n_layers": 2}},
    "attack": {"epsilons": [0.0, 0.1], "methods": ["fgsm", "pgd", "square"], "pgd": {"steps": 5},
               "square": {"queries": 40}, "masking_epsilons": [0.5], "n_test": 40},
    "interpret": {"n_images": 3, "methods": ["saliency", "integrated_gradients"], "integrated_gradients": {"steps": 4},
                  "panel_images": 1, "metric_samples": 2},
}
STAGES = ("train", "attack", "interpret")
# The tables each stage writes once it has finished, and the units it leaves on the way.
TABLES = {"train": [FILES[t] for t in ("train_history", "models")],
          "attack": [FILES[t] for t in ("robustness", "transfer", "large_epsilon", "by_class")],
          "interpret": [FILES["attribution_stability"]]}
UNITS = {"train": "models/run*/*.pt", "attack": "units/attack/run*/**/*.npz", "interpret": "units/interpret/run*/**/*.npz"}
SCRIPT = ("import sys, importlib; from helpers.config import load_config; "
          "cfg = load_config(sys.argv[1], results_root=sys.argv[2]); "
          "[importlib.import_module(f'helpers.stages.{stage}').run(cfg) for stage in sys.argv[3:]]")


def _command(config, root, *stages):
    return [sys.executable, "-c", SCRIPT, str(config), str(root), *stages]


def run_stages(config, root, *stages):
    subprocess.run(_command(config, root, *stages), cwd=project_root(), check=True, capture_output=True)


def kill_after(config, root, stage, n_cells):
    """Start ``stage``, SIGKILL it as soon as ``n_cells`` of its cells exist; return the cell
    files (and their modification times) present at the kill."""
    folder = root / "exp"
    before = len(list(folder.glob(UNITS[stage])))
    proc = subprocess.Popen(_command(config, root, stage), cwd=project_root(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while proc.poll() is None and len(list(folder.glob(UNITS[stage]))) < before + n_cells:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the stage ended before the kill: {stderr.decode()[-2000:]}"
    assert not any((folder / table).exists() for table in TABLES[stage]), "the stage had already finished"
    return {p: p.stat().st_mtime_ns for p in folder.glob(UNITS[stage])}


def table(root, name):
    frame = pd.read_csv(root / "exp" / name)
    return frame.drop(columns=["train_seconds"], errors="ignore")  # wall time differs between runs


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "exp.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory):
    """An uninterrupted run of the three stages."""
    root = tmp_path_factory.mktemp("reference")
    run_stages(config, root, *STAGES)
    return root


def test_same_config_and_seed_give_identical_tables_and_a_rerun_recomputes_nothing(config, reference, tmp_path):
    run_stages(config, tmp_path, *STAGES)
    assert (tmp_path / "exp/robustness.csv").read_bytes() == (reference / "exp/robustness.csv").read_bytes()
    for name in [t for stage in STAGES for t in TABLES[stage]]:
        pd.testing.assert_frame_equal(table(tmp_path, name), table(reference, name))
    cells = {p: p.stat().st_mtime_ns for stage in STAGES for p in (tmp_path / "exp").glob(UNITS[stage])}
    run_stages(config, tmp_path, *STAGES)
    assert cells and all(p.stat().st_mtime_ns == mtime for p, mtime in cells.items())


@pytest.mark.parametrize("stage,kills", [("train", [1]), ("attack", [1, 2]), ("interpret", [1])])
def test_killed_stage_resumes_to_the_uninterrupted_tables(config, reference, tmp_path, stage, kills):
    # Start from the reference's earlier stages (and provenance), without this stage's outputs.
    shutil.copytree(reference, tmp_path, dirs_exist_ok=True)
    folder = tmp_path / "exp"
    for path in [*folder.glob(UNITS[stage]), *(folder / t for t in TABLES[stage])]:
        path.unlink()
    survived = {}
    for n_cells in kills:  # interrupted again after each restart
        survived = kill_after(config, tmp_path, stage, n_cells)
        assert len(survived) >= n_cells
    run_stages(config, tmp_path, stage)
    # Cells finished before the kill were reused as they were, not computed again.
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in survived.items())
    for name in TABLES[stage]:
        pd.testing.assert_frame_equal(table(tmp_path, name), table(reference, name))
    record = json.loads((folder / "provenance.json").read_text())
    assert record["stages"][stage]["finished"] is not None
