"""A researcher's own data and models, end to end: an image folder with a fixed train/test
split, an ``.npz`` file and a CSV table, each with a network written as layers (a 5x5
convolution for the images) and a circuit with the trainable affine encoding, through
``make all`` to ``report.html``. Each study is small (two runs, two budgets) and the three
run at once, so they fit in a minute or two; what they prove is that the pieces a user brings meet every stage."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers.data.files import DATA_ENV
from helpers.report.pages import write_index
from helpers.store.files import read_arrays
from helpers.store.layout import Layout

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)  # the virtual environment running the tests (its python is a link out of it)
N_CLASSES, SIDE = 3, 12


def pattern(label: int, rng) -> np.ndarray:
    """A 12x12 image in [0, 1] of class ``label``: a bright horizontal bar, vertical bar or
    diagonal at a random offset, over faint noise; a network learns it in a few epochs."""
    image = rng.uniform(0, 0.2, (SIDE, SIDE))
    at = rng.integers(3, SIDE - 3)
    if label == 0:
        image[at - 1:at + 1, :] = 1.0
    elif label == 1:
        image[:, at - 1:at + 1] = 1.0
    else:
        np.fill_diagonal(image, 1.0)
    return image


def images(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(N_CLASSES), n_per_class)
    return np.stack([pattern(label, rng) for label in y]).astype(np.float32), y


def write_image_folder(root: Path) -> None:
    """data/shapes/{train,test}/<class>/<i>.png, greyscale PNGs written with Pillow."""
    from PIL import Image

    for part, (x, y) in {"train": images(12, 0), "test": images(6, 1)}.items():
        for i, (image, label) in enumerate(zip(x, y)):
            folder = root / "shapes" / part / ["bar_h", "bar_v", "diagonal"][label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray((image * 255).round().astype(np.uint8), mode="L").save(folder / f"{i}.png")


def write_npz(root: Path) -> None:
    (x, y), (x_test, y_test) = images(12, 2), images(6, 3)
    np.savez(root / "shapes.npz", x=x, y=y, x_test=x_test, y_test=y_test)


def write_csv(root: Path) -> None:
    """A feature table: three Gaussian blobs in 4 features, a label column and a split column."""
    rng = np.random.default_rng(4)
    y = np.repeat(np.arange(N_CLASSES), 20)
    x = rng.normal(0, 0.4, (len(y), 4)) + np.eye(N_CLASSES, 4)[y] * 2.0
    table = pd.DataFrame(x, columns=[f"f{i}" for i in range(4)])
    table["species"] = y
    table["part"] = np.where(np.arange(len(y)) % 4 == 0, "test", "train")
    table.to_csv(root / "blobs.csv", index=False)


CIRCUIT = {"type": "vqc", "n_qubits": 3, "n_layers": 2, "encoding": "affine_reupload"}
STUDY = {
    "n_runs": 2, "seed": 3, "workers": 1,
    "training": {"epochs": 6, "batch_size": 16, "learning_rate": 0.03},
    "attack": {"epsilons": [0.0, 0.05], "methods": ["fgsm", "pgd", "square"], "pgd": {"steps": 5},
               "square": {"queries": 20}, "masking_epsilons": [0.5], "pgd_escalated": {"steps": 10, "restarts": 1},
               "rays": {"queries": 50}},
    "certify": {"methods": ["interval"], "interval": {"splits": 4}},
    "interpret": {"methods": ["saliency"], "epsilon": 0.05, "n_images": 2, "panel_images": 1, "metric_samples": 2},
}
STUDIES = {
    "images": (write_image_folder,
               {"name": "image_folder", "classes": None, "split": "fixed",
                "options": {"path": "shapes", "mode": "L", "size": [SIDE, SIDE]}},
               {"theirs": {"type": "net", "layers": [{"kind": "conv", "channels": 4, "kernel": 5}, "relu",
                                                     {"kind": "pool", "mode": "max", "kernel": 2}]},
                "vqc": CIRCUIT}),
    "npz": (write_npz,
            {"name": "npz", "classes": None, "split": "fixed", "options": {"path": "shapes.npz"}},
            {"theirs": {"type": "net", "layers": [{"kind": "conv", "channels": 4, "kernel": 5}, "relu",
                                                  {"kind": "pool", "mode": "avg", "kernel": 2}]},
             "vqc": CIRCUIT}),
    "csv": (write_csv,
            {"name": "csv", "classes": None, "split": "fixed",
             "options": {"path": "blobs.csv", "label_column": "species", "split_column": "part"}},
            {"mlp": {"type": "net", "layers": [{"kind": "linear", "width": 8}, "tanh"]}, "vqc": CIRCUIT}),
}


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """Every study of ``STUDIES`` run by ``make all`` at once (three processes: each study
    is one process, ``workers: 1``, so the 2 cores are shared without pools to start):
    {kind: (completed process, results folder)}; their results are removed afterwards."""
    started = {}
    for kind, (write, dataset, models) in STUDIES.items():
        root = tmp_path_factory.mktemp(kind)
        (root / "data").mkdir()
        write(root / "data")
        experiment = f"test_own_{kind}"
        config = root / f"{experiment}.yaml"
        config.write_text(yaml.safe_dump({"dataset": dataset, "models": models, **STUDY}, sort_keys=False))
        results = ROOT / "results" / experiment
        shutil.rmtree(results, ignore_errors=True)
        process = subprocess.Popen(["make", "--no-print-directory", "all", f"CONFIG={config}", f"VENV={VENV}"],
                                   cwd=ROOT, env={**os.environ, DATA_ENV: str(root / "data")},
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started[kind] = (process, results)
    try:
        done = {}
        for kind, (process, results) in started.items():
            stdout, stderr = process.communicate(timeout=900)
            done[kind] = (subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), results)
        yield done
    finally:
        for process, results in started.values():
            if process.poll() is None:
                process.kill()
            shutil.rmtree(results, ignore_errors=True)
        write_index(ROOT / "results")


@pytest.mark.parametrize("kind", list(STUDIES))
def test_own_data_and_models_run_through_make_all_to_a_report(kind, studies):
    models = STUDIES[kind][2]
    done, results = studies[kind]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for stage in ("01_train", "02_attack", "03_interpret", "04_report"):
        assert (results / f"{stage}.ipynb").is_file()
    page = (results / "report.html").read_text()
    assert "<img" in page and 'src="data:image/png' in page
    robustness = pd.read_csv(results / "robustness.csv")
    assert set(robustness["model"]) == set(models)
    clean = robustness[(robustness["attack"] == "worst_case") & (robustness["epsilon"] == 0.0)]
    # Every run evaluates the data set's own test split: 18 images or 15 table rows.
    for run in range(STUDY["n_runs"]):
        with np.load(Layout(results).split(run)) as split:
            assert len(split["test_idx"]) == {"images": 18, "npz": 18, "csv": 15}[kind]
    # ... and attacks the same points (at ε = 0 PGD returns its input unchanged).
    model = next(iter(models))
    attacked = [read_arrays(Layout(results).attack_unit(run, model, "pgd", 0.0))["x_adv"]
                for run in range(STUDY["n_runs"])]
    np.testing.assert_array_equal(attacked[0], attacked[1])
    # Every stage showed its progress bar through to the end.
    for stage in ("train", "attack", "interpret", "report"):
        assert f"{stage}: 100%" in done.stdout + done.stderr, stage
    # The models learned the task (chance is 1/3), so the attacks had something to attack.
    assert clean.groupby("model")["accuracy"].mean().max() > 0.6
    certified = pd.read_csv(results / "certified.csv")
    assert set(certified["model"]) == set(models)
