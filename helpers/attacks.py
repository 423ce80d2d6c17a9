"""White-box L-infinity attacks in pixel space, and robust accuracy under them.

Every attack has one verb: ``attack(model, x, y, epsilon) -> x_adv`` with ``x`` (B, 1, H, W)
in [0, 1], labels ``y`` (B,), and ``x_adv`` inside the epsilon-ball around ``x`` and inside
[0, 1]. Gradients are taken of the summed cross-entropy on the logits, so a per-sample
gradient is never scaled down by the batch size.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PIXEL_MIN, PIXEL_MAX = 0.0, 1.0


def _input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def project(x_adv: torch.Tensor, x: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Project onto the L-infinity epsilon-ball around ``x``, then clip to [0, 1]."""
    return torch.clamp(torch.minimum(torch.maximum(x_adv, x - epsilon), x + epsilon), PIXEL_MIN, PIXEL_MAX)


def _check_epsilon(epsilon: float) -> None:
    if not 0 <= epsilon <= 1:
        raise ValueError(f"epsilon must lie in [0, 1] (pixel range), got {epsilon}")


@dataclass
class FGSM:
    """Fast gradient sign method (Goodfellow et al. 2015): one step of size epsilon."""

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float) -> torch.Tensor:
        _check_epsilon(epsilon)
        if epsilon == 0:
            return x.clone()
        return project(x + epsilon * _input_gradient(model, x, y).sign(), x, epsilon).detach()


@dataclass
class PGD:
    """Projected gradient descent (Madry et al. 2018) with an optional uniform random start.

    The step size scales with the budget (``step_ratio * epsilon``) so that ``steps`` steps
    can cross the ball at every epsilon.
    """

    steps: int = 20
    step_ratio: float = 0.25
    random_start: bool = True
    seed: int = 0

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float) -> torch.Tensor:
        _check_epsilon(epsilon)
        if epsilon == 0:
            return x.clone()
        x = x.detach()
        x_adv = x.clone()
        if self.random_start:
            gen = torch.Generator(device=x.device).manual_seed(self.seed)
            noise = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype)
            x_adv = project(x + (2 * noise - 1) * epsilon, x, epsilon)
        step = self.step_ratio * epsilon
        for _ in range(self.steps):
            x_adv = project(x_adv + step * _input_gradient(model, x_adv, y).sign(), x, epsilon).detach()
        return x_adv


ATTACKS = {"fgsm": FGSM, "pgd": PGD}


def build_attack(name: str, attack_cfg: dict, seed: int = 0):
    """The attack ``name`` configured from the ``attack`` section of a config."""
    if name == "fgsm":
        return FGSM()
    if name == "pgd":
        return PGD(steps=attack_cfg["pgd_steps"], step_ratio=attack_cfg["pgd_step_ratio"],
                   random_start=attack_cfg["pgd_random_start"], seed=seed)
    raise ValueError(f"unknown attack {name!r}; available: {sorted(ATTACKS)}")


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted labels (B,) for images (B, 1, H, W)."""
    return torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def evaluate_attack(model: nn.Module, attack, x: torch.Tensor, y: torch.Tensor, epsilon: float,
                    batch_size: int = 512) -> dict:
    """Attack every sample and report robust accuracy.

    Returns ``accuracy`` (fraction of samples still classified correctly), ``n``,
    ``n_correct``, ``linf`` (largest achieved ||x_adv - x||_inf) and ``correct``, a
    per-sample boolean array aligned with ``x``.
    """
    correct, linf = [], 0.0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        x_adv = attack(model, xb, yb, epsilon)
        linf = max(linf, float((x_adv - xb).abs().max()) if len(xb) else 0.0)
        correct.append((predict(model, x_adv) == yb).cpu().numpy())
    correct = np.concatenate(correct)
    return {"accuracy": float(correct.mean()), "n": int(len(correct)), "n_correct": int(correct.sum()),
            "linf": linf, "correct": correct}
