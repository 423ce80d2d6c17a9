"""The data's own ceiling: the largest share of a set of labelled points that any classifier
can keep correct and robust at budget ε (Bhagoji, Cullina & Mittal 2019, "Lower bounds on
adversarial robustness from optimal transport").

Two points of different labels *conflict* when their ε-balls, intersected with the input box
[0, 1]^D, meet: a perturbed input in both balls cannot be classified as both labels, so no
classifier is robust and correct on both. Any conflict-free set of points is achievable (label
every input by the point whose ball holds it; no input lies in the balls of two labels), so
the ceiling is the size of a maximum independent set of the conflict graph. For points inside
the box the balls of any norm meet exactly when the points lie within 2ε of each other (their
midpoint is in both balls and in the box).

The graph splits into connected components, each solved on its own: a component with two
labels is bipartite, and its maximum independent set is its size less a maximum matching
(König); a component with more labels is a small integer program (HiGHS through
``scipy.optimize.milp``) under a time limit, past which the solver's dual bound is still an
upper bound (``exact`` False). Everything here is a pure function of the points; the report
stage calls ``ceiling_table`` on the points each run was attacked on.
"""
from __future__ import annotations

import math
import time
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse.csgraph import connected_components, maximum_bipartite_matching

from ..threats import threat_model

# Rows of the pairwise difference computed at once: (rows · n · D) doubles stay under ~128 MB.
_CHUNK_ELEMENTS = 16_000_000
COLUMNS = ["run", "norm", "epsilon", "n", "ceiling_points", "ceiling", "exact", "method", "conflicts", "seconds"]


class Ceiling(NamedTuple):
    points: int      # how many points one classifier can keep correct and robust (an upper bound when not exact)
    exact: bool      # the maximum itself, not a bound on it
    method: str      # "no conflicts", "matching", "milp" (or several, joined by "+")


def check_in_box(x: np.ndarray) -> None:
    """A ``ValueError`` unless every feature of ``x`` lies in [0, 1] (the threat model's box)."""
    low, high = float(np.min(x)), float(np.max(x))
    if low < -1e-6 or high > 1 + 1e-6:
        raise ValueError(f"the ceiling needs points inside [0, 1]; these span [{low:g}, {high:g}]")


def pairwise_distances(x: np.ndarray, norm: str) -> np.ndarray:
    """The (n, n) distances between the points ``x`` (n, ...) in the threat model's norm."""
    flat = torch.as_tensor(np.asarray(x, dtype=np.float64).reshape(len(x), -1))
    threat, n = threat_model(norm), len(flat)
    rows = max(1, _CHUNK_ELEMENTS // max(1, n * flat.shape[1]))
    out = np.empty((n, n))
    for start in range(0, n, rows):
        block = flat[start:start + rows, None, :] - flat[None, :, :]
        out[start:start + rows] = threat.norm(block.reshape(-1, flat.shape[1])).reshape(-1, n).numpy()
    return out


def conflicts(distances: np.ndarray, y: np.ndarray, epsilon: float) -> np.ndarray:
    """Pairs (i, j), i < j, of different labels whose ε-balls meet, as an (m, 2) array."""
    y = np.asarray(y)
    close = (distances <= 2 * epsilon) & (y[:, None] != y[None, :])
    i, j = np.nonzero(np.triu(close, k=1))
    return np.stack([i, j], axis=1)


def _matching(labels: np.ndarray, pairs: np.ndarray) -> int:
    """The maximum independent set of a bipartite component (two labels): size - matching."""
    left = labels == labels[pairs[0, 0]]
    index = np.empty(len(labels), dtype=np.int64)
    index[left], index[~left] = np.arange(left.sum()), np.arange((~left).sum())
    flip = ~left[pairs[:, 0]]  # orient every edge from the left label to the right one
    a, b = np.where(flip, pairs[:, 1], pairs[:, 0]), np.where(flip, pairs[:, 0], pairs[:, 1])
    graph = sparse.csr_matrix((np.ones(len(a)), (index[a], index[b])), shape=(int(left.sum()), int((~left).sum())))
    matched = int((maximum_bipartite_matching(graph, perm_type="column") >= 0).sum())
    return len(labels) - matched


def _milp(size: int, pairs: np.ndarray, seconds: float) -> tuple[int, bool]:
    """The maximum independent set of a component as an integer program: at most one end of
    every edge. Returns (its size or, past the time limit, the dual bound's floor; exact)."""
    rows = np.repeat(np.arange(len(pairs)), 2)
    edges = sparse.csr_matrix((np.ones(2 * len(pairs)), (rows, pairs.ravel())), shape=(len(pairs), size))
    result = milp(-np.ones(size), integrality=np.ones(size), bounds=Bounds(0, 1),
                  constraints=LinearConstraint(edges, -np.inf, 1), options={"time_limit": max(seconds, 1e-3)})
    if result.status == 0:
        return int(round(-result.fun)), True
    bound = getattr(result, "mip_dual_bound", None)
    return (int(math.floor(-bound + 1e-9)), False) if bound is not None and np.isfinite(bound) else (size, False)


def largest_conflict_free(y: np.ndarray, pairs: np.ndarray, seconds: float = 60.0) -> Ceiling:
    """The size of the largest set of points no two of which conflict (``pairs``), component
    by component; ``seconds`` bounds the integer programs of components with 3+ labels."""
    y, n = np.asarray(y), len(y)
    if len(pairs) == 0:
        return Ceiling(n, True, "no conflicts")
    graph = sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    count, component = connected_components(graph, directed=False)
    sizes = np.bincount(component, minlength=count)
    points, exact, methods = int((sizes == 1).sum()), True, []
    deadline = time.monotonic() + seconds
    edge_component = component[pairs[:, 0]]
    for c in np.flatnonzero(sizes > 1):
        nodes = np.flatnonzero(component == c)
        local = np.searchsorted(nodes, pairs[edge_component == c])
        labels = y[nodes]
        if len(np.unique(labels)) == 2:
            points += _matching(labels, local)
            methods.append("matching")
        else:
            found, solved = _milp(len(nodes), local, deadline - time.monotonic())
            points, exact = points + found, exact and solved
            methods.append("milp")
    return Ceiling(points, exact, "+".join(sorted(set(methods))))


def ceiling_rows(x: np.ndarray, y: np.ndarray, epsilons, norm: str, seconds: float = 60.0) -> list[dict]:
    """The ceiling of the points ``x`` (n, ...) in [0, 1] with labels ``y`` (n,) at every ε of
    ``epsilons`` in ``norm``: one dict per ε (``COLUMNS`` without the run). A bound that is not
    exact is lowered to the ceiling of a smaller ε where that is lower (a larger ball only adds
    conflicts, so the ceiling never rises with ε; an exact ceiling is never above an earlier one)."""
    check_in_box(x)
    distances, rows, lowest = pairwise_distances(x, norm), [], len(y)
    for epsilon in sorted(epsilons):
        start = time.perf_counter()
        pairs = conflicts(distances, y, epsilon)
        found = largest_conflict_free(y, pairs, seconds)
        lowest = min(lowest, found.points)
        rows.append({"norm": norm, "epsilon": float(epsilon), "n": len(y), "ceiling_points": lowest,
                     "ceiling": lowest / len(y), "exact": found.exact, "method": found.method,
                     "conflicts": len(pairs), "seconds": time.perf_counter() - start})
    return rows


def with_ceiling(bracket: pd.DataFrame, ceiling: pd.DataFrame, norm: str, certified: pd.DataFrame,
                 robustness: pd.DataFrame) -> pd.DataFrame:
    """``bracket`` (per model and ε, threat model ``norm``) with the data's ceiling beside it,
    from the per-run tables of that norm (``ceiling``: every norm's rows, ``ceiling_rows``): ``ceiling`` (mean over runs), ``attacked_share`` (mean over
    runs of the worst case / the ceiling: the share of the achievable the attacks leave),
    and run counts: ``certified_at_ceiling_runs`` (the certificate proves the model as robust
    as any classifier can be on these points), ``attacked_at_ceiling_runs`` (the attacks find
    no shortfall from the ceiling), ``attacked_above_ceiling_runs`` (the attacks missed
    examples that must exist: the worst case is too high there) and
    ``certified_above_ceiling_runs`` (a certificate claims the impossible: unsound; zero)."""
    ceiling = ceiling[ceiling["norm"] == norm]
    if bracket.empty or ceiling.empty:
        return bracket
    per_run = (robustness[robustness["attack"] == "worst_case"][["model", "run", "epsilon", "accuracy", "n"]]
               .merge(certified[certified["certificate"] == "best"][["model", "run", "epsilon", "accuracy"]]
                      .rename(columns={"accuracy": "certified"}), on=["model", "run", "epsilon"], how="left")
               .merge(ceiling[["run", "epsilon", "ceiling_points", "ceiling"]], on=["run", "epsilon"]))
    attacked = np.rint(per_run["accuracy"] * per_run["n"])
    proved = np.rint(per_run["certified"] * per_run["n"])
    per_run = per_run.assign(share=per_run["accuracy"] / per_run["ceiling"].where(per_run["ceiling"] > 0),
                             certified_at=proved == per_run["ceiling_points"],
                             attacked_at=attacked == per_run["ceiling_points"],
                             attacked_above=attacked > per_run["ceiling_points"],
                             certified_above=proved > per_run["ceiling_points"])
    summary = per_run.groupby(["model", "epsilon"], sort=False).agg(
        ceiling=("ceiling", "mean"), attacked_share=("share", "mean"),
        certified_at_ceiling_runs=("certified_at", "sum"), attacked_at_ceiling_runs=("attacked_at", "sum"),
        attacked_above_ceiling_runs=("attacked_above", "sum"),
        certified_above_ceiling_runs=("certified_above", "sum")).reset_index()
    return bracket.merge(summary, on=["model", "epsilon"], how="left")
