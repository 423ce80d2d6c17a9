"""Classifiers: every model maps a float batch (B, *input_shape) in [0, 1] to logits (B, classes).

Every model is one ``Model`` entry of the ``MODELS`` registry, in a module of this package:
a ``torch.nn.Module`` that also owns its config name (``type``), its ``Params`` (the other
keys of its config mapping), its ``check`` against the data (input shape, classes), its
``capacity`` for a capacity-matched baseline and, where it has them, its Grad-CAM layer
(``gradcam_layer``) and what it fits on the training split (``fit_preprocessing``).
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ..params import ConfigError
from ..registry import MODELS, Component

# Attacks and attributions run the models on batches of up to this many points.
EVALUATION_BATCH = 512
# Keys of a model's config spec that say how it is trained (or that it is imported), not what it is.
HOW_TRAINED = ("defence", "training", "checkpoint")


@dataclass(frozen=True)
class DataShape:
    """What a model is built for: one input's shape ((1, H, W) images, (D,) feature vectors),
    the number of classes and, for config validation's memory estimate, the largest batch it
    will simulate (None: no estimate)."""

    input_shape: tuple[int, ...]
    n_classes: int
    batch_size: int | None = None

    @property
    def n_inputs(self) -> int:
        return math.prod(self.input_shape)

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 3


class Model(Component, nn.Module):
    """Base of the models (see the package docstring). Tag ``image``: needs image input.

    ``stochastic``: whether the model's predictions in evaluation are random (a circuit with
    finite shots); such a model has ``reseed(seed)`` for its draws and ``exact()``, a context
    manager within which it returns its expected (infinite-shot) logits. For a deterministic
    model both do nothing.
    """

    stochastic = False

    def __init__(self, input_shape, n_classes: int, params=None):
        nn.Module.__init__(self)
        self.params = params if params is not None else self.Params()
        type(self).check(self.params, DataShape(tuple(input_shape), n_classes), "model")

    @classmethod
    def check(cls, params, shape: DataShape, where: str) -> None:
        """Raise ``ConfigError`` naming ``where`` if the model cannot be built for ``shape``
        (called by config validation before any work, and by the constructor)."""
        if "image" in cls.tags and not shape.is_image:
            raise ConfigError(f"{where}: {cls.name} needs image input (1, H, W); data set has input shape "
                              f"{tuple(shape.input_shape)}")

    @classmethod
    def spec_hash(cls, params) -> str | None:
        """A hash of what this model's spec reads beside the code (a file of your own, say),
        for the keys of the units trained on it; None when it reads nothing else."""
        return None

    @classmethod
    def capacity(cls, params, shape: DataShape) -> tuple[int, int] | None:
        """(trainable parameters, reduced features) for a capacity-matched baseline, or None
        if the model has no reduced features to share."""
        return None

    @property
    def gradcam_layer(self) -> nn.Module | None:
        """The convolution Grad-CAM explains (None: the model has none)."""
        return None

    def fit_preprocessing(self, x_train) -> None:
        """Fit whatever the model fits on the training inputs (N, *input_shape) before training."""

    def reseed(self, seed: int) -> None:
        """Seed the model's own randomness in evaluation (none here)."""

    def exact(self):
        """Context manager within which forward returns the expected logits (here: always)."""
        return contextlib.nullcontext(self)

    def bound_ops(self) -> list[nn.Module] | None:
        """The model as a sequence of operations whose forward, in order, gives its logits
        (``models.ops``), for the certificates; None if it has no such form."""
        return None


def build_model(spec: Mapping, input_shape, n_classes: int, where: str = "model") -> Model:
    """The model ``spec['type']`` with the other keys of ``spec`` as its ``Params`` (the
    ``HOW_TRAINED`` keys, how the model is trained, do not build it and are ignored)."""
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise ConfigError(f"{where} must be a mapping with a 'type' key, got {spec!r}")
    entry = MODELS.lookup(spec["type"], f"{where}.type")
    params = entry.Params.parse({k: v for k, v in spec.items() if k != "type" and k not in HOW_TRAINED}, where,
                                owner=f"type {spec['type']!r}")
    return entry(tuple(input_shape), n_classes, params)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = EVALUATION_BATCH) -> torch.Tensor:
    """Predicted labels (B,) of inputs (B, *input_shape), in batches of ``batch_size``."""
    return torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (buffers such as the fixed PCA are not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def match_capacity(models: Mapping, input_shape, n_classes: int) -> dict:
    """A copy of a config's ``models`` mapping (name -> spec) in which every spec with
    ``match: <other model name>`` instead has ``parameters`` (the other model's trainable
    parameter count) and ``n_features`` (its reduced feature count, e.g. a VQC's n_qubits).

    The other model must exist, must not itself be matched, and must have reduced features
    (its ``capacity``; amplitude encoding has none); a ``ConfigError`` otherwise.
    """
    shape = DataShape(tuple(input_shape), n_classes)
    resolved = {}
    for name, spec in models.items():
        if "match" not in spec:
            resolved[name] = spec
            continue
        other = spec["match"]
        if other not in models or "match" in models[other]:
            raise ConfigError(f"models.{name}.match must name a model of this config that is not matched "
                              f"itself; got {other!r}, available: {sorted(n for n in models if 'match' not in models[n])}")
        given = sorted(set(spec) & {"parameters", "n_features"})
        if given:
            raise ConfigError(f"models.{name}: match sets parameters and n_features; remove {given}")
        target = models[other]
        entry = MODELS.lookup(target.get("type"), f"models.{other}.type")
        params = entry.Params.parse({k: v for k, v in target.items() if k != "type"}, f"models.{other}",
                                    owner=f"type {target['type']!r}")
        capacity = entry.capacity(params, shape)
        if capacity is None:
            raise ConfigError(f"models.{name}.match: model {other!r} has no reduced features (a PCA) to share")
        resolved[name] = {**{k: v for k, v in spec.items() if k != "match"},
                          "parameters": capacity[0], "n_features": capacity[1]}
    return resolved
