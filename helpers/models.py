"""Classifiers: every model maps a float batch (B, 1, H, W) in [0, 1] to logits (B, classes).

Adding a model is one class here and one entry in ``MODELS``; the config refers to it by
its registry name (``type``) and passes the remaining keys to its constructor.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from . import quantum

# A statevector of n qubits holds 2**n complex amplitudes per sample; 20 qubits at batch 32
# in complex128 is already 0.5 GiB before autograd keeps intermediate states.
MAX_QUBITS = 20


class MLP(nn.Module):
    """Feed-forward network: flatten -> [Linear -> ReLU]* -> Linear (logits)."""

    def __init__(self, input_shape, n_classes: int, hidden: list[int] = (32,)):
        super().__init__()
        widths = [int(np.prod(input_shape)), *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(w_in, w_out), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN(nn.Module):
    """Small convolutional network; ``gradcam_layer`` is its last convolution (for Grad-CAM)."""

    def __init__(self, input_shape, n_classes: int, channels: list[int] = (8, 16), hidden: int = 32):
        super().__init__()
        c_in, h, w = input_shape
        convs: list[nn.Module] = []
        for c_out in channels:
            convs += [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.ReLU()]
            c_in = c_out
        self.features = nn.Sequential(*convs)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in * (h // 2) * (w // 2), hidden),
            nn.ReLU(),
            nn.Linear(hidden, n_classes),
        )

    @property
    def gradcam_layer(self) -> nn.Module:
        return [m for m in self.features if isinstance(m, nn.Conv2d)][-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


class AngleVQC(nn.Module):
    """Variational quantum classifier with angle encoding.

    pixels (B, 1, H, W) -> PCA to ``n_qubits`` features (fitted on the training split only,
    stored as buffers) -> affine map of the training range onto rotation angles [0, pi] ->
    ``AngleEmbedding`` (X rotations) -> ``StronglyEntanglingLayers`` (``n_layers``,
    trainable) -> <Z> on the first ``n_classes`` wires -> trainable output scale -> logits.

    Every step is differentiable, so gradients reach the pixels and the model is attacked in
    the same pixel space as the classical ones.

    ``simulator`` picks the simulation of the circuit (``quantum.QuantumLayer``): ``fast``
    (default; a statevector path in training, the frozen block as one unitary in eval),
    ``pennylane`` (``qml.qnn.TorchLayer`` on ``default.qubit``, the reference) or
    ``lightning`` (``lightning.qubit``, adjoint); all give the same numbers. ``path`` says
    which simulation the current mode runs.
    """

    def __init__(self, input_shape, n_classes: int, n_qubits: int = 8, n_layers: int = 4,
                 output_scale: float = 1.0, simulator: str = "fast"):
        super().__init__()
        n_pixels = int(np.prod(input_shape))
        if not 1 <= n_qubits <= MAX_QUBITS:
            raise ValueError(f"n_qubits must be in 1..{MAX_QUBITS}, got {n_qubits}")
        if n_classes > n_qubits:
            raise ValueError(f"n_classes ({n_classes}) must not exceed n_qubits ({n_qubits}): one <Z> per class")
        if n_qubits > n_pixels:
            raise ValueError(f"n_qubits ({n_qubits}) must not exceed the number of pixels ({n_pixels})")
        self.n_qubits, self.n_layers, self.n_classes = n_qubits, n_layers, n_classes
        self.register_buffer("pca_mean", torch.zeros(n_pixels))
        self.register_buffer("pca_components", torch.zeros(n_qubits, n_pixels))
        self.register_buffer("feature_low", torch.zeros(n_qubits))
        self.register_buffer("feature_high", torch.ones(n_qubits))
        self.quantum = quantum.QuantumLayer(n_qubits, n_layers, n_classes, simulator)
        # <Z> lies in [-1, 1]: without a trainable scale the logit margins stay small.
        self.output_scale = nn.Parameter(torch.tensor(float(output_scale)))

    def fit_preprocessing(self, X_train: torch.Tensor) -> None:
        """Fit the PCA and the angle range on training images (N, 1, H, W) only."""
        flat = X_train.reshape(len(X_train), -1).double()
        mean = flat.mean(0)
        # Principal axes from the SVD of the centred data, signs fixed for reproducibility.
        _, _, vt = torch.linalg.svd(flat - mean, full_matrices=False)
        components = vt[: self.n_qubits]
        signs = torch.sign(components[torch.arange(self.n_qubits), components.abs().argmax(1)])
        components = components * signs[:, None]
        features = (flat - mean) @ components.T
        low, high = features.min(0).values, features.max(0).values
        self.pca_mean.copy_(mean.float())
        self.pca_components.copy_(components.float())
        self.feature_low.copy_(low.float())
        self.feature_high.copy_(torch.maximum(high, low + 1e-6).float())

    def angles(self, x: torch.Tensor) -> torch.Tensor:
        """Rotation angles (B, n_qubits); training images map into [0, pi]."""
        features = (x.reshape(len(x), -1) - self.pca_mean) @ self.pca_components.T
        return math.pi * (features - self.feature_low) / (self.feature_high - self.feature_low)

    @property
    def path(self) -> str:
        return self.quantum.path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_scale * self.quantum(self.angles(x)).to(x.dtype)


def _seed_backbone() -> nn.Sequential:
    """The earlier study's convolutional backbone: Conv(1->16, 3x3) -> ReLU -> AvgPool(2) ->
    Conv(16->32, 3x3) -> ReLU -> AvgPool(2) -> flatten (128 features for 8x8 images)."""
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten())


def _backbone_width(input_shape) -> int:
    _, height, width = input_shape
    if height < 4 or width < 4:
        raise ValueError(f"the seed backbone pools twice by 2: images must be at least 4x4, got {height}x{width}")
    return 32 * (height // 4) * (width // 4)


class SeedCNN(nn.Module):
    """The earlier study's classical CNN (``configs/seed.yaml``): the seed backbone ->
    Linear 128->16 -> ReLU -> Linear 16->8 -> ReLU -> Linear 8->classes (7,018 parameters for
    8x8 images and 2 classes)."""

    def __init__(self, input_shape, n_classes: int):
        super().__init__()
        self.features = _seed_backbone()
        self.head = nn.Sequential(nn.Linear(_backbone_width(input_shape), 16), nn.ReLU(),
                                  nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, n_classes))

    @property
    def gradcam_layer(self) -> nn.Module:
        return self.features[3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SeedHybrid(nn.Module):
    """The earlier study's hybrid model (``configs/seed.yaml``) and its quantum-free control.

    Its own seed backbone -> Linear 128->``n_qubits`` -> tanh -> ``head`` -> Linear
    ``n_readout``->classes. ``head="quantum"``: the tanh outputs are the angles of
    ``AngleEmbedding`` (X rotations) -> ``StronglyEntanglingLayers`` (``n_layers``) -> <Z> on
    the first ``n_readout`` wires (``quantum.QuantumLayer``; 4 qubits, 2 layers: 24 quantum
    weights). ``head="classical"``: the circuit replaced by Linear ``n_qubits``->``n_readout``
    and tanh, the same width and the same bounded output range, so that the effect of the
    bottleneck separates from the effect of the circuit.
    """

    HEADS = ("quantum", "classical")

    def __init__(self, input_shape, n_classes: int, head: str = "quantum", n_qubits: int = 4, n_layers: int = 2,
                 n_readout: int = 2, simulator: str = "fast"):
        super().__init__()
        if head not in self.HEADS:
            raise ValueError(f"head must be one of {self.HEADS}, got {head!r}")
        self.features = _seed_backbone()
        self.bottleneck = nn.Linear(_backbone_width(input_shape), n_qubits)
        if head == "quantum":
            self.quantum = quantum.QuantumLayer(n_qubits, n_layers, n_readout, simulator)
        else:
            if not 1 <= n_readout <= n_qubits:
                raise ValueError(f"n_readout ({n_readout}) must be 1..n_qubits ({n_qubits})")
            self.classical = nn.Linear(n_qubits, n_readout)
        self.output = nn.Linear(n_readout, n_classes)

    @property
    def gradcam_layer(self) -> nn.Module:
        return self.features[3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = torch.tanh(self.bottleneck(self.features(x)))
        if hasattr(self, "quantum"):
            readout = self.quantum(angles).to(x.dtype)
        else:
            readout = torch.tanh(self.classical(angles))
        return self.output(readout)


MODELS = {"mlp": MLP, "cnn": CNN, "vqc": AngleVQC, "seed_cnn": SeedCNN, "seed_hybrid": SeedHybrid}


def build_model(spec: dict, input_shape, n_classes: int) -> nn.Module:
    """Build the model named by ``spec['type']`` with the other keys as constructor arguments."""
    kind = spec["type"]
    if kind not in MODELS:
        raise ValueError(f"unknown model type {kind!r}; available: {sorted(MODELS)}")
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    return MODELS[kind](tuple(input_shape), n_classes, **kwargs)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (buffers such as the fixed PCA are not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
