import pytest
import torch

from helpers.attacks import ATTACKS as REGISTRY
from helpers.attacks import FGSM, PGD, Square, evaluate_attack, predict
from helpers.training import accuracy

ATTACKS = {"fgsm": FGSM(), "pgd": PGD(steps=5, step_ratio=0.25, random_start=True, seed=1),
           "pgd_restarts": REGISTRY["pgd_restarts"](steps=5, seed=1, restarts=3), "apgd_ce": REGISTRY["apgd_ce"](steps=5),
           "apgd_dlr": REGISTRY["apgd_dlr"](steps=5), "apgd_dlr_targeted": REGISTRY["apgd_dlr_targeted"](steps=5, targets=2),
           "pgd_margin": REGISTRY["pgd_margin"](steps=5), "pgd_escalated": REGISTRY["pgd_escalated"](steps=5, restarts=2),
           "square": Square(queries=20), "noise": REGISTRY["noise"](draws=3), "rays": REGISTRY["rays"](queries=50)}


@pytest.mark.parametrize("name", ["mlp", "cnn", "vqc"])
@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
@pytest.mark.parametrize("epsilon", [0.05, 0.3])
def test_attacks_stay_in_the_epsilon_ball_and_pixel_range(trained_models, digits_split, name, attack, epsilon):
    x, y = digits_split[2][:40], digits_split[3][:40]
    x_adv = attack(trained_models[name], x, y, epsilon)
    assert x_adv.shape == x.shape
    assert (x_adv - x).abs().max() <= epsilon + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    # the attack used its budget (the digits have many pixels at 0 and 1, but not all)
    assert (x_adv - x).abs().max() > epsilon / 2


@pytest.mark.parametrize("name", ["mlp", "cnn", "vqc"])
def test_epsilon_zero_reproduces_clean_accuracy(trained_models, digits_split, name):
    x, y = digits_split[2], digits_split[3]
    clean = accuracy(trained_models[name], x, y)
    for attack in ATTACKS.values():
        assert evaluate_attack(trained_models[name], attack, x, y, 0.0)["accuracy"] == clean


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_pgd_is_at_least_as_strong_as_fgsm(trained_models, digits_split, name):
    x, y = digits_split[2], digits_split[3]
    model = trained_models[name]
    for epsilon in (0.05, 0.1):
        fgsm = evaluate_attack(model, FGSM(), x, y, epsilon)["accuracy"]
        pgd = evaluate_attack(model, PGD(steps=20, step_ratio=0.25, seed=0), x, y, epsilon)["accuracy"]
        assert pgd <= fgsm, (epsilon, pgd, fgsm)
    # and both actually hurt the model
    assert pgd < accuracy(model, x, y)


def test_pgd_lowers_accuracy_on_the_quantum_model(trained_models, digits_split):
    x, y = digits_split[2], digits_split[3]
    model = trained_models["vqc"]
    clean = accuracy(model, x, y)
    assert evaluate_attack(model, PGD(steps=10, seed=0), x, y, 0.2)["accuracy"] < clean - 0.2


def test_per_sample_correctness_is_aligned(trained_models, digits_split):
    x, y = digits_split[2][:50], digits_split[3][:50]
    model = trained_models["mlp"]
    result = evaluate_attack(model, FGSM(), x, y, 0.1, batch_size=16)
    x_adv = torch.cat([FGSM()(model, x[i:i + 16], y[i:i + 16], 0.1) for i in range(0, 50, 16)])
    assert (result["correct"] == (predict(model, x_adv) == y).numpy()).all()
    assert result["n"] == 50 and result["n_correct"] == result["correct"].sum()


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
def test_epsilon_outside_the_pixel_range_is_refused(trained_models, digits_split, attack):
    with pytest.raises(ValueError, match="epsilon must lie in"):
        attack(trained_models["mlp"], digits_split[2][:2], digits_split[3][:2], -0.1)


@pytest.mark.parametrize("name", ["cnn", "vqc"])
def test_restarts_keep_every_sample_the_first_start_fooled(trained_models, digits_split, name):
    x, y = digits_split[2][:60], digits_split[3][:60]
    model = trained_models[name]
    restarts = REGISTRY["pgd_restarts"](steps=5, seed=3, restarts=4)
    first = PGD(steps=5, seed=restarts.start_seed)  # its first start alone
    once = evaluate_attack(model, first, x, y, 0.1)["correct"]
    restarted = evaluate_attack(model, restarts, x, y, 0.1)["correct"]
    assert not (restarted & ~once).any()  # never robust where the first start already won
    assert restarted.sum() <= once.sum()
    # and its starts are not PGD's: the restarts add starts, they do not repeat `pgd`
    assert not torch.equal(restarts(model, x, y, 0.1), PGD(steps=5, seed=3)(model, x, y, 0.1))


def test_random_attacks_are_reproducible_with_the_same_seed(trained_models, digits_split):
    x, y = digits_split[2][:20], digits_split[3][:20]
    for attack in (Square(queries=20, seed=5), REGISTRY["apgd_ce"](steps=5, seed=5), REGISTRY["noise"](draws=3, seed=5)):
        assert torch.equal(attack(trained_models["mlp"], x, y, 0.1), attack(trained_models["mlp"], x, y, 0.1))


@pytest.fixture(scope="module")
def breast_cancer_mlp():
    """An MLP trained on breast-cancer feature vectors (B, 30), and held-out points."""
    from helpers.data import load_dataset, split_arrays, split_indices
    from helpers.models import build_model
    from helpers.training import train_model

    data = load_dataset("breast_cancer")
    train_idx, test_idx = split_indices(data.y, 0.25, seed=0)
    x_tr, y_tr, x_te, y_te = (torch.as_tensor(a) for a in split_arrays(data, train_idx, test_idx))
    torch.manual_seed(0)
    model = build_model({"type": "mlp", "hidden": [16]}, data.input_shape, 2)
    train_model(model, x_tr, y_tr, x_te, y_te, epochs=20, batch_size=32, learning_rate=0.01, seed=0)
    return model, x_te, y_te


def test_square_on_feature_vectors_is_a_gradient_free_search_inside_the_ball(breast_cancer_mlp):
    model, x, y = breast_cancer_mlp
    square = Square(queries=100, seed=3)  # windows of consecutive features
    x_adv = square(model, x, y, 0.1)
    assert x_adv.shape == x.shape and (x_adv - x).abs().max() <= 0.1 + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert torch.equal(x_adv, square(model, x, y, 0.1))  # the same seed, the same examples
    clean, robust = accuracy(model, x, y), accuracy(model, x_adv, y)
    assert clean > 0.9 and robust < clean - 0.2  # it finds adversarial examples
    # ... without gradients, so not more than PGD does (a small margin for its randomness)
    assert robust >= accuracy(model, PGD(steps=20, seed=0)(model, x, y, 0.1), y) - 0.05
    # never worse than its start: with one query it is x + epsilon * random signs
    assert accuracy(model, Square(queries=1, seed=3)(model, x, y, 0.1), y) >= robust


def test_the_noise_baselines_statistics_order_and_the_mean_is_the_average_draw(breast_cancer_mlp):
    """The same draws (the same seed) scored three ways: a point fooled by any draw or misclassified
    clean (``any``) <= the lowest accuracy of one draw over the whole set (``min``) <= the mean
    accuracy over draws (``mean``) <= 1; with one draw, ``min`` and ``mean`` are that draw's
    accuracy and ``any`` adds the clean mistakes. The test set spans several batches, so the
    draw ``min`` picks is chosen over all of them, not per batch."""
    model, x, y = breast_cancer_mlp
    score = {s: evaluate_attack(model, REGISTRY["noise"](draws=8, seed=2, statistic=s), x, y, 0.3, batch_size=40)
             for s in ("any", "min", "mean")}
    assert score["any"]["correct"].dtype == bool and score["min"]["correct"].dtype == bool
    assert score["any"]["accuracy"] < score["min"]["accuracy"] < score["mean"]["accuracy"] < 1
    one = {s: evaluate_attack(model, REGISTRY["noise"](draws=1, seed=2, statistic=s), x, y, 0.3, batch_size=40)
           for s in ("any", "min", "mean")}
    assert one["min"]["accuracy"] == one["mean"]["accuracy"]
    clean = (predict(model, x) == y).numpy()
    assert (one["any"]["correct"] == (one["min"]["correct"] & clean)).all()
    assert REGISTRY["noise"](statistic="mean").per_point is False and REGISTRY["noise"]().per_point


def test_a_mean_over_noise_draws_stays_out_of_the_worst_case(breast_cancer_mlp):
    """The worst case over attacks takes one input per point; a share of correct draws is none."""
    import pandas as pd

    from helpers.analysis.evaluation import evaluate_models
    from helpers.config import AttackSection

    model, x, y = breast_cancer_mlp
    section = AttackSection.parse({"epsilons": [0.0, 0.3], "methods": ["fgsm", "noise"], "transfer_from": None,
                                   "noise": {"statistic": "mean", "draws": 4}}, "attack")
    rows = pd.DataFrame(evaluate_models({"m": model}, x, y, section, seed=0)["robustness"]).set_index(["attack", "epsilon"])
    assert rows.loc[("worst_case", 0.3), "accuracy"] == rows.loc[("fgsm", 0.3), "accuracy"]
    assert rows.loc[("noise", 0.3), "accuracy"] > rows.loc[("fgsm", 0.3), "accuracy"]
