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
    the output scale)."""

    name, label = "lipschitz", "Lipschitz bound"
    uses = ("helpers.certificates.bounds",)

    @classmethod
    def applies(cls, model):
        return bounds_apply(model)

    @torch.no_grad()
    def certify(self, model, x, y, epsilon):
        logits = model(x)
        constant = lipschitz_constant(model.bound_ops(), tuple(x.shape[1:]))
        return (margin_lower_bound(logits, logits, y) > 2 * constant * epsilon + MARGIN).cpu().numpy()
