import numpy as np
import pytest
import torch

from helpers.data import load_dataset, split_indices
from helpers.models import build_model
from helpers.training import train_model

SPECS = {
    "mlp": {"type": "mlp", "hidden": [16]},
    "cnn": {"type": "cnn", "channels": [4, 8], "hidden": 16},
    "vqc": {"type": "vqc", "n_qubits": 4, "n_layers": 2},
}


@pytest.fixture(scope="session")
def digits_split():
    """Digits 0-3 as tensors: (x_train, y_train, x_test, y_test)."""
    ds = load_dataset("digits", [0, 1, 2, 3])
    tr, te = split_indices(ds.y, 0.25, seed=0)
    return tuple(torch.as_tensor(a) for a in (ds.X[tr], ds.y[tr], ds.X[te], ds.y[te]))


@pytest.fixture(scope="session")
def trained_models(digits_split):
    """One small model of each type, trained for a few epochs (session-wide, read-only)."""
    x_tr, y_tr, x_te, y_te = digits_split
    models = {}
    for name, spec in SPECS.items():
        torch.manual_seed(0)
        model = build_model(spec, (1, 8, 8), 4)
        train_model(model, x_tr, y_tr, x_te, y_te, epochs=3, batch_size=32, learning_rate=0.02, seed=0)
        models[name] = model.eval()
    return models


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def outputs_and_gradients(model, x, train: bool):
    """Outputs, input gradients and weight gradients of a scalar function of the outputs."""
    model.train(train)
    model.zero_grad()
    xi = x.clone().requires_grad_(True)
    out = model(xi)
    out.square().sum().backward()
    weights = model.quantum.weights.grad
    return out.detach(), xi.grad, None if weights is None else weights.clone()


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: opens the smoke study's pages in headless Chromium "
                                       "(`make test` runs it after `make all CONFIG=configs/smoke.yaml`)")
