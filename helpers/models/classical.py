"""Classical networks: a feed-forward MLP, a small CNN, and the capacity-matched MLP."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..params import ConfigError, Integer, ListOf, Params, param
from ..registry import MODELS
from .features import PCAFeatures
from . import Model
from .ops import pca_affine


def mlp_layers(n_inputs: int, hidden, n_classes: int) -> nn.Sequential:
    """flatten -> [Linear -> ReLU] per hidden width -> Linear (logits)."""
    widths = [n_inputs, *hidden]
    layers: list[nn.Module] = [nn.Flatten()]
    for w_in, w_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(w_in, w_out), nn.ReLU()]
    layers.append(nn.Linear(widths[-1], n_classes))
    return nn.Sequential(*layers)


@MODELS.register
class MLP(Model):
    """Feed-forward network: flatten -> [Linear -> ReLU]* -> Linear (logits)."""

    name, label = "mlp", "MLP"

    @dataclass(frozen=True)
    class Params(Params):
        hidden: tuple[int, ...] = param([32], ListOf(Integer(1)), "widths of the hidden ReLU layers")

    def __init__(self, input_shape, n_classes: int, params=None):
        super().__init__(input_shape, n_classes, params)
        self.net = mlp_layers(int(np.prod(input_shape)), self.params.hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def bound_ops(self):
        return list(self.net)


@MODELS.register
class CNN(Model):
    """Small convolutional network: Conv3x3/ReLU layers (``channels``) -> MaxPool(2) ->
    Linear/ReLU (``hidden``) -> logits; Grad-CAM explains its last convolution."""

    name, label = "cnn", "CNN"
    tags = frozenset({"image"})

    @dataclass(frozen=True)
    class Params(Params):
        channels: tuple[int, ...] = param([8, 16], ListOf(Integer(1), nonempty=True), "output channels of each 3x3 convolution")
        hidden: int = param(32, Integer(1), "width of the hidden ReLU layer")

    def __init__(self, input_shape, n_classes: int, params=None):
        super().__init__(input_shape, n_classes, params)
        c_in, h, w = input_shape
        convs: list[nn.Module] = []
        for c_out in self.params.channels:
            convs += [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.ReLU()]
            c_in = c_out
        self.features = nn.Sequential(*convs)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in * (h // 2) * (w // 2), self.params.hidden),
            nn.ReLU(),
            nn.Linear(self.params.hidden, n_classes),
        )

    @property
    def gradcam_layer(self) -> nn.Module:
        return [m for m in self.features if isinstance(m, nn.Conv2d)][-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))

    def bound_ops(self):
        return [*self.features, self.pool, *self.head]


def hidden_width(parameters: int, n_features: int, n_classes: int) -> int:
    """Hidden width h >= 1 whose one-hidden-layer MLP n_features -> h -> n_classes has the
    trainable parameter count closest to ``parameters``; a ValueError if not within 10%."""
    per_unit = n_features + 1 + n_classes            # weights in, bias, weights out
    width = max(1, round((parameters - n_classes) / per_unit))
    count = width * per_unit + n_classes
    if abs(count - parameters) > 0.1 * parameters:
        raise ValueError(f"no hidden width gives an MLP {n_features} -> h -> {n_classes} within 10% of "
                         f"parameters={parameters}: the closest, h={width}, has {count}")
    return width


@MODELS.register
class MatchedMLP(Model):
    """Capacity-matched classical baseline: the VQC's reduced features (``PCAFeatures``: the
    same training-split PCA to ``n_features`` components and the same map onto [0, pi]) ->
    an MLP with one hidden layer whose width (``hidden_width``) puts its trainable parameter
    count within 10% of ``parameters``. The defaults match the default ``vqc`` (8 qubits,
    4 layers: 97 parameters); ``match: <model name>`` in a config sets both (``match_capacity``).
    """

    name, label = "matched_mlp", "capacity-matched MLP"
    uses = ("helpers.models.features",)

    @dataclass(frozen=True)
    class Params(Params):
        parameters: int = param(97, Integer(1), "trainable parameters to match (within 10%); set by `match`")
        n_features: int = param(8, Integer(1), "PCA features it sees (a circuit's n_qubits); set by `match`")

    @classmethod
    def check(cls, params, shape, where):
        super().check(params, shape, where)
        if params.n_features > shape.n_inputs:
            raise ConfigError(f"{where}: n_features ({params.n_features}) must not exceed the number of input "
                              f"features ({shape.n_inputs})")
        try:
            hidden_width(params.parameters, params.n_features, shape.n_classes)
        except ValueError as error:
            raise ConfigError(f"{where}: {error}") from None

    def __init__(self, input_shape, n_classes: int, params=None):
        super().__init__(input_shape, n_classes, params)
        p = self.params
        self.pca = PCAFeatures(int(np.prod(input_shape)), p.n_features)
        self.mlp = mlp_layers(p.n_features, (hidden_width(p.parameters, p.n_features, n_classes),), n_classes)

    def fit_preprocessing(self, x_train: torch.Tensor) -> None:
        """Fit the PCA and the feature range on training inputs (N, *input_shape) only."""
        self.pca.fit(x_train)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.pca(x))

    def bound_ops(self):
        return [pca_affine(self.pca), *self.mlp]
