"""A model as a sequence of simple operations (``Model.bound_ops``), for the certificates:
each op is a torch module whose forward, applied in order, reproduces the model's logits,
and whose kind a bound propagation rule knows (affine, monotone, a circuit, a scale)."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..registry import ENCODINGS, READOUTS


class Affine(nn.Module):
    """x (B, ...) -> flatten(x) @ weight.T + bias: a fixed affine map (e.g. a fitted PCA)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.weight, self.bias = weight, bias

    def forward(self, x):
        return x.reshape(len(x), -1) @ self.weight.T + self.bias


def pca_affine(pca) -> Affine:
    """``PCAFeatures`` as one affine map of the flattened input: angles = x @ W.T + b."""
    scale = math.pi / (pca.high - pca.low)
    return Affine(pca.components * scale[:, None], (-pca.mean @ pca.components.T - pca.low) * scale)


class Circuit(nn.Module):
    """A variational circuit's layer on its angles (B, n) -> its readout's logits (B, outputs)
    before any output scale: ``layer`` a ``quantum.QuantumLayer``, ``outputs`` how many of the
    readout's values are logits (``n_classes``), ``repeats`` how often each angle enters the
    circuit (data re-uploading of the same angles: once per layer). With shots it is the
    expected readout (``QuantumLayer.exact``): a bound on it says nothing about one draw."""

    def __init__(self, layer, outputs: int):
        super().__init__()
        self.layer, self.outputs = layer, outputs
        self.repeats = ENCODINGS[layer.encoding].times_encoded(layer.n_layers)
        self.readout = READOUTS[layer.readout]

    def forward(self, angles):
        # A circuit with shots is bounded through its expected (infinite-shot) readout.
        with self.layer.exact():
            return self.readout.logits(self.layer(angles), self.outputs)


class Scale(nn.Module):
    """Multiplication by a (trainable) scalar."""

    def __init__(self, scale: torch.Tensor):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return self.scale * x


class Cast(nn.Module):
    """The circuit's float64 outputs back to the input's dtype (identity for the bounds)."""

    def __init__(self, dtype: torch.dtype):
        super().__init__()
        self.dtype = dtype

    def forward(self, x):
        return x.to(self.dtype)


def run_ops(ops, x: torch.Tensor) -> torch.Tensor:
    """The ops applied in order to ``x``: the model's logits."""
    for op in ops:
        x = op(x)
    return x
