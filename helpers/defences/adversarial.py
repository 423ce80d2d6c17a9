"""Adversarial training: PGD (Madry et al. 2018) and TRADES (Zhang et al. 2019)."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..attacks.base import generator, input_gradient, project
from ..attacks.pgd import pgd
from ..params import Boolean, Integer, Number, Params, param
from ..registry import DEFENCES
from .base import Defence

TRADES_START = 0.001  # standard deviation of TRADES' Gaussian start around the clean batch (its paper's value)


@contextlib.contextmanager
def crafting(model):
    """The model as the attacks see it while a defence crafts its examples: evaluation mode
    (dropout off) and, for a circuit with shots, its expected readout; training mode after."""
    was_training = model.training
    model.eval()
    try:
        with model.exact() if hasattr(model, "exact") else contextlib.nullcontext():
            yield model
    finally:
        model.train(was_training)


@DEFENCES.register
class PGDTraining(Defence):
    """PGD adversarial training (Madry et al. 2018): each batch's examples replaced, on the fly,
    by PGD examples against the current weights (the attack stage's ``pgd``, its steps and
    projection), except a ``clean_fraction`` of the batch (its first rows) kept clean."""

    name, label = "pgd", "PGD adversarial training"
    uses = ("helpers.attacks.pgd",)
    strength = "epsilon"

    @dataclass(frozen=True)
    class Params(Params):
        epsilon: float = param(0.1, Number(0, 1, open="low", note="(the input range)"), "training L∞ budget")
        steps: int = param(5, Integer(1), "PGD iterations per batch")
        step_ratio: float = param(0.3, Number(0, open="low"), "step size as a fraction of ε")
        random_start: bool = param(True, Boolean(), "start from a uniform random point of the ε-ball")
        clean_fraction: float = param(0.0, Number(0, 1, open="high"), "share of each batch kept clean (its first "
                                                                       "rows; 0: every row adversarial)")

    def adversarial_batch(self, model, x, y, seed: int) -> torch.Tensor:
        """The batch the model trains on: PGD examples, the first ``clean_fraction`` rows clean."""
        p = self.params
        n_clean = int(round(p.clean_fraction * len(x)))
        with crafting(model):
            x_adv = pgd(model, x[n_clean:], y[n_clean:], p.epsilon, steps=p.steps, step_ratio=p.step_ratio,
                        random_start=p.random_start, seed=seed)
        return torch.cat([x[:n_clean], x_adv.detach()])

    def loss(self, model, x, y, seed):
        logits = model(self.adversarial_batch(model, x, y, seed))
        return F.cross_entropy(logits, y), logits


def trades_kl(clean_logits: torch.Tensor, adv_logits: torch.Tensor) -> torch.Tensor:
    """Per-sample KL(p(clean) || p(adv)) (B,), p the softmax: TRADES' robust term."""
    return (F.softmax(clean_logits, 1) * (F.log_softmax(clean_logits, 1) - F.log_softmax(adv_logits, 1))).sum(1)


@DEFENCES.register
class TRADES(Defence):
    """TRADES (Zhang et al. 2019): cross-entropy of the clean batch plus β times the mean
    KL(p(x) || p(x')), x' maximising that KL within the training ε-ball by PGD steps (the
    attack's signed step and projection) from a small Gaussian start."""

    name, label = "trades", "TRADES"
    strength = "beta"

    @dataclass(frozen=True)
    class Params(Params):
        beta: float = param(1.0, Number(0), "weight of the robust (KL) term")
        epsilon: float = param(0.1, Number(0, 1, open="low", note="(the input range)"), "training L∞ budget")
        steps: int = param(5, Integer(1), "PGD iterations on the KL per batch")
        step_ratio: float = param(0.3, Number(0, open="low"), "step size as a fraction of ε")

    def adversarial_batch(self, model, x, seed: int) -> torch.Tensor:
        """x' (B, ...): PGD on KL(p(x) || p(x')) from x + N(0, 0.001²), inside the ball and [0, 1]."""
        p = self.params
        with crafting(model):
            with torch.no_grad():
                clean = model(x)
            start = torch.randn(x.shape, generator=generator(seed), dtype=x.dtype).to(x.device)
            x_adv = project(x + TRADES_START * start, x, p.epsilon)
            for _ in range(p.steps):
                gradient = input_gradient(model, x_adv, clean, loss=lambda adv, c: trades_kl(c, adv))
                x_adv = project(x_adv + p.step_ratio * p.epsilon * gradient.sign(), x, p.epsilon).detach()
        return x_adv

    def loss(self, model, x, y, seed):
        x_adv = self.adversarial_batch(model, x, seed)
        logits = model(x)
        robust = trades_kl(logits, model(x_adv)).mean()
        return F.cross_entropy(logits, y) + self.params.beta * robust, logits
