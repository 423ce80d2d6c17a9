"""Universal adversarial perturbations: one δ for a whole data set (not an ``Attack`` entry).

Crafted by stochastic PGD on the mean loss over mini-batches (Shafahi et al. 2020, "Universal
adversarial training"): δ starts at 0; each update takes the next mini-batch of a shuffled
pass over the training points, differentiates the batch's mean loss at clip(x + δ, 0, 1)
with respect to δ, steps along the norm's steepest-ascent direction (L∞: the gradient's sign)
by ``step_ratio * epsilon`` and projects back onto the ε-ball. Applying δ clips every
perturbed input to [0, 1] on its own, so a point near the edge of the box gets less than δ.

Untargeted, the loss pushes every point away from its label; targeted, towards one class t.
``margin`` clips the logit margin at 0 so that points already fooled (or already at t) stop
pulling and the confident majority does not dominate the mean; ``ce`` is the plain mean
cross-entropy. Deterministic given ``seed`` (the shuffling; a randomised model's passes).

The norm enters only through ``NORMS`` (its step direction and projection onto the ball), so
an L2 version is one more entry there.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..threats.base import PIXEL_MAX, PIXEL_MIN
from .base import expected_correct, generator, passes, reseed


class Norm(NamedTuple):
    """What a universal perturbation needs of a threat model's norm."""

    ascent: Callable[[torch.Tensor], torch.Tensor]               # unit-size steepest-ascent step for a gradient
    project: Callable[[torch.Tensor, float], torch.Tensor]       # δ onto the ε-ball around 0
    size: Callable[[torch.Tensor], float]                        # ‖δ‖
    random: Callable[[tuple, float, torch.Generator], torch.Tensor]  # a random δ on the sphere of radius ε


NORMS = {
    "linf": Norm(ascent=torch.sign,
                 project=lambda delta, epsilon: delta.clamp(-epsilon, epsilon),
                 size=lambda delta: float(delta.abs().max()) if delta.numel() else 0.0,
                 # a random sign vector times ε: a corner of the ball, as large as δ in every coordinate
                 random=lambda shape, epsilon, gen: epsilon * (2 * torch.randint(0, 2, shape, generator=gen) - 1).float()),
}


def apply(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """``x`` (N, ...) in [0, 1] perturbed by one ``delta`` (...), each result clipped to [0, 1]."""
    return (x + delta.to(x.device, x.dtype)).clamp(PIXEL_MIN, PIXEL_MAX)


def universal_loss(logits: torch.Tensor, y: torch.Tensor, target: int | None, loss: str) -> torch.Tensor:
    """The mean loss a universal perturbation ascends (B logits against labels ``y``).

    Untargeted (``target`` None): ``ce`` the cross-entropy to the label; ``margin`` the margin
    by which another class beats the label, min(max_{j≠y} z_j − z_y, 0): 0 once a point is fooled.
    Targeted: the negated ``ce`` to class t, or min(z_t − max_{j≠t} z_j, 0): 0 once a point is at t.
    """
    if target is not None:
        y = torch.full_like(y, int(target))
    if loss == "ce":
        value = F.cross_entropy(logits, y)
        return -value if target is not None else value
    true = logits.gather(1, y[:, None])[:, 0]
    other = logits.scatter(1, y[:, None], float("-inf")).max(1).values
    gap = true - other if target is not None else other - true
    return gap.clamp(max=0).mean()


def universal_perturbation(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, *,
                           target: int | None = None, steps: int = 100, batch_size: int = 64,
                           step_ratio: float = 0.05, loss: str = "margin", seed: int = 0,
                           samples: int = 1, norm: str = "linf") -> torch.Tensor:
    """One perturbation δ (shape of one input, ‖δ‖ ≤ ``epsilon``) for all of ``x`` (N, ...)
    in [0, 1] with labels ``y`` (N,): ``steps`` updates by stochastic PGD (module docstring).

    ``target``: a class index for a class-targeted δ (every input pushed towards it), None for
    an untargeted one. A randomised model's gradient is the mean of ``samples`` passes (EOT).
    """
    geometry = NORMS[norm]
    delta = torch.zeros(x.shape[1:], dtype=x.dtype, device=x.device)
    if epsilon == 0 or len(x) == 0:
        return delta
    gen, order, at = generator(seed), torch.empty(0, dtype=torch.long), 0
    reseed(model, seed, 3)
    step = step_ratio * epsilon
    for _ in range(steps):
        if at >= len(order):  # a fresh shuffled pass over the training points
            order, at = torch.randperm(len(x), generator=gen), 0
        idx = order[at:at + batch_size].to(x.device)
        at += batch_size
        d = delta.detach().requires_grad_(True)
        k = passes(model, samples)
        value = sum(universal_loss(model(apply(x[idx], d)), y[idx], target, loss) for _ in range(k)) / k
        (grad,) = torch.autograd.grad(value, d)
        delta = geometry.project(delta + step * geometry.ascent(grad), epsilon).detach()
    return delta


def random_perturbation(shape, epsilon: float, seed: int, norm: str = "linf") -> torch.Tensor:
    """The baseline: a random δ of the same norm (L∞: ε times a random sign per input), from ``seed``."""
    return NORMS[norm].random(tuple(shape), epsilon, generator(seed))


def fooling(model: nn.Module, x: torch.Tensor, y: torch.Tensor, delta: torch.Tensor, samples: int = 1,
            clean: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``model`` on ``x`` (N, ...) with labels ``y`` clean and under ``delta``: per-sample
    correctness ``clean`` and ``perturbed`` (N,) (bool; a randomised model: the share of
    ``samples`` correct passes), and ``fooled`` (N,): correct clean but not under δ (for a
    randomised model the product of the shares). Pass ``clean`` to reuse clean correctness."""
    clean = expected_correct(model, x, y, samples) if clean is None else clean
    perturbed = expected_correct(model, apply(x, delta), y, samples)
    fooled = (clean & ~perturbed) if clean.dtype == bool else clean * (1 - perturbed)
    return {"clean": clean, "perturbed": perturbed, "fooled": fooled}


def fooling_rate(result: dict[str, np.ndarray]) -> float:
    """Share of the correctly classified clean points that ``delta`` fools (``fooling``);
    NaN when no point is classified correctly."""
    correct = float(np.sum(result["clean"]))
    return float(np.sum(result["fooled"]) / correct) if correct > 0 else float("nan")


@torch.no_grad()
def targeted_success(model: nn.Module, x: torch.Tensor, y: torch.Tensor, delta: torch.Tensor, target: int,
                     samples: int = 1) -> tuple[float, int]:
    """(share of the points whose label is not ``target`` that ``model`` classifies as
    ``target`` under ``delta``, their number)."""
    others = y != target
    if not bool(others.any()):
        return float("nan"), 0
    x_o = x[others]
    hits = expected_correct(model, apply(x_o, delta), torch.full_like(y[others], int(target)), samples)
    return float(np.mean(hits)), int(others.sum())
