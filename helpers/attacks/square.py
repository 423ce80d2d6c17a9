"""The gradient-free L-infinity Square attack (Andriushchenko et al. 2020)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..params import Integer, Params, param
from ..registry import ATTACKS
from .art import run_art
from .base import PIXEL_MAX, PIXEL_MIN, Attack, margin, project


class VectorSquare:
    """The L-infinity Square attack for feature vectors (B, D), which ART's implementation
    does not take: a gradient-free random search on the margin loss (true logit minus the
    largest other logit).

    It starts from x + epsilon * a random sign per feature, then, for ``queries - 1``
    iterations, sets a window of consecutive features of every still-correct sample to
    x + epsilon * one random sign, and keeps the change where the margin drops. The window
    covers a fraction ``p_init`` of the features, halved on the original schedule as the
    queries run out (at least one feature). Randomness comes from ``seed`` alone.
    """

    # (share of the query budget passed, divisor of p_init): the paper's schedule.
    SCHEDULE = ((0.001, 2), (0.005, 4), (0.02, 8), (0.05, 16), (0.1, 32), (0.2, 64), (0.4, 128), (0.6, 256),
                (0.8, 512))

    def __init__(self, queries: int, seed: int = 0, p_init: float = 0.8):
        self.queries, self.seed, self.p_init = queries, seed, p_init

    def window_fraction(self, iteration: int) -> float:
        passed = iteration / self.queries
        divisor = max([d for share, d in self.SCHEDULE if passed > share], default=1)
        return self.p_init / divisor

    @torch.no_grad()
    def __call__(self, model, x: torch.Tensor, y: torch.Tensor, epsilon: float) -> torch.Tensor:
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        flat = x.reshape(len(x), -1)
        n, d = flat.shape

        def signs(*shape):
            return torch.randint(0, 2, shape, generator=gen, device=x.device).to(x.dtype) * 2 - 1

        best = (flat + epsilon * signs(n, d)).clamp(PIXEL_MIN, PIXEL_MAX)
        best_margin = margin(model(best.reshape(x.shape)), y)
        features = torch.arange(d, device=x.device)
        for iteration in range(1, self.queries):
            active = best_margin > 0
            if not active.any():
                break
            size = max(1, round(self.window_fraction(iteration) * d))
            start = torch.randint(0, d - size + 1, (n, 1), generator=gen, device=x.device)
            window = (features >= start) & (features < start + size)
            candidate = torch.where(window, (flat + epsilon * signs(n, 1)).clamp(PIXEL_MIN, PIXEL_MAX), best)
            candidate_margin = margin(model(candidate.reshape(x.shape)), y)
            better = active & (candidate_margin < best_margin)
            best = torch.where(better[:, None], candidate, best)
            best_margin = torch.where(better, candidate_margin, best_margin)
        return project(best.reshape(x.shape), x, epsilon)


@ATTACKS.register
class Square(Attack):
    """The Square attack with ``queries`` queries: ART's on images (B, 1, H, W),
    ``VectorSquare`` (the same random search with windows of consecutive features) on feature
    vectors (B, D), which ART's does not take. Gradient-free: blind gradients do not stop it."""

    name, label = "square", "Square (gradient-free)"
    uses = ("helpers.attacks.art",)

    @dataclass(frozen=True)
    class Params(Params):
        queries: int = param(300, Integer(1), "model queries per sample")

    def perturb(self, model, x, y, epsilon):
        if x.dim() != 4:
            return VectorSquare(self.params.queries, self.seed)(model, x, y, epsilon)
        from art.attacks.evasion import SquareAttack

        def make(classifier):
            return SquareAttack(classifier, norm=np.inf, eps=epsilon, max_iter=self.params.queries, nb_restarts=1,
                                batch_size=len(x), verbose=False)

        return run_art(make, model, x, y, epsilon, self.seed)
