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

    def runs_at(self, epsilon: float) -> bool:
        """Whether a study computes this certificate at budget ``epsilon`` (all, unless the
        certificate declares a subset of budgets, as ``exact`` may)."""
        return True

    def certify(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement certify")

    def certify_norm(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float,
                     norm: str) -> np.ndarray:
        """``certify`` in the threat model ``norm`` (one of ``norms``). The default for ``l2``
        is the enclosing box: the L2 ball of radius ε lies inside the L∞ ball of radius ε,
        so a proof for the box holds for the ball (sound, and loose: the box's corners are
        sqrt(D)·ε away). A certificate with a proper L2 bound overrides this."""
        if norm not in self.norms:
            raise ValueError(f"certificate {self.name} does not support the {norm} norm (it supports {list(self.norms)})")
        return self.certify(model, x, y, epsilon)
