"""Differentiable input maps of the circuits: the PCA features of the angle encodings (and of
the capacity-matched MLP), fitted on the training split; the trainable affine angles; the
amplitude state."""
from __future__ import annotations

import math

import torch
from torch import nn

# Added to the first amplitude before normalising, so that an all-zero input (a black image)
# is the state |0...0> instead of a division by zero; negligible for any other input in [0, 1].
AMPLITUDE_EPSILON = 1e-8


class PCAFeatures(nn.Module):
    """Flatten -> PCA to ``n_features`` components -> affine map onto [0, pi].

    Fitted on the training split only (``fit``) and stored as buffers, so the map is fixed
    and differentiable: gradients reach the input. The range [0, pi] is the rotation-angle
    range of the angle encodings; the capacity-matched MLP sees the same numbers.
    """

    def __init__(self, n_inputs: int, n_features: int):
        super().__init__()
        if not 1 <= n_features <= n_inputs:
            raise ValueError(f"n_features ({n_features}) must be 1..the number of input features ({n_inputs})")
        self.n_features = n_features
        self.register_buffer("mean", torch.zeros(n_inputs))
        self.register_buffer("components", torch.zeros(n_features, n_inputs))
        self.register_buffer("low", torch.zeros(n_features))
        self.register_buffer("high", torch.ones(n_features))

    def fit(self, X_train: torch.Tensor) -> None:
        """Fit the PCA and the feature range on training inputs (N, *input_shape) only."""
        flat = X_train.reshape(len(X_train), -1).double()
        mean = flat.mean(0)
        # Principal axes from the SVD of the centred data, signs fixed for reproducibility.
        _, _, vt = torch.linalg.svd(flat - mean, full_matrices=False)
        components = vt[: self.n_features]
        signs = torch.sign(components[torch.arange(self.n_features), components.abs().argmax(1)])
        components = components * signs[:, None]
        features = (flat - mean) @ components.T
        low, high = features.min(0).values, features.max(0).values
        self.mean.copy_(mean.float())
        self.components.copy_(components.float())
        self.low.copy_(low.float())
        self.high.copy_(torch.maximum(high, low + 1e-6).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features (B, n_features) of inputs (B, *input_shape); the training split maps into [0, pi]."""
        features = (x.reshape(len(x), -1) - self.mean) @ self.components.T
        return math.pi * (features - self.low) / (self.high - self.low)


class AffineAngles(nn.Module):
    """Flatten -> trainable affine map to ``n_angles`` rotation angles: angle_k = w_k . x + b_k,
    w_k over all input features (an ``nn.Linear``, with its default initialisation). Nothing is
    fitted on the split: w and b are trained with the circuit."""

    def __init__(self, n_inputs: int, n_angles: int):
        super().__init__()
        self.linear = nn.Linear(n_inputs, n_angles)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Angles (B, n_angles) of inputs (B, *input_shape)."""
        return self.linear(x.reshape(len(x), -1))


def amplitude_state(x: torch.Tensor, n_qubits: int) -> torch.Tensor:
    """Real unit-norm amplitudes (B, 2**n_qubits), float64, of inputs (B, *input_shape) in
    [0, 1]: flattened, zero-padded to 2**n_qubits and L2-normalised (``AmplitudeEmbedding``)."""
    flat = x.reshape(len(x), -1).double()
    padded = nn.functional.pad(flat, (0, 2 ** n_qubits - flat.shape[1]))
    guarded = torch.cat([padded[:, :1] + AMPLITUDE_EPSILON, padded[:, 1:]], dim=1)
    return guarded / guarded.norm(dim=1, keepdim=True)
