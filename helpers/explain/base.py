"""What every attribution method shares: the verb, and whether it applies to a model."""
from __future__ import annotations

import torch
from torch import nn

from ..registry import Component


class Explainer(Component):
    """An attribution method of the ``ATTRIBUTIONS`` registry, Captum's verb:
    ``attribute(model, x, target) -> maps`` of the input's shape for the logit of class
    ``target`` (B,) at ``x`` (B, ...). Built from its ``Params`` (``interpret.<name>`` in a
    config) and a ``seed`` for any noise it draws. Tag ``convolution``: needs a convolutional
    layer (the model's ``gradcam_layer``); ``applies`` says so instead of faking a map.
    """

    def __init__(self, params=None, *, seed: int = 0, **overrides):
        params = params if params is not None else self.Params()
        if overrides:
            params = self.Params.parse({**params.to_dict(), **overrides}, f"attribution {self.name}", owner=repr(self.name))
        self.params, self.seed = params, seed

    @classmethod
    def applies(cls, model: nn.Module) -> tuple[bool, str]:
        """(applies, reason it does not)."""
        if "convolution" in cls.tags and getattr(model, "gradcam_layer", None) is None:
            return False, "no convolutional layer"
        return True, ""

    def attribute(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        applies, reason = self.applies(model)
        if not applies:
            raise ValueError(f"{self.name} does not apply to {type(model).__name__}: {reason}")
        return self.explain(model, x.detach(), target).detach()

    def explain(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
