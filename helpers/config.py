"""Experiment configs: read with a safe YAML loader, filled with defaults, validated up front.

A config file ``configs/<experiment>.yaml`` names the experiment; its results go to
``results/<experiment>/``. Every key is optional (``DEFAULTS`` fills the rest) but unknown
keys are errors, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import copy
import inspect
import os
import sys
from numbers import Real
from pathlib import Path

import yaml

from .artifacts import project_root
from .attacks import ATTACKS
from .attribution import METHODS
from .data import DATASETS, available_classes, configured_dataset, dataset_options
from .models import MAX_QUBITS, MODELS, build_model, match_capacity
from .quantum import SIMULATORS

DEFAULTS: dict = {
    "dataset": {"name": "digits", "classes": [0, 1, 2, 3], "test_fraction": 0.25, "options": {}},
    "n_runs": 10,
    "seed": 2026,
    "device": "auto",
    "workers": "auto",
    "training": {"epochs": 30, "batch_size": 32, "learning_rate": 0.01},
    "models": {
        "mlp": {"type": "mlp", "hidden": [32]},
        "cnn": {"type": "cnn", "channels": [8, 16], "hidden": 32},
        "vqc": {"type": "vqc", "n_qubits": 8, "n_layers": 4},
    },
    "attack": {
        "epsilons": [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3],
        "methods": ["fgsm", "pgd", "pgd_restarts", "pgd_long", "apgd_ce", "apgd_dlr", "square"],
        "pgd_steps": 20,
        "pgd_step_ratio": 0.25,
        "pgd_random_start": True,
        "pgd_restarts": 5,
        "pgd_long_steps": 60,
        "pgd_long_step_ratio": 0.1,
        "apgd_steps": 50,
        "square_queries": 300,
        "transfer_from": "pgd",
        "masking_epsilons": [0.5, 1.0],
        "n_test": None,
    },
    "interpret": {
        "epsilon": 0.1,
        "n_images": 16,
        "methods": ["saliency", "integrated_gradients", "smoothgrad", "gradcam"],
        "ig_steps": 32,
        "smoothgrad_samples": 16,
        "smoothgrad_stdev": 0.15,
        "top_k_fraction": 0.1,
        "panel_images": 3,
        "metric_samples": 8,
        "infidelity_stdev": 0.05,
        "sensitivity_radius": 0.02,
    },
    # A published result to set beside ours: {source, attack, epsilon, accuracy: {model: value}}.
    "report": {"reference": None},
}

DEVICES = ("cpu", "cuda", "auto")
# Attacks and attributions run the models on batches of up to this many points.
EVALUATION_BATCH = 512


class ConfigError(ValueError):
    """A config value is missing, unknown or out of range; the message names the key."""


def _merge(defaults: dict, given: dict, prefix: str = "") -> dict:
    merged = copy.deepcopy(defaults)
    for key, value in given.items():
        name = f"{prefix}{key}"
        if key not in defaults:
            raise ConfigError(f"unknown config key {name!r}; allowed: {sorted(defaults)}")
        # `models` and `dataset.options` are free mappings (checked in `validate`): replaced whole.
        if isinstance(defaults[key], dict) and name not in ("models", "dataset.options"):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {name!r} must be a mapping, got {value!r}")
            merged[key] = _merge(defaults[key], value, prefix=f"{name}.")
        else:
            merged[key] = value
    return merged


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)


def _check_model(name: str, spec: dict, dataset, batch_size: int) -> None:
    _check(spec["type"] in MODELS, f"models.{name}.type {spec['type']!r} is unknown; allowed: {sorted(MODELS)}")
    # The constructor's keyword arguments are the allowed keys and give the defaults.
    params = inspect.signature(MODELS[spec["type"]]).parameters
    allowed = [p for p in params if p not in ("input_shape", "n_classes")]
    for key in spec:
        _check(key == "type" or key in allowed,
               f"models.{name}.{key} is unknown for type {spec['type']!r}; allowed: {allowed}")
    if "n_qubits" in params:  # a model with a quantum circuit
        nq = spec.get("n_qubits", params["n_qubits"].default)
        _check(_is_int(nq) and 1 <= nq <= MAX_QUBITS,
               f"models.{name}.n_qubits must be an integer in 1..{MAX_QUBITS} (statevector memory), got {nq!r}")
        nl = spec.get("n_layers", params["n_layers"].default)
        _check(_is_int(nl) and nl >= 1, f"models.{name}.n_layers must be an integer >= 1, got {nl!r}")
        sim = spec.get("simulator", params["simulator"].default)
        _check(sim in SIMULATORS, f"models.{name}.simulator {sim!r} is unknown; allowed: {list(SIMULATORS)}")
    try:  # anything else the constructor refuses, before any work starts
        build_model(spec, dataset.input_shape, dataset.n_classes)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"models.{name}: {error}") from None
    if "n_qubits" in params:
        batch = max(batch_size, EVALUATION_BATCH)
        need, have = simulation_bytes(nq, nl, batch), physical_memory_bytes()
        _check(need <= have, f"models.{name}: simulating {nq} qubits with {nl} layers at batch {batch} needs about "
                             f"{need / 2**30:.1f} GiB, this machine has {have / 2**30:.1f} GiB: use fewer n_qubits")


def validate(cfg: dict) -> dict:
    """Raise ``ConfigError`` naming the first bad key; return ``cfg`` otherwise, with every
    ``match: <model>`` spec resolved to its ``parameters`` and ``n_features``."""
    ds = cfg["dataset"]
    _check(isinstance(ds["name"], str) and ds["name"] in DATASETS, f"dataset.name {ds['name']!r} is unknown; allowed: {sorted(DATASETS)}")
    labels = available_classes(ds["name"])
    classes = ds["classes"]
    _check(isinstance(classes, list) and len(classes) >= 2 and all(_is_int(c) for c in classes),
           f"dataset.classes must be a list of at least 2 integer labels, got {classes!r}")
    _check(len(set(classes)) == len(classes), f"dataset.classes has duplicates: {classes}")
    _check(set(classes) <= set(labels),
           f"dataset.classes {sorted(set(classes) - set(labels))} not in {ds['name']!r}; allowed: {list(labels)}")
    _check(_is_real(ds["test_fraction"]) and 0 < ds["test_fraction"] < 1,
           f"dataset.test_fraction must be in (0, 1), got {ds['test_fraction']!r}")
    options = ds["options"]
    _check(isinstance(options, dict), f"dataset.options must be a mapping, got {options!r}")
    for key in options:
        _check(key in dataset_options(ds["name"]),
               f"dataset.options.{key} is unknown for {ds['name']!r}; allowed: {dataset_options(ds['name'])}")
    try:
        dataset = configured_dataset(ds)
    except ValueError as error:
        raise ConfigError(f"dataset.options: {error}") from None

    _check(_is_int(cfg["n_runs"]) and cfg["n_runs"] >= 1, f"n_runs must be an integer >= 1, got {cfg['n_runs']!r}")
    _check(_is_int(cfg["seed"]) and cfg["seed"] >= 0, f"seed must be an integer >= 0, got {cfg['seed']!r}")
    _check(cfg["device"] in DEVICES, f"device {cfg['device']!r} is unknown; allowed: {list(DEVICES)}")
    _check(cfg["workers"] == "auto" or (_is_int(cfg["workers"]) and cfg["workers"] >= 1),
           f"workers must be 'auto' (one process per CPU core; one on a GPU) or an integer >= 1, got {cfg['workers']!r}")

    tr = cfg["training"]
    for key in ("epochs", "batch_size"):
        _check(_is_int(tr[key]) and tr[key] >= 1, f"training.{key} must be an integer >= 1, got {tr[key]!r}")
    _check(_is_real(tr["learning_rate"]) and tr["learning_rate"] > 0,
           f"training.learning_rate must be a number > 0, got {tr['learning_rate']!r}")

    models = cfg["models"]
    _check(isinstance(models, dict) and models, "models must be a non-empty mapping of name -> {type: ..., ...}")
    n_classes = len(classes)
    for name, spec in models.items():
        _check(isinstance(spec, dict) and "type" in spec, f"models.{name} must be a mapping with a 'type' key")
    # Capacity-matched models (`match: <name>`) are sized from models checked before them.
    for name, spec in models.items():
        if "match" not in spec:
            _check_model(name, spec, dataset, tr["batch_size"])
    try:
        cfg["models"] = match_capacity(models, dataset.input_shape, n_classes)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    for name, spec in models.items():
        if "match" in spec:
            _check_model(name, cfg["models"][name], dataset, tr["batch_size"])

    at = cfg["attack"]
    eps = at["epsilons"]
    _check(isinstance(eps, list) and len(eps) > 0, f"attack.epsilons must be a non-empty list, got {eps!r}")
    for e in eps:
        _check(_is_real(e) and 0 <= e <= 1, f"attack.epsilons values must lie in [0, 1] (the input range), got {e!r}")
    _check(isinstance(at["methods"], list) and at["methods"], "attack.methods must be a non-empty list")
    for m in at["methods"]:
        _check(m in ATTACKS, f"attack.methods entry {m!r} is unknown; allowed: {sorted(ATTACKS)}")
    _check("apgd_dlr" not in at["methods"] or n_classes >= 3,
           f"attack.methods: apgd_dlr needs at least 3 classes (the DLR loss), the data set has {n_classes}")
    for key in ("pgd_steps", "pgd_restarts", "pgd_long_steps", "apgd_steps", "square_queries"):
        _check(_is_int(at[key]) and at[key] >= 1, f"attack.{key} must be an integer >= 1, got {at[key]!r}")
    for key in ("pgd_step_ratio", "pgd_long_step_ratio"):
        _check(_is_real(at[key]) and at[key] > 0, f"attack.{key} must be > 0 (step size = ratio * epsilon), got {at[key]!r}")
    _check(at["transfer_from"] is None or at["transfer_from"] in at["methods"],
           f"attack.transfer_from must be null or one of attack.methods {at['methods']}, got {at['transfer_from']!r}")
    _check(isinstance(at["masking_epsilons"], list)
           and all(_is_real(e) and 0 < e <= 1 for e in at["masking_epsilons"]),
           f"attack.masking_epsilons must be a list of values in (0, 1], got {at['masking_epsilons']!r}")
    _check(isinstance(at["pgd_random_start"], bool), "attack.pgd_random_start must be true or false")
    _check(at["n_test"] is None or (_is_int(at["n_test"]) and at["n_test"] >= 1),
           f"attack.n_test must be null (whole test split) or an integer >= 1, got {at['n_test']!r}")

    it = cfg["interpret"]
    _check(_is_real(it["epsilon"]) and 0 <= it["epsilon"] <= 1, f"interpret.epsilon must lie in [0, 1], got {it['epsilon']!r}")
    _check(isinstance(it["methods"], list), f"interpret.methods must be a list, got {it['methods']!r}")
    for m in it["methods"]:
        _check(m in METHODS, f"interpret.methods entry {m!r} is unknown; allowed: {sorted(METHODS)}")
    for key in ("n_images", "ig_steps", "smoothgrad_samples", "panel_images"):
        _check(_is_int(it[key]) and it[key] >= 1, f"interpret.{key} must be an integer >= 1, got {it[key]!r}")
    _check(it["panel_images"] <= it["n_images"], "interpret.panel_images must not exceed interpret.n_images")
    _check(_is_real(it["smoothgrad_stdev"]) and it["smoothgrad_stdev"] > 0, "interpret.smoothgrad_stdev must be > 0")
    _check(_is_real(it["top_k_fraction"]) and 0 < it["top_k_fraction"] <= 1, "interpret.top_k_fraction must be in (0, 1]")
    _check(_is_int(it["metric_samples"]) and it["metric_samples"] >= 1, "interpret.metric_samples must be an integer >= 1")
    for key in ("infidelity_stdev", "sensitivity_radius"):
        _check(_is_real(it[key]) and it[key] > 0, f"interpret.{key} must be > 0, got {it[key]!r}")
    ref = cfg["report"]["reference"]
    if ref is not None:
        keys = ["source", "attack", "epsilon", "accuracy"]
        _check(isinstance(ref, dict) and sorted(ref) == sorted(keys),
               f"report.reference must be null or a mapping with exactly the keys {keys}, got {ref!r}")
        _check(ref["attack"] in at["methods"], f"report.reference.attack {ref['attack']!r} is not in attack.methods {at['methods']}")
        _check(ref["epsilon"] in eps, f"report.reference.epsilon {ref['epsilon']!r} is not in attack.epsilons {eps}")
        _check(isinstance(ref["accuracy"], dict) and ref["accuracy"] and set(ref["accuracy"]) <= set(models)
               and all(_is_real(v) and 0 <= v <= 1 for v in ref["accuracy"].values()),
               f"report.reference.accuracy must map model names of `models` to accuracies in [0, 1], got {ref['accuracy']!r}")
    return cfg


def simulation_bytes(n_qubits: int, n_layers: int, batch: int) -> int:
    """Rough memory of a differentiable statevector simulation: ``batch`` complex128 states of
    2**n amplitudes, one kept for the backward pass per gate layer (n_layers * (n_qubits + 1)
    of them, plus a few for encoding and readout)."""
    return batch * 2 ** n_qubits * 16 * (n_layers * (n_qubits + 1) + 4)


def physical_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def load_config(path: str | Path, results_root: str | Path | None = None) -> dict:
    """Read, complete and validate a config; relative paths are taken from the repository root.

    Adds ``experiment`` (the file's stem) and ``results_dir`` (``<results_root>/<experiment>``,
    by default ``results/<experiment>``).
    """
    path = Path(path)
    if not path.is_absolute():
        path = project_root() / path
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    with open(path) as fh:
        given = yaml.safe_load(fh) or {}
    _check(isinstance(given, dict), f"config {path} must be a YAML mapping")
    cfg = validate(_merge(DEFAULTS, given))
    cfg["experiment"] = path.stem
    cfg["results_dir"] = str(Path(results_root or project_root() / "results") / path.stem)
    return cfg


def resolve_device(cfg: dict):
    """The torch device the config asks for (``auto``: CUDA when present, else CPU)."""
    import torch

    if cfg["device"] == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if cfg["device"] == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device is 'cuda' but no CUDA GPU is available; use 'auto' or 'cpu'")
    return torch.device(cfg["device"])


def resolved_yaml(cfg: dict) -> str:
    """The complete config as YAML, as recorded next to the results."""
    body = {k: v for k, v in cfg.items() if k not in ("experiment", "results_dir")}
    return f"# experiment: {cfg['experiment']}\n" + yaml.safe_dump(body, sort_keys=False)


def main(argv: list[str]) -> int:
    """``python -m helpers.config CONFIG``: validate a config before any work (the Makefile's
    first step); print the problem and exit 2 if it is bad."""
    if len(argv) != 1:
        print("usage: python -m helpers.config configs/<experiment>.yaml", file=sys.stderr)
        return 2
    try:
        cfg = load_config(argv[0])
    except (ConfigError, yaml.YAMLError) as error:
        print(f"config error in {argv[0]}: {error}", file=sys.stderr)
        return 2
    print(f"config {argv[0]} is valid: experiment {cfg['experiment']!r}, results in {cfg['results_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
