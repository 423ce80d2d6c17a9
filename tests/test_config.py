import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers.config import AttackSection, ConfigError, load_config
from helpers.models import vqc
from helpers.store.files import project_root

from test_data import _write_idx


def write(tmp_path, body: dict, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(body))
    return path


IDX_CONFIGS = ("mnist", "fashion_mnist")  # need local files, written here as tiny fixtures
SHIPPED = sorted(p.stem for p in (project_root() / "configs").glob("*.yaml"))


@pytest.mark.parametrize("name", [n for n in SHIPPED if n not in IDX_CONFIGS])
def test_shipped_configs_are_valid(name):
    cfg = load_config(f"configs/{name}.yaml")
    assert cfg.experiment == name and str(cfg.results_dir).endswith(f"results/{name}")


@pytest.mark.parametrize("name", IDX_CONFIGS)
def test_idx_configs_are_valid_once_the_files_exist(tmp_path, name):
    body = yaml.safe_load((project_root() / "configs" / f"{name}.yaml").read_text())
    with pytest.raises(ConfigError, match=r"lacks \['train-images-idx3-ubyte'"):
        load_config(write(tmp_path, {**body, "dataset": {**body["dataset"], "options": {"path": str(tmp_path / "none")}}}))
    folder = tmp_path / "idx"
    folder.mkdir()
    for split, n in (("train", 48), ("t10k", 16)):
        labels = np.arange(n) % 10
        images = np.random.default_rng(n).integers(0, 256, (n, 28, 28))
        _write_idx(folder / f"{split}-images-idx3-ubyte", images, 2051, gzipped=split == "train")
        _write_idx(folder / f"{split}-labels-idx1-ubyte", labels, 2049)
    body["dataset"]["options"]["path"] = str(folder)
    cfg = load_config(write(tmp_path, body, name=f"{name}.yaml"))
    assert cfg.dataset.name == name and cfg.models["mlp_matched"].params.parameters == 97


def test_capacity_matched_models_are_resolved_to_a_parameter_count(tmp_path):
    cfg = load_config(write(tmp_path, {"models": {"vqc": {"type": "vqc", "n_qubits": 8, "n_layers": 4},
                                                  "small": {"type": "matched_mlp", "match": "vqc"}}}))
    assert cfg.models["small"].to_dict() == {"type": "matched_mlp", "parameters": 97, "n_features": 8}


def test_defaults_fill_missing_keys(tmp_path):
    cfg = load_config(write(tmp_path, {"n_runs": 5}))
    assert cfg.n_runs == 5 and cfg.attack == AttackSection.parse({}, "attack") and cfg.experiment == "exp"
    assert cfg.attack.params["pgd"].steps == 20 and cfg.models["vqc"].params.n_qubits == 8


@pytest.mark.parametrize("body,message", [
    ({"n_run": 2}, "unknown config key 'n_run'"),
    ({"attack": {"epsilon": [0.1]}}, "unknown config key 'attack.epsilon'"),
    ({"dataset": {"name": "cifar"}}, "dataset.name 'cifar' is unknown"),
    ({"dataset": {"classes": [0, 12]}}, r"dataset.classes \[12\] not in 'digits'"),
    ({"attack": {"epsilons": [0.1, -0.1]}}, r"attack.epsilons values must lie in \[0, 1\]"),
    ({"attack": {"epsilons": [1.5]}}, r"attack.epsilons values must lie in \[0, 1\]"),
    ({"attack": {"epsilons": []}}, "attack.epsilons must be a non-empty list"),
    ({"attack": {"methods": ["cw"]}}, "attack.methods entry 'cw' is unknown"),
    ({"n_runs": 0}, "n_runs must be an integer >= 1"),
    ({"training": {"epochs": "ten"}}, "training.epochs must be an integer"),
    ({"models": {"q": {"type": "vqc", "n_qubits": 40}}}, r"models.q.n_qubits must be an integer in 1..20"),
    ({"models": {"q": {"type": "vqc", "n_qubits": 2}}}, r"models.q: n_classes \(4\) must not exceed n_qubits \(2\)"),
    ({"models": {"q": {"type": "vqc", "n_qbits": 4}}}, "models.q.n_qbits is unknown for type 'vqc'"),
    ({"models": {"x": {"type": "resnet"}}}, "models.x.type 'resnet' is unknown"),
    ({"interpret": {"methods": ["lime"]}}, "interpret.methods entry 'lime' is unknown"),
    ({"device": "tpu"}, "device 'tpu' is unknown"),
    ({"workers": 0}, "workers must be 'auto'"),
    ({"executor": {"scheduler": "head:8786"}}, r"executor.scheduler must be null or a scheduler address"),
    ({"executor": {"kind": "processes"}}, r"unknown config key .executor.kind."),
    ({"executor": {"resources": {"GPU": 0}}}, "executor.resources must map resource names to amounts > 0"),
    ({"executor": {"workers": 2}}, "unknown config key 'executor.workers'"),
    ({"models": {"q": {"type": "vqc", "n_qubits": 4, "simulator": "qiskit"}}}, "models.q.simulator 'qiskit' is unknown"),
    ({"dataset": {"classes": [0, 1]}, "attack": {"methods": ["apgd_dlr"], "transfer_from": None}},
     "apgd_dlr needs at least 3 classes"),
    ({"attack": {"methods": ["pgd"], "transfer_from": "square"}}, "attack.transfer_from must be null or one of"),
    ({"attack": {"masking_epsilons": [2.0]}}, r"attack.masking_epsilons values must lie in \(0, 1\], got 2.0"),
    ({"attack": {"square": {"queries": 0}}}, "attack.square.queries must be an integer >= 1"),
    ({"attack": {"square": {"querys": 10}}}, "attack.square.querys is unknown for 'square'"),
    ({"attack": {"pgd_steps": 10}}, "unknown config key 'attack.pgd_steps'"),
    ({"interpret": {"metric_samples": 0}}, "interpret.metric_samples must be an integer >= 1"),
    ({"dataset": "digits"}, "config key 'dataset' must be a mapping"),
    ({"dataset": {"name": 5}}, "dataset.name 5 is unknown"),
    ({"dataset": {"split": "random", "test_fraction": 1.5}}, r"dataset.test_fraction must lie in \(0, 1\)"),
    ({"dataset": {"test_fraction": 0.3}}, r"dataset.test_fraction does not apply to dataset.split: kfold"),
    ({"dataset": {"split": "random", "folds": 4}}, r"dataset.folds does not apply to dataset.split: random"),
    ({"dataset": {"split": "bootstrap"}}, r"dataset.split 'bootstrap' is unknown; allowed: \['kfold', 'random', 'fixed'\]"),
    ({"n_runs": 4}, r"n_runs \(4\) must be a multiple of dataset.folds \(5\)"),
    ({"report": {"primary": {"models": ["mlp", "qq"]}}}, r"report.primary.models must name two models of `models`"),
    ({"report": {"primary": {"models": ["mlp", "cnn"], "epsilon": 0.0}}}, r"report.primary.epsilon 0.0 must be null"),
    ({"report": {"primary": {"models": ["mlp", "cnn"], "attack": "cw"}}}, r"report.primary.attack 'cw' is not 'worst_case'"),
    ({"report": {"primary": {"models": ["mlp", "cnn"], "budget": 0.1}}}, r"unknown config key 'report.primary.budget'"),
    ({"dataset": {"options": {"colour": "red"}}}, "dataset.options.colour is unknown for 'digits'"),
    ({"n_runs": 2.5}, "n_runs must be an integer >= 1"),
    ({"seed": -1}, "seed must be an integer >= 0"),
    ({"training": {"learning_rate": "fast"}}, "training.learning_rate must be a number > 0"),
    ({"attack": {"methods": "fgsm"}}, "attack.methods must be a non-empty list"),
    ({"attack": {"pgd": {"random_start": "yes"}}}, "attack.pgd.random_start must be true or false"),
    ({"interpret": {"smoothgrad": {"stdev": 0}}}, r"interpret.smoothgrad.stdev must be a number > 0"),
    ({"attack": {"n_test": 0}}, "attack.n_test must be null"),
    ({"interpret": {"methods": "saliency"}}, "interpret.methods must be a list"),
    ({"interpret": {"epsilon": -0.1}}, r"interpret.epsilon must lie in \[0, 1\]"),
    ({"models": {}}, "models must be a non-empty mapping"),
    ({"dataset": {"name": "plus_minus", "classes": [0, 1], "options": {"size": 4}},
      "models": {"q": {"type": "vqc", "n_qubits": 17}}, "attack": {"methods": ["pgd"]}},
     r"models.q: .*n_qubits \(17\) must not exceed the number of input features \(16\)"),
    ({"dataset": {"name": "moons", "classes": [0, 1]}, "models": {"m": {"type": "mlp"}}},
     "attack.methods: apgd_dlr needs at least 3 classes"),
    ({"dataset": {"name": "moons", "classes": [0, 1]}, "models": {"c": {"type": "cnn"}},
      "attack": {"methods": ["pgd"]}}, r"models.c: cnn needs image input \(1, H, W\)"),
    ({"models": {"q": {"type": "vqc"}, "small": {"type": "matched_mlp", "match": "nope"}}},
     "models.small.match must name a model of this config"),
    ({"report": {"reference": {"source": "x", "attack": "pgd", "epsilon": 0.5, "accuracy": {"mlp": 0.5}}}},
     "report.reference.epsilon 0.5 is not in attack.epsilons"),
    ({"models": {"q": {"type": "vqc", "n_qubits": 5, "noise": {"device": "fake_atlantis"}}}},
     "models.q.noise.device 'fake_atlantis' is not a device snapshot of qiskit-ibm-runtime; known: .*'fake_manila'"),
    ({"models": {"q": {"type": "vqc", "n_qubits": 4, "noise": {"device": "fake_manila", "qubits": [0, 1, 3, 4]}}}},
     r"models.q.noise.qubits \[0, 1, 3, 4\] are not connected on 'fake_manila'"),
])
def test_bad_configs_name_the_key(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, body))


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_config_is_read_with_a_safe_loader(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("n_runs: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(yaml.YAMLError):
        load_config(path)


def test_more_qubits_than_memory_holds_is_refused_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(vqc, "physical_memory_bytes", lambda: 2 * 2**30)
    body = {"models": {"q": {"type": "vqc", "n_qubits": 14, "n_layers": 2}}}
    with pytest.raises(ConfigError, match=r"models.q: simulating 14 qubits .* needs about 4.2 GiB, this machine has 2.0 GiB"):
        load_config(write(tmp_path, body))
    body["models"]["q"]["n_qubits"] = 8
    load_config(write(tmp_path, body))


def run_cli(path):
    return subprocess.run([sys.executable, "-m", "helpers.config", str(path)], cwd=project_root(),
                          capture_output=True, text=True)


def test_command_line_check_exits_non_zero_with_one_message(tmp_path):
    good = run_cli(write(tmp_path, {"n_runs": 5}, name="good.yaml"))
    assert good.returncode == 0 and "is valid" in good.stdout
    bad = run_cli(write(tmp_path, {"attack": {"epsilons": [-0.1]}}))
    assert bad.returncode == 2 and "attack.epsilons values must lie in [0, 1]" in bad.stderr
    assert "Traceback" not in bad.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("n_runs: [2\n")
    result = run_cli(broken)
    assert result.returncode == 2 and "config error" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(not (Path(sys.prefix) / ".qml-robustness-installed").exists(),
                    reason="needs the environment `make env` builds")
def test_make_stops_on_a_bad_config_before_writing_anything(tmp_path):
    path = write(tmp_path, {"n_runs": 0}, name="bad_config_probe.yaml")
    result = subprocess.run(["make", "train", f"CONFIG={path}", f"VENV={sys.prefix}"], cwd=project_root(),
                            capture_output=True, text=True)
    assert result.returncode != 0 and "n_runs must be an integer >= 1" in result.stderr
    assert not (project_root() / "results" / "bad_config_probe").exists()
