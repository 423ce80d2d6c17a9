import pandas as pd
import pytest
import torch
from torch import nn

from helpers.analysis.evaluation import evaluate_models
from helpers.analysis.masking import CHECKS, masking_checks, run_checks, surviving_models
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
    runs = run_checks(frames["robustness"], frames["transfer"], frames["large_epsilon"], frames["convergence"])
    return masking_checks(runs).set_index(["model", "check"])


@pytest.mark.parametrize("wrapper", [RoundsInput, ZeroGradient])
def test_masking_checks_flag_a_masked_model_and_pass_a_normal_one(trained_models, digits_split, wrapper):
    normal = trained_models["mlp"]
    checks = checks_for({"normal": normal, "masked": wrapper(normal).eval()}, digits_split)
    # The EOT check exists only where a model is randomised (tests/test_eot.py); every other one passes.
    assert set(checks.index.get_level_values("check")) == set(CHECKS) - {"eot_convergence"}
    normal_status = checks.loc["normal", "status"]
    assert (normal_status == "PASS").all(), checks.loc["normal"]
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
    checks = masking_checks(run_checks(tables["robustness"], tables["transfer"], tables["large_epsilon"]))
    assert (checks["status"] == "SKIP").all()


def synthetic_study(n_runs=10, masked_runs=(), collapsed_runs=(), n=100):
    """Tables of a study of one model whose attacks behave in every run, except ``masked_runs``
    (gradients blind: PGD keeps 0.95 at every budget, Square does not) and ``collapsed_runs``
    (a constant predictor: 0.5 at every budget, whatever the attack)."""
    robustness, large = [], []
    for run in range(n_runs):
        for epsilon in (0.1, 0.3):
            for attack, accuracy in (("fgsm", 0.6), ("pgd", 0.5), ("pgd_restarts", 0.49), ("square", 0.55)):
                if run in masked_runs:
                    accuracy = 0.95 if attack != "square" else 0.2
                if run in collapsed_runs:
                    accuracy = 0.5
                robustness.append({"model": "m", "run": run, "attack": attack, "epsilon": epsilon,
                                   "accuracy": accuracy, "n": n})
            worst = 0.5 if run in collapsed_runs else 0.2 if run in masked_runs else 0.48
            robustness.append({"model": "m", "run": run, "attack": "worst_case", "epsilon": epsilon,
                               "accuracy": worst, "n": n})
        large.append({"model": "m", "run": run, "epsilon": 1.0, "n": n,
                      "accuracy": 0.95 if run in masked_runs else 0.5 if run in collapsed_runs else 0.0})
    return pd.DataFrame(robustness), pd.DataFrame(columns=["run", "source", "target", "epsilon", "accuracy", "n"]), \
        pd.DataFrame(large)


def test_one_masked_run_of_ten_is_flagged():
    # Averaged over runs, PGD's accuracy at ε = 1 would be 0.095: under the ceiling of 0.10.
    robustness, transfer, large = synthetic_study(masked_runs=(3,))
    checks = masking_checks(run_checks(robustness, transfer, large)).set_index("check")
    assert large["accuracy"].mean() < 0.10
    assert checks.loc["large_epsilon", "status"] == "FLAG" and checks.loc["large_epsilon", "runs_flagged"] == 1
    assert checks.loc["gradient_free_not_stronger", "status"] == "FLAG"
    assert "run 3" in checks.loc["large_epsilon", "detail"] and checks.loc["large_epsilon", "runs_checked"] == 10
    healthy = masking_checks(run_checks(*synthetic_study())).set_index("check")
    assert (healthy["status"].isin(["PASS", "SKIP"])).all()


def test_a_collapsed_run_is_never_checked_as_if_it_passed():
    robustness, transfer, large = synthetic_study(collapsed_runs=(0, 1))
    runs = run_checks(robustness, transfer, large, degenerate={("m", 0), ("m", 1)})
    assert (runs[runs["run"].isin([0, 1])]["status"] == "DEGENERATE").all()
    checks = masking_checks(runs).set_index("check")
    assert (checks["runs_degenerate"] == 2).all() and (checks.loc[checks["status"] != "SKIP", "runs_checked"] == 8).all()
    everything = masking_checks(run_checks(robustness, transfer, large)).set_index("check")
    assert everything.loc["large_epsilon", "status"] == "FLAG"  # unmarked, it sits at the class prior and fails


def test_a_flag_is_resolved_only_when_escalation_converged():
    """large_epsilon: resolved when the escalated attacks reach the ceiling at the largest
    masking budget; any other check: when escalation finds no more than noise at every budget."""
    from helpers.analysis.masking import escalation_checks

    runs = pd.DataFrame([{"model": m, "run": 0, "check": c, "status": "FLAG"}
                         for m, c in (("a", "large_epsilon"), ("a", "gradient_free_not_stronger"),
                                      ("b", "large_epsilon"), ("b", "transfer_not_stronger"))]
                        + [{"model": "c", "run": 0, "check": "large_epsilon", "status": "PASS"}])
    escalation = pd.DataFrame(
        [{"model": "a", "run": 0, "epsilon": e, "kind": "budget", "before": 0.5, "after": 0.49, "deciding": "rays", "n": 100}
         for e in (0.1, 0.2)]
        + [{"model": "a", "run": 0, "epsilon": 1.0, "kind": "masking", "before": 0.4, "after": 0.0, "deciding": "rays", "n": 100},
           {"model": "b", "run": 0, "epsilon": 0.1, "kind": "budget", "before": 0.5, "after": 0.3, "deciding": "rays", "n": 100},
           {"model": "b", "run": 0, "epsilon": 1.0, "kind": "masking", "before": 0.4, "after": 0.3, "deciding": "rays", "n": 100}])
    table = escalation_checks(runs, escalation).set_index(["model", "check"])
    assert table["resolved"].to_dict() == {("a", "large_epsilon"): True, ("a", "gradient_free_not_stronger"): True,
                                           ("b", "large_epsilon"): False, ("b", "transfer_not_stronger"): False}
    assert table.loc[("b", "transfer_not_stronger"), "worst_case_drop"] == pytest.approx(0.2)
    assert not escalation_checks(runs, escalation.iloc[:0])["resolved"].any()  # nothing escalated, nothing resolved
    # Escalated at the masking budgets only (every escalation attack was configured already, no
    # transfer source): no evidence at the budgets, so the budget check stays flagged.
    masking_only = escalation[(escalation["model"] == "a") & (escalation["kind"] == "masking")]
    table = escalation_checks(runs[runs["model"] == "a"], masking_only).set_index("check")
    assert table["resolved"].to_dict() == {"large_epsilon": True, "gradient_free_not_stronger": False}
