"""Carlini & Wagner's L2 attack (2017): the minimum-norm reference of the L2 threat model."""
from __future__ import annotations

import hashlib
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from ..params import Integer, Number, Params, param
from ..registry import ATTACKS
from .base import Attack, eot_samples_param, margin, passes, predict

BOX = 1 - 1e-6  # tanh never reaches ±1: inputs at 0 or 1 are pulled in by this much
_CACHE: OrderedDict = OrderedDict()  # the minimal examples of recent batches, shared by every ε
_CACHE_SIZE = 16
SHORTEN_STEPS = 20  # bisection halvings that pull each example back to the decision boundary


def carlini_wagner_l2(model, x: torch.Tensor, y: torch.Tensor, *, steps: int, search_steps: int,
                      initial_const: float, learning_rate: float, confidence: float = 0.0,
                      samples: int = 1) -> tuple[torch.Tensor, np.ndarray]:
    """Minimal L2 adversarial examples of ``x`` (B, ...) in [0, 1] with labels ``y``.

    Box constraint by reparametrisation: x' = (tanh(w) + 1) / 2 is in [0, 1] for every w.
    For a constant c per sample, ``steps`` Adam steps minimise ||x' − x||²₂ + c · max(margin(x')
    + ``confidence``, 0) (margin: true logit minus the largest other); ``search_steps`` rounds
    of binary search on c (starting at ``initial_const``; ×10 while no example is found, then
    halving the bracket) keep, per sample, the adversarial x' of smallest norm found.

    Each example found is then pulled back along its perturbation to the decision boundary
    (``shorten``). Returns the examples (B, ...) (x itself where none was found) and their L2 distances (B,):
    0 for a point the model already misclassifies, inf where no example was found. On a
    randomised model the margin is that of the mean logits of ``samples`` passes."""
    n = len(x)
    shape = (-1,) + (1,) * (x.dim() - 1)
    k = passes(model, samples)

    def logits_of(z):
        return model(z) if k == 1 else sum(model(z) for _ in range(k)) / k

    with torch.no_grad():
        already = predict(model, x) != y
    best = x.clone()
    distance = torch.where(already, torch.zeros(n, dtype=x.dtype, device=x.device),
                           torch.full((n,), float("inf"), dtype=x.dtype, device=x.device))
    low = torch.zeros(n, dtype=x.dtype, device=x.device)
    high = torch.full((n,), float("inf"), dtype=x.dtype, device=x.device)
    const = torch.full((n,), float(initial_const), dtype=x.dtype, device=x.device)
    w0 = torch.atanh((2 * x - 1) * BOX)
    for _ in range(search_steps):
        w = w0.clone().requires_grad_(True)
        optimiser = torch.optim.Adam([w], lr=learning_rate)
        found = torch.zeros(n, dtype=torch.bool, device=x.device)
        for _ in range(steps):
            x_adv = (torch.tanh(w) + 1) / 2
            logits = logits_of(x_adv)
            squared = (x_adv - x).reshape(n, -1).pow(2).sum(1)
            m = margin(logits, y)
            loss = (squared + const * torch.clamp(m + confidence, min=0)).sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                fooled = m < 0
                norm = squared.sqrt()
                better = fooled & (norm < distance)
                best[better] = x_adv.detach()[better]
                distance = torch.where(better, norm.detach(), distance)
                found |= fooled
        with torch.no_grad():  # binary search on c: smaller where found, larger where not
            high = torch.where(found, torch.minimum(high, const), high)
            low = torch.where(found, low, torch.maximum(low, const))
            const = torch.where(torch.isinf(high), const * 10, (low + high) / 2)
    best, distance = shorten(model, x, y, best.detach(), distance, logits_of)
    best = torch.where(already.view(shape), x, best)
    return best.detach(), distance.cpu().numpy()


@torch.no_grad()
def shorten(model, x, y, best, distance, logits_of, steps: int = SHORTEN_STEPS):
    """Each found example pulled towards ``x`` along its own perturbation: the smallest t in
    (0, 1] (bisection, ``steps`` halvings) with x + t·δ still misclassified (x + t·δ stays in
    [0, 1], a convex box). Adam's last steps overshoot the boundary by about one learning rate;
    this removes most of that, and never lengthens an example."""
    found = torch.isfinite(distance) & (distance > 0)
    if not bool(found.any()):
        return best, distance
    shape = (-1,) + (1,) * (x.dim() - 1)
    delta = best - x
    low = torch.zeros(len(x), dtype=x.dtype, device=x.device)
    high = torch.ones_like(low)
    for _ in range(steps):
        middle = (low + high) / 2
        fooled = margin(logits_of(x + middle.view(shape) * delta), y) < 0
        high, low = torch.where(fooled, middle, high), torch.where(fooled, low, middle)
    shorter = x + high.view(shape) * delta
    best = torch.where(found.view(shape), shorter, best)
    return best, torch.where(found, distance * high, distance)


@ATTACKS.register
class CarliniWagnerL2(Attack):
    """Carlini–Wagner L2 (2017): per sample the smallest L2 perturbation it finds that flips the
    prediction (tanh box reparametrisation, Adam, binary search over the constant c). At a
    budget ε a point counts as fooled when that minimal norm is at most ε; ``distances``
    holds the minimal norms of the last call (inf: none found), computed once per batch for
    every ε."""

    name, label = "cw_l2", "Carlini-Wagner L2 (minimum norm)"
    tags = frozenset({"gradient", "minimum_norm"})
    norms = ("l2",)
    distances = None

    @dataclass(frozen=True)
    class Params(Params):
        steps: int = param(100, Integer(1), "Adam steps per value of the constant c")
        search_steps: int = param(5, Integer(1), "binary-search rounds over c")
        initial_const: float = param(1.0, Number(0, open="low"), "the first c")
        learning_rate: float = param(0.05, Number(0, open="low"), "Adam's learning rate (in tanh space)")
        eot_samples: int = eot_samples_param()

    def minimal(self, model, x, y):
        """(examples, distances) of the batch, from the cache when the same model, batch and
        parameters were attacked at another ε."""
        digest = hashlib.sha256(x.detach().cpu().numpy().tobytes() + y.cpu().numpy().tobytes()).hexdigest()
        key = (id(model), digest, repr(self.params))
        # An id is reused once its model is freed: the entry remembers its model (weakly) and
        # counts only for that very object.
        if key not in _CACHE or _CACHE[key][0]() is not model:
            p = self.params
            _CACHE[key] = (weakref.ref(model), carlini_wagner_l2(
                model, x, y, steps=p.steps, search_steps=p.search_steps, initial_const=p.initial_const,
                learning_rate=p.learning_rate, samples=p.eot_samples))
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        _CACHE.move_to_end(key)
        return _CACHE[key][1]

    def perturb(self, model, x, y, epsilon):
        examples, self.distances = self.minimal(model, x, y)
        within = torch.as_tensor(self.distances <= epsilon, device=x.device)
        return torch.where(within.view((-1,) + (1,) * (x.dim() - 1)), examples, x)
