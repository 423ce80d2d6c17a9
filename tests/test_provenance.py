import json
import subprocess

import pytest
import yaml

from helpers.artifacts import project_root
from helpers.config import load_config
from helpers.provenance import ProvenanceError, begin_stage, config_hash, finish_stage

BODY = {"dataset": {"classes": [0, 1, 2]}, "n_runs": 2, "models": {"mlp": {"type": "mlp", "hidden": [8]}}}


def config(tmp_path, **changes):
    body = json.loads(json.dumps(BODY))
    for key, value in changes.items():
        section, _, name = key.partition("__")
        body.setdefault(section, {})[name] = value
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(body))
    return load_config(path, results_root=tmp_path / "results")


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"finished work")
    return path


def test_provenance_records_config_hash_commit_packages_device_and_seeds(tmp_path):
    cfg = config(tmp_path)
    begin_stage(cfg, "train")
    finish_stage(cfg, "train")
    record = json.loads((tmp_path / "results/exp/provenance.json").read_text())
    head = subprocess.run(["git", "-C", str(project_root()), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert record["config_hash"] == config_hash(cfg) and record["config"]["n_runs"] == 2
    assert record["git"]["commit"] == head.stdout.strip() and isinstance(record["git"]["dirty"], bool)
    assert record["packages"]["torch"] and record["packages"]["pennylane"] and record["packages"]["python"]
    assert record["device"].startswith("cpu") or record["device"].startswith("cuda")
    assert record["seed"] == cfg["seed"] and len(record["run_seeds"]) == 2
    assert record["stages"]["train"]["config_hash"] == config_hash(cfg, "train")
    assert record["stages"]["train"]["finished"] is not None


def test_hashes_ignore_workers_and_sections_a_stage_does_not_read(tmp_path):
    cfg = config(tmp_path)
    assert config_hash({**cfg, "workers": 1}) == config_hash(cfg)
    other = config(tmp_path, attack__epsilons=[0.0, 0.1])
    assert config_hash(other, "train") == config_hash(cfg, "train")
    assert config_hash(other, "attack") != config_hash(cfg, "attack")


def test_a_stage_refuses_results_of_another_config_and_deletes_nothing(tmp_path):
    cfg = config(tmp_path)
    begin_stage(cfg, "train")
    checkpoint = touch(tmp_path / "results/exp/models/run00/mlp.pt")
    changed = config(tmp_path, training__epochs=5)
    with pytest.raises(ProvenanceError, match=r"holds train results of a different config .*changed: training.*make clean"):
        begin_stage(changed, "train")
    with pytest.raises(ProvenanceError, match="holds train results"):  # downstream stages refuse too
        begin_stage(changed, "attack")
    assert checkpoint.read_bytes() == b"finished work"


def test_a_changed_attack_section_keeps_the_training_but_not_the_attack_cells(tmp_path):
    cfg = config(tmp_path)
    begin_stage(cfg, "train")
    touch(tmp_path / "results/exp/models/run00/mlp.pt")
    begin_stage(cfg, "attack")
    cell = touch(tmp_path / "results/exp/cells/attack/run00/mlp__fgsm.npz")
    changed = config(tmp_path, attack__epsilons=[0.0, 0.1])
    begin_stage(changed, "train")  # the models do not depend on the attack section
    with pytest.raises(ProvenanceError, match="holds attack results of a different config .*changed: attack"):
        begin_stage(changed, "attack")
    assert cell.exists()
    begin_stage(config(tmp_path, report__reference=None), "report")  # same config: fine


def test_a_stage_whose_earlier_run_left_nothing_takes_the_new_config(tmp_path):
    begin_stage(config(tmp_path), "train")  # interrupted before the first checkpoint
    changed = config(tmp_path, training__epochs=5)
    begin_stage(changed, "train")
    record = json.loads((tmp_path / "results/exp/provenance.json").read_text())
    assert record["stages"]["train"]["config_hash"] == config_hash(changed, "train")
