"""Projected gradient descent in the L2 threat model."""
from __future__ import annotations


import torch

from ..registry import ATTACKS
from ..threats import threat_model
from .base import Attack, generator, input_gradient
from .pgd import pgd_params


def pgd_l2(model, x: torch.Tensor, y: torch.Tensor, epsilon: float, *, steps: int, step_ratio: float,
           random_start: bool, seed: int, loss=None, samples: int = 1) -> torch.Tensor:
    """L2 PGD on inputs ``x`` (B, ...) in [0, 1], labels ``y``: ``steps`` steps of
    ``step_ratio * epsilon`` along the per-sample normalised gradient g / ||g||_2 of
    ``loss(logits, y)`` (default: cross-entropy), each followed by the exact projection onto
    the L2 ε-ball ∩ [0, 1] (``threats.l2``), from a uniform random point of the ball when
    ``random_start``. On a randomised model each gradient is the mean of ``samples`` passes (EOT)."""
    threat = threat_model("l2")
    x_adv = threat.random_start(x, epsilon, generator(seed)) if random_start else x.clone()
    step = step_ratio * epsilon
    for _ in range(steps):
        grad = input_gradient(model, x_adv, y, loss, samples)
        x_adv = threat.project(x_adv + step * threat.direction(grad), x, epsilon).detach()
    return x_adv


@ATTACKS.register
class PGDL2(Attack):
    """PGD in L2 (Madry et al. 2018): normalised-gradient steps of ``step_ratio``·ε on the
    cross-entropy, each projected onto the L2 ε-ball ∩ [0, 1]."""

    name, label = "pgd_l2", "PGD-L2"
    tags = frozenset({"gradient"})
    norms = ("l2",)
    uses = ("helpers.attacks.pgd", "helpers.threats.l2", "helpers.threats.base")

    Params = pgd_params(20, 0.25, ball="L2 ε-ball")

    def perturb(self, model, x, y, epsilon):
        p = self.params
        return pgd_l2(model, x, y, epsilon, steps=p.steps, step_ratio=p.step_ratio, random_start=p.random_start,
                      seed=self.seed, samples=p.eot_samples)
