"""The earlier study's models (``configs/plus_minus_study.yaml``): its CNN, its hybrid
quantum classifier, and the hybrid's quantum-free control."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..params import Choice, ConfigError, Integer, Params, param
from ..registry import MODELS
from . import Model
from .ops import Cast, Circuit
from .quantum import SIMULATORS, QuantumLayer, check_simulator


def backbone() -> nn.Sequential:
    """The earlier study's convolutional backbone: Conv(1->16, 3x3) -> ReLU -> AvgPool(2) ->
    Conv(16->32, 3x3) -> ReLU -> AvgPool(2) -> flatten (128 features for 8x8 images)."""
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten())


def backbone_width(input_shape) -> int:
    _, height, width = input_shape
    return 32 * (height // 4) * (width // 4)


class PlusMinusModel(Model):
    """The backbone pools twice by 2: images of at least 4x4."""

    tags = frozenset({"image"})

    @classmethod
    def check(cls, params, shape, where):
        super().check(params, shape, where)
        _, height, width = shape.input_shape
        if height < 4 or width < 4:
            raise ConfigError(f"{where}: the plus/minus backbone pools twice by 2: images must be at least 4x4, "
                              f"got {height}x{width}")

    @property
    def gradcam_layer(self) -> nn.Module:
        return self.features[3]


@MODELS.register
class PlusMinusCNN(PlusMinusModel):
    """The earlier study's classical CNN: the backbone -> Linear 128->16 -> ReLU -> Linear
    16->8 -> ReLU -> Linear 8->classes (7,018 parameters for 8x8 images and 2 classes);
    Grad-CAM on its second convolution."""

    name, label = "plus_minus_cnn", "the earlier study's CNN"

    def __init__(self, input_shape, n_classes: int, params=None):
        super().__init__(input_shape, n_classes, params)
        self.features = backbone()
        self.head = nn.Sequential(nn.Linear(backbone_width(input_shape), 16), nn.ReLU(),
                                  nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, n_classes))

    def forward(self, x):
        return self.head(self.features(x))

    def bound_ops(self):
        return [*self.features, *self.head]


@MODELS.register
class PlusMinusHybrid(PlusMinusModel):
    """The earlier study's hybrid model and its quantum-free control.

    Its own backbone -> Linear 128->``n_qubits`` -> tanh -> ``head`` -> Linear
    ``n_readout``->classes. ``head="quantum"``: the tanh outputs are the angles of
    ``AngleEmbedding`` (X rotations) -> ``StronglyEntanglingLayers`` (``n_layers``) -> <Z> on
    the first ``n_readout`` wires (``quantum.QuantumLayer``; 4 qubits, 2 layers: 24 quantum
    weights). ``head="classical"``: the circuit replaced by Linear ``n_qubits``->``n_readout``
    and tanh, the same width and the same bounded output range, so that the effect of the
    bottleneck separates from the effect of the circuit.
    """

    name, label = "plus_minus_hybrid", "the earlier study's hybrid"
    tags = frozenset({"image", "quantum"})
    uses = ("helpers.models.quantum", "helpers.models.simulation", "helpers.models.encodings",
            "helpers.models.ansatzes", "helpers.models.readouts")

    @dataclass(frozen=True)
    class Params(Params):
        head: str = param("quantum", Choice(("quantum", "classical")), "the circuit, or its quantum-free control")
        n_qubits: int = param(4, Integer(1, 20), "bottleneck width = qubits")
        n_layers: int = param(2, Integer(1), "StronglyEntanglingLayers")
        n_readout: int = param(2, Integer(1), "<Z> wires read out (or the control's outputs)")
        simulator: str = param("fast", Choice(SIMULATORS), "simulation of the circuit")

    @classmethod
    def check(cls, params, shape, where):
        super().check(params, shape, where)
        check_simulator(params.simulator, "angle", "expval", where)
        if params.n_readout > params.n_qubits:
            raise ConfigError(f"{where}: n_readout ({params.n_readout}) must be 1..n_qubits ({params.n_qubits})")

    def __init__(self, input_shape, n_classes: int, params=None):
        super().__init__(input_shape, n_classes, params)
        p = self.params
        self.features = backbone()
        self.bottleneck = nn.Linear(backbone_width(input_shape), p.n_qubits)
        if p.head == "quantum":
            self.quantum = QuantumLayer(p.n_qubits, p.n_layers, p.n_readout, p.simulator)
        else:
            self.classical = nn.Linear(p.n_qubits, p.n_readout)
        self.output = nn.Linear(p.n_readout, n_classes)

    def bound_ops(self):
        head = ([Circuit(self.quantum, self.params.n_readout), Cast(torch.float32)] if self.params.head == "quantum"
                else [self.classical, nn.Tanh()])
        return [*self.features, self.bottleneck, nn.Tanh(), *head, self.output]

    def forward(self, x):
        angles = torch.tanh(self.bottleneck(self.features(x)))
        if self.params.head == "quantum":
            readout = self.quantum(angles).to(x.dtype)
        else:
            readout = torch.tanh(self.classical(angles))
        return self.output(readout)

