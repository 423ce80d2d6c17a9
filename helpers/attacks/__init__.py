"""Attacks in input space, in every threat model (``helpers/threats``: L∞, L2), and robust
accuracy under them.

Every attack is one ``Attack`` entry of the ``ATTACKS`` registry, in a module of this
package (see ``base.Attack``; its ``norms`` say which threat models it runs in):
``ATTACKS[name](params, seed=seed).attack(model, x, y, epsilon)``.
A config's ``attack.<name>`` mapping holds its parameters; ``attack.methods`` picks the
attacks that run.
"""
from __future__ import annotations

from ..models import predict
from ..registry import ATTACKS
from ..threats.base import PIXEL_MAX, PIXEL_MIN
from .base import Attack, check_epsilon, evaluate_attack, input_gradient, margin, project
from .fgsm import FGSM
from .pgd import PGD, pgd
from .square import Square, UniformNoise

__all__ = ["ATTACKS", "Attack", "FGSM", "PGD", "PIXEL_MAX", "PIXEL_MIN", "Square", "UniformNoise", "build_attack",
           "check_epsilon", "evaluate_attack", "input_gradient", "margin", "pgd", "predict", "project"]


def build_attack(name: str, section, seed: int = 0) -> Attack:
    """The attack ``name`` with its parameters from a config's ``attack`` section
    (``config.AttackSection``) and the run's ``seed``."""
    return ATTACKS[name](section.params[name], seed=seed)
