"""RayS (Chen & Gu 2020): a label-only L-infinity attack that searches ray directions."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..params import Integer, Params, param
from ..registry import ATTACKS
from ..threats.base import PIXEL_MAX, PIXEL_MIN
from .base import Attack, eot_samples_param, expected_fooled, project

BISECTIONS = 12  # halvings of the radius interval per search (precision 2^-12 of the input range)


@ATTACKS.register
class RayS(Attack):
    """Label-only: it sees only the predicted class, never a logit or a gradient, so neither
    blind gradients nor saturated or masked scores stop it (the attack to escalate to when a
    masking check flags a model).

    A direction is a sign per input (all +1 at first); its radius is the smallest r in [0, 1]
    at which clip(x + r·direction) is misclassified, found by bisection. Blocks of the
    direction's signs are flipped, coarse to fine (halves, quarters, ..., single inputs, then
    from the top again), and a flip is kept when the flipped direction is already
    misclassified at the current radius (then its radius is searched again). A sample is
    fooled at ε when its radius is at most ε; it stops querying then, or when ``queries`` are
    spent (and then tries ε itself once, which the bisection may have stepped over). On a
    randomised model a point counts as misclassified when most of ``eot_samples`` passes
    misclassify it (its expected label); a query then costs that many passes.
    """

    name, label = "rays", "RayS (label-only)"
    tags = frozenset({"label_only"})

    @dataclass(frozen=True)
    class Params(Params):
        queries: int = param(2000, Integer(10), "label queries per sample")
        eot_samples: int = eot_samples_param()

    @torch.no_grad()
    def perturb(self, model, x, y, epsilon):
        n, shape = len(x), x.shape
        flat = x.reshape(n, -1)
        d = flat.shape[1]
        direction = torch.ones_like(flat)

        def wrong(points, rows):
            return expected_fooled(model, points.reshape(len(rows), *shape[1:]), y[rows], self.params.eot_samples)

        def at(rows, signs, radius):
            return (flat[rows] + radius[:, None] * signs).clamp(PIXEL_MIN, PIXEL_MAX)

        def search(rows, signs, high):
            """Smallest misclassified radius in [0, high] along ``signs`` (high is misclassified)."""
            low = torch.zeros_like(high)
            for _ in range(BISECTIONS):
                middle = (low + high) / 2
                bad = wrong(at(rows, signs, middle), rows)
                high, low = torch.where(bad, middle, high), torch.where(bad, low, middle)
            return high

        everyone = torch.arange(n, device=x.device)
        radius = torch.full((n,), float("inf"), device=x.device, dtype=x.dtype)
        reach = wrong(at(everyone, direction, torch.ones(n, device=x.device, dtype=x.dtype)), everyone)
        radius[reach] = search(everyone[reach], direction[reach], torch.ones(int(reach.sum()), device=x.device, dtype=x.dtype))
        used = torch.full((n,), 1 + BISECTIONS, device=x.device)
        block = d
        while True:  # coarse to fine, then from the top again, until fooled or out of queries
            for start in range(0, d, block):
                rows = everyone[(radius > epsilon) & (used < self.params.queries)]
                if len(rows) == 0:
                    break
                flipped = direction[rows].clone()
                flipped[:, start:start + block] *= -1
                # A direction whose radius is not known (inf) is tried at the edge of the input range.
                probe = torch.where(torch.isinf(radius[rows]), torch.ones_like(radius[rows]), radius[rows])
                better = wrong(at(rows, flipped, probe), rows)
                used[rows] += 1
                improved = rows[better]
                if len(improved):
                    direction[improved] = flipped[better]
                    radius[improved] = search(improved, direction[improved], probe[better])
                    used[improved] += BISECTIONS
            else:
                block = block // 2 if block > 1 else d
                continue
            break
        # The bisection leaves each radius a little above the true one: try ε itself once.
        rest = everyone[radius > epsilon]
        if len(rest):
            hit = wrong(at(rest, direction[rest], torch.full((len(rest),), epsilon, device=x.device, dtype=x.dtype)), rest)
            radius[rest[hit]] = epsilon
        fooled = radius <= epsilon
        reached = at(everyone, direction, torch.where(fooled, radius, torch.full_like(radius, epsilon)))
        return project(reached.reshape(shape), x, epsilon)
