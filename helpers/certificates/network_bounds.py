"""Bounds on every neuron of a piecewise-linear network over one input's ε-ball ∩ [0, 1]:
the interval bounds tightened layer by layer by full CROWN (Zhang et al. 2018), the big-M
constants of the mixed-integer program (``milp``) and the linear margin bounds that decide
most points before it is built.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.ops import Affine, Cast, Scale
from .bounds import interval_step, interval_trace

# The ops with an exact linear treatment, and those that only reshape.
LINEAR = (nn.Linear, Affine, nn.Conv2d, nn.AvgPool2d, Scale)
SHAPE_ONLY = (nn.Flatten, Cast)
# The ops these bounds and the mixed-integer program treat exactly.
PIECEWISE = (*LINEAR, *SHAPE_ONLY, nn.ReLU, nn.MaxPool2d)


def encodable(ops) -> tuple[bool, str]:
    """(True, "") if every op has an exact MILP encoding here, else (False, the first that has none)."""
    for op in ops:
        if not isinstance(op, PIECEWISE):
            return False, f"{type(op).__name__} has no exact MILP encoding (only affine ops, ReLU and max pooling)"
        if isinstance(op, nn.MaxPool2d) and (op.padding != 0 or op.dilation != 1 or op.ceil_mode):
            return False, "max pooling with padding, dilation or ceil_mode"
    return True, ""


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


def matrix_of(matrices: dict, ops, shapes, i: int) -> tuple[np.ndarray, np.ndarray]:
    """``affine64`` of the affine op ``ops[i]``, kept in ``matrices`` (op index -> (W, b))."""
    if i not in matrices:
        matrices[i] = affine64(ops[i], shapes[i])
    return matrices[i]


def pool_windows(op: nn.MaxPool2d, shape: tuple[int, ...]) -> np.ndarray:
    """(outputs, kernel area): the flattened input indices of each output's window, channel by
    channel (the order of the flattened output)."""
    t = torch.arange(int(np.prod(shape)), dtype=torch.float64).reshape(1, *shape)
    cols = F.unfold(t, op.kernel_size, stride=op.stride)                 # (1, C * k * k, L)
    channels = shape[0]
    return cols.reshape(channels, -1, cols.shape[-1]).permute(0, 2, 1).reshape(-1, cols.shape[1] // channels) \
        .numpy().astype(int)


def unstable(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The ReLUs whose input interval straddles 0 (each a binary of the program)."""
    return (lo < 0) & (hi > 0)


def window_candidates(low: np.ndarray, high: np.ndarray) -> np.ndarray | None:
    """Of one max-pooling window with input bounds ``low``, ``high``: None where the member with
    the highest lower bound beats every other's upper bound (the winner is fixed), else the
    members that may win (each a binary of the program)."""
    best = int(np.argmax(low))
    if low[best] >= np.delete(high, best).max(initial=-np.inf):
        return None
    return np.flatnonzero(high >= low.max())


def _relu_relaxation(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ReLU between ``lo`` and ``hi``: the upper line's slope and intercept, the lower line's
    slope (CROWN's adaptive choice: 1 where the input is more positive than negative)."""
    straddles = unstable(lo, hi)
    slope = np.where(straddles, hi / np.maximum(hi - lo, 1e-12), (lo >= 0).astype(float))
    intercept = np.where(straddles, -slope * lo, 0.0)
    lower_slope = np.where(straddles, (hi >= -lo).astype(float), (lo >= 0).astype(float))
    return slope, intercept, lower_slope


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
            weight, offset = matrix_of(matrices, ops, shapes, i)
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
        weight, offset = matrix_of(matrices, ops, shapes, i)
        return values[:, None] * weight[columns], bias + values * offset[columns], i - 1
    dense = np.zeros((len(values), len(bounds[i + 1][0])))
    dense[np.arange(len(values)), columns] = values
    return dense, bias, i


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
