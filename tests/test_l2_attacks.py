"""The L2 attacks (pgd_l2, apgd_l2, square_l2, cw_l2) and certificates: every example lies in
the L2 ball and in [0, 1]; PGD-L2's step is the normalised gradient step; APGD-L2 and
Square-L2 never return a point better for the model than the clean one; Carlini-Wagner finds
the analytic distance to a linear model's boundary; no L2 attack beats an L2 certificate."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers.attacks import predict
from helpers.attacks.base import expected_correct
from helpers.attacks.cw_l2 import carlini_wagner_l2
from helpers.registry import ATTACKS, CERTIFICATES
from helpers.threats import threat_model

L2_ATTACKS = {"pgd_l2": dict(steps=5), "apgd_l2": dict(steps=5), "square_l2": dict(queries=20),
              "cw_l2": dict(steps=10, search_steps=2)}


@pytest.mark.parametrize("name", ["mlp", "cnn", "vqc"])
@pytest.mark.parametrize("attack", L2_ATTACKS)
def test_l2_attacks_stay_in_the_l2_ball_and_the_box(trained_models, digits_split, name, attack):
    x, y = digits_split[2][:16], digits_split[3][:16]
    model = trained_models[name]
    for epsilon in (0.3, 2.5):
        x_adv = ATTACKS[attack](seed=1, **L2_ATTACKS[attack])(model, x, y, epsilon)
        assert x_adv.shape == x.shape
        assert (x_adv - x).flatten(1).norm(dim=1).max() <= epsilon + 1e-5, epsilon
        assert x_adv.min() >= 0 and x_adv.max() <= 1
    # A budget beyond the box's diameter is refused, naming the norm.
    with pytest.raises(ValueError, match="l2"):
        ATTACKS[attack]()(model, x, y, 9.0)


def test_one_pgd_l2_step_is_the_normalised_gradient_step_projected(trained_models, digits_split):
    model, x, y, epsilon = trained_models["mlp"], digits_split[2][:32], digits_split[3][:32], 0.8
    x_adv = ATTACKS["pgd_l2"](steps=1, step_ratio=0.5, random_start=False)(model, x, y, epsilon)
    xi = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(xi), y, reduction="sum"), xi)
    step = 0.5 * epsilon * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    assert torch.allclose(step.flatten(1).norm(dim=1), torch.full((32,), 0.4), atol=1e-5)
    expected = threat_model("l2").project(x + step, x, epsilon)
    assert torch.allclose(x_adv, expected, atol=1e-6)
    # a step of 0.4 inside a ball of 0.8: the projection only clips to the box here
    assert torch.allclose(expected, (x + step).clamp(0, 1), atol=1e-6)


@pytest.mark.parametrize("attack", ["apgd_l2", "square_l2"])
@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_apgd_and_square_l2_are_never_worse_than_the_clean_point(trained_models, digits_split, attack, name):
    model, x, y = trained_models[name], digits_split[2][:64], digits_split[3][:64]
    clean_fooled = predict(model, x) != y
    for epsilon in (0.25, 1.5):
        x_adv = ATTACKS[attack](seed=0, **L2_ATTACKS[attack])(model, x, y, epsilon)
        fooled = predict(model, x_adv) != y
        assert (fooled | ~clean_fooled).all()  # every point the clean input fools stays fooled
        assert fooled.sum() >= clean_fooled.sum()
    assert fooled.sum() > clean_fooled.sum()  # and at 1.5 they find something


class Linear(nn.Module):
    """A linear binary classifier: logits (0, w·x + b)."""

    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x):
        s = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(s), s], 1)


def test_carlini_wagner_finds_the_distance_to_a_linear_boundary():
    gen = torch.Generator().manual_seed(0)
    w, b = torch.randn(16, generator=gen), torch.tensor(0.3)
    model = Linear(w, b)
    # Points in the box's interior at known distances 0.1..0.5 from the hyperplane, so that the
    # nearest boundary point (along w) lies inside [0, 1]: the minimal L2 norm is |w·x + b| / ||w||.
    x = 0.35 + 0.3 * torch.rand(24, 16, generator=gen)
    side = torch.sign(torch.randn(24, generator=gen))
    target = 0.1 + 0.4 * torch.rand(24, generator=gen)
    x = x - ((x @ w + b - side * target * w.norm()) / w.norm() ** 2)[:, None] * w
    assert x.min() > 0 and x.max() < 1
    y = (x @ w + b > 0).long()
    exact = ((x @ w + b).abs() / w.norm()).numpy()
    examples, found = carlini_wagner_l2(model, x, y, steps=50, search_steps=4, initial_const=1.0, learning_rate=0.05)
    assert np.all(found >= exact * (1 - 1e-4))  # never below the true minimum (it is one)
    assert np.max(found / exact - 1) < 0.03     # within 3% of it
    assert (predict(model, examples) != y).all()
    # As an attack at ε: fooled exactly where the minimal norm is at most ε.
    x_adv = ATTACKS["cw_l2"](steps=50, search_steps=4)(model, x, y, 0.3)
    assert ((predict(model, x_adv) != y).numpy() == (found <= 0.3)).all()


class GaussianInput(nn.Module):
    """f(x + N(0, σ²)) clipped to [0, 1]: one pass of the smoothed classifier g (a randomised
    model, attacked with EOT, whose majority vote is g)."""

    stochastic = True

    def __init__(self, model, sigma):
        super().__init__()
        self.model, self.sigma, self.gen = model, sigma, torch.Generator().manual_seed(0)

    def reseed(self, seed):
        self.gen.manual_seed(seed)

    def forward(self, x):
        return self.model((x + self.sigma * torch.randn(x.shape, generator=self.gen)).clamp(0, 1))


def test_no_l2_attack_beats_the_smoothing_certificate(trained_models, digits_split):
    """Smoothing certifies g at radius R: at any x' with ||x' - x||_2 <= ε < R, g's probability of
    the certified class is at least Φ(Φ⁻¹(p_A) - ε/σ) > 1/2. PGD-L2 with EOT attacks g itself;
    an attacked point counts as beaten when g's estimated vote for the class (300 passes) falls
    below 1/2 by more than three standard errors."""
    model, x, y = trained_models["mlp"], digits_split[2][:32], digits_split[3][:32]
    sigma, epsilon = 0.25, 0.2
    prediction, radius = CERTIFICATES["smoothing"](sigma=sigma, n0=50, n=300, seed=0).radii(model, x, y)
    certified = (prediction == y.numpy()) & (radius > epsilon)
    assert certified.sum() >= 10
    smoothed = GaussianInput(model, sigma)
    x_adv = ATTACKS["pgd_l2"](steps=8, eot_samples=8, seed=0)(smoothed, x, y, epsilon)
    votes = expected_correct(smoothed, x_adv, y, 300)
    beaten = votes < 0.5 - 3 * np.sqrt(0.25 / 300)
    assert not (certified & beaten).any()
    # the attack is real: it lowers g's votes below the clean ones on average
    assert votes.mean() < expected_correct(smoothed, x, y, 300).mean()
    # and every L2 bound certificate holds against the L2 attacks on the model itself
    fooled = predict(model, x) != y
    for attack in L2_ATTACKS:
        fooled |= predict(model, ATTACKS[attack](seed=0, **L2_ATTACKS[attack])(model, x, y, epsilon)) != y
    for name in ("interval", "crown", "lipschitz"):
        proved = CERTIFICATES[name]().certify_norm(model, x, y, epsilon, "l2")
        assert not (proved & fooled.numpy()).any(), name


def test_the_l2_lipschitz_bound_is_a_bound_and_tighter_than_the_box():
    """The L2 -> L∞ constant bounds every sampled pair's logit change, and certifies at least
    what the enclosing L∞ box does."""
    from helpers.certificates.bounds import lipschitz_constant
    from helpers.models import build_model

    torch.manual_seed(0)
    model = build_model({"type": "mlp", "hidden": [16]}, (1, 8, 8), 4).eval()
    ops = model.bound_ops()
    l2, linf = lipschitz_constant(ops, (1, 8, 8), "l2"), lipschitz_constant(ops, (1, 8, 8))
    assert l2 <= linf
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(200, 1, 8, 8, generator=gen)
    delta = torch.randn(x.shape, generator=gen) * 0.1
    with torch.no_grad():
        change = (model(x + delta) - model(x)).abs().amax(dim=1)
    assert (change <= l2 * delta.flatten(1).norm(dim=1) + 1e-5).all()


def test_crown_in_l2_proves_at_least_what_the_enclosing_box_proves(trained_models, digits_split):
    """CROWN's linear bound minimised over the L2 ball (the dual norm) is never below its
    minimum over the enclosing box, and on the MLP it proves strictly more at a small budget."""
    from helpers.certificates.bounds import crown_margin_lower_bound, input_box

    model, x, y = trained_models["mlp"], digits_split[2][:64], digits_split[3][:64]
    box = crown_margin_lower_bound(model.bound_ops(), *input_box(x, 0.2), y, 4)
    ball = crown_margin_lower_bound(model.bound_ops(), *input_box(x, 0.2), y, 4, l2_ball=(x, 0.2))
    assert (ball >= box - 1e-6).all() and (ball > box + 1e-3).any()
    crown = CERTIFICATES["crown"]()
    assert (crown.certify_norm(model, x, y, 0.2, "l2") >= crown.certify(model, x, y, 0.2)).all()
