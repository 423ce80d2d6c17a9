"""How much an explanation changes under attack, and how faithful and stable it is."""
from __future__ import annotations

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn


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
    """Fraction of the ``k`` most important inputs (by |map|) that the two maps share (B,);
    NaN where a map is constant (its top k are arbitrary: two all-zero maps do not agree)."""
    a = a.reshape(len(a), -1).abs()
    b = b.reshape(len(b), -1).abs()
    top_a = a.topk(k, dim=1).indices
    top_b = b.topk(k, dim=1).indices
    shared = np.array([len(set(ta.tolist()) & set(tb.tolist())) for ta, tb in zip(top_a, top_b)], dtype=float) / k
    return np.where(constant_maps(a) | constant_maps(b), np.nan, shared)


def constant_maps(maps: torch.Tensor) -> np.ndarray:
    """Whether each map (B, ...) is constant (all zero, say): no ranking to compare (B,)."""
    flat = maps.reshape(len(maps), -1)
    return (flat.max(dim=1).values == flat.min(dim=1).values).cpu().numpy()


def shifted(maps: torch.Tensor) -> torch.Tensor:
    """The maps of the next image (cyclically): pairs of maps of *different* inputs, for the
    chance level of a similarity between maps."""
    return torch.roll(maps, shifts=-1, dims=0)


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


def sensitivity_score(explainer, model: nn.Module, x: torch.Tensor, target: torch.Tensor, *,
                      n_samples: int = 8, radius: float = 0.02, seed: int = 0) -> np.ndarray:
    """Captum's sensitivity_max (B,) of ``explainer`` (an ``Explainer``): the largest relative
    change of its map when the input moves uniformly within an L-infinity ``radius``; lower is
    more stable."""
    from captum.metrics import sensitivity_max

    def explain(inputs, target):
        return (explainer.attribute(model, inputs[0], target),)

    torch.manual_seed(seed)
    return sensitivity_max(explain, x.detach(), target=target, perturb_radius=radius,
                           n_perturb_samples=n_samples).detach().cpu().numpy()
