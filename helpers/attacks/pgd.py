"""Projected gradient descent, and the two stronger runs of it that check its convergence."""
from __future__ import annotations

from dataclasses import make_dataclass

import numpy as np
import torch

from ..params import Boolean, Integer, Number, Params, param
from ..registry import ATTACKS
from .base import EOT_SAMPLES, Attack, eot_samples_param, expected_fooled, generator, input_gradient, project, uniform

EOT_FACTOR = 4  # pgd_eot's passes per gradient, in multiples of pgd's default


def pgd_params(steps: int, step_ratio: float, restarts: int | None = None, eot_samples: int = EOT_SAMPLES,
               steps_doc: str = "iterations", ball: str = "ε-ball") -> type[Params]:
    """The ``Params`` of a PGD attack with these defaults: its steps, its step size and a random
    start in the ``ball`` (``restarts``: that many random starts instead), and its passes per
    gradient on a randomised model."""
    start = (("restarts", int, param(restarts, Integer(1), "random starts (the first included)")) if restarts
             else ("random_start", bool, param(True, Boolean(), f"start from a uniform random point of the {ball}")))
    return make_dataclass("Params", [("steps", int, param(steps, Integer(1), steps_doc)),
                                     ("step_ratio", float, param(step_ratio, Number(0, open="low"),
                                                                 "step size as a fraction of ε")),
                                     start, ("eot_samples", int, eot_samples_param(eot_samples))],
                          bases=(Params,), frozen=True)


def pgd(model, x: torch.Tensor, y: torch.Tensor, epsilon: float, *, steps: int, step_ratio: float,
        random_start: bool, seed: int, restarts: int = 1, loss=None, samples: int = 1) -> torch.Tensor:
    """L-infinity PGD (Madry et al. 2018) on inputs ``x`` (B, ...) in [0, 1], labels ``y``.

    ``steps`` signed-gradient steps of ``step_ratio * epsilon`` (the step scales with the
    budget so that the steps can cross the ball at every epsilon) ascending ``loss(logits, y)``
    per sample (default: cross-entropy), from a uniform random point of the ball when
    ``random_start``. With ``restarts`` > 1, samples the first start did not fool are attacked
    again from new random starts (seeds ``seed + r``); each sample keeps its first successful
    example (the per-sample worst case over restarts).

    ``epsilon`` may be a tensor of one budget per sample (B, 1, ...), as the complete
    verifier's radius bisection uses it.

    On a randomised model every step follows the mean gradient of ``samples`` passes (EOT,
    ``input_gradient``), and a restart counts a sample as fooled when most of ``samples``
    passes misclassify it; a deterministic model is differentiated and classified once.
    """
    def run(xs, ys, eps, run_seed):
        x_adv = xs.clone()
        if random_start:
            noise = uniform(xs.shape, generator(run_seed), xs)
            x_adv = project(xs + (2 * noise - 1) * eps, xs, eps)
        step = step_ratio * eps
        for _ in range(steps):
            x_adv = project(x_adv + step * input_gradient(model, x_adv, ys, loss, samples).sign(), xs, eps).detach()
        return x_adv

    best = run(x, y, epsilon, seed)
    robust = ~expected_fooled(model, best, y, samples)
    for restart in range(1, restarts):
        if not robust.any():
            break
        idx = robust.nonzero().squeeze(1)
        candidate = run(x[idx], y[idx], epsilon[idx] if torch.is_tensor(epsilon) else epsilon, seed + restart)
        fooled = expected_fooled(model, candidate, y[idx], samples)
        best[idx[fooled]] = candidate[fooled]
        robust[idx[fooled]] = False
    return best


@ATTACKS.register
class PGD(Attack):
    """Projected gradient descent on the cross-entropy (``pgd``)."""

    name, label = "pgd", "PGD"
    tags = frozenset({"gradient"})

    Params = pgd_params(20, 0.25)

    def perturb(self, model, x, y, epsilon):
        p = self.params
        return pgd(model, x, y, epsilon, steps=p.steps, step_ratio=p.step_ratio, random_start=p.random_start,
                   seed=self.seed, samples=p.eot_samples)


@ATTACKS.register
class PGDRestarts(Attack):
    """PGD from ``restarts`` random starts: a sample counts as fooled if any start fools it."""

    name, label, refines = "pgd_restarts", "PGD, restarts", "pgd"
    tags = frozenset({"gradient"})

    Params = pgd_params(20, 0.25, restarts=5, steps_doc="iterations per start")

    @property
    def start_seed(self) -> int:
        """The seed of the first start (start r: + r). Derived from, not equal to, the run's
        seed: with PGD's seed the first start would repeat `pgd` exactly, and the convergence
        checks could only see the other restarts."""
        return int(np.random.SeedSequence([self.seed, 1]).generate_state(1)[0])

    def perturb(self, model, x, y, epsilon):
        p = self.params
        return pgd(model, x, y, epsilon, steps=p.steps, step_ratio=p.step_ratio, random_start=True,
                   seed=self.start_seed, restarts=p.restarts, samples=p.eot_samples)


@ATTACKS.register
class PGDEscalated(PGDRestarts):
    """PGD with many more steps and restarts: the first escalation for a model a masking
    check flags (Tramèr et al. 2020)."""

    name, label, refines = "pgd_escalated", "PGD, escalated", "pgd"

    Params = pgd_params(100, 0.1, restarts=10, steps_doc="iterations per start")


@ATTACKS.register
class PGDLong(PGD):
    """PGD with more, smaller steps: a convergence check (much stronger than ``pgd`` means PGD
    had not converged)."""

    name, label, refines = "pgd_long", "PGD, long", "pgd"

    Params = pgd_params(60, 0.1)


@ATTACKS.register
class PGDEOT(PGD):
    """PGD with four times the default passes per gradient (expectation over transformation):
    the EOT convergence check. On a randomised model, much stronger than ``pgd`` means ``pgd``'s
    gradients were still too noisy; on a deterministic model it is ``pgd`` exactly."""

    name, label, refines = "pgd_eot", "PGD, 4× EOT passes", "pgd"

    Params = pgd_params(20, 0.25, eot_samples=EOT_FACTOR * EOT_SAMPLES)
