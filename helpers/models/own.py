"""Your own models, by config: an ``nn.Module`` built by a function in your own file
(``type: python``) or a PennyLane QNode with its weight shapes (``type: qnode``).

``factory: "my_models:build"`` names the function ``build`` of the file ``my_models.py`` in
the models folder: the repository root, unless the environment variable
``QML_ROBUSTNESS_MODELS`` names another folder (a path that leads outside it is refused, as
for data files). The function is called as ``build(**options, input_shape=..., n_classes=...)``:

- ``type: python``: it returns an ``nn.Module`` mapping a float batch (B, *input_shape) in
  [0, 1] to logits (B, n_classes). If the module has ``fit_preprocessing(x_train)`` it is
  called before training; if it has ``bound_ops()`` (``models.ops``) the certificates use
  them, an ``nn.Sequential`` of layers they know (linear, convolution, pooling, flatten,
  ReLU, tanh, sigmoid, dropout) is certified as it is, and otherwise every certificate says
  "no certificate" for it.
- ``type: qnode``: it returns a mapping ``{"qnode": ..., "weight_shapes": {...}}`` and,
  optionally, ``"pre"`` (a module from the flattened input to the QNode's ``inputs``),
  ``"post"`` (from the QNode's outputs to the logits; default: a trainable linear layer when
  the QNode does not return ``n_classes`` values) and ``"n_features"`` (how many features the
  QNode reads, so that ``matched_mlp`` can match it). The QNode runs through
  ``qml.qnn.TorchLayer`` on whatever device it names (PennyLane's own simulators).

The file's content enters the model's code hash (``spec_hash``): editing it retrains the model
and everything computed on it. Every check runs at config time and names the file, the
function and what is wrong.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..params import AnyMapping, ConfigError, Optional, Params, Rule, param
from ..registry import MODELS
from . import DataShape, Model

MODELS_ENV = "QML_ROBUSTNESS_MODELS"
# Layers the certificates' bound propagation knows (certificates/bounds.py): a Sequential of
# these is certified as it is.
BOUNDED_LAYERS = (nn.Linear, nn.Conv2d, nn.AvgPool2d, nn.MaxPool2d, nn.Flatten, nn.ReLU, nn.Tanh, nn.Sigmoid)
ROOT = Path(__file__).resolve().parents[2]


def models_folder() -> Path:
    """The folder factories are found in: ``$QML_ROBUSTNESS_MODELS`` (relative to the
    repository root unless absolute), else the repository root."""
    given = os.environ.get(MODELS_ENV)
    return (ROOT / given if given else ROOT).resolve()


class Factory(Rule):
    text = "be 'file:function' (a .py file in the models folder, without its suffix, and a function in it)"

    def accepts(self, v) -> bool:
        return isinstance(v, str) and v.count(":") == 1 and all(v.split(":"))


def factory_file(factory: str, where: str) -> Path:
    """The file ``factory`` names, inside the models folder; a ``ConfigError`` otherwise."""
    folder = models_folder()
    path = (folder / f"{factory.split(':')[0]}.py").resolve()
    if not path.is_relative_to(folder):
        raise ConfigError(f"{where}.factory: {factory!r} leads to {path}, outside the models folder {folder} "
                          f"(${MODELS_ENV} moves it)")
    if not path.is_file():
        raise ConfigError(f"{where}.factory: the file {path} does not exist (factories live in the models folder "
                          f"{folder}; ${MODELS_ENV} moves it)")
    return path


def load_factory(factory: str, where: str):
    """The function ``factory`` names (its file imported afresh when its content changed)."""
    path = factory_file(factory, where)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    name = f"qmlr_own_{path.stem}_{digest}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as err:
            raise ConfigError(f"{where}.factory: importing {path} failed: {type(err).__name__}: {err}") from err
        sys.modules[name] = module
    function = getattr(sys.modules[name], factory.split(":")[1], None)
    if not callable(function):
        raise ConfigError(f"{where}.factory: {path} has no function {factory.split(':')[1]!r}")
    return function


def call_factory(params, shape: DataShape, where: str):
    """What the factory returns for ``shape``; a ``ConfigError`` naming it when the call fails."""
    function = load_factory(params.factory, where)
    try:
        return function(**dict(params.options or {}), input_shape=tuple(shape.input_shape), n_classes=shape.n_classes)
    except Exception as err:
        raise ConfigError(f"{where}.factory: {params.factory}(**options, input_shape=..., n_classes=...) failed: "
                          f"{type(err).__name__}: {err}") from err


def check_logits(module: nn.Module, shape: DataShape, where: str, factory: str) -> None:
    """A ``ConfigError`` unless ``module`` maps a batch of two inputs to finite logits (2, n_classes)."""
    try:
        with torch.no_grad():
            out = module(torch.rand(2, *shape.input_shape))
    except Exception as err:
        raise ConfigError(f"{where}.factory: the model {factory} builds fails on a batch of shape "
                          f"{(2, *shape.input_shape)}: {type(err).__name__}: {err}") from err
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, shape.n_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"{where}.factory: the model {factory} builds returns {got} for a batch of 2 inputs; "
                          f"logits (2, {shape.n_classes}) are needed")
    if not torch.isfinite(out).all():
        raise ConfigError(f"{where}.factory: the model {factory} builds returns non-finite logits")


class Holder(Model):
    """A ``Model`` around a module of your own (``self.net``): its logits, what it fits, its
    last convolution for Grad-CAM and its bound operations where the certificates have rules."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).to(x.dtype)

    def fit_preprocessing(self, x_train) -> None:
        fit = getattr(self.net, "fit_preprocessing", None)
        if callable(fit):
            fit(x_train)

    @property
    def gradcam_layer(self) -> nn.Module | None:
        convolutions = [m for m in self.net.modules() if isinstance(m, nn.Conv2d)]
        return convolutions[-1] if convolutions else None

    def bound_ops(self):
        """The module's own ``bound_ops()``; else, for an ``nn.Sequential`` of layers the
        certificates have rules for (dropout is the identity in evaluation), its layers; else None."""
        ops = getattr(self.net, "bound_ops", None)
        if callable(ops):
            return ops()
        if isinstance(self.net, nn.Sequential):
            layers = [m for m in self.net if not isinstance(m, nn.Dropout)]
            if all(isinstance(m, BOUNDED_LAYERS) for m in layers):
                return layers
        return None


class Wrapped(Holder):
    """Any ``nn.Module`` as a model of this repository (``helpers.evaluate``); not a config entry."""

    name, label = "wrapped", "a module of your own"

    def __init__(self, module: nn.Module):
        nn.Module.__init__(self)
        self.params, self.net = self.Params(), module


class OwnModel(Holder):
    """What both kinds share: the factory, its options, the file's hash, the checks."""

    @dataclass(frozen=True)
    class Params(Params):
        factory: str | None = param(None, Optional(Factory()), "'file:function' in the models folder "
                                                     f"(the repository root, or ${MODELS_ENV}); required")
        options: Mapping | None = param(None, Optional(AnyMapping()), "keyword arguments of the function")

    @classmethod
    def spec_hash(cls, params) -> str:
        return hashlib.sha256(factory_file(params.factory, "model").read_bytes()).hexdigest()[:16]

    @classmethod
    def build_module(cls, params, shape: DataShape, where: str) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def check(cls, params, shape, where):
        super().check(params, shape, where)
        if params.factory is None:
            raise ConfigError(f"{where}.factory is required for type {cls.name!r}: 'file:function' in the models "
                              f"folder {models_folder()}")
        check_logits(cls.build_module(params, shape, where), shape, where, params.factory)

    def __init__(self, input_shape, n_classes: int, params=None):
        nn.Module.__init__(self)
        self.params = params if params is not None else self.Params()
        self.net = self.build_module(self.params, DataShape(tuple(input_shape), n_classes), "model")


@MODELS.register
class PythonModel(OwnModel):
    """Your own ``nn.Module``, built by ``factory`` (see the module docstring)."""

    name, label = "python", "your own nn.Module"

    @classmethod
    def build_module(cls, params, shape, where):
        module = call_factory(params, shape, where)
        if not isinstance(module, nn.Module):
            raise ConfigError(f"{where}.factory: {params.factory} returned {type(module).__name__}, not an nn.Module")
        return module


class QNodeNet(nn.Module):
    """flatten -> ``pre`` -> the QNode as a TorchLayer -> ``post`` (logits)."""

    def __init__(self, qnode, weight_shapes: Mapping, pre: nn.Module | None, post: nn.Module | None):
        super().__init__()
        import pennylane as qml

        self.pre = pre if pre is not None else nn.Identity()
        self.circuit = qml.qnn.TorchLayer(qnode, dict(weight_shapes))
        self.post = post if post is not None else nn.Identity()

    def forward(self, x):
        out = self.circuit(self.pre(x.reshape(len(x), -1)))
        out = torch.stack(list(out), dim=-1) if isinstance(out, (list, tuple)) else out
        return self.post(out.to(x.dtype))


@MODELS.register
class QNodeModel(OwnModel):
    """Your own PennyLane QNode with its weight shapes (``qml.qnn.TorchLayer``) and optional
    classical pre- and post-processing (see the module docstring)."""

    name, label = "qnode", "your own PennyLane QNode"

    @classmethod
    def parts(cls, params, shape, where) -> Mapping:
        parts = call_factory(params, shape, where)
        if not isinstance(parts, Mapping) or not {"qnode", "weight_shapes"} <= set(parts):
            raise ConfigError(f"{where}.factory: {params.factory} must return a mapping with 'qnode' and "
                              f"'weight_shapes' (optionally 'pre', 'post', 'n_features'), got {type(parts).__name__}")
        extra = sorted(set(parts) - {"qnode", "weight_shapes", "pre", "post", "n_features"})
        if extra:
            raise ConfigError(f"{where}.factory: {params.factory} returned unknown keys {extra}")
        return parts

    @classmethod
    def build_module(cls, params, shape, where):
        parts = cls.parts(params, shape, where)
        net = QNodeNet(parts["qnode"], parts["weight_shapes"], parts.get("pre"), parts.get("post"))
        net.n_features = parts.get("n_features")  # what a matched_mlp shares (``capacity``)
        if parts.get("post") is None:  # a trainable linear read-out when the QNode's outputs are not the logits
            with torch.no_grad():
                width = net(torch.rand(1, *shape.input_shape)).shape[-1]
            if width != shape.n_classes:
                net.post = nn.Linear(width, shape.n_classes)
        return net

    @classmethod
    def capacity(cls, params, shape):
        module = cls.build_module(params, shape, "model")
        if module.n_features is None:
            return None
        return sum(p.numel() for p in module.parameters() if p.requires_grad), int(module.n_features)
