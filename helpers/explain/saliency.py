"""Saliency: the absolute input gradient of the logit."""
from __future__ import annotations

from captum.attr import Saliency as CaptumSaliency

from ..registry import ATTRIBUTIONS
from .base import Explainer


@ATTRIBUTIONS.register
class Saliency(Explainer):
    """|d logit / d input| (Captum ``Saliency``)."""

    name, label = "saliency", "Saliency"

    def explain(self, model, x, target):
        return CaptumSaliency(model).attribute(x, target=target, abs=True)
