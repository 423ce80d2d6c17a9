"""The fast gradient sign method."""
from __future__ import annotations

from dataclasses import dataclass

from ..params import Params
from ..registry import ATTACKS
from .base import Attack, eot_samples_param, input_gradient, project


@ATTACKS.register
class FGSM(Attack):
    """Fast gradient sign method (Goodfellow et al. 2015): one step of size epsilon along the
    sign of the input gradient of the cross-entropy."""

    name, label = "fgsm", "FGSM"
    tags = frozenset({"gradient"})

    @dataclass(frozen=True)
    class Params(Params):
        eot_samples: int = eot_samples_param()

    def perturb(self, model, x, y, epsilon):
        samples = self.params.eot_samples
        return project(x + epsilon * input_gradient(model, x, y, samples=samples).sign(), x, epsilon).detach()
