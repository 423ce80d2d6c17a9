"""Projected gradient descent in a threat model other than L∞ (its own norm's steepest step and
projection, ``helpers/threats``), and its L2 entry."""
from __future__ import annotations


import torch

from ..registry import ATTACKS
from ..threats import threat_model
from .base import Attack, generator, input_gradient
from .pgd import pgd_params


def pgd_in(norm: str, model, x: torch.Tensor, y: torch.Tensor, epsilon: float, *, steps: int, step_ratio: float,
           random_start: bool, seed: int, loss=None, samples: int = 1) -> torch.Tensor:
    """PGD in threat model ``norm`` on inputs ``x`` (B, ...) in [0, 1], labels ``y``: ``steps``
    steps of ``step_ratio * epsilon`` along the threat model's steepest-ascent direction of
    ``loss(logits, y)`` (default: cross-entropy; L2: the per-sample g / ||g||_2), each followed
    by its projection onto the ε-ball ∩ [0, 1] (L2: exact, ``threats.l2``), from a random point
    of the ball when ``random_start``. On a randomised model each gradient is the mean of
    ``samples`` passes (EOT)."""
    threat = threat_model(norm)
    x_adv = threat.random_start(x, epsilon, generator(seed)) if random_start else x.clone()
    step = step_ratio * epsilon
    for _ in range(steps):
        grad = input_gradient(model, x_adv, y, loss, samples)
        x_adv = threat.project(x_adv + step * threat.direction(grad), x, epsilon).detach()
    return x_adv


class NormPGD(Attack):
    """PGD (Madry et al. 2018) in the threat model of its ``norms``: steepest-ascent steps of
    ``step_ratio``·ε on the cross-entropy, each projected onto the ε-ball ∩ [0, 1] (``pgd_in``).
    A subclass names itself, its norm and its ``Params`` (``pgd_params``)."""

    tags = frozenset({"gradient"})

    def perturb(self, model, x, y, epsilon):
        p = self.params
        return pgd_in(self.norms[0], model, x, y, epsilon, steps=p.steps, step_ratio=p.step_ratio,
                      random_start=p.random_start, seed=self.seed, samples=p.eot_samples)


@ATTACKS.register
class PGDL2(NormPGD):
    """PGD in L2 (Madry et al. 2018): normalised-gradient steps g / ||g||_2 of ``step_ratio``·ε
    on the cross-entropy, each followed by the exact projection onto the L2 ε-ball ∩ [0, 1]."""

    name, label = "pgd_l2", "PGD-L2"
    norms = ("l2",)
    uses = ("helpers.attacks.pgd", "helpers.threats.l2", "helpers.threats.base")

    Params = pgd_params(20, 0.25, ball="L2 ε-ball")
