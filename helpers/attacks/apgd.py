"""Auto-PGD (Croce & Hein 2020): step sizes that adapt to the attack's progress, momentum,
and the best iterate kept per sample; on the cross-entropy, the difference-of-logits ratio
(DLR) and the targeted DLR.

Our own implementation: ART 1.20.1's checks success only at the final iterate, so a sample
fooled half-way and recovered by a later step counts as robust; here a sample stays fooled
once any iterate fooled it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..params import Integer, Params, param
from ..registry import ATTACKS
from ..threats import threat_model
from .base import Attack, eot_samples_param, expected_fooled, generator, mean_over_passes, passes, project, uniform

MOMENTUM = 0.75        # the weight of the new step against the previous direction
RHO = 0.75             # share of improving steps below which a checkpoint halves the step size


def checkpoints(steps: int) -> list[int]:
    """The iterations where the step size may be halved: w_j = ceil(p_j · steps) with p_0 = 0,
    p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({int(np.ceil(q * steps)) for q in p if q <= 1} - {0})


def dlr_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """The difference-of-logits ratio per sample (B,), to be maximised: untargeted
    -(z_y - max_{i != y} z_i) / (z_(1) - z_(3)); targeted -(z_y - z_t) / (z_(1) - (z_(3) + z_(4)) / 2),
    z_(k) the k-th largest logit. Invariant to shifting and scaling the logits."""
    ordered = logits.sort(dim=1, descending=True).values
    true = logits.gather(1, y[:, None])[:, 0]
    if target is None:
        other = logits.scatter(1, y[:, None], float("-inf")).max(1).values
        return -(true - other) / (ordered[:, 0] - ordered[:, 2] + 1e-12)
    return -(true - logits.gather(1, target[:, None])[:, 0]) / (
        ordered[:, 0] - (ordered[:, 2] + ordered[:, 3]) / 2 + 1e-12)


def apgd(model, x: torch.Tensor, y: torch.Tensor, epsilon: float, loss, steps: int, seed: int,
         samples: int = 1, threat=None) -> tuple[torch.Tensor, np.ndarray]:
    """One run of APGD on inputs ``x`` (B, ...) in [0, 1]; ``loss(logits, labels, rows)`` per
    sample (``rows``: their positions in ``x``) is maximised. Returns the adversarial inputs (per
    sample: the first iterate that fooled the model, else the iterate of highest loss) and the
    robust accuracy after every iteration (steps + 1,).

    A sample's result is settled by the first iterate that fools it, so a deterministic model
    is run only on the samples not fooled yet: every step is per sample, so each sample's
    iterates are those of the whole batch (up to the rounding of a float32 model's matrix
    products, which may differ with the batch's size), at the cost of the samples still
    standing. A randomised model's passes draw for the whole batch: there every sample runs
    every step.

    On a randomised model the loss, its gradient and whether a sample is fooled are those of
    ``samples`` passes: the mean loss and mean gradient (EOT, Athalye et al. 2018), and fooled
    when most passes misclassify it; a deterministic model is run once per iterate.

    ``threat`` (a ``threats.ThreatModel``; None: L∞) owns the random start, the step's
    direction (sign for L∞, g / ||g||_2 for L2) and the projection; the schedule is the same."""
    gen = generator(seed)
    if threat is None:  # L∞, exactly as ever
        start = project(x + (2 * uniform(x.shape, gen, x) - 1) * epsilon, x, epsilon)
        into_ball, direction = lambda z, clean: project(z, clean, epsilon), torch.sign  # noqa: E731
    else:
        start = threat.random_start(x, epsilon, gen)
        into_ball, direction = lambda z, clean: threat.project(z, clean, epsilon), threat.direction  # noqa: E731
    shape = (-1,) + (1,) * (x.dim() - 1)
    k_passes = passes(model, samples)

    def loss_and_gradient(z, rows):
        z, labels = z.detach().requires_grad_(True), y[rows]
        total, grad_total, wrong = 0.0, 0.0, 0.0
        for _ in range(k_passes):
            logits = model(z)
            values = loss(logits, labels, rows)
            (grad,) = torch.autograd.grad(values.sum(), z)
            if k_passes == 1:  # a deterministic model: exactly one pass, nothing averaged
                return values.detach(), grad, logits.detach().argmax(1) != labels
            total, grad_total = total + values.detach(), grad_total + grad
            wrong = wrong + (logits.detach().argmax(1) != labels).double()
        return total / k_passes, grad_total / k_passes, wrong / k_passes > 0.5

    rows = torch.arange(len(x), device=x.device)  # the samples still attacked: all, then the unfooled
    values, grad, fooled = loss_and_gradient(start, rows)
    adversarial = torch.where(fooled.view(shape), start, x)
    ever = fooled.clone()
    trace = [1 - ever.double().mean().item()]
    # Per attacked sample: where it is, where it was, its best loss and iterate, its step size
    # and the bookkeeping of the step-size checkpoints.
    s = {"x_k": start, "x_prev": start.clone(), "values": values, "grad": grad, "best_loss": values.clone(),
         "best_x": start.clone(), "step": torch.full((len(x),), 2 * epsilon, device=x.device, dtype=x.dtype),
         "improved": torch.zeros(len(x), device=x.device)}
    s["loss_at_checkpoint"], s["step_at_checkpoint"] = s["best_loss"].clone(), s["step"].clone()
    compact = k_passes == 1

    def settle(fooled):  # a deterministic model stops attacking the samples just fooled
        nonlocal rows
        if compact and fooled.any():
            keep = ~fooled
            rows = rows[keep]
            for name in s:
                s[name] = s[name][keep]

    settle(fooled)
    last, marks = 0, checkpoints(steps)
    for k in range(steps):
        if not len(rows):  # every sample fooled: the rest of the trace stays where it is
            trace += trace[-1:] * (steps - k)
            break
        clean = x[rows]
        z = into_ball(s["x_k"] + s["step"].view(shape) * direction(s["grad"]), clean)
        alpha = 1.0 if k == 0 else MOMENTUM
        x_new = into_ball(s["x_k"] + alpha * (z - s["x_k"]) + (1 - alpha) * (s["x_k"] - s["x_prev"]), clean)
        previous = s["values"]
        s["values"], new_grad, fooled = loss_and_gradient(x_new, rows)
        first = fooled & ~ever[rows]
        adversarial[rows[first]] = x_new[first]
        ever[rows[fooled]] = True
        trace.append(1 - ever.double().mean().item())
        s["improved"] += (s["values"] > previous).to(s["improved"].dtype)  # steps that raised the loss (condition 1)
        better = s["values"] > s["best_loss"]
        s["best_loss"] = torch.where(better, s["values"], s["best_loss"])
        s["best_x"] = torch.where(better.view(shape), x_new, s["best_x"])
        s["x_prev"], s["x_k"], s["grad"] = s["x_k"], x_new, new_grad
        if k + 1 in marks:
            window = k + 1 - last
            halve = (s["improved"] < RHO * window) | ((s["step"] == s["step_at_checkpoint"])
                                                      & (s["best_loss"] == s["loss_at_checkpoint"]))
            s["step_at_checkpoint"], s["loss_at_checkpoint"] = s["step"].clone(), s["best_loss"].clone()
            s["step"] = torch.where(halve, s["step"] / 2, s["step"])
            s["x_k"] = torch.where(halve.view(shape), s["best_x"], s["x_k"])
            s["values"] = torch.where(halve, s["best_loss"], s["values"])  # the loss where the next step starts
            if halve.any():  # restarting from the best point: its gradient
                _, restart_grad, _ = loss_and_gradient(s["best_x"], rows)
                s["grad"] = torch.where(halve.view(shape), restart_grad, s["grad"])
            s["improved"].zero_()
            last = k + 1
        settle(fooled)
    result = adversarial.clone()
    standing = ~ever[rows]
    result[rows[standing]] = s["best_x"][standing]
    return result, np.array(trace)


class APGDAttack(Attack):
    """APGD with ``steps`` iterations per pass; samples one pass does not fool are attacked by
    the next (another random start, or another target), and each keeps the first example that
    fools it. ``trace`` holds the robust accuracy of the last call's batch after every
    iteration of every pass (the report's convergence curve)."""

    tags = frozenset({"gradient"})

    @dataclass(frozen=True)
    class Params(Params):
        steps: int = param(100, Integer(1), "iterations per restart")
        restarts: int = param(1, Integer(1), "random starts")
        eot_samples: int = eot_samples_param()

    def passes(self, model, x, y) -> list:
        """(loss(logits, labels, index), seed offset) per pass: here one per restart."""
        return [(self.loss, r) for r in range(self.params.restarts)]

    def loss(self, logits, y, index):
        raise NotImplementedError

    def perturb(self, model, x, y, epsilon):
        best, robust, traces = x.clone(), torch.ones(len(x), dtype=torch.bool, device=x.device), []
        for loss, offset in self.passes(model, x, y):
            index = robust.nonzero().squeeze(1)
            if len(index) == 0:
                break
            candidate, trace = apgd(model, x[index], y[index], epsilon,
                                    lambda logits, labels, rows, f=loss, i=index: f(logits, labels, i[rows]),
                                    self.params.steps, self.seed + offset, self.params.eot_samples,
                                    None if self.norms == ("linf",) else threat_model(self.norms[0]))
            fooled = expected_fooled(model, candidate, y[index], self.params.eot_samples)
            best[index] = candidate
            robust[index[fooled]] = False
            traces.append(trace * len(index) / len(x))  # the samples outside the pass are fooled already
        self.trace = np.concatenate(traces) if traces else None
        return best


@ATTACKS.register
class APGDCE(APGDAttack):
    """APGD on the cross-entropy."""

    name, label = "apgd_ce", "APGD-CE"

    def loss(self, logits, y, index):
        return F.cross_entropy(logits, y, reduction="none")


@ATTACKS.register
class APGDDLR(APGDAttack):
    """APGD on the difference-of-logits ratio, invariant to the logits' scale; needs >= 3 classes."""

    name, label = "apgd_dlr", "APGD-DLR"
    min_classes = 3

    def loss(self, logits, y, index):
        return dlr_loss(logits, y)


@ATTACKS.register
class APGDTargeted(APGDAttack):
    """Targeted APGD on the DLR loss against each of the ``targets`` classes the clean input
    scores highest after its own, one after the other (samples fooled by one target are not
    attacked again); needs >= 4 classes."""

    name, label = "apgd_dlr_targeted", "APGD-DLR, targeted"
    min_classes = 4

    @dataclass(frozen=True)
    class Params(Params):
        steps: int = param(100, Integer(1), "iterations per target")
        targets: int = param(3, Integer(1), "target classes tried, by the clean input's logit ranking")
        eot_samples: int = eot_samples_param()

    def passes(self, model, x, y):
        ranked = mean_over_passes(model, x, lambda logits: logits, self.params.eot_samples).sort(
            dim=1, descending=True).indices
        # the k-th highest class other than the true one
        others = torch.stack([row[row != label] for row, label in zip(ranked, y)])
        self._targets = others[:, : self.params.targets]
        return [(self._loss_for(t), t) for t in range(min(self.params.targets, others.shape[1]))]

    def _loss_for(self, t):
        def loss(logits, y, index):
            return dlr_loss(logits, y, self._targets[index, t])
        return loss
