import math

import numpy as np
import pennylane as qml
import pytest
import torch

from helpers.models import build_model, count_parameters
from helpers.models.vqc import MAX_QUBITS

from conftest import SPECS, outputs_and_gradients


@pytest.mark.parametrize("name", list(SPECS))
def test_models_map_images_to_logits_and_gradients_reach_the_pixels(name):
    torch.manual_seed(0)
    model = build_model(SPECS[name], (1, 8, 8), 4)
    if hasattr(model, "fit_preprocessing"):
        model.fit_preprocessing(torch.rand(50, 1, 8, 8))
    x = torch.rand(5, 1, 8, 8, requires_grad=True)
    logits = model(x)
    assert logits.shape == (5, 4) and logits.dtype == torch.float32
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3, 0])).backward()
    assert x.grad is not None and x.grad.shape == x.shape
    assert torch.isfinite(x.grad).all() and (x.grad.abs().sum(dim=(1, 2, 3)) > 0).all()


@pytest.mark.parametrize("n_qubits,n_layers", [(4, 2), (6, 3)])
def test_quantum_model_equals_a_reference_pennylane_circuit(n_qubits, n_layers):
    torch.manual_seed(1)
    model = build_model({"type": "vqc", "n_qubits": n_qubits, "n_layers": n_layers}, (1, 8, 8), 3)
    model.fit_preprocessing(torch.rand(40, 1, 8, 8))
    with torch.no_grad():
        model.output_scale.fill_(2.5)
    x = torch.rand(6, 1, 8, 8)
    weights = model.quantum.weights.detach().double().numpy()

    # Independent reference: the PCA and angle map recomputed from the buffers, then a plain
    # default.qubit QNode evaluated one sample at a time with the model's weights.
    flat = x.reshape(6, -1).double().numpy()
    feats = (flat - model.pca.mean.double().numpy()) @ model.pca.components.double().numpy().T
    low, high = model.pca.low.double().numpy(), model.pca.high.double().numpy()
    angles = math.pi * (feats - low) / (high - low)
    dev = qml.device("default.qubit", wires=n_qubits)

    @qml.qnode(dev)
    def reference(a):
        for w in range(n_qubits):
            qml.RX(a[w], wires=w)
        qml.StronglyEntanglingLayers(weights, wires=range(n_qubits))
        return [qml.expval(qml.PauliZ(w)) for w in range(3)]

    expected = 2.5 * np.array([np.array(reference(a), dtype=float) for a in angles])
    for mode in (True, False):  # both simulation paths (TorchLayer, frozen unitary)
        model.train(mode)
        assert np.allclose(model(x).detach().numpy(), expected, atol=1e-5)


def test_quantum_preprocessing_is_fitted_on_the_given_split_only():
    model = build_model({"type": "vqc", "n_qubits": 4, "n_layers": 1}, (1, 8, 8), 2)
    x_train = torch.rand(30, 1, 8, 8)
    model.fit_preprocessing(x_train)
    angles = model.encode(x_train)
    assert angles.min() >= -1e-5 and angles.max() <= math.pi + 1e-5
    assert torch.allclose(model.pca.mean, x_train.reshape(30, -1).mean(0), atol=1e-6)


def test_parameter_counts():
    assert count_parameters(build_model({"type": "mlp", "hidden": [16]}, (1, 8, 8), 4)) == 64 * 16 + 16 + 16 * 4 + 4
    vqc = build_model({"type": "vqc", "n_qubits": 4, "n_layers": 2}, (1, 8, 8), 4)
    assert count_parameters(vqc) == 2 * 4 * 3 + 1  # rotations + output scale; PCA is a fixed buffer


def test_quantum_model_refuses_impossible_shapes():
    with pytest.raises(ValueError, match="n_classes"):
        build_model({"type": "vqc", "n_qubits": 2}, (1, 8, 8), 4)
    with pytest.raises(ValueError, match="n_qubits"):
        build_model({"type": "vqc", "n_qubits": MAX_QUBITS + 1}, (1, 8, 8), 4)
    with pytest.raises(ValueError, match=r"model.type 'transformer' is unknown; allowed: \["):
        build_model({"type": "transformer"}, (1, 8, 8), 4)


@pytest.mark.parametrize("n_qubits,n_layers", [(2, 1), (4, 2), (6, 3), (8, 4), (10, 2)])
@pytest.mark.parametrize("train,path", [(True, "statevector"), (False, "unitary")])
def test_fast_paths_equal_pennylaneoutputs_and_gradients(n_qubits, n_layers, train, path):
    torch.manual_seed(n_qubits)
    spec = {"type": "vqc", "n_qubits": n_qubits, "n_layers": n_layers}
    fast = build_model(spec, (1, 8, 8), 2)
    with torch.no_grad():  # random weights over the whole circle, not the small init
        fast.quantum.weights.uniform_(-math.pi, math.pi)
    fast.fit_preprocessing(torch.rand(40, 1, 8, 8))
    reference = build_model({**spec, "simulator": "pennylane"}, (1, 8, 8), 2)
    reference.load_state_dict(fast.state_dict())
    x = torch.rand(9, 1, 8, 8)
    got, want = outputs_and_gradients(fast, x, train), outputs_and_gradients(reference, x, train)
    assert fast.path == path and reference.path == "pennylane"
    assert torch.allclose(got[0], want[0], atol=1e-5)
    assert torch.allclose(got[1], want[1], atol=1e-5)
    if train:  # the training path also differentiates the weights
        assert torch.allclose(got[2], want[2], atol=1e-5)


def test_frozen_readout_follows_the_weights():
    model = build_model({"type": "vqc", "n_qubits": 3, "n_layers": 1}, (1, 8, 8), 2).eval()
    first = model.quantum.frozen_readout()
    assert model.quantum.frozen_readout() is first  # built once per set of weights
    with torch.no_grad():
        model.quantum.weights.add_(0.1)
    assert not torch.allclose(model.quantum.frozen_readout(), first)
    unitary = model.quantum.block_unitary()
    eye = torch.eye(8, dtype=torch.complex128)
    assert torch.allclose(unitary @ unitary.conj().T, eye, atol=1e-10)


@pytest.mark.parametrize("n_qubits,n_layers", [(1, 2), (3, 2), (5, 3), (6, 2)])
def test_block_unitary_equals_pennylane_matrix_of_the_template(n_qubits, n_layers):
    import pennylane as qml

    model = build_model({"type": "vqc", "n_qubits": n_qubits, "n_layers": n_layers}, (1, 8, 8), 1)
    with torch.no_grad():
        model.quantum.weights.uniform_(-math.pi, math.pi)
    weights = model.quantum.weights.detach().double()
    reference = qml.matrix(qml.StronglyEntanglingLayers(weights, wires=range(n_qubits)), wire_order=range(n_qubits))
    assert torch.allclose(model.quantum.block_unitary(), reference, atol=1e-10)


def test_unknown_simulator_is_refused():
    with pytest.raises(ValueError, match=r"model.simulator 'qiskit' is unknown; allowed: \['fast', 'pennylane', 'lightning'\]"):
        build_model({"type": "vqc", "n_qubits": 4, "simulator": "qiskit"}, (1, 8, 8), 2)


@pytest.mark.parametrize("write", ["data", "load_state_dict", "optimizer_step", "vector_to_parameters"])
def test_the_frozen_unitary_never_outlives_an_in_place_change_of_the_weights(write):
    """The evaluation path caches the block's unitary; any way of changing the weights in
    place must invalidate it, so evaluation keeps equalling the state-vector path."""
    torch.manual_seed(4)
    model = build_model({"type": "vqc", "n_qubits": 4, "n_layers": 2}, (1, 8, 8), 2)
    model.fit_preprocessing(torch.rand(40, 1, 8, 8))
    x = torch.rand(6, 1, 8, 8)
    model.eval()
    before = model(x).detach()  # builds and caches the unitary
    weights = model.quantum.weights
    if write == "data":
        weights.data.add_(0.5)  # does not bump the tensor's version counter
    elif write == "load_state_dict":
        state = model.state_dict()
        state["quantum.weights"] = state["quantum.weights"] + 0.5
        model.load_state_dict(state)
    elif write == "optimizer_step":
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        model.train()
        torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1] * 3)).backward()
        optimizer.step()
        model.eval()
    else:
        vector = torch.nn.utils.parameters_to_vector(model.parameters())
        torch.nn.utils.vector_to_parameters(vector + 0.5, model.parameters())
    evaluated = model(x).detach()
    assert model.path == "unitary"
    model.train()
    assert model.path == "statevector"
    assert torch.allclose(evaluated, model(x).detach(), atol=1e-5)  # the same numbers as the state-vector path
    assert not torch.allclose(evaluated, before, atol=1e-3)  # and the change was real


def test_a_degenerate_run_is_one_that_predicts_one_class_or_no_better_than_the_majority():
    from helpers.stages.train import degeneracy

    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    assert degeneracy(torch.full_like(y, 2), y)["degenerate"]  # a constant predictor (at the majority share)
    assert degeneracy(torch.full_like(y, 0), y) == {"predicted_classes": 1, "majority_share": 0.5, "degenerate": True}
    assert not degeneracy(torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 1, 1]), y)["degenerate"]  # 0.8 beats 0.5
    assert degeneracy(torch.tensor([1, 1, 1, 0, 0, 2, 2, 2, 2, 2]), y)["degenerate"]  # 0.5: no better than "always 2"
