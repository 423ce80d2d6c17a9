"""Multiplicity: Holm's step-down adjustment of a family of p-values. Its own module because
the attack stage's masking checks (which decide escalation) use it and nothing else of the
statistics, so that editing the statistics does not touch the attack stage."""
from __future__ import annotations

import numpy as np


def holm(p_values) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1) of a family; NaNs
    stay NaN and do not count towards the family's size."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(len(p), np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m, running = len(order), 0.0
    for rank, index in enumerate(order):
        running = max(running, (m - rank) * p[index])
        adjusted[index] = min(1.0, running)
    return adjusted
