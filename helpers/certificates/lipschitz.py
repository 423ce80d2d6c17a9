"""A global Lipschitz bound of the logits: the simplest certificate, and the loosest."""
from __future__ import annotations

import torch

from ..registry import CERTIFICATES
from .base import Certificate
from .bounds import MARGIN, bounds_apply, lipschitz_constant, margin_lower_bound


@CERTIFICATES.register
class Lipschitz(Certificate):
    """A point is certified when its smallest margin exceeds 2·L·ε, L an upper bound on the
    L∞ → L∞ Lipschitz constant of the logits (``bounds.lipschitz_constant``: the product of
    the layers' bounds; for an angle-encoded circuit the Berberich et al. 2024 bound on the
    derivative of each expectation with respect to each angle, chained through the PCA and
    the output scale). In L2, L bounds the L2 -> L∞ constant (the first mixing layer's
    largest row L2 norm in place of its row sum)."""

    name, label = "lipschitz", "Lipschitz bound"
    uses = ("helpers.certificates.bounds",)
    norms = ("linf", "l2")

    @classmethod
    def applies(cls, model):
        return bounds_apply(model)

    @torch.no_grad()
    def certify(self, model, x, y, epsilon):
        return self.certify_norm(model, x, y, epsilon, "linf")

    @torch.no_grad()
    def certify_norm(self, model, x, y, epsilon, norm):
        """In L2, L is the L2 -> L∞ constant (``lipschitz_constant(..., norm="l2")``: the first
        mixing layer's largest row L2 norm instead of its row sum)."""
        logits = model(x)
        constant = lipschitz_constant(model.bound_ops(), tuple(x.shape[1:]), norm)
        return (margin_lower_bound(logits, logits, y) > 2 * constant * epsilon + MARGIN).cpu().numpy()
