"""Classical networks: a network written as layers (``net``), its presets (the feed-forward
MLP, the small CNN) and the capacity-matched MLP."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..params import ConfigError, Integer, ListOf, Params, param
from ..registry import MODELS
from . import Model
from .features import PCAFeatures
from .layers import Layer, LayerList, build_network, layer, network_shapes
from .ops import pca_affine


def mlp_spec(hidden) -> tuple[Layer, ...]:
    """flatten -> [linear -> relu] per hidden width (the final linear is appended by ``build_network``)."""
    return (layer("flatten"), *[spec for width in hidden for spec in (layer("linear", width=width), layer("relu"))])


def mlp_layers(n_inputs: int, hidden, n_classes: int) -> nn.Sequential:
    """flatten -> [Linear -> ReLU] per hidden width -> Linear (logits)."""
    return build_network(mlp_spec(hidden), (n_inputs,), n_classes)


@MODELS.register
class Net(Model):
    """A network written as a list of layers (``layers``): convolutions, pooling, activations,
    flatten, linear layers and dropout, then a linear layer to the logits; Grad-CAM explains
    its last convolution. The shapes are inferred from the data set's input shape and checked
    before any training."""

    name, label = "net", "network of layers"
    uses = ("helpers.models.layers",)

    @dataclass(frozen=True)
    class Params(Params):
        layers: tuple[Layer, ...] = param([], LayerList(),
                                          "the layers in order; a final linear layer to the classes is appended")

    @classmethod
    def layer_specs(cls, params) -> tuple[Layer, ...]:
        """The layers before the final linear one."""
        return params.layers

    @classmethod
    def layer_name(cls, where: str, i: int) -> str:
        """How an error names layer ``i``: the config key of a written network."""
        return f"{where}.layers[{i}]"

    @classmethod
    def check(cls, params, shape, where):
        super().check(params, shape, where)
        network_shapes(cls.layer_specs(params), shape.input_shape, lambda i: cls.layer_name(where, i))

    def __init__(self, input_shape, n_classes: int, params=None):
        super().__init__(input_shape, n_classes, params)
        self.net = build_network(self.layer_specs(self.params), input_shape, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @property
    def gradcam_layer(self) -> nn.Module | None:
        convolutions = [m for m in self.net if isinstance(m, nn.Conv2d)]
        return convolutions[-1] if convolutions else None

    def bound_ops(self):
        # The ops of the evaluation-mode network: dropout is the identity there.
        return [m for m in self.net if not isinstance(m, nn.Dropout)]


class Preset(Net):
    """A ``net`` whose layers follow from a few options (its own ``Params``)."""

    @classmethod
    def layer_name(cls, where, i):
        return f"{where}: layer {i} of the {cls.name} preset"


@MODELS.register
class MLP(Preset):
    """Feed-forward network: flatten -> [Linear -> ReLU]* -> Linear (logits)."""

    name, label = "mlp", "MLP"

    @dataclass(frozen=True)
    class Params(Params):
        hidden: tuple[int, ...] = param([32], ListOf(Integer(1)), "widths of the hidden ReLU layers")

    @classmethod
    def layer_specs(cls, params):
        return mlp_spec(params.hidden)


@MODELS.register
class CNN(Preset):
    """Small convolutional network: Conv3x3/ReLU layers (``channels``) -> MaxPool(2) ->
    Linear/ReLU (``hidden``) -> logits; Grad-CAM explains its last convolution."""

    name, label = "cnn", "CNN"
    tags = frozenset({"image"})

    @dataclass(frozen=True)
    class Params(Params):
        channels: tuple[int, ...] = param([8, 16], ListOf(Integer(1), nonempty=True), "output channels of each 3x3 convolution")
        hidden: int = param(32, Integer(1), "width of the hidden ReLU layer")

    @classmethod
    def layer_specs(cls, params):
        convolutions = [spec for c in params.channels for spec in (layer("conv", channels=c, kernel=3, padding=1),
                                                                    layer("relu"))]
        return (*convolutions, layer("pool", mode="max", kernel=2), layer("flatten"),
                layer("linear", width=params.hidden), layer("relu"))


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
    uses = ("helpers.models.features", "helpers.models.layers")

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
