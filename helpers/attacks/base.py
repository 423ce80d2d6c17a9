"""What every attack shares: the verb, the L-infinity projection, the input gradient, and
robust accuracy under an attack."""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models import EVALUATION_BATCH, predict
from ..registry import Component

PIXEL_MIN, PIXEL_MAX = 0.0, 1.0


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss=None) -> torch.Tensor:
    """Gradient of the summed ``loss(logits, y)`` (default: cross-entropy) with respect to
    ``x``: summed, so a per-sample gradient is never scaled down by the batch size."""
    x = x.detach().requires_grad_(True)
    logits = model(x)
    value = F.cross_entropy(logits, y, reduction="sum") if loss is None else loss(logits, y).sum()
    (grad,) = torch.autograd.grad(value, x)
    return grad


def generator(seed: int) -> torch.Generator:
    """A CPU generator: attacks draw their random numbers on the CPU and move them to the
    inputs' device, so the same seed gives the same examples on a GPU as on the CPU."""
    return torch.Generator().manual_seed(int(seed))


def uniform(shape, gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """Uniform numbers in [0, 1) of ``shape``, drawn by ``gen``, on ``like``'s device and dtype."""
    return torch.rand(shape, generator=gen, dtype=like.dtype).to(like.device)


def integers(low: int, high: int, shape, gen: torch.Generator, device) -> torch.Tensor:
    """Integers in [low, high) of ``shape``, drawn by ``gen`` on the CPU, on ``device``."""
    return torch.randint(low, high, shape, generator=gen).to(device)


def project(x_adv: torch.Tensor, x: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Project onto the L-infinity epsilon-ball around ``x``, then clip to [0, 1]."""
    return torch.clamp(torch.minimum(torch.maximum(x_adv, x - epsilon), x + epsilon), PIXEL_MIN, PIXEL_MAX)


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample margin (B,): the true class's logit minus the largest other logit; the
    sample is misclassified exactly when it is negative (the Carlini-Wagner margin)."""
    true = logits.gather(1, y[:, None])[:, 0]
    return true - logits.scatter(1, y[:, None], float("-inf")).max(1).values


def check_epsilon(epsilon: float) -> None:
    if not 0 <= epsilon <= 1:
        raise ValueError(f"epsilon must lie in [0, 1] (the input range), got {epsilon}")


class Attack(Component):
    """An attack of the ``ATTACKS`` registry: one verb, ``attack(model, x, y, epsilon) -> x_adv``
    with ``x`` images (B, 1, H, W) or feature vectors (B, D) in [0, 1], labels ``y`` (B,),
    and ``x_adv`` inside the L-infinity epsilon-ball around ``x`` and inside [0, 1].

    Built from its ``Params`` (``attack.<name>`` in a config) and a ``seed``, its only source
    of randomness, so the same attack on the same inputs gives the same examples; keyword
    arguments override single parameters (``PGD(steps=5, seed=1)``). Tags: ``gradient``
    (white-box, follows the input gradient; the masking checks compare these with the others).
    ``refines`` names the attack this one is a stronger run of (more steps or restarts), for
    the convergence checks; ``min_classes`` is the smallest class count its loss works with.
    An iterative attack may leave in ``trace`` the robust accuracy of its last batch after
    every iteration (the report's convergence curves).
    """

    trace = None

    norms: ClassVar[tuple[str, ...]] = ("linf",)
    refines: ClassVar[str | None] = None
    min_classes: ClassVar[int] = 2

    def __init__(self, params=None, *, seed: int = 0, **overrides):
        params = params if params is not None else self.Params()
        if overrides:
            params = self.Params.parse({**params.to_dict(), **overrides}, f"attack {self.name}", owner=repr(self.name))
        self.params, self.seed = params, seed

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params}, seed={self.seed})"

    def attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float) -> torch.Tensor:
        check_epsilon(epsilon)
        if epsilon == 0 or len(x) == 0:
            return x.clone()
        return self.perturb(model, x.detach(), y, epsilon)

    __call__ = attack

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float) -> torch.Tensor:
        """The attack itself, for 0 < epsilon <= 1 and a non-empty batch."""
        raise NotImplementedError


def evaluate_attack(model: nn.Module, attack, x: torch.Tensor, y: torch.Tensor, epsilon: float,
                    batch_size: int = EVALUATION_BATCH) -> dict:
    """Attack every sample and report robust accuracy.

    Returns ``accuracy`` (fraction of samples still classified correctly), ``n``,
    ``n_correct``, ``linf`` (largest achieved ||x_adv - x||_inf), ``correct`` (a per-sample
    boolean array aligned with ``x``), ``x_adv`` (the adversarial inputs) and ``trace`` (for
    attacks that record one: the robust accuracy after every iteration or query, else None).
    """
    correct, linf, adversarial, traces = [], 0.0, [], []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        x_adv = attack(model, xb, yb, epsilon)
        if getattr(attack, "trace", None) is not None and epsilon > 0:
            traces.append((attack.trace, len(xb)))
        linf = max(linf, float((x_adv - xb).abs().max()) if len(xb) else 0.0)
        correct.append((predict(model, x_adv) == yb).cpu().numpy())
        adversarial.append(x_adv)
    correct = np.concatenate(correct)
    trace = None
    if traces:  # batches weighted by their size; a batch that stopped early stays at its last value
        length = max(len(t) for t, _ in traces)
        trace = sum(np.pad(t, (0, length - len(t)), mode="edge") * n for t, n in traces) / len(x)
    return {"accuracy": float(correct.mean()), "n": int(len(correct)), "n_correct": int(correct.sum()),
            "linf": linf, "correct": correct, "x_adv": torch.cat(adversarial), "trace": trace}
