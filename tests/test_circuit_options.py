"""The circuit's options from the config: the trainable affine encodings (each angle w . x + b
over all input features, one RX or a two-angle Rot per wire; with re-uploading a fresh w, b
per layer) and their own initialisation, the parity readout, the initial-weight distribution
and a fixed or trainable output scale. The defaults are today's circuit; the certificates
stay sound on the new encodings and readouts."""
import math

import pennylane as qml
import pytest
import torch

from helpers.attacks import predict
from helpers.certificates.bounds import input_box, interval_trace
from helpers.models import build_model, count_parameters, match_capacity
from helpers.models.ops import run_ops
from helpers.params import ConfigError
from helpers.registry import ANSATZES, CERTIFICATES, MODELS
from helpers.training import train_model

from test_certificates import LINF, fooled_by_any_attack

SHAPE, N_QUBITS, N_LAYERS, N_CLASSES = (1, 3, 4), 3, 2, 2


def affine_vqc(encoding, **options):
    spec = {"type": "vqc", "n_qubits": N_QUBITS, "n_layers": N_LAYERS, "encoding": encoding, "output_scale": 3.0}
    return build_model({**spec, **options}, SHAPE, N_CLASSES)


@pytest.mark.parametrize("encoding", ["affine", "affine_reupload", "rot", "rot_reupload"])
def test_affine_encodings_are_rotations_by_w_x_plus_b_on_all_features_against_an_independent_circuit(encoding):
    """affine: RX(w . x + b) per wire; rot: Rot(w0 . x + b0, w1 . x + b1, 0); with re-uploading
    a fresh w, b before every layer."""
    torch.manual_seed(3)
    model = affine_vqc(encoding).double()
    with torch.no_grad():
        model.quantum.weights.uniform_(-math.pi, math.pi)
    per_layer, per_wire = encoding.endswith("reupload"), 2 if encoding.startswith("rot") else 1
    w, b = model.encoder.linear.weight.detach(), model.encoder.linear.bias.detach()
    width = per_wire * N_QUBITS
    assert w.shape == ((N_LAYERS if per_layer else 1) * width, math.prod(SHAPE))  # every angle sees every pixel
    weights = model.quantum.weights.detach()
    hyperparameters = ANSATZES["strong"].layer_hyperparameters(N_QUBITS, N_LAYERS)

    @qml.qnode(qml.device("default.qubit", wires=N_QUBITS))
    def reference(pixels):
        for layer in range(N_LAYERS):
            if layer == 0 or per_layer:
                rows = slice(layer * width, (layer + 1) * width) if per_layer else slice(0, width)
                angles = w[rows] @ pixels + b[rows]
                for q in range(N_QUBITS):
                    if per_wire == 1:
                        qml.RX(angles[q], wires=q)
                    else:
                        qml.RZ(angles[2 * q], wires=q)
                        qml.RY(angles[2 * q + 1], wires=q)
            qml.StronglyEntanglingLayers(weights[layer:layer + 1], wires=range(N_QUBITS), **hyperparameters[layer])
        return [qml.expval(qml.PauliZ(q)) for q in range(N_CLASSES)]

    x = torch.rand(5, *SHAPE, dtype=torch.float64)
    expected = 3.0 * torch.stack([torch.stack(reference(p)) for p in x.reshape(5, -1)])
    for train in (True, False):
        model.train(train)
        assert torch.allclose(model(x), expected, atol=1e-9)
    assert model.path == ("statevector" if per_layer else "unitary")


def test_rot_encoded_once_is_blind_to_its_first_angle_and_re_uploaded_is_not():
    """On |0> RZ(φ) is a phase: the once-encoded circuit's output does not move with φ's w0, b0;
    re-uploaded after a trainable layer, φ turns a state that is no longer |0>."""
    torch.manual_seed(4)
    for encoding, moves in (("rot", False), ("rot_reupload", True)):
        model = affine_vqc(encoding).double().eval()
        x = torch.rand(6, *SHAPE, dtype=torch.float64)
        before = model(x)
        with torch.no_grad():
            model.encoder.linear.bias[0::2] += 1.0  # every φ, in every layer
        assert torch.allclose(model(x), before, atol=1e-9) != moves


@pytest.mark.parametrize("distribution", ["uniform", "normal"])
def test_the_encoding_has_its_own_initialisation(distribution):
    torch.manual_seed(5)
    model = affine_vqc("rot_reupload", encoding_init=distribution, encoding_init_scale=0.1)
    w, b = model.encoder.linear.weight, model.encoder.linear.bias
    assert torch.equal(b, torch.zeros_like(b))
    if distribution == "uniform":
        assert w.abs().max() <= 0.1 and w.abs().max() > 0.05
    else:
        assert abs(float(w.detach().std()) - 0.1) < 0.03
    default = affine_vqc("rot_reupload")  # PyTorch's Linear: uniform on ±1/sqrt(inputs), b too
    assert default.encoder.linear.bias.abs().max() > 0


def test_options_added_later_leave_an_older_circuits_spec_and_so_its_keys_as_they_were():
    params = MODELS["vqc"].Params
    assert "encoding_init" not in params.parse({}, "model").to_dict()
    assert params.parse({"encoding_init": "normal"}, "model").to_dict()["encoding_init"] == "normal"


def test_the_parity_readout_answers_class_zero_on_even_parity():
    """logits (p, -p) times the output scale, p = <Z ⊗ ... ⊗ Z> of all wires against PennyLane."""
    torch.manual_seed(6)
    model = affine_vqc("affine", readout="parity").double().eval()
    weights = model.quantum.weights.detach()
    w, b = model.encoder.linear.weight.detach(), model.encoder.linear.bias.detach()

    @qml.qnode(qml.device("default.qubit", wires=N_QUBITS))
    def parity(pixels):
        for q, angle in enumerate(w @ pixels + b):
            qml.RX(angle, wires=q)
        qml.StronglyEntanglingLayers(weights, wires=range(N_QUBITS))
        return qml.expval(qml.PauliZ(0) @ qml.PauliZ(1) @ qml.PauliZ(2))

    x = torch.rand(8, *SHAPE, dtype=torch.float64)
    p = torch.stack([parity(row) for row in x.reshape(8, -1)])
    assert torch.allclose(model(x), 3.0 * torch.stack([p, -p], dim=1), atol=1e-9)
    assert torch.equal(predict(model, x), (p < 0).long())


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
    ({"encoding_init": "normal"}, r"model.encoding_init applies to a trainable encoding \(affine, .*rot_reupload\); "
                                  r"encoding 'angle' has no weights"),
    ({"encoding": "rot", "encoding_init_scale": -1}, r"model.encoding_init_scale must be a number > 0"),
])
def test_bad_circuit_options_are_refused_naming_the_key(spec, message):
    with pytest.raises(ConfigError, match=message):
        build_model({"type": "vqc", "n_qubits": 4, **spec}, (1, 8, 8), 2)


def test_a_trained_encoding_has_no_pca_features_to_match():
    with pytest.raises(ConfigError, match="model 'q' has no reduced features"):
        match_capacity({"q": {"type": "vqc", "encoding": "affine"}, "m": {"type": "matched_mlp", "match": "q"}}, (1, 8, 8), 4)


@pytest.mark.parametrize("encoding,readout", [("affine", "expval"), ("affine_reupload", "expval"),
                                              ("rot_reupload", "expval"), ("affine", "parity")])
def test_no_attack_beats_a_certificate_of_an_affine_encoded_circuit(encoding, readout):
    """A small random circuit, labels its own predictions: every point is certified at ε = 0 and
    nothing certified at a larger ε is fooled; no sampled input leaves the interval bounds."""
    torch.manual_seed(7)
    model = affine_vqc(encoding, readout=readout).eval()
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
