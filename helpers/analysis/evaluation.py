"""Robustness evaluation of a set of models on the same test points under one threat model.

For one Monte Carlo run: every configured attack at every epsilon against every model, the
per-sample worst case over attacks, the transfer matrix (adversarial examples crafted on
each model, evaluated on every model) and PGD at large budgets for the masking checks.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..attacks import build_attack, evaluate_attack, predict
from ..registry import ATTACKS, CERTIFICATES

WORST_CASE = "worst_case"
LARGE_EPSILON_ATTACK = "pgd"  # the attack run at the masking budgets
# The columns of each table (so that an empty table still has them).
COLUMNS = {
    "robustness": ["model", "attack", "epsilon", "accuracy", "n", "n_correct", "linf"],
    "transfer": ["source", "target", "epsilon", "accuracy", "n"],
    "large_epsilon": ["model", "epsilon", "accuracy", "n"],
    "by_class": ["model", "attack", "epsilon", "label", "accuracy", "n"],
    "convergence": ["model", "epsilon", "accuracy", "n"],
    "certified": ["model", "certificate", "epsilon", "accuracy", "n", "applicable", "violations"],
}
BEST = "best"  # the certificate row of a point certified by any certificate


def attack_outcome(model: nn.Module, attack, x: torch.Tensor, y: torch.Tensor, epsilon: float,
                   keep_adversarial: bool = False) -> dict[str, np.ndarray]:
    """One unit: ``attack`` on ``x`` (N, ...) in [0, 1] with labels ``y`` at one ``epsilon``.

    Returns numpy arrays: ``correct`` (N,) bool per sample, ``linf`` () the largest achieved
    ||x_adv - x||_inf and, with ``keep_adversarial``, ``x_adv`` (N, ...).
    """
    result = evaluate_attack(model, attack, x, y, epsilon)
    unit = {"correct": result["correct"], "linf": np.asarray(result["linf"])}
    if keep_adversarial:
        unit["x_adv"] = result["x_adv"].cpu().numpy()
    return unit


def evaluate_models(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, section, seed: int,
                    units=None, worst: dict | None = None) -> dict[str, list[dict]]:
    """Evaluate ``models`` on inputs ``x`` (N, ...) in [0, 1] with labels ``y`` (N,) under the
    attacks of ``section`` (a config's ``config.AttackSection``), each built from ``seed``.

    ``units`` (optional) finds finished units: ``units(model, attack, epsilon, compute, needs)``
    returns the unit's arrays, reused if stored or else ``compute()``d and stored (the attack
    stage's resume); without it every unit is computed. ``worst`` (optional) receives, per
    (model, epsilon), the per-sample worst case (True: survived every attack). Returns lists of
    records:

    - ``robustness``: model, attack, epsilon, accuracy, n, n_correct, linf — one per
      configured attack and epsilon, plus ``attack == "worst_case"``: a sample counts as
      robust only if it survives every attack (mean over x of min over attacks);
    - ``transfer``: source, target, epsilon, accuracy, n — examples crafted by
      ``section.transfer_from`` on ``source`` and classified by ``target`` (the diagonal is
      the white-box attack);
    - ``large_epsilon``: model, epsilon, accuracy, n — PGD at ``masking_epsilons``;
    - ``by_class``: model, attack, epsilon, label, accuracy, n — the robust accuracy of each
      class (worst case included): a model that never flips one class scores that class's
      share of the test set without being robust;
    - ``convergence``: model, epsilon, accuracy, n — the per-sample worst case over the
      attacks that are not a stronger run of another (``Attack.refines``): if the stronger
      runs lower it much, the reported worst case may not have converged either.
    """
    robustness, transfer, large, by_class, convergence = [], [], [], [], []
    base = [a for a in section.methods if ATTACKS[a].refines not in section.methods]
    labels = y.cpu().numpy()
    epsilons = [float(e) for e in section.epsilons]

    def outcome(name, model, attack_name, epsilon, keep):
        attack = build_attack(attack_name, section, seed=seed)
        compute = lambda: attack_outcome(model, attack, x, y, epsilon, keep)  # noqa: E731
        if units is None:
            return compute()
        return units(name, attack_name, epsilon, compute, ("x_adv",) if keep else ())

    def record(name, attack_name, epsilon, correct, linf):
        robustness.append({"model": name, "attack": attack_name, "epsilon": epsilon,
                           "accuracy": float(correct.mean()), "n": len(correct),
                           "n_correct": int(correct.sum()), "linf": linf})
        for label in np.unique(labels):
            hits = correct[labels == label]
            by_class.append({"model": name, "attack": attack_name, "epsilon": epsilon, "label": int(label),
                             "accuracy": float(hits.mean()), "n": len(hits)})

    crafted: dict[tuple[str, float], np.ndarray] = {}
    for name, model in models.items():
        finished = {}
        for attack_name in section.methods:
            keep = attack_name == section.transfer_from
            finished[attack_name] = [outcome(name, model, attack_name, e, keep) for e in epsilons]
            for epsilon, unit in zip(epsilons, finished[attack_name]):
                record(name, attack_name, epsilon, unit["correct"], float(unit["linf"]))
                if keep:
                    crafted[(name, epsilon)] = unit["x_adv"]
        for i, epsilon in enumerate(epsilons):
            survived = np.logical_and.reduce([finished[a][i]["correct"] for a in section.methods])
            if worst is not None:
                worst[(name, epsilon)] = survived
            record(name, WORST_CASE, epsilon, survived, max(float(finished[a][i]["linf"]) for a in section.methods))
            survived_base = np.logical_and.reduce([finished[a][i]["correct"] for a in base])
            convergence.append({"model": name, "epsilon": epsilon, "accuracy": float(survived_base.mean()),
                                "n": len(survived_base)})
        for epsilon in map(float, section.masking_epsilons):
            correct = outcome(name, model, LARGE_EPSILON_ATTACK, epsilon, False)["correct"]
            large.append({"model": name, "epsilon": epsilon, "accuracy": float(correct.mean()), "n": len(correct)})
    for (source, epsilon), x_adv in crafted.items():
        for target, model in models.items():
            hits = (predict(model, torch.as_tensor(x_adv, device=x.device)) == y).cpu().numpy()
            transfer.append({"source": source, "target": target, "epsilon": epsilon,
                             "accuracy": float(hits.mean()), "n": len(hits)})
    return {"robustness": robustness, "transfer": transfer, "large_epsilon": large, "by_class": by_class,
            "convergence": convergence}


def certify_models(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, epsilons, section, seed: int,
                   worst: dict, units=None) -> list[dict]:
    """Certified accuracy of ``models`` on inputs ``x`` with labels ``y`` at every epsilon under
    the certificates of ``section`` (a config's ``config.CertifySection``).

    ``units(model, certificate, epsilon, compute)`` finds finished units (see
    ``evaluate_models``). Returns records model, certificate, epsilon, accuracy (the share of
    points certified: a certified point is correctly classified everywhere in its ball), n,
    applicable, violations: one per certificate, plus ``certificate == "best"`` (a point
    counts when any certificate certifies it), whose ``violations`` is the number of points
    certified yet fooled by an attack (``worst``: per-sample worst case per (model,
    epsilon)); a sound certificate never has any.
    """
    records = []
    for name, model in models.items():
        for epsilon in map(float, epsilons):
            certified = []
            for certificate in section.methods:
                entry = CERTIFICATES[certificate](section.params[certificate], seed=seed)
                applies, _ = entry.applies(model)
                if applies:
                    compute = lambda: {"certified": entry.certify(model, x, y, epsilon)}  # noqa: E731
                    done = compute() if units is None else units(name, certificate, epsilon, compute)
                    certified.append(done["certified"].astype(bool))
                records.append({"model": name, "certificate": certificate, "epsilon": epsilon,
                                "accuracy": float(certified[-1].mean()) if applies else np.nan, "n": len(x),
                                "applicable": applies, "violations": np.nan})
            best = np.logical_or.reduce(certified) if certified else np.zeros(len(x), dtype=bool)
            records.append({"model": name, "certificate": BEST, "epsilon": epsilon, "accuracy": float(best.mean()),
                            "n": len(x), "applicable": bool(certified), "violations": int((best & ~worst[(name, epsilon)]).sum())})
    return records
