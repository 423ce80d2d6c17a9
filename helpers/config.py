"""Experiment configs: read with a safe YAML loader, parsed into typed sections, validated up front.

A config file ``configs/<experiment>.yaml`` names the experiment; its results go to
``results/<experiment>/``. Every key is optional (each section's dataclass holds the
defaults) but unknown keys are errors, so a typo never silently falls back to a default.
This module loads, merges and dispatches: each section and each component (data set,
model, attack, attribution method) checks its own keys with its own ``Params``, found
through the registries; nothing here knows a particular model or attack.

``python -m helpers.config CONFIG`` checks a config before any work (the Makefile's first
step): one message naming the key and the allowed values, exit status 2.
"""
from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import yaml

from .params import (AnyMapping, Boolean, Choice, ConfigError, Either, Integer, ListOf, Literal, Number, Optional,
                     Params, Section, Text, check, param, plain)
from .registry import ATTACKS, ATTRIBUTIONS, CERTIFICATES, DATASETS, DEFENCES, MODELS

ROOT = Path(__file__).resolve().parent.parent
DEVICES = ("cpu", "cuda", "auto")
# Attacks and attributions run the models on batches of up to this many points (the memory check).
EVALUATION_BATCH = 512
BUDGET = Number(0, 1, note="(the input range)")


@dataclasses.dataclass(frozen=True)
class DatasetSection(Params):
    """``dataset``: which data set, which of its classes, how runs split it, its options."""

    name: str = param("digits", Choice(DATASETS.names), "the data set (see the data sets table)")
    classes: tuple[int, ...] | None = param([0, 1, 2, 3], Optional(ListOf(Integer())),
                                            "labels to keep, relabelled 0..k-1 in this order (null: all of them)")
    split: str = param("kfold", Choice(("kfold", "random", "fixed")),
                       "`kfold`: repeated stratified k-fold, the test sets of one repetition disjoint; "
                       "`random`: a stratified split re-drawn per run; `fixed`: the data set's own train/test "
                       "split, the same in every run (file data sets, see docs/data.md)")
    folds: int = param(5, Integer(2), "k of `kfold` (test share 1/k); n_runs must be a multiple of it")
    test_fraction: float = param(0.25, Number(0, 1, open="low high"), "held-out share of `random` splits")
    test_subset: int | None = param(None, Optional(Integer(1)),
                                    "`fixed` only: evaluate every stage on this many test points, a stratified "
                                    "subset drawn once from the first run's seed (null: the whole test split)")
    options: Params = param(None, AnyMapping(), "the data set's own options (its table below)")

    @classmethod
    def parse(cls, given, where, owner=None):
        if given is not None and not isinstance(given, Mapping):
            raise ConfigError(f"config key {where!r} must be a mapping, got {given!r}")
        given = dict(given or {})
        name = cls.fields()[0].metadata["rule"].parse(given.get("name", "digits"), f"{where}.name")
        options = DATASETS[name].Params.parse(given.pop("options", None), f"{where}.options", owner=repr(name))
        section = dataclasses.replace(super().parse(given, where), options=options)
        unused = {"kfold": ["test_fraction", "test_subset"], "random": ["folds", "test_subset"],
                  "fixed": ["folds", "test_fraction"]}[section.split]
        for key in unused:
            check(key not in given, f"{where}.{key} does not apply to {where}.split: {section.split} "
                                    "(kfold: the test share is 1/folds; random: test_fraction; "
                                    "fixed: the data set's own split, test_subset)")
        if section.classes is None:  # all the data set's classes, written out for the record and the keys
            section = dataclasses.replace(section, classes=tuple(DATASETS[name].class_names(options)))
        section.check(where)
        return section

    def check(self, where):
        if self.options is None:
            return  # called by ``Params.parse`` before ``parse`` has set the options: checked after
        source = DATASETS[self.name]
        classes, names = self.classes, source.class_names(self.options)
        allowed = list(names) if all(names[c] == str(c) for c in names) else [f"{c} ({n})" for c, n in names.items()]
        check(len(classes) >= 2, f"{where}.classes must be null or a list of at least 2 integer labels, "
                                 f"got {list(classes)!r}")
        check(len(set(classes)) == len(classes), f"{where}.classes has duplicates: {list(classes)}")
        check(set(classes) <= set(names),
              f"{where}.classes {sorted(set(classes) - set(names))} not in {self.name!r}; allowed: "
              f"{allowed} (null: all of them)")
        fixed = source.has_fixed_split(self.options)
        check(self.split == "fixed" or not fixed,
              f"{where}.split: {self.split}, but data set {self.name!r} comes with its own train/test split "
              f"(see docs/data.md); set {where}.split: fixed, or give it no split to let runs draw theirs")
        check(self.split != "fixed" or fixed,
              f"{where}.split: fixed needs a data set that comes with its own train/test split; {self.name!r} "
              "with these options does not (an image folder's train/ and test/, an npz file's x_test and "
              "y_test, a CSV file's split_column)")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return DATASETS[self.name].input_shape(self.options)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The names of ``classes`` in their order (an image folder's folder names; else the numbers)."""
        names = DATASETS[self.name].class_names(self.options)
        return tuple(names[c] for c in self.classes)


@dataclasses.dataclass(frozen=True)
class RunSection(Params):
    """The top-level keys: Monte Carlo runs, seeds, where and on how many processes they run."""

    n_runs: int = param(10, Integer(1), "Monte Carlo runs")
    seed: int = param(2026, Integer(0), "base seed every run's seed derives from")
    device: str = param("auto", Choice(DEVICES), "`auto`: a CUDA GPU when present, else the CPU")
    workers: int | str = param("auto", Either(Literal("auto"), Integer(1), text="be 'auto' (one process per CPU core; "
                                              "one on a GPU) or an integer >= 1"),
                               "local worker processes the runs are spread over (a Dask local cluster; 1: this "
                               "process, serially); the numbers do not depend on it")


@dataclasses.dataclass(frozen=True)
class TrainingSection(Params):
    """``training``: the same for every model (by default Adam on cross-entropy); a model's own
    ``training`` mapping overrides keys for that model alone (``ModelSpec.training``)."""

    epochs: int = param(30, Integer(1), "epochs")
    batch_size: int = param(32, Integer(1), "mini-batch size")
    learning_rate: float = param(0.01, Number(0, open="low"), "the optimiser's (initial) learning rate")
    optimizer: str = param("adam", Choice(["adam", "adamw", "sgd"]), "the optimiser", quiet=True)
    momentum: float = param(0.0, Number(0, 1, open="high"), "SGD momentum (sgd only)", quiet=True)
    nesterov: bool = param(False, Boolean(), "Nesterov momentum (sgd with momentum > 0 only)", quiet=True)
    weight_decay: float = param(0.0, Number(0), "weight decay (L2 penalty for adam and sgd, decoupled for adamw)",
                                quiet=True)
    schedule: str | None = param(None, Optional(Choice(["cosine", "step"])),
                                 "learning-rate schedule per epoch: cosine annealing to 0 over the epochs, or "
                                 "step (times gamma every step_size epochs); null: constant", quiet=True)
    step_size: int = param(10, Integer(1), "epochs between the step schedule's decays", quiet=True)
    gamma: float = param(0.1, Number(0, 1, open="low"), "the step schedule's decay factor", quiet=True)
    clip_grad_norm: float | None = param(None, Optional(Number(0, open="low")),
                                         "clip the gradient's global L2 norm to this before each step (null: no "
                                         "clipping)", quiet=True)
    loss: str = param("cross_entropy", Choice(["cross_entropy", "mse"]),
                      "cross_entropy on the logits, or mse: the squared error between the softmax probabilities and "
                      "the one-hot label (a defence's own loss replaces either)", quiet=True)
    best_of: int = param(1, Integer(1), "initialisations per model and run: each trained in full, the one with the "
                                        "lowest final training loss kept (its seed recorded)", quiet=True)

    def check(self, where):
        check(self.optimizer == "sgd" or self.momentum == 0, f"{where}.momentum applies to optimizer sgd only, "
                                                             f"got momentum {self.momentum} with {self.optimizer!r}")
        check(not self.nesterov or (self.optimizer == "sgd" and self.momentum > 0),
              f"{where}.nesterov needs optimizer sgd with momentum > 0")

    def described(self) -> str:
        """The optimiser in words, for the summary: "Adam lr 0.01" for the defaults."""
        name = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD"}[self.optimizer]
        words = [f"{name} lr {self.learning_rate}"]
        if self.momentum:
            words.append(f"momentum {self.momentum:g}" + (" (Nesterov)" if self.nesterov else ""))
        if self.weight_decay:
            words.append(f"weight decay {self.weight_decay:g}")
        if self.schedule == "cosine":
            words.append("cosine schedule")
        elif self.schedule == "step":
            words.append(f"step schedule (×{self.gamma:g} every {self.step_size} epochs)")
        if self.clip_grad_norm is not None:
            words.append(f"gradients clipped to norm {self.clip_grad_norm:g}")
        if self.loss == "mse":
            words.append("squared-error loss on the probabilities")
        if self.best_of > 1:
            words.append(f"best of {self.best_of} initialisations")
        return ", ".join(words)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One entry of ``models``: its registry ``type``, that model's ``Params`` and, for a
    defended model, its ``defence`` (the entry's name and ``Params``; None: trained on the
    clean cross-entropy). The defence is part of the spec, so it enters the train unit's key."""

    type: str
    params: Params
    defence: tuple[str, Params] | None = None
    training: dict | None = None      # keys of ``training`` this model overrides (its own optimiser, say)
    checkpoint: str | None = None     # a state_dict under the data folder: imported, not trained

    def to_dict(self) -> dict:
        return {"type": self.type, **self.params.to_dict(), **self.defence_dict(),
                **({"training": dict(self.training)} if self.training else {}),
                **({"checkpoint": self.checkpoint} if self.checkpoint else {})}

    def defence_dict(self) -> dict:
        """``{"defence": {name, ...parameters}}``, or nothing for an undefended model (whose
        spec, and so whose train key, stays as it was before defences existed)."""
        if self.defence is None:
            return {}
        return {"defence": {"name": self.defence[0], **self.defence[1].to_dict()}}

    def training_section(self, shared: "TrainingSection") -> "TrainingSection":
        """The training of this model: the config's ``training`` with this model's overrides."""
        if not self.training:
            return shared
        return TrainingSection.parse({**shared.to_dict(), **self.training}, "training")

    def model_dict(self) -> dict:
        """The spec without its defence: what builds the model (and its undefended sibling's spec)."""
        return {"type": self.type, **self.params.to_dict()}


@dataclasses.dataclass(frozen=True)
class L2Section(Params):
    """``attack.l2``: the L2 threat model's budgets and attacks (its attacks' parameters stay
    under ``attack.<name>``, as every attack's). Absent: no L2 evaluation at all."""

    epsilons: tuple[float, ...] = param([0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0], ListOf(Number(0), nonempty=True),
                                        "L2 budgets in input units (the norm of the perturbation over all features)")
    methods: tuple[str, ...] = param(["pgd_l2", "apgd_l2", "square_l2", "cw_l2"],
                                     ListOf(Choice(ATTACKS.names), nonempty=True, unique=True),
                                     "L2 attacks to run (each must support the l2 norm); the per-sample worst case "
                                     "over them is always added")
    transfer_from: str | None = param("pgd_l2", Optional(Choice(ATTACKS.names)),
                                      "L2 attack whose examples each model passes to every other (null: none)")
    masking_epsilons: tuple[float, ...] = param([4.0], ListOf(Number(0, open="low")),
                                                "large L2 budgets where PGD-L2 must drive every model to ~0 "
                                                "(masking check)")

    def check(self, where):
        for key, names in (("methods", self.methods), ("transfer_from", [self.transfer_from] if self.transfer_from else [])):
            for name in names:
                check("l2" in ATTACKS[name].norms,
                      f"{where}.{key}: {name} does not support the l2 norm (it supports {list(ATTACKS[name].norms)}); "
                      f"L2 attacks: {l2_attacks()}")
        check(self.transfer_from is None or self.transfer_from in self.methods,
              f"{where}.transfer_from must be null or one of {where}.methods {list(self.methods)}, "
              f"got {self.transfer_from!r}")


def l2_attacks() -> list[str]:
    return [e.name for e in ATTACKS.entries() if "l2" in e.norms]


@dataclasses.dataclass(frozen=True)
class UniversalSection(Params):
    """``attack.universal``: one perturbation per model, run and ε for the whole data set,
    crafted on the run's training split by stochastic PGD on the mean loss over mini-batches
    and evaluated on the test points the attacks use (``attacks.universal``, docs/universal.md)."""

    epsilons: tuple[float, ...] = param([], ListOf(Number(0, 1, open="low")),
                                        "L∞ budgets (each one of attack.epsilons above 0)")
    steps: int = param(100, Integer(1), "updates of the perturbation, one mini-batch each (passes over the "
                                        "shuffled training split, as many as it takes)")
    batch_size: int = param(64, Integer(1), "training points per update")
    step_ratio: float = param(0.05, Number(0, open="low"), "signed-gradient step as a fraction of ε")
    loss: str = param("margin", Choice(("margin", "ce")),
                      "`margin`: the logit margin clipped at 0, so points already fooled (or already at the "
                      "target) stop pulling; `ce`: the mean cross-entropy")
    targeted: bool = param(False, Boolean(), "also craft one class-targeted perturbation per target class")
    targets: tuple[int, ...] | None = param(None, Optional(ListOf(Integer(0), nonempty=True, unique=True)),
                                            "target classes (indices into dataset.classes; null: every class)")
    eot_samples: int = param(8, Integer(1), "forward passes averaged per gradient on a randomised model")

    def check(self, where):
        check(len(self.epsilons) > 0, f"{where}.epsilons must be a non-empty list of budgets in (0, 1] "
                                      f"(leave {where} out for no universal perturbations)")
        check(len(set(self.epsilons)) == len(self.epsilons), f"{where}.epsilons has duplicates: {list(self.epsilons)}")
        check(self.targeted or self.targets is None, f"{where}.targets needs {where}.targeted: true")


@dataclasses.dataclass(frozen=True)
class AttackSection(Params):
    """``attack``: the budgets, the attacks that run, and one mapping of parameters per attack
    (``attack.<name>``, see the attacks table)."""

    components = ATTACKS

    epsilons: tuple[float, ...] = param([0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3], ListOf(BUDGET, nonempty=True),
                                        "L∞ budgets in input units")
    methods: tuple[str, ...] = param(["fgsm", "pgd", "pgd_restarts", "pgd_long", "apgd_ce", "apgd_dlr", "pgd_margin",
                                      "square", "noise"],
                                     ListOf(Choice(ATTACKS.names), nonempty=True, unique=True),
                                     "attacks to run; the per-sample worst case over them is always added")
    transfer_from: str | None = param("pgd", Optional(Choice(ATTACKS.names)),
                                      "attack whose examples each model passes to every other (null: none)")
    masking_epsilons: tuple[float, ...] = param([0.5, 1.0], ListOf(Number(0, 1, open="low")),
                                                "large budgets where PGD must drive every model to ~0 (masking check)")
    n_test: int | None = param(None, Optional(Integer(1)), "test points attacked per run (null: the whole test split)")
    eval_samples: int = param(100, Integer(1), "forward passes that classify each attacked point of a randomised model "
                                               "(finite shots, noise): its accuracy is their mean; a deterministic "
                                               "model is classified once")
    escalation: tuple[str, ...] = param(["pgd_escalated", "pgd_margin", "rays"], ListOf(Choice(ATTACKS.names), unique=True),
                                        "attacks run, on top, for every model and run a masking check flags "
                                        "(with transfer from every other model)")
    l2: L2Section | None = param(None, Optional(AnyMapping()),
                                 "the L2 threat model: {epsilons, methods, transfer_from, masking_epsilons} "
                                 "(null: L∞ only; see the L2 table below)")
    universal: UniversalSection | None = param(None, Optional(Section(UniversalSection)),
                                               "universal perturbations (null or left out: none; see the "
                                               "`attack.universal` table)")
    params: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def parse(cls, given, where, owner=None):
        if isinstance(given, Mapping) and given.get("universal") == {}:  # empty: no universal section
            given = {k: v for k, v in given.items() if k != "universal"}
        section = super().parse(given, where, owner)
        if section.l2 is None:
            return section
        l2 = L2Section.parse(section.l2, f"{where}.l2")
        # The L2 attacks' parameters (attack.<name>), with defaults where not given.
        extra = {name: ATTACKS[name].Params.parse((given or {}).get(name), f"{where}.{name}", owner=repr(name))
                 for name in (*l2.methods, "pgd_l2") if name not in section.params}
        return dataclasses.replace(section, l2=l2, params={**section.params, **extra})

    @classmethod
    def used_components(cls, values):
        # PGD also runs at the masking budgets and for the interpret stage's attacked images.
        return {*values["methods"], *values["escalation"], "pgd"}

    def check(self, where):
        check(self.transfer_from is None or self.transfer_from in self.methods,
              f"{where}.transfer_from must be null or one of {where}.methods {list(self.methods)}, "
              f"got {self.transfer_from!r}")
        for key, names in (("methods", self.methods), ("escalation", self.escalation)):
            for name in names:
                check("linf" in ATTACKS[name].norms,
                      f"{where}.{key}: {name} does not support the linf norm (it supports {list(ATTACKS[name].norms)}); "
                      f"list it under {where}.l2.methods")
        if self.universal is not None:
            # The masking check compares each universal perturbation with the per-input worst case at its ε.
            missing = [e for e in self.universal.epsilons if e not in self.epsilons]
            check(not missing, f"{where}.universal.epsilons {missing} are not in {where}.epsilons "
                               f"{list(self.epsilons)}: each universal budget must also be attacked per input")

    def to_dict(self) -> dict:
        data = super().to_dict()
        if self.l2 is None:  # a config without L2 records (and hashes) exactly as before
            data.pop("l2")
        if self.universal is None:  # ... and so does one without universal perturbations
            data.pop("universal")
        return data

    def threat_sections(self) -> dict:
        """Per norm the budgets and attacks as one ``ThreatSection``: ``linf`` always, ``l2``
        when configured."""
        sections = {"linf": ThreatSection("linf", self.epsilons, self.methods, self.transfer_from,
                                          self.masking_epsilons, self.escalation, self.eval_samples, self.params,
                                          "pgd")}
        if self.l2 is not None:
            sections["l2"] = ThreatSection("l2", self.l2.epsilons, self.l2.methods, self.l2.transfer_from,
                                           self.l2.masking_epsilons, (), self.eval_samples, self.params, "pgd_l2")
        return sections


@dataclasses.dataclass(frozen=True)
class ThreatSection:
    """The attack section of one threat model (what ``evaluate_models`` reads): ``norm``, its
    budgets, attacks, transfer attack, masking budgets, escalation attacks (L∞ only), the
    passes per point of a randomised model, every attack's parameters and ``large_attack``,
    the attack run at the masking budgets."""

    norm: str
    epsilons: tuple[float, ...]
    methods: tuple[str, ...]
    transfer_from: str | None
    masking_epsilons: tuple[float, ...]
    escalation: tuple[str, ...]
    eval_samples: int
    params: dict
    large_attack: str


@dataclasses.dataclass(frozen=True)
class CertifySection(Params):
    """``certify``: the certificates that bound robust accuracy from below at every budget of
    ``attack.epsilons`` (``certify.<name>``: a certificate's parameters, see the certificates table)."""

    components = CERTIFICATES

    methods: tuple[str, ...] = param(["interval", "crown", "lipschitz", "smoothing"],
                                     ListOf(Choice(CERTIFICATES.names), unique=True),
                                     "certificates to compute; a point counts as certified (L∞) when any L∞ one "
                                     "certifies it; smoothing certifies the smoothed classifier in L2")
    l2_radii: tuple[float, ...] = param([0.0, 0.125, 0.25, 0.375, 0.5], ListOf(Number(0)),
                                        "L2 radii at which the L2 certificates (smoothing) are reported")
    params: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def used_components(cls, values):
        return set(values["methods"])


@dataclasses.dataclass(frozen=True)
class InterpretSection(Params):
    """``interpret``: which images are explained after which attack, with which methods
    (``interpret.<name>``: a method's parameters, see the attribution methods table)."""

    components = ATTRIBUTIONS

    epsilon: float = param(0.1, BUDGET, "PGD budget of the attacked images (and of the decision-boundary figure)")
    n_images: int = param(16, Integer(1), "held-out images explained per run (stratified)")
    methods: tuple[str, ...] = param(["saliency", "integrated_gradients", "smoothgrad", "gradcam"],
                                     ListOf(Choice(ATTRIBUTIONS.names), unique=True), "attribution methods")
    top_k_fraction: float = param(0.1, Number(0, 1, open="low"), "share of inputs in the top-k overlap")
    panel_images: int = param(3, Integer(1), "images in the report's attribution panels")
    metric_samples: int = param(8, Integer(1), "perturbations per image for infidelity and sensitivity_max")
    infidelity_stdev: float = param(0.05, Number(0, open="low"), "noise standard deviation of infidelity")
    sensitivity_radius: float = param(0.02, Number(0, open="low"), "L∞ radius of sensitivity_max")
    params: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def used_components(cls, values):
        return set(values["methods"])

    def check(self, where):
        check(self.panel_images <= self.n_images, f"{where}.panel_images must not exceed {where}.n_images")


@dataclasses.dataclass(frozen=True)
class ExecutorSection(Params):
    """``executor``: where the units of work run (``helpers/stages/execution.py``,
    [clusters](cluster.md)). Nothing here enters a unit's key or a stage's provenance: the
    numbers do not depend on where they were computed."""

    kind: str = param("dask", Choice(("dask", "processes")),
                      "`dask`: tasks on a Dask cluster (`workers: 1`: in this process, serially); `processes`: "
                      "the earlier local process pool, kept for the executor benchmark")
    scheduler: str | None = param(None, Optional(Text()),
                                  "null: a local cluster of `workers` single-threaded processes, started per "
                                  "stage; `tcp://host:8786`: the running Dask scheduler to submit to")
    resources: Mapping | None = param(None, Optional(AnyMapping()), "worker resources each task of a config with "
                                      "a circuit asks for, e.g. `{GPU: 1}` (workers started with `--resources GPU=1`)")

    def check(self, where):
        check(self.scheduler is None or re.fullmatch(r"[a-z]+://\S+", self.scheduler) is not None,
              f"{where}.scheduler must be null or a scheduler address such as 'tcp://host:8786', got {self.scheduler!r}")
        check(self.kind == "dask" or self.scheduler is None,
              f"{where}.scheduler needs {where}.kind 'dask' (a process pool is local), got kind {self.kind!r}")
        for name, amount in (self.resources or {}).items():
            check(isinstance(name, str) and isinstance(amount, (int, float)) and not isinstance(amount, bool)
                  and amount > 0, f"{where}.resources must map resource names to amounts > 0, got {name!r}: {amount!r}")


# What a published number can be over its runs (``Reference.statistic``): pandas' aggregations.
REFERENCE_STATISTICS = ("mean", "median", "max", "min")


@dataclasses.dataclass(frozen=True)
class Reference(Params):
    """A published result to set beside ours."""

    source: str = param("", Text(), "where it was published")
    attack: str = param("pgd", Text(), "its attack (one of attack.methods)")
    epsilon: float = param(0.0, BUDGET, "its budget (one of attack.epsilons)")
    accuracy: Mapping = param(None, AnyMapping(), "model name -> published accuracy")
    statistic: str = param("mean", Choice(REFERENCE_STATISTICS),
                           "what the published number is over its runs: mean, median, max (the best run) or min "
                           "(the worst); ours is set beside it with the same statistic", quiet=True)


@dataclasses.dataclass(frozen=True)
class Primary(Params):
    """The one comparison an experiment is run to make, declared before its results exist:
    tested without correction for multiplicity; every other comparison is Holm-adjusted."""

    models: tuple[str, ...] = param([], ListOf(Text(), nonempty=True, unique=True), "the two models compared (a − b)")
    attack: str = param("worst_case", Text(), "`worst_case` or one of attack.methods")
    epsilon: float | None = param(None, Optional(BUDGET), "the budget compared (null: the area under the "
                                  "accuracy-vs-ε curve)")


@dataclasses.dataclass(frozen=True)
class ReportSection(Params):
    """``report``: the primary comparison, what counts as a run, and a published result to compare with."""

    primary: Primary | None = param(None, Optional(AnyMapping()),
                                    "the pre-declared comparison: {models: [a, b], attack, epsilon}")
    exclude_degenerate: bool = param(True, Boolean(), "leave degenerate runs (models.csv) out of every "
                                     "statistic and comparison; they are counted either way")
    reference: Reference | None = param(None, Optional(AnyMapping()),
                                        "a published result: {source, attack, epsilon, accuracy: {model: value}}")
    ceiling_seconds: float = param(60.0, Number(0, open="low"),
                                   "time limit of the exact search for the data's ceiling (analysis.ceiling) per run, "
                                   "norm and ε with more than two classes; past it the ceiling is the solver's upper bound")

    @classmethod
    def parse(cls, given, where, owner=None):
        section = super().parse(given, where)
        if section.primary is not None:
            section = dataclasses.replace(section, primary=Primary.parse(section.primary, f"{where}.primary"))
        ref = section.reference
        if ref is None:
            return section
        keys = [f.name for f in Reference.fields() if not f.metadata["quiet"]]
        optional = [f.name for f in Reference.fields() if f.metadata["quiet"]]
        check(isinstance(ref, Mapping) and set(keys) <= set(ref) <= set(keys + optional),
              f"{where}.reference must be null or a mapping with the keys {keys} (and optionally {optional}), "
              f"got {ref!r}")
        return dataclasses.replace(section, reference=Reference.parse(ref, f"{where}.reference"))

    def to_dict(self) -> dict:
        return {"primary": None if self.primary is None else self.primary.to_dict(),
                "exclude_degenerate": self.exclude_degenerate,
                "reference": None if self.reference is None else self.reference.to_dict(),
                "ceiling_seconds": self.ceiling_seconds}


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
    if attack.l2 is not None:
        diameter = float(np.prod(dataset.input_shape)) ** 0.5
        for key in ("epsilons", "masking_epsilons"):
            for value in getattr(attack.l2, key):
                check(value <= diameter + 1e-9,
                      f"attack.l2.{key}: {value:g} exceeds the L2 diameter of the input box [0, 1]^"
                      f"{int(np.prod(dataset.input_shape))} ({diameter:.4g}): no budget can be larger")
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


DEFAULT_MODELS = {"mlp": {"type": "mlp"}, "cnn": {"type": "cnn"}, "vqc": {"type": "vqc"}}


def parse_models(given, dataset: DatasetSection, training: TrainingSection) -> dict[str, ModelSpec]:
    """``models``: name -> ``ModelSpec``, each checked by its entry against the data (input
    shape, classes, and the memory a circuit's simulation needs); ``match: <name>`` specs
    resolved to a parameter count first (``models.match_capacity``)."""
    from .defences.base import parse_defence
    from .models import HOW_TRAINED, DataShape, match_capacity

    check(isinstance(given, Mapping) and len(given) > 0, "models must be a non-empty mapping of name -> {type: ..., ...}")
    for name, spec in given.items():
        check(isinstance(spec, Mapping) and "type" in spec, f"models.{name} must be a mapping with a 'type' key")
    shape = DataShape(dataset.input_shape, len(dataset.classes), max(training.batch_size, EVALUATION_BATCH))

    def parse(name, spec):
        entry = MODELS.lookup(spec["type"], f"models.{name}.type")
        params = entry.Params.parse({k: v for k, v in spec.items() if k != "type"}, f"models.{name}",
                                    owner=f"type {spec['type']!r}")
        entry.check(params, shape, f"models.{name}")
        defence = None
        if aside[name].get("defence") is not None:
            defence = parse_defence(aside[name]["defence"], f"models.{name}.defence")
            DEFENCES[defence[0]].check_model(spec["type"], params, f"models.{name}.defence")
        own = aside[name].get("training")
        if own is not None:
            check(isinstance(own, Mapping), f"models.{name}.training must be a mapping of training keys, got {own!r}")
            TrainingSection.parse({**training.to_dict(), **own}, f"models.{name}.training")
        checkpoint = aside[name].get("checkpoint")
        if checkpoint is not None:
            check(isinstance(checkpoint, str), f"models.{name}.checkpoint must be a path under the data folder")
            from .store.checkpoints import check_state_dict
            check_state_dict(checkpoint, spec["type"], params, shape, f"models.{name}.checkpoint")
        return ModelSpec(spec["type"], params, defence, dict(own) if own else None, checkpoint)

    # A spec's `defence`, `training` and `checkpoint` say how it is trained (or that it is not),
    # not what the model is: set aside before the model's Params (and a capacity match, which
    # sizes from the model alone) read the spec.
    aside = {name: {k: spec[k] for k in HOW_TRAINED if k in spec} for name, spec in given.items()}
    given = {name: {k: v for k, v in spec.items() if k not in HOW_TRAINED} for name, spec in given.items()}
    # Capacity-matched models (`match: <name>`) are sized from models checked before them.
    specs = {name: parse(name, spec) for name, spec in given.items() if "match" not in spec}
    resolved = match_capacity(given, shape.input_shape, shape.n_classes)
    specs.update({name: parse(name, resolved[name]) for name, spec in given.items() if "match" in spec})
    return {name: specs[name] for name in given}


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


def resolve_device(cfg: Config):
    """The torch device the config asks for (``auto``: CUDA when present, else CPU)."""
    import torch

    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device is 'cuda' but no CUDA GPU is available; use 'auto' or 'cpu'")
    return torch.device(cfg.device)


def resolved_yaml(cfg: Config) -> str:
    """The complete config as YAML, as recorded next to the results."""
    return f"# experiment: {cfg.experiment}\n" + yaml.safe_dump(cfg.to_dict(), sort_keys=False, allow_unicode=True)


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
    print(f"config {argv[0]} is valid: experiment {cfg.experiment!r}, results in {cfg.results_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
