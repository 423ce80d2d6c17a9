"""The documentation: the README is a landing page, every generated block and the configs
reference are up to date, and every worked example of docs/architecture.md works when dropped
into its package as the text says (in a copy of helpers/)."""
import re
import shutil
import subprocess
import sys

from helpers.store.files import project_root

ROOT = project_root()
EXAMPLE = re.compile(r"```python\n# (helpers/[\w/]+\.py)\n(.*?)```", re.S)

CHECKS = r'''
import numpy as np
import torch

from helpers.attacks import PGD, predict
from helpers.config import parse_config
from helpers.data import load_dataset
from helpers.explain import attribute
from helpers.models import build_model
from helpers.registry import CERTIFICATES
from helpers.training import train_model

cfg = parse_config({"dataset": {"name": "xor", "classes": [0, 1], "options": {"noise": 0.05}},
                    "models": {"m": {"type": "logistic", "bias": False},
                               "q": {"type": "vqc", "n_qubits": 2, "n_layers": 1, "encoding": "angle_y"},
                               "p": {"type": "mlp", "hidden": [16]}},
                    "attack": {"methods": ["pgd"]}, "interpret": {"methods": ["input_x_gradient"]}})
data = load_dataset("xor", [0, 1], options=cfg.dataset.options)
assert data.X.shape == (200, 2) and 0 <= data.X.min() and data.X.max() <= 1
x, y = torch.as_tensor(data.X), torch.as_tensor(data.y)

# The encoding: both fast paths equal PennyLane's circuit, outputs and input gradients.
torch.manual_seed(0)
fast = build_model({"type": "vqc", "n_qubits": 2, "n_layers": 2, "encoding": "angle_y"}, (2,), 2)
fast.fit_preprocessing(x)
reference = build_model({"type": "vqc", "n_qubits": 2, "n_layers": 2, "encoding": "angle_y",
                         "simulator": "pennylane"}, (2,), 2)
reference.load_state_dict(fast.state_dict())
for train in (True, False):
    outputs = []
    for model in (fast, reference):
        model.train(train)
        xi = x[:9].clone().requires_grad_(True)
        out = model(xi)
        out.square().sum().backward()
        outputs.append((out.detach(), xi.grad))
    assert torch.allclose(outputs[0][0], outputs[1][0], atol=1e-5) and torch.allclose(outputs[0][1], outputs[1][1], atol=1e-5)
assert fast.path == "unitary"

# The model and the attribution method.
logistic = build_model(cfg.models["m"].to_dict(), (2,), 2)
assert logistic(x).shape == (200, 2) and logistic.linear.bias is None
assert attribute("input_x_gradient", logistic, x[:5], y[:5]).shape == (5, 2)

# The certificate: never beaten by an attack, and not empty at a small budget.
torch.manual_seed(1)
train_model(logistic, x, y, x, y, epochs=30, batch_size=32, learning_rate=0.05, seed=0)
certificate = CERTIFICATES["linear_exact"]()
assert certificate.applies(logistic)[0] and not certificate.applies(build_model(cfg.models["p"].to_dict(), (2,), 2))[0]
for epsilon in (0.02, 0.05, 0.1):
    certified = certificate.certify(logistic, x, y, epsilon)
    for seed in range(3):
        fooled = (predict(logistic, PGD(steps=20, seed=seed)(logistic, x, y, epsilon)) != y).numpy()
        assert not (certified & fooled).any(), epsilon
assert certificate.certify(logistic, x, y, 0.02).mean() > 0.3

# The report section: it applies, computes its table from the robustness section's, and its text
# joins the summary after the robustness table.
import pandas as pd

from helpers.report.section import SECTIONS, Report, Tables, applicable
from helpers.store.layout import Layout

section = SECTIONS["half_clean"]
assert section in applicable(cfg) and Layout("r").table("half_clean").name == "half_clean.csv"
stats = pd.DataFrame([{"model": m, "attack": "worst_case", "epsilon": e, "mean": v, "ci_low": v, "ci_high": v,
                       "n_runs": 1} for m, curve in (("m", (0.9, 0.5, 0.4)), ("q", (0.8, 0.7, 0.6)), ("p", (1, 1, 1)))
                      for e, v in zip((0.0, 0.1, 0.2), curve)])
trained = pd.DataFrame([{"model": m, "run": 0, "parameters": 4, "n_train": 150, "n_test": 50, "clean_accuracy": 0.9,
                         "degenerate": False} for m in "mqp"])
table = section.tables(Report(cfg, Tables("absent", {"stats": stats, "models": trained})))["half_clean"]
assert table.set_index("model")["epsilon"].fillna(-1).to_dict() == {"m": 0.2, "q": -1, "p": -1}
text = "\n".join(section.text(Report(cfg, Tables("absent", {"models": trained, "half_clean": table}))))
assert "`m` at ε=0.2" in text and "`q` at no budget tried" in text

# The threat model and its attack: a config block attack.l1 evaluates every model in L1 too, its
# rows marked norm == "l1" in the same tables, inside its ball, with its own masking checks.
from helpers import evaluate

l1_cfg = parse_config({"dataset": {"name": "xor", "classes": [0, 1]}, "models": {"m": {"type": "logistic"}},
                       "attack": {"methods": ["pgd"], "epsilons": [0, 0.1], "l1": {"epsilons": [0, 0.2]}}})
assert list(l1_cfg.attack.threat_sections()) == ["linf", "l1"] and "pgd_l1" in l1_cfg.attack.params
tables = evaluate(logistic, x[:40], y[:40], attack=l1_cfg.section("attack"))
rows = tables["robustness"][tables["robustness"]["norm"] == "l1"]
assert set(rows["attack"]) == {"pgd_l1", "worst_case"} and (rows["distance"] <= rows["epsilon"] + 1e-6).all()
assert rows["distance"].max() > 0.1 and set(tables["masking"]["norm"]) == {"linf", "l1"}
print("examples work")
'''


def test_readme_is_a_landing_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert "make all" in readme and "make test" in readme
    for link in re.findall(r"\]\((docs/[\w.-]+\.md|results/[\w/.-]+)\)", readme):
        assert (ROOT / link).exists(), link


def test_generated_docs_are_up_to_date():
    result = subprocess.run([sys.executable, "-m", "helpers.docs", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_worked_examples_work_where_the_docs_put_them(tmp_path):
    examples = EXAMPLE.findall((ROOT / "docs" / "architecture.md").read_text())
    assert {path.split("/")[1] for path, _ in examples} == {"data", "models", "explain", "certificates", "report",
                                                            "threats", "attacks"}
    shutil.copytree(ROOT / "helpers", tmp_path / "helpers", ignore=shutil.ignore_patterns("__pycache__"))
    for path, code in examples:
        assert not (tmp_path / path).exists(), path
        (tmp_path / path).write_text(code)
    result = subprocess.run([sys.executable, "-c", CHECKS], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0 and "examples work" in result.stdout, result.stderr[-3000:]


def test_the_stage_graph_names_every_module_a_stage_runs():
    """Every module under helpers/ is code of some stage (so make reruns it and provenance
    hashes it), except the docs generator and the claims checker (it holds the prose to the
    tables) and the notebook runner make calls (it executes a
    stage's notebook, whose code is declared), which compute no result, the sweeps, which
    run the stages on many configs and gather the tables they wrote, and ``helpers.evaluate``
    (``suite``), which runs the stages' code on a model object outside any stage."""
    from helpers.store import graph

    declared = {path for stage in graph.STAGES for path in graph.code_files(stage)}
    unused = {path.relative_to(ROOT).as_posix() for path in graph.files(["helpers"])} - \
        {path.relative_to(ROOT).as_posix() for path in declared}
    sweeps = {path.relative_to(ROOT).as_posix() for path in graph.files(["helpers/sweeps"])}
    assert unused == {"helpers/docs.py", "helpers/claims.py", "helpers/stages/notebook.py", "helpers/suite.py",
                      *sweeps}
