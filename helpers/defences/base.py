"""What every defence shares: the verb (the training loss of one batch) and how a spec builds one."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..params import ConfigError
from ..registry import DEFENCES, Component


class Defence(Component):
    """A defence of the ``DEFENCES`` registry: one verb, ``loss(model, x, y, seed) -> (loss,
    logits)`` on a training batch ``x`` (B, ...) in [0, 1] with labels ``y`` (B,): the scalar
    the optimiser descends, and the logits of the batch the model trained on (the training
    accuracy: of the adversarial rows, for adversarial training).
    ``seed`` (one per batch, from the run's seed) is the only randomness of the batch's
    adversarial examples, so a retrained model is the same model.

    The model is in training mode when ``loss`` is called; a defence that crafts adversarial
    examples does so in evaluation mode (dropout off, as the attacks see the model) and returns
    the model to training mode. ``strength`` names the parameter a study sweeps (training ε,
    β, λ): the report's trade-off table and figure read it.
    """

    strength: str = ""

    def __init__(self, params=None):
        self.params = params if params is not None else self.Params()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params})"

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    @classmethod
    def check_model(cls, model_type: str, model_params, where: str) -> None:
        """Raise ``ConfigError`` naming ``where`` if the defence cannot train this model
        (config validation, before any work). Every model by default."""


def parse_defence(given, where: str):
    """A spec's ``defence`` mapping ``{name: <entry>, ...its parameters}`` -> (name, Params);
    a ``ConfigError`` naming ``where`` and the key otherwise."""
    if not isinstance(given, Mapping) or "name" not in given:
        raise ConfigError(f"{where} must be a mapping with a 'name' key (one of {DEFENCES.names()}), got {given!r}")
    entry = DEFENCES.lookup(given["name"], f"{where}.name")
    params = entry.Params.parse({k: v for k, v in given.items() if k != "name"}, where, owner=f"defence {entry.name!r}")
    return entry.name, params


def build_defence(given, where: str = "defence") -> Defence | None:
    """The defence a spec's ``defence`` mapping names, with its parameters (None: no defence)."""
    if given is None:
        return None
    name, params = parse_defence(given, where)
    return DEFENCES[name](params)
