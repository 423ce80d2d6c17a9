"""Interval bound propagation, refined by branch and bound on a circuit's angles."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.ops import Circuit
from ..params import Integer, Params, param
from ..registry import CERTIFICATES
from .base import Certificate
from .bounds import (AFFINE, MARGIN, bounds_apply, circuit_margin_bound, input_box, interval_step, interval_trace,
                     margin_lower_bound, zonotope_first_order)


@CERTIFICATES.register
class IntervalBounds(Certificate):
    """Interval bound propagation through every op of the model (``bounds``). For a model
    with a variational circuit the box of the circuit's angles is split (branch and bound,
    along its widest side) until every part's bound certifies the point or ``splits`` parts
    have been tried: the circuit sees the ε-ball only through a few angles, so a handful of
    splits tighten its Lipschitz bound a lot."""

    name, label = "interval", "interval bounds (+ branch and bound on circuits)"
    uses = ("helpers.certificates.bounds",)
    norms = ("linf", "l2")  # L2 through the enclosing L∞ box (``Certificate.certify_norm``)

    @classmethod
    def applies(cls, model):
        return bounds_apply(model)

    @dataclass(frozen=True)
    class Params(Params):
        splits: int = param(64, Integer(1), "largest number of boxes of a circuit's angles tried per point")

    def bound(self, ops, x, y, epsilon) -> torch.Tensor:
        """Margin lower bounds (B,) for the ball, the circuit's angle box split as far as allowed."""
        trace = interval_trace(ops, *input_box(x, epsilon))
        circuits = [i for i, op in enumerate(ops) if isinstance(op, Circuit)]
        if not circuits:
            return margin_lower_bound(*trace[-1], y)
        k = circuits[0]
        low, high = trace[k]
        circuit, after = ops[k], ops[k + 1:]
        n_classes = int(trace[-1][0].shape[1])
        taylor = circuit.layer.readout == "expval" and all(isinstance(op, AFFINE) for op in after)
        if taylor:
            slack = (zonotope_first_order(ops[:k], circuit, after, *trace[0], y, n_classes)
                     if all(isinstance(op, AFFINE) for op in ops[:k]) else None)
            root = circuit_margin_bound(circuit, after, low, high, y, n_classes, slack)

        def box_bound(owner, lo, hi):
            if taylor:
                return circuit_margin_bound(circuit, after, lo, hi, y[owner], n_classes)
            return margin_lower_bound(*self._through(ops[k:], lo, hi), y[owner])

        # Boxes still open: their sample, and their corners; a sample is certified when all of its are.
        owner, lo, hi = torch.arange(len(x)), low.clone(), high.clone()
        boxes = torch.ones(len(x), dtype=torch.long)
        worst = torch.full((len(x),), float("inf"))
        while len(owner):
            bounds = box_bound(owner, lo, hi)
            if taylor and len(owner) == len(x) and (owner == torch.arange(len(x))).all():
                bounds = torch.maximum(bounds, root)  # the root boxes: the exact linear term over the ball
            failed = bounds <= MARGIN
            # A failed box splits in two if its sample may still try more boxes; else the sample fails.
            budget = boxes[owner] < self.params.splits
            worst.scatter_reduce_(0, owner[~failed], bounds[~failed], reduce="amin")
            give_up = failed & ~budget
            worst.scatter_reduce_(0, owner[give_up], bounds[give_up], reduce="amin")
            split = failed & budget
            owner, lo, hi = owner[split], lo[split], hi[split]
            if not len(owner):
                break
            boxes.scatter_add_(0, owner, torch.ones_like(owner))
            side = (hi - lo).argmax(dim=1, keepdim=True)
            middle = (lo.gather(1, side) + hi.gather(1, side)) / 2
            owner = torch.cat([owner, owner])
            lo = torch.cat([lo, lo.scatter(1, side, middle)])
            hi = torch.cat([hi.scatter(1, side, middle), hi])
        return worst

    @staticmethod
    def _through(ops, low, high):
        for op in ops:
            low, high = interval_step(op, low, high)
        return low, high

    @torch.no_grad()
    def certify(self, model, x, y, epsilon):
        ops = model.bound_ops()
        return (self.bound(ops, x, y, epsilon) > MARGIN).cpu().numpy()
