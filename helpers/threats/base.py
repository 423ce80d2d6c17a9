"""What every threat model owns (see ``ThreatModel``)."""
from __future__ import annotations

from typing import ClassVar

import torch

from ..registry import Component

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

    def norm(self, delta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def project(self, x_adv: torch.Tensor, x: torch.Tensor, epsilon: float) -> torch.Tensor:
        raise NotImplementedError

    def random_start(self, x: torch.Tensor, epsilon: float, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def max_epsilon(self, x: torch.Tensor) -> float:
        raise NotImplementedError

    def check_epsilon(self, epsilon: float, x: torch.Tensor | None = None) -> None:
        """A ``ValueError`` unless 0 <= epsilon (<= the box's diameter for inputs like ``x``)."""
        top = self.max_epsilon(x) if x is not None else float("inf")
        if not 0 <= epsilon <= top + 1e-9:
            raise ValueError(f"epsilon ({self.name}) must lie in [0, {top:g}], got {epsilon}")
