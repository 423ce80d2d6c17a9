"""Bisection on ε, every point at once: each step one call of ``verdicts(index, budgets)`` at
every open point's own budget (``exact.robust_radii``)."""
from __future__ import annotations

import numpy as np


def first_at(verdicts, open_: np.ndarray, budgets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per point, from ``verdicts`` at each of the increasing ``budgets`` (all open points
    at once): (largest budget found robust below the first found not robust, that first one,
    the smallest ε found not robust so far (inf: none)). Points not ``open_`` (misclassified)
    get (0, 0, 0); a point never found not robust gets (last robust budget, its largest
    budget or the first unknown one, inf)."""
    n = len(open_)
    low, up, refuted = np.zeros(n), np.where(open_, budgets[-1], 0.0), np.where(open_, np.inf, 0.0)
    index = np.flatnonzero(open_)
    for budget in budgets:
        if not len(index):
            break
        found = verdicts(index, np.full(len(index), budget))
        low[index[found == "robust"]] = budget
        stop = found != "robust"
        up[index[stop]] = budget
        refuted[index[found == "not_robust"]] = budget
        index = index[~stop]
    return low, up, refuted


def bisect(verdicts, low: np.ndarray, up: np.ndarray, refuted: np.ndarray,
            tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Per point, bisect between ``low`` (found robust) and ``up`` (not robust or unknown)
    until they lie within ``tolerance``: (largest ε found robust, smallest ε found not robust
    (inf: none)), ``verdicts(index, budgets)`` giving ``VERDICTS``. An ``unknown`` ε is an
    upper end to search below (the proofs below it still hold)."""
    low, up, refuted = low.copy(), up.copy(), refuted.copy()
    index = np.flatnonzero(up - low > tolerance)
    while len(index):
        middle = (low[index] + up[index]) / 2
        found = verdicts(index, middle)
        robust = found == "robust"
        low[index[robust]] = middle[robust]
        up[index[~robust]] = middle[~robust]
        refuted[index[found == "not_robust"]] = middle[found == "not_robust"]
        index = index[up[index] - low[index] > tolerance]
    return low, refuted
