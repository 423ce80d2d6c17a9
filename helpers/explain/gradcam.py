"""Grad-CAM on a model's last convolution."""
from __future__ import annotations

from captum.attr import LayerAttribution, LayerGradCam

from ..registry import ATTRIBUTIONS
from .base import Explainer


@ATTRIBUTIONS.register
class GradCAM(Explainer):
    """Grad-CAM (Captum ``LayerGradCam``) on the model's ``gradcam_layer``, ReLU'd and
    upsampled bilinearly to the input; models without a convolution have none."""

    name, label = "gradcam", "Grad-CAM"
    tags = frozenset({"convolution"})

    def explain(self, model, x, target):
        layer_maps = LayerGradCam(model, model.gradcam_layer).attribute(x, target=target, relu_attributions=True)
        return LayerAttribution.interpolate(layer_maps, tuple(x.shape[-2:]), interpolate_mode="bilinear")
