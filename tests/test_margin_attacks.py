"""The margin-loss PGD attacks (helpers/attacks/margin.py): inside the ball, reproducible, and
stronger than cross-entropy PGD exactly where the cross-entropy saturates."""
import pytest
import torch
from torch import nn

from helpers.attacks import ATTACKS, PGD, evaluate_attack, predict
from helpers.config import AttackSection


class Overconfident(nn.Module):
    """The same predictions as ``model``, logits times 1e4: softmax rounds to one-hot in float32,
    so the cross-entropy's input gradient of a correctly classified point is exactly zero."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return 1e4 * self.model(x)


@pytest.mark.parametrize("name", ["pgd_margin", "pgd_targeted"])
@pytest.mark.parametrize("model_name", ["mlp", "vqc"])
def test_margin_attacks_stay_in_the_ball_are_reproducible_and_fool(trained_models, digits_split, name, model_name):
    x, y = digits_split[2][:40], digits_split[3][:40]
    model, attack = trained_models[model_name], ATTACKS[name](steps=10, seed=2)
    x_adv = attack(model, x, y, 0.2)
    assert x_adv.shape == x.shape and (x_adv - x).abs().max() <= 0.2 + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert torch.equal(x_adv, attack(model, x, y, 0.2))
    clean = (predict(model, x) == y).float().mean()
    assert (predict(model, x_adv) == y).float().mean() < clean - 0.2
    assert torch.equal(attack(model, x, y, 0.0), x)


def test_targeting_every_class_is_never_weaker_than_targeting_the_first(trained_models, digits_split):
    from helpers.attacks.margin import margin, pgd

    x, y = digits_split[2][:60], digits_split[3][:60]
    model = trained_models["cnn"]
    every = evaluate_attack(model, ATTACKS["pgd_targeted"](steps=5, seed=1), x, y, 0.1)["correct"]
    # The first target alone (y + 1), with the same seed: the attack's first pass.
    x_first = pgd(model, x, (y + 1) % 4, 0.1, steps=5, step_ratio=0.25, random_start=True, seed=1, loss=margin)
    first = (predict(model, x_first) == y).numpy()
    assert not (every & ~first).any()  # robust against every target only where the first target failed
    assert every.sum() < first.sum()  # and the other targets fool more


def test_margin_loss_attacks_where_saturated_cross_entropy_is_blind(trained_models, digits_split):
    x, y = digits_split[2][:80], digits_split[3][:80]
    model = Overconfident(trained_models["mlp"]).eval()
    clean = (predict(model, x) == y).float().mean().item()
    cross_entropy = evaluate_attack(model, PGD(steps=10, seed=0), x, y, 0.2)["accuracy"]
    margin = evaluate_attack(model, ATTACKS["pgd_margin"](steps=10, seed=0), x, y, 0.2)["accuracy"]
    assert cross_entropy >= clean - 0.05  # blind: the random start alone
    assert margin < cross_entropy - 0.3


def test_the_new_attacks_come_from_the_registry_alone():
    # Config keys, validation and the masking checks' classification follow from the entries.
    section = AttackSection.parse({"methods": ["pgd", "pgd_margin", "pgd_targeted"],
                                   "pgd_targeted": {"steps": 7}}, "attack")
    assert section.params["pgd_targeted"].steps == 7 and section.params["pgd_margin"].steps == 20
    assert {"pgd_margin", "pgd_targeted"} <= set(ATTACKS.with_tag("gradient"))
