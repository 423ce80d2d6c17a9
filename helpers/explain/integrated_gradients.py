"""Integrated gradients from the black input."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from captum.attr import IntegratedGradients as CaptumIntegratedGradients

from ..params import Integer, Params, param
from ..registry import ATTRIBUTIONS
from .base import Explainer


@ATTRIBUTIONS.register
class IntegratedGradients(Explainer):
    """The path integral of gradients from the all-zero input (a black image; angle 0 for angle
    encoding) to the input, ``steps`` points (Captum ``IntegratedGradients``, path points in
    chunks so that simulators keep their batches)."""

    name, label = "integrated_gradients", "Integrated gradients"

    @dataclass(frozen=True)
    class Params(Params):
        steps: int = param(32, Integer(1), "points on the path from the baseline")

    def explain(self, model, x, target):
        return CaptumIntegratedGradients(model).attribute(
            x, baselines=torch.zeros_like(x), target=target, n_steps=self.params.steps,
            internal_batch_size=max(len(x) * 8, 64))
