"""Networks written as layers (`net`): the presets are the documented architectures, created
in the same order; impossible layer lists are refused before anything is built; every layer
kind is bounded soundly by the certificates."""
import pickle
import re
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from helpers.attacks import predict
from helpers.params import ConfigError
from helpers.models import build_model
from helpers.models.layers import MaxPool
from helpers.models.ops import run_ops
from helpers.registry import CERTIFICATES
from helpers.training import train_model

from test_certificates import LINF, assert_sampled_ball_inside_bounds, fooled_by_any_attack


def docs_example() -> dict:
    """The config example of docs/architecture.md: the other group's network (one 5x5
    convolution without padding, max pooling, one linear layer)."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "architecture.md").read_text()
    section = text[text.index("## Models written in the config"):]
    return yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))["models"]["theirs"]


FIVE_BY_FIVE = docs_example()
# Every layer kind, on 8x8 images: (4, 8, 8) -> avg (4, 4, 4) -> stride 2 (6, 2, 2) -> max (6, 1, 1).
EVERY_KIND = {"type": "net", "layers": [
    {"kind": "conv", "channels": 4, "kernel": 3, "padding": 1}, "relu", {"kind": "pool", "mode": "avg"},
    {"kind": "conv", "channels": 6, "kernel": 3, "stride": 2, "padding": 1}, "tanh",
    {"kind": "pool", "mode": "max", "kernel": 2, "stride": 1}, "flatten",
    {"kind": "linear", "width": 16}, "sigmoid", {"kind": "dropout", "p": 0.2}, {"kind": "linear", "width": 12}, "relu"]}


def architecture(model):
    """(module class, parameter shapes) of every module of the model's network, in order."""
    return [(type(m), [tuple(p.shape) for p in m.parameters()]) for m in model.net]


def test_the_presets_are_their_documented_architectures_with_parameters_in_the_same_order():
    mlp = build_model({"type": "mlp", "hidden": [16, 8]}, (1, 8, 8), 4)
    assert architecture(mlp) == [(nn.Flatten, []), (nn.Linear, [(16, 64), (16,)]), (nn.ReLU, []),
                                 (nn.Linear, [(8, 16), (8,)]), (nn.ReLU, []), (nn.Linear, [(4, 8), (4,)])]
    cnn = build_model({"type": "cnn", "channels": [4, 8], "hidden": 16}, (1, 9, 7), 3)
    assert architecture(cnn) == [
        (nn.Conv2d, [(4, 1, 3, 3), (4,)]), (nn.ReLU, []), (nn.Conv2d, [(8, 4, 3, 3), (8,)]), (nn.ReLU, []),
        (MaxPool, []), (nn.Flatten, []), (nn.Linear, [(16, 8 * 4 * 3), (16,)]), (nn.ReLU, []),
        (nn.Linear, [(3, 16), (3,)])]
    assert [m.padding for m in cnn.net if isinstance(m, nn.Conv2d)] == [(1, 1), (1, 1)]
    assert cnn.net[4].kernel_size == 2 and cnn.net[4].stride == 2
    assert cnn.gradcam_layer is cnn.net[2] and mlp.gradcam_layer is None


@pytest.mark.parametrize("kernel, stride, shape", [(2, None, (6, 3, 8, 8)), (2, None, (6, 3, 9, 7)),
                                                   ((2, 3), None, (4, 2, 8, 9)), (2, 1, (4, 2, 8, 8))])
def test_max_pooling_gives_the_values_and_gradients_of_torch_on_ties(kernel, stride, shape):
    """Blank regions make a convolution's outputs equal at neighbouring positions, so a window
    often holds several maxima (positive ones too): the gradient must reach the member torch's
    kernel picks, or a trained model and every attack on it would change."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 3, shape, generator=gen).double().mul(0.5).requires_grad_(True)  # many exact ties
    upstream = torch.randn(nn.MaxPool2d(kernel, stride)(x).shape, generator=gen, dtype=torch.float64)
    ours, theirs = MaxPool(kernel, stride)(x), nn.MaxPool2d(kernel, stride)(x)
    assert torch.equal(ours, theirs)
    assert torch.equal(*(torch.autograd.grad(out, x, upstream)[0] for out in (ours, theirs)))
    with torch.no_grad():
        assert torch.equal(MaxPool(kernel, stride)(x), theirs)


def test_a_seed_gives_the_preset_the_weights_of_the_hand_written_network():
    """The same modules created in the same order draw the same initial weights."""
    torch.manual_seed(5)
    cnn = build_model({"type": "cnn", "channels": [4, 8], "hidden": 16}, (1, 8, 8), 4)
    torch.manual_seed(5)
    by_hand = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(),
                            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 4))
    for ours, theirs in zip(cnn.parameters(), by_hand.parameters(), strict=True):
        assert torch.equal(ours, theirs)
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(cnn(x), by_hand(x))


def test_the_five_by_five_network_builds_and_trains_a_step_on_12x12_images():
    torch.manual_seed(0)
    model = build_model(FIVE_BY_FIVE, (1, 12, 12), 3)
    assert architecture(model) == [(nn.Conv2d, [(6, 1, 5, 5), (6,)]), (nn.ReLU, []), (MaxPool, []),
                                   (nn.Flatten, []), (nn.Linear, [(3, 6 * 4 * 4), (3,)])]
    assert model.gradcam_layer is model.net[0] and model.net[0].padding == (0, 0)
    x, y = torch.rand(24, 1, 12, 12), torch.arange(24) % 3
    before = [p.detach().clone() for p in model.parameters()]
    train_model(model, x, y, x, y, epochs=1, batch_size=24, learning_rate=0.01, seed=0)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert model(x).shape == (24, 3) and torch.isfinite(model(x)).all()


def test_inferred_shapes_are_the_shapes_the_modules_produce():
    from helpers.models.layers import network_shapes

    model = build_model(EVERY_KIND, (1, 8, 8), 4).eval()
    shapes = network_shapes(model.params.layers, (1, 8, 8), str)
    assert shapes[2] == (4, 4, 4) and shapes[3] == (6, 2, 2) and shapes[5] == (6, 1, 1)
    x, seen = torch.rand(2, 1, 8, 8), []
    for module in model.net[:-1]:
        x = module(x)
        seen.append(tuple(x.shape[1:]))
    assert seen == shapes


def test_a_layer_list_survives_its_round_trip_through_the_config():
    model = build_model(FIVE_BY_FIVE, (1, 12, 12), 3)
    written = model.params.to_dict()
    assert written["layers"][0] == {"kind": "conv", "channels": 6, "kernel": 5, "stride": 1, "padding": 0}
    assert type(model).Params.parse(written, "model") == model.params


def test_a_parsed_layer_list_of_every_kind_pickles_into_worker_processes():
    layers = ["relu", "tanh", "sigmoid", "flatten", {"kind": "dropout"}, {"kind": "linear", "width": 4}]
    params = build_model({"type": "net", "layers": [{"kind": "conv", "channels": 2}, {"kind": "pool"}, *layers]},
                         (1, 8, 8), 3).params
    assert pickle.loads(pickle.dumps(params)) == params


@pytest.mark.parametrize("layers,shape,message", [
    ([{"kind": "conv", "channels": 4}], (5,), r"models.m.layers\[0\]: a conv layer needs a feature map .* shape \(5,\)"),
    (["flatten", {"kind": "pool"}], (1, 8, 8), r"layers\[1\]: a pool layer needs a feature map .* shape \(64,\)"),
    ([{"kind": "conv", "channels": 4, "kernel": 9}], (1, 8, 8), r"layers\[0\]: kernel 9 is larger than the feature map 8x8"),
    ([{"kind": "pool", "kernel": 3}, {"kind": "pool", "kernel": 3}], (1, 8, 8),
     r"layers\[1\]: kernel 3 is larger than the feature map 2x2"),
    (["gelu"], (1, 8, 8), r"layers\[0\].kind 'gelu' is unknown; allowed: \['conv', 'pool', "),
    ([{"kind": "linear", "width": -4}], (1, 8, 8), r"layers\[0\].width must be an integer >= 1, got -4"),
    ([{"kind": "linear"}], (1, 8, 8), r"layers\[0\]: a linear layer needs width"),
    ([{"kind": "conv", "channels": 2, "size": 3}], (1, 8, 8), r"layers\[0\].size is unknown for layer kind 'conv'"),
    ([{"kind": "dropout", "p": 1.0}], (1, 8, 8), r"layers\[0\].p must lie in \[0, 1\), got 1.0"),
    ([{"channels": 4}], (1, 8, 8), r"layers\[0\] must be a layer kind or a mapping with a 'kind' key"),
])
def test_impossible_layer_lists_are_refused_by_config_validation_naming_the_layer(layers, shape, message):
    from helpers.models import MODELS, DataShape

    entry = MODELS["net"]
    with pytest.raises(ConfigError, match=message):
        entry.check(entry.Params.parse({"layers": layers}, "models.m"), DataShape(shape, 2), "models.m")


@pytest.fixture(scope="module")
def every_kind_model(digits_split):
    x_tr, y_tr, x_te, y_te = digits_split
    torch.manual_seed(0)
    model = build_model(EVERY_KIND, (1, 8, 8), 4)
    train_model(model, x_tr, y_tr, x_te, y_te, epochs=4, batch_size=32, learning_rate=0.02, seed=0)
    return model.eval()


def test_the_bound_ops_of_every_layer_kind_are_the_model_and_contain_the_sampled_ball(every_kind_model, digits_split):
    model, x, y = every_kind_model, digits_split[2][:16], digits_split[3][:16]
    ops = model.bound_ops()
    assert not any(isinstance(op, nn.Dropout) for op in ops)
    assert torch.allclose(run_ops(ops, x), model(x), atol=1e-6)
    assert_sampled_ball_inside_bounds(model, x, y, 0.05, draws=10)


@pytest.mark.parametrize("certificate", LINF)
def test_no_attack_beats_a_certificate_of_a_network_with_every_layer_kind(every_kind_model, digits_split, certificate):
    model, x, y = every_kind_model, digits_split[2][:64], digits_split[3][:64]
    assert (predict(model, x) == y).float().mean() > 0.5  # trained: the certificates have margins to work with
    cert = CERTIFICATES[certificate]()
    assert CERTIFICATES[certificate].applies(model)[0]
    for epsilon in (0.0, 0.01, 0.05):
        certified = cert.certify(model, x, y, epsilon)
        assert not (certified & fooled_by_any_attack(model, x, y, epsilon)).any(), epsilon
    if certificate != "lipschitz":
        assert cert.certify(model, x, y, 0.0).sum() == (predict(model, x) == y).sum()
