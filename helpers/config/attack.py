"""The ``attack`` section: the L∞ attacks and budgets, the L2 threat model (``attack.l2``) and universal perturbations (``attack.universal``)."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from ..params import AnyMapping, Boolean, Choice, Integer, ListOf, Number, Optional, Params, Section, check, param
from ..registry import ATTACKS


BUDGET = Number(0, 1, note="(the input range)")


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
