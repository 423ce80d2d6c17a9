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

import copy
import time

import numpy as np
import scipy.sparse as sparse
import torch
import torch.nn.functional as F
from scipy.optimize import Bounds, LinearConstraint, milp
from torch import nn

from ..models.ops import Affine, Cast, Scale
from .bounds import MARGIN, interval_step, interval_trace

# Relative widening of the float32 interval bounds used as big-M, so they hold for the float64
# network the program encodes.
SLACK = 1e-5

# The ops this encoding is exact for.
LINEAR = (nn.Linear, Affine, nn.Conv2d, nn.AvgPool2d, Scale)
SHAPE_ONLY = (nn.Flatten, Cast)
PIECEWISE = (*LINEAR, *SHAPE_ONLY, nn.ReLU, nn.MaxPool2d)


def encodable(ops) -> tuple[bool, str]:
    """(True, "") if every op has an exact MILP encoding here, else (False, the first that has none)."""
    for op in ops:
        if not isinstance(op, PIECEWISE):
            return False, f"{type(op).__name__} has no exact MILP encoding (only affine ops, ReLU and max pooling)"
        if isinstance(op, nn.MaxPool2d) and (op.padding != 0 or op.dilation != 1 or op.ceil_mode):
            return False, "max pooling with padding, dilation or ceil_mode"
    return True, ""


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
            weight, bias = _matrix(matrices, ops, shapes, i)
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
            count += int(_unstable(lo, hi).sum())
        elif isinstance(op, nn.MaxPool2d):
            index = pool_windows(op, shapes[i])
            count += sum(len(c) for c in map(_candidates, lo[index], hi[index]) if c is not None)
    return count


def _matrix(matrices: dict, ops, shapes, i: int) -> tuple[np.ndarray, np.ndarray]:
    """``affine64`` of the affine op ``ops[i]``, kept in ``matrices`` (op index -> (W, b))."""
    if i not in matrices:
        matrices[i] = affine64(ops[i], shapes[i])
    return matrices[i]


@torch.no_grad()
def layer_bounds(ops, x: torch.Tensor, epsilon: float, matrices=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Bounds (low, high) on every op's input (and the logits, last), flattened float64, over
    the ball ∩ [0, 1] of one input ``x`` (1, ...): the interval bounds, tightened for the input
    of every ReLU and max pooling by CROWN (Zhang et al. 2018) with every earlier ReLU and max
    pooling relaxed between its own tightened bounds, back to the input. ``matrices`` (op index
    -> ``affine64``) keeps the affine ops' dense matrices between calls on one network's ops at
    inputs of one shape (a convolution's takes longer to build than to use)."""
    low, high = (x - epsilon).clamp(0, 1), (x + epsilon).clamp(0, 1)
    bounds = [(lo[0].double().numpy().ravel(), hi[0].double().numpy().ravel())
              for lo, hi in interval_trace(ops, low, high)]
    shapes = op_inputs(ops, x)
    matrices = {} if matrices is None else matrices
    for i, op in enumerate(ops):
        if isinstance(op, (nn.ReLU, nn.MaxPool2d)) and i > 0:
            size = len(bounds[i][0])
            # the rows of [I; -I] as (column, sign): each neuron's lower and (negated) upper bound
            spec = (np.tile(np.arange(size), 2), np.repeat([1.0, -1.0], size))
            lower = _backward_lower(ops, i, spec, bounds, shapes, matrices)
            bounds[i] = _meet(bounds[i], (lower[:size], -lower[size:]))
            if i + 1 < len(bounds):  # the op's output from its tightened input
                out = interval_step(op, *(torch.as_tensor(b).reshape(1, *shapes[i]) for b in bounds[i]))
                bounds[i + 1] = _meet(bounds[i + 1], tuple(t[0].numpy().ravel() for t in out))
    return bounds


def _meet(a, b):
    """The intersection of two boxes (low, high), kept non-empty against round-off."""
    lo, hi = np.maximum(a[0], b[0]), np.minimum(a[1], b[1])
    return lo, np.maximum(hi, lo)


def _backward_lower(ops, end: int, spec, bounds, shapes, matrices) -> np.ndarray:
    """Lower bounds of spec @ (the input of op ``end``) by one backward linear pass: affine ops
    exactly, ReLUs and max pooling by their linear relaxations between ``bounds``; it stops at
    the first op it cannot relax and takes that op's output box. ``spec``: a matrix, or
    (columns, values) for one with a single nonzero per row (a row of the identity, scaled),
    which is kept in that form through ReLUs and enters the first affine op as that op's rows,
    scaled: the same numbers as the dense products, without them."""
    if isinstance(spec, tuple):
        coefficients, bias, i = _one_per_row(ops, end, spec, bounds, shapes, matrices)
    else:
        coefficients, bias, i = spec, np.zeros(len(spec)), end - 1
    while i >= 0:
        op = ops[i]
        lo, hi = bounds[i]
        if isinstance(op, SHAPE_ONLY):
            pass
        elif isinstance(op, LINEAR):
            weight, offset = _matrix(matrices, ops, shapes, i)
            bias = bias + coefficients @ offset
            coefficients = coefficients @ weight
        elif isinstance(op, nn.ReLU):
            slope, intercept, lower_slope = _relu_relaxation(lo, hi)
            positive = coefficients >= 0
            bias = bias + np.where(positive, 0.0, coefficients * intercept).sum(axis=1)
            coefficients = coefficients * np.where(positive, lower_slope, slope)
        elif isinstance(op, nn.MaxPool2d) and encodable([op])[0]:
            # A window's maximum is at least its member with the highest lower bound, and at most
            # the highest upper bound (exactly that member where its lower bound beats every
            # other member's upper bound).
            members = pool_windows(op, shapes[i])
            low_of, high_of = lo[members], hi[members]
            rows, winner = np.arange(len(members)), low_of.argmax(axis=1)
            best = members[rows, winner]
            others = high_of.copy()
            others[rows, winner] = -np.inf
            linear = (coefficients >= 0) | (low_of.max(axis=1) >= others.max(axis=1))[None]
            bias = bias + np.where(linear, 0.0, coefficients * high_of.max(axis=1)).sum(axis=1)
            spread = np.zeros((len(coefficients), len(lo)))
            np.add.at(spread.T, best, np.where(linear, coefficients, 0.0).T)
            coefficients = spread
        else:
            break
        i -= 1
    lo, hi = bounds[i + 1]
    return bias + np.clip(coefficients, 0, None) @ lo + np.clip(coefficients, None, 0) @ hi


def _relu_relaxation(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ReLU between ``lo`` and ``hi``: the upper line's slope and intercept, the lower line's
    slope (CROWN's adaptive choice: 1 where the input is more positive than negative)."""
    unstable = _unstable(lo, hi)
    slope = np.where(unstable, hi / np.maximum(hi - lo, 1e-12), (lo >= 0).astype(float))
    intercept = np.where(unstable, -slope * lo, 0.0)
    lower_slope = np.where(unstable, (hi >= -lo).astype(float), (lo >= 0).astype(float))
    return slope, intercept, lower_slope


def _one_per_row(ops, end: int, spec, bounds, shapes, matrices) -> tuple[np.ndarray, np.ndarray, int]:
    """The start of ``_backward_lower`` for rows ``values * e_columns`` (``spec`` = (columns,
    values)): through shape-only ops and ReLUs each row keeps its one nonzero (the relaxation
    scales it, its intercept adds to the bias); at the first affine op the rows become that op's
    rows ``columns``, scaled. Returns (coefficients, bias, the op the dense pass goes on from)."""
    columns, values = spec
    bias = np.zeros(len(values))
    i = end - 1
    while i >= 0 and isinstance(ops[i], (*SHAPE_ONLY, nn.ReLU)):
        if isinstance(ops[i], nn.ReLU):
            slope, intercept, lower_slope = _relu_relaxation(*bounds[i])
            positive = values >= 0
            bias = bias + np.where(positive, 0.0, values * intercept[columns])
            values = values * np.where(positive, lower_slope[columns], slope[columns])
        i -= 1
    if i >= 0 and isinstance(ops[i], LINEAR):
        weight, offset = _matrix(matrices, ops, shapes, i)
        return values[:, None] * weight[columns], bias + values * offset[columns], i - 1
    dense = np.zeros((len(values), len(bounds[i + 1][0])))
    dense[np.arange(len(values)), columns] = values
    return dense, bias, i


def op_inputs(ops, x: torch.Tensor) -> list[tuple[int, ...]]:
    """The shape (without batch) of every op's input for ``x``, and of the logits last."""
    values = [x]
    with torch.no_grad():
        for op in ops:
            values.append(op(values[-1]))
    return [tuple(v.shape[1:]) for v in values]


@torch.no_grad()
def affine64(op: nn.Module, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """An affine op on inputs of ``shape`` as (W, b) in float64 on the flattened input."""
    if isinstance(op, Affine):
        return op.weight.double().numpy(), op.bias.double().numpy()
    size = int(np.prod(shape))
    if isinstance(op, Scale):
        return float(op.scale) * np.eye(size), np.zeros(size)
    op64 = copy.deepcopy(op).double()
    basis = torch.eye(size, dtype=torch.float64).reshape(size, *shape)
    zero = op64(torch.zeros(1, *shape, dtype=torch.float64)).reshape(-1)
    return (op64(basis).reshape(size, -1) - zero).T.numpy(), zero.numpy()


def _unstable(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The ReLUs whose input interval straddles 0 (each a binary of the program)."""
    return (lo < 0) & (hi > 0)


def _relu(program: Program, z: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    out = z.copy()
    dead = hi <= 0
    out[dead] = program.variables(np.zeros(dead.sum()), np.zeros(dead.sum()))
    for k in np.flatnonzero(_unstable(lo, hi)):
        a, = program.variables(0.0, hi[k])
        d, = program.variables(0.0, 1.0, integer=True)
        program.row([a, z[k]], [1.0, -1.0], 0.0, np.inf)                 # a >= z
        program.row([a, z[k], d], [1.0, -1.0, -lo[k]], -np.inf, -lo[k])   # a <= z - lo (1 - d)
        program.row([a, d], [1.0, -hi[k]], -np.inf, 0.0)                  # a <= hi d
        out[k] = a
    return out


def pool_windows(op: nn.MaxPool2d, shape: tuple[int, ...]) -> np.ndarray:
    """(outputs, kernel area): the flattened input indices of each output's window, channel by
    channel (the order of the flattened output)."""
    t = torch.arange(int(np.prod(shape)), dtype=torch.float64).reshape(1, *shape)
    cols = F.unfold(t, op.kernel_size, stride=op.stride)                 # (1, C * k * k, L)
    channels = shape[0]
    return cols.reshape(channels, -1, cols.shape[-1]).permute(0, 2, 1).reshape(-1, cols.shape[1] // channels) \
        .numpy().astype(int)


def _max_pool(program: Program, op: nn.MaxPool2d, v: np.ndarray, lo: np.ndarray, hi: np.ndarray,
              shape: tuple[int, ...]) -> np.ndarray:
    """Each window's maximum: the input whose lower bound beats every other's upper bound, or
    a new variable m >= every input, m <= input i + (U - lo_i)(1 - d_i), one d_i = 1."""
    index = pool_windows(op, shape)
    w_lo, w_hi = lo[index], hi[index]
    out = np.empty(len(index), dtype=int)
    for k, (members, l, h) in enumerate(zip(index, w_lo, w_hi)):
        candidates = _candidates(l, h)
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


def _candidates(low: np.ndarray, high: np.ndarray) -> np.ndarray | None:
    """Of one max-pooling window with input bounds ``low``, ``high``: None where the member with
    the highest lower bound beats every other's upper bound (the winner is fixed), else the
    members that may win (each a binary of the program)."""
    best = int(np.argmax(low))
    if low[best] >= np.delete(high, best).max(initial=-np.inf):
        return None
    return np.flatnonzero(high >= low.max())


def crown_margins(ops, x: torch.Tensor, y: int, epsilon: float, classes, bounds=None, matrices=None) -> np.ndarray:
    """Lower bounds on logit_y − logit_j over the ball for each class j of ``classes``: one
    backward pass through the network with every ReLU and max pooling relaxed between
    ``layer_bounds`` (full CROWN, tighter than CROWN-IBP's interval bounds of the hidden
    layers; ``bounds``: those bounds where already computed; ``matrices``: see ``layer_bounds``)."""
    matrices = {} if matrices is None else matrices
    bounds = layer_bounds(ops, x, epsilon, matrices) if bounds is None else bounds
    n_classes = len(bounds[-1][0])
    spec = np.stack([np.eye(n_classes)[y] - np.eye(n_classes)[j] for j in classes])
    return _backward_lower(ops, len(ops), spec, bounds, op_inputs(ops, x), matrices)


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
