"""Your own model by config: ``type: python`` (an nn.Module from your file) and ``type: qnode``
(a PennyLane QNode): built, trained, attacked and certified like the built-in models; the
file's content in the key; every mistake named before any work."""
import pytest
import torch

from helpers.attacks import PGD, predict
from helpers.registry import ATTACKS
from helpers.config import parse_config
from helpers.models import build_model
from helpers.params import ConfigError
from helpers.registry import CERTIFICATES
from helpers.stages import train
from helpers.training import train_model

FILE = '''
import torch
from torch import nn


def cnn(input_shape, n_classes, width=16):
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * input_shape[1] * input_shape[2], width), nn.ReLU(), nn.Linear(width, n_classes))


class Odd(nn.Module):  # not a Sequential of known layers: no certificate
    def __init__(self, n_in, n_classes):
        super().__init__()
        self.linear = nn.Linear(n_in, n_classes)

    def forward(self, x):
        return self.linear(x.reshape(len(x), -1)) ** 3


def odd(input_shape, n_classes):
    return Odd(64, n_classes)


def circuit(input_shape, n_classes, n_qubits=3):
    import pennylane as qml
    dev = qml.device("default.qubit", wires=n_qubits)

    @qml.qnode(dev, interface="torch", diff_method="backprop")
    def qnode(inputs, weights):
        qml.AngleEmbedding(inputs * torch.pi, wires=range(n_qubits))
        qml.StronglyEntanglingLayers(weights, wires=range(n_qubits))
        return [qml.expval(qml.PauliZ(w)) for w in range(n_qubits)]

    pre = nn.Sequential(nn.Linear(64, n_qubits), nn.Sigmoid())
    return {"qnode": qnode, "weight_shapes": {"weights": (2, n_qubits, 3)}, "pre": pre, "n_features": n_qubits}


def wrong_shape(input_shape, n_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, n_classes + 1))


def not_a_module(input_shape, n_classes):
    return "a string"


def broken(input_shape, n_classes):
    raise RuntimeError("boom")
'''
BASE = {"dataset": {"classes": [0, 1, 2], "folds": 2}, "n_runs": 2, "seed": 3, "workers": 1,
        "training": {"epochs": 4, "batch_size": 32, "learning_rate": 0.02}, "attack": {"methods": ["fgsm", "pgd"]}}


@pytest.fixture
def folder(tmp_path, monkeypatch):
    (tmp_path / "mine.py").write_text(FILE)
    monkeypatch.setenv("QML_ROBUSTNESS_MODELS", str(tmp_path))
    return tmp_path


def config(tmp_path, models):
    return parse_config({**BASE, "models": models}, "own", tmp_path / "results")


def test_a_python_cnn_trains_and_is_certified_and_never_beaten(folder, digits_split):
    x_tr, y_tr, x_te, y_te = digits_split
    keep_tr, keep_te = y_tr < 3, y_te < 3
    cfg = config(folder, {"cnn": {"type": "python", "factory": "mine:cnn", "options": {"width": 12}}})
    torch.manual_seed(0)
    model = build_model(cfg.models["cnn"].to_dict(), (1, 8, 8), 3)
    train_model(model, x_tr[keep_tr], y_tr[keep_tr], x_te, y_te, epochs=4, batch_size=32, learning_rate=0.02, seed=0)
    model.eval()
    x, y = x_te[keep_te][:60], y_te[keep_te][:60]
    assert (predict(model, x) == y).float().mean() > 0.9
    assert model.gradcam_layer is not None and model.bound_ops() is not None
    pgd = PGD(steps=20, seed=0)
    for name in ("interval", "crown"):
        certificate = CERTIFICATES[name]()
        assert certificate.applies(model)[0]
        proved = certificate.certify(model, x, y, 0.02)
        assert proved.sum() > 0
        fooled = predict(model, pgd.attack(model, x, y, 0.02)) != y
        assert not (torch.as_tensor(proved, dtype=torch.bool) & fooled).any()


def test_a_module_without_bound_rules_gets_no_certificate(folder):
    cfg = config(folder, {"odd": {"type": "python", "factory": "mine:odd"}})
    model = build_model(cfg.models["odd"].to_dict(), (1, 8, 8), 3)
    assert model.bound_ops() is None and not CERTIFICATES["interval"].applies(model)[0]


def test_a_qnode_circuit_is_trained_attacked_and_matched(folder, digits_split):
    x_tr, y_tr, x_te, y_te = digits_split
    cfg = config(folder, {"circ": {"type": "qnode", "factory": "mine:circuit"}, "twin": {"type": "matched_mlp",
                                                                                           "match": "circ"}})
    torch.manual_seed(0)
    model = build_model(cfg.models["circ"].to_dict(), (1, 8, 8), 3)
    keep = y_tr < 3
    history = train_model(model, x_tr[keep][:150], y_tr[keep][:150], x_te[:30], y_te[:30], epochs=2, batch_size=32,
                          learning_rate=0.05, seed=0)
    assert history[-1]["train_loss"] < history[0]["train_loss"] + 1e-9 or history[-1]["train_accuracy"] > 0.5
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    twin = build_model(cfg.models["twin"].to_dict(), (1, 8, 8), 3)
    assert abs(sum(p.numel() for p in twin.parameters()) - params) <= 0.1 * params  # matched capacity
    x, y = x_te[y_te < 3][:20], y_te[y_te < 3][:20]
    for name, options in (("fgsm", {}), ("pgd", {"steps": 5}), ("apgd_ce", {"steps": 5}), ("square", {"queries": 20})):
        adversarial = ATTACKS[name](**options, seed=0).attack(model, x, y, 0.1)
        assert (adversarial - x).abs().max() <= 0.1 + 1e-6 and adversarial.min() >= 0 and adversarial.max() <= 1
    assert not CERTIFICATES["interval"].applies(model)[0]


def test_the_file_s_content_is_in_the_key(folder):
    cfg = config(folder, {"cnn": {"type": "python", "factory": "mine:cnn"}})
    before = train.train_key(cfg, "cnn", 0, 1)
    (folder / "mine.py").write_text(FILE + "\n# an edit\n")
    assert train.train_key(cfg, "cnn", 0, 1) != before


@pytest.mark.parametrize("factory, message", [
    ("absent:cnn", "the file .*absent.py does not exist"),
    ("mine:nothing", "has no function 'nothing'"),
    ("mine:wrong_shape", r"returns \(2, 4\) for a batch of 2 inputs; logits \(2, 3\) are needed"),
    ("mine:not_a_module", "returned str, not an nn.Module"),
    ("mine:broken", "failed: RuntimeError: boom"),
    ("../outside:cnn", "outside the models folder"),
    ("no_colon", "models.m.factory must be null or 'file:function'"),
])
def test_every_mistake_is_named(folder, factory, message):
    with pytest.raises(ConfigError, match=message):
        config(folder, {"m": {"type": "python", "factory": factory}})


def test_the_factory_is_required(folder):
    with pytest.raises(ConfigError, match="models.m.factory is required"):
        config(folder, {"m": {"type": "qnode"}})
    with pytest.raises(ConfigError, match="must return a mapping with 'qnode' and 'weight_shapes'"):
        config(folder, {"m": {"type": "qnode", "factory": "mine:cnn"}})
