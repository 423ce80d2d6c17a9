"""The ``attack`` section: the L∞ attacks and budgets, every other threat model's block
(``attack.<norm>``: ``attack.l2``, parsed by the threat model's ``Budgets``) and universal
perturbations (``attack.universal``)."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from ..params import Boolean, Choice, Integer, ListOf, Number, Optional, Params, Section, check, param
from ..registry import ATTACKS, THREAT_MODELS
from ..threats import PRIMARY


BUDGET = Number(0, 1, note="(the input range)")


def threat_norms() -> list[str]:
    """The threat models a config can add beside L∞, each as a block ``attack.<norm>``."""
    return [e.name for e in THREAT_MODELS.entries() if e.Budgets is not None]


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
    universal: UniversalSection | None = param(None, Optional(Section(UniversalSection)),
                                               "universal perturbations (null or left out: none; see the "
                                               "`attack.universal` table)")
    params: dict = dataclasses.field(default_factory=dict)
    # The other threat models' blocks (``attack.<norm>``, by norm; null or absent: not evaluated).
    threats: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def parse(cls, given, where, owner=None):
        blocks = {}
        if isinstance(given, Mapping):  # empty universal: none; a threat model's block: its Budgets
            given = {k: v for k, v in given.items() if not (k == "universal" and v == {})}
            blocks = {norm: given.pop(norm) for norm in threat_norms() if norm in given}
        section = super().parse(given, where, owner)
        threats = {norm: THREAT_MODELS[norm].Budgets.parse(block, f"{where}.{norm}")
                   for norm, block in blocks.items() if block is not None}
        # Their attacks' parameters (attack.<name>), with defaults where not given.
        extra = {name: ATTACKS[name].Params.parse((given or {}).get(name), f"{where}.{name}", owner=repr(name))
                 for norm, block in threats.items() for name in (*block.methods, THREAT_MODELS[norm].large_attack)
                 if name not in section.params}
        return dataclasses.replace(section, threats=threats, params={**section.params, **extra})

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
                      f"list it under {where}.<norm>.methods for a norm it supports")
        if self.universal is not None:
            # The masking check compares each universal perturbation with the per-input worst case at its ε.
            missing = [e for e in self.universal.epsilons if e not in self.epsilons]
            check(not missing, f"{where}.universal.epsilons {missing} are not in {where}.epsilons "
                               f"{list(self.epsilons)}: each universal budget must also be attacked per input")

    def to_dict(self) -> dict:
        data = super().to_dict()
        if self.universal is None:  # a config without universal perturbations records (and hashes) as before
            data.pop("universal")
        # Each other threat model's block after the L∞ keys (a config without one records none).
        at = list(data).index("escalation") + 1
        items = list(data.items())
        return dict([*items[:at], *((norm, block.to_dict()) for norm, block in self.threats.items()), *items[at:]])

    def threat_sections(self) -> dict:
        """Per norm the budgets and attacks as one ``ThreatSection``: the primary threat model's
        (L∞: this section's own) always, then each configured block's."""
        sections = {PRIMARY: ThreatSection(PRIMARY, self.epsilons, self.methods, self.transfer_from,
                                           self.masking_epsilons, self.escalation, self.eval_samples, self.params,
                                           "pgd")}
        for norm, block in self.threats.items():
            sections[norm] = ThreatSection(norm, block.epsilons, block.methods, block.transfer_from,
                                           block.masking_epsilons, (), self.eval_samples, self.params,
                                           THREAT_MODELS[norm].large_attack)
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
