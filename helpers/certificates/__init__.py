"""Certificates: lower bounds on robust accuracy, the other side of every attack's upper bound.

Every certificate will be one ``Certificate`` entry of the ``CERTIFICATES`` registry, in a
module of this package, with the kind's verb ``certify(model, x, y, epsilon) -> certified``
(a per-sample boolean: no perturbation within the ball changes the prediction, proved, not
searched). The registry is empty until the bracketing work (interval bound propagation,
CROWN, Lipschitz bounds of circuits, randomized smoothing) fills it; a test will hold every
entry to the property that defines it: no attack ever beats a certificate.
"""
from __future__ import annotations

from ..registry import CERTIFICATES
from .base import Certificate

__all__ = ["CERTIFICATES", "Certificate"]
