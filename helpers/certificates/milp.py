"""A piecewise-linear network as a mixed-integer linear program, solved exactly.

The network's ``bound_ops`` (affine ops, ReLU, max pooling; Flatten and casts change nothing)
over the ε-ball ∩ [0, 1] of one input become linear constraints: every affine op an equality
per output, every ReLU whose input interval straddles 0 the big-M encoding with one binary
(Tjeng, Xiao & Tedrake 2019), every max-pooling window whose winner is not fixed by the
intervals one binary per candidate; a ReLU or window fixed by its interval is linear. The
bounds (big-M) are full-CROWN bounds of the same ball (``layer_bounds``). The program is
exact: an input of the ball with margin logit_y − logit_j <= t exists if and only if the
program with that row added is feasible (HiGHS, through ``scipy.optimize.milp``).
"""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sparse
import torch
from scipy.optimize import Bounds, LinearConstraint, milp
from torch import nn

from .bounds import MARGIN
from .network_bounds import (LINEAR, SHAPE_ONLY, layer_bounds, matrix_of, op_inputs, pool_windows, unstable,
                             window_candidates)

# Relative widening of the float32 interval bounds used as big-M, so they hold for the float64
# network the program encodes.
SLACK = 1e-5

class Program:
    """Variables with bounds and integrality, and sparse linear rows lower <= A v <= upper."""

    def __init__(self):
        self.low, self.high, self.integer = [], [], []
        self.rows, self.cols, self.vals, self.row_low, self.row_high = [], [], [], [], []

    def variables(self, low, high, integer: bool = False) -> np.ndarray:
        low, high = np.atleast_1d(np.asarray(low, float)), np.atleast_1d(np.asarray(high, float))
        first = len(self.low)
        self.low.extend(low)
        self.high.extend(high)
        self.integer.extend([int(integer)] * len(low))
        return np.arange(first, first + len(low))

    def row(self, columns, values, low: float, high: float) -> None:
        r = len(self.row_low)
        self.rows.extend([r] * len(columns))
        self.cols.extend(columns)
        self.vals.extend(values)
        self.row_low.append(low)
        self.row_high.append(high)

    def rows_of(self, matrix: np.ndarray, columns: np.ndarray, outputs: np.ndarray, offset: np.ndarray) -> None:
        """outputs = matrix @ v[columns] + offset, one equality per output."""
        coo = sparse.coo_matrix(matrix)
        first = len(self.row_low)
        self.rows.extend(first + coo.row)
        self.cols.extend(columns[coo.col])
        self.vals.extend(-coo.data)
        self.rows.extend(first + np.arange(len(outputs)))
        self.cols.extend(outputs)
        self.vals.extend(np.ones(len(outputs)))
        self.row_low.extend(offset)
        self.row_high.extend(offset)

    def solve(self, objective: dict[int, float], seconds: float | None, relaxed: bool = False, at_most=None):
        """Minimise the objective (column -> coefficient); ``relaxed``: the binaries in [0, 1];
        ``at_most`` (a row as such a mapping, a bound): with that row <= the bound as well.
        HiGHS stops after ``seconds`` (None or inf: no time limit)."""
        c = np.zeros(len(self.low))
        for column, value in objective.items():
            c[column] += value
        matrix = sparse.csr_matrix((self.vals, (self.rows, self.cols)), shape=(len(self.row_low), len(self.low)))
        constraints = [LinearConstraint(matrix, self.row_low, self.row_high)]
        if at_most is not None:
            row, bound = at_most
            columns = list(row)
            extra = sparse.csr_matrix((list(row.values()), ([0] * len(columns), columns)), shape=(1, len(self.low)))
            constraints.append(LinearConstraint(extra, -np.inf, bound))
        options = {"disp": False}
        if seconds is not None and np.isfinite(seconds):
            options["time_limit"] = max(seconds, 0.01)
        return milp(c, constraints=constraints,
                    integrality=np.zeros(len(self.low)) if relaxed else np.asarray(self.integer),
                    bounds=Bounds(self.low, self.high), options=options)


def build_program(ops, x: torch.Tensor, epsilon: float, bounds=None,
                  matrices=None) -> tuple[Program, np.ndarray, np.ndarray]:
    """The constraints of the network ``ops`` on the ball ∩ [0, 1] of one input ``x`` (1, ...)
    (``bounds``: its ``layer_bounds`` where already computed; ``matrices``: see ``layer_bounds``).
    Returns the program, the input's variables (flattened) and the logits' variables."""
    matrices = {} if matrices is None else matrices
    bounds = layer_bounds(ops, x, epsilon, matrices) if bounds is None else bounds
    trace = big_m(bounds)
    shapes = op_inputs(ops, x)
    program = Program()
    current = program.variables(trace[0][0], trace[0][1])
    inputs = current
    for i, op in enumerate(ops):
        (lo, hi), (out_lo, out_hi) = trace[i], trace[i + 1]
        shape = shapes[i]
        if isinstance(op, SHAPE_ONLY):
            continue
        if isinstance(op, LINEAR):
            weight, bias = matrix_of(matrices, ops, shapes, i)
            outputs = program.variables(out_lo, out_hi)
            program.rows_of(weight, current, outputs, bias)
            current = outputs
        elif isinstance(op, nn.ReLU):
            current = _relu(program, current, lo, hi)
        else:
            current = _max_pool(program, op, current, lo, hi, shape)
    return program, inputs, current


def big_m(bounds) -> list[tuple[np.ndarray, np.ndarray]]:
    """``layer_bounds`` widened by ``SLACK`` past the input: the bounds the program encodes."""
    return [(lo - SLACK * (1 + np.abs(lo)), hi + SLACK * (1 + np.abs(hi))) if i else (lo, hi)
            for i, (lo, hi) in enumerate(bounds)]


def binaries(ops, x: torch.Tensor, bounds) -> int:
    """How many binary variables ``build_program`` gives the network ``ops`` over the ball whose
    ``layer_bounds`` are ``bounds`` (one per unstable ReLU, one per candidate of every max-pooling
    window whose winner is not fixed), without building it."""
    trace, shapes, count = big_m(bounds), op_inputs(ops, x), 0
    for i, op in enumerate(ops):
        lo, hi = trace[i]
        if isinstance(op, nn.ReLU):
            count += int(unstable(lo, hi).sum())
        elif isinstance(op, nn.MaxPool2d):
            index = pool_windows(op, shapes[i])
            count += sum(len(c) for c in map(window_candidates, lo[index], hi[index]) if c is not None)
    return count


def _relu(program: Program, z: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    out = z.copy()
    dead = hi <= 0
    out[dead] = program.variables(np.zeros(dead.sum()), np.zeros(dead.sum()))
    for k in np.flatnonzero(unstable(lo, hi)):
        a, = program.variables(0.0, hi[k])
        d, = program.variables(0.0, 1.0, integer=True)
        program.row([a, z[k]], [1.0, -1.0], 0.0, np.inf)                 # a >= z
        program.row([a, z[k], d], [1.0, -1.0, -lo[k]], -np.inf, -lo[k])   # a <= z - lo (1 - d)
        program.row([a, d], [1.0, -hi[k]], -np.inf, 0.0)                  # a <= hi d
        out[k] = a
    return out


def _max_pool(program: Program, op: nn.MaxPool2d, v: np.ndarray, lo: np.ndarray, hi: np.ndarray,
              shape: tuple[int, ...]) -> np.ndarray:
    """Each window's maximum: the input whose lower bound beats every other's upper bound, or
    a new variable m >= every input, m <= input i + (U - lo_i)(1 - d_i), one d_i = 1."""
    index = pool_windows(op, shape)
    w_lo, w_hi = lo[index], hi[index]
    out = np.empty(len(index), dtype=int)
    for k, (members, l, h) in enumerate(zip(index, w_lo, w_hi)):
        candidates = window_candidates(l, h)
        if candidates is None:
            out[k] = v[members[int(np.argmax(l))]]
            continue
        top = h.max()
        m, = program.variables(l.max(), top)
        ds = program.variables(np.zeros(len(candidates)), np.ones(len(candidates)), integer=True)
        for i in range(len(members)):
            program.row([m, v[members[i]]], [1.0, -1.0], 0.0, np.inf)        # m >= x_i
        for i, d in zip(candidates, ds):
            program.row([m, v[members[i]], d], [1.0, -1.0, top - l[i]], -np.inf, top - l[i])
        program.row(list(ds), [1.0] * len(ds), 1.0, 1.0)
        out[k] = m
    return out


def decide_margins(ops, x: torch.Tensor, y: int, epsilon: float, classes, seconds: float | None, is_counterexample,
                   bounds=None, most_binaries: int | None = None, matrices=None):
    """For each class j of ``classes`` in order: (j, proved, counterexample or None), proved
    meaning no input of the ball has logit_y − logit_j <= ``MARGIN``. The linear relaxation
    (every binary in [0, 1]) comes first: where its minimum exceeds the margin the class is
    proved by one LP, and its minimiser is tried as a counterexample. Then the integer
    program as a feasibility question, margin <= ``MARGIN``: infeasible proves the class (HiGHS
    settles that much faster than it closes the gap of the minimisation); a feasible input is
    tried as a counterexample. ``is_counterexample(x)`` re-checks an input (flattened float64)
    with the model. Stops at the first counterexample or undecided class, or when the time is
    spent (``seconds``, None: no limit; the remaining classes are then missing from the list).
    A program with more than ``most_binaries`` binary variables (None: any number) is neither
    built nor solved: every class is missing. ``bounds``: the ball's ``layer_bounds`` where
    already computed; ``matrices``: see ``layer_bounds``."""
    if not len(classes):
        return []
    matrices = {} if matrices is None else matrices
    bounds = layer_bounds(ops, x, epsilon, matrices) if bounds is None else bounds
    if most_binaries is not None and binaries(ops, x, bounds) > most_binaries:
        return []
    program, inputs, logits = build_program(ops, x, epsilon, bounds, matrices)
    deadline = time.monotonic() + (np.inf if seconds is None else seconds)
    found = []
    for j in classes:
        objective = {int(logits[y]): 1.0, int(logits[j]): -1.0}
        left = deadline - time.monotonic()
        if left <= 0:
            return found
        relaxed = program.solve(objective, left, relaxed=True)
        witness = _witness(relaxed, inputs, is_counterexample)
        if witness is not None or (relaxed.status == 0 and relaxed.fun > MARGIN):
            found.append((j, witness is None, witness))
            if witness is not None:
                return found
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            return found
        integer = program.solve({}, left, at_most=(objective, MARGIN))
        witness = _witness(integer, inputs, is_counterexample)
        found.append((j, integer.status == 2, witness))
        if integer.status != 2:
            return found
    return found


def _witness(result, inputs: np.ndarray, is_counterexample) -> np.ndarray | None:
    """The solver's input if the model misclassifies it, else None."""
    if result.x is None:
        return None
    x = np.asarray(result.x)[inputs]
    return x if is_counterexample(x) else None
