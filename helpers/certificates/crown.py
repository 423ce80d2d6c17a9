"""CROWN: a linear lower bound of each margin as a function of the input."""
from __future__ import annotations

import torch

from ..registry import CERTIFICATES
from .base import Certificate
from .bounds import MARGIN, bounds_apply, crown_margin_lower_bound, input_box


@CERTIFICATES.register
class CROWN(Certificate):
    """CROWN-IBP (Zhang et al. 2018; 2020): the margins bounded from below by one linear
    function of the input, relaxing every ReLU between interval bounds of its input; through
    an op it cannot relax (tanh, max pooling, a circuit) it starts from that op's interval
    bounds instead. Tighter than intervals for networks of linear and ReLU layers."""

    name, label = "crown", "CROWN (linear relaxation)"
    uses = ("helpers.certificates.bounds",)
    norms = ("linf", "l2")

    @classmethod
    def applies(cls, model):
        return bounds_apply(model)

    @torch.no_grad()
    def certify(self, model, x, y, epsilon):
        n_classes = int(model(x[:1]).shape[1])
        bound = crown_margin_lower_bound(model.bound_ops(), *input_box(x, epsilon), y, n_classes)
        return (bound > MARGIN).cpu().numpy()

    @torch.no_grad()
    def certify_norm(self, model, x, y, epsilon, norm):
        """In L2: the ReLUs relaxed between interval bounds over the enclosing L∞ box, and
        the final linear bound, where it reaches the input, minimised over the L2 ball itself
        (a·x − ε‖a‖₂: the dual norm), which is much tighter than the box's corners."""
        if norm == "linf":
            return self.certify(model, x, y, epsilon)
        n_classes = int(model(x[:1]).shape[1])
        bound = crown_margin_lower_bound(model.bound_ops(), *input_box(x, epsilon), y, n_classes,
                                         l2_ball=(x, epsilon))
        return (bound > MARGIN).cpu().numpy()
