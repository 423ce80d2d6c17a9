"""SmoothGrad: saliency averaged over noisy copies of the input."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from captum.attr import NoiseTunnel, Saliency

from ..params import Integer, Number, Params, param
from ..registry import ATTRIBUTIONS
from .base import Explainer


@ATTRIBUTIONS.register
class SmoothGrad(Explainer):
    """Saliency averaged over ``samples`` copies with Gaussian noise of absolute standard
    deviation ``stdev`` in input units (Captum ``NoiseTunnel``)."""

    name, label = "smoothgrad", "SmoothGrad"

    @dataclass(frozen=True)
    class Params(Params):
        samples: int = param(16, Integer(1), "noisy copies per input")
        stdev: float = param(0.15, Number(0, open="low"), "noise standard deviation (absolute, inputs in [0, 1])")

    def explain(self, model, x, target):
        torch.manual_seed(self.seed)  # NoiseTunnel draws its noise from the global generator
        return NoiseTunnel(Saliency(model)).attribute(
            x, nt_type="smoothgrad", nt_samples=self.params.samples, stdevs=self.params.stdev, target=target, abs=True)
