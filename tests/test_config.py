import pytest
import yaml

from helpers.config import DEFAULTS, ConfigError, load_config


def write(tmp_path, body: dict, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.mark.parametrize("name", ["default", "smoke", "seed"])
def test_shipped_configs_are_valid(name):
    cfg = load_config(f"configs/{name}.yaml")
    assert cfg["experiment"] == name and cfg["results_dir"].endswith(f"results/{name}")


def test_defaults_fill_missing_keys(tmp_path):
    cfg = load_config(write(tmp_path, {"n_runs": 2}))
    assert cfg["n_runs"] == 2 and cfg["attack"] == DEFAULTS["attack"] and cfg["experiment"] == "exp"


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
    ({"models": {"q": {"type": "vqc", "n_qubits": 2}}}, r"models.q.n_qubits \(2\) must be >= the number of classes"),
    ({"models": {"q": {"type": "vqc", "n_qbits": 4}}}, "models.q.n_qbits is unknown for type 'vqc'"),
    ({"models": {"x": {"type": "resnet"}}}, "models.x.type 'resnet' is unknown"),
    ({"interpret": {"methods": ["lime"]}}, "interpret.methods entry 'lime' is unknown"),
    ({"device": "tpu"}, "device 'tpu' is unknown"),
    ({"workers": 0}, "workers must be 'auto'"),
    ({"models": {"q": {"type": "vqc", "n_qubits": 4, "simulator": "qiskit"}}}, "models.q.simulator 'qiskit' is unknown"),
    ({"dataset": {"classes": [0, 1]}, "attack": {"methods": ["apgd_dlr"]}}, "apgd_dlr needs at least 3 classes"),
    ({"attack": {"methods": ["pgd"], "transfer_from": "square"}}, "attack.transfer_from must be null or one of"),
    ({"attack": {"masking_epsilons": [2.0]}}, r"attack.masking_epsilons must be a list of values in \(0, 1\]"),
    ({"attack": {"square_queries": 0}}, "attack.square_queries must be an integer >= 1"),
    ({"interpret": {"metric_samples": 0}}, "interpret.metric_samples must be an integer >= 1"),
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
