import pandas as pd
import pytest
import torch
from torch import nn

from helpers.analysis.evaluation import evaluate_models
from helpers.analysis.masking import CHECKS, masking_checks, surviving_models
from helpers.config import AttackSection

SETTINGS = {"epsilons": [0.0, 0.1, 0.2, 0.3], "pgd": {"steps": 10}, "pgd_restarts": {"steps": 10, "restarts": 3},
            "pgd_long": {"steps": 40}, "apgd_ce": {"steps": 20}, "apgd_dlr": {"steps": 20},
            "square": {"queries": 150}, "masking_epsilons": [0.5, 1.0]}


def attack_section(**changes):
    return AttackSection.parse({**SETTINGS, **changes}, "attack")


ATTACK_CFG = attack_section()


class RoundsInput(nn.Module):
    """Quantises its input to 4 grey levels: the gradient is zero almost everywhere."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x * 3) / 3)


class ZeroGradient(nn.Module):
    """The same predictions as ``model`` but no gradient reaches the input."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).detach() + 0 * x.sum()


def checks_for(models, digits_split):
    x, y = digits_split[2][:80], digits_split[3][:80]
    tables = evaluate_models(models, x, y, ATTACK_CFG, seed=0)
    frames = {k: pd.DataFrame([{"run": 0, **r} for r in v]) for k, v in tables.items()}
    return masking_checks(frames["robustness"], frames["transfer"], frames["large_epsilon"]).set_index(["model", "check"])


@pytest.mark.parametrize("wrapper", [RoundsInput, ZeroGradient])
def test_masking_checks_flag_a_masked_model_and_pass_a_normal_one(trained_models, digits_split, wrapper):
    normal = trained_models["mlp"]
    checks = checks_for({"normal": normal, "masked": wrapper(normal).eval()}, digits_split)
    assert set(checks.index.get_level_values("check")) == set(CHECKS)
    assert (checks.loc["normal", "status"] == "PASS").all(), checks.loc["normal"]
    masked = checks.loc["masked", "status"]
    # The gradient-free attack and transfer from the unmasked twin both beat the blinded
    # gradient attacks, and large budgets no longer drive accuracy to zero.
    assert masked["gradient_free_not_stronger"] == "FLAG"
    assert masked["transfer_not_stronger"] == "FLAG"
    assert masked["large_epsilon"] == "FLAG"
    assert surviving_models(checks.reset_index()) == ["normal"]


def test_worst_case_is_per_sample_and_never_above_any_attack(trained_models, digits_split):
    x, y = digits_split[2][:60], digits_split[3][:60]
    cfg = attack_section(methods=["fgsm", "pgd", "square"])
    rob = pd.DataFrame(evaluate_models({"m": trained_models["cnn"]}, x, y, cfg, seed=0)["robustness"])
    wide = rob.pivot(index="epsilon", columns="attack", values="accuracy")
    assert (wide["worst_case"] <= wide[["fgsm", "pgd", "square"]].min(axis=1) + 1e-12).all()
    assert (rob["linf"] <= rob["epsilon"] + 1e-6).all()


def test_checks_are_skipped_when_their_attacks_were_not_run(trained_models, digits_split):
    x, y = digits_split[2][:30], digits_split[3][:30]
    cfg = attack_section(methods=["pgd"], transfer_from=None, masking_epsilons=[])
    tables = {k: pd.DataFrame([{"run": 0, **r} for r in v])
              for k, v in evaluate_models({"m": trained_models["mlp"]}, x, y, cfg, seed=0).items()}
    checks = masking_checks(tables["robustness"], tables["transfer"], tables["large_epsilon"])
    assert (checks["status"] == "SKIP").all()
