"""AutoAttack's APGD (Croce & Hein 2020) through the Adversarial Robustness Toolbox."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..params import Integer, Params, param
from ..registry import ATTACKS
from .art import run_art
from .base import Attack


class ARTAPGD(Attack):
    """APGD with ``steps`` iterations and initial step 2 epsilon, on the loss ``art_loss``."""

    tags = frozenset({"gradient"})
    uses = ("helpers.attacks.art",)
    art_loss: str

    @dataclass(frozen=True)
    class Params(Params):
        steps: int = param(50, Integer(1), "iterations")

    def perturb(self, model, x, y, epsilon):
        from art.attacks.evasion import AutoProjectedGradientDescent

        def make(classifier):
            return AutoProjectedGradientDescent(
                classifier, norm=np.inf, eps=epsilon, eps_step=2 * epsilon, max_iter=self.params.steps,
                nb_random_init=1, batch_size=len(x), loss_type=self.art_loss, verbose=False)

        return run_art(make, model, x, y, epsilon, self.seed)


@ATTACKS.register
class APGDCE(ARTAPGD):
    """APGD on the cross-entropy (ART)."""

    name, label, art_loss = "apgd_ce", "APGD-CE", "cross_entropy"


@ATTACKS.register
class APGDDLR(ARTAPGD):
    """APGD on the scale-invariant difference-of-logits-ratio loss (ART); needs >= 3 classes."""

    name, label, art_loss = "apgd_dlr", "APGD-DLR", "difference_logits_ratio"
    min_classes = 3
