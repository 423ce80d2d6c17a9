"""What every attack shares: the verb, the L-infinity projection, the input gradient (averaged
over a randomised model's passes: expectation over transformation), and robust accuracy under
an attack (an expectation over a randomised model's passes)."""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models import EVALUATION_BATCH, predict
from ..params import Integer, param
from ..registry import Component
from ..threats import threat_model
from ..threats.linf import LInf

LINF = LInf()  # the L∞ threat model: the projection of every L∞ attack
EOT_SAMPLES = 8  # default forward passes per gradient or loss on a randomised model


def is_stochastic(model: nn.Module) -> bool:
    """Whether ``model``'s forward pass in evaluation is random (finite shots, noise): such a
    model says so with ``stochastic = True`` and offers ``reseed(seed)``; every other model is
    deterministic."""
    return bool(getattr(model, "stochastic", False))


def passes(model: nn.Module, samples: int) -> int:
    """The forward passes to average: ``samples`` for a randomised model, one for a
    deterministic one (its passes are identical, so more would cost without changing a bit)."""
    return int(samples) if is_stochastic(model) else 1


def derived_seed(*parts: int) -> int:
    """A seed derived from ``parts`` (a run's seed and what it is for), so that an attack's own
    draws and a randomised model's draws never share a stream."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def reseed(model: nn.Module, *parts: int) -> None:
    """Seed a randomised model's sampling from ``parts`` (``derived_seed``); nothing for a
    deterministic model. A unit of work computed again then draws the same passes."""
    if is_stochastic(model):
        model.reseed(derived_seed(*parts))


def eot_samples_param(default: int = EOT_SAMPLES):
    """The ``eot_samples`` parameter the attacks share."""
    return param(default, Integer(1), "forward passes averaged per gradient or loss on a randomised model "
                                      "(expectation over transformation); a deterministic model uses one")


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss=None, samples: int = 1) -> torch.Tensor:
    """Gradient of the summed ``loss(logits, y)`` (default: cross-entropy) with respect to
    ``x``: summed, so a per-sample gradient is never scaled down by the batch size.

    On a randomised model (``is_stochastic``), the mean of the gradients of ``samples``
    independent passes: an unbiased estimate of the gradient of the expected loss (EOT,
    Athalye et al. 2018). A deterministic model is differentiated once."""
    x = x.detach().requires_grad_(True)
    total = None
    for _ in range(passes(model, samples)):
        logits = model(x)
        value = F.cross_entropy(logits, y, reduction="sum") if loss is None else loss(logits, y).sum()
        (grad,) = torch.autograd.grad(value, x)
        total = grad if total is None else total + grad
    return total if passes(model, samples) == 1 else total / passes(model, samples)


@torch.no_grad()
def mean_over_passes(model: nn.Module, x: torch.Tensor, f, samples: int = 1) -> torch.Tensor:
    """``f(model(x))`` averaged over ``samples`` passes of a randomised model (its expected
    value); a deterministic model's ``f(model(x))``, computed once and exactly."""
    k = passes(model, samples)
    if k == 1:
        return f(model(x))
    return sum(f(model(x)) for _ in range(k)) / k


@torch.no_grad()
def expected_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, samples: int = 1) -> np.ndarray:
    """Per-sample correctness (N,) of ``x`` with labels ``y``: for a deterministic model a bool
    array (``predict(model, x) == y``, exactly as ever); for a randomised one the share of
    ``samples`` independent passes that classify the sample correctly (float64 in [0, 1]), an
    unbiased estimate of its probability of being classified correctly."""
    if not is_stochastic(model):
        return (predict(model, x) == y).cpu().numpy()
    hits = sum((predict(model, x) == y).double() for _ in range(samples))
    return (hits / samples).cpu().numpy()


@torch.no_grad()
def expected_fooled(model: nn.Module, x: torch.Tensor, y: torch.Tensor, samples: int = 1) -> torch.Tensor:
    """Which samples (B,) bool an attack counts as fooled: misclassified, for a randomised model
    by more than half of ``samples`` passes (the expected prediction is wrong), so that a
    search keeps a point for what it does on average, not for one lucky pass."""
    if not is_stochastic(model):
        return predict(model, x) != y
    wrong = sum((predict(model, x) != y).double() for _ in range(samples))
    return wrong / samples > 0.5


def never_worse(model: nn.Module, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor, samples: int = 1) -> torch.Tensor:
    """``x_adv`` (B, ...), except where the clean point ``x`` is already misclassified and
    ``x_adv`` is not: there ``x`` itself (an attack never returns a point better for the model
    than the clean one; a randomised model judged by the majority of ``samples`` passes)."""
    clean, adversarial = expected_fooled(model, x, y, samples), expected_fooled(model, x_adv, y, samples)
    keep = (clean & ~adversarial).view((-1,) + (1,) * (x.dim() - 1))
    return torch.where(keep, x, x_adv)


def sampling_error(correct: np.ndarray, samples: int) -> float:
    """Standard error, from the finite passes alone, of an accuracy that averages per-sample
    correctness shares ``correct`` (N,) of ``samples`` passes each: sqrt(sum p(1 - p) / (M - 1)) / N,
    p each sample's share (unbiased per sample); zero for a deterministic model's 0/1
    correctness or a single pass. The test points' own binomial error comes on top."""
    correct = np.asarray(correct, dtype=float)
    if samples <= 1 or len(correct) == 0:
        return 0.0
    return float(np.sqrt((correct * (1 - correct)).sum() / (samples - 1)) / len(correct))


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
    """Project onto the L∞ ε-ball around ``x``, then clip to [0, 1] (``threats.linf``)."""
    return LINF.project(x_adv, x, epsilon)


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
    and ``x_adv`` inside the epsilon-ball around ``x`` and inside [0, 1]. The ball is L∞ unless
    the attack's ``norms`` name another threat model (``helpers/threats``: ``("l2",)``).

    Built from its ``Params`` (``attack.<name>`` in a config) and a ``seed``, its only source
    of randomness (a randomised model's passes are seeded from it too), so the same attack on
    the same inputs gives the same examples; keyword
    arguments override single parameters (``PGD(steps=5, seed=1)``). Tags: ``gradient``
    (white-box, follows the input gradient; the masking checks compare these with the others).
    ``refines`` names the attack this one is a stronger run of (more steps or restarts), for
    the convergence checks; ``min_classes`` is the smallest class count its loss works with.
    An iterative attack may leave in ``trace`` the robust accuracy of its last batch after
    every iteration (the report's convergence curves). A baseline that scores several random
    inputs per point may leave their correctness in ``draw_correct`` (B, draws); its
    ``outcome`` then turns the whole test set's into per-point correctness, and ``per_point``
    says whether that is one input's per point (what the worst case over attacks needs).
    """

    trace = None
    draw_correct = None
    per_point = True

    def outcome(self, draw_correct: np.ndarray) -> np.ndarray:
        """Per-point correctness (N,) from ``draw_correct`` (N, draws) of the whole test set."""
        raise NotImplementedError

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
        if self.norms == ("linf",):
            check_epsilon(epsilon)
        else:  # the budget of the attack's own threat model (L2: up to the box's diameter)
            threat_model(self.norms[0]).check_epsilon(epsilon, x)
        if epsilon == 0 or len(x) == 0:
            return x.clone()
        reseed(model, self.seed, 0)
        return self.perturb(model, x.detach(), y, epsilon)

    __call__ = attack

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float) -> torch.Tensor:
        """The attack itself, for 0 < epsilon <= 1 and a non-empty batch."""
        raise NotImplementedError


def evaluate_attack(model: nn.Module, attack, x: torch.Tensor, y: torch.Tensor, epsilon: float,
                    batch_size: int = EVALUATION_BATCH, eval_samples: int = 1) -> dict:
    """Attack every sample and report robust accuracy.

    Returns ``accuracy`` (fraction of samples still classified correctly), ``n``,
    ``n_correct``, ``linf`` (largest achieved ||x_adv - x||_inf) and the same in each other
    norm of the attack's ``norms`` (``l2``), ``correct`` (a per-sample
    boolean array aligned with ``x``), ``x_adv`` (the adversarial inputs), ``trace`` (for
    attacks that record one: the robust accuracy after every iteration or query, else None)
    and ``sampling_se``. An attack that leaves ``draw_correct`` (the noise baseline) gives
    ``correct`` by its ``outcome`` over the whole set instead.

    A randomised model's accuracy is an expectation: each adversarial input is classified by
    ``eval_samples`` independent passes (seeded from the attack's seed and the batch), so
    ``correct`` holds each sample's share of correct passes (float), ``n_correct`` their sum,
    and ``sampling_se`` the standard error the finite passes add (``sampling_error``; zero
    for a deterministic model, whose results are exactly as without ``eval_samples``).
    """
    # The largest achieved distance in L∞ and in each threat model the attack works in.
    measures = {norm: threat_model(norm) for norm in ("linf", *getattr(attack, "norms", ()))}
    reach = dict.fromkeys(measures, 0.0)
    correct, adversarial, traces, distances, draws = [], [], [], [], []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        x_adv = attack(model, xb, yb, epsilon)
        if getattr(attack, "draw_correct", None) is not None and epsilon > 0:
            draws.append(attack.draw_correct)
        if getattr(attack, "trace", None) is not None and epsilon > 0:
            traces.append((attack.trace, len(xb)))
        if getattr(attack, "distances", None) is not None and epsilon > 0:  # a minimum-norm attack's
            distances.append(np.asarray(attack.distances))
        for norm, threat in measures.items() if len(xb) else ():
            reach[norm] = max(reach[norm], float(threat.norm(x_adv - xb).max()))
        reseed(model, getattr(attack, "seed", 0), 1, i)  # the evaluation's passes: not the attack's
        correct.append(expected_correct(model, x_adv, yb, eval_samples))
        adversarial.append(x_adv)
    correct = np.concatenate(correct)
    samples = eval_samples if is_stochastic(model) else 1
    if draws:  # a baseline's draws: per-point correctness from all of them at once
        correct = attack.outcome(np.concatenate(draws))
        samples = draws[0].shape[1] if not attack.per_point else samples  # a share over the draws
    trace = None
    if traces:  # batches weighted by their size; a batch that stopped early stays at its last value
        length = max(len(t) for t, _ in traces)
        trace = sum(np.pad(t, (0, length - len(t)), mode="edge") * n for t, n in traces) / len(x)
    n_correct = int(correct.sum()) if correct.dtype == bool else float(correct.sum())
    return {"accuracy": float(correct.mean()), "n": int(len(correct)), "n_correct": n_correct,
            **reach, "distances": np.concatenate(distances) if distances else None,
            "correct": correct, "x_adv": torch.cat(adversarial), "trace": trace,
            "sampling_se": sampling_error(correct, samples)}
