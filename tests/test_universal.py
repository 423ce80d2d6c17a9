"""Universal adversarial perturbations (helpers/attacks/universal.py) and their masking check."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from helpers.analysis.masking import ALPHA
from helpers.analysis.universal import universal_checks
from helpers.attacks import pgd, predict
from helpers.attacks.universal import (apply, fooling, fooling_rate, random_perturbation, targeted_success,
                                       universal_perturbation)
from helpers.config import parse_config
from helpers.params import ConfigError


class LinearBinary(nn.Module):
    """logits = [0, w·x + b]: class 1 exactly where w·x + b > 0."""

    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = torch.as_tensor(w, dtype=torch.float32), float(b)

    def forward(self, x):
        score = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(score), score], 1)


def _linear_problem(seed=0, d=16, n=800):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(d, generator=gen)
    x = torch.rand(n, d, generator=gen)
    model = LinearBinary(w, -float(np.median((x @ w).numpy())))  # half the points in each class
    return model, x, predict(model, x)  # labels: the model's own predictions (clean accuracy 1)


@pytest.mark.parametrize("target", [0, 1])
def test_targeted_universal_reaches_the_linear_optimum(target):
    """On a linear binary model the best class-targeted L∞ perturbation is ε·sign(w) towards
    the target (clipping to [0, 1] is monotone, so it is the best for every point at once)."""
    model, x, y = _linear_problem()
    x_train, y_train, x_test, y_test = x[:400], y[:400], x[400:], y[400:]
    epsilon = 0.05
    delta = universal_perturbation(model, x_train, y_train, epsilon, target=target, steps=60, batch_size=64,
                                   step_ratio=0.1, seed=3)
    optimum = epsilon * torch.sign(model.w) * (1 if target == 1 else -1)
    reached, n = targeted_success(model, x_test, y_test, delta, target)
    best, _ = targeted_success(model, x_test, y_test, optimum, target)
    assert n > 50 and 0.1 < best < 0.9  # a budget where the optimum fools some points, not all
    assert best - 0.01 <= reached <= best + 1e-9  # within a point of the optimum, and never beyond it


def test_perturbation_stays_in_the_ball_and_inputs_in_the_box():
    model, x, y = _linear_problem(1)
    for target in (None, 1):
        delta = universal_perturbation(model, x, y, 0.3, target=target, steps=20, step_ratio=0.25, seed=0)
        assert delta.shape == x.shape[1:] and float(delta.abs().max()) <= 0.3 + 1e-7
        perturbed = apply(x, delta)
        assert perturbed.min() >= 0 and perturbed.max() <= 1
        assert float((perturbed - x).abs().max()) <= 0.3 + 1e-6
    noise = random_perturbation(x.shape[1:], 0.2, seed=4)
    assert torch.allclose(noise.abs(), torch.full_like(noise, 0.2))  # a corner of the ball


def test_same_seed_same_perturbation_and_seed_matters():
    model, x, y = _linear_problem(2)
    a, b, c = (universal_perturbation(model, x, y, 0.1, steps=5, batch_size=16, step_ratio=0.1, seed=s,
                                      loss="ce") for s in (0, 0, 1))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_universal_never_beats_per_input_pgd_on_a_small_mlp():
    """One δ is one candidate per point: per-input PGD at the same ε fools at least as many
    points (the property the masking check relies on), here on a small MLP."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3)).eval()  # untrained: any function will do
    x = torch.rand(600, 10, generator=torch.Generator().manual_seed(0))
    y = predict(model, x)  # labels: its own predictions, so every point starts correct
    x_test, y_test = x[400:], y[400:]
    for epsilon in (0.05, 0.1, 0.2):
        delta = universal_perturbation(model, x[:400], y[:400], epsilon, steps=30, step_ratio=0.1, seed=0)
        result = fooling(model, x_test, y_test, delta)
        x_adv = pgd(model, x_test, y_test, epsilon, steps=20, step_ratio=0.25, random_start=True, seed=0)
        per_input = (predict(model, x_adv) != y_test).numpy()
        assert fooling_rate(result) > 0.05  # δ does something
        assert not (result["fooled"] & ~per_input).any()  # every point δ fools, PGD fools too
        baseline = fooling(model, x_test, y_test, random_perturbation(x.shape[1:], epsilon, seed=1))
        assert fooling_rate(result) > fooling_rate(baseline)


def _rows(beyond, universal_acc, worst_acc, baseline, fooling_rate_, only_universal=20, only_random=2, n=100):
    return pd.DataFrame([{"run": 0, "seed": 1, "model": "m", "epsilon": 0.1, "target": "none",
                          "fooling_rate": fooling_rate_, "accuracy": universal_acc, "baseline_fooling_rate": baseline,
                          "worst_case_accuracy": worst_acc, "beyond_worst_case": beyond, "n": n, "n_clean_correct": n,
                          "only_universal": only_universal, "only_random": only_random}])


def test_universal_masking_check_logic():
    ok = universal_checks(_rows(0, 0.6, 0.2, 0.01, 0.35))
    assert set(ok["status"]) == {"PASS"} and len(ok) == 2
    # A containment whose true count is zero: any point δ fools that every per-input attack missed flags.
    for beyond in (12, 1):
        weak = universal_checks(_rows(beyond, 0.3, 0.35, 0.01, 0.6)).set_index("check")
        assert weak.loc["universal_within_worst_case", "status"] == "FLAG"
        assert weak.loc["universal_within_worst_case", "violating"] == beyond
    # Per-input attack strong, the random δ fools significantly more points than δ: δ was not found.
    blind = universal_checks(_rows(0, 0.97, 0.1, 0.2, 0.02, only_universal=1, only_random=19))
    assert blind.set_index("check").loc["universal_beats_noise", "status"] == "FLAG"
    even = universal_checks(_rows(0, 0.97, 0.1, 0.02, 0.02, only_universal=3, only_random=4))  # noise, not evidence
    assert even.set_index("check").loc["universal_beats_noise", "status"] == "PASS"
    robust = universal_checks(_rows(0, 0.97, 0.95, 0.02, 0.02))  # per-input attack weak too: nothing to ask
    assert robust.set_index("check").loc["universal_beats_noise", "status"] == "SKIP"

    def transfer(only_source, only_own):
        return pd.DataFrame([{"run": 0, "source": s, "target_model": "m", "epsilon": 0.1, "fooling_rate": 0.3,
                              "n": 100, "only_source": a, "only_own": b}
                             for s, a, b in (("m", 0, 0), ("other", only_source, only_own))])

    def status(only_source, only_own):
        checks = universal_checks(_rows(0, 0.6, 0.2, 0.01, 0.3), transfer=transfer(only_source, only_own))
        return checks.set_index("check").loc["universal_transfer_not_stronger", "status"]

    assert status(5, 2) == "PASS" and status(8, 3) == "PASS"  # the disagreements are what noise gives
    assert status(30, 0) == "FLAG"  # another model's δ fools far more of its points: its own δ was not found


def test_universal_checks_tests_are_calibrated():
    """Two δs of equal strength on an honest model, 10 runs × 4 budgets × 3 other models: the
    transfer check flags in at most α of simulated studies."""
    rng = np.random.default_rng(0)
    flagged = []
    for _ in range(200):
        rows = [{"run": run, "source": s, "target_model": "m", "epsilon": e, "fooling_rate": 0.3, "n": 100,
                 "only_source": int(d[0]), "only_own": int(d[1])}
                for run in range(10) for e in (0.05, 0.1, 0.2, 0.3) for s in ("m", "a", "b", "c")
                for d in [rng.multinomial(100, [0.1, 0.1, 0.8])[:2] if s != "m" else (0, 0)]]
        universal = pd.concat([_rows(0, 0.6, 0.2, 0.01, 0.3).assign(run=run) for run in range(10)])
        checks = universal_checks(universal, transfer=pd.DataFrame(rows), runs=10)
        flagged.append((checks["status"] == "FLAG").any())
    assert np.mean(flagged) <= ALPHA


def _config(universal, **attack):
    return parse_config({"dataset": {"name": "digits", "classes": [0, 1, 2, 3], "folds": 2}, "n_runs": 2,
                         "models": {"mlp": {"type": "mlp"}},
                         "attack": {"epsilons": [0.0, 0.1, 0.3], "methods": ["pgd"], **attack,
                                    **({} if universal is ... else {"universal": universal})}})


def test_universal_config():
    assert _config(...).attack.universal is None and "universal" not in _config(...).section("attack")
    assert _config({}).attack.universal is None and _config(None).attack.universal is None
    section = _config({"epsilons": [0.1, 0.3], "targeted": True, "targets": [1, 3]}).attack.universal
    assert section.epsilons == (0.1, 0.3) and section.targets == (1, 3)
    bad = [({"steps": 3}, "attack.universal.epsilons must be a non-empty list"),
           ({"epsilons": [0.2]}, r"attack.universal.epsilons \[0.2\] are not in attack.epsilons"),
           ({"epsilons": [0.1], "targets": [1]}, "attack.universal.targets needs attack.universal.targeted: true"),
           ({"epsilons": [0.1], "targeted": True, "targets": [4]}, "attack.universal.targets must be class indices 0..3"),
           ({"epsilons": [0.1], "loss": "dlr"}, "attack.universal.loss 'dlr' is unknown"),
           ({"epsilons": [0.1], "step": 2}, "unknown config key 'attack.universal.step'"),
           (3, "config key 'attack.universal' must be a mapping")]
    for universal, message in bad:
        with pytest.raises(ConfigError, match=message):
            _config(universal)


def test_universal_units_are_keyed_apart_and_absent_without_the_section(tmp_path):
    """Without ``attack.universal`` nothing universal is written; adding it computes its units
    and reuses every per-input one; editing its code recomputes its units and no other."""
    from test_units import CONFIG, Copy

    repo = Copy(tmp_path)
    repo.run("train", "attack")
    assert not (repo.results / "universal.csv").exists() and "universal" not in (repo.results / "config.yaml").read_text()
    per_input = repo.units()
    repo.write_config({**CONFIG, "attack": {**CONFIG["attack"], "universal": {
        "epsilons": [0.1], "steps": 3, "batch_size": 16, "targeted": True, "targets": [0]}}})
    repo.run("attack")
    with_universal = repo.units()
    universal = {k for k in with_universal if "/universal/" in k}
    assert len(universal) == 2 * 2  # 2 models, 1 budget, untargeted and one target
    assert {k: with_universal[k] for k in per_input} == per_input  # every per-input unit reused
    table, transfer = (pd.read_csv(repo.results / f"{name}.csv") for name in ("universal", "universal_transfer"))
    assert len(table) == 4 and len(transfer) == 4 and table["worst_case_accuracy"].notna().sum() == 2
    source = repo.root / "helpers" / "attacks" / "universal.py"
    source.write_text(source.read_text() + "\n# an edit\n")
    repo.run("attack")
    edited = repo.units()
    assert {k for k in edited if edited[k] != with_universal[k]} == universal
