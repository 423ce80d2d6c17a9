"""Robustness evaluation of a set of models on the same test points under one threat model.

For one Monte Carlo run: every configured attack at every epsilon against every model, the
per-sample worst case over attacks, the transfer matrix (adversarial examples crafted on
each model, evaluated on every model) and PGD at large budgets for the masking checks.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .attacks import build_attack, evaluate_attack, predict

WORST_CASE = "worst_case"
# The columns of each table (so that an empty table still has them).
COLUMNS = {
    "robustness": ["model", "attack", "epsilon", "accuracy", "n", "n_correct", "linf"],
    "transfer": ["source", "target", "epsilon", "accuracy", "n"],
    "large_epsilon": ["model", "epsilon", "accuracy", "n"],
    "by_class": ["model", "attack", "epsilon", "label", "accuracy", "n"],
}


def evaluate_models(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, attack_cfg: dict,
                    seed: int) -> dict[str, list[dict]]:
    """Evaluate ``models`` on images ``x`` (N, 1, H, W) in [0, 1] with labels ``y`` (N,).

    Returns lists of records:

    - ``robustness``: model, attack, epsilon, accuracy, n, n_correct, linf — one per
      configured attack and epsilon, plus ``attack == "worst_case"``: a sample counts as
      robust only if it survives every attack (mean over x of min over attacks);
    - ``transfer``: source, target, epsilon, accuracy, n — examples crafted by
      ``attack_cfg["transfer_from"]`` on ``source`` and classified by ``target`` (the
      diagonal is the white-box attack);
    - ``large_epsilon``: model, epsilon, accuracy, n — PGD at ``masking_epsilons``;
    - ``by_class``: model, attack, epsilon, label, accuracy, n — the robust accuracy of each
      class (worst case included): a model that never flips one class scores that class's
      share of the test set without being robust.
    """
    at = attack_cfg
    robustness, transfer, large, by_class = [], [], [], []
    labels = y.cpu().numpy()

    def per_class(name, attack_name, epsilon, correct):
        for label in np.unique(labels):
            hits = correct[labels == label]
            by_class.append({"model": name, "attack": attack_name, "epsilon": epsilon, "label": int(label),
                             "accuracy": float(hits.mean()), "n": len(hits)})

    crafted: dict[tuple[str, float], torch.Tensor] = {}
    for name, model in models.items():
        correct_by_eps: dict[float, list[np.ndarray]] = {}
        linf_by_eps: dict[float, float] = {}
        for attack_name in at["methods"]:
            attack = build_attack(attack_name, at, seed=seed)
            for epsilon in map(float, at["epsilons"]):
                result = evaluate_attack(model, attack, x, y, epsilon)
                robustness.append({"model": name, "attack": attack_name, "epsilon": epsilon,
                                   "accuracy": result["accuracy"], "n": result["n"],
                                   "n_correct": result["n_correct"], "linf": result["linf"]})
                correct_by_eps.setdefault(epsilon, []).append(result["correct"])
                per_class(name, attack_name, epsilon, result["correct"])
                linf_by_eps[epsilon] = max(linf_by_eps.get(epsilon, 0.0), result["linf"])
                if attack_name == at["transfer_from"]:
                    crafted[(name, epsilon)] = result["x_adv"]
        for epsilon, corrects in correct_by_eps.items():
            survived = np.logical_and.reduce(corrects)
            robustness.append({"model": name, "attack": WORST_CASE, "epsilon": epsilon,
                               "accuracy": float(survived.mean()), "n": len(survived),
                               "n_correct": int(survived.sum()), "linf": linf_by_eps[epsilon]})
            per_class(name, WORST_CASE, epsilon, survived)
        pgd = build_attack("pgd", at, seed=seed)
        for epsilon in map(float, at["masking_epsilons"]):
            result = evaluate_attack(model, pgd, x, y, epsilon)
            large.append({"model": name, "epsilon": epsilon, "accuracy": result["accuracy"], "n": result["n"]})
    for (source, epsilon), x_adv in crafted.items():
        for target, model in models.items():
            hits = (predict(model, x_adv) == y).cpu().numpy()
            transfer.append({"source": source, "target": target, "epsilon": epsilon,
                             "accuracy": float(hits.mean()), "n": len(hits)})
    return {"robustness": robustness, "transfer": transfer, "large_epsilon": large, "by_class": by_class}
