"""Threat models: the norm of a perturbation, the projection onto its ball inside the input
range [0, 1], a random start in the ball and the steepest-ascent direction of a gradient step.

Every threat model is one ``ThreatModel`` entry of the ``THREAT_MODELS`` registry
(``linf``, ``l2``); attacks and certificates declare the norms they support (``norms``) and
take the threat model by that name.
"""
from __future__ import annotations

from ..registry import THREAT_MODELS
from .base import ThreatModel

__all__ = ["PRIMARY", "THREAT_MODELS", "ThreatModel", "threat_model"]

PRIMARY = "linf"  # the threat model of the config's ``attack`` section, which every config has


def threat_model(norm: str) -> ThreatModel:
    """The threat model of ``norm`` (``linf`` or ``l2``), as an instance."""
    return THREAT_MODELS[norm]()
