"""What every threat model owns (see ``ThreatModel``)."""
from __future__ import annotations

from typing import ClassVar

import dataclasses

import torch

from ..params import Params, check
from ..registry import ATTACKS, Component

PIXEL_MIN, PIXEL_MAX = 0.0, 1.0


def flat(x: torch.Tensor) -> torch.Tensor:
    """``x`` (B, ...) as (B, D)."""
    return x.reshape(len(x), -1)


def per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-sample values (B,) shaped to broadcast against ``like`` (B, ...)."""
    return values.view((-1,) + (1,) * (like.dim() - 1))


class ThreatModel(Component):
    """A threat model of the ``THREAT_MODELS`` registry: inputs in [0, 1] and perturbations
    bounded by ``epsilon`` in one norm. It owns

    - ``norm(delta)``: the norm (B,) of perturbations ``delta`` (B, ...);
    - ``project(x_adv, x, epsilon)``: a point of the ε-ball around ``x`` inside [0, 1] (B, ...),
      for any ``x_adv``; the identity on such points;
    - ``random_start(x, epsilon, gen)``: a random point of the ε-ball (inside [0, 1]);
    - ``direction(grad)``: the unit-norm steepest-ascent direction of a gradient step (the
      dual norm's maximiser: the sign for L∞, ``g / ||g||_2`` for L2);
    - ``max_epsilon(x)``: the largest budget that is not vacuous for inputs shaped like ``x``
      (the diameter of the box [0, 1]^D in this norm), for the checks of a budget.
    """

    norm_name: ClassVar[str]  # what figures call the norm: "L∞", "L2"
    # A threat model beside the primary one: its config block ``attack.<name>`` (a ``Budgets``
    # subclass: its budgets and attacks) and the attack run at its masking budgets.
    Budgets: ClassVar[type[Budgets] | None] = None
    large_attack: ClassVar[str | None] = None
    measured: ClassVar[str]  # what the norm measures, for the report's prose
    certified_by: ClassVar[str]  # how the bound certificates bound a ball of this norm (the report's bracket)

    def norm(self, delta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def project(self, x_adv: torch.Tensor, x: torch.Tensor, epsilon: float) -> torch.Tensor:
        raise NotImplementedError

    def random_start(self, x: torch.Tensor, epsilon: float, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def diameter(cls, features: int) -> float:
        """The diameter of the box [0, 1]^features in this norm: no budget can be larger."""
        raise NotImplementedError

    def max_epsilon(self, x: torch.Tensor) -> float:
        return self.diameter(x[0].numel())

    def check_epsilon(self, epsilon: float, x: torch.Tensor | None = None) -> None:
        """A ``ValueError`` unless 0 <= epsilon (<= the box's diameter for inputs like ``x``)."""
        top = self.max_epsilon(x) if x is not None else float("inf")
        if not 0 <= epsilon <= top + 1e-9:
            raise ValueError(f"epsilon ({self.name}) must lie in [0, {top:g}], got {epsilon}")


@dataclasses.dataclass(frozen=True)
class Budgets(Params):
    """Base of a threat model's config block ``attack.<norm>`` (absent: the threat model is not
    evaluated): a subclass declares ``epsilons``, ``methods``, ``transfer_from`` and
    ``masking_epsilons`` with the threat model's defaults; its attacks' parameters stay under
    ``attack.<name>``, as every attack's."""

    norm: ClassVar[str]

    def check(self, where):
        supported = [e.name for e in ATTACKS.entries() if self.norm in e.norms]
        for key, names in (("methods", self.methods), ("transfer_from", [self.transfer_from] if self.transfer_from else [])):
            for name in names:
                check(self.norm in ATTACKS[name].norms,
                      f"{where}.{key}: {name} does not support the {self.norm} norm (it supports "
                      f"{list(ATTACKS[name].norms)}); {self.norm} attacks: {supported}")
        check(self.transfer_from is None or self.transfer_from in self.methods,
              f"{where}.transfer_from must be null or one of {where}.methods {list(self.methods)}, "
              f"got {self.transfer_from!r}")
