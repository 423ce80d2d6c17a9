"""Auto-PGD in the L2 threat model (Croce & Hein 2020): ``apgd.apgd``'s step-size schedule and
best-iterate bookkeeping, with the L2 step (g / ||g||_2) and the L2 projection."""
from __future__ import annotations

import torch.nn.functional as F

from ..registry import ATTACKS
from .apgd import APGDAttack
from .base import never_worse


@ATTACKS.register
class APGDL2(APGDAttack):
    """APGD on the cross-entropy in L2: the schedule of ``apgd_ce`` (the step starts at 2ε and
    halves at the paper's checkpoints), normalised-gradient steps and the projection onto the
    L2 ε-ball ∩ [0, 1]."""

    name, label = "apgd_l2", "APGD-CE-L2"
    norms = ("l2",)
    uses = ("helpers.attacks.apgd", "helpers.threats.l2", "helpers.threats.base")

    def loss(self, logits, y, index):
        return F.cross_entropy(logits, y, reduction="none")

    def perturb(self, model, x, y, epsilon):
        return never_worse(model, x, y, super().perturb(model, x, y, epsilon), self.params.eot_samples)
