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


LARGE_EPSILON = "pgd_large_epsilon"  # the cell of PGD at the masking budgets


def attack_cell(model: nn.Module, attack_name: str, x: torch.Tensor, y: torch.Tensor, epsilons: list[float],
                attack_cfg: dict, seed: int, keep_adversarial: bool = False) -> dict[str, np.ndarray]:
    """One (model, attack) cell: attack ``x`` (N, ...) in [0, 1] with labels ``y`` at every epsilon.

    Returns numpy arrays: ``epsilon`` (E,), ``correct`` (E, N) bool per sample, ``linf`` (E,)
    largest achieved ||x_adv - x||_inf and, with ``keep_adversarial``, ``x_adv`` (E, N, ...).
    The attack is built from ``seed`` alone, so a cell computed again gives the same arrays.
    """
    attack = build_attack(attack_name, attack_cfg, seed=seed)
    correct, linf, adversarial = [], [], []
    for epsilon in epsilons:
        result = evaluate_attack(model, attack, x, y, epsilon)
        correct.append(result["correct"])
        linf.append(result["linf"])
        if keep_adversarial:
            adversarial.append(result["x_adv"].cpu().numpy())
    cell = {"epsilon": np.asarray(epsilons, dtype=float), "correct": np.stack(correct), "linf": np.asarray(linf)}
    if keep_adversarial:
        cell["x_adv"] = np.stack(adversarial)
    return cell


def cell_plan(attack_cfg: dict) -> list[tuple[str, str, list[float]]]:
    """The cells of one model: (cell name, attack, epsilons) for every configured attack, and
    PGD at the masking budgets (``LARGE_EPSILON``)."""
    at = attack_cfg
    plan = [(name, name, [float(e) for e in at["epsilons"]]) for name in at["methods"]]
    if at["masking_epsilons"]:
        plan.append((LARGE_EPSILON, "pgd", [float(e) for e in at["masking_epsilons"]]))
    return plan


def evaluate_models(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, attack_cfg: dict,
                    seed: int, cells=None) -> dict[str, list[dict]]:
    """Evaluate ``models`` on inputs ``x`` (N, ...) in [0, 1] with labels ``y`` (N,).

    ``cells`` (optional) stores finished (model, attack) cells: an object with
    ``load(model, cell) -> dict | None`` and ``save(model, cell, arrays)``; a cell it holds is
    reused, not recomputed (the pipeline's resume). Returns lists of records:

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

    def record(name, attack_name, epsilon, correct, linf):
        robustness.append({"model": name, "attack": attack_name, "epsilon": epsilon,
                           "accuracy": float(correct.mean()), "n": len(correct),
                           "n_correct": int(correct.sum()), "linf": linf})
        per_class(name, attack_name, epsilon, correct)

    crafted: dict[tuple[str, float], np.ndarray] = {}
    for name, model in models.items():
        finished = {}
        for cell_name, attack_name, epsilons in cell_plan(at):
            cell = cells.load(name, cell_name) if cells is not None else None
            if cell is None:
                cell = attack_cell(model, attack_name, x, y, epsilons, at, seed,
                                   keep_adversarial=cell_name == at["transfer_from"])
                if cells is not None:
                    cells.save(name, cell_name, cell)
            finished[cell_name] = cell
        for attack_name in at["methods"]:
            cell = finished[attack_name]
            for i, epsilon in enumerate(map(float, cell["epsilon"])):
                record(name, attack_name, epsilon, cell["correct"][i], float(cell["linf"][i]))
                if attack_name == at["transfer_from"]:
                    crafted[(name, epsilon)] = cell["x_adv"][i]
        for i, epsilon in enumerate(map(float, at["epsilons"])):
            survived = np.logical_and.reduce([finished[a]["correct"][i] for a in at["methods"]])
            record(name, WORST_CASE, epsilon, survived, max(float(finished[a]["linf"][i]) for a in at["methods"]))
        if LARGE_EPSILON in finished:
            cell = finished[LARGE_EPSILON]
            for epsilon, correct in zip(map(float, cell["epsilon"]), cell["correct"]):
                large.append({"model": name, "epsilon": epsilon, "accuracy": float(correct.mean()), "n": len(correct)})
    for (source, epsilon), x_adv in crafted.items():
        for target, model in models.items():
            hits = (predict(model, torch.as_tensor(x_adv, device=x.device)) == y).cpu().numpy()
            transfer.append({"source": source, "target": target, "epsilon": epsilon,
                             "accuracy": float(hits.mean()), "n": len(hits)})
    return {"robustness": robustness, "transfer": transfer, "large_epsilon": large, "by_class": by_class}
