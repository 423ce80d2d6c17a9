"""The fast gradient sign method."""
from __future__ import annotations

from ..registry import ATTACKS
from .base import Attack, input_gradient, project


@ATTACKS.register
class FGSM(Attack):
    """Fast gradient sign method (Goodfellow et al. 2015): one step of size epsilon along the
    sign of the input gradient of the cross-entropy."""

    name, label = "fgsm", "FGSM"
    tags = frozenset({"gradient"})

    def perturb(self, model, x, y, epsilon):
        return project(x + epsilon * input_gradient(model, x, y).sign(), x, epsilon).detach()
