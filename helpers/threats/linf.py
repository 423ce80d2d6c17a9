"""The L∞ threat model: every input feature moves by at most ε."""
from __future__ import annotations

import torch

from ..registry import THREAT_MODELS
from .base import PIXEL_MAX, PIXEL_MIN, ThreatModel


@THREAT_MODELS.register
class LInf(ThreatModel):
    """L∞: ||δ||∞ <= ε. The projection onto the ball ∩ [0, 1] is exact (a clip per feature);
    a random start is uniform in the ball (clipped to [0, 1]); a step follows sign(g)."""

    name, label, norm_name = "linf", "L∞", "L∞"
    measured = "the largest change of any input feature, inputs in [0, 1]"
    certified_by = "interval and CROWN bounds over the box, Lipschitz with the L∞ constant"

    def norm(self, delta):
        return delta.reshape(len(delta), -1).abs().amax(dim=1)

    def project(self, x_adv, x, epsilon):
        return torch.clamp(torch.minimum(torch.maximum(x_adv, x - epsilon), x + epsilon), PIXEL_MIN, PIXEL_MAX)

    def random_start(self, x, epsilon, gen):
        noise = torch.rand(x.shape, generator=gen, dtype=x.dtype).to(x.device)
        return self.project(x + (2 * noise - 1) * epsilon, x, epsilon)

    def direction(self, grad):
        return grad.sign()

    @classmethod
    def diameter(cls, features):
        return 1.0
