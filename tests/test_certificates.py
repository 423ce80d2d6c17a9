"""Certificates are lower bounds: no attack ever beats one, no input of the ball escapes the
bounds they propagate, and on 2-D data, where the ball can be searched exhaustively, what they
certify is robust. Smoothing's radius is checked where it is known in closed form."""
import numpy as np
import pytest
import torch
from scipy.stats import norm
from torch import nn

from helpers.attacks import PGD, Square, predict
from helpers.attacks.apgd import APGDCE
from helpers.certificates.bounds import crown_margin_lower_bound, input_box, interval_trace, margin_lower_bound
from helpers.data import load_dataset, split_indices
from helpers.models import build_model
from helpers.models.ops import run_ops
from helpers.registry import CERTIFICATES
from helpers.training import train_model

# The noise certificates (tag "noise") prove nothing for these noise-free models: tests/test_noisy_certificates.py.
# The L∞ bound certificates (the noise ones prove nothing noise-free; the complete verifier
# has its own, budgeted tests in test_exact.py).
LINF = [name for name in CERTIFICATES.names() if "linf" in CERTIFICATES[name].norms
        and not {"noise", "complete"} & CERTIFICATES[name].tags]


def fooled_by_any_attack(model, x, y, epsilon):
    fooled = predict(model, x) != y
    for attack in (PGD(steps=20, seed=0), PGD(steps=20, seed=1), APGDCE(steps=20, seed=0), Square(queries=100, seed=0)):
        fooled |= predict(model, attack(model, x, y, epsilon)) != y
    return fooled.numpy()


def test_every_linf_certificate_is_registered_and_the_bound_ones_apply_to_the_shipped_models(trained_models):
    assert {"interval", "crown", "lipschitz"} <= set(LINF) and "smoothing" in CERTIFICATES.names()
    for model in trained_models.values():
        assert CERTIFICATES["interval"].applies(model)[0]
    amplitude = build_model({"type": "vqc", "n_qubits": 6, "n_layers": 1, "encoding": "amplitude"}, (1, 8, 8), 4)
    applies, reason = CERTIFICATES["interval"].applies(amplitude)
    assert not applies and "amplitude" in reason


@pytest.mark.parametrize("model_name", ["mlp", "cnn", "vqc"])
def test_the_bound_ops_are_the_model(trained_models, digits_split, model_name):
    model, x = trained_models[model_name], digits_split[2][:32]
    assert torch.allclose(run_ops(model.bound_ops(), x).float(), model(x), atol=1e-5)


@pytest.mark.parametrize("model_name", ["mlp", "cnn", "vqc"])
def test_no_sampled_input_of_the_ball_escapes_the_propagated_bounds(trained_models, digits_split, model_name):
    model = trained_models[model_name]
    assert_sampled_ball_inside_bounds(model, digits_split[2][:16], digits_split[3][:16], 0.05, draws=20)


def assert_sampled_ball_inside_bounds(model, x, y, epsilon: float, draws: int) -> None:
    """No sampled input of the ε-ball leaves the interval bounds of the logits, and its margin
    stays above the IBP and CROWN margin bounds."""
    ops = model.bound_ops()
    low, high = interval_trace(ops, *input_box(x, epsilon))[-1]
    margin_ibp = margin_lower_bound(low, high, y)
    margin_crown = crown_margin_lower_bound(ops, *input_box(x, epsilon), y, 4)
    gen = torch.Generator().manual_seed(0)
    for draw in range(draws):
        # Corners of the box (where a linear region's extremes are) and points inside it.
        step = torch.sign(torch.rand(x.shape, generator=gen) - 0.5) if draw % 2 else 2 * torch.rand(x.shape, generator=gen) - 1
        logits = model((x + epsilon * step).clamp(0, 1)).double()
        assert (logits >= low - 1e-5).all() and (logits <= high + 1e-5).all()
        margin = logits.gather(1, y[:, None])[:, 0] - logits.scatter(1, y[:, None], float("-inf")).max(1).values
        assert (margin >= margin_ibp - 1e-5).all() and (margin >= margin_crown - 1e-5).all()


@pytest.mark.parametrize("certificate", LINF)
@pytest.mark.parametrize("model_name", ["mlp", "cnn", "vqc"])
def test_no_attack_beats_a_certificate(trained_models, digits_split, certificate, model_name):
    model, x, y = trained_models[model_name], digits_split[2][:96], digits_split[3][:96]
    cert = CERTIFICATES[certificate](splits=16) if certificate == "interval" else CERTIFICATES[certificate]()
    for epsilon in (0.0, 0.01, 0.05, 0.1):
        certified = cert.certify(model, x, y, epsilon)
        assert certified.dtype == bool and certified.shape == (len(x),)
        assert not (certified & fooled_by_any_attack(model, x, y, epsilon)).any(), epsilon
    assert cert.certify(model, x, y, 0.0).sum() == (predict(model, x) == y).sum() or certificate == "lipschitz"


def test_branch_and_bound_only_adds_certified_points(trained_models, digits_split):
    model, x, y = trained_models["vqc"], digits_split[2][:64], digits_split[3][:64]
    for epsilon in (0.02, 0.05):
        one = CERTIFICATES["interval"](splits=1).certify(model, x, y, epsilon)
        many = CERTIFICATES["interval"](splits=64).certify(model, x, y, epsilon)
        assert not (one & ~many).any()
        assert many.sum() >= one.sum()


@pytest.fixture(scope="module", params=["moons", "circles"])
def two_feature_models(request):
    """An MLP and a 2-qubit circuit trained on a 2-D data set, and its held-out points."""
    data = load_dataset(request.param, [0, 1])
    train, test = split_indices(data.y, 0.2, seed=0)
    x, y = torch.as_tensor(data.X), torch.as_tensor(data.y)
    models = {}
    for name, spec in {"mlp": {"type": "mlp", "hidden": [16, 16]},
                       "vqc": {"type": "vqc", "n_qubits": 2, "n_layers": 3}}.items():
        torch.manual_seed(0)
        model = build_model(spec, (2,), 2)
        train_model(model, x[train], y[train], x[test], y[test], epochs=40, batch_size=32, learning_rate=0.03, seed=0)
        models[name] = model.eval()
    return models, x[test], y[test]


def grid_robust(model, x, y, epsilon, points=61):
    """Whether every point of a dense grid over the ball (inside [0, 1]) is classified as y:
    an upper bound on exact robustness that is tight as the grid refines."""
    offsets = torch.linspace(-epsilon, epsilon, points)
    grid = torch.stack(torch.meshgrid(offsets, offsets, indexing="ij"), -1).reshape(-1, 2)
    robust = []
    for xi, yi in zip(x, y):
        z = (xi[None] + grid).clamp(0, 1)
        robust.append(bool((predict(model, z) == yi).all()))
    return np.array(robust)


@pytest.mark.parametrize("model_name", ["mlp", "vqc"])
def test_certified_within_exhaustively_searched_within_attacked_on_two_features(two_feature_models, model_name):
    models, x, y = two_feature_models
    model = models[model_name]
    for epsilon in (0.02, 0.05, 0.1):
        searched = grid_robust(model, x, y, epsilon)
        attacked = ~fooled_by_any_attack(model, x, y, epsilon)
        assert not (searched & ~attacked).any()  # what an attack fools is not robust
        assert attacked.sum() - searched.sum() <= 1  # on two features the attacks find (almost) all the rest
        best = np.zeros(len(x), dtype=bool)
        for name in LINF:
            certified = CERTIFICATES[name]().certify(model, x, y, epsilon)
            assert not (certified & ~searched).any(), (name, epsilon)
            best |= certified
        if epsilon == 0.02:  # small budgets: the certificates close most of the gap
            assert best.sum() >= 0.8 * searched.sum(), (best.sum(), searched.sum())


class Constant(nn.Module):
    """Predicts class 0 everywhere."""

    def forward(self, x):
        return torch.stack([torch.ones(len(x)), torch.zeros(len(x))], 1)


def test_smoothing_radius_of_a_constant_classifier_is_the_closed_form():
    x, y = torch.rand(6, 2), torch.tensor([0, 0, 0, 1, 1, 1])
    smoothing = CERTIFICATES["smoothing"](n0=10, n=200, alpha=0.01, sigma=0.5)
    prediction, radius = smoothing.radii(Constant(), x, y)
    assert (prediction == 0).all()
    # Every draw votes for class 0: the Clopper-Pearson lower bound is alpha^(1/n).
    assert np.allclose(radius, 0.5 * norm.ppf(0.01 ** (1 / 200)))
    assert smoothing.certify(Constant(), x, y, float(radius[0]) * 0.99).tolist() == [True] * 3 + [False] * 3
    assert not smoothing.certify(Constant(), x, y, float(radius[0]) * 1.01).any()


def test_smoothing_abstains_where_the_vote_is_split(trained_models, digits_split):
    model, x, y = trained_models["mlp"], digits_split[2][:40], digits_split[3][:40]
    smoothing = CERTIFICATES["smoothing"](n0=20, n=100, sigma=2.0, seed=3)  # noise far beyond the data's range
    prediction, radius = smoothing.radii(model, x, y)
    assert ((prediction == -1) == (radius == 0)).all()
    again = CERTIFICATES["smoothing"](n0=20, n=100, sigma=2.0, seed=3).radii(model, x, y)
    assert (again[0] == prediction).all() and np.allclose(again[1], radius)
