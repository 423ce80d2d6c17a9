"""Noise channels and finite shots in the circuit (``vqc``'s ``noise`` and ``shots``).

The reference is PennyLane's ``default.mixed``: the circuit's own PennyLane reference
(``QuantumLayer.qnode``) decomposed into its gates, with qml.DepolarizingChannel,
qml.AmplitudeDamping and qml.PhaseDamping after every gate on each of its wires, the global
depolarising channel as its Kraus operators and qml.BitFlip on the measured wires before
measurement. Shots: the estimates are unbiased, training and ``exact()`` stay exact, the
gradient of a sampled output is the exact expectation's, and a seed fixes the draws."""
import itertools
import math

import numpy as np
import pennylane as qml
import pytest
import torch

from helpers.models import DataShape, build_model
from helpers.models.noise import Noise
from helpers.models.quantum import QuantumLayer
from helpers.params import ConfigError
from helpers.registry import ENCODINGS, MODELS, READOUTS
from helpers.training import train_model

PAULIS = [np.eye(2), qml.matrix(qml.PauliX(0)), qml.matrix(qml.PauliY(0)), qml.matrix(qml.PauliZ(0))]


def global_depolarizing_kraus(p: float, n: int) -> list[np.ndarray]:
    """ρ → (1 − p)ρ + p I/2**n = (1 − p)ρ + p/4**n Σ_P PρP over the 4**n n-qubit Paulis."""
    kraus = []
    for paulis in itertools.product(PAULIS, repeat=n):
        matrix = paulis[0]
        for pauli in paulis[1:]:
            matrix = np.kron(matrix, pauli)
        kraus.append(math.sqrt(p / 4 ** n) * matrix.astype(complex))
    kraus[0] = math.sqrt(1 - p + p / 4 ** n) * np.eye(2 ** n, dtype=complex)
    return kraus


def reference(layer: QuantumLayer, noise: Noise, inputs: torch.Tensor) -> torch.Tensor:
    """The layer's readout (B, outputs) on ``default.mixed`` with the channels, one sample at a time."""
    n = layer.n_qubits
    rows = []
    for x in inputs:
        tape = qml.tape.make_qscript(layer.qnode.func)(x, layer.weights.detach())
        (gates,), _ = qml.transforms.decompose(tape, gate_set={"RX", "Rot", "CNOT", "AmplitudeEmbedding"})
        measured = sorted(set().union(*(m.wires.tolist() for m in gates.measurements)))

        @qml.qnode(qml.device("default.mixed", wires=n))
        def circuit():
            for op in gates.operations:
                qml.apply(op)
                if op.name == "AmplitudeEmbedding":  # state preparation: ideal
                    continue
                for wire in op.wires:
                    if noise.depolarizing:
                        qml.DepolarizingChannel(noise.depolarizing, wires=wire)
                    if noise.amplitude_damping:
                        qml.AmplitudeDamping(noise.amplitude_damping, wires=wire)
                    if noise.phase_damping:
                        qml.PhaseDamping(noise.phase_damping, wires=wire)
            if noise.global_depolarizing:
                qml.QubitChannel(global_depolarizing_kraus(noise.global_depolarizing, n), wires=range(n))
            if noise.readout_flip:
                for wire in measured:
                    qml.BitFlip(noise.readout_flip, wires=wire)
            if len(gates.measurements) == 1:
                return qml.apply(gates.measurements[0])
            return [qml.apply(m) for m in gates.measurements]

        out = circuit()
        rows.append(torch.stack(list(out)) if isinstance(out, (list, tuple)) else out)
    return torch.stack(rows).double().reshape(len(rows), -1)  # one measured value: (B, 1)


def circuit_inputs(encoding: str, n_qubits: int, n_layers: int, batch: int, gen: torch.Generator) -> torch.Tensor:
    """Random inputs of the layer: angles, one row per layer for ``per_layer``, or unit amplitudes."""
    if encoding == "amplitude":
        x = torch.rand(batch, 2 ** n_qubits, generator=gen, dtype=torch.float64)
        return x / x.norm(dim=1, keepdim=True)
    entry = ENCODINGS[encoding]
    width = n_qubits * entry.angles_per_wire * (n_layers if entry.per_layer else 1)
    return torch.rand(batch, width, generator=gen, dtype=torch.float64) * 2 * math.pi


def noisy_layer(n_qubits, n_layers, encoding, ansatz, readout, noise, shots=None, seed=0):
    torch.manual_seed(seed)
    n_readout = READOUTS[readout].n_wires({"expval": 2, "parity": 2}.get(readout, 4), n_qubits)
    return QuantumLayer(n_qubits, n_layers, min(n_readout, n_qubits), "fast", encoding, ansatz, readout,
                        noise=noise, shots=shots)


# Random circuits of 2-6 qubits: every kind of encoding, both ansatzes, every readout, all channels.
CIRCUITS = [(2, 2, "angle", "strong", "expval"), (3, 2, "reupload", "basic", "probs"),
            (3, 2, "rot_reupload", "strong", "parity"),
            (4, 2, "amplitude", "strong", "probs"), (5, 2, "affine_reupload", "strong", "expval"),
            (6, 1, "angle", "basic", "expval")]


@pytest.mark.parametrize("n_qubits, n_layers, encoding, ansatz, readout", CIRCUITS)
def test_every_channel_together_matches_default_mixed(n_qubits, n_layers, encoding, ansatz, readout):
    gen = torch.Generator().manual_seed(n_qubits)
    strengths = (0.02 + 0.1 * torch.rand(5, generator=gen, dtype=torch.float64)).tolist()
    if n_qubits > 4:  # the reference's global channel has 4**n Kraus operators: minutes above 4 qubits
        strengths[3] = 0.0
    noise = Noise(*strengths)
    layer = noisy_layer(n_qubits, n_layers, encoding, ansatz, readout, noise, seed=n_qubits)
    x = circuit_inputs(encoding, n_qubits, n_layers, 3, gen)
    expected = reference(layer, noise, x)
    for train in (True, False):
        layer.train(train)
        assert layer.path == "density"
        assert torch.allclose(layer(x), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("channel", ["depolarizing", "amplitude_damping", "phase_damping", "global_depolarizing",
                                     "readout_flip"])
@pytest.mark.parametrize("readout", ["expval", "probs"])
def test_each_channel_alone_matches_default_mixed(channel, readout):
    noise = Noise(**{channel: 0.3})
    layer = noisy_layer(3, 2, "angle", "strong", readout, noise, seed=1)
    x = circuit_inputs("angle", 3, 2, 3, torch.Generator().manual_seed(1))
    expected = reference(layer, noise, x)
    for train in (True, False):
        layer.train(train)
        assert torch.allclose(layer(x), expected, atol=1e-6, rtol=0)
        assert layer.path == ("density" if noise.per_gate else "statevector" if train else "unitary")


@pytest.mark.parametrize("readout", ["expval", "probs"])
def test_closed_forms_keep_the_fast_paths_and_match_default_mixed(readout):
    # Global depolarising scales every <Z_i> by 1 - p and read-out flips by 1 - 2q.
    noise = Noise(global_depolarizing=0.2, readout_flip=0.1)
    layer = noisy_layer(4, 2, "angle", "strong", readout, noise, seed=2)
    clean = noisy_layer(4, 2, "angle", "strong", readout, Noise(), seed=2)
    x = circuit_inputs("angle", 4, 2, 4, torch.Generator().manual_seed(2))
    expected = reference(layer, noise, x)
    for train in (True, False):
        layer.train(train), clean.train(train)
        assert layer.path == ("statevector" if train else "unitary")
        assert torch.allclose(layer(x), expected, atol=1e-6, rtol=0)
        if readout == "expval":
            assert torch.allclose(layer(x), 0.8 * 0.8 * clean(x), atol=1e-12)


def test_density_path_gradients_match_finite_differences():
    noise = Noise(depolarizing=0.05, amplitude_damping=0.03, phase_damping=0.04, global_depolarizing=0.1,
                  readout_flip=0.02)
    layer = noisy_layer(3, 2, "reupload", "strong", "expval", noise, seed=4).double()
    x = circuit_inputs("reupload", 3, 2, 2, torch.Generator().manual_seed(4)).requires_grad_(True)
    weights = torch.randn(5, dtype=torch.float64, generator=torch.Generator().manual_seed(5))

    def objective(inputs):  # a generic scalar of the outputs
        out = layer(inputs)
        return (out * weights[:out.shape[1]]).sum()

    (grad_x,) = torch.autograd.grad(objective(x), x)
    layer.zero_grad()
    objective(x.detach()).backward()
    grad_w = layer.weights.grad.clone()
    h = 1e-6
    with torch.no_grad():
        for i, j in itertools.product(range(x.shape[0]), range(x.shape[1])):
            step = torch.zeros_like(x)
            step[i, j] = h
            numeric = (objective(x + step) - objective(x - step)) / (2 * h)
            assert abs(numeric - grad_x[i, j]) < 1e-6
        flat = layer.weights.view(-1)
        for k in range(0, flat.numel(), 3):
            flat[k] += h
            up = objective(x)
            flat[k] -= 2 * h
            down = objective(x)
            flat[k] += h
            assert abs((up - down) / (2 * h) - grad_w.view(-1)[k]) < 1e-6


def vqc(**options):
    torch.manual_seed(0)
    model = build_model({"type": "vqc", "n_qubits": 3, "n_layers": 2, **options}, (1, 4, 4), 2)
    model.fit_preprocessing(torch.rand(32, 1, 4, 4, generator=torch.Generator().manual_seed(0)))
    return model


def test_shot_estimates_are_unbiased_within_three_standard_errors():
    for readout in ("expval", "probs"):
        model = vqc(readout=readout, shots=50, noise={"global_depolarizing": 0.1}).double().eval()
        x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        with torch.no_grad(), model.exact():
            exact = model.quantum(model.encode(x))
        draws = []
        with torch.no_grad():
            for seed in range(400):
                model.reseed(seed)
                draws.append(model.quantum(model.encode(x)))
        draws = torch.stack(draws)
        standard_error = draws.std(0) / math.sqrt(len(draws))
        assert (standard_error > 0).all()
        assert ((draws.mean(0) - exact).abs() <= 3 * standard_error).all()
        assert not torch.allclose(draws[0], exact)  # the draws are estimates, not the exact values
        if readout == "probs":  # frequencies of 50 outcomes
            assert torch.allclose(draws * 50, (draws * 50).round(), atol=1e-9)


def test_shots_leave_training_and_exact_mode_exact():
    exact, shots = vqc(), vqc(shots=20)
    shots.load_state_dict(exact.state_dict())
    x = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    exact.train(), shots.train()
    assert shots.stochastic and not exact.stochastic
    assert torch.equal(shots(x), exact(x))  # training: the exact outputs, bit for bit
    exact.eval(), shots.eval()
    with shots.exact():
        assert torch.equal(shots(x), exact(x))
    assert not torch.equal(shots(x), exact(x))  # outside exact(): sampled


def test_a_model_with_shots_trains_to_the_same_weights():
    exact, shots = vqc(), vqc(shots=5)
    shots.load_state_dict(exact.state_dict())
    gen = torch.Generator().manual_seed(5)
    x, y = torch.rand(24, 1, 4, 4, generator=gen), torch.arange(24) % 2
    histories = [train_model(m, x, y, x, y, epochs=2, batch_size=8, learning_rate=0.05, seed=0) for m in (exact, shots)]
    for name, value in exact.state_dict().items():
        assert torch.equal(shots.state_dict()[name], value), name
    assert [h["train_loss"] for h in histories[0]] == [h["train_loss"] for h in histories[1]]


def test_a_seed_fixes_the_draws():
    model = vqc(shots=30).eval()
    x = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    model.reseed(7)
    first = model(x)
    model.reseed(7)
    assert torch.equal(model(x), first)
    model.reseed(8)
    assert not torch.equal(model(x), first)


def test_the_gradient_of_a_sampled_output_is_the_exact_expectations():
    model = vqc(shots=30, noise={"depolarizing": 0.05}).eval()
    x = torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(4)).requires_grad_(True)
    direction = torch.tensor([1.0, -2.0])
    with model.exact():
        exact = model(x)
        (expected,) = torch.autograd.grad((exact * direction).sum(), x)
    model.reseed(0)
    sampled = model(x)
    (grad,) = torch.autograd.grad((sampled * direction).sum(), x)
    model.reseed(0)
    with torch.no_grad():
        assert torch.equal(model(x), sampled.detach())  # the value is the draw itself
    assert not torch.allclose(sampled, exact)
    assert torch.allclose(grad, expected, atol=1e-12)


def test_every_other_model_is_deterministic():
    for name in MODELS.names():
        assert MODELS[name].stochastic is False or name == "vqc"
    mlp = build_model({"type": "mlp", "hidden": [8]}, (1, 4, 4), 2).eval()
    x = torch.rand(3, 1, 4, 4)
    with mlp.exact():
        assert torch.equal(mlp(x), mlp(x))
    assert not vqc().stochastic and vqc(noise={"depolarizing": 0.1}).stochastic is False


@pytest.mark.parametrize("options, message", [
    ({"noise": {"depolarizing": 1.5}}, "noise.depolarizing must lie in [0, 1]"),
    ({"noise": {"dephasing": 0.1}}, "unknown config key 'models.q.noise.dephasing'"),
    ({"noise": 0.1}, "must be a mapping"),
    ({"shots": 0}, "shots must be null or an integer >= 1"),
    ({"noise": {"readout_flip": 0.1}, "simulator": "lightning"}, "simulator 'fast' only"),
    ({"shots": 100, "simulator": "pennylane"}, "simulator 'fast' only"),
    ({"noise": {"depolarizing": 0.1}, "n_qubits": 11}, "at most 10 qubits"),
])
def test_combinations_that_cannot_run_are_refused_before_any_work(options, message):
    spec = {"n_qubits": 4, "n_layers": 1, **options}
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_model({"type": "vqc", **spec}, (1, 64, 64), 2, where="models.q")


def test_the_density_matrices_memory_is_checked_against_the_machine():
    params = MODELS["vqc"].Params.parse({"n_qubits": 10, "noise": {"depolarizing": 0.01}}, "models.q")
    with pytest.raises(ConfigError, match="density matrices"):
        MODELS["vqc"].check(params, DataShape((1, 64, 64), 2, batch_size=100_000), "models.q")
    clean = MODELS["vqc"].Params.parse({"n_qubits": 10}, "models.q")
    MODELS["vqc"].check(clean, DataShape((1, 64, 64), 2, batch_size=512), "models.q")


def test_defaults_are_noise_free_and_exact():
    params = MODELS["vqc"].Params.parse({}, "models.q")
    assert params.shots is None and not params.noise.active
    assert params.to_dict()["noise"] == {"depolarizing": 0.0, "amplitude_damping": 0.0, "phase_damping": 0.0,
                                         "global_depolarizing": 0.0, "readout_flip": 0.0}
