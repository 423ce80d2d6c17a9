"""L-infinity attacks in pixel space, and robust accuracy under them.

Every attack has one verb: ``attack(model, x, y, epsilon) -> x_adv`` with ``x`` images
(B, 1, H, W) or feature vectors (B, D) in [0, 1], labels ``y`` (B,), and ``x_adv`` inside the epsilon-ball around ``x`` and inside
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
        raise ValueError(f"epsilon must lie in [0, 1] (the input range), got {epsilon}")


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
    can cross the ball at every epsilon. With ``restarts`` > 1, samples the first start did
    not fool are attacked again from new random starts, and each sample keeps its first
    successful adversarial example (the per-sample worst case over restarts).
    """

    steps: int = 20
    step_ratio: float = 0.25
    random_start: bool = True
    seed: int = 0
    restarts: int = 1

    def _run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, seed: int) -> torch.Tensor:
        x_adv = x.clone()
        if self.random_start:
            gen = torch.Generator(device=x.device).manual_seed(seed)
            noise = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype)
            x_adv = project(x + (2 * noise - 1) * epsilon, x, epsilon)
        step = self.step_ratio * epsilon
        for _ in range(self.steps):
            x_adv = project(x_adv + step * _input_gradient(model, x_adv, y).sign(), x, epsilon).detach()
        return x_adv

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float) -> torch.Tensor:
        _check_epsilon(epsilon)
        if epsilon == 0:
            return x.clone()
        x = x.detach()
        best = self._run(model, x, y, epsilon, self.seed)
        robust = predict(model, best) == y
        for restart in range(1, self.restarts):
            if not robust.any():
                break
            idx = robust.nonzero().squeeze(1)
            candidate = self._run(model, x[idx], y[idx], epsilon, self.seed + restart)
            fooled = predict(model, candidate) != y[idx]
            best[idx[fooled]] = candidate[fooled]
            robust[idx[fooled]] = False
        return best


def _art_classifier():
    """ART's ``PyTorchClassifier`` with ``predict`` as one batched forward pass per
    ``batch_size`` slice: ART's own goes through a per-sample ``DataLoader``, which makes the
    Square attack (hundreds of predictions per call) five times slower than the model itself."""
    from art.estimators.classification import PyTorchClassifier

    class _ArtClassifier(PyTorchClassifier):
        def predict(self, x: np.ndarray, batch_size: int = 128, training_mode: bool = False, **kwargs) -> np.ndarray:
            self._model.train(mode=training_mode)
            x_preprocessed, _ = self._apply_preprocessing(x, y=None, fit=False)
            inputs = torch.from_numpy(x_preprocessed).to(self._device)
            outputs = [np.zeros((0, self.nb_classes), dtype=np.float32)]
            with torch.no_grad():
                for i in range(0, len(inputs), batch_size):
                    outputs.append(self._model(inputs[i:i + batch_size])[-1].cpu().numpy().astype(np.float32))
            return self._apply_postprocessing(preds=np.vstack(outputs), fit=False)

    return _ArtClassifier


@dataclass
class ARTAttack:
    """An attack of the Adversarial Robustness Toolbox, behind the same verb as ours.

    ``kind``: ``apgd_ce`` / ``apgd_dlr`` (AutoAttack's APGD with cross-entropy or
    difference-of-logits-ratio loss, ``steps`` iterations, initial step 2 epsilon) or
    ``square`` (Square attack, gradient-free, ``steps`` queries). The model is wrapped in a
    ``PyTorchClassifier`` on logits with inputs clipped to [0, 1] (``_ArtClassifier``); ART
    draws its randomness from numpy's global generator, which is seeded from ``seed`` before
    each call.
    """

    kind: str
    steps: int
    seed: int = 0

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float) -> torch.Tensor:
        from art.attacks.evasion import AutoProjectedGradientDescent, SquareAttack

        _check_epsilon(epsilon)
        if epsilon == 0 or len(x) == 0:
            return x.clone()
        with torch.no_grad():
            n_classes = model(x[:1]).shape[1]
        classifier = _art_classifier()(
            model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]), nb_classes=n_classes,
            clip_values=(PIXEL_MIN, PIXEL_MAX), device_type="gpu" if x.is_cuda else "cpu")
        if self.kind == "square":
            attack = SquareAttack(classifier, norm=np.inf, eps=epsilon, max_iter=self.steps, nb_restarts=1,
                                  batch_size=len(x), verbose=False)
        else:
            loss = {"apgd_ce": "cross_entropy", "apgd_dlr": "difference_logits_ratio"}[self.kind]
            attack = AutoProjectedGradientDescent(
                classifier, norm=np.inf, eps=epsilon, eps_step=2 * epsilon, max_iter=self.steps, nb_random_init=1,
                batch_size=len(x), loss_type=loss, verbose=False)
        np.random.seed(self.seed % 2**32)
        x_np = x.detach().cpu().numpy()
        x_adv = attack.generate(x_np, y=y.detach().cpu().numpy())
        return project(torch.as_tensor(x_adv, device=x.device, dtype=x.dtype), x.detach(), epsilon)


@dataclass
class VectorSquare:
    """The L-infinity Square attack (Andriushchenko et al., 2020) for feature vectors (B, D),
    which ART's implementation does not take: a gradient-free random search on the margin
    loss (true logit minus the largest other logit).

    It starts from x + epsilon * a random sign per feature, then, for ``queries - 1``
    iterations, sets a window of consecutive features of every still-correct sample to
    x + epsilon * one random sign, and keeps the change where the margin drops. The window
    covers a fraction ``p_init`` of the features, halved on the original schedule as the
    queries run out (at least one feature). Randomness comes from ``seed`` alone.
    """

    queries: int
    seed: int = 0
    p_init: float = 0.8
    # (share of the query budget passed, divisor of p_init): the paper's schedule.
    SCHEDULE = ((0.001, 2), (0.005, 4), (0.02, 8), (0.05, 16), (0.1, 32), (0.2, 64), (0.4, 128), (0.6, 256),
                (0.8, 512))

    def window_fraction(self, iteration: int) -> float:
        passed = iteration / self.queries
        divisor = max([d for share, d in self.SCHEDULE if passed > share], default=1)
        return self.p_init / divisor

    @torch.no_grad()
    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float) -> torch.Tensor:
        _check_epsilon(epsilon)
        if epsilon == 0 or len(x) == 0:
            return x.clone()
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        flat = x.reshape(len(x), -1)
        n, d = flat.shape

        def signs(*shape):
            return torch.randint(0, 2, shape, generator=gen, device=x.device).to(x.dtype) * 2 - 1

        def margin(z):
            logits = model(z.reshape(x.shape))
            true = logits.gather(1, y[:, None])[:, 0]
            return true - logits.scatter(1, y[:, None], float("-inf")).max(1).values

        best = (flat + epsilon * signs(n, d)).clamp(PIXEL_MIN, PIXEL_MAX)
        best_margin = margin(best)
        features = torch.arange(d, device=x.device)
        for iteration in range(1, self.queries):
            active = best_margin > 0
            if not active.any():
                break
            size = max(1, round(self.window_fraction(iteration) * d))
            start = torch.randint(0, d - size + 1, (n, 1), generator=gen, device=x.device)
            window = (features >= start) & (features < start + size)
            candidate = torch.where(window, (flat + epsilon * signs(n, 1)).clamp(PIXEL_MIN, PIXEL_MAX), best)
            candidate_margin = margin(candidate)
            better = active & (candidate_margin < best_margin)
            best = torch.where(better[:, None], candidate, best)
            best_margin = torch.where(better, candidate_margin, best_margin)
        return project(best.reshape(x.shape), x, epsilon)


@dataclass
class Square:
    """The L-infinity Square attack with ``queries`` queries: ART's on images (B, 1, H, W),
    ``VectorSquare`` on feature vectors (B, D), which ART's does not take."""

    queries: int
    seed: int = 0

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float) -> torch.Tensor:
        if x.dim() == 4:
            return ARTAttack("square", steps=self.queries, seed=self.seed)(model, x, y, epsilon)
        return VectorSquare(queries=self.queries, seed=self.seed)(model, x, y, epsilon)


# name -> what it is; ``build_attack`` configures each from the config's ``attack`` section.
ATTACKS = {
    "fgsm": "FGSM, one step of size epsilon",
    "pgd": "PGD, pgd_steps steps of pgd_step_ratio * epsilon, random start",
    "pgd_restarts": "PGD with pgd_restarts random restarts, per-sample worst case",
    "pgd_long": "PGD with pgd_long_steps steps of pgd_long_step_ratio * epsilon (convergence check)",
    "apgd_ce": "APGD, cross-entropy loss (ART), apgd_steps iterations",
    "apgd_dlr": "APGD, DLR loss (ART), apgd_steps iterations; needs >= 3 classes",
    "square": "Square attack, gradient-free, square_queries queries (ART on images, VectorSquare on feature vectors)",
}


def build_attack(name: str, attack_cfg: dict, seed: int = 0):
    """The attack ``name`` configured from the ``attack`` section of a config."""
    at = attack_cfg
    pgd = dict(steps=at["pgd_steps"], step_ratio=at["pgd_step_ratio"], random_start=at["pgd_random_start"], seed=seed)
    if name == "fgsm":
        return FGSM()
    if name == "pgd":
        return PGD(**pgd)
    if name == "pgd_restarts":
        return PGD(**{**pgd, "random_start": True}, restarts=at["pgd_restarts"])
    if name == "pgd_long":
        return PGD(**{**pgd, "steps": at["pgd_long_steps"], "step_ratio": at["pgd_long_step_ratio"]})
    if name in ("apgd_ce", "apgd_dlr"):
        return ARTAttack(name, steps=at["apgd_steps"], seed=seed)
    if name == "square":
        return Square(queries=at["square_queries"], seed=seed)
    raise ValueError(f"unknown attack {name!r}; available: {sorted(ATTACKS)}")


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted labels (B,) for images (B, 1, H, W)."""
    return torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def evaluate_attack(model: nn.Module, attack, x: torch.Tensor, y: torch.Tensor, epsilon: float,
                    batch_size: int = 512) -> dict:
    """Attack every sample and report robust accuracy.

    Returns ``accuracy`` (fraction of samples still classified correctly), ``n``,
    ``n_correct``, ``linf`` (largest achieved ||x_adv - x||_inf), ``correct`` (a per-sample
    boolean array aligned with ``x``) and ``x_adv`` (the adversarial images).
    """
    correct, linf, adversarial = [], 0.0, []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        x_adv = attack(model, xb, yb, epsilon)
        linf = max(linf, float((x_adv - xb).abs().max()) if len(xb) else 0.0)
        correct.append((predict(model, x_adv) == yb).cpu().numpy())
        adversarial.append(x_adv)
    correct = np.concatenate(correct)
    return {"accuracy": float(correct.mean()), "n": int(len(correct)), "n_correct": int(correct.sum()),
            "linf": linf, "correct": correct, "x_adv": torch.cat(adversarial)}
