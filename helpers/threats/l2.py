"""The L2 threat model: the perturbation's Euclidean norm is at most ε."""
from __future__ import annotations

import dataclasses

import torch

from ..params import Choice, ListOf, Number, Optional, param
from ..registry import ATTACKS, THREAT_MODELS
from .base import PIXEL_MAX, PIXEL_MIN, Budgets, ThreatModel, flat, per_sample

BISECTION_STEPS = 30  # halvings of the multiplier's bracket: 2^-30 of its initial width
TINY = 1e-12


def ball(delta: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``delta`` (B, ...) scaled into the L2 ball of radius ``epsilon`` (the identity inside)."""
    norms = flat(delta).norm(dim=1)
    factor = torch.clamp(epsilon / (norms + TINY), max=1.0)
    return delta * per_sample(factor, delta)


def project_ball_box(x_adv: torch.Tensor, x: torch.Tensor, epsilon: float) -> torch.Tensor:
    """The exact Euclidean projection of ``x_adv`` onto {z : ||z - x||_2 <= ε} ∩ [0, 1]^D.

    By the KKT conditions the projection is z(λ) = clip(x + (x_adv - x) / (1 + λ), 0, 1) for
    the smallest λ >= 0 with ||z(λ) - x||_2 <= ε; ||z(λ) - x||_2 falls monotonically in λ, so
    λ is found by bisection (per sample), and the result is then scaled into the ball (a
    final guard against the bisection's last bit: z stays in the box, since x and z both are
    and the box is convex). x itself must lie in the box."""
    z0 = torch.clamp(x_adv, PIXEL_MIN, PIXEL_MAX)
    inside = flat(z0 - x).norm(dim=1) <= epsilon
    if bool(inside.all()):
        return z0
    delta = x_adv - x

    def distance(lam):
        z = torch.clamp(x + delta / per_sample(1 + lam, delta), PIXEL_MIN, PIXEL_MAX)
        return flat(z - x).norm(dim=1)

    low = torch.zeros(len(x), dtype=x.dtype, device=x.device)
    high = torch.ones_like(low)
    for _ in range(60):  # grow the bracket until every sample is inside the ball
        outside = distance(high) > epsilon
        if not bool(outside.any()):
            break
        high = torch.where(outside, high * 4, high)
    for _ in range(BISECTION_STEPS):
        middle = (low + high) / 2
        outside = distance(middle) > epsilon
        low, high = torch.where(outside, middle, low), torch.where(outside, high, middle)
    z = torch.clamp(x + delta / per_sample(1 + high, delta), PIXEL_MIN, PIXEL_MAX)
    z = x + ball(z - x, epsilon)
    return torch.where(per_sample(inside, x), z0, z)


@dataclasses.dataclass(frozen=True)
class L2Budgets(Budgets):
    """``attack.l2``: the L2 threat model's budgets and attacks (its attacks' parameters stay
    under ``attack.<name>``, as every attack's). Absent: no L2 evaluation at all."""

    norm = "l2"

    epsilons: tuple[float, ...] = param([0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0], ListOf(Number(0), nonempty=True),
                                        "L2 budgets in input units (the norm of the perturbation over all features)")
    methods: tuple[str, ...] = param(["pgd_l2", "apgd_l2", "square_l2", "cw_l2"], ListOf(Choice(ATTACKS.names), nonempty=True, unique=True),
                                     "L2 attacks to run (each must support the l2 norm); the per-sample worst case "
                                     "over them is always added")
    transfer_from: str | None = param("pgd_l2", Optional(Choice(ATTACKS.names)),
                                      "L2 attack whose examples each model passes to every other (null: none)")
    masking_epsilons: tuple[float, ...] = param([4.0], ListOf(Number(0, open="low")),
                                                "large L2 budgets where PGD-L2 must drive every model to ~0 "
                                                "(masking check)")


@THREAT_MODELS.register
class L2(ThreatModel):
    """L2: ||δ||₂ <= ε (δ over all input features, flattened). ``project`` is the exact
    Euclidean projection onto the ball ∩ [0, 1] (bisection on the KKT multiplier,
    ``project_ball_box``), so an attack's iterate is always in the ball and in the box; a
    random start is uniform in the ball (direction uniform on the sphere, radius ε·U^(1/D)),
    then projected; a step follows g / ||g||₂ per sample."""

    name, label, norm_name = "l2", "L2", "L2"
    Budgets, large_attack = L2Budgets, "pgd_l2"
    measured = "the norm over all input features, inputs in [0, 1]"
    certified_by = ("interval through the enclosing L∞ box, which contains the L2 ball: sound and loose; CROWN "
                    "with its linear bound minimised over the L2 ball; Lipschitz with the L2 → L∞ constant")

    def norm(self, delta):
        return flat(delta).norm(dim=1)

    def project(self, x_adv, x, epsilon):
        return project_ball_box(x_adv, x, epsilon)

    def random_start(self, x, epsilon, gen):
        direction = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
        direction = direction / per_sample(flat(direction).norm(dim=1) + TINY, direction)
        d = flat(x).shape[1]
        radius = torch.rand(len(x), generator=gen, dtype=x.dtype).to(x.device) ** (1.0 / d) * epsilon
        return self.project(x + direction * per_sample(radius, x), x, epsilon)

    def direction(self, grad):
        return grad / per_sample(flat(grad).norm(dim=1) + TINY, grad)

    @classmethod
    def diameter(cls, features):
        return float(features) ** 0.5
