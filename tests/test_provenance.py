import dataclasses
import json
import subprocess

import pytest
import yaml

from helpers.config import load_config
from helpers.store import provenance
from helpers.store.files import project_root
from helpers.store.provenance import StaleResultsError, begin_stage, code_hash, config_hash, finish_stage

BODY = {"dataset": {"classes": [0, 1, 2], "folds": 2}, "n_runs": 2, "models": {"mlp": {"type": "mlp", "hidden": [8]}}}


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


def test_provenance_records_config_and_code_hashes_commit_packages_device_and_seeds(tmp_path):
    cfg = config(tmp_path)
    begin_stage(cfg, "train")
    finish_stage(cfg, "train")
    record = json.loads((tmp_path / "results/exp/provenance.json").read_text())
    head = subprocess.run(["git", "-C", str(project_root()), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert record["config_hash"] == config_hash(cfg) and record["config"]["n_runs"] == 2
    assert record["git"]["commit"] == head.stdout.strip() and isinstance(record["git"]["dirty"], bool)
    assert record["packages"]["torch"] and record["packages"]["pennylane"] and record["packages"]["python"]
    assert record["device"].startswith("cpu") or record["device"].startswith("cuda")
    assert record["seed"] == cfg.seed and len(record["run_seeds"]) == 2
    stage = record["stages"]["train"]
    assert stage["config_hash"] == config_hash(cfg, "train") and stage["code_hash"] == code_hash("train")
    assert stage["commit"] == head.stdout.strip() and stage["finished"] is not None


def test_hashes_ignore_workers_and_sections_a_stage_does_not_read(tmp_path):
    cfg = config(tmp_path)
    assert config_hash(dataclasses.replace(cfg, workers=1)) == config_hash(cfg)
    other = config(tmp_path, attack__epsilons=[0.0, 0.1])
    assert config_hash(other, "train") == config_hash(cfg, "train")
    assert config_hash(other, "attack") != config_hash(cfg, "attack")
    assert code_hash("report") != code_hash("train")  # the report's code includes every stage's


def test_a_stage_refuses_stale_results_of_the_stage_before_it_and_deletes_nothing(tmp_path):
    cfg = config(tmp_path)
    with pytest.raises(StaleResultsError, match="no finished train stage: run `make train"):
        begin_stage(cfg, "attack")
    begin_stage(cfg, "train")
    checkpoint = touch(tmp_path / "results/exp/models/run00/mlp.pt")
    finish_stage(cfg, "train")
    begin_stage(cfg, "attack")  # up to date: fine
    changed = config(tmp_path, training__epochs=5)
    with pytest.raises(StaleResultsError, match=r"holds train results of another config \(changed: training\).*make train"):
        begin_stage(changed, "attack")
    assert checkpoint.read_bytes() == b"finished work"
    begin_stage(config(tmp_path, attack__epsilons=[0.0, 0.2]), "attack")  # the models do not depend on it


def test_a_stage_refuses_results_of_other_code(tmp_path, monkeypatch):
    cfg = config(tmp_path)
    begin_stage(cfg, "train")
    finish_stage(cfg, "train")
    monkeypatch.setattr(provenance, "code_hash", lambda stage: "edited")
    with pytest.raises(StaleResultsError, match="holds train results of another code"):
        begin_stage(cfg, "attack")
