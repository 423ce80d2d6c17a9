"""Captum attributions and how much they change under attack.

Every attribution method is one ``Explainer`` entry of the ``ATTRIBUTIONS`` registry, in a
module of this package: ``ATTRIBUTIONS[name](params, seed=seed).attribute(model, x, target)``
returns maps of the input's shape. ``interpret.methods`` in a config picks the methods and
``interpret.<name>`` holds a method's parameters.
"""
from __future__ import annotations

from ..registry import ATTRIBUTIONS
from .base import Explainer
from .metrics import constant_maps, infidelity_score, rank_correlation, sensitivity_score, shifted, top_k_overlap

__all__ = ["ATTRIBUTIONS", "Explainer", "attribute", "constant_maps", "infidelity_score", "rank_correlation",
           "sensitivity_score", "shifted", "top_k_overlap"]


def attribute(method: str, model, x, target, seed: int = 0, **params):
    """Maps of ``method`` (a registry name) with its default parameters but ``params``."""
    return ATTRIBUTIONS[method](seed=seed, **params).attribute(model, x, target)
