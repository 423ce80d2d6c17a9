"""Certified training: the loss of a bound on the worst case, not of an attack's example.

IBP training (Gowal et al. 2018) descends κ·CE(clean) + (1 − κ)·CE(worst-case logits), the
worst-case logits read off the interval bounds of the certificates (``bounds.interval_step``,
the same rules, kept in the graph so the gradient reaches the weights): the true class's
lower bound against every other class's upper bound. On a circuit those are the interval
certificate's bounds over the encoding angles (its value at the box's centre ± the Lipschitz
bound times the box's radii), so the same loss trains both families. CROWN-IBP (Zhang et al.
2020) bounds the margins by a linear function of the input instead (CROWN's backward pass
with IBP bounds for the ReLUs' inputs) and mixes the two, β·CROWN-IBP + (1 − β)·IBP.

The schedule is counted in optimiser steps (batches), as those papers state theirs: ε is 0 for
``warmup`` steps, then grows linearly to ``epsilon`` over ``ramp`` steps while κ falls from 1 to
``kappa`` (and β from 1 to 0), and stays there. A defence object trains one model: it counts
the batches it has seen.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..certificates.bounds import RELAXABLE, interval_step
from ..params import ConfigError, Integer, Number, Params, param
from ..registry import DEFENCES, MODELS
from .base import Defence

# The certificates' interval rule without its ``no_grad``: the same arithmetic, differentiable.
propagate = interval_step.__wrapped__


def schedule(step: int, warmup: int, ramp: int) -> float:
    """The share (0 to 1) of the full ε reached at optimiser step ``step`` (0-based)."""
    if step < warmup:
        return 0.0
    return 1.0 if ramp == 0 else min(1.0, (step - warmup + 1) / ramp)


def interval_margins(ops, low: torch.Tensor, high: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, list]:
    """Lower bounds (B, K) on logit_y − logit_j for inputs in [low, high] from interval bounds
    (0 at j = y), and the boxes at every op's input (CROWN-IBP's ReLU bounds)."""
    trace = [(low, high)]
    for op in ops:
        trace.append(propagate(op, *trace[-1]))
    low, high = trace[-1]
    true = low.gather(1, y[:, None])
    return true - high.scatter(1, y[:, None], true), trace


def affine_parts(op: nn.Module, shape: tuple[int, ...], device) -> tuple[torch.Tensor, torch.Tensor]:
    """An affine op on inputs of ``shape`` as (W (out, in), b (out,)) on flattened tensors,
    differentiable in the op's parameters."""
    size = int(torch.tensor(shape).prod())
    zero = op(torch.zeros(1, *shape, device=device)).reshape(-1)
    basis = torch.eye(size, device=device).reshape(size, *shape)
    return (op(basis).reshape(size, -1) - zero).T, zero


def crown_margins(ops, trace: list, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """CROWN-IBP lower bounds (B, K) on logit_y − logit_j (0 at j = y): a backward linear bound
    through the trailing affine and ReLU ops, ReLU relaxed with the interval bounds of its
    input (the adaptive lower slope of CROWN), concretised on the box where it stops."""
    start = 1 + max([i for i, op in enumerate(ops) if not isinstance(op, RELAXABLE)], default=-1)
    batch, device = len(y), y.device
    eye = torch.eye(n_classes, device=device)
    coefficients = eye[y][:, None, :] - eye[None, :, :]          # (B, K, K): row j is e_y − e_j
    bias = torch.zeros(batch, n_classes, device=device)
    for i in reversed(range(start, len(ops))):
        op, (lo, hi) = ops[i], trace[i]
        lo, hi = lo.reshape(batch, -1), hi.reshape(batch, -1)
        if isinstance(op, nn.ReLU):
            unstable = (lo < 0) & (hi > 0)
            upper = torch.where(unstable, hi / (hi - lo).clamp_min(1e-12), (lo >= 0).to(lo.dtype))
            lower = torch.where(unstable, (hi >= -lo).to(lo.dtype), (lo >= 0).to(lo.dtype))
            positive = coefficients >= 0
            bias = bias + torch.where(positive, 0.0, coefficients * (-upper * lo * unstable)[:, None, :]).sum(-1)
            coefficients = coefficients * torch.where(positive, lower[:, None, :], upper[:, None, :])
        else:
            weight, offset = affine_parts(op, tuple(trace[i][0].shape[1:]), device)
            bias = bias + coefficients @ offset
            coefficients = coefficients @ weight
    lo, hi = (t.reshape(batch, -1) for t in trace[start])
    return bias + (coefficients.clamp(min=0) * lo[:, None, :] + coefficients.clamp(max=0) * hi[:, None, :]).sum(-1)


class BoundTraining(Defence):
    """What IBP and CROWN-IBP training share: the schedule, the clean term and the worst-case
    logits (−margins: cross-entropy is unchanged by adding a constant to a row)."""

    strength = "epsilon"

    def __init__(self, params=None):
        super().__init__(params)
        self.step = 0

    @classmethod
    def check_model(cls, model_type, model_params, where):
        if getattr(model_params, "encoding", None) == "amplitude":
            raise ConfigError(f"{where}: {cls.name} needs interval bounds of the model; amplitude encoding has none "
                              "(the state's normalisation): use encoding angle or affine")

    def margins(self, ops, low: torch.Tensor, high: torch.Tensor, y: torch.Tensor, share: float) -> torch.Tensor:
        """Lower bounds (B, K) on logit_y − logit_j over inputs in [low, high] (0 at j = y), with
        ``share`` of the ramp done."""
        raise NotImplementedError

    def loss(self, model, x, y, seed):
        p, share = self.params, schedule(self.step, self.params.warmup, self.params.ramp)
        self.step += 1
        logits = model(x)
        clean = F.cross_entropy(logits, y)
        if share == 0.0:  # ε = 0: the bounds are the logits, the loss the clean cross-entropy
            return clean, logits
        ops = model.bound_ops()
        if ops is None:
            raise ConfigError(f"defence {self.name} needs a model with interval bounds (bound_ops); "
                              f"{type(model).__name__} has none")
        epsilon = share * p.epsilon
        low, high = (x - epsilon).clamp(0, 1), (x + epsilon).clamp(0, 1)
        worst = -self.margins(ops, low, high, y, share).to(logits.dtype)
        kappa = 1.0 - share * (1.0 - p.kappa)
        return kappa * clean + (1.0 - kappa) * F.cross_entropy(worst, y), logits


@dataclass(frozen=True)
class BoundParams(Params):
    epsilon: float = param(0.1, Number(0, 1, open="low", note="(the input range)"),
                           "training L∞ budget (after the ramp)")
    warmup: int = param(0, Integer(0), "optimiser steps (batches) at ε = 0 before the ramp")
    ramp: int = param(200, Integer(0), "optimiser steps over which ε grows linearly to its value and κ falls")
    kappa: float = param(0.5, Number(0, 1), "weight of the clean cross-entropy after the ramp (1 before it)")


@DEFENCES.register
class IBPTraining(BoundTraining):
    """IBP training (Gowal et al. 2018) for every model with interval bounds: ReLU (and tanh,
    sigmoid, max-pooling) networks and circuits on angle or affine encodings, whose worst-case
    logits are the interval certificate's."""

    name, label = "ibp", "IBP training"
    uses = ("helpers.certificates.bounds",)
    Params = BoundParams

    def margins(self, ops, low, high, y, share):
        return interval_margins(ops, low, high, y)[0]


@DEFENCES.register
class CrownIBPTraining(BoundTraining):
    """CROWN-IBP training (Zhang et al. 2020) for classical networks: the margins' lower bounds
    β·CROWN-IBP + (1 − β)·IBP, β falling from 1 to 0 over the ramp."""

    name, label = "crown_ibp", "CROWN-IBP training"
    uses = ("helpers.certificates.bounds",)
    Params = BoundParams

    @classmethod
    def check_model(cls, model_type, model_params, where):
        if "quantum" in MODELS[model_type].tags:
            raise ConfigError(f"{where}: crown_ibp trains classical networks (its linear bounds stop at a circuit); "
                              "for a circuit use ibp, the interval certificate's bounds")
        super().check_model(model_type, model_params, where)

    def margins(self, ops, low, high, y, share):
        ibp, trace = interval_margins(ops, low, high, y)
        beta = 1.0 - share
        if beta == 0.0:
            return ibp
        return beta * crown_margins(ops, trace, y, ibp.shape[1]) + (1.0 - beta) * ibp
