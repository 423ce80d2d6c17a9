"""helpers.evaluate: the whole evaluation on a model object of your own, without a config file:
the certificate never beaten by the attacks, a masked model flagged and escalated, bad
inputs named."""
import pytest
import torch
from torch import nn

import helpers

ATTACK = {"epsilons": [0.0, 0.05, 0.1], "methods": ["fgsm", "pgd", "square"], "pgd": {"steps": 10},
          "square": {"queries": 100}, "escalation": ["pgd_escalated"], "pgd_escalated": {"steps": 10, "restarts": 1}}


class Quantised(nn.Module):
    """An MLP behind 4-level input quantisation: its input gradient is zero almost everywhere."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(torch.round(x * 3) / 3)


@pytest.fixture(scope="module")
def mlp(digits_split):
    x_tr, y_tr, _, _ = digits_split
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.Adam(net.parameters(), 0.01)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x_tr), y_tr).backward()
        opt.step()
    return net.eval()


def test_a_plain_module_is_attacked_certified_and_bracketed(mlp, digits_split):
    x, y = digits_split[2][:60], digits_split[3][:60]
    tables = helpers.evaluate(mlp, x, y, attack=ATTACK)
    assert {"robustness", "transfer", "certified", "masking", "escalation_checks", "ceiling", "escalation"} <= set(tables)
    worst = tables["robustness"].query("attack == 'worst_case'").set_index("epsilon")["accuracy"]
    best = tables["certified"].query("certificate == 'best'").set_index("epsilon")
    assert (best["violations"] == 0).all() and (best["accuracy"] <= worst + 1e-12).all()
    assert best.loc[0.05, "accuracy"] > 0  # a Sequential of linear and ReLU layers is certified as it is
    assert (tables["ceiling"]["ceiling"] >= worst.reindex(tables["ceiling"]["epsilon"]).to_numpy() - 1e-12).all()


def test_a_masked_model_is_flagged_and_escalated(mlp, digits_split):
    x, y = digits_split[2][:60], digits_split[3][:60]
    tables = helpers.evaluate({"masked": Quantised(mlp), "honest": mlp}, x, y, attack=ATTACK)
    masking = tables["masking"].set_index(["model", "check"])["status"]
    assert (masking.loc["masked"] == "FLAG").any()
    assert not tables["escalation"].empty and set(tables["escalation"]["model"]) >= {"masked"}
    assert set(tables["escalation_checks"]["model"]) == {"masked"}
    certified = tables["certified"].query("model == 'masked' and certificate == 'best'")
    assert not certified["applicable"].astype(bool).any()  # no bound rules for rounding: no certificate


@pytest.mark.parametrize("x, y, message", [
    (torch.rand(4, 1, 8, 8) * 2, torch.zeros(4), r"x_test must lie in \[0, 1\]"),
    (torch.rand(4, 1, 8, 8), torch.zeros(3), "x_test must be"),
])
def test_bad_inputs_are_named(mlp, x, y, message):
    with pytest.raises(ValueError, match=message):
        helpers.evaluate(mlp, x, y, attack=ATTACK)


def test_a_non_module_is_named(digits_split):
    with pytest.raises(TypeError, match="not a torch nn.Module"):
        helpers.evaluate({"m": "model"}, digits_split[2][:4], digits_split[3][:4])
