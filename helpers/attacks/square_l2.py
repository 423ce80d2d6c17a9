"""The gradient-free Square attack in the L2 threat model (Andriushchenko et al. 2020, as used
in AutoAttack by Croce & Hein 2020), written against the paper.

Unlike the L∞ version, whose windows are set to a corner of the box, the L2 version moves
perturbation *mass*: each query picks two windows, empties the second and puts its mass,
together with any budget left unused, into the first, on top of a fresh centred bump of
random sign, so the perturbation keeps its norm ε while its energy wanders over the input.
"""
from __future__ import annotations


import numpy as np
import torch

from ..registry import ATTACKS
from ..threats import threat_model
from ..threats.base import flat, per_sample
from ..threats.base import PIXEL_MAX, PIXEL_MIN
from .base import Attack, generator, integers, margin, mean_over_passes, never_worse
from .square import margin_search, square_params, window_fraction

TINY = 1e-12


def bump(size: int, dtype, device) -> torch.Tensor:
    """A centred bump (size, size) of unit L2 norm: concentric square rings whose weight falls
    as 1 / (ring + 1)², the paper's "pseudo-Gaussian" profile, positive everywhere."""
    index = torch.arange(size, device=device, dtype=dtype)
    centre = (size - 1) / 2
    ring = torch.maximum((index[:, None] - centre).abs(), (index[None, :] - centre).abs()).floor()
    values = 1 / (ring + 1) ** 2
    return values / values.norm()


def bump_1d(size: int, dtype, device) -> torch.Tensor:
    """The same profile on ``size`` consecutive features (unit L2 norm)."""
    index = torch.arange(size, device=device, dtype=dtype)
    values = 1 / ((index - (size - 1) / 2).abs().floor() + 1) ** 2
    return values / values.norm()


@torch.no_grad()
def square_l2_search(model, x: torch.Tensor, y: torch.Tensor, epsilon: float, queries: int, seed: int,
                     p_init: float = 0.3, samples: int = 1) -> tuple[torch.Tensor, np.ndarray]:
    """Random search on the margin inside the L2 ε-ball ∩ [0, 1]. Returns the adversarial
    inputs (B, ...) and the robust accuracy after every query (queries,).

    Start: the input tiled by windows of the first iteration's size, each a bump of random
    sign, scaled to norm ε. Query t: a window side from ``square.window_fraction`` (the L∞
    attack's schedule); two windows W1, W2 at positions uniform over all that fit (per
    sample; on feature vectors, runs of consecutive features). The perturbation δ on
    W1 ∪ W2 is removed, and W1 gets δ_W1 plus a fresh bump of random sign, rescaled so that
    its norm is sqrt(||δ_{W1∪W2}||² + ε² − ||δ||²): the total norm is ε again. The candidate is
    clipped to [0, 1] (which only shortens δ) and kept where the margin drops. On a
    randomised model every query's margin is the mean of ``samples`` passes."""
    threat = threat_model("l2")
    gen = generator(seed)
    image = x.dim() == 4

    def expected_margin(inputs, labels):
        return mean_over_passes(model, inputs, lambda logits: margin(logits, labels), samples)

    def signs(n):
        return integers(0, 2, (n,), gen, x.device).to(x.dtype) * 2 - 1

    def normalise(delta, norm):
        return delta * per_sample(norm / (flat(delta).norm(dim=1) + TINY), delta)

    n = len(x)
    if image:
        _, channels, height, width = x.shape
        size = max(1, min(height, width, int(round((window_fraction(p_init, 0, queries) * height * width) ** 0.5))))
        delta = torch.zeros_like(x)
        for r in range(0, height, size):
            for c in range(0, width, size):
                h, w = min(size, height - r), min(size, width - c)
                tile = bump(size, x.dtype, x.device)[:h, :w]
                delta[:, :, r:r + h, c:c + w] = tile * per_sample(signs(n), tile[None, None].expand(n, 1, h, w))
    else:
        d = x.shape[1]
        size = max(1, round(window_fraction(p_init, 0, queries) * d))
        delta = torch.zeros_like(x)
        for start in range(0, d, size):
            k = min(size, d - start)
            delta[:, start:start + k] = bump_1d(size, x.dtype, x.device)[:k] * signs(n)[:, None]
    best = threat.project((x + normalise(delta, epsilon)).clamp(PIXEL_MIN, PIXEL_MAX), x, epsilon)

    def propose(active, iteration):
        m, xa = len(active), x[active]
        current = best[active] - xa
        fraction = window_fraction(p_init, iteration, queries)
        if image:
            size = max(1, min(height, width, int(round((fraction * height * width) ** 0.5))))
            r = torch.arange(height, device=x.device)[None, :, None]
            c = torch.arange(width, device=x.device)[None, None, :]

            def window():
                rows = integers(0, height - size + 1, (m,), gen, x.device)[:, None, None]
                cols = integers(0, width - size + 1, (m,), gen, x.device)[:, None, None]
                return ((r >= rows) & (r < rows + size) & (c >= cols) & (c < cols + size))[:, None], rows, cols

            first, rows, cols = window()
            second, _, _ = window()
            # the bump placed in each sample's first window, every channel
            pattern = bump(size, x.dtype, x.device)
            inside = pattern[(r - rows).clamp(0, size - 1), (c - cols).clamp(0, size - 1)][:, None]
            fresh = (inside * first).expand_as(xa).clone()
        else:
            d = x.shape[1]
            size = max(1, round(fraction * d))
            features = torch.arange(d, device=x.device)[None, :]
            starts = integers(0, d - size + 1, (m, 1), gen, x.device)
            first = (features >= starts) & (features < starts + size)
            other = integers(0, d - size + 1, (m, 1), gen, x.device)
            second = (features >= other) & (features < other + size)
            fresh = torch.zeros_like(xa)
            fresh[first] = bump_1d(size, x.dtype, x.device).repeat(m)
        first, second = first.expand_as(xa), second.expand_as(xa)
        union = first | second
        unused = torch.clamp(epsilon ** 2 - flat(current).norm(dim=1) ** 2, min=0)
        mass = (flat(current * union).norm(dim=1) ** 2 + unused).sqrt()
        fresh = normalise(fresh, torch.clamp(mass, min=TINY)) * per_sample(signs(m), fresh)
        moved = normalise((current + fresh) * first, mass)
        return threat.project((xa + current * ~union + moved).clamp(PIXEL_MIN, PIXEL_MAX), xa, epsilon)

    return margin_search(expected_margin, best, y, queries, propose)


@ATTACKS.register
class SquareL2(Attack):
    """The L2 Square attack with ``queries`` queries (``square_l2_search``): gradient-free,
    moving perturbation mass between square windows at norm ε. ``trace``: robust accuracy
    after every query of the last call."""

    name, label = "square_l2", "Square-L2 (gradient-free)"
    norms = ("l2",)
    uses = ("helpers.attacks.square", "helpers.threats.l2", "helpers.threats.base")

    Params = square_params(p_init=0.3)

    def perturb(self, model, x, y, epsilon):
        adversarial, self.trace = square_l2_search(model, x, y, epsilon, self.params.queries, self.seed,
                                                   self.params.p_init, self.params.eot_samples)
        return never_worse(model, x, y, adversarial, self.params.eot_samples)
