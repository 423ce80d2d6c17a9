"""Experiment configs: read with a safe YAML loader, parsed into typed sections, validated up front.

A config file ``configs/<experiment>.yaml`` names the experiment; its results go to
``results/<experiment>/``. Every key is optional (each section's dataclass holds the
defaults) but unknown keys are errors, so a typo never silently falls back to a default.
This package loads, merges and dispatches: one module per section (``data``, ``training``,
``models``, ``attack``, ``certify``, ``interpret``, ``report``, ``executor``), and each section
and each component (data set, model, attack, attribution method) checks its own keys with its
own ``Params``, found through the registries; nothing here knows a particular model or attack,
and no model or defence module is imported before a config names one.

``python -m helpers.config CONFIG`` checks a config before any work (the Makefile's first
step): one message naming the key and the allowed values, exit status 2.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import yaml

from ..device import resolve_device
from ..params import ConfigError, check, plain
from ..registry import ATTACKS, THREAT_MODELS
from .attack import BUDGET, AttackSection, ThreatSection, UniversalSection, threat_norms
from .certify import CertifySection
from .data import DEVICES, DatasetSection, RunSection
from .executor import ExecutorSection
from .interpret import InterpretSection
from .models import DEFAULT_MODELS, EVALUATION_BATCH, ModelSpec, parse_models
from .report import REFERENCE_STATISTICS, Primary, Reference, ReportSection
from .training import TrainingSection

__all__ = ["BUDGET", "DEVICES", "EVALUATION_BATCH", "REFERENCE_STATISTICS", "ROOT", "SECTIONS", "AttackSection",
           "CertifySection", "Config", "ConfigError", "DatasetSection", "ExecutorSection", "InterpretSection",
           "ModelSpec", "Primary", "Reference", "ReportSection", "RunSection", "ThreatSection",
           "TrainingSection", "UniversalSection", "threat_norms", "load_config", "parse_config", "resolve_device",
           "resolved_yaml"]

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = {"dataset": DatasetSection, "training": TrainingSection, "attack": AttackSection,
            "certify": CertifySection, "interpret": InterpretSection, "report": ReportSection,
            "executor": ExecutorSection}


@dataclasses.dataclass(frozen=True)
class Config:
    """A parsed, validated experiment config (``load_config``)."""

    dataset: DatasetSection
    n_runs: int
    seed: int
    device: str
    workers: int | str
    training: TrainingSection
    models: dict[str, ModelSpec]
    attack: AttackSection
    certify: CertifySection
    interpret: InterpretSection
    report: ReportSection
    executor: ExecutorSection = ExecutorSection()
    experiment: str = "experiment"
    results_dir: Path = ROOT / "results" / "experiment"

    def section(self, name: str):
        """Section ``name`` as plain data (dicts, lists, numbers, strings): for hashes and YAML."""
        value = getattr(self, name)
        if name == "models":
            return {model: spec.to_dict() for model, spec in value.items()}
        return plain(value)

    def to_dict(self) -> dict:
        return {name: self.section(name) for name in ("dataset", "n_runs", "seed", "device", "workers", "executor",
                                                      "training", "models", "attack", "certify", "interpret",
                                                      "report")}

    @property
    def n_classes(self) -> int:
        return len(self.dataset.classes)


def parse_config(given: Mapping, experiment: str = "experiment", results_dir: Path | None = None) -> Config:
    """Validate a config mapping (as read from YAML) and return the ``Config``; a
    ``ConfigError`` names the first bad key."""
    if not isinstance(given, Mapping):
        raise ConfigError(f"a config must be a YAML mapping, got {given!r}")
    top = [f.name for f in RunSection.fields()]
    allowed = ["dataset", *top, "executor", "training", "models", "attack", "certify", "interpret", "report"]
    for key in given:
        check(key in allowed, f"unknown config key {key!r}; allowed: {sorted(allowed)}")
    dataset = DatasetSection.parse(given.get("dataset"), "dataset")
    run = RunSection.parse({k: given[k] for k in top if k in given}, "")
    check(dataset.split != "kfold" or run.n_runs % dataset.folds == 0,
          f"n_runs ({run.n_runs}) must be a multiple of dataset.folds ({dataset.folds}): each repetition of "
          "the k-fold split is folds runs")
    training = TrainingSection.parse(given.get("training"), "training")
    models = parse_models(given.get("models", DEFAULT_MODELS), dataset, training)
    attack = AttackSection.parse(given.get("attack"), "attack")
    features = int(np.prod(dataset.input_shape))
    for norm, block in attack.threats.items():
        threat = THREAT_MODELS[norm]
        for key in ("epsilons", "masking_epsilons"):
            for value in getattr(block, key):
                check(value <= threat.diameter(features) + 1e-9,
                      f"attack.{norm}.{key}: {value:g} exceeds the {threat.label} diameter of the input box [0, 1]^"
                      f"{features} ({threat.diameter(features):.4g}): no budget can be larger")
    n_classes = len(dataset.classes)
    for key, names in (("methods", attack.methods), ("escalation", attack.escalation)):
        for name in names:
            needed = ATTACKS[name].min_classes
            check(n_classes >= needed, f"attack.{key}: {name} needs at least {needed} classes, the data set has {n_classes}")
    if attack.universal is not None and attack.universal.targets is not None:
        check(max(attack.universal.targets) < n_classes,
              f"attack.universal.targets must be class indices 0..{n_classes - 1} (positions in dataset.classes), "
              f"got {list(attack.universal.targets)}")
    certify = CertifySection.parse(given.get("certify"), "certify")
    interpret = InterpretSection.parse(given.get("interpret"), "interpret")
    report = ReportSection.parse(given.get("report"), "report")
    executor = ExecutorSection.parse(given.get("executor"), "executor")
    if report.primary is not None:
        primary = report.primary
        check(len(primary.models) == 2 and set(primary.models) <= set(models),
              f"report.primary.models must name two models of `models` {list(models)}, got {list(primary.models)}")
        check(primary.attack in (*attack.methods, "worst_case"),
              f"report.primary.attack {primary.attack!r} is not 'worst_case' or one of attack.methods {list(attack.methods)}")
        check(primary.epsilon is None or (primary.epsilon in attack.epsilons and primary.epsilon > 0),
              f"report.primary.epsilon {primary.epsilon!r} must be null (the area under the curve) or one of "
              f"attack.epsilons above 0 {[e for e in attack.epsilons if e > 0]}")
    if report.reference is not None:
        ref = report.reference
        check(ref.attack in attack.methods,
              f"report.reference.attack {ref.attack!r} is not in attack.methods {list(attack.methods)}")
        check(ref.epsilon in attack.epsilons,
              f"report.reference.epsilon {ref.epsilon!r} is not in attack.epsilons {list(attack.epsilons)}")
        check(len(ref.accuracy) > 0 and set(ref.accuracy) <= set(models)
              and all(BUDGET.accepts(v) for v in ref.accuracy.values()),
              f"report.reference.accuracy must map model names of `models` to accuracies in [0, 1], got {dict(ref.accuracy)!r}")
    return Config(dataset=dataset, **{k: getattr(run, k) for k in top}, training=training, models=models,
                  attack=attack, certify=certify, interpret=interpret, report=report, executor=executor, experiment=experiment,
                  results_dir=Path(results_dir) if results_dir else ROOT / "results" / experiment)


def load_config(path: str | Path, results_root: str | Path | None = None) -> Config:
    """Read, complete and validate a config; relative paths are taken from the repository root.

    The experiment is the file's stem; results go to ``<results_root>/<experiment>``
    (default ``results/<experiment>``).
    """
    path = Path(path)
    if not path.is_absolute():
        path = ROOT / path
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    with open(path) as fh:
        given = yaml.safe_load(fh) or {}
    check(isinstance(given, dict), f"config {path} must be a YAML mapping")
    return parse_config(given, path.stem, Path(results_root or ROOT / "results") / path.stem)


def resolved_yaml(cfg: Config) -> str:
    """The complete config as YAML, as recorded next to the results."""
    return f"# experiment: {cfg.experiment}\n" + yaml.safe_dump(cfg.to_dict(), sort_keys=False, allow_unicode=True)
