"""Quantum encodings, ansatzes and readouts of the `vqc`, their simulation paths against
PennyLane, tabular inputs, and the capacity-matched classical baseline."""
import itertools
import math

import pennylane as qml
import pytest
import torch

from helpers.models import build_model, count_parameters, match_capacity
from helpers.models.features import amplitude_state
from helpers.registry import ANSATZES, ENCODINGS, READOUTS

from conftest import outputs_and_gradients

COMBINATIONS = list(itertools.product(ENCODINGS.names(), ANSATZES.names(), READOUTS.names()))
# 12 pixels: PCA to 4 angles, or zero-padded to 16 amplitudes on 4 qubits.
SHAPE, N_CLASSES = (1, 3, 4), 3


def classes(readout: str) -> int:
    """The test's class count; the parity readout decides between two."""
    return 2 if readout == "parity" else N_CLASSES


def _vqc(encoding, ansatz, readout, **options):
    spec = {"type": "vqc", "n_qubits": 4, "n_layers": 2, "encoding": encoding, "ansatz": ansatz, "readout": readout}
    return build_model({**spec, **options}, SHAPE, classes(readout))


@pytest.mark.parametrize("encoding,ansatz,readout", COMBINATIONS)
def test_every_combination_gives_logits_and_input_gradients(encoding, ansatz, readout):
    torch.manual_seed(0)
    model = _vqc(encoding, ansatz, readout)
    model.fit_preprocessing(torch.rand(40, *SHAPE))
    for train in (True, False):
        out, grad, _ = outputs_and_gradients(model, torch.rand(5, *SHAPE), train)
        assert out.shape == (5, classes(readout)) and out.dtype == torch.float32
        assert torch.isfinite(grad).all() and (grad.abs().sum(dim=(1, 2, 3)) > 0).all()


@pytest.mark.parametrize("encoding,ansatz,readout", COMBINATIONS)
@pytest.mark.parametrize("train", [True, False])
def test_fast_paths_equal_the_pennylane_circuit(encoding, ansatz, readout, train):
    torch.manual_seed(1)
    fast = _vqc(encoding, ansatz, readout, output_scale=1.7)
    with torch.no_grad():  # random weights over the whole circle, not the small init
        fast.quantum.weights.uniform_(-math.pi, math.pi)
    fast.fit_preprocessing(torch.rand(40, *SHAPE))
    # In float64 throughout: PennyLane builds float32 angles' gates in single precision.
    fast.double()
    reference = _vqc(encoding, ansatz, readout, output_scale=1.7, simulator="pennylane").double()
    reference.load_state_dict(fast.state_dict())
    x = torch.rand(7, *SHAPE, dtype=torch.float64)
    got, want = outputs_and_gradients(fast, x, train), outputs_and_gradients(reference, x, train)
    once = not ENCODINGS[encoding].repeats  # the frozen unitary applies when the encoding happens once
    assert fast.path == ("unitary" if once and not train else "statevector")
    compared = 3 if train else 2  # outputs, input gradients, and in training the weight gradients
    for a, b in zip(got[:compared], want[:compared]):
        assert torch.allclose(a, b, atol=1e-9)


@pytest.mark.parametrize("encoding,readout", [("rot", "expval"), ("rot_reupload", "parity"), ("angle", "parity")])
def test_lightning_adjoint_gets_the_two_angle_encoding_and_the_parity_right(encoding, readout):
    """lightning.qubit's adjoint differentiation against default.qubit: outputs, input and
    weight gradients (the simulators' ``adjoint`` flags say it may run these)."""
    torch.manual_seed(0)
    spec = {"type": "vqc", "n_qubits": 4, "n_layers": 2, "encoding": encoding, "readout": readout}
    reference = build_model({**spec, "simulator": "pennylane"}, SHAPE, 2).double()
    adjoint = build_model({**spec, "simulator": "lightning"}, SHAPE, 2).double()
    adjoint.load_state_dict(reference.state_dict())
    x = torch.rand(6, *SHAPE, dtype=torch.float64)
    for train in (True, False):
        for a, b in zip(outputs_and_gradients(adjoint, x, train)[:3], outputs_and_gradients(reference, x, train)[:3]):
            assert torch.allclose(a, b, atol=1e-7)


def test_amplitude_encoding_is_pennylanes_padded_normalised_embedding_of_the_pixels():
    torch.manual_seed(2)
    model = _vqc("amplitude", "strong", "expval", simulator="pennylane")
    x = torch.rand(4, *SHAPE)
    weights = model.quantum.weights.detach().double()

    @qml.qnode(qml.device("default.qubit", wires=4))
    def reference(pixels):
        qml.AmplitudeEmbedding(pixels, wires=range(4), pad_with=0.0, normalize=True)
        qml.StronglyEntanglingLayers(weights, wires=range(4))
        return [qml.expval(qml.PauliZ(w)) for w in range(N_CLASSES)]

    expected = torch.stack([torch.stack(reference(p)) for p in x.reshape(4, -1).double()])
    for simulator_model in (model, _vqc("amplitude", "strong", "expval")):
        simulator_model.load_state_dict(model.state_dict())
        for train in (True, False):
            simulator_model.train(train)
            assert torch.allclose(simulator_model(x).double(), expected, atol=1e-6)


def test_a_black_image_is_the_state_zero_with_finite_gradients():
    state = amplitude_state(torch.zeros(2, *SHAPE), 4)
    assert torch.allclose(state, torch.eye(16, dtype=torch.float64)[[0, 0]])
    x = torch.zeros(2, *SHAPE, requires_grad=True)
    _vqc("amplitude", "basic", "probs")(x).sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("n_qubits,n_layers", [(1, 2), (2, 3), (4, 5)])
def test_strongly_entangling_layers_called_one_layer_at_a_time_equal_the_full_template(n_qubits, n_layers):
    weights = torch.rand(n_layers, n_qubits, 3, dtype=torch.float64)
    wires = range(n_qubits)

    def layer_by_layer():
        for layer, hyperparameters in enumerate(ANSATZES["strong"].layer_hyperparameters(n_qubits, n_layers)):
            qml.StronglyEntanglingLayers(weights[layer:layer + 1], wires=wires, **hyperparameters)

    full = qml.matrix(qml.StronglyEntanglingLayers(weights, wires=wires), wire_order=wires)
    assert torch.allclose(qml.matrix(layer_by_layer, wire_order=wires)(), full, atol=1e-12)


def test_basic_block_unitary_equals_pennylane_matrix_of_the_template():
    model = _vqc("angle", "basic", "expval")
    weights = model.quantum.weights.detach().double()
    assert weights.shape == (2, 4)
    reference = qml.matrix(qml.BasicEntanglerLayers(weights, wires=range(4)), wire_order=range(4))
    assert torch.allclose(model.quantum.block_unitary(), reference, atol=1e-10)


def test_parameter_counts_per_ansatz_and_readout():
    assert count_parameters(_vqc("angle", "strong", "expval")) == 2 * 4 * 3 + 1
    assert count_parameters(_vqc("reupload", "basic", "probs")) == 2 * 4 + 1


def test_probs_readout_allows_more_classes_than_qubits():
    model = build_model({"type": "vqc", "n_qubits": 2, "n_layers": 1, "readout": "probs"}, (1, 8, 8), 4)
    model.fit_preprocessing(torch.rand(20, 1, 8, 8))
    assert model(torch.rand(3, 1, 8, 8)).shape == (3, 4)


@pytest.mark.parametrize("spec,shape,n_classes,message", [
    ({"encoding": "dense"}, (1, 8, 8), 2,
     r"model.encoding 'dense' is unknown; allowed: \['angle', 'reupload', 'affine', 'affine_reupload', 'rot', 'rot_reupload',"
     r" 'amplitude'\]"),
    ({"ansatz": "hardware"}, (1, 8, 8), 2, r"model.ansatz 'hardware' is unknown; allowed: \['strong', 'basic'\]"),
    ({"readout": "sample"}, (1, 8, 8), 2, r"model.readout 'sample' is unknown; allowed: \['expval', 'probs', 'parity'\]"),
    ({"readout": "parity"}, (1, 8, 8), 3, r"readout 'parity' decides between two classes.*got 3 classes"),
    ({"n_qubits": 4, "encoding": "amplitude"}, (1, 8, 8), 2, r"2\*\*n_qubits >= the number of input features \(64\)"),
    ({"n_qubits": 2, "readout": "probs"}, (1, 8, 8), 5, r"readout 'probs' needs ceil\(log2\(n_classes\)\) = 3 wires"),
    ({"n_qubits": 2}, (1, 8, 8), 3, r"n_classes \(3\) must not exceed n_qubits \(2\).*readout: probs"),
    ({"n_qubits": 3}, (2,), 2, r"n_qubits \(3\) must not exceed the number of input features \(2\)"),
    ({"n_qubits": 6, "encoding": "amplitude", "simulator": "lightning"}, (1, 8, 8), 2, "cannot differentiate amplitude"),
    ({"n_qubits": 4, "readout": "probs", "simulator": "lightning"}, (1, 8, 8), 2, "cannot differentiate readout 'probs'"),
])
def test_impossible_combinations_are_refused_with_the_reason(spec, shape, n_classes, message):
    with pytest.raises(ValueError, match=message):
        build_model({"type": "vqc", **spec}, shape, n_classes)


@pytest.mark.parametrize("spec", [
    {"type": "mlp", "hidden": [8]},
    {"type": "vqc", "n_qubits": 2, "n_layers": 2},
    {"type": "vqc", "n_qubits": 1, "n_layers": 2, "encoding": "amplitude", "readout": "probs"},
    {"type": "matched_mlp", "parameters": 52, "n_features": 2},
])
def test_tabular_input_gives_logits_and_input_gradients(spec):
    torch.manual_seed(3)
    model = build_model(spec, (2,), 2)
    if hasattr(model, "fit_preprocessing"):
        model.fit_preprocessing(torch.rand(30, 2))
    x = torch.rand(6, 2, requires_grad=True)
    logits = model(x)
    assert logits.shape == (6, 2)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1] * 3)).backward()
    assert torch.isfinite(x.grad).all() and (x.grad.abs().sum(1) > 0).all()


@pytest.mark.parametrize("kind", ["cnn", "plus_minus_cnn", "plus_minus_hybrid"])
def test_convolutional_models_refuse_tabular_input(kind):
    with pytest.raises(ValueError, match=r"needs image input \(1, H, W\); data set has input shape \(2,\)"):
        build_model({"type": kind}, (2,), 2)


@pytest.mark.parametrize("vqc,shape,n_classes", [
    ({"type": "vqc"}, (1, 8, 8), 4),                               # the default: 8 qubits, 4 layers, 97 parameters
    ({"type": "vqc", "n_qubits": 2, "n_layers": 2}, (2,), 2),       # moons-sized: 13 parameters
    ({"type": "vqc", "n_qubits": 6, "n_layers": 4, "ansatz": "basic"}, (1, 8, 8), 3),  # 25 parameters
    ({"type": "vqc", "n_qubits": 6, "n_layers": 10}, (1, 8, 8), 4),
])
def test_matched_mlp_is_within_ten_percent_of_the_circuit_and_shares_its_features(vqc, shape, n_classes):
    models = {"q": vqc, "m": {"type": "matched_mlp", "match": "q"}}
    resolved = match_capacity(models, shape, n_classes)
    quantum = build_model(vqc, shape, n_classes)
    assert resolved["q"] == vqc and "match" in models["m"]  # the input mapping is left as it was
    assert resolved["m"] == {"type": "matched_mlp", "parameters": count_parameters(quantum),
                             "n_features": quantum.n_qubits}
    matched = build_model(resolved["m"], shape, n_classes)
    assert abs(count_parameters(matched) - count_parameters(quantum)) <= 0.1 * count_parameters(quantum)
    x_train = torch.rand(40, *shape)
    quantum.fit_preprocessing(x_train)
    matched.fit_preprocessing(x_train)
    x = torch.rand(5, *shape)
    assert torch.equal(matched.pca(x), quantum.encode(x))  # the same reduced features, same scaling
    assert matched(x).shape == (5, n_classes)


def test_matched_mlp_refuses_a_target_no_width_reaches():
    with pytest.raises(ValueError, match=r"no hidden width .* within 10% of parameters=5"):
        build_model({"type": "matched_mlp", "parameters": 5, "n_features": 8}, (1, 8, 8), 4)


@pytest.mark.parametrize("models,message", [
    ({"m": {"type": "matched_mlp", "match": "qq"}}, r"models.m.match must name a model .* got 'qq'"),
    ({"m": {"type": "matched_mlp", "match": "n"}, "n": {"type": "matched_mlp", "match": "m"}}, "not matched itself"),
    ({"m": {"type": "matched_mlp", "match": "q", "parameters": 10}, "q": {"type": "vqc"}}, r"remove \['parameters'\]"),
    ({"m": {"type": "matched_mlp", "match": "q"}, "q": {"type": "vqc", "n_qubits": 6, "encoding": "amplitude"}},
     "model 'q' has no reduced features"),
    ({"m": {"type": "matched_mlp", "match": "c"}, "c": {"type": "mlp"}}, "model 'c' has no reduced features"),
])
def test_match_capacity_names_what_is_wrong(models, message):
    with pytest.raises(ValueError, match=message):
        match_capacity(models, (1, 8, 8), 4)
