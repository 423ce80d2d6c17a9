"""Captum attributions and how much they change under attack.

Every method has one verb: ``attribute(method, model, x, target, **params)`` returns a map
of the input's shape (B, 1, H, W). Grad-CAM needs a convolutional layer (``gradcam_layer``
on the model); ``applicability`` says which models have none instead of faking a map.
"""
from __future__ import annotations

import numpy as np
import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, NoiseTunnel, Saliency
from scipy.stats import spearmanr
from torch import nn

METHODS = ("saliency", "integrated_gradients", "smoothgrad", "gradcam")


def applicability(method: str, model: nn.Module) -> tuple[bool, str]:
    """(applies, reason); only Grad-CAM has a precondition."""
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; available: {list(METHODS)}")
    if method == "gradcam" and getattr(model, "gradcam_layer", None) is None:
        return False, "no convolutional layer"
    return True, ""


def attribute(method: str, model: nn.Module, x: torch.Tensor, target: torch.Tensor, *,
              ig_steps: int = 32, smoothgrad_samples: int = 16, smoothgrad_stdev: float = 0.15,
              seed: int = 0) -> torch.Tensor:
    """Attribution maps (B, 1, H, W) of ``model``'s logit for class ``target`` (B,) at ``x``.

    Saliency is |d logit / d x|; integrated gradients use the black image as baseline;
    SmoothGrad averages saliency over ``smoothgrad_samples`` copies with Gaussian noise of
    absolute standard deviation ``smoothgrad_stdev``; Grad-CAM is upsampled to the input.
    """
    applies, reason = applicability(method, model)
    if not applies:
        raise ValueError(f"{method} does not apply to {type(model).__name__}: {reason}")
    x = x.detach()
    if method == "saliency":
        maps = Saliency(model).attribute(x, target=target, abs=True)
    elif method == "integrated_gradients":
        maps = IntegratedGradients(model).attribute(
            x, baselines=torch.zeros_like(x), target=target, n_steps=ig_steps,
            internal_batch_size=max(len(x) * 8, 64))
    elif method == "smoothgrad":
        torch.manual_seed(seed)  # NoiseTunnel draws its noise from the global generator
        maps = NoiseTunnel(Saliency(model)).attribute(
            x, nt_type="smoothgrad", nt_samples=smoothgrad_samples, stdevs=smoothgrad_stdev,
            target=target, abs=True)
    else:
        layer_maps = LayerGradCam(model, model.gradcam_layer).attribute(x, target=target, relu_attributions=True)
        maps = LayerAttribution.interpolate(layer_maps, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    return maps.detach()


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Spearman correlation between the |maps| of each pair (B,); NaN where a map is constant."""
    a = a.reshape(len(a), -1).abs().cpu().numpy()
    b = b.reshape(len(b), -1).abs().cpu().numpy()
    out = np.full(len(a), np.nan)
    for i in range(len(a)):
        if np.ptp(a[i]) > 0 and np.ptp(b[i]) > 0:
            out[i] = spearmanr(a[i], b[i]).statistic
    return out


def top_k_overlap(a: torch.Tensor, b: torch.Tensor, k: int) -> np.ndarray:
    """Fraction of the ``k`` most important pixels (by |map|) that the two maps share (B,)."""
    a = a.reshape(len(a), -1).abs()
    b = b.reshape(len(b), -1).abs()
    top_a = a.topk(k, dim=1).indices
    top_b = b.topk(k, dim=1).indices
    shared = [len(set(ta.tolist()) & set(tb.tolist())) for ta, tb in zip(top_a, top_b)]
    return np.array(shared, dtype=float) / k


def infidelity_score(model: nn.Module, x: torch.Tensor, maps: torch.Tensor, target: torch.Tensor, *,
                     n_samples: int = 8, stdev: float = 0.05, seed: int = 0) -> np.ndarray:
    """Captum's infidelity (B,): how badly map · noise predicts the change of the logit when
    Gaussian noise of standard deviation ``stdev`` is subtracted from the input; lower is
    better. Maps are optimally rescaled first (``normalize=True``), so models compare."""
    from captum.metrics import infidelity

    def perturb(inputs):
        noise = torch.randn_like(inputs) * stdev
        return noise, inputs - noise

    torch.manual_seed(seed)
    scores = infidelity(model, perturb, x.detach(), maps, target=target, n_perturb_samples=n_samples,
                        normalize=True).detach().cpu().numpy()
    # With normalize=True the score is a difference of two float32 terms; where the map fits
    # perfectly (a dead ReLU: zero map, zero change) round-off leaves about -1e-9.
    return np.maximum(scores, 0.0)


def sensitivity_score(method: str, model: nn.Module, x: torch.Tensor, target: torch.Tensor, *,
                      n_samples: int = 8, radius: float = 0.02, seed: int = 0, **params) -> np.ndarray:
    """Captum's sensitivity_max (B,): the largest relative change of the map when the input
    moves uniformly within an L-infinity ``radius``; lower is more stable."""
    from captum.metrics import sensitivity_max

    def explain(inputs, target):
        return (attribute(method, model, inputs[0], target, seed=seed, **params),)

    torch.manual_seed(seed)
    return sensitivity_max(explain, x.detach(), target=target, perturb_radius=radius,
                           n_perturb_samples=n_samples).detach().cpu().numpy()
