"""Attacks on randomised models (expectation over transformation, Athalye et al. 2018) and
their evaluation as an expectation.

The toy randomised model is a linear classifier (its noise-free mean) plus, in every pass, a
term a·sin(ω·Ux + φ) with a fresh uniform phase φ per sample and class: its mean over passes
is zero, its value is at most a (so predictions barely change), but its input gradient is as
large as a·ω·|U|, which swamps the linear model's own. One pass's gradient is then mostly
noise; the mean over K passes converges to the mean model's gradient.
"""
from __future__ import annotations

import contextlib
import functools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from helpers.analysis.evaluation import encode, survived
from helpers.analysis.masking import run_checks
from helpers.attacks import ATTACKS, evaluate_attack, predict
from helpers.attacks.base import expected_correct, sampling_error

N_POINTS, N_FEATURES, EPSILON = 400, 10, 0.05


class RandomisedLinear(nn.Module):
    """Logits x Wᵀ + b + a·sin(ω·x Uᵀ + φ), φ ~ U[0, 2π) per sample, class and pass; with
    ``exact()`` (or a = 0) the mean model x Wᵀ + b. Declares itself as the shot-based circuit
    will: ``stochastic``, ``reseed(seed)``, ``exact()``."""

    stochastic = True

    def __init__(self, weight, bias, amplitude, frequency, mixing):
        super().__init__()
        self.weight, self.bias, self.mixing = weight, bias, mixing
        self.amplitude, self.frequency = amplitude, frequency
        self._exact, self.generator = False, torch.Generator().manual_seed(0)

    def reseed(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(int(seed))

    @contextlib.contextmanager
    def exact(self):
        self._exact = True
        try:
            yield self
        finally:
            self._exact = False

    def forward(self, x):
        logits = x @ self.weight.T + self.bias
        if self._exact:
            return logits
        phase = 2 * math.pi * torch.rand(logits.shape, generator=self.generator, dtype=x.dtype)
        return logits + self.amplitude * torch.sin(self.frequency * (x @ self.mixing.T) + phase)


class Linear(nn.Module):
    """The deterministic mean model: logits x Wᵀ + b."""

    def __init__(self, weight, bias):
        super().__init__()
        self.weight, self.bias = weight, bias

    def forward(self, x):
        return x @ self.weight.T + self.bias


@pytest.fixture(scope="module")
def toy():
    """Points in [0, 1]^D labelled by the sign of w·(x - 1/2), the mean model (which classifies
    every point correctly) and the randomised model around it."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(N_FEATURES, generator=gen, dtype=torch.float64)
    x = torch.rand(N_POINTS, N_FEATURES, generator=gen, dtype=torch.float64)
    y = ((x - 0.5) @ w > 0).long()
    weight, bias = torch.stack([-w, w]) / 2, torch.stack([w.sum(), -w.sum()]) / 4
    mixing = torch.randn(2, N_FEATURES, generator=gen, dtype=torch.float64)
    randomised = RandomisedLinear(weight, bias, amplitude=0.02, frequency=150.0, mixing=mixing)
    return x, y, Linear(weight, bias), randomised


def tolerance(p: float, n: int = N_POINTS, k: float = 3.0) -> float:
    """k binomial standard errors of an accuracy p on n points, at least one point."""
    return max(1 / n, k * math.sqrt(p * (1 - p) / n))


CONVERGED, MORE = 32, 128  # EOT passes enough for the toy model, and four times that


@functools.lru_cache(maxsize=None)
def _evaluated(model, attack_name, x, y, params):
    return evaluate_attack(model, ATTACKS[attack_name](seed=0, **dict(params)), x, y, EPSILON, eval_samples=20)


def robust_accuracy(model, attack_name, x, y, **params) -> dict:
    """Robust accuracy of ``model`` under one attack at EPSILON (its expectation over 20
    passes for the randomised model); each evaluation is computed once per module."""
    return _evaluated(model, attack_name, x, y, tuple(sorted(params.items())))


def test_eot_pgd_reaches_pgd_on_the_mean_model(toy):
    x, y, mean, randomised = toy
    assert (predict(mean, x) == y).all()
    on_mean = robust_accuracy(mean, "pgd", x, y)["accuracy"]
    assert 0.2 < on_mean < 0.8  # the budget matters: neither nothing nor everything is fooled
    eot = robust_accuracy(randomised, "pgd", x, y, eot_samples=CONVERGED)
    assert abs(eot["accuracy"] - on_mean) <= tolerance(on_mean), (eot["accuracy"], on_mean)


def test_one_pass_pgd_is_fooled_by_the_noisy_gradients(toy):
    x, y, mean, randomised = toy
    on_mean = robust_accuracy(mean, "pgd", x, y)["accuracy"]
    single = robust_accuracy(randomised, "pgd", x, y, eot_samples=1)["accuracy"]
    assert single > on_mean + tolerance(on_mean), (single, on_mean)  # the false robustness EOT removes


def test_more_passes_do_not_lower_accuracy_once_converged(toy):
    x, y, _, randomised = toy
    converged = robust_accuracy(randomised, "pgd", x, y, eot_samples=CONVERGED)["accuracy"]
    more = robust_accuracy(randomised, "pgd_eot", x, y, eot_samples=MORE)["accuracy"]
    assert converged - more <= tolerance(converged, k=2), (converged, more)


def check_rows(results: dict[str, dict], stochastic, degenerate=()) -> pd.DataFrame:
    """The checks of one run whose attacks gave ``results`` (``evaluate_attack``'s, by attack)."""
    outcomes = pd.DataFrame([{"run": 0, "table": "robustness", "model": "m", "attack": a, "epsilon": EPSILON,
                              "n": N_POINTS, "correct": encode(r["correct"])} for a, r in results.items()])
    return run_checks(outcomes, degenerate=degenerate, stochastic=stochastic).set_index("check")


def test_eot_convergence_check_flags_too_few_passes_and_passes_enough(toy):
    x, y, _, randomised = toy
    few = robust_accuracy(randomised, "pgd", x, y, eot_samples=1)
    enough = robust_accuracy(randomised, "pgd", x, y, eot_samples=CONVERGED)
    stronger = robust_accuracy(randomised, "pgd_eot", x, y, eot_samples=MORE)
    assert check_rows({"pgd": few, "pgd_eot": stronger}, {"m"}).loc["eot_convergence", "status"] == "FLAG"
    assert check_rows({"pgd": enough, "pgd_eot": stronger}, {"m"}).loc["eot_convergence", "status"] == "PASS"
    deterministic = check_rows({"pgd": few, "pgd_eot": stronger}, {"another model"}).loc["eot_convergence"]
    assert deterministic["status"] == "SKIP" and "deterministic" in deterministic["detail"]
    # An experiment without any randomised model has no EOT check at all (its tables stay as they were),
    # degenerate runs included.
    assert "eot_convergence" not in check_rows({"pgd": few, "pgd_eot": stronger}, set()).index
    assert "eot_convergence" not in check_rows({"pgd": few, "pgd_eot": stronger}, set(), degenerate={("m", 0)}).index
    assert check_rows({"pgd": enough}, {"m"}).loc["eot_convergence", "status"] == "SKIP"


def test_gradient_free_is_not_stronger_than_eot_gradients(toy):
    """The masking check that one-pass gradients fail on a randomised model: Square on the
    expected margin beats one-pass PGD, not EOT-PGD."""
    x, y, _, randomised = toy
    square = robust_accuracy(randomised, "square", x, y, queries=200, eot_samples=8)
    single = robust_accuracy(randomised, "pgd", x, y, eot_samples=1)
    eot = robust_accuracy(randomised, "pgd", x, y, eot_samples=CONVERGED)
    flags = {k: check_rows({"pgd": pgd, "square": square}, {"m"}).loc["gradient_free_not_stronger", "status"]
             for k, pgd in (("single", single), ("eot", eot))}
    assert flags == {"single": "FLAG", "eot": "PASS"}, (single, eot, square)


def textbook_pgd(model, x, y, epsilon, steps=20, step_ratio=0.25, seed=0):
    """PGD as in Madry et al. 2018, written out: uniform start in the ball, signed
    cross-entropy gradient steps of step_ratio·ε, projection onto the ball and [0, 1]."""
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype)
    x_adv = torch.clamp(torch.clamp(x + (2 * noise - 1) * epsilon, x - epsilon, x + epsilon), 0, 1)
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        loss = nn.functional.cross_entropy(model(x_adv), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = torch.clamp(torch.clamp(x_adv + step_ratio * epsilon * grad.sign(), x - epsilon, x + epsilon), 0, 1)
    return x_adv.detach()


def test_one_pass_on_a_deterministic_model_is_plain_pgd(toy):
    x, y, mean, _ = toy
    for k in (1, 8):
        assert torch.equal(ATTACKS["pgd"](seed=0, eot_samples=k)(mean, x, y, EPSILON), textbook_pgd(mean, x, y, EPSILON))


@pytest.mark.parametrize("name", ["fgsm", "pgd", "pgd_restarts", "pgd_margin", "apgd_ce", "square", "noise", "rays"])
def test_a_deterministic_model_is_attacked_once_per_step_whatever_k(toy, name):
    """On a deterministic model every pass is the same, so K passes give the examples of one;
    and a randomised model without noise (a = 0) attacked with K = 1 gives them too: EOT with
    one pass is the plain attack."""
    x, y, mean, randomised = toy
    small = {"square": {"queries": 50}, "rays": {"queries": 50}, "apgd_ce": {"steps": 20}}.get(name, {})
    plain = ATTACKS[name](seed=0, eot_samples=1, **small)(mean, x[:64], y[:64], EPSILON)
    assert torch.equal(ATTACKS[name](seed=0, eot_samples=8, **small)(mean, x[:64], y[:64], EPSILON), plain)
    silent = RandomisedLinear(mean.weight, mean.bias, amplitude=0.0, frequency=1.0, mixing=randomised.mixing)
    assert torch.equal(ATTACKS[name](seed=0, eot_samples=1, **small)(silent, x[:64], y[:64], EPSILON), plain)


@pytest.mark.parametrize("name", ["fgsm", "pgd", "pgd_eot", "apgd_ce", "square", "noise"])
def test_eot_examples_stay_in_the_ball_and_the_input_range(toy, name):
    x, y, _, randomised = toy
    small = {"square": {"queries": 50}, "apgd_ce": {"steps": 20}}.get(name, {})
    x_adv = ATTACKS[name](seed=0, eot_samples=4, **small)(randomised, x[:64], y[:64], EPSILON)
    assert (x_adv - x[:64]).abs().max() <= EPSILON + 1e-12
    assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_a_deterministic_models_evaluation_is_unchanged(toy):
    """Bool correctness, exactly predict == y, no sampling error, whatever eval_samples."""
    x, y, mean, _ = toy
    attack = ATTACKS["pgd"](seed=0)
    for samples in (1, 50):
        result = evaluate_attack(mean, attack, x, y, EPSILON, eval_samples=samples)
        assert result["correct"].dtype == bool and result["sampling_se"] == 0.0
        assert np.array_equal(result["correct"], (predict(mean, result["x_adv"]) == y).numpy())
        assert result["n_correct"] == int(result["correct"].sum()) and isinstance(result["n_correct"], int)


def test_a_randomised_models_accuracy_is_an_expectation_with_its_sampling_error(toy):
    """Per-sample shares in [0, 1]; across reseeded evaluations the accuracy spreads as its
    reported sampling error says, and it averages to the exact expectation."""
    x, y, mean, randomised = toy
    noisy = RandomisedLinear(mean.weight, mean.bias, amplitude=1.0, frequency=3.0, mixing=randomised.mixing)
    samples, accuracies, errors = 10, [], []
    for seed in range(60):
        noisy.reseed(seed)
        correct = expected_correct(noisy, x, y, samples)
        assert correct.dtype == np.float64 and ((0 <= correct) & (correct <= 1)).all()
        accuracies.append(correct.mean())
        errors.append(sampling_error(correct, samples))
    spread, reported = np.std(accuracies, ddof=1), np.mean(errors)
    assert 0.7 < spread / reported < 1.4, (spread, reported)
    noisy.reseed(1000)
    truth = expected_correct(noisy, x, y, 4000).mean()  # the expectation, to ~0.001
    assert abs(np.mean(accuracies) - truth) <= 3 * reported / math.sqrt(len(accuracies)) + 2e-3


def test_worst_case_over_attacks_is_the_per_sample_minimum():
    a, b = np.array([True, False, True, True]), np.array([True, True, False, True])
    assert np.array_equal(survived([a, b]), a & b) and survived([a, b]).dtype == bool
    p, q = np.array([0.9, 0.2, 0.5]), np.array([0.3, 0.6, 0.5])
    assert np.array_equal(survived([p, q]), np.array([0.3, 0.2, 0.5]))
