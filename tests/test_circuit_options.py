"""The circuit's options from the config: the trainable affine encodings (each angle w . x + b
over all input features; with re-uploading a fresh w, b per layer), the initial-weight
distribution and a fixed or trainable output scale. The defaults are today's circuit; the
certificates stay sound on the new encodings."""
import math

import pennylane as qml
import pytest
import torch

from helpers.attacks import predict
from helpers.certificates.bounds import input_box, interval_trace
from helpers.models import build_model, count_parameters, match_capacity
from helpers.models.ops import run_ops
from helpers.params import ConfigError
from helpers.registry import ANSATZES, CERTIFICATES
from helpers.training import train_model

from test_certificates import LINF, fooled_by_any_attack

SHAPE, N_QUBITS, N_LAYERS, N_CLASSES = (1, 3, 4), 3, 2, 2


def affine_vqc(encoding, **options):
    spec = {"type": "vqc", "n_qubits": N_QUBITS, "n_layers": N_LAYERS, "encoding": encoding, "output_scale": 3.0}
    return build_model({**spec, **options}, SHAPE, N_CLASSES)


@pytest.mark.parametrize("encoding", ["affine", "affine_reupload"])
def test_affine_encodings_are_rx_of_w_x_plus_b_on_all_features_against_an_independent_circuit(encoding):
    torch.manual_seed(3)
    model = affine_vqc(encoding).double()
    with torch.no_grad():
        model.quantum.weights.uniform_(-math.pi, math.pi)
    per_layer = encoding == "affine_reupload"
    w, b = model.encoder.linear.weight.detach(), model.encoder.linear.bias.detach()
    assert w.shape == ((N_LAYERS if per_layer else 1) * N_QUBITS, math.prod(SHAPE))  # every angle sees every pixel
    weights = model.quantum.weights.detach()
    hyperparameters = ANSATZES["strong"].layer_hyperparameters(N_QUBITS, N_LAYERS)

    @qml.qnode(qml.device("default.qubit", wires=N_QUBITS))
    def reference(pixels):
        for layer in range(N_LAYERS):
            if layer == 0 or per_layer:
                rows = slice(layer * N_QUBITS, (layer + 1) * N_QUBITS) if per_layer else slice(0, N_QUBITS)
                angles = w[rows] @ pixels + b[rows]
            for q in range(N_QUBITS):
                if layer == 0 or per_layer:
                    qml.RX(angles[q], wires=q)
            qml.StronglyEntanglingLayers(weights[layer:layer + 1], wires=range(N_QUBITS), **hyperparameters[layer])
        return [qml.expval(qml.PauliZ(q)) for q in range(N_CLASSES)]

    x = torch.rand(5, *SHAPE, dtype=torch.float64)
    expected = 3.0 * torch.stack([torch.stack(reference(p)) for p in x.reshape(5, -1)])
    for train in (True, False):
        model.train(train)
        assert torch.allclose(model(x), expected, atol=1e-9)
    assert model.path == ("statevector" if per_layer else "unitary")


@pytest.mark.parametrize("encoding", ["affine", "affine_reupload"])
def test_the_encoders_w_and_b_are_trained_with_the_circuit_and_nothing_is_fitted(encoding):
    torch.manual_seed(0)
    model = affine_vqc(encoding)
    n_angles = (N_LAYERS if encoding == "affine_reupload" else 1) * N_QUBITS
    assert count_parameters(model) == N_LAYERS * N_QUBITS * 3 + n_angles * (math.prod(SHAPE) + 1) + 1
    assert model.pca is None and model.bound_ops() is not None
    x, y = torch.rand(16, *SHAPE), torch.arange(16) % 2
    before = model.encoder.linear.weight.detach().clone(), model.encoder.linear.bias.detach().clone()
    model.fit_preprocessing(x)  # nothing to fit
    assert torch.equal(model.encoder.linear.weight, before[0])
    train_model(model, x, y, x, y, epochs=1, batch_size=16, learning_rate=0.05, seed=0)
    assert not torch.equal(model.encoder.linear.weight, before[0]) and not torch.equal(model.encoder.linear.bias, before[1])


def test_the_default_initialisation_is_pennylanes_uniform_draw_and_normal_is_centred():
    shape = (4, 8, 3)
    torch.manual_seed(11)
    default = build_model({"type": "vqc"}, (1, 8, 8), 4).quantum.weights.detach()
    torch.manual_seed(11)
    assert torch.equal(default, torch.empty(shape).uniform_(0, 2 * math.pi))  # TorchLayer's documented default
    torch.manual_seed(11)
    written = build_model({"type": "vqc", "init": "uniform", "init_scale": 2 * math.pi}, (1, 8, 8), 4)
    assert torch.equal(written.quantum.weights.detach(), default)
    normal = build_model({"type": "vqc", "init": "normal", "init_scale": 0.01}, (1, 8, 8), 4).quantum.weights.detach()
    assert normal.abs().max() < 0.06 and (normal < 0).any() and abs(normal.mean()) < 0.005
    small = build_model({"type": "vqc", "init_scale": 0.1}, (1, 8, 8), 4).quantum.weights.detach()
    assert small.min() >= 0 and small.max() <= 0.1


def test_a_fixed_output_scale_is_not_trained_but_kept_in_the_checkpoint():
    torch.manual_seed(0)
    model = build_model({"type": "vqc", "n_qubits": 4, "n_layers": 1, "output_scale": 4.0,
                         "output_scale_trainable": False}, (1, 8, 8), 2)
    trainable = build_model({"type": "vqc", "n_qubits": 4, "n_layers": 1}, (1, 8, 8), 2)
    assert count_parameters(model) == count_parameters(trainable) - 1
    assert "output_scale" in model.state_dict()
    x, y = torch.rand(20, 1, 8, 8), torch.arange(20) % 2
    model.fit_preprocessing(x)
    train_model(model, x, y, x, y, epochs=2, batch_size=10, learning_rate=0.1, seed=0)
    assert float(model.output_scale) == 4.0
    assert model.bound_ops()[-1].scale is model.output_scale
    # A capacity-matched MLP matches the trainable parameters only.
    resolved = match_capacity({"q": {"type": "vqc", "n_qubits": 4, "n_layers": 1, "output_scale_trainable": False},
                               "m": {"type": "matched_mlp", "match": "q"}}, (1, 8, 8), 2)
    assert resolved["m"]["parameters"] == count_parameters(model)


@pytest.mark.parametrize("spec,message", [
    ({"init": "beta"}, r"model.init 'beta' is unknown; allowed: \['uniform', 'normal'\]"),
    ({"init_scale": 0}, r"model.init_scale must be a number > 0, got 0"),
    ({"output_scale_trainable": "yes"}, r"model.output_scale_trainable must be true or false"),
    ({"encoding": "affine", "simulator": "qiskit"}, r"model.simulator 'qiskit' is unknown"),
])
def test_bad_circuit_options_are_refused_naming_the_key(spec, message):
    with pytest.raises(ConfigError, match=message):
        build_model({"type": "vqc", "n_qubits": 4, **spec}, (1, 8, 8), 2)


def test_a_trained_encoding_has_no_pca_features_to_match():
    with pytest.raises(ConfigError, match="model 'q' has no reduced features"):
        match_capacity({"q": {"type": "vqc", "encoding": "affine"}, "m": {"type": "matched_mlp", "match": "q"}}, (1, 8, 8), 4)


@pytest.mark.parametrize("encoding", ["affine", "affine_reupload"])
def test_no_attack_beats_a_certificate_of_an_affine_encoded_circuit(encoding):
    """A small random circuit, labels its own predictions: every point is certified at ε = 0 and
    nothing certified at a larger ε is fooled; no sampled input leaves the interval bounds."""
    torch.manual_seed(7)
    model = affine_vqc(encoding).eval()
    x = torch.rand(12, *SHAPE)
    y = predict(model, x)
    ops = model.bound_ops()
    assert torch.allclose(run_ops(ops, x), model(x), atol=1e-5)
    low, high = interval_trace(ops, *input_box(x, 0.05))[-1]
    gen = torch.Generator().manual_seed(0)
    for _ in range(10):
        logits = model((x + 0.05 * (2 * torch.rand(x.shape, generator=gen) - 1)).clamp(0, 1)).double()
        assert (logits >= low - 1e-5).all() and (logits <= high + 1e-5).all()
    assert CERTIFICATES["interval"](splits=8).certify(model, x, y, 0.0).all()
    assert_no_attack_beats_a_certificate(model, x, y)


def assert_no_attack_beats_a_certificate(model, x, y) -> None:
    """Every L∞ certificate applies to ``model``, nothing it certifies at ε = 0.01 or 0.05 is
    fooled by any attack, and some point is certified at a positive ε (the check has teeth)."""
    certificates = {name: CERTIFICATES[name](splits=8) if name == "interval" else CERTIFICATES[name]() for name in LINF}
    assert all(CERTIFICATES[name].applies(model)[0] for name in LINF)
    certified_any = False
    for epsilon in (0.01, 0.05):
        fooled = fooled_by_any_attack(model, x, y, epsilon)
        for name, cert in certificates.items():
            certified = cert.certify(model, x, y, epsilon)
            assert not (certified & fooled).any(), (name, epsilon)
            certified_any |= bool(certified.any())
    assert certified_any


@pytest.mark.parametrize("noise", [{"depolarizing": 0.05}, {"amplitude_damping": 0.1, "phase_damping": 0.1},
                                   {"readout_flip": 0.1}, {"global_depolarizing": 0.3}])
def test_no_attack_beats_a_certificate_of_a_noisy_circuit(noise):
    """The L∞ certificates bound the circuit that runs, noise included: nothing they certify
    on a small noisy circuit is fooled, and the bound ops are that noisy circuit."""
    torch.manual_seed(11)
    model = affine_vqc("affine", noise=noise).eval()
    x = torch.rand(12, *SHAPE)
    y = predict(model, x)
    assert torch.allclose(run_ops(model.bound_ops(), x), model(x), atol=1e-5)
    assert_no_attack_beats_a_certificate(model, x, y)
