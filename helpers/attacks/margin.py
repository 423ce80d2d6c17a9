"""PGD on the Carlini-Wagner margin instead of the cross-entropy: untargeted, and targeted at
every other class in turn (Carlini & Wagner 2017; the margin losses AutoAttack's DLR builds on).

The cross-entropy saturates: when a model is confidently right, softmax rounds to one-hot in
float32 and its input gradient vanishes, so PGD on it stands still (a masking risk for models
with large logit scales). The margin (true logit minus the largest other) keeps its gradient.
"""
from __future__ import annotations


import torch

from ..registry import ATTACKS
from .base import Attack, expected_fooled, margin, mean_over_passes
from .pgd import pgd, pgd_params


MarginParams = pgd_params(20, 0.25, steps_doc="iterations (per target for the targeted attack)")


@ATTACKS.register
class MarginPGD(Attack):
    """PGD ascending the negative margin, max_j≠y z_j - z_y, per sample."""

    name, label = "pgd_margin", "PGD, margin loss"
    tags = frozenset({"gradient"})
    Params = MarginParams

    def perturb(self, model, x, y, epsilon):
        p = self.params
        return pgd(model, x, y, epsilon, steps=p.steps, step_ratio=p.step_ratio, random_start=p.random_start,
                   seed=self.seed, loss=lambda logits, labels: -margin(logits, labels), samples=p.eot_samples)


@ATTACKS.register
class TargetedPGD(Attack):
    """Targeted PGD against every other class t in turn (t = y + 1, y + 2, ... mod classes),
    ascending the target's margin z_t - max_j≠t z_j; a sample counts as fooled if any target
    fools it, and keeps the first example that does (the others keep the first target's)."""

    name, label = "pgd_targeted", "PGD, targeted at every class"
    tags = frozenset({"gradient"})
    Params = MarginParams

    def perturb(self, model, x, y, epsilon):
        p = self.params
        n_classes = mean_over_passes(model, x[:1], lambda logits: logits).shape[1]
        best, robust = None, torch.ones(len(x), dtype=torch.bool, device=x.device)
        for offset in range(1, n_classes):
            idx = robust.nonzero().squeeze(1)
            if len(idx) == 0:
                break
            target = (y[idx] + offset) % n_classes
            candidate = pgd(model, x[idx], target, epsilon, steps=p.steps, step_ratio=p.step_ratio,
                            random_start=p.random_start, seed=self.seed + offset - 1, loss=margin,
                            samples=p.eot_samples)
            if best is None:
                best = candidate.clone()
            fooled = expected_fooled(model, candidate, y[idx], p.eot_samples)
            best[idx[fooled]] = candidate[fooled]
            robust[idx[fooled]] = False
        return best
