"""Sound bounds on a model's logits over an L∞ ball of inputs, through its ``bound_ops``.

Interval bound propagation (IBP) carries a box [low, high] through every op: affine ops
(linear, convolution, average pooling, the PCA, a scale) by centre and radius, monotone ones
(ReLU, tanh, sigmoid, max pooling) endpoint by endpoint, and a variational circuit by its
value at the box's centre plus a Lipschitz bound: the derivative of an expectation <H> with
respect to one encoding angle is at most ||H|| for every RX-encoded angle (Berberich et al.
2024: 2·||H||·||X/2||), times the number of times the angle is encoded, and ||H|| = 1 for a Pauli Z and for a
projector. CROWN (Zhang et al. 2018) bounds the margins by one linear function of the input
of the last stretch of affine and ReLU ops, with interval bounds for the ReLUs' inputs
(CROWN-IBP), and falls back to the interval of the first op it cannot relax (tanh, sigmoid,
max pooling, a circuit). Dropout is not among the ops: it is the identity in evaluation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.ops import Affine, Cast, Circuit, Scale

MONOTONE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.MaxPool2d)
# The largest slope of the monotone ops that are not 1-Lipschitz (the rest are, in L∞).
SLOPE = {nn.Sigmoid: 0.25}
# A margin bound must exceed this (logit units) to certify a point: the model and the bounds run
# in float32 and sum in different orders (the PCA, say), so a bound of 1e-6 proves nothing.
MARGIN = 1e-4
# Ops that the backward linear bound passes through exactly (affine) or with a relaxation (ReLU).
RELAXABLE = (nn.Linear, Affine, nn.Conv2d, nn.AvgPool2d, nn.Flatten, Scale, Cast, nn.ReLU)


def bounds_apply(model) -> tuple[bool, str]:
    """(applies, reason it does not) for the bound certificates (interval, CROWN, Lipschitz):
    the model as ops they have rules for, and deterministic: a randomised classifier (a
    circuit with shots) predicts from sampled estimates, and a bound on its expected readout
    says nothing about a sampled prediction (certify it by smoothing, which votes with the
    randomness)."""
    if getattr(model, "stochastic", False):
        return False, "a randomised classifier (shots): the bounds hold for its expected readout, not its sampled predictions"
    if getattr(model, "bound_ops", lambda: None)() is None:
        return False, "no bound propagation for this model (e.g. amplitude encoding)"
    return True, ""


def input_box(x: torch.Tensor, epsilon: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The L∞ ball of radius ``epsilon`` around ``x`` intersected with [0, 1]."""
    return (x - epsilon).clamp(0, 1), (x + epsilon).clamp(0, 1)


def circuit_interval(op: Circuit, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds on a circuit's logits for angles in [low, high] (B, n): the values at the centre
    ± the Lipschitz bound times the sum of the radii, inside the readout's range."""
    centre, radius = (low + high) / 2, (high - low) / 2
    values = op.layer(centre.double())
    spread = op.repeats * radius.double().sum(dim=1, keepdim=True)
    floor = op.readout.floor
    lo, hi = (values - spread).clamp(floor, 1.0), (values + spread).clamp(floor, 1.0)
    return op.readout.logit_bounds(lo, hi, op.outputs)


@torch.no_grad()
def interval_step(op: nn.Module, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The box of ``op``'s outputs for inputs in [low, high]."""
    if isinstance(op, (nn.Flatten, Cast)):
        return op(low), op(high)
    if isinstance(op, MONOTONE):
        return op(low), op(high)
    if isinstance(op, Circuit):
        return circuit_interval(op, low, high)
    if isinstance(op, Scale):
        a, b = op(low), op(high)
        return torch.minimum(a, b), torch.maximum(a, b)
    centre, radius = (low + high) / 2, (high - low) / 2
    if isinstance(op, (nn.Linear, Affine)):
        flat = radius.reshape(len(radius), -1)
        return op(centre) - flat @ op.weight.abs().T, op(centre) + flat @ op.weight.abs().T
    if isinstance(op, nn.Conv2d):
        spread = F.conv2d(radius, op.weight.abs(), None, op.stride, op.padding, op.dilation, op.groups)
        return op(centre) - spread, op(centre) + spread
    if isinstance(op, nn.AvgPool2d):
        return op(centre) - op(radius), op(centre) + op(radius)
    raise TypeError(f"no bound propagation rule for {type(op).__name__}")


def interval_trace(ops, low: torch.Tensor, high: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The box at every point of the op sequence: entry i is the input of op i, the last the logits."""
    trace = [(low, high)]
    for op in ops:
        trace.append(interval_step(op, *trace[-1]))
    return trace


def margin_lower_bound(low: torch.Tensor, high: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A lower bound (B,) on min over j != y of logit_y - logit_j, from logit boxes (B, K)."""
    true_low = low.gather(1, y[:, None])[:, 0]
    other_high = high.scatter(1, y[:, None], float("-inf")).max(1).values
    return true_low - other_high


@torch.no_grad()
def dense(op: nn.Module, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """An affine op on inputs of ``shape`` (without batch) as (W (out, in), b (out,)) on the
    flattened input and output."""
    size = int(torch.tensor(shape).prod())
    basis = torch.eye(size).reshape(size, *shape)
    zero = op(torch.zeros(1, *shape)).reshape(-1)
    return (op(basis).reshape(size, -1) - zero).T, zero


@torch.no_grad()
def crown_margin_lower_bound(ops, low: torch.Tensor, high: torch.Tensor, y: torch.Tensor, n_classes: int,
                             l2_ball: tuple[torch.Tensor, float] | None = None) -> torch.Tensor:
    """CROWN-IBP lower bounds (B,) on min over j != y of logit_y - logit_j for inputs in
    [low, high]: a backward linear bound through the trailing affine and ReLU ops, concretised
    on the box where it stops (the input, or the output of the last op it cannot relax).

    ``l2_ball`` (x, ε), for inputs in the L2 ball around x inside the box [low, high] (the
    enclosing box of the ball): where the linear bound a·x' + c reaches the input it also
    holds on the ball, whose minimum is a·x + c − ε‖a‖₂ (the dual norm); the larger of that
    and the box's minimum is taken."""
    trace = interval_trace(ops, low, high)
    start = 1 + max([i for i, op in enumerate(ops) if not isinstance(op, RELAXABLE)], default=-1)
    batch = len(y)
    others = torch.stack([torch.tensor([j for j in range(n_classes) if j != label]) for label in y.tolist()])
    spec = F.one_hot(y, n_classes)[:, None, :].float() - F.one_hot(others, n_classes).float()  # (B, K-1, K)
    coefficients, bias = spec, torch.zeros(batch, n_classes - 1)
    for i in reversed(range(start, len(ops))):
        op, (lo, hi) = ops[i], trace[i]
        lo, hi = lo.reshape(batch, -1), hi.reshape(batch, -1)
        if isinstance(op, nn.ReLU):
            unstable = (lo < 0) & (hi > 0)
            slope = torch.where(unstable, hi / (hi - lo).clamp_min(1e-12), (lo >= 0).float())
            intercept = torch.where(unstable, -slope * lo, torch.zeros_like(lo))
            lower_slope = torch.where(unstable, (hi >= -lo).float(), (lo >= 0).float())
            positive = coefficients >= 0
            bias = bias + torch.where(positive, 0.0, coefficients * intercept[:, None, :]).sum(-1)
            coefficients = coefficients * torch.where(positive, lower_slope[:, None, :], slope[:, None, :])
        else:
            weight, offset = dense(op, tuple(trace[i][0].shape[1:]))
            bias = bias + coefficients @ offset
            coefficients = coefficients @ weight
    lo, hi = (t.reshape(batch, -1) for t in trace[start])
    bound = bias + (coefficients.clamp(min=0) * lo[:, None, :] + coefficients.clamp(max=0) * hi[:, None, :]).sum(-1)
    if l2_ball is not None and start == 0:
        centre, epsilon = l2_ball
        ball = bias + (coefficients * centre.reshape(batch, 1, -1)).sum(-1) - epsilon * coefficients.norm(dim=-1)
        bound = torch.maximum(bound, ball)
    return bound.min(dim=1).values


def affine_matrix(op: nn.Module, shape: tuple[int, ...]) -> torch.Tensor:
    """The weight W (out, in) of an affine op on inputs of ``shape`` (without batch), as a
    differentiable function of the op's parameters (``dense`` without the graph)."""
    size = int(torch.tensor(shape).prod())
    basis = torch.eye(size).reshape(size, *shape)
    zero = op(torch.zeros(1, *shape)).reshape(-1)
    return (op(basis).reshape(size, -1) - zero).T


def lipschitz_bound(ops, shape: tuple[int, ...], norm: str = "linf") -> torch.Tensor:
    """An upper bound (a float64 scalar tensor) on the L∞ -> L∞ Lipschitz constant of the
    logits, a product of the ops' bounds: affine ops by the largest absolute row sum, ReLU,
    tanh and max pooling by 1, sigmoid by 1/4, a circuit by (times encoded) x (number of angles)
    (Berberich et al. 2024), a scale by its magnitude. Differentiable in the ops' parameters
    (the Lipschitz regulariser, ``defences.lipschitz``); ``lipschitz_constant`` is its value.

    ``norm="l2"``: the L2 -> L∞ constant instead. Until the first op that mixes features, the
    perturbation is measured in L2 (elementwise ops with slope s keep ||.||_2 within a factor
    s, as a scale does); that op turns it into an L∞ bound on its outputs: an affine op by its
    largest row L2 norm (||W δ||∞ <= max_i ||W_i||_2 ||δ||_2), a circuit by (times encoded) x
    sqrt(number of angles) (its bound is linear in the L1 norm of the angles' change, and
    ||.||_1 <= sqrt(n) ||.||_2); every later op as above."""
    constant, x = torch.ones((), dtype=torch.float64), torch.zeros(1, *shape)
    in_l2 = norm == "l2"
    for op in ops:
        if in_l2 and isinstance(op, (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Flatten, Cast, Scale)):
            pass  # elementwise: the L∞ rules below hold for ||.||_2 as well
        elif in_l2 and isinstance(op, nn.MaxPool2d):
            in_l2 = False  # ||δ||∞ <= ||δ||_2, then max pooling's L∞ rule (overlapping windows)
        elif in_l2:
            in_l2 = False
            if isinstance(op, Circuit):
                constant = constant * (op.repeats * x.shape[1] ** 0.5 * op.readout.slope)
                x = torch.zeros(1, op.outputs)  # only its shape is needed: the circuit is not run
            else:
                constant = constant * affine_matrix(op, tuple(x.shape[1:])).norm(dim=1).max().double()
                with torch.no_grad():
                    x = op(x)
            continue
        if isinstance(op, Circuit):
            constant = constant * (op.repeats * x.shape[1] * op.readout.slope)
            x = torch.zeros(1, op.outputs)  # only its shape is needed: the circuit is not run
            continue
        if isinstance(op, (*MONOTONE, nn.Flatten, Cast)):
            constant = constant * SLOPE.get(type(op), 1.0)
        elif isinstance(op, Scale):
            constant = constant * op.scale.abs().double()
        else:
            constant = constant * affine_matrix(op, tuple(x.shape[1:])).abs().sum(dim=1).max().double()
        with torch.no_grad():
            x = op(x)
    return constant


@torch.no_grad()
def lipschitz_constant(ops, shape: tuple[int, ...], norm: str = "linf") -> float:
    """``lipschitz_bound`` as a number (the Lipschitz certificate's constant, in ``norm``)."""
    return float(lipschitz_bound(ops, shape, norm))


AFFINE = (nn.Linear, Affine, Scale, Cast, nn.Flatten)


def circuit_margin_bound(circuit: Circuit, after, low: torch.Tensor, high: torch.Tensor, y: torch.Tensor,
                         n_classes: int, zonotope_slack: torch.Tensor | None = None) -> torch.Tensor:
    """Lower bounds (B,) on min over j != y of the margin logit_y - logit_j over a box of a
    circuit's angles [low, high] (B, n), when the ops ``after`` the circuit are affine and its
    readout is <Z>: then margin_j = <H_j> + const with H_j = sum_k D_jk Z_k, ||H_j|| <= sum_k |D_jk|.

    Second-order Taylor bound around the box's centre c: every second derivative of <H> with
    respect to two encoding angles is at most ||H|| (times the encodings of each), so
    margin_j(a) >= margin_j(c) - sum_q |d margin_j / d a_q| r_q - ||H_j|| R² (sum_q r_q)² / 2,
    R the times each angle is encoded. With ``zonotope_slack`` (B, K-1) the first-order term
    is replaced by it (the exact linear term over the ball of inputs, when the angles are an
    affine image of the inputs). The Lipschitz bound margin_j(c) - ||H_j|| R sum_q r_q is taken
    where it is tighter.
    """
    centre = ((low + high) / 2).double().requires_grad_(True)
    radius = ((high - low) / 2).double()
    with torch.enable_grad():
        values = circuit.layer(centre)                                    # (B, n_out)
        jacobian = torch.stack([torch.autograd.grad(values[:, k].sum(), centre, retain_graph=True)[0]
                                for k in range(values.shape[1])], dim=1)  # (B, n_out, n)
    values = values.detach()
    weight, offset = dense(_Sequence(after), (values.shape[1],))           # logits = weight @ o + offset
    weight, offset = weight.double(), offset.double()
    others = torch.stack([torch.tensor([j for j in range(n_classes) if j != label]) for label in y.tolist()])
    rows = weight[y][:, None, :] - weight[others]                          # (B, K-1, n_out): D
    shift = offset[y][:, None] - offset[others]
    margin = (rows * values[:, None, :]).sum(-1) + shift                   # (B, K-1)
    gradient = rows @ jacobian                                             # (B, K-1, n)
    norm = rows.abs().sum(-1)                                              # ||H_j|| bound
    first = (gradient.abs() * radius[:, None, :]).sum(-1) if zonotope_slack is None else zonotope_slack.double()
    total = radius.sum(dim=1, keepdim=True)
    taylor = margin - first - norm * circuit.repeats ** 2 * total ** 2 / 2
    lipschitz = margin - norm * circuit.repeats * total
    return torch.maximum(taylor, lipschitz).min(dim=1).values.float()


class _Sequence(nn.Module):
    def __init__(self, ops):
        super().__init__()
        self.ops = list(ops)

    def forward(self, x):
        for op in self.ops:
            x = op(x)
        return x


def zonotope_first_order(ops_before, circuit: Circuit, after, low: torch.Tensor, high: torch.Tensor,
                         y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """For angles that are an affine image of the inputs (``ops_before`` affine): the exact
    first-order term sum_i |d margin_j / d x_i| rho_i (B, K-1) over the box of inputs [low,
    high] (centre x_c, half-widths rho), by the chain rule through the affine map."""
    centre = ((low + high) / 2).requires_grad_(True)
    with torch.enable_grad():
        angles = _Sequence(ops_before)(centre)
        logits = _Sequence(after)(circuit(angles))
        others = torch.stack([torch.tensor([j for j in range(n_classes) if j != label]) for label in y.tolist()])
        margins = logits.gather(1, y[:, None]) - logits.gather(1, others)  # (B, K-1)
        grads = torch.stack([torch.autograd.grad(margins[:, j].sum(), centre, retain_graph=True)[0]
                             for j in range(margins.shape[1])], dim=1)
    rho = (high - low) / 2
    return (grads.abs() * rho[:, None]).reshape(len(y), margins.shape[1], -1).sum(-1).detach()
