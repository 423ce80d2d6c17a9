"""The threat models (helpers/threats): the L2 projection lands in the ball and in the box and
is the Euclidean projection there; random starts lie in the ball; a step's direction has unit
dual norm; config validation keeps each attack to the norms it supports, naming the key."""
import pytest
import torch
import yaml

from helpers.config import parse_config
from helpers.params import ConfigError
from helpers.registry import ATTACKS, CERTIFICATES, THREAT_MODELS
from helpers.threats import threat_model
from helpers.threats.l2 import project_ball_box


def test_both_threat_models_are_registered_and_every_attack_and_certificate_names_known_norms():
    assert {"linf", "l2"} <= set(THREAT_MODELS.names())
    for registry in (ATTACKS, CERTIFICATES):
        for entry in registry.entries():
            assert entry.norms and set(entry.norms) <= set(THREAT_MODELS.names()), entry.name
    assert sorted(n for n in ATTACKS.names() if "l2" in ATTACKS[n].norms) == ["apgd_l2", "cw_l2", "pgd_l2", "square_l2"]


@pytest.mark.parametrize("epsilon", [0.1, 0.7, 2.5])
def test_the_l2_projection_lands_in_the_ball_and_the_box_and_is_nearest_there(epsilon):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 8, 8, generator=gen)
    x[:, :, :4] = torch.randint(0, 2, (64, 1, 4, 8), generator=gen).float()  # many pixels on the box's faces
    far = x + 3 * torch.randn(x.shape, generator=gen)
    z = project_ball_box(far, x, epsilon)
    assert (z - x).flatten(1).norm(dim=1).max() <= epsilon + 1e-5
    assert z.min() >= 0 and z.max() <= 1
    # Nearest: no feasible point drawn at random around z (projected to stay feasible) is closer to `far`.
    d = (z - far).flatten(1).norm(dim=1)
    for _ in range(20):
        other = project_ball_box(z + 0.05 * torch.randn(x.shape, generator=gen), x, epsilon)
        assert ((other - far).flatten(1).norm(dim=1) >= d - 1e-4).all()
    # Points already feasible are left alone.
    inside = x + (z - x) * 0.5
    assert torch.allclose(project_ball_box(inside, x, epsilon), inside, atol=1e-6)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_random_starts_lie_in_the_ball_and_directions_have_unit_norm(norm):
    threat, gen = threat_model(norm), torch.Generator().manual_seed(1)
    x = torch.rand(32, 20, generator=gen)
    start = threat.random_start(x, 0.5, gen)
    assert (threat.norm(start - x) <= 0.5 + 1e-5).all() and start.min() >= 0 and start.max() <= 1
    g = torch.randn(32, 20, generator=gen)
    direction = threat.direction(g)
    assert torch.allclose(threat.norm(direction), torch.ones(32), atol=1e-5)
    # the direction of steepest ascent: <g, d> equals the dual norm of g (L1 for L∞, L2 for L2)
    dual = g.abs().sum(1) if norm == "linf" else g.norm(dim=1)
    assert torch.allclose((g * direction).sum(1), dual, atol=1e-4)


def smoke_config(**attack):
    given = yaml.safe_load(open("configs/smoke.yaml"))
    given["attack"].update(attack)
    return given


@pytest.mark.parametrize("attack, message", [
    ({"l2": {"methods": ["pgd_l2", "square"]}}, "attack.l2.methods: square does not support the l2 norm"),
    ({"methods": ["pgd", "cw_l2"]}, "attack.methods: cw_l2 does not support the linf norm"),
    ({"l2": {"epsilons": [0.5, 9.0]}}, "attack.l2.epsilons: 9 exceeds the L2 diameter"),
    ({"l2": {"methods": ["pgd_l2"], "transfer_from": "cw_l2"}}, "attack.l2.transfer_from"),
    ({"l2": {"budgets": [1.0]}}, "attack.l2.budgets"),
    ({"cw_l2": {"steps": 0}}, "attack.cw_l2.steps"),
])
def test_config_errors_name_the_key(attack, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_config(smoke_config(**attack))


def test_a_config_without_l2_records_exactly_as_before():
    given = smoke_config()
    given["attack"].pop("l2", None)
    cfg = parse_config(given)
    assert cfg.attack.threats == {} and "l2" not in cfg.section("attack")
    assert list(cfg.attack.threat_sections()) == ["linf"]
    with_l2 = parse_config(smoke_config(l2={"epsilons": [0, 1.0], "methods": ["pgd_l2", "cw_l2"]}))
    sections = with_l2.attack.threat_sections()
    assert sections["l2"].methods == ("pgd_l2", "cw_l2") and sections["l2"].large_attack == "pgd_l2"
    assert {"pgd_l2", "cw_l2"} <= set(with_l2.attack.params)
