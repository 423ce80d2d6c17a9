"""Robustness evaluation of a set of models on the same test points under one threat model.

For one Monte Carlo run: every configured attack at every epsilon against every model, the
per-sample worst case over attacks, the transfer matrix (adversarial examples crafted on
each model, evaluated on every model) and PGD at large budgets for the masking checks.

A randomised model (finite shots, noise: ``attacks.is_stochastic``) is classified by
``attack.eval_samples`` passes per point, so its per-sample correctness is a share in [0, 1]
(the probability of a correct answer) rather than a bool; the worst case over attacks is then
the per-sample minimum of those shares. A deterministic model's arrays stay bool, and every
number is what it was.
"""
from __future__ import annotations


import numpy as np
import torch
from torch import nn

from ..attacks import build_attack, evaluate_attack
from ..attacks.base import expected_correct, reseed
from ..registry import ATTACKS

WORST_CASE = "worst_case"
LARGE_EPSILON_ATTACK = "pgd"  # the attack run at the masking budgets
# The columns of each table (so that an empty table still has them). Every threat model writes
# to the same tables, its rows marked by ``norm`` (``distance``: the largest achieved distance in
# that norm); ``escalation`` has rows where a threat model escalates, ``minimum_norm`` where a
# minimum-norm attack (``cw_l2``) gives each point's minimal distance.
COLUMNS = {
    "robustness": ["model", "attack", "norm", "epsilon", "accuracy", "n", "n_correct", "distance"],
    "transfer": ["source", "target", "norm", "epsilon", "accuracy", "n"],
    "large_epsilon": ["model", "norm", "epsilon", "accuracy", "n"],
    "by_class": ["model", "attack", "norm", "epsilon", "label", "accuracy", "n"],
    "convergence": ["model", "norm", "epsilon", "accuracy", "n"],
    "certified": ["model", "certificate", "norm", "epsilon", "accuracy", "n", "applicable", "violations"],
    "attack_traces": ["model", "attack", "norm", "epsilon", "iteration", "accuracy"],
    "escalation": ["model", "norm", "epsilon", "kind", "before", "after", "deciding", "n"],
    "minimum_norm": ["model", "attack", "norm", "index", "distance"],
    "outcomes": ["table", "model", "attack", "norm", "epsilon", "n", "correct"],
}
# The tables one threat model's pass writes (``certified`` is the certificates').
THREAT_TABLES = tuple(key for key in COLUMNS if key != "certified")


TRACE_POINTS = 40  # points of an attack's convergence curve kept in the table


def encode(correct) -> str:
    """One per-point outcome as text for the ``outcomes`` table: the bits (True: classified
    correctly) packed and written in hex. A randomised model's share of correct passes counts
    as correct when it is at least one half."""
    correct = np.asarray(correct)
    return np.packbits(correct if correct.dtype == bool else correct >= 0.5).tobytes().hex()


def decode(text: str, n: int) -> np.ndarray:
    """The (n,) bool outcome ``encode`` wrote."""
    return np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))[:n].astype(bool)


def survived(correct) -> np.ndarray:
    """Per-sample survival of every attack in ``correct`` (a list of (N,) arrays): their
    logical and for bool arrays (deterministic models, exactly as before), the per-sample
    minimum of the probabilities of a correct answer for a randomised model."""
    return np.minimum.reduce([np.asarray(c) for c in correct])


def attack_outcome(model: nn.Module, attack, x: torch.Tensor, y: torch.Tensor, epsilon: float,
                   keep_adversarial: bool = False, eval_samples: int = 1) -> dict[str, np.ndarray]:
    """One unit: ``attack`` on ``x`` (N, ...) in [0, 1] with labels ``y`` at one ``epsilon``.

    Returns numpy arrays: ``correct`` (N,) bool per sample (for a randomised model: the share
    of ``eval_samples`` passes that classify it correctly, float), ``linf`` () the largest
    achieved ||x_adv - x||_inf, ``sampling_se`` () the standard error the finite passes add to
    the accuracy (zero for a deterministic model) and, with ``keep_adversarial``, ``x_adv`` (N, ...).
    An attack in another norm than L∞ adds the largest achieved distance in its norm (``l2``),
    and a minimum-norm attack (``cw_l2``) each point's minimal distance (``distances``, (N,)).
    """
    result = evaluate_attack(model, attack, x, y, epsilon, eval_samples=eval_samples)
    unit = {"correct": result["correct"], "linf": np.asarray(result["linf"]),
            "sampling_se": np.asarray(result["sampling_se"])}
    for norm in getattr(attack, "norms", ("linf",)):
        if norm != "linf":
            unit[norm] = np.asarray(result[norm])
    if result["distances"] is not None:
        unit["distances"] = result["distances"]
    if result["trace"] is not None:
        unit["trace"] = result["trace"]
    if keep_adversarial:
        unit["x_adv"] = result["x_adv"].cpu().numpy()
    return unit


def evaluate_models(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, section, seed: int,
                    units=None, worst: dict | None = None, escalate=()) -> dict[str, list[dict]]:
    """Evaluate ``models`` on inputs ``x`` (N, ...) in [0, 1] with labels ``y`` (N,) under the
    attacks of ``section`` (a config's ``config.AttackSection``), each built from ``seed``.

    ``units`` (optional) finds finished units: ``units(model, attack, epsilon, compute, needs)``
    returns the unit's arrays, reused if stored or else ``compute()``d and stored (the attack
    stage's resume); without it every unit is computed. ``escalate``: the models a masking
    check flagged (in this run): they are also attacked by ``section.escalation`` at every
    budget (those not among ``section.methods`` already) and masking budget, and their worst
    case also counts every other model's transfer examples. ``worst`` (optional) receives, per (model, epsilon), the per-sample worst case
    (True: survived every attack). Returns lists of records:

    Every record also has ``norm``, the section's threat model (``linf`` for an ``AttackSection``).

    - ``robustness``: model, attack, epsilon, accuracy, n, n_correct, distance (the largest
      achieved distance in the threat model's norm) — one per
      configured (and escalation) attack and epsilon, plus ``attack == "worst_case"``: a sample
      counts as robust only if it survives every attack (mean over x of min over attacks);
    - ``transfer``: source, target, epsilon, accuracy, n — examples crafted by
      ``section.transfer_from`` on ``source`` and classified by ``target`` (the diagonal is
      the white-box attack);
    - ``large_epsilon``: model, epsilon, accuracy, n — PGD at ``masking_epsilons``;
    - ``by_class``: model, attack, epsilon, label, accuracy, n — the robust accuracy of each
      class (worst case included): a model that never flips one class scores that class's
      share of the test set without being robust;
    - ``convergence``: model, epsilon, accuracy, n — the per-sample worst case over the
      configured attacks that are not a stronger run of another (``Attack.refines``): if the
      stronger runs lower it much, the reported worst case may not have converged either;
    - ``escalation``: model, epsilon, kind, before, after, deciding, n — for escalated models,
      the worst case (``kind`` "masking": at a masking budget, PGD) before and after escalation, and the attack
      (or ``transfer:<source>``) that fooled the most points alone;
    - ``attack_traces``: model, attack, epsilon, iteration, accuracy — the convergence curves
      of the attacks that record one;
    - ``outcomes``: table, model, attack, epsilon, n, correct — the per-point outcome behind
      each row of ``robustness``, ``transfer`` (model: the target, attack:
      ``transfer:<source>``) and ``large_epsilon`` (``encode``): what the masking checks'
      paired tests count;
    - ``minimum_norm``: model, attack, index, distance — each point's minimal distance under a
      minimum-norm attack (``cw_l2``), at the largest budget.
    """
    run = _Pass(models, x, y, section, seed, units)
    for name in models:
        run.first(name)
    run.transfer()
    for name in models:
        run.worst_case(name, name in escalate, worst)
    return run.tables


class _Pass:
    """One call of ``evaluate_models``: its units, the records of every table and the per-model
    units it has finished (see ``evaluate_models``)."""

    def __init__(self, models, x, y, section, seed, units):
        self.models, self.x, self.y, self.section, self.seed, self.units = models, x, y, section, seed, units
        self.labels = y.cpu().numpy()
        # The threat model: L∞ for an ``AttackSection``; a ``config.ThreatSection`` names its norm
        # (every row's ``norm``, the norm of its ``distance``) and its masking-budget attack.
        self.norm = getattr(section, "norm", "linf")
        self.large_attack = getattr(section, "large_attack", LARGE_EPSILON_ATTACK)
        self.epsilons = [float(e) for e in section.epsilons]
        # The worst case takes the attacks that give one input per point (not a mean over noise draws).
        self.counted = [a for a in section.methods if build_attack(a, section).per_point]
        self.base = [a for a in self.counted if ATTACKS[a].refines not in section.methods]
        self.tables = {key: [] for key in THREAT_TABLES}
        self.finished, self.crafted, self.hits = {}, {}, {}

    def outcome(self, name, attack_name, epsilon, keep=False) -> dict[str, np.ndarray]:
        """The unit of ``attack_name`` on model ``name`` at ``epsilon`` (reused where stored)."""
        attack = build_attack(attack_name, self.section, seed=self.seed)
        model, section = self.models[name], self.section
        compute = lambda: attack_outcome(model, attack, self.x, self.y, epsilon, keep, section.eval_samples)  # noqa: E731
        if self.units is None:
            return compute()
        return self.units(name, attack_name, epsilon, compute, ("x_adv",) if keep else ())

    def add(self, table, record) -> None:
        """A row of ``table``, marked with the pass's threat model."""
        self.tables[table].append({**record, "norm": self.norm})

    def outcome_row(self, table, name, attack_name, epsilon, correct) -> None:
        self.add("outcomes", {"table": table, "model": name, "attack": attack_name, "epsilon": epsilon,
                              "n": len(correct), "correct": encode(correct)})

    def record(self, name, attack_name, epsilon, correct, distance) -> None:
        """A robustness row, its per-class rows and its per-point outcome."""
        self.outcome_row("robustness", name, attack_name, epsilon, correct)
        self.add("robustness", {"model": name, "attack": attack_name, "epsilon": epsilon,
                                "accuracy": float(correct.mean()), "n": len(correct),
                                "n_correct": int(correct.sum()) if correct.dtype == bool else float(correct.sum()),
                                "distance": distance})
        for label in np.unique(self.labels):
            hits = correct[self.labels == label]
            self.add("by_class", {"model": name, "attack": attack_name, "epsilon": epsilon,
                                  "label": int(label), "accuracy": float(hits.mean()), "n": len(hits)})

    def attack_rows(self, name, attack_names, keep_for=None) -> dict[str, list[dict]]:
        """Every attack of ``attack_names`` at every budget on model ``name``: its rows, its
        minimal distances (a minimum-norm attack, at the largest budget) and its trace."""
        units_of = {}
        for attack_name in attack_names:
            units_of[attack_name] = [self.outcome(name, attack_name, e, attack_name == keep_for) for e in self.epsilons]
            for epsilon, unit in zip(self.epsilons, units_of[attack_name]):
                self.record(name, attack_name, epsilon, unit["correct"], float(unit[self.norm]))
                if "distances" in unit and epsilon == max(self.epsilons):
                    for i, d in enumerate(unit["distances"]):
                        self.add("minimum_norm", {"model": name, "attack": attack_name, "index": i, "distance": float(d)})
                if "trace" in unit:
                    trace = unit["trace"]
                    for i in np.unique(np.linspace(0, len(trace) - 1, TRACE_POINTS).round().astype(int)):
                        self.add("attack_traces", {"model": name, "attack": attack_name, "epsilon": epsilon,
                                                   "iteration": int(i), "accuracy": float(trace[i])})
        return units_of

    def first(self, name) -> None:
        """The configured attacks on ``name``, its convergence rows and PGD at the masking budgets."""
        section = self.section
        self.finished[name] = self.attack_rows(name, section.methods, keep_for=section.transfer_from)
        if section.transfer_from in section.methods:
            for epsilon, unit in zip(self.epsilons, self.finished[name][section.transfer_from]):
                self.crafted[(name, epsilon)] = unit["x_adv"]
        for i, epsilon in enumerate(self.epsilons):
            survived_base = survived([self.finished[name][a][i]["correct"] for a in self.base])
            self.add("convergence", {"model": name, "epsilon": epsilon,
                                     "accuracy": float(survived_base.mean()), "n": len(survived_base)})
        for epsilon in map(float, section.masking_epsilons):
            correct = self.outcome(name, self.large_attack, epsilon)["correct"]
            self.add("large_epsilon", {"model": name, "epsilon": epsilon, "accuracy": float(correct.mean()),
                                       "n": len(correct)})
            self.outcome_row("large_epsilon", name, self.large_attack, epsilon, correct)

    def transfer(self) -> None:
        """Every model on every source's adversarial examples."""
        for (source, epsilon), x_adv in self.crafted.items():
            for target, model in self.models.items():
                reseed(model, self.seed, 2)  # a randomised target's passes (nothing for a deterministic one)
                hits = expected_correct(model, torch.as_tensor(x_adv, device=self.x.device), self.y,
                                        self.section.eval_samples)
                self.hits[(source, target, epsilon)] = hits
                self.add("transfer", {"source": source, "target": target, "epsilon": epsilon,
                                      "accuracy": float(hits.mean()), "n": len(hits)})
                self.outcome_row("transfer", target, f"transfer:{source}", epsilon, hits)

    def escalated(self, name) -> dict[str, list[np.ndarray]]:
        """Per escalation attack (and ``transfer:<source>``) the per-sample correctness at each
        budget on the flagged model ``name``."""
        stronger = [a for a in self.section.escalation if a not in self.section.methods]  # the others ran already
        extra = {a: [u["correct"] for u in units_of] for a, units_of in self.attack_rows(name, stronger).items()}
        extra.update({f"transfer:{source}": [self.hits[(source, name, e)] for e in self.epsilons]
                      for source in self.models if source != name and (source, name, self.epsilons[0]) in self.hits})
        return extra

    def worst_case(self, name, escalate: bool, worst: dict | None) -> None:
        """The per-sample worst case of ``name`` at each budget (with escalation when flagged)
        and, when flagged, the escalation rows at the budgets and at the masking budgets."""
        extra = self.escalated(name) if escalate else {}
        for i, epsilon in enumerate(self.epsilons):
            units = self.finished[name]
            before = survived([units[a][i]["correct"] for a in self.counted])
            after = survived([before, *(correct[i] for correct in extra.values())])
            if worst is not None:
                worst[(name, epsilon)] = after
            self.record(name, WORST_CASE, epsilon, after, max(float(units[a][i][self.norm]) for a in self.counted))
            if extra:
                deciding = min(extra, key=lambda a: extra[a][i].mean())
                self.add("escalation", {"model": name, "epsilon": epsilon, "kind": "budget",
                                        "before": float(before.mean()), "after": float(after.mean()),
                                        "deciding": deciding, "n": len(after)})
        if not escalate:
            return
        for epsilon in map(float, self.section.masking_epsilons):
            pgd = self.outcome(name, self.large_attack, epsilon)["correct"]
            others = {a: self.outcome(name, a, epsilon)["correct"] for a in self.section.escalation}
            after = survived([pgd, *others.values()])
            self.add("escalation", {"model": name, "epsilon": epsilon, "kind": "masking",
                                    "before": float(pgd.mean()), "after": float(after.mean()),
                                    "deciding": min(others, key=lambda a: others[a].mean()), "n": len(pgd)})
