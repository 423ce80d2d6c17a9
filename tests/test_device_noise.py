"""A circuit as a named device runs it (``noise.device``; ``helpers/models/device_noise.py``).

References: the logical circuit's own noise-free simulation (the transpiled circuit must equal
it, to 1e-10, once the routing's final layout is read), and Qiskit Aer's density-matrix
simulator with the same calibrated gate errors on the same transpiled circuit, the read-out
confusion applied here by an explicit sum over basis states. The device's qubits: a chain in
its coupling map, cheaper than every other chain (brute force), and every bad setting named
before any work."""
import itertools
import warnings

import numpy as np
import pytest
import torch

from helpers.models import build_model
from helpers.models.device_noise import device_circuit
from helpers.models.devices import best_chain, fake_backend, qubit_cost, two_qubit_edges
from helpers.models.noise import outcome_matrix
from helpers.models.simulation import statevector_outputs
from helpers.params import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# One device per two-qubit basis gate: CX (manila, a line of 5), ECR (sherbrooke, heavy hex),
# CZ (torino, heavy hex).
DEVICES = [("fake_manila", 4), ("fake_sherbrooke", 5), ("fake_torino", 4)]


def weights(n_layers: int, n_qubits: int, ansatz: str, seed: int) -> np.ndarray:
    shape = (n_layers, n_qubits, 3) if ansatz == "strong" else (n_layers, n_qubits)
    return np.random.default_rng(seed).uniform(0, 2 * np.pi, shape)


@pytest.mark.parametrize("device,n", DEVICES)
@pytest.mark.parametrize("ansatz", ["strong", "basic"])
def test_the_transpiled_circuit_without_noise_is_the_logical_circuit(device, n, ansatz):
    w = weights(3, n, ansatz, seed=n)
    circuit = device_circuit(device, None, w, ansatz, n_readout=2, noisy=False)
    angles = torch.rand(6, n, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * np.pi
    logical = statevector_outputs(angles, torch.as_tensor(w), outcome_matrix(n, 2), "angle", ansatz)
    assert circuit.transpiled.count_ops().get("swap", 0) == 0          # SWAPs are in the basis gates
    assert torch.allclose(circuit.probabilities(angles), logical, atol=1e-10, rtol=0)


def aer_outcome_probabilities(circuit, angles: np.ndarray) -> np.ndarray:
    """The measured wires' outcome distribution by Aer's density-matrix simulation of the
    transpiled circuit with the same gate errors, then each measured qubit's confusion."""
    from qiskit_aer import AerSimulator
    from qiskit_aer.noise import NoiseModel
    model = NoiseModel()
    for (name, positions), error in circuit.errors.items():
        model.add_quantum_error(error, name, list(positions))
    simulator = AerSimulator(method="density_matrix", noise_model=model)
    n, m = angles.shape[1], len(circuit.measured)
    bound = circuit.transpiled.assign_parameters(dict(zip(sorted(circuit.transpiled.parameters, key=lambda p: p.index),
                                                          angles[0])))
    bound.save_density_matrix()
    rho = np.asarray(simulator.run(bound, optimization_level=0).result().data()["density_matrix"])
    probabilities = np.zeros(2 ** m)
    for state in range(2 ** n):                     # Qiskit's index: bit p is position p
        bits = [(state >> position) & 1 for position in circuit.measured]
        for outcome in range(2 ** m):
            read = [(outcome >> (m - 1 - j)) & 1 for j in range(m)]
            confusion = np.prod([float(circuit.readout[p][read[j], bits[j]]) for j, p in enumerate(circuit.measured)])
            probabilities[outcome] += rho[state, state].real * confusion
    return probabilities


@pytest.mark.parametrize("device,n", DEVICES)
def test_device_noise_equals_aers_density_matrix_simulation(device, n):
    w = weights(2, n, "strong", seed=7)
    circuit = device_circuit(device, None, w, "strong", n_readout=2)
    assert circuit.errors, "the device's gates carry calibrated errors"
    rng = np.random.default_rng(3)
    for _ in range(3):
        angles = rng.uniform(0, np.pi, (1, n))
        ours = circuit.probabilities(torch.as_tensor(angles))[0].numpy()
        assert np.allclose(ours, aer_outcome_probabilities(circuit, angles), atol=1e-6, rtol=0)
        assert abs(ours.sum() - 1) < 1e-10


def test_noise_moves_the_outputs_and_readout_is_asymmetric():
    w = weights(2, 4, "strong", seed=2)
    noisy, clean = (device_circuit("fake_manila", None, w, "strong", 2, noisy=flag) for flag in (True, False))
    angles = torch.rand(8, 4, dtype=torch.float64) * np.pi
    assert (noisy.probabilities(angles) - clean.probabilities(angles)).abs().max() > 1e-3
    confusion = noisy.readout[noisy.measured[0]]
    assert torch.allclose(confusion.sum(0), torch.ones(2, dtype=torch.float64))   # columns: P(read | prepared)
    assert confusion[1, 0] != confusion[0, 1]                                    # 0 -> 1 and 1 -> 0 differ


def chain_cost(backend, chain) -> float:
    edges = two_qubit_edges(backend)
    link = [min(edges.get((a, b), np.inf), edges.get((b, a), np.inf)) for a, b in zip(chain, chain[1:])]
    return sum(link) + sum(qubit_cost(backend, q) for q in chain)


@pytest.mark.parametrize("device,n", [("fake_nairobi", 3), ("fake_manila", 4), ("fake_guadalupe", 4)])
def test_the_best_chain_is_a_path_no_other_chain_beats(device, n):
    backend = fake_backend(device)
    chain = best_chain(backend, n)
    links = {frozenset(e) for e in two_qubit_edges(backend)}
    assert len(set(chain)) == n and all(frozenset(p) in links for p in zip(chain, chain[1:]))
    others = [c for c in itertools.permutations(range(backend.num_qubits), n)
              if all(frozenset(p) in links for p in zip(c, c[1:]))]
    assert chain_cost(backend, chain) <= min(chain_cost(backend, c) for c in others) + 1e-12


def device_model(noise: dict, n_qubits: int = 4, **options):
    return build_model({"type": "vqc", "n_qubits": n_qubits, "n_layers": 2, "noise": noise, **options}, (16,), 2)


@pytest.mark.parametrize("noise,options,words", [
    ({"device": "fake_nowhere"}, {}, "not a device snapshot"),
    ({"device": "fake_manila", "qubits": [0, 1, 2]}, {}, "must be 4 distinct physical qubits"),
    ({"device": "fake_manila", "qubits": [0, 1, 2, 9]}, {}, "are not qubits of"),
    ({"device": "fake_manila", "qubits": [0, 1, 3, 4]}, {}, "not connected"),
    ({"qubits": [0, 1, 2, 3]}, {}, "set noise.device"),
    ({"device": "fake_manila", "readout_flip": 0.1}, {}, "drop ['readout_flip']"),
    ({"device": "fake_manila"}, {"encoding": "amplitude"}, "one RX per wire"),
    ({"device": "fake_manila"}, {"simulator": "pennylane"}, "simulator 'fast' only"),
    ({"device": "fake_manila"}, {"n_qubits": 6}, "has 5 qubits"),
    ({"device": "fake_nairobi"}, {"n_qubits": 7}, "no chain of 7"),
])
def test_a_bad_device_setting_is_named_before_any_work(noise, options, words):
    options = {"n_qubits": 4, **options}
    with pytest.raises(ConfigError) as error:
        device_model(noise, **options)
    assert words in str(error.value)


def test_the_model_trains_noise_free_and_is_evaluated_and_attacked_on_the_device():
    torch.manual_seed(0)
    model = device_model({"device": "fake_manila"})
    free = device_model({})
    free.load_state_dict(model.state_dict())
    x = torch.rand(10, 16)
    model.fit_preprocessing(torch.rand(50, 16))
    free.fit_preprocessing(torch.rand(50, 16))
    free.pca.load_state_dict(model.pca.state_dict())
    model.train(), free.train()
    assert model.path == "statevector" and torch.allclose(model(x), free(x), atol=1e-12)
    model.eval(), free.eval()
    assert model.path == "device"
    assert (model(x) - free(x)).abs().max() > 1e-3
    # The input gradient an attack follows is the device model's own (central differences).
    x0 = x[:2].double().requires_grad_()
    model.double()
    loss = model(x0)[:, 0].sum()
    (gradient,) = torch.autograd.grad(loss, x0)
    step = 1e-6
    direction = torch.randn_like(x0)
    with torch.no_grad():
        numeric = (model(x0 + step * direction)[:, 0].sum() - model(x0 - step * direction)[:, 0].sum()) / (2 * step)
    assert torch.isclose((gradient * direction).sum(), numeric, rtol=1e-5, atol=1e-8)


def test_chunked_product_states_give_the_same_values_and_gradients(monkeypatch):
    from helpers.models import device_noise
    circuit = device_circuit("fake_manila", None, weights(2, 4, "strong", seed=4), "strong", n_readout=2)
    angles = (torch.rand(9, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * np.pi).requires_grad_()
    whole = circuit.probabilities(angles)
    (whole_gradient,) = torch.autograd.grad((whole * torch.arange(4.0, dtype=torch.float64)).sum(), angles)
    monkeypatch.setattr(device_noise, "PRODUCT_ENTRIES", 2 * 4 ** 4)       # two inputs per chunk
    chunked = circuit.probabilities(angles)
    (chunked_gradient,) = torch.autograd.grad((chunked * torch.arange(4.0, dtype=torch.float64)).sum(), angles)
    assert torch.allclose(whole, chunked, atol=1e-14) and torch.allclose(whole_gradient, chunked_gradient, atol=1e-12)
