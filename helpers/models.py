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
# In evaluation the trained block of the circuit is one dense 2**n x 2**n unitary:
# at 12 qubits that is 256 MiB of complex128; above it, evaluation stays on PennyLane.
MAX_UNITARY_QUBITS = 12


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

    ``simulator="pennylane"`` runs ``qml.qnn.TorchLayer`` on ``default.qubit`` with
    backpropagation (the reference); ``simulator="lightning"`` runs it on ``lightning.qubit``
    with adjoint differentiation (slower here: see ``make bench``). ``simulator="fast"`` (default) computes the same numbers
    (to float64 round-off) with ``helpers.quantum``:

    - training mode: the ``statevector`` path, PennyLane's gates applied to a batched state
      tensor, so gradients reach the weights and the pixels;
    - eval mode (attacks, attributions, accuracy): the weights are frozen, so the trained
      block is one fixed unitary, built once per set of weights, and the
      forward pass is the angle-encoded product state times that matrix (the ``unitary``
      path). Above ``MAX_UNITARY_QUBITS`` the eval mode stays on the statevector path.

    ``path`` says which path the current mode runs.
    """

    SIMULATORS = ("fast", "pennylane", "lightning")

    def __init__(self, input_shape, n_classes: int, n_qubits: int = 8, n_layers: int = 4,
                 output_scale: float = 1.0, simulator: str = "fast"):
        super().__init__()
        import pennylane as qml

        n_pixels = int(np.prod(input_shape))
        if not 1 <= n_qubits <= MAX_QUBITS:
            raise ValueError(f"n_qubits must be in 1..{MAX_QUBITS}, got {n_qubits}")
        if n_classes > n_qubits:
            raise ValueError(f"n_classes ({n_classes}) must not exceed n_qubits ({n_qubits}): one <Z> per class")
        if n_qubits > n_pixels:
            raise ValueError(f"n_qubits ({n_qubits}) must not exceed the number of pixels ({n_pixels})")
        if simulator not in self.SIMULATORS:
            raise ValueError(f"simulator must be one of {self.SIMULATORS}, got {simulator!r}")
        self.n_qubits, self.n_layers, self.n_classes, self.simulator = n_qubits, n_layers, n_classes, simulator
        self.register_buffer("pca_mean", torch.zeros(n_pixels))
        self.register_buffer("pca_components", torch.zeros(n_qubits, n_pixels))
        self.register_buffer("feature_low", torch.zeros(n_qubits))
        self.register_buffer("feature_high", torch.ones(n_qubits))

        if simulator == "lightning":
            device, diff_method = qml.device("lightning.qubit", wires=n_qubits), "adjoint"
        else:
            device, diff_method = qml.device("default.qubit", wires=n_qubits), "backprop"

        @qml.qnode(device, interface="torch", diff_method=diff_method)
        def circuit(inputs, weights):
            qml.AngleEmbedding(inputs, wires=range(n_qubits), rotation="X")
            qml.StronglyEntanglingLayers(weights, wires=range(n_qubits))
            return [qml.expval(qml.PauliZ(w)) for w in range(n_classes)]

        self.circuit = circuit
        self._readout_cache: tuple | None = None
        self.register_buffer("z_signs", quantum.z_signs(n_qubits, n_classes), persistent=False)
        self.quantum = qml.qnn.TorchLayer(circuit, {"weights": (n_layers, n_qubits, 3)})
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
        """The simulation the current mode runs: 'pennylane', 'lightning', 'statevector' or 'unitary'."""
        if self.simulator != "fast":
            return self.simulator
        if self.training or self.n_qubits > MAX_UNITARY_QUBITS:
            return "statevector"
        return "unitary"

    def block_unitary(self) -> torch.Tensor:
        """The trainable block's unitary (2**n, 2**n) for the current weights: the
        statevector simulation of every basis state (equal to ``qml.matrix`` of the template,
        which a test checks, and milliseconds instead of seconds at 8+ qubits)."""
        weights = self.quantum.weights.detach()
        with torch.no_grad():
            basis = torch.eye(2 ** self.n_qubits, dtype=torch.complex128, device=weights.device)
            return quantum.simulate_block(basis, weights).T

    def _frozen_readout(self) -> torch.Tensor:
        """``quantum.readout_matrix`` of the current weights, rebuilt only when they change."""
        weights = self.quantum.weights
        key = (weights.data_ptr(), weights._version, weights.device)
        if self._readout_cache is None or self._readout_cache[0] != key:
            self._readout_cache = (key, quantum.readout_matrix(self.block_unitary()))
        return self._readout_cache[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = self.angles(x)
        path = self.path
        if path in ("pennylane", "lightning"):
            expectations = self.quantum(angles)
        elif path == "statevector":
            expectations = quantum.statevector_expectations(angles, self.quantum.weights, self.z_signs)
        else:
            expectations = quantum.unitary_expectations(angles, self._frozen_readout(), self.z_signs.repeat(2, 1))
        return self.output_scale * expectations.to(x.dtype)


MODELS = {"mlp": MLP, "cnn": CNN, "vqc": AngleVQC}


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
