"""The attacks a sceptical reviewer asks for: APGD keeps its best iterate and is at least as
strong as ART's (which keeps only the last); Square reaches every input, the last row and
column included; RayS uses labels only and finds the exact distance of a linear model; the
escalation of a flagged model finds what the configured attacks missed."""
import copy

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from helpers.analysis.evaluation import evaluate_models
from helpers.analysis.masking import run_checks
from helpers.attacks import Square, predict
from helpers.attacks import ATTACKS
from helpers.attacks.apgd import APGDCE, apgd, dlr_loss
from helpers.attacks.art import run_art
from helpers.config import AttackSection
from helpers.training import accuracy

from test_masking import RoundsInput, ZeroGradient


def test_dlr_loss_ignores_the_scale_and_shift_of_the_logits():
    logits, y = torch.randn(20, 5, generator=torch.Generator().manual_seed(0)), torch.arange(20) % 5
    target = (y + 1) % 5
    for f in (lambda z: dlr_loss(z, y), lambda z: dlr_loss(z, y, target)):
        assert torch.allclose(f(logits), f(3.5 * logits - 2.0), atol=1e-5)


@pytest.mark.parametrize("name", ["mlp", "vqc"])
def test_apgd_returns_its_best_iterate_and_its_trace_is_the_robust_accuracy(trained_models, digits_split, name):
    model, x, y = trained_models[name], digits_split[2][:80], digits_split[3][:80]
    ce = nn.CrossEntropyLoss(reduction="none")
    adversarial, trace = apgd(model, x, y, 0.1, lambda logits, labels, rows: ce(logits, labels), steps=30, seed=0)
    assert len(trace) == 31 and (np.diff(trace) <= 0).all()  # a sample fooled once stays fooled
    assert trace[-1] == pytest.approx((predict(model, adversarial) == y).double().mean().item())
    assert (adversarial - x).abs().max() <= 0.1 + 1e-6


class EveryStep(nn.Module):
    """``model`` declared randomised (its passes are still identical): APGD then runs every
    sample every step instead of dropping the ones it has fooled, and averaging two equal
    passes changes no bit."""

    stochastic = True

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
@pytest.mark.parametrize("epsilon", [0.03, 0.08])
def test_apgd_dropping_the_fooled_samples_changes_no_result(trained_models, digits_split, name, epsilon):
    """A sample's result is settled by the first iterate that fools it, so APGD stops
    attacking it there: every sample's outcome, the trace and the examples are those of the
    run that attacks every sample every step (float64: no batch-size rounding in between)."""
    model = copy.deepcopy(trained_models[name]).double()
    x, y = digits_split[2][:100].double(), digits_split[3][:100]
    ce = nn.CrossEntropyLoss(reduction="none")
    loss = lambda logits, labels, rows: ce(logits, labels)  # noqa: E731
    dropped, trace = apgd(model, x, y, epsilon, loss, steps=40, seed=3)
    kept, kept_trace = apgd(EveryStep(model), x, y, epsilon, loss, steps=40, seed=3, samples=2)
    fooled = predict(model, dropped) != y
    assert 0 < fooled.sum() < len(y)  # some samples were dropped, others ran every step
    assert torch.equal(fooled, predict(model, kept) != y)
    np.testing.assert_array_equal(trace, kept_trace)
    torch.testing.assert_close(dropped, kept, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", ["mlp", "vqc"])
def test_apgd_is_at_least_as_strong_as_arts(trained_models, digits_split, name):
    """ART's APGD reports its final iterate; ours the best: never weaker beyond seed noise."""
    from art.attacks.evasion import AutoProjectedGradientDescent

    model, x, y = trained_models[name], digits_split[2][:120], digits_split[3][:120]
    epsilon, steps = 0.1, 30

    def make(classifier):
        return AutoProjectedGradientDescent(classifier, norm=np.inf, eps=epsilon, eps_step=2 * epsilon, max_iter=steps,
                                            nb_random_init=1, batch_size=len(x), loss_type="cross_entropy", verbose=False)

    ours = accuracy(model, APGDCE(steps=steps, seed=0)(model, x, y, epsilon), y)
    theirs = accuracy(model, run_art(make, model, x, y, epsilon, seed=0), y)
    assert ours <= theirs + 2 * np.sqrt(theirs * (1 - theirs) / len(x)) + 1e-9, (ours, theirs)


def last_input_model(shape):
    """Class 1 exactly when the last input (the bottom-right pixel of an image) exceeds 0.55."""

    class LastInput(nn.Module):
        def forward(self, x):
            last = x.flatten(1)[:, -1]
            return torch.stack([torch.zeros_like(last), 10 * (last - 0.55)], 1)

    return LastInput(), torch.full((30, *shape), 0.5), torch.zeros(30, dtype=torch.long)


@pytest.mark.parametrize("shape", [(1, 8, 8), (30,)], ids=["image", "vector"])
def test_square_reaches_the_last_row_and_column(shape):
    """ART's Square never moves the last row and column of a small image after its first
    stripes (FIELD-NOTES): a model that reads only the bottom-right pixel would survive it."""
    model, x, y = last_input_model(shape)
    x_adv = Square(queries=1000, seed=0)(model, x, y, 0.1)
    assert (predict(model, x_adv) != y).all()


def test_rays_sees_only_labels(trained_models, digits_split):
    """Two models with the same predictions (one of them blind to gradients, the other with
    rescaled logits) get the same examples: RayS reads nothing but the predicted class."""
    model, x, y = trained_models["mlp"], digits_split[2][:30], digits_split[3][:30]

    class Rescaled(nn.Module):
        def forward(self, z):
            return 5 * model(z) + 3

    rays = ATTACKS["rays"](queries=300, seed=0)
    reference = rays(model, x, y, 0.1)
    assert torch.equal(rays(Rescaled(), x, y, 0.1), reference)
    assert torch.equal(rays(ZeroGradient(model), x, y, 0.1), reference)


def test_rays_finds_the_exact_distance_of_a_linear_model():
    """For a linear two-class model the smallest L∞ perturbation that flips a point is
    margin / ||w||_1 (away from the box's edges); RayS fools exactly the points closer than ε."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(12, generator=gen)
    x = 0.4 + 0.2 * torch.rand(200, 12, generator=gen)
    b = -(x @ w).median()

    class Linear(nn.Module):
        def forward(self, z):
            score = z.flatten(1) @ w + b
            return torch.stack([-score, score], 1)

    model = Linear()
    y = predict(model, x)
    distance = (x @ w + b).abs() / w.abs().sum()
    epsilon = float(distance.median())
    fooled = (predict(model, ATTACKS["rays"](queries=2000, seed=0)(model, x, y, epsilon)) != y).numpy()
    clear = ((distance - epsilon).abs() > 1e-3).numpy()
    assert (fooled[clear] == (distance < epsilon).numpy()[clear]).all()
    assert fooled.sum() > 50


# Gradient attacks only: what blind gradients hide, the first pass misses.
SETTINGS = {"epsilons": [0.0, 0.1, 0.2], "methods": ["fgsm", "pgd", "pgd_long"], "pgd": {"steps": 10},
            "pgd_long": {"steps": 20}, "masking_epsilons": [0.5],
            "pgd_escalated": {"steps": 20, "restarts": 2}, "pgd_margin": {"steps": 20}, "rays": {"queries": 300}}


@pytest.mark.parametrize("wrapper", [RoundsInput, ZeroGradient])
def test_escalation_lowers_the_worst_case_of_a_masked_model(trained_models, digits_split, wrapper):
    section = AttackSection.parse(SETTINGS, "attack")
    models = {"normal": trained_models["mlp"], "masked": wrapper(trained_models["mlp"]).eval()}
    x, y = digits_split[2][:80], digits_split[3][:80]
    first = evaluate_models(models, x, y, section, seed=0)
    flagged = run_checks(pd.DataFrame([{"run": 0, **r} for r in first["outcomes"]]))
    assert set(flagged.loc[flagged["status"] == "FLAG", "model"]) == {"masked"}
    second = evaluate_models(models, x, y, section, seed=0, escalate={"masked"})
    escalation = pd.DataFrame(second["escalation"])
    assert set(escalation["model"]) == {"masked"}
    assert (escalation["after"] <= escalation["before"] + 1e-12).all()
    budget = escalation[(escalation["kind"] == "budget") & (escalation["epsilon"] == 0.2)]
    assert (budget["before"] - budget["after"]).max() > 0.2  # what blind gradients hid, escalation finds
    attacks = {r["attack"] for r in second["robustness"] if r["model"] == "masked"}
    assert {"pgd_escalated", "pgd_margin", "rays"} <= attacks
    assert "rays" not in {r["attack"] for r in second["robustness"] if r["model"] == "normal"}
    # An escalation attack that is also configured runs (and is counted) once.
    section = AttackSection.parse({**SETTINGS, "methods": [*SETTINGS["methods"], "pgd_margin"]}, "attack")
    rows = pd.DataFrame(evaluate_models(models, x, y, section, seed=0, escalate={"masked"})["robustness"])
    assert not rows.duplicated(["model", "attack", "epsilon"]).any()
