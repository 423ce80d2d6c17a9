"""A classical network written in the config as a list of layers (the ``net`` model, and the
``mlp`` and ``cnn`` presets).

Each layer is a kind name (``relu``) or a mapping with a ``kind`` and that kind's options
(``{kind: conv, channels: 8, kernel: 5}``), parsed into the kind's typed ``Params``. The
shapes are inferred from the data set's input shape before anything is built, so an
impossible network (a convolution on a feature vector, a kernel larger than its feature map)
is a ``ConfigError`` naming the layer. A linear layer that meets a feature map flattens it
first, and a final linear layer to the classes is always appended.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn.modules.utils import _pair

from ..params import Choice, ConfigError, Integer, Number, Optional, Params, Rule, param


@dataclass(frozen=True)
class Layer(Params):
    """Base of the layer kinds: ``output_shape`` (refusing inputs it cannot take) and ``module``."""

    kind: ClassVar[str]
    # Options a layer of this kind must be given (no default makes sense).
    required: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict:
        return {"kind": self.kind, **super().to_dict()}

    def output_shape(self, shape: tuple[int, ...], where: str) -> tuple[int, ...]:
        """The shape (without batch) of the output for inputs of ``shape``; same by default."""
        return shape

    def module(self, shape: tuple[int, ...]) -> nn.Module:
        raise NotImplementedError


def feature_map(kind: str, shape: tuple[int, ...], where: str) -> tuple[int, int, int]:
    """``shape`` as (channels, height, width), or a ``ConfigError`` saying why a ``kind`` layer
    cannot take it."""
    if len(shape) != 3:
        raise ConfigError(f"{where}: a {kind} layer needs a feature map (channels, height, width), but its input "
                          f"has shape {tuple(shape)} (the data set is a table, or a flatten or linear layer came before)")
    return shape


def windows(size: int, kernel: int, stride: int, padding: int) -> int:
    """How many positions a window of ``kernel`` takes along ``size`` (padded on both sides)."""
    return (size + 2 * padding - kernel) // stride + 1


@dataclass(frozen=True)
class Conv(Layer):
    kind = "conv"
    required = ("channels",)
    channels: int = param(None, Integer(1), "output channels (required)")
    kernel: int = param(3, Integer(1), "height and width of the kernel")
    stride: int = param(1, Integer(1), "step between positions of the kernel")
    padding: int = param(0, Integer(0), "zeros added on every side")

    def output_shape(self, shape, where):
        _, h, w = feature_map(self.kind, shape, where)
        if min(h, w) + 2 * self.padding < self.kernel:
            raise ConfigError(f"{where}: kernel {self.kernel} is larger than the feature map {h}x{w} "
                              f"(padding {self.padding})")
        return (self.channels, windows(h, self.kernel, self.stride, self.padding),
                windows(w, self.kernel, self.stride, self.padding))

    def module(self, shape):
        return nn.Conv2d(shape[0], self.channels, self.kernel, self.stride, self.padding)


@dataclass(frozen=True)
class Pool(Layer):
    kind = "pool"
    mode: str = param("max", Choice(("max", "avg")), "the maximum or the average of each window")
    kernel: int = param(2, Integer(1), "height and width of the window")
    stride: int | None = param(None, Optional(Integer(1)), "step between windows (null: the kernel)")

    def output_shape(self, shape, where):
        c, h, w = feature_map(self.kind, shape, where)
        if min(h, w) < self.kernel:
            raise ConfigError(f"{where}: kernel {self.kernel} is larger than the feature map {h}x{w}")
        stride = self.stride or self.kernel
        return c, windows(h, self.kernel, stride, 0), windows(w, self.kernel, stride, 0)

    def module(self, shape):
        return (MaxPool if self.mode == "max" else nn.AvgPool2d)(self.kernel, self.stride)


class MaxPool(nn.MaxPool2d):
    """Max pooling whose passes without a gradient (an attack's queries, sampling, evaluation)
    take the elementwise maximum of the windows' strided slices, for non-overlapping windows
    (stride = kernel, no padding, dilation or ceil mode): the values of ``nn.MaxPool2d``, without
    the cost of its CPU kernel, which on small feature maps exceeds the convolutions' around it
    (docs/performance.md). A pass that needs the gradient runs ``nn.MaxPool2d`` itself: a
    window's gradient reaches its first largest member there, and ties are common (a
    convolution over a blank background gives the same value at neighbouring positions), so any
    other choice would change training and the gradient attacks."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = _pair(self.kernel_size), _pair(self.stride)
        if (torch.is_grad_enabled() and x.requires_grad) or self.padding != 0 or self.dilation != 1 \
                or self.ceil_mode or self.return_indices or s != k:
            return super().forward(x)
        h, w = x.shape[-2] // k[0], x.shape[-1] // k[1]
        out = None
        for i in range(k[0]):
            for j in range(k[1]):
                part = x[..., i:i + k[0] * h:k[0], j:j + k[1] * w:k[1]]
                out = part if out is None else torch.maximum(out, part)
        return out


@dataclass(frozen=True)
class Flatten(Layer):
    kind = "flatten"

    def output_shape(self, shape, where):
        return (math.prod(shape),)

    def module(self, shape):
        return nn.Flatten()


@dataclass(frozen=True)
class Linear(Layer):
    kind = "linear"
    required = ("width",)
    width: int = param(None, Integer(1), "output features (required)")

    def output_shape(self, shape, where):
        return (self.width,)

    def module(self, shape):
        return nn.Linear(math.prod(shape), self.width)


@dataclass(frozen=True)
class Dropout(Layer):
    kind = "dropout"
    p: float = param(0.5, Number(0, 1, open="high"), "probability of zeroing a feature in training (none in evaluation)")

    def module(self, shape):
        return nn.Dropout(self.p)


@dataclass(frozen=True)
class Relu(Layer):
    """ReLU on every feature."""
    kind = "relu"

    def module(self, shape):
        return nn.ReLU()


@dataclass(frozen=True)
class Tanh(Layer):
    """Tanh on every feature."""
    kind = "tanh"

    def module(self, shape):
        return nn.Tanh()


@dataclass(frozen=True)
class Sigmoid(Layer):
    """Sigmoid on every feature."""
    kind = "sigmoid"

    def module(self, shape):
        return nn.Sigmoid()


# Module-level classes, so a parsed config pickles into worker processes.
KINDS: dict[str, type[Layer]] = {k.kind: k for k in (Conv, Pool, Flatten, Linear, Dropout, Relu, Tanh, Sigmoid)}


def parse_layer(value, where: str) -> Layer:
    """One layer of a config: a kind name or a mapping with ``kind`` and its options."""
    if isinstance(value, str):
        value = {"kind": value}
    if not isinstance(value, Mapping) or "kind" not in value:
        raise ConfigError(f"{where} must be a layer kind or a mapping with a 'kind' key, got {value!r}")
    kind = Choice(KINDS).parse(value["kind"], f"{where}.kind")
    missing = [key for key in KINDS[kind].required if key not in value]
    if missing:
        raise ConfigError(f"{where}: a {kind} layer needs {', '.join(missing)}")
    options = {k: v for k, v in value.items() if k != "kind"}
    return KINDS[kind].parse(options, where, owner=f"layer kind {kind!r}")


class LayerList(Rule):
    """A list of layers (``parse_layer``), stored as a tuple of their ``Params``."""

    text = "be a list of layers"

    def parse(self, value, where):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must {self.text}, got {value!r}")
        return tuple(parse_layer(layer, f"{where}[{i}]") for i, layer in enumerate(value))

    def describe(self) -> str:
        kinds = [f"`{name}`" + (f" ({', '.join(f.name for f in kind.fields())})" if kind.fields() else "")
                 for name, kind in KINDS.items()]
        return "list of layers, each a kind or a mapping `{kind: ..., options}`: " + ", ".join(kinds)


def layer(kind: str, **options) -> Layer:
    """A layer in code (the presets): ``layer("conv", channels=8, padding=1)``."""
    return parse_layer({"kind": kind, **options}, f"layer {kind}")


def network_shapes(layers, input_shape: tuple[int, ...], where) -> list[tuple[int, ...]]:
    """The shape after each layer (a linear layer flattens a feature map first); ``where(i)``
    names layer i in the ``ConfigError`` of a layer that cannot take its input."""
    shapes, shape = [], tuple(input_shape)
    for i, spec in enumerate(layers):
        shape = spec.output_shape(shape, where(i))
        shapes.append(shape)
    return shapes


def build_network(layers, input_shape: tuple[int, ...], n_classes: int) -> nn.Sequential:
    """The layers as modules, created in order, then a linear layer to ``n_classes`` logits;
    an ``nn.Flatten`` is inserted wherever a linear layer meets a feature map."""
    modules: list[nn.Module] = []
    shape = tuple(input_shape)
    for spec in (*layers, layer("linear", width=n_classes)):
        if isinstance(spec, Linear) and len(shape) > 1:
            modules.append(nn.Flatten())
            shape = (math.prod(shape),)
        modules.append(spec.module(shape))
        shape = spec.output_shape(shape, f"layer {spec.kind}")
    return nn.Sequential(*modules)
