"""What every certificate shares: the verb and the threat models it proves statements for."""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ..registry import Component


class Certificate(Component):
    """A certificate of the ``CERTIFICATES`` registry: ``certify(model, x, y, epsilon)`` returns
    a boolean array (B,) that is True where the model provably classifies every input within
    the ``norms`` ball of radius ``epsilon`` around ``x`` (and inside [0, 1]) as ``y``. Built
    from its ``Params`` and a ``seed`` (randomised certificates hold with a stated probability)."""

    norms: ClassVar[tuple[str, ...]] = ("linf",)

    def __init__(self, params=None, *, seed: int = 0, **overrides):
        params = params if params is not None else self.Params()
        if overrides:
            params = self.Params.parse({**params.to_dict(), **overrides}, f"certificate {self.name}", owner=repr(self.name))
        self.params, self.seed = params, seed

    @classmethod
    def applies(cls, model: nn.Module) -> tuple[bool, str]:
        """(applies, reason it does not): the bound certificates need the model as a sequence
        of ops they have rules for (``Model.bound_ops``)."""
        if getattr(model, "bound_ops", lambda: None)() is None:
            return False, "no bound propagation for this model (e.g. amplitude encoding)"
        return True, ""

    def certify(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement certify")
