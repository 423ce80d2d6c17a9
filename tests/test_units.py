"""Units of work are reused only while their config values and the code they run are
unchanged: editing one attack recomputes that attack's units and nothing else (and the fix
reaches the tables), adding a budget computes only that budget, and nothing stale survives.

Each case runs the stages in a subprocess on a copy of ``helpers/`` in a temporary folder,
as ``make`` would, so that the test can edit the copy's source.
"""
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from helpers.store.files import project_root

CONFIG = {
    "dataset": {"name": "digits", "classes": [0, 1, 2], "split": "random"},
    "n_runs": 1, "seed": 5, "workers": 1, "device": "cpu",
    "training": {"epochs": 2, "batch_size": 32, "learning_rate": 0.02},
    "models": {"mlp": {"type": "mlp", "hidden": [8]}, "vqc": {"type": "vqc", "n_qubits": 3, "n_layers": 1}},
    "attack": {"epsilons": [0.0, 0.1], "methods": ["fgsm", "pgd", "square"], "pgd": {"steps": 3},
               "square": {"queries": 20}, "masking_epsilons": [0.5], "n_test": 30, "escalation": []},
    "certify": {"methods": ["interval"], "interval": {"splits": 4}},
}
SCRIPT = ("import sys, importlib, helpers; from helpers.config import load_config; "
          "assert helpers.__file__.startswith(sys.argv[3]), helpers.__file__; "
          "cfg = load_config(sys.argv[1], results_root=sys.argv[2]); "
          "[importlib.import_module(f'helpers.stages.{stage}').run(cfg) for stage in sys.argv[4:]]")


class Copy:
    """A copy of the repository's ``helpers/`` with one experiment folder beside it."""

    def __init__(self, root):
        self.root = root
        shutil.copytree(project_root() / "helpers", root / "helpers", ignore=shutil.ignore_patterns("__pycache__"))
        self.config = root / "exp.yaml"
        self.write_config(CONFIG)
        self.results = root / "results" / "exp"

    def write_config(self, body):
        self.config.write_text(yaml.safe_dump(body))

    def run(self, *stages):
        subprocess.run([sys.executable, "-c", SCRIPT, str(self.config), str(self.root / "results"), str(self.root),
                        *stages], cwd=self.root, check=True, capture_output=True)

    def units(self) -> dict:
        """Every attack unit (relative path) with its modification time."""
        return {p.relative_to(self.results).as_posix(): p.stat().st_mtime_ns
                for p in (self.results / "units" / "attack").rglob("*.npz")}

    def robustness(self) -> pd.DataFrame:
        return pd.read_csv(self.results / "robustness.csv").set_index(["model", "attack", "epsilon"])["accuracy"]


@pytest.fixture
def copy(tmp_path):
    repo = Copy(tmp_path)
    repo.run("train", "attack")
    return repo


def test_editing_one_attack_recomputes_its_units_only_and_the_fix_reaches_the_tables(copy):
    before, accuracy = copy.units(), copy.robustness()
    assert accuracy[("mlp", "fgsm", 0.1)] < accuracy[("mlp", "fgsm", 0.0)]  # FGSM works
    source = copy.root / "helpers" / "attacks" / "fgsm.py"
    text = source.read_text()
    assert "x + epsilon * input_gradient" in text
    source.write_text(text.replace("x + epsilon * input_gradient", "x + 0 * epsilon * input_gradient"))  # a "bug"
    copy.run("train", "attack")  # what make runs after an edit under helpers/
    after, broken = copy.units(), copy.robustness()
    changed = {path for path in before if after[path] != before[path]}
    assert changed == {path for path in before if "/fgsm/" in path}
    assert broken[("mlp", "fgsm", 0.1)] == broken[("mlp", "fgsm", 0.0)]  # the edited FGSM moves nothing
    others = [key for key in accuracy.index if key[1] not in ("fgsm", "worst_case")]
    assert broken.loc[others].equals(accuracy.loc[others])
    checkpoints = sorted((copy.results / "models").rglob("*.pt"))
    assert checkpoints and all(p.stat().st_mtime_ns < min(after.values()) for p in checkpoints)  # not retrained


def test_a_new_budget_computes_that_budget_only(copy):
    before = copy.units()
    copy.write_config({**CONFIG, "attack": {**CONFIG["attack"], "epsilons": [0.0, 0.1, 0.2]}})
    copy.run("train", "attack")
    after = copy.units()
    assert all(after[path] == mtime for path, mtime in before.items())  # every earlier unit reused
    assert sorted(set(after) - set(before)) == sorted(f"units/attack/run00/{model}/{attack}/eps0.2.npz"
                                                     for model in CONFIG["models"]
                                                     for attack in ("fgsm", "pgd", "square", "certificate-interval"))
    assert 0.2 in copy.robustness().index.get_level_values("epsilon")


def test_a_changed_model_is_retrained_and_attacked_again(copy):
    before = copy.units()
    body = {**CONFIG, "models": {**CONFIG["models"], "mlp": {"type": "mlp", "hidden": [12]}}}
    copy.write_config(body)
    copy.run("train", "attack")
    after = copy.units()
    assert {path for path in before if after[path] != before[path]} == {path for path in before if "/mlp/" in path}


def test_every_unit_says_what_it_cost_and_a_reused_unit_keeps_its_cost(copy):
    """attack_costs.csv lists each unit file once, with the seconds its computation took;
    run again, every unit is reused and reports the same seconds; costs.csv sums them per
    kind of unit and carries each stage's wall time."""
    from helpers.report.sections.costs import costs_table
    from helpers.store.layout import Layout

    first = pd.read_csv(copy.results / "attack_costs.csv")
    assert len(first) == len(copy.units()) and not first["reused"].any() and (first["seconds"] > 0).all()
    assert set(first["kind"]) == {"attack", "certificate"} and set(first["name"]) >= {"fgsm", "pgd", "square", "interval"}
    copy.run("train", "attack")
    again = pd.read_csv(copy.results / "attack_costs.csv")
    assert again["reused"].all() and again["seconds"].tolist() == first["seconds"].tolist()
    costs = costs_table(Layout(copy.results))
    units = costs[costs["stage"] == "attack"]
    assert units["seconds"].sum() == pytest.approx(first["seconds"].sum()) and units["units"].sum() == len(first)
    assert {"train", "attack"} <= set(costs.loc[costs["kind"] == "stage", "stage"])


def test_a_unit_path_reads_back_as_what_it_names(tmp_path):
    from helpers.store.layout import Layout

    layout = Layout(tmp_path)
    assert layout.describe_unit(layout.attack_unit(3, "vqc", "apgd_ce", 0.05)) == {
        "model": "vqc", "kind": "attack", "name": "apgd_ce", "epsilon": 0.05}
    assert layout.describe_unit(layout.certify_unit(0, "cnn", "exact-radius", None))["name"] == "exact-radius"
    universal = layout.describe_unit(layout.universal_unit(1, "mlp", 0.1, 2))
    assert universal["kind"] == "universal" and universal["epsilon"] == 0.1
    assert layout.describe_unit(layout.interpret_unit(0, "mlp", "saliency"))["kind"] == "attribution"


def test_code_that_only_chooses_units_reruns_the_stage_but_keys_no_unit(monkeypatch):
    """The masking checks decide which runs the attack stage escalates: they are in its make
    rule (its code) but not in the hash every attack unit's key holds."""
    from helpers.store import graph
    from helpers.store.units import stage_code_hash

    chooses = graph.files(graph.CHOOSES["attack"])
    assert chooses and set(chooses) <= set(graph.code_files("attack", with_upstream=False))
    keyed = stage_code_hash.__wrapped__("attack")  # uncached
    monkeypatch.setattr(graph, "CHOOSES", {})
    assert stage_code_hash.__wrapped__("attack") != keyed  # counted, they would move every key
