"""The gradient-free L-infinity Square attack (Andriushchenko et al. 2020).

Our own implementation, for images and feature vectors alike: ART 1.20.1's samples a window's
position with ``randint(0, height - size)``, so the last row and column of a small image are
never moved after the initial stripes; here every position, the last included, is drawn.
"""
from __future__ import annotations

from dataclasses import dataclass, make_dataclass

import numpy as np
import torch

from ..params import Choice, Integer, Number, Params, param
from ..registry import ATTACKS
from ..threats.base import PIXEL_MAX, PIXEL_MIN
from .base import (Attack, eot_samples_param, expected_correct, expected_fooled, generator, integers, margin,
                   mean_over_passes, project, uniform)

# What the noise baseline's accuracy is (``UniformNoise``).
STATISTICS = ("any", "mean", "min")
# (share of the query budget passed, divisor of p_init): the paper's schedule of the window size.
SCHEDULE = ((0.001, 2), (0.005, 4), (0.02, 8), (0.05, 16), (0.1, 32), (0.2, 64), (0.4, 128), (0.6, 256), (0.8, 512))


def window_fraction(p_init: float, iteration: int, queries: int) -> float:
    """The share of the input a window covers at ``iteration`` of ``queries``."""
    passed = iteration / queries
    return p_init / max([d for share, d in SCHEDULE if passed > share], default=1)


@torch.no_grad()
def square_search(model, x: torch.Tensor, y: torch.Tensor, epsilon: float, queries: int, seed: int,
                  p_init: float = 0.8, samples: int = 1) -> tuple[torch.Tensor, np.ndarray]:
    """Random search on the margin (true logit minus the largest other) inside the ε-ball.

    Images (B, C, H, W) start from vertical stripes of ±ε (one random sign per column and
    channel) and then move square windows of side sqrt(p·H·W); feature vectors (B, D) start
    from a random sign per feature and move windows of p·D consecutive features. A window's
    position is uniform over every position that fits it; its pixels (per channel) are set to
    the clean value ± ε with one random sign, and the change is kept where the margin drops.
    Only the samples not yet fooled are queried. Returns the adversarial inputs and the robust
    accuracy after every query (queries,).

    On a randomised model every query's margin is the mean of ``samples`` passes (the expected
    margin, so that a window is kept for what it does on average, not for one lucky pass; a
    query then costs ``samples`` passes); a deterministic model is run once per query.
    """
    gen = generator(seed)

    def expected_margin(inputs, labels):
        return mean_over_passes(model, inputs, lambda logits: margin(logits, labels), samples)

    image = x.dim() == 4

    def signs(*shape):
        return integers(0, 2, shape, gen, x.device).to(x.dtype) * 2 - 1

    n = len(x)
    if image:
        _, channels, height, width = x.shape
        best = (x + epsilon * signs(n, channels, 1, width)).clamp(PIXEL_MIN, PIXEL_MAX)
    else:
        best = (x + epsilon * signs(*x.shape)).clamp(PIXEL_MIN, PIXEL_MAX)

    def propose(active, iteration):
        xa, candidate = x[active], best[active].clone()
        fraction = window_fraction(p_init, iteration, queries)
        if image:
            size = max(1, min(height, width, int(round((fraction * height * width) ** 0.5))))
            rows = integers(0, height - size + 1, (len(active),), gen, x.device)
            cols = integers(0, width - size + 1, (len(active),), gen, x.device)
            r = torch.arange(height, device=x.device)[None, :, None]
            c = torch.arange(width, device=x.device)[None, None, :]
            window = ((r >= rows[:, None, None]) & (r < rows[:, None, None] + size)
                      & (c >= cols[:, None, None]) & (c < cols[:, None, None] + size))[:, None]
            moved = (xa + epsilon * signs(len(active), channels, 1, 1)).clamp(PIXEL_MIN, PIXEL_MAX)
        else:
            d = x.shape[1]
            size = max(1, round(fraction * d))
            start = integers(0, d - size + 1, (len(active), 1), gen, x.device)
            features = torch.arange(d, device=x.device)
            window = (features >= start) & (features < start + size)
            moved = (xa + epsilon * signs(len(active), 1)).clamp(PIXEL_MIN, PIXEL_MAX)
        return torch.where(window, moved, candidate)

    best, trace = margin_search(expected_margin, best, y, queries, propose)
    return project(best, x, epsilon), trace


def square_params(p_init: float) -> type[Params]:
    """The ``Params`` of a Square attack whose windows first cover ``p_init`` of the input."""
    return make_dataclass("Params", [
        ("queries", int, param(1000, Integer(1), "model queries per sample (the paper's standard budget: 5000)")),
        ("p_init", float, param(p_init, Number(0, 1, open="low"), "initial share of the input a window covers")),
        ("eot_samples", int, eot_samples_param())], bases=(Params,), frozen=True)


def margin_search(expected_margin, best: torch.Tensor, y: torch.Tensor, queries: int,
                  propose) -> tuple[torch.Tensor, np.ndarray]:
    """The random search both Square attacks run: from ``best`` (B, ...), at each query the
    samples still classified correctly (``active``) get a candidate each
    (``propose(active, query)``), kept where ``expected_margin(candidate, labels)`` drops.
    Updates ``best`` in place; returns it and the robust accuracy after every query (queries,)."""
    best_margin = expected_margin(best, y)
    trace = [(best_margin > 0).double().mean().item()]
    for iteration in range(1, queries):
        active = (best_margin > 0).nonzero().squeeze(1)
        if len(active) == 0:
            trace += [0.0] * (queries - iteration)
            break
        candidate = propose(active, iteration)
        candidate_margin = expected_margin(candidate, y[active])
        better = candidate_margin < best_margin[active]
        best[active[better]] = candidate[better]
        best_margin[active[better]] = candidate_margin[better]
        trace.append((best_margin > 0).double().mean().item())
    return best, np.array(trace)


@ATTACKS.register
class Square(Attack):
    """The Square attack with ``queries`` queries (``square_search``): gradient-free, so blind
    gradients do not stop it. ``trace``: robust accuracy after every query of the last call."""

    name, label = "square", "Square (gradient-free)"

    Params = square_params(p_init=0.8)

    def perturb(self, model, x, y, epsilon):
        adversarial, self.trace = square_search(model, x, y, epsilon, self.params.queries, self.seed, self.params.p_init,
                                                self.params.eot_samples)
        return adversarial


@ATTACKS.register
class UniformNoise(Attack):
    """A baseline, not an attack: ``draws`` inputs drawn uniformly from the ε-ball (clipped to
    [0, 1]). The gap between this and the adversarial accuracy is what the attacks' search adds.

    ``statistic`` says what its accuracy is: ``any`` (a point counts as fooled if it is
    misclassified clean or by any draw: the per-point worst case of the draws), ``mean`` (the
    accuracy under noise averaged over the draws: each point's share of correct draws) or
    ``min`` (the accuracy of the draw that scores lowest over the whole test set: the minimum
    over draws of the accuracy). The last two are what papers usually report as accuracy under
    noise; they leave the clean inputs out. Only ``any`` and ``min`` give one input per point
    (``per_point``), so ``mean`` stays out of the worst case over attacks.
    """

    name, label = "noise", "uniform noise (baseline)"
    tags = frozenset({"baseline"})

    @dataclass(frozen=True)
    class Params(Params):
        draws: int = param(20, Integer(1), "random inputs per sample")
        eot_samples: int = eot_samples_param()
        statistic: str = param("any", Choice(STATISTICS), "what the accuracy is: any (a point is fooled by any draw), "
                               "mean (mean accuracy over the draws) or min (the minimum over draws of the accuracy)",
                               quiet=True)

    draw_correct = None

    @property
    def per_point(self) -> bool:
        return self.params.statistic != "mean"

    @torch.no_grad()
    def perturb(self, model, x, y, epsilon):
        gen = generator(self.seed)
        best, robust = x.clone(), torch.ones(len(x), dtype=torch.bool, device=x.device)
        draws = []
        for _ in range(self.params.draws):
            noise = project(x + (2 * uniform(x.shape, gen, x) - 1) * epsilon,
                            x, epsilon)
            if self.params.statistic != "any":
                draws.append(expected_correct(model, noise, y, self.params.eot_samples))
                best = noise if len(draws) == 1 else best  # the examples kept: the first draw
                continue
            fooled = robust & expected_fooled(model, noise, y, self.params.eot_samples)
            best[fooled] = noise[fooled]
            robust &= ~fooled
        self.draw_correct = np.stack(draws, axis=1) if draws else None
        return best

    def outcome(self, draw_correct: np.ndarray) -> np.ndarray:
        """Per-point correctness (N,) from every point's correctness under every draw (N, draws)
        over the whole test set: the share of correct draws (``mean``) or the column of the draw
        with the lowest accuracy (``min``)."""
        if self.params.statistic == "mean":
            return draw_correct.astype(float).mean(axis=1)
        return draw_correct[:, int(np.argmin(draw_correct.astype(float).mean(axis=0)))]
